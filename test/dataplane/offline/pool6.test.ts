// Exact-output cases of the offline mode for issue 13 §1 and §3: IPv4-translatable destinations
// under the RFC 6052 prefix (RFC 6052 §2; the translation-prefix rule's ipv4Translatable) and an
// explicit address mapping whose IPv6 suffix is longer than the IPv4 one (RFC 7757 §3.2).
// scapy builds input and output, as in siit.test.ts; the table is the example one plus those rules.
import test from "ava";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { exactOutputCases, exampleTable, SCAPY_PRELUDE, type ExactCase } from "./harness.js";

// 198.18.0.0/24 is IPv4-translatable (RFC 2544 §C.2.2 benchmarking addresses: the documentation
// ranges are the lab's); 198.18.1.0/24 ↔ 2001:db8:ea::/72 is an EAM with 48 IPv6 suffix bits to spare.
function table(): Record<string, unknown> {
  const t = exampleTable() as { worker: { routes: unknown[] }; rules: Record<string, unknown>[] };
  t.worker.routes.push({ prefix: "2001:db8:64::/96", interface: "v6", via: "2001:db8:1::1" });
  for (const r of t.rules) if (r.kind === "translation-prefix") r.ipv4Translatable = ["198.18.0.0/24"];
  t.rules.push({ key: "eam/long", kind: "address-mapping", ipv4: "198.18.1.0/24", ipv6: "2001:db8:ea::/72" });
  return t;
}

const PRELUDE = `${SCAPY_PRELUDE}
T6 = '2001:db8:64::cb00:7105'   # 203.0.113.5 under the RFC 6052 prefix 2001:db8:64::/96
X6 = '2001:db8:64::c612:7'      # 198.18.0.7, IPv4-translatable, in the same form
ASKER = '02:00:00:00:04:55'
OUT4 = IP(src='203.0.113.5', dst='198.18.2.7')/UDP(sport=1000, dport=2000)/P
`;

const CASES: ExactCase[] = [
  {
    title: "RFC 6052 §2: IPv4 to an IPv4-translatable address leaves as IPv6 to its RFC 6052 form",
    ingress: "v4",
    input: "e4()/IP(src='203.0.113.5', dst='198.18.0.7')/UDP(sport=1000, dport=2000)/P",
    expected: ["o6(GW6)/IPv6(src=T6, dst=X6, hlim=63)/UDP(sport=1000, dport=2000)/P"],
  },
  {
    title: "RFC 6052 §2: the IPv4-translatable node's reply leaves as IPv4 from its IPv4 address",
    ingress: "v6",
    input: "e6()/IPv6(src=X6, dst=T6)/UDP(sport=2000, dport=1000)/P",
    expected: ["o4(GW4)/IP(src='198.18.0.7', dst='203.0.113.5', ttl=63)/UDP(sport=2000, dport=1000)/P"],
  },
  {
    title: "RFC 6052 §2: a destination outside the IPv4-translatable list is not translated: routed, and with no route, RFC 1812 §5.2.7.1 unreachable (precedence 6, §4.3.2.5)",
    ingress: "v4",
    input: "e4()/OUT4",
    expected: ["o4(GW4)/IP(src='192.0.2.254', dst='203.0.113.5', ttl=64, tos=0xc0)/ICMP(type=3, code=0)/Raw(bytes(OUT4))"],
  },
  {
    title: "RFC 7757 §4 with RFC 6052 §2: IPv6 to an IPv4-translatable address comes straight back as IPv6 to it, from the source's RFC 6052 form (hop limit − 2)",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst=X6)/UDP(sport=2000, dport=1000)/P",
    expected: ["o6(GW6)/IPv6(src='2001:db8:64::c633:6414', dst=X6, hlim=62)/UDP(sport=2000, dport=1000)/P"],
  },
  {
    title: "RFC 826: ARP for an IPv4-translatable address is answered with the port's MAC",
    ingress: "v4",
    input: "Ether(dst='ff:ff:ff:ff:ff:ff', src=ASKER)/ARP(op=1, hwsrc=ASKER, psrc='192.0.2.55', hwdst='00:00:00:00:00:00', pdst='198.18.0.7')",
    expected: ["Ether(dst=ASKER, src=V4)/ARP(op=2, hwsrc=V4, psrc='198.18.0.7', hwdst=ASKER, pdst='192.0.2.55')"],
  },
  {
    title: "RFC 7757 §3.2: EAM /24 ↔ /72, 4→6: the IPv4 suffix follows the 72-bit prefix, the rest zero",
    ingress: "v4",
    input: "e4()/IP(src='198.18.1.77', dst='198.51.100.20')/UDP(sport=1000, dport=2000)/P",
    expected: ["o6(VMB6)/IPv6(src='2001:db8:ea:0:4d::', dst='2001:db8:1::50', hlim=63)/UDP(sport=1000, dport=2000)/P"],
  },
  {
    title: "RFC 7757 §3.2: EAM /24 ↔ /72, 6→4: the bits after the prefix are the IPv4 suffix, those past it ignored",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:ea:0:4e:ffff:1:2', dst=T6)/UDP(sport=2000, dport=1000)/P",
    expected: ["o4(GW4)/IP(src='198.18.1.78', dst='203.0.113.5', ttl=63)/UDP(sport=2000, dport=1000)/P"],
  },
];

const outputs = exactOutputCases(test, CASES, PRELUDE, table);

test.serial("tshark decodes every emitted frame of these cases without warnings", (t) => {
  t.is(outputs.length, CASES.reduce((n, c) => n + c.expected.length, 0));
  t.deepEqual(decodeWithTshark(outputs).problems, []);
});
