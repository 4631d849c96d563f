import test from "ava";
import { ARP_OPERATION, buildArpReplyFrame, buildArpRequestFrame, parseArp } from "../../../dataplane/packet/arp.js";
import { pseudoHeaderSum6At } from "../../../dataplane/packet/checksum.js";
import {
  BROADCAST_MAC, ETHERTYPE, buildEthernetFrame, formatMac, ipv6MulticastMac, isMulticastMac, newEthernetHeader, parseEthernet, parseMac,
} from "../../../dataplane/packet/ethernet.js";
import { ICMP6_TYPE, verifyIcmp6Checksum } from "../../../dataplane/packet/icmp6.js";
import { parseIPv6 } from "../../../dataplane/packet/ipv6.js";
import {
  ND_HOP_LIMIT, buildNeighborAdvertisement, buildNeighborSolicitation, buildRouterAdvertisement, buildRouterSolicitation, parseNd, solicitedNodeAddress,
} from "../../../dataplane/packet/nd.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import { MAC_A, MAC_B, a4, a6, hex, u32 } from "./fixtures.js";

const LINK_LOCAL_A = a6("fe80::a");
const TARGET = a6("2001:db8::1:2:3");

test("Ethernet round trip, untagged and with one 802.1Q tag", (t) => {
  const payload = buildUdp4({ src: a4("192.0.2.1"), dst: a4("192.0.2.2"), srcPort: 1, dstPort: 2 }, new Uint8Array(4));
  const plain = buildEthernetFrame(MAC_B, MAC_A, ETHERTYPE.IPV4, payload);
  const h = parseEthernet(plain, 0, newEthernetHeader())!;
  t.is(h.vlanId, -1);
  t.is(h.etherType, ETHERTYPE.IPV4);
  t.is(h.payloadOffset, 14);
  t.is(formatMac(plain, h.dstOffset), "02:00:00:00:00:0b");
  t.is(formatMac(plain, h.srcOffset), "02:00:00:00:00:0a");
  const tagged = buildEthernetFrame(MAC_B, MAC_A, ETHERTYPE.IPV4, payload, { vlanId: 100, priority: 5, dropEligible: true });
  const v = parseEthernet(tagged)!;
  t.is(v.vlanId, 100);
  t.is(v.priority, 5);
  t.true(v.dropEligible);
  t.is(v.etherType, ETHERTYPE.IPV4);
  t.is(v.payloadOffset, 18);
  t.is(parseEthernet(plain.subarray(0, 13)), undefined, "short frame");
  t.is(parseEthernet(tagged.subarray(0, 17)), undefined, "short tagged frame");
});

test("MAC helpers", (t) => {
  t.deepEqual(parseMac("02:00:00:00:00:0a"), MAC_A);
  t.deepEqual(parseMac("02-00-00-00-00-0B"), MAC_B);
  t.throws(() => parseMac("02:00:00:00:00"), { instanceOf: RangeError });
  t.true(isMulticastMac(BROADCAST_MAC));
  t.false(isMulticastMac(MAC_A));
  t.is(formatMac(ipv6MulticastMac(a6("ff02::1:ff01:203"))), "33:33:ff:01:02:03");
});

test("ARP request and reply round trip, and the request is byte-identical to scapy's", (t) => {
  const req = buildArpRequestFrame(MAC_A, a4("192.0.2.1"), u32("192.0.2.254"));
  const [theirs] = scapyBuild([`Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:0a")/ARP(op=1, hwsrc="02:00:00:00:00:0a", psrc="192.0.2.1", hwdst="00:00:00:00:00:00", pdst="192.0.2.254")`]);
  t.is(hex(req), hex(theirs));
  const a = parseArp(req, 14)!;
  t.is(a.operation, ARP_OPERATION.REQUEST);
  t.is(a.senderIp, u32("192.0.2.1"));
  t.is(a.targetIp, u32("192.0.2.254"));
  t.is(formatMac(req, a.senderMacOffset), "02:00:00:00:00:0a");
  const rep = buildArpReplyFrame(MAC_B, a4("192.0.2.254"), MAC_A, a4("192.0.2.1"));
  const r = parseArp(rep, 14)!;
  t.is(r.operation, ARP_OPERATION.REPLY);
  t.is(formatMac(rep, r.targetMacOffset), "02:00:00:00:00:0a");
  t.is(parseArp(req.subarray(0, 41), 14), undefined, "short");
  const ipx = req.slice(); ipx[16] = 0x81;
  t.is(parseArp(ipx, 14), undefined, "another protocol type");
});

test("Neighbor Solicitation and Advertisement are byte-identical to scapy's and round trip", (t) => {
  const ns = buildNeighborSolicitation({ src: LINK_LOCAL_A, target: TARGET, sourceLinkLayer: MAC_A });
  const na = buildNeighborAdvertisement({ src: TARGET, dst: LINK_LOCAL_A, target: TARGET, solicited: true, override: true, targetLinkLayer: MAC_B });
  const [sns, sna] = scapyBuild([
    `IPv6(src="fe80::a", dst="ff02::1:ff02:3", hlim=255)/ICMPv6ND_NS(tgt="2001:db8::1:2:3")/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:0a")`,
    `IPv6(src="2001:db8::1:2:3", dst="fe80::a", hlim=255)/ICMPv6ND_NA(R=0, S=1, O=1, tgt="2001:db8::1:2:3")/ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:0b")`,
  ]);
  t.is(hex(ns), hex(sns));
  t.is(hex(na), hex(sna));
  t.deepEqual(solicitedNodeAddress(TARGET), a6("ff02::1:ff02:3"));
  const ip = parseIPv6(ns)!;
  t.is(ip.hopLimit, ND_HOP_LIMIT);
  const m = parseNd(ns, 40, ip.payloadLength)!;
  t.is(m.type, ICMP6_TYPE.NEIGHBOR_SOLICITATION);
  t.deepEqual(ns.subarray(m.targetOffset, m.targetOffset + 16), TARGET);
  t.is(formatMac(ns, m.sourceLinkLayerOffset), "02:00:00:00:00:0a");
  t.is(m.targetLinkLayerOffset, -1);
  const n = parseNd(na, 40)!;
  t.false(n.router);
  t.true(n.solicited);
  t.true(n.override);
  t.is(formatMac(na, n.targetLinkLayerOffset), "02:00:00:00:00:0b");
});

test("Router Solicitation and Advertisement round trip with prefix and MTU options", (t) => {
  const rs = buildRouterSolicitation({ src: LINK_LOCAL_A, sourceLinkLayer: MAC_A });
  const ra = buildRouterAdvertisement({
    src: a6("fe80::1"), curHopLimit: 64, managed: true, routerLifetime: 1800, reachableTime: 30000, retransTimer: 1000,
    sourceLinkLayer: MAC_B, mtu: 1480,
    prefixes: [{ prefix: a6("2001:db8:5::"), prefixLength: 64, validLifetime: 86400, preferredLifetime: 14400 }],
  });
  const s = parseNd(rs, 40)!;
  t.is(s.type, ICMP6_TYPE.ROUTER_SOLICITATION);
  t.is(formatMac(rs, s.sourceLinkLayerOffset), "02:00:00:00:00:0a");
  const m = parseNd(ra, 40)!;
  t.is(m.type, ICMP6_TYPE.ROUTER_ADVERTISEMENT);
  t.is(m.curHopLimit, 64);
  t.true(m.managed);
  t.false(m.other);
  t.is(m.routerLifetime, 1800);
  t.is(m.reachableTime, 30000);
  t.is(m.retransTimer, 1000);
  t.is(m.mtu, 1480);
  t.is(m.prefixes.length, 1);
  t.is(m.prefixes[0].prefixLength, 64);
  t.true(m.prefixes[0].onLink);
  t.true(m.prefixes[0].autonomous);
  t.is(m.prefixes[0].validLifetime, 86400);
  t.is(m.prefixes[0].preferredLifetime, 14400);
  t.deepEqual(ra.subarray(m.prefixes[0].prefixOffset, m.prefixes[0].prefixOffset + 16), a6("2001:db8:5::"));
  t.true(verifyIcmp6Checksum(ra, 40, ra.length - 40, pseudoHeaderSum6At(ra, 0, 58, ra.length - 40)));
});

test("ND malformed inputs parse to undefined", (t) => {
  const ns = buildNeighborSolicitation({ src: LINK_LOCAL_A, target: TARGET, sourceLinkLayer: MAC_A });
  t.is(parseNd(ns, 40, 23), undefined, "shorter than the fixed part");
  const zero = ns.slice(); zero[40 + 24 + 1] = 0;
  t.is(parseNd(zero, 40), undefined, "option length 0 (RFC 4861 §4.6)");
  const long = ns.slice(); long[40 + 24 + 1] = 2;
  t.is(parseNd(long, 40), undefined, "option past the end");
  const echo = ns.slice(); echo[40] = 128;
  t.is(parseNd(echo, 40), undefined, "not an ND message");
});

test("scapy-built RA parses to the right fields", (t) => {
  const [ra] = scapyBuild([
    `IPv6(src="fe80::1", dst="ff02::1", hlim=255)/ICMPv6ND_RA(chlim=32, M=0, O=1, routerlifetime=600, reachabletime=5, retranstimer=6)/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:0b")/ICMPv6NDOptMTU(mtu=1400)/ICMPv6NDOptPrefixInfo(prefix="2001:db8:7::", prefixlen=64, L=1, A=0, validlifetime=100, preferredlifetime=50)`,
  ]);
  const m = parseNd(ra, 40)!;
  t.is(m.curHopLimit, 32);
  t.false(m.managed);
  t.true(m.other);
  t.is(m.routerLifetime, 600);
  t.is(m.reachableTime, 5);
  t.is(m.retransTimer, 6);
  t.is(m.mtu, 1400);
  t.is(formatMac(ra, m.sourceLinkLayerOffset), "02:00:00:00:00:0b");
  t.is(m.prefixes[0].validLifetime, 100);
  t.false(m.prefixes[0].autonomous);
  t.deepEqual(ra.subarray(m.prefixes[0].prefixOffset, m.prefixes[0].prefixOffset + 16), a6("2001:db8:7::"));
});

test("tshark decodes our Ethernet, VLAN, ARP and ND frames without complaint", (t) => {
  const v6 = (p: Uint8Array, dst: Uint8Array) => buildEthernetFrame(dst, MAC_A, ETHERTYPE.IPV6, p);
  const ns = buildNeighborSolicitation({ src: LINK_LOCAL_A, target: TARGET, sourceLinkLayer: MAC_A });
  const frames = [
    buildArpRequestFrame(MAC_A, a4("192.0.2.1"), a4("192.0.2.254")),
    buildArpReplyFrame(MAC_B, a4("192.0.2.254"), MAC_A, a4("192.0.2.1")),
    buildEthernetFrame(MAC_B, MAC_A, ETHERTYPE.IPV4, buildUdp4({ src: a4("192.0.2.1"), dst: a4("192.0.2.2"), srcPort: 1, dstPort: 2 }, new Uint8Array(30)), { vlanId: 42 }),
    v6(ns, ipv6MulticastMac(ns, 24)),
    v6(buildNeighborAdvertisement({ src: TARGET, dst: LINK_LOCAL_A, target: TARGET, router: true, solicited: true, targetLinkLayer: MAC_B }), MAC_B),
    v6(buildRouterSolicitation({ src: LINK_LOCAL_A, sourceLinkLayer: MAC_A }), ipv6MulticastMac(a6("ff02::2"))),
    v6(buildRouterAdvertisement({ src: a6("fe80::1"), routerLifetime: 1800, sourceLinkLayer: MAC_A, mtu: 1500, prefixes: [{ prefix: a6("2001:db8:5::"), prefixLength: 64, validLifetime: 600, preferredLifetime: 300 }] }), ipv6MulticastMac(a6("ff02::1"))),
  ];
  const r = decodeWithTshark(frames);
  t.deepEqual(r.problems, []);
  const protos = frameProtocols(r);
  t.regex(protos[0], /^eth:ethertype:arp$/);
  t.regex(protos[2], /^eth:ethertype:vlan:ethertype:ip:udp/);
  t.regex(protos[3], /icmpv6$/);
  const vlan = r.packets[2]._source.layers.vlan as Record<string, unknown>;
  t.is(vlan["vlan.id"], "42");
  const icmpv6 = r.packets[6]._source.layers.icmpv6 as Record<string, unknown>;
  t.is(icmpv6["icmpv6.checksum.status"], "1");
});
