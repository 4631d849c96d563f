// Exact-output cases through the offline mode (pcap file in → pcap file out), one per rule of the
// data plane, each citing its RFC. Inputs and expected outputs are built by scapy, independently
// of our codec; outputs are compared byte for byte except the free offsets of `maskFree` (IPv4
// Identification and checksums that cover one), and tshark must decode every output cleanly.
import test from "ava";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { EXAMPLE_TABLE, exactOutputCases, SCAPY_PRELUDE, type ExactCase } from "./harness.js";

type Case = ExactCase;

// Inputs used by several expectations (ICMP errors quote them).
const PRELUDE = `${SCAPY_PRELUDE}
T6 = '2001:db8:64::cb00:7105'   # 203.0.113.5 under the RFC 6052 prefix 2001:db8:64::/96
U4 = bytes(IP(src='203.0.113.5', dst='198.51.100.20')/UDP(sport=4000, dport=5000)/Raw(b'x'*100))
U6 = bytes(IPv6(src=T6, dst='2001:db8:1::50')/UDP(sport=4000, dport=5000)/Raw(b'x'*100))
U6R = bytes(IPv6(src='2001:db8:1::50', dst=T6)/UDP(sport=5000, dport=4000)/Raw(b'x'*100))
U4R = bytes(IP(src='198.51.100.20', dst='203.0.113.5')/UDP(sport=5000, dport=4000)/Raw(b'x'*100))
BIG_DF_4 = IP(src='203.0.113.5', dst='198.51.100.20', flags='DF')/UDP(sport=1, dport=2)/Raw(b'b'*1462)
TTL1_4 = IP(src='203.0.113.5', dst='198.51.100.20', ttl=1)/UDP(sport=1, dport=2)/P
TTL1_ROUTE4 = IP(src='192.0.2.1', dst='203.0.113.9', ttl=1)/UDP(sport=1, dport=2)/P
HL1_6 = IPv6(src='2001:db8:1::50', dst=T6, hlim=1)/UDP(sport=1, dport=2)/P
HL1_ROUTE6 = IPv6(src='2001:db8:1::10', dst='2001:db8:2::9', hlim=1)/UDP(sport=1, dport=2)/P
NOROUTE6 = IPv6(src='2001:db8:1::10', dst='2001:db8:ff::1')/UDP(sport=1, dport=2)/P
TUN_BIG = IP(src='203.0.113.5', dst='192.0.2.1', flags='DF')/UDP(sport=1, dport=2)/Raw(b'c'*1452)
TUN_TTL1 = IP(src='203.0.113.5', dst='192.0.2.1', ttl=1)/UDP(sport=1, dport=2)/P
RO_BIG = IPv6(src='2001:db8:2::9', dst='2001:db8:3::c000:264')/UDP(sport=1, dport=2)/Raw(b'd'*1442)
ERR4_INNER = IP(src='198.51.100.20', dst='203.0.113.5', ttl=60)/UDP(sport=5000, dport=4000)/P
ERR6_INNER = IPv6(src=T6, dst='2001:db8:1::50', hlim=60)/UDP(sport=4000, dport=5000)/P
RELAY_INNER = IP(src='203.0.113.5', dst='192.0.2.1', ttl=63, flags='DF')/UDP(sport=1, dport=2)/Raw(b'r'*1300)
RELAY_OUTER = bytes(IPv6(src='2001:db8:1::fe', dst='2001:db8:1::c000:201', nh=4, hlim=64)/RELAY_INNER)
PING4 = IP(src='192.0.2.1', dst='192.0.2.254')/ICMP(id=7, seq=1)/P
`;

const CASES: Case[] = [
  // ---- tunnels: decapsulation from known peers
  {
    title: "RFC 2003 §3: IPv4-in-IPv4 from the home agent to our address is decapsulated and the inner packet routed (TTL − 1)",
    ingress: "v4",
    input: "e4(R1M)/IP(src='192.0.2.10', dst='192.0.2.254')/IP(src='192.0.2.1', dst='203.0.113.9')/UDP(sport=1, dport=2)/P",
    expected: ["o4(GW4)/IP(src='192.0.2.1', dst='203.0.113.9', ttl=63)/UDP(sport=1, dport=2)/P"],
  },
  {
    title: "RFC 4213 §3.6: IPv6-in-IPv4 from the VM's IPv4 care-of address with its home address inside is decapsulated and routed",
    ingress: "v4",
    input: "e4(VMB4)/IP(src='192.0.2.100', dst='192.0.2.254')/IPv6(src='2001:db8:1::50', dst='2001:db8:2::9')/UDP(sport=1, dport=2)/P",
    expected: ["o6(GW6)/IPv6(src='2001:db8:1::50', dst='2001:db8:2::9', hlim=63)/UDP(sport=1, dport=2)/P"],
  },
  {
    title: "RFC 4213 §3.6: IPv6-in-IPv4 from that peer with another inner source is dropped (ingress filter)",
    ingress: "v4",
    input: "e4(VMB4)/IP(src='192.0.2.100', dst='192.0.2.254')/IPv6(src='2001:db8:1::51', dst='2001:db8:2::9')/UDP(sport=1, dport=2)/P",
    expected: [],
  },
  {
    title: "RFC 2473 §3: IPv6-in-IPv6 from the Mobile IPv6 home agent to our address is decapsulated and routed",
    ingress: "v6",
    input: "e6(R2M)/IPv6(src='2001:db8:1::10', dst='2001:db8:1::fe')/IPv6(src='2001:db8:1::10', dst='2001:db8:2::9')/UDP(sport=1, dport=2)/P",
    expected: ["o6(GW6)/IPv6(src='2001:db8:1::10', dst='2001:db8:2::9', hlim=63)/UDP(sport=1, dport=2)/P"],
  },
  {
    title: "RFC 2473 §3: IPv4-in-IPv6 from the VM's IPv6 care-of address (reverse tunnel) is decapsulated and routed on the IPv4 side",
    ingress: "v6",
    input: "e6(COA6M)/IPv6(src='2001:db8:1::c000:201', dst='2001:db8:1::fe')/IP(src='192.0.2.1', dst='203.0.113.9')/UDP(sport=1, dport=2)/P",
    expected: ["o4(GW4)/IP(src='192.0.2.1', dst='203.0.113.9', ttl=63)/UDP(sport=1, dport=2)/P"],
  },
  {
    title: "RFC 2003 §7: IPv4-in-IPv4 from an unknown source is dropped silently",
    ingress: "v4",
    input: "e4()/IP(src='192.0.2.99', dst='192.0.2.254')/IP(src='192.0.2.1', dst='203.0.113.9')/UDP(sport=1, dport=2)/P",
    expected: [],
  },
  // ---- re-encapsulation and route optimisation
  {
    title: "RFC 2003 + RFC 2473 §3, flow 3.1 j: IPv4-in-IPv4 from r1 for a pool address leaves as IPv4-in-IPv6 to the VM's care-of address",
    ingress: "v4",
    input: "e4(R1M)/IP(src='192.0.2.10', dst='198.51.100.10')/IP(src='203.0.113.5', dst='192.0.2.1')/UDP(sport=1000, dport=2000)/P",
    expected: ["o6(COA6M)/IPv6(src='2001:db8:1::fe', dst='2001:db8:1::c000:201', nh=4, hlim=64)/IP(src='203.0.113.5', dst='192.0.2.1', ttl=63)/UDP(sport=1000, dport=2000)/P"],
  },
  {
    title: "RFC 2473 + RFC 4213 §3, flow 3.2 i: IPv6-in-IPv6 from r2 for the VM's IPv6 care-of address leaves as IPv6-in-IPv4",
    ingress: "v6",
    input: "e6(R2M)/IPv6(src='2001:db8:1::10', dst='2001:db8:3::c000:264')/IPv6(src='2001:db8:2::9', dst='2001:db8:1::50')/UDP(sport=1, dport=2)/P",
    expected: ["o4(VMB4)/IP(src='192.0.2.254', dst='192.0.2.100', proto=41, ttl=64)/IPv6(src='2001:db8:2::9', dst='2001:db8:1::50', hlim=63)/UDP(sport=1, dport=2)/P"],
  },
  {
    title: "RFC 4213 §3, flow 3.2 m: plain IPv6 to the VM's IPv6 care-of address is encapsulated IPv6-in-IPv4 (route optimisation)",
    ingress: "v6",
    input: "e6()/IPv6(src='2001:db8:2::9', dst='2001:db8:3::c000:264')/TCP(sport=1, dport=2, flags='S', seq=5)",
    expected: ["o4(VMB4)/IP(src='192.0.2.254', dst='192.0.2.100', proto=41, ttl=64)/IPv6(src='2001:db8:2::9', dst='2001:db8:3::c000:264', hlim=63)/TCP(sport=1, dport=2, flags='S', seq=5)"],
  },
  {
    title: "RFC 2473 §7.2 (a): a DF inner packet too big for the 4in6 tunnel gets Fragmentation Needed with the tunnel MTU",
    ingress: "v4",
    input: "e4(R1M)/IP(src='192.0.2.10', dst='198.51.100.10')/TUN_BIG",
    expected: ["o4(GW4)/IP(src='192.0.2.254', dst='203.0.113.5', tos=0xc0, ttl=64)/ICMP(type=3, code=4, nexthopmtu=1460)/Raw(bytes(TUN_BIG)[:548])"],
  },
  {
    title: "RFC 4213 §3.2: an IPv6 packet too big for the 6in4 tunnel gets Packet Too Big with the tunnel MTU",
    ingress: "v6",
    input: "e6()/RO_BIG",
    expected: ["o6(GW6)/IPv6(src='2001:db8:1::fe', dst='2001:db8:2::9', hlim=64)/ICMPv6PacketTooBig(mtu=1480)/Raw(bytes(RO_BIG)[:1232])"],
  },
  {
    title: "RFC 2003 §3.1: an inner packet whose TTL is spent is not re-encapsulated; Time Exceeded goes to its source",
    ingress: "v4",
    input: "e4(R1M)/IP(src='192.0.2.10', dst='198.51.100.10')/TUN_TTL1",
    expected: ["o4(GW4)/IP(src='192.0.2.254', dst='203.0.113.5', tos=0xc0, ttl=64)/ICMP(type=11, code=0)/Raw(bytes(TUN_TTL1))"],
  },
  {
    title: "RFC 2473 §8.2: Packet Too Big about our 4in6 tunnel packet is relayed as Fragmentation Needed (MTU − 40) to the inner source",
    ingress: "v6",
    input: "e6()/IPv6(src='2001:db8:1::1', dst='2001:db8:1::fe')/ICMPv6PacketTooBig(mtu=1280)/Raw(RELAY_OUTER[:1232])",
    expected: ["o4(GW4)/IP(src='192.0.2.254', dst='203.0.113.5', tos=0xc0, ttl=64)/ICMP(type=3, code=4, nexthopmtu=1240)/Raw(bytes(RELAY_INNER)[:548])"],
  },
  // ---- translation IPv4 → IPv6
  {
    title: "RFC 7915 §4.1, §4.5 with RFC 7757 + RFC 6052: UDP to an EAM IPv4 address becomes IPv6 (source under the prefix)",
    ingress: "v4",
    input: "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/UDP(sport=1000, dport=2000)/P",
    expected: ["o6(VMB6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=63)/UDP(sport=1000, dport=2000)/P"],
  },
  {
    title: "RFC 7915 §4.1, §4.5: TCP to an EAM IPv4 address becomes IPv6 with the checksum updated",
    ingress: "v4",
    input: "e4()/IP(src='203.0.113.5', dst='198.51.100.20', tos=0x28)/TCP(sport=1000, dport=80, flags='PA', seq=1, ack=2)/P",
    expected: ["o6(VMB6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=63, tc=0x28)/TCP(sport=1000, dport=80, flags='PA', seq=1, ack=2)/P"],
  },
  {
    title: "RFC 7915 §4.2: ICMPv4 Echo Request becomes ICMPv6 Echo Request",
    ingress: "v4",
    input: "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/ICMP(type=8, id=9, seq=3)/P",
    expected: ["o6(VMB6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=63)/ICMPv6EchoRequest(id=9, seq=3, data=P)"],
  },
  {
    title: "RFC 7915 §4.2, §4.3: ICMPv4 Port Unreachable with its quoted packet becomes ICMPv6 Port Unreachable quoting the translated packet",
    ingress: "v4",
    input: "e4()/IP(src='203.0.113.5', dst='198.51.100.20')/ICMP(type=3, code=3)/ERR4_INNER",
    expected: ["o6(VMB6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=63)/ICMPv6DestUnreach(code=4)/IPv6(src='2001:db8:1::50', dst=T6, hlim=60)/UDP(sport=5000, dport=4000)/P"],
  },
  {
    title: "RFC 7915 §4.1: a first IPv4 fragment (MF, offset 0) gets an IPv6 Fragment header, no reassembly",
    ingress: "v4",
    input: "e4()/IP(src='203.0.113.5', dst='198.51.100.20', id=0x1234, flags='MF', proto=17)/Raw(U4[20:68])",
    expected: ["o6(VMB6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=63, nh=44)/IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0x1234)/Raw(U6[40:88])"],
  },
  {
    title: "RFC 7915 §4.1: a last IPv4 fragment keeps its offset in the IPv6 Fragment header",
    ingress: "v4",
    input: "e4()/IP(src='203.0.113.5', dst='198.51.100.20', id=0x1234, frag=6, proto=17)/Raw(U4[68:])",
    expected: ["o6(VMB6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=63, nh=44)/IPv6ExtHdrFragment(nh=17, offset=6, m=0, id=0x1234)/Raw(U6[88:])"],
  },
  {
    title: "RFC 7915 §4.1: DF set and too big for the IPv6 MTU → ICMPv4 Fragmentation Needed with MTU − 20 from the translator",
    ingress: "v4",
    input: "e4()/BIG_DF_4",
    expected: ["o4(GW4)/IP(src='192.0.2.254', dst='203.0.113.5', tos=0xc0, ttl=64)/ICMP(type=3, code=4, nexthopmtu=1480)/Raw(bytes(BIG_DF_4)[:548])"],
  },
  {
    title: "RFC 7915 §4.1: TTL 1 is not translated; ICMPv4 Time Exceeded goes back",
    ingress: "v4",
    input: "e4()/TTL1_4",
    expected: ["o4(GW4)/IP(src='192.0.2.254', dst='203.0.113.5', tos=0xc0, ttl=64)/ICMP(type=11, code=0)/Raw(bytes(TTL1_4))"],
  },
  // ---- translation IPv6 → IPv4
  {
    title: "RFC 7915 §5.1, §5.5: UDP from an EAM IPv6 address to the RFC 6052 prefix becomes IPv4 (DF clear, ≤ 1260 bytes)",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst=T6)/UDP(sport=2000, dport=1000)/P",
    expected: ["o4(GW4)/IP(src='198.51.100.20', dst='203.0.113.5', ttl=63)/UDP(sport=2000, dport=1000)/P"],
  },
  {
    title: "RFC 7915 §5.1, §5.5: TCP becomes IPv4 with the traffic class as TOS",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst=T6, tc=0x48)/TCP(sport=80, dport=1000, flags='SA', seq=9, ack=2)",
    expected: ["o4(GW4)/IP(src='198.51.100.20', dst='203.0.113.5', ttl=63, tos=0x48)/TCP(sport=80, dport=1000, flags='SA', seq=9, ack=2)"],
  },
  {
    title: "RFC 7915 §5.2: ICMPv6 Echo Reply becomes ICMPv4 Echo Reply",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst=T6)/ICMPv6EchoReply(id=9, seq=3, data=P)",
    expected: ["o4(GW4)/IP(src='198.51.100.20', dst='203.0.113.5', ttl=63)/ICMP(type=0, id=9, seq=3)/P"],
  },
  {
    title: "RFC 7915 §5.2, §5.3: ICMPv6 Packet Too Big with its quoted packet becomes Fragmentation Needed with MTU − 20",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst=T6)/ICMPv6PacketTooBig(mtu=1400)/ERR6_INNER",
    expected: ["o4(GW4)/IP(src='198.51.100.20', dst='203.0.113.5', ttl=63)/ICMP(type=3, code=4, nexthopmtu=1380)/IP(src='203.0.113.5', dst='198.51.100.20', ttl=60)/UDP(sport=4000, dport=5000)/P"],
  },
  {
    title: "RFC 6791 §4 + RFC 7915 §5.2: an ICMPv6 error from an unmapped router gets the configured IPv4 source",
    ingress: "v6",
    input: "e6()/IPv6(src='2001:db8:2::1', dst=T6)/ICMPv6TimeExceeded(code=0)/ERR6_INNER",
    expected: ["o4(GW4)/IP(src='198.51.100.254', dst='203.0.113.5', ttl=63)/ICMP(type=11, code=0)/IP(src='203.0.113.5', dst='198.51.100.20', ttl=60)/UDP(sport=4000, dport=5000)/P"],
  },
  {
    title: "RFC 7757 §3.3: an explicit mapping inside the RFC 6052 prefix wins over the prefix (2001:db8:64::cb00:7106 → 203.0.113.50, not .6)",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst='2001:db8:64::cb00:7106')/UDP(sport=2000, dport=1000)/P",
    expected: ["o4(GW4)/IP(src='198.51.100.20', dst='203.0.113.50', ttl=63)/UDP(sport=2000, dport=1000)/P"],
  },
  {
    title: "RFC 7915 §5.1.1: an IPv6 first fragment becomes an IPv4 fragment (MF, offset 0, low 16 bits of the ID)",
    ingress: "v6",
    input: "e6(VMB6)/IPv6(src='2001:db8:1::50', dst=T6, nh=44)/IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0xabcd1234)/Raw(U6R[40:88])",
    expected: ["o4(GW4)/IP(src='198.51.100.20', dst='203.0.113.5', ttl=63, flags='MF', frag=0, proto=17)/Raw(U4R[20:68])"],
  },
  {
    title: "RFC 7915 §5.1: hop limit 1 is not translated; ICMPv6 Time Exceeded goes back",
    ingress: "v6",
    input: "e6(VMB6)/HL1_6",
    expected: ["o6(VMB6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=64)/ICMPv6TimeExceeded(code=0)/Raw(bytes(HL1_6))"],
  },
  // ---- ARP and NDP
  {
    title: "RFC 826: an ARP request for a served pool address is answered with our MAC (proxy ARP)",
    ingress: "v4",
    input: "Ether(dst='ff:ff:ff:ff:ff:ff', src=R1M)/ARP(op=1, hwsrc=R1M, psrc='192.0.2.10', pdst='198.51.100.10')",
    expected: ["Ether(dst=R1M, src=V4)/ARP(op=2, hwsrc=V4, psrc='198.51.100.10', hwdst=R1M, pdst='192.0.2.10')"],
  },
  {
    title: "RFC 826: an ARP request for our own address is answered",
    ingress: "v4",
    input: "Ether(dst='ff:ff:ff:ff:ff:ff', src=GW4)/ARP(op=1, hwsrc=GW4, psrc='192.0.2.1', pdst='192.0.2.254')",
    expected: ["Ether(dst=GW4, src=V4)/ARP(op=2, hwsrc=V4, psrc='192.0.2.254', hwdst=GW4, pdst='192.0.2.1')"],
  },
  {
    title: "RFC 826: an ARP request for someone else's address is not answered",
    ingress: "v4",
    input: "Ether(dst='ff:ff:ff:ff:ff:ff', src=GW4)/ARP(op=1, hwsrc=GW4, psrc='192.0.2.1', pdst='192.0.2.77')",
    expected: [],
  },
  {
    title: "RFC 4861 §7.2.4: a Neighbor Solicitation for our address gets a solicited NA with R, S and O",
    ingress: "v6",
    input: "Ether(dst='33:33:ff:00:00:fe', src=R2M)/IPv6(src='2001:db8:1::10', dst='ff02::1:ff00:fe', hlim=255)/ICMPv6ND_NS(tgt='2001:db8:1::fe')/ICMPv6NDOptSrcLLAddr(lladdr=R2M)",
    expected: ["Ether(dst=R2M, src=V6)/IPv6(src='2001:db8:1::fe', dst='2001:db8:1::10', hlim=255)/ICMPv6ND_NA(R=1, S=1, O=1, tgt='2001:db8:1::fe')/ICMPv6NDOptDstLLAddr(lladdr=V6)"],
  },
  {
    title: "RFC 4861 §7.2.8: a Neighbor Solicitation for an address under the translation prefix gets a proxy NA (O clear)",
    ingress: "v6",
    input: "Ether(dst='33:33:ff:00:71:05', src=VMB6)/IPv6(src='2001:db8:1::50', dst='ff02::1:ff00:7105', hlim=255)/ICMPv6ND_NS(tgt=T6)/ICMPv6NDOptSrcLLAddr(lladdr=VMB6)",
    expected: ["Ether(dst=VMB6, src=V6)/IPv6(src=T6, dst='2001:db8:1::50', hlim=255)/ICMPv6ND_NA(R=1, S=1, O=0, tgt=T6)/ICMPv6NDOptDstLLAddr(lladdr=V6)"],
  },
  {
    title: "RFC 4861 §7.2.4: a duplicate address detection probe for our address is answered to all-nodes, S clear",
    ingress: "v6",
    input: "Ether(dst='33:33:ff:00:00:fe', src=R2M)/IPv6(src='::', dst='ff02::1:ff00:fe', hlim=255)/ICMPv6ND_NS(tgt='2001:db8:1::fe')",
    expected: ["Ether(dst='33:33:00:00:00:01', src=V6)/IPv6(src='2001:db8:1::fe', dst='ff02::1', hlim=255)/ICMPv6ND_NA(R=1, S=0, O=1, tgt='2001:db8:1::fe')/ICMPv6NDOptDstLLAddr(lladdr=V6)"],
  },
  // ---- routing
  {
    title: "RFC 1812 §5.2.4, §5.3.1: IPv4 is routed to the gateway with TTL − 1 and the checksum updated",
    ingress: "v4",
    input: "e4()/IP(src='192.0.2.1', dst='203.0.113.9', tos=0x10)/UDP(sport=1, dport=2)/P",
    expected: ["o4(GW4)/IP(src='192.0.2.1', dst='203.0.113.9', ttl=63, tos=0x10)/UDP(sport=1, dport=2)/P"],
  },
  {
    title: "RFC 1812 §5.3.1: IPv4 with TTL 1 gets Time Exceeded from our address",
    ingress: "v4",
    input: "e4()/TTL1_ROUTE4",
    expected: ["o4(GW4)/IP(src='192.0.2.254', dst='192.0.2.1', tos=0xc0, ttl=64)/ICMP(type=11, code=0)/Raw(bytes(TTL1_ROUTE4))"],
  },
  {
    title: "RFC 8200 §3: IPv6 is routed to the gateway with hop limit − 1",
    ingress: "v6",
    input: "e6(R2M)/IPv6(src='2001:db8:1::10', dst='2001:db8:2::9')/UDP(sport=1, dport=2)/P",
    expected: ["o6(GW6)/IPv6(src='2001:db8:1::10', dst='2001:db8:2::9', hlim=63)/UDP(sport=1, dport=2)/P"],
  },
  {
    title: "RFC 4443 §3.3: IPv6 with hop limit 1 gets Time Exceeded from our address",
    ingress: "v6",
    input: "e6(R2M)/HL1_ROUTE6",
    expected: ["o6(R2M)/IPv6(src='2001:db8:1::fe', dst='2001:db8:1::10', hlim=64)/ICMPv6TimeExceeded(code=0)/Raw(bytes(HL1_ROUTE6))"],
  },
  {
    title: "RFC 4443 §3.1: IPv6 without a route gets Destination Unreachable, no route",
    ingress: "v6",
    input: "e6(R2M)/NOROUTE6",
    expected: ["o6(R2M)/IPv6(src='2001:db8:1::fe', dst='2001:db8:1::10', hlim=64)/ICMPv6DestUnreach(code=0)/Raw(bytes(NOROUTE6))"],
  },
  {
    title: "RFC 1122 §3.2.2.6: an Echo Request to our address is answered",
    ingress: "v4",
    input: "e4()/PING4",
    expected: ["o4(GW4)/IP(src='192.0.2.254', dst='192.0.2.1', ttl=64)/ICMP(type=0, id=7, seq=1)/P"],
  },
];

const outputs = exactOutputCases(test, CASES, PRELUDE, () => EXAMPLE_TABLE);

test.serial("tshark decodes every emitted frame without warnings", (t) => {
  t.true(outputs.length > 30);
  const r = decodeWithTshark(outputs);
  t.deepEqual(r.problems, []);
});
