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
];

const outputs = exactOutputCases(test, CASES, PRELUDE, () => EXAMPLE_TABLE);

test.serial("tshark decodes every emitted SIIT frame without warnings", (t) => {
  t.true(outputs.length >= CASES.length);
  const r = decodeWithTshark(outputs);
  t.deepEqual(r.problems, []);
});
