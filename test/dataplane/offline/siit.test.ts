// Exact-output cases of the offline mode for the SIIT details of issue 13 (RFC 7915 with RFC
// 6275, RFC 1812, RFC 4884, RFC 6946): scapy builds input and output, as in cases.test.ts.
import test from "ava";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { EXAMPLE_TABLE, exactOutputCases, SCAPY_PRELUDE, type ExactCase } from "./harness.js";

const PRELUDE = `${SCAPY_PRELUDE}
T6 = '2001:db8:64::cb00:7105'   # 203.0.113.5 under the RFC 6052 prefix 2001:db8:64::/96
HAO6 = IPv6ExtHdrDestOpt(options=[HAO(hoa='2001:db8:1::99')])
RH2 = IPv6(src='2001:db8:1::50', dst=T6)/IPv6ExtHdrRouting(addresses=['2001:db8::5'], segleft=1)/IPv6ExtHdrRouting(addresses=['2001:db8::6'], segleft=0, nh=253)/P
LONG6 = IPv6(src=T6, dst='2001:db8:1::50', hlim=60)/UDP(sport=4000, dport=5000)/Raw(b'l'*1000)
LONG4 = bytes(IP(src='203.0.113.5', dst='198.51.100.20', ttl=60, id=0)/UDP(sport=4000, dport=5000)/Raw(b'l'*1000))
FX6 = IPv6(src='2001:db8:1::50', dst=T6)/IPv6ExtHdrFragment(offset=0, m=1, id=7)/IPv6ExtHdrDestOpt()/UDP(sport=1, dport=2)/P
Q4 = IP(src='198.51.100.20', dst='203.0.113.5', ttl=60, id=0)/UDP(sport=5000, dport=4000)/P
Q6 = IPv6(src='2001:db8:1::50', dst=T6, hlim=60)/UDP(sport=5000, dport=4000)/P
`;

const CASES: ExactCase[] = [
  {
    title: "RFC 7915 §5.5 + RFC 6275 §6.3: UDP with a Home Address option becomes IPv4 with the checksum the home address gave it",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst=T6)/HAO6/UDP(sport=2000, dport=1000)/P",
    expected: ["o4(GW4)/IP(src='198.51.100.20', dst='203.0.113.5', ttl=63)/UDP(sport=2000, dport=1000)/P"],
  },
  {
    title: "RFC 7915 §5.1: two routing headers, the first with segments left → Parameter Problem at its Segments Left",
    ingress: "v6",
    input: "e6(VMB6)/RH2",
    expected: ["o6(VMB6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=64)/ICMPv6ParamProblem(code=0, ptr=43)/Raw(bytes(RH2))"],
  },
  {
    title: "RFC 1812 §4.3.2.3: an ICMPv6 error quoting 1048 bytes becomes an ICMPv4 error of 576 bytes (quote cut)",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst=T6)/ICMPv6TimeExceeded(code=0)/LONG6",
    expected: ["o4(GW4)/IP(src='198.51.100.20', dst='203.0.113.5', ttl=63)/ICMP(type=11, code=0)/Raw(LONG4[:548])"],
  },
  {
    title: "RFC 6946 §4 + RFC 7915 §5.2: an ICMPv6 echo request in an atomic fragment becomes an ICMPv4 echo request",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst=T6)/IPv6ExtHdrFragment(offset=0, m=0, id=0x55)/ICMPv6EchoRequest(id=9, seq=3, data=P)",
    expected: ["o4(GW4)/IP(src='198.51.100.20', dst='203.0.113.5', ttl=63)/ICMP(type=8, id=9, seq=3)/P"],
  },
  {
    title: "RFC 7915 §4.1: an ICMPv4 error from 127.0.0.1 passes the RFC 1812 §5.3.7 filter and is translated",
    ingress: "v4",
    input: "e4()/IP(src='127.0.0.1', dst='198.51.100.20')/ICMP(type=3, code=1)/Q4",
    expected: ["o6(VMB6)/IPv6(src='2001:db8:64::7f00:1', dst='2001:db8:1::50', hlim=63)/ICMPv6DestUnreach(code=0)/Q6"],
  },
  {
    title: "RFC 1812 §5.3.7: an ICMPv4 error from 127.0.0.1 that is not translated is not routed",
    ingress: "v4",
    input: "e4()/IP(src='127.0.0.1', dst='203.0.113.9')/ICMP(type=3, code=1)/Q4",
    expected: [],
  },
  {
    title: "RFC 1812 §5.3.7: UDP from 127.0.0.1 to a mapped address is still dropped",
    ingress: "v4",
    input: "e4()/IP(src='127.0.0.1', dst='198.51.100.20')/UDP(sport=1, dport=2)/P",
    expected: [],
  },
  {
    title: "RFC 7915 §5.4: extension headers after the Fragment Header → ICMPv6 administratively prohibited",
    ingress: "v6",
    input: "e6(VMB6)/FX6",
    expected: ["o6(VMB6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=64)/ICMPv6DestUnreach(code=1)/Raw(bytes(FX6))"],
  },
  {
    title: "RFC 7757 §4: IPv6 to the RFC 6052 form of an EAM IPv4 address comes back as IPv6 to the EAM's IPv6 address (hairpinning)",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::c633:6414')/UDP(sport=2000, dport=1000)/P",
    expected: ["o6(VMB6)/IPv6(src='2001:db8:64::c633:6414', dst='2001:db8:1::50', hlim=62)/UDP(sport=2000, dport=1000)/P"],
  },
];

const outputs = exactOutputCases(test, CASES, PRELUDE, () => EXAMPLE_TABLE);

test.serial("tshark decodes every emitted SIIT frame without warnings", (t) => {
  t.is(outputs.length, CASES.reduce((n, c) => n + c.expected.length, 0));
  const r = decodeWithTshark(outputs);
  t.deepEqual(r.problems, []);
});
