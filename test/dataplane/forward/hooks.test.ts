// The forwarder's control-plane hooks: `intercept` (local delivery), `inject` (locally made
// packets through the same decisions), `setProxied` (proxy ARP/NDP for a home agent's bindings),
// `announce` (gratuitous ARP / unsolicited NA) and promiscuous ports. Frames are built with our
// codec; what the hooks emit is also decoded by tshark.
import test from "ava";
import { Forwarder, ForwarderConfigError, parseForwarderConfig, type ForwarderConfig, type Intercept } from "../../../dataplane/forward/index.js";
import { ARP_OPERATION, buildArp, parseArp } from "../../../dataplane/packet/arp.js";
import { BROADCAST_MAC, buildEthernetFrame, ETHERTYPE, formatMac, ipv6MulticastMac, parseMac } from "../../../dataplane/packet/ethernet.js";
import { buildIcmp4Echo, ICMP4_TYPE } from "../../../dataplane/packet/icmp4.js";
import { ICMP6_TYPE } from "../../../dataplane/packet/icmp6.js";
import { buildIPv4Packet, IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { buildIPv6Packet } from "../../../dataplane/packet/ipv6.js";
import { ALL_NODES, buildNeighborSolicitation, parseNd, solicitedNodeAddress } from "../../../dataplane/packet/nd.js";
import { buildUdp4, buildUdp6 } from "../../../dataplane/packet/udp.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { decodeWithTshark, frameProtocols, type TsharkPacket } from "../../helpers/tshark.js";
import { collector, ip4, ip6, labRules, labWorker, MAC, udp4Frame, udp6Frame } from "./helpers.js";

interface Offer {
  packet: Uint8Array;
  ingressIf: number;
  decapsulated: boolean;
}

/** The lab worker and table, with an intercept that records what it is offered and answers `take`. */
function lab(take: (o: Offer) => boolean = () => true, config: ForwarderConfig = labWorker(), rules: Rule[] = labRules()): { f: Forwarder; offers: Offer[] } {
  const offers: Offer[] = [];
  const intercept: Intercept = (packet, ingressIf, decapsulated) => {
    const o = { packet: packet.slice(), ingressIf, decapsulated };
    offers.push(o);
    return take(o);
  };
  const f = new Forwarder(config, 0, { intercept });
  f.replaceRules({ revision: 1n, rules });
  return { f, offers };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const ipPayload = (frame: Uint8Array): Uint8Array => frame.subarray(14);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function udp4(src: string, dst: string, ttl = 64): Uint8Array {
  return buildUdp4({ src: ip4(src), dst: ip4(dst), srcPort: 1000, dstPort: 2000, ttl }, utf8("registration"));
}

function udp6(src: string, dst: string, hopLimit = 64): Uint8Array {
  return buildUdp6({ src: ip6(src), dst: ip6(dst), srcPort: 1000, dstPort: 2000, hopLimit }, utf8("binding"));
}

/** A 4in6 frame from the VM's care-of address (a known 4in6 peer, inner source 192.0.2.1) to the worker. */
function fromVmCareOf(inner: Uint8Array): Uint8Array {
  const outer = buildIPv6Packet({ src: ip6("2001:db8:1::c000:201"), dst: ip6("2001:db8:1::fe"), hopLimit: 64, nextHeader: IPPROTO.IPIP }, inner);
  return buildEthernetFrame(MAC.v6, parseMac("02:00:00:00:06:21"), ETHERTYPE.IPV6, outer);
}

/** Layers of one tshark packet, looked up by field name anywhere in the tree. */
function field(p: TsharkPacket, name: string): unknown {
  const walk = (o: unknown): unknown => {
    if (typeof o !== "object" || o === null) return undefined;
    for (const [k, v] of Object.entries(o)) {
      if (k === name) return v;
      const found = walk(v);
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return walk(p._source.layers);
}

// ---------------------------------------------------------------- intercept

test("intercept: a packet to an own address is offered first; taken → `deliver`, declined → the old `local` drop", (t) => {
  let take = true;
  const { f, offers } = lab(() => take);
  const c = collector();
  const sent4 = udp4Frame("192.0.2.1", "192.0.2.254");
  f.processFrame(1, sent4, c.emit, 0);
  f.processFrame(2, udp6Frame("2001:db8:1::99", "2001:db8:1::fe"), c.emit, 0);
  t.is(offers.length, 2);
  t.is(hex(offers[0].packet), hex(ipPayload(sent4)), "the IP packet, as received");
  t.is(offers[0].ingressIf, 1);
  t.false(offers[0].decapsulated);
  t.is(offers[1].ingressIf, 2);
  t.is(f.counters.actions.deliver, 2);
  t.is(f.counters.drops.local, 0);
  t.is(c.sent.length, 0);

  take = false;
  f.processFrame(1, sent4, c.emit, 0);
  f.processFrame(2, udp6Frame("2001:db8:1::99", "2001:db8:1::fe"), c.emit, 0);
  t.is(offers.length, 4);
  t.is(f.counters.actions.deliver, 2);
  t.is(f.counters.drops.local, 2);
  t.is(c.sent.length, 0);
});

test("intercept: a packet decapsulated from a known 4in6 peer is offered with decapsulated=true; declined, it is routed", (t) => {
  const { f, offers } = lab((o) => o.packet[19] === 254);
  const c = collector();
  f.processFrame(2, fromVmCareOf(udp4("192.0.2.1", "192.0.2.254")), c.emit, 0);
  t.is(offers.length, 1);
  t.true(offers[0].decapsulated);
  t.is(offers[0].ingressIf, 2);
  t.is(hex(offers[0].packet), hex(udp4("192.0.2.1", "192.0.2.254")), "the inner packet, TTL untouched");
  t.is(f.counters.actions.decap, 1);
  t.is(f.counters.actions.deliver, 1);
  t.is(c.sent.length, 0);

  f.processFrame(2, fromVmCareOf(udp4("192.0.2.1", "203.0.113.9")), c.emit, 0);
  t.is(offers.length, 2);
  t.true(offers[1].decapsulated);
  t.is(f.counters.actions.route, 1);
  t.is(c.sent.length, 1);
  t.is(formatMac(c.sent[0].frame, 0), "02:00:00:00:04:aa", "to the gateway of 203.0.113.0/24");
});

test("intercept: re-encapsulated, route-optimised, and translated (EAM and prefix) packets are not offered", (t) => {
  const { f, offers } = lab(() => true);
  const c = collector();
  // Flow 3.1 j: 4in4 from the home agent to the pool address → 4in6 to the care-of address.
  const toPool = buildIPv4Packet({ src: ip4("192.0.2.10"), dst: ip4("198.51.100.10"), ttl: 64, protocol: IPPROTO.IPIP }, udp4("203.0.113.5", "192.0.2.1"));
  f.processFrame(1, buildEthernetFrame(MAC.v4, parseMac("02:00:00:00:04:10"), ETHERTYPE.IPV4, toPool), c.emit, 0);
  // Flow 3.2 i: 6in6 from the home agent to the care-of address → 6in4.
  const toCareOf = buildIPv6Packet({ src: ip6("2001:db8:1::10"), dst: ip6("2001:db8:3::c000:264"), hopLimit: 64, nextHeader: IPPROTO.IPV6 }, udp6("2001:db8:2::9", "2001:db8:1::50"));
  f.processFrame(2, buildEthernetFrame(MAC.v6, parseMac("02:00:00:00:06:10"), ETHERTYPE.IPV6, toCareOf), c.emit, 0);
  // Flow 3.2 m: plain IPv6 to the care-of address → 6in4.
  f.processFrame(2, udp6Frame("2001:db8:2::9", "2001:db8:3::c000:264"), c.emit, 0);
  // EAM IPv4 of VM b → translated 4→6; an EAM IPv6 correspondent → translated 6→4.
  f.processFrame(1, udp4Frame("203.0.113.5", "198.51.100.20"), c.emit, 0);
  f.processFrame(2, udp6Frame("2001:db8:1::50", "2001:db8:64::cb00:7106"), c.emit, 0);
  // The RFC 6052 prefix (not an EAM) → translated 6→4.
  f.processFrame(2, udp6Frame("2001:db8:1::50", "2001:db8:64::cb00:7109"), c.emit, 0);
  t.deepEqual(offers, []);
  t.is(f.counters.actions["reencap-4in4-4in6"], 1);
  t.is(f.counters.actions["reencap-6in6-6in4"], 1);
  t.is(f.counters.actions["encap-6in4"], 1);
  t.is(f.counters.actions["translate-4to6"], 1);
  t.is(f.counters.actions["translate-6to4"], 2);
  t.is(f.counters.actions.deliver, 0);
  t.is(c.sent.length, 6);
});

test("intercept that throws: counted as internal-error, nothing sent, the next frames go through", (t) => {
  let calls = 0;
  const { f } = lab(() => {
    calls++;
    if (calls === 1) throw new Error("control plane bug");
    return false;
  });
  const c = collector();
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), c.emit, 0);
  t.is(f.counters.drops["internal-error"], 1);
  t.is(c.sent.length, 0);
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), c.emit, 0);
  f.processFrame(2, udp6Frame("2001:db8:1::99", "2001:db8:2::9"), c.emit, 0);
  t.is(calls, 3);
  t.is(f.counters.actions.route, 2);
  t.is(c.sent.length, 2);
  t.is(f.counters.drops["internal-error"], 1);
});

test("intercept may inject an answer at once; a packet it then declines still gets its own answer", (t) => {
  const injected = collector();
  let f!: Forwarder;
  const made = udp4("192.0.2.254", "203.0.113.9");
  ({ f } = lab(() => {
    f.inject(made, injected.emit);
    return false;
  }));
  const c = collector();
  // An echo request to us: intercept injects a packet, declines, and the echo is still answered.
  const echo = buildIcmp4Echo({ src: ip4("192.0.2.1"), dst: ip4("192.0.2.254"), ttl: 64 }, false, 7, 1, utf8("ping"));
  f.processFrame(1, buildEthernetFrame(MAC.v4, MAC.gw4, ETHERTYPE.IPV4, echo), c.emit, 0);
  t.is(injected.sent.length, 1);
  t.is(hex(ipPayload(injected.sent[0].frame)), hex(made), "injected: sent as made");
  t.is(c.sent.length, 1, "the echo reply goes to processFrame's emit");
  t.is(ipPayload(c.sent[0].frame)[20], ICMP4_TYPE.ECHO_REPLY);
  t.is(f.counters.actions.icmp, 1);
  t.is(f.counters.actions.route, 1);
  // And the next packet is again offered (inject left the state as it found it).
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), c.emit, 0);
  t.is(injected.sent.length, 2);
  t.is(c.sent.length, 2);
});

// ---------------------------------------------------------------- inject

test("inject: a VM's packet with an encapsulate rule leaves 4in6 toward the rule's remote, TTL as made, never offered to intercept", (t) => {
  const rules = [...labRules(), { key: "vm/a/encap", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::a", innerSource: "192.0.2.1" } as Rule];
  const { f, offers } = lab(() => true, labWorker(), rules);
  const c = collector();
  const made = udp4("192.0.2.1", "192.0.2.10");
  f.inject(made, c.emit, 5);
  t.deepEqual(offers, []);
  t.is(c.sent.length, 1);
  const out = c.sent[0];
  t.is(out.ifIndex, 2);
  t.is((out.frame[12] << 8) | out.frame[13], ETHERTYPE.IPV6);
  const ip = ipPayload(out.frame);
  t.is(ip[6], IPPROTO.IPIP);
  t.is(hex(ip.subarray(24, 40)), hex(ip6("2001:db8:2::a")));
  t.is(hex(ip.subarray(8, 24)), hex(ip6("2001:db8:1::fe")), "outer source: the egress interface's address");
  // RFC 2003 §3.1: encapsulating what we originate is not forwarding; the inner packet is unchanged.
  t.is(hex(ip.subarray(40)), hex(made));
  t.is(f.counters.actions["encap-4in6"], 1);
  t.is(f.counters.interfaces.get(2)!.txPackets, 1);
});

test("inject: a home agent's packet from its own address is wrapped by the rule for the home address (4in4); received, the same packet is routed", (t) => {
  // The home agent (192.0.2.254) tunnels to the care-of address 203.0.113.77 what goes to home address 192.0.2.1.
  const rules = [...labRules(), { key: "binding/192.0.2.1", kind: "encapsulate", tunnel: "4in4", remote: "203.0.113.77", innerDestination: "192.0.2.1/32" } as Rule];
  const { f, offers } = lab(() => false, labWorker(), rules);
  const c = collector();
  const reply = udp4("192.0.2.254", "192.0.2.1");
  f.inject(reply, c.emit, 0);
  t.is(c.sent.length, 1);
  const ip = ipPayload(c.sent[0].frame);
  t.is(c.sent[0].ifIndex, 1);
  t.is(ip[9], IPPROTO.IPIP);
  t.is(hex(ip.subarray(12, 16)), hex(ip4("192.0.2.254")));
  t.is(hex(ip.subarray(16, 20)), hex(ip4("203.0.113.77")));
  t.is(formatMac(c.sent[0].frame, 0), "02:00:00:00:04:aa", "via the gateway of 203.0.113.0/24");
  t.is(hex(ip.subarray(20)), hex(reply));
  t.is(f.counters.actions["encap-4in4"], 1);
  t.deepEqual(offers, []);
  // From the wire, our own source means our tunnel output coming back: routed, not wrapped.
  f.processFrame(1, buildEthernetFrame(MAC.v4, MAC.gw4, ETHERTYPE.IPV4, reply), c.emit, 0);
  t.is(f.counters.actions["encap-4in4"], 1);
  t.is(f.counters.actions.route, 1);
  t.is(offers.length, 1);
});

test("inject: without a rule the packet is routed as made (no TTL spent); to our own address it stops as `local`", (t) => {
  const { f, offers } = lab(() => true);
  const c = collector();
  f.inject(udp4("192.0.2.254", "203.0.113.9", 1), c.emit, 0);
  f.inject(udp6("2001:db8:1::fe", "2001:db8:2::9", 64), c.emit, 0);
  t.is(c.sent.length, 2);
  t.is(hex(ipPayload(c.sent[0].frame)), hex(udp4("192.0.2.254", "203.0.113.9", 1)), "TTL 1 leaves: originating is not forwarding");
  t.is(hex(ipPayload(c.sent[1].frame)), hex(udp6("2001:db8:1::fe", "2001:db8:2::9", 64)));
  t.is(f.counters.actions.route, 2);
  f.inject(udp4("192.0.2.1", "192.0.2.254"), c.emit, 0);
  t.is(f.counters.drops.local, 1);
  t.deepEqual(offers, [], "inject never calls intercept");
});

test("inject: malformed input is dropped and counted, nothing thrown or sent; ND messages are not taken for received ones", (t) => {
  const { f, offers } = lab(() => true);
  const c = collector();
  const badChecksum = udp4("192.0.2.254", "203.0.113.9");
  badChecksum[10] ^= 0xff;
  const truncated6 = udp6("2001:db8:1::fe", "2001:db8:2::9").subarray(0, 30);
  const inputs = [new Uint8Array(0), Uint8Array.of(0x45, 0, 0), badChecksum, truncated6, new Uint8Array(60), udp4("192.0.2.254", "203.0.113.9").subarray(0, 24)];
  for (const p of inputs) t.notThrows(() => f.inject(p, c.emit, 0));
  t.is(c.sent.length, 0);
  t.is(f.counters.drops["ipv4-header-checksum"], 1);
  t.is(f.counters.drops.malformed, inputs.length - 1);
  t.is(f.counters.drops["internal-error"], 0);
  // An NS for our address, injected: no NA goes out and nothing is learned on the first interface.
  const before = f.neighbours.stats().entries;
  const ns = buildNeighborSolicitation({ src: ip6("2001:db8:1::99"), target: ip6("2001:db8:1::fe"), sourceLinkLayer: parseMac("02:00:00:00:06:99") });
  f.inject(ns, c.emit, 0);
  t.is(c.sent.length, 0);
  t.is(f.neighbours.stats().entries, before);
  t.is(f.counters.actions.nd, 0);
  t.deepEqual(offers, []);
});

// ---------------------------------------------------------------- setProxied

function arpRequest(target: string): Uint8Array {
  const asker = parseMac("02:00:00:00:04:55");
  return buildEthernetFrame(BROADCAST_MAC, asker, ETHERTYPE.ARP, buildArp(ARP_OPERATION.REQUEST, asker, ip4("192.0.2.55"), new Uint8Array(6), ip4(target)));
}

function neighborSolicitation(target: string): Uint8Array {
  const asker = parseMac("02:00:00:00:06:55");
  const dst = solicitedNodeAddress(ip6(target));
  const ns = buildNeighborSolicitation({ src: ip6("2001:db8:1::55"), target: ip6(target), dst, sourceLinkLayer: asker });
  return buildEthernetFrame(ipv6MulticastMac(dst), asker, ETHERTYPE.IPV6, ns);
}

test("setProxied: ARP for a proxied address on its own connected subnet is answered with the port MAC, until it is turned off", (t) => {
  const { f } = lab();
  const c = collector();
  f.processFrame(1, arpRequest("192.0.2.1"), c.emit, 0);
  t.is(c.sent.length, 0, "192.0.2.1 is on the asking link: no proxy ARP before");
  f.setProxied("192.0.2.1", true);
  f.processFrame(1, arpRequest("192.0.2.1"), c.emit, 0);
  t.is(c.sent.length, 1);
  const reply = c.sent[0].frame;
  t.is(c.sent[0].ifIndex, 1);
  t.is(formatMac(reply, 0), "02:00:00:00:04:55");
  t.is(formatMac(reply, 6), formatMac(MAC.v4));
  const a = parseArp(reply, 14)!;
  t.is(a.operation, ARP_OPERATION.REPLY);
  t.is(formatMac(reply, a.senderMacOffset), formatMac(MAC.v4));
  t.is(hex(reply.subarray(a.senderIpOffset, a.senderIpOffset + 4)), hex(ip4("192.0.2.1")));
  // On every link: the IPv6 port answers as well.
  f.processFrame(2, arpRequest("192.0.2.1"), c.emit, 0);
  t.is(c.sent.length, 2);
  t.is(formatMac(c.sent[1].frame, 6), formatMac(MAC.v6));
  f.setProxied("192.0.2.1", false);
  f.processFrame(1, arpRequest("192.0.2.1"), c.emit, 0);
  t.is(c.sent.length, 2);
  t.is(f.counters.actions.arp, 2);
});

test("setProxied: an NS for a proxied IPv6 address is answered with an NA (port MAC, S set, O and R clear), until it is turned off", (t) => {
  const { f } = lab();
  const c = collector();
  f.processFrame(2, neighborSolicitation("2001:db8:1::2"), c.emit, 0);
  t.is(c.sent.length, 0);
  f.setProxied("2001:db8:1::2", true);
  f.processFrame(2, neighborSolicitation("2001:db8:1::2"), c.emit, 0);
  t.is(c.sent.length, 1);
  const frame = c.sent[0].frame;
  t.is(formatMac(frame, 0), "02:00:00:00:06:55");
  t.is(formatMac(frame, 6), formatMac(MAC.v6));
  const ip = ipPayload(frame);
  t.is(hex(ip.subarray(24, 40)), hex(ip6("2001:db8:1::55")));
  const nd = parseNd(ip, 40, ip.length - 40)!;
  t.is(nd.type, ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT);
  t.is(hex(ip.subarray(nd.targetOffset, nd.targetOffset + 16)), hex(ip6("2001:db8:1::2")));
  t.true(nd.solicited);
  // RFC 4861 §7.2.8: a proxy leaves O clear so the owner's own NA wins when it comes back.
  t.false(nd.override);
  // The address is a VM's, a host: R clear, as in announce().
  t.is(ip[44] & 0x80, 0);
  t.is(formatMac(ip, nd.targetLinkLayerOffset), formatMac(MAC.v6));
  const decoded = decodeWithTshark([frame]);
  t.deepEqual(decoded.problems, []);
  f.setProxied("2001:db8:1::2", false);
  f.processFrame(2, neighborSolicitation("2001:db8:1::2"), c.emit, 0);
  t.is(c.sent.length, 1);
  t.is(f.counters.drops["not-for-us"], 2);
});

test("setProxied rejects what is not an address", (t) => {
  const { f } = lab();
  t.throws(() => f.setProxied("192.0.2.300", true));
  t.throws(() => f.setProxied("2001:db8::g", true));
});

// ---------------------------------------------------------------- announce

test("announce: a gratuitous ARP request and an unsolicited NA (O set, to ff02::1) that tshark decodes without warnings", (t) => {
  const { f } = lab();
  const c = collector();
  const vmMac = parseMac("02:00:00:00:04:21");
  f.announce("v4", "192.0.2.1", c.emit, vmMac);
  f.announce("v6", "2001:db8:1::2", c.emit, vmMac);
  f.announce("v6", "2001:db8:1::3", c.emit);
  t.deepEqual(c.sent.map((s) => s.ifIndex), [1, 2, 2]);

  // Our own decode.
  const arpFrame = c.sent[0].frame;
  t.is(formatMac(arpFrame, 0), "ff:ff:ff:ff:ff:ff");
  t.is(formatMac(arpFrame, 6), formatMac(MAC.v4), "Ethernet source: the port, so switches keep the VM's MAC where it is");
  const a = parseArp(arpFrame, 14)!;
  t.is(a.operation, ARP_OPERATION.REQUEST);
  t.is(formatMac(arpFrame, a.senderMacOffset), formatMac(vmMac));
  t.is(a.senderIp, a.targetIp);
  t.is(hex(arpFrame.subarray(a.targetIpOffset, a.targetIpOffset + 4)), hex(ip4("192.0.2.1")));
  const na = ipPayload(c.sent[1].frame);
  t.is(formatMac(c.sent[1].frame, 0), "33:33:00:00:00:01");
  t.is(hex(na.subarray(24, 40)), hex(ALL_NODES));
  t.is(na[7], 255);
  const m = parseNd(na, 40, na.length - 40)!;
  t.true(m.override);
  t.false(m.solicited);
  t.is(formatMac(na, m.targetLinkLayerOffset), formatMac(vmMac));
  t.is(formatMac(ipPayload(c.sent[2].frame), parseNd(ipPayload(c.sent[2].frame), 40)!.targetLinkLayerOffset), formatMac(MAC.v6), "default: the port's MAC");

  // tshark's.
  const d = decodeWithTshark(c.sent.map((s) => s.frame));
  t.deepEqual(d.problems, []);
  t.deepEqual(frameProtocols(d), ["eth:ethertype:arp", "eth:ethertype:ipv6:icmpv6", "eth:ethertype:ipv6:icmpv6"]);
  const [arp, adv] = d.packets;
  t.is(field(arp, "eth.src"), formatMac(MAC.v4));
  t.is(field(arp, "arp.opcode"), "1");
  t.is(field(arp, "arp.src.hw_mac"), formatMac(vmMac));
  t.is(field(arp, "arp.src.proto_ipv4"), "192.0.2.1");
  t.is(field(arp, "arp.dst.proto_ipv4"), "192.0.2.1");
  t.is(field(adv, "eth.src"), formatMac(MAC.v6));
  t.is(field(adv, "ipv6.dst"), "ff02::1");
  t.is(field(adv, "icmpv6.type"), "136");
  t.is(field(adv, "icmpv6.nd.na.flag.o"), "1");
  t.is(field(adv, "icmpv6.nd.na.flag.s"), "0");
  t.is(field(adv, "icmpv6.nd.na.flag.r"), "0");
  t.is(field(adv, "icmpv6.nd.na.target_address"), "2001:db8:1::2");
  t.is(field(adv, "icmpv6.opt.linkaddr"), formatMac(vmMac));

  t.is(f.counters.actions.arp, 1);
  t.is(f.counters.actions.nd, 2);
  t.is(f.counters.interfaces.get(2)!.txPackets, 2, "announcements count as sent");
  t.throws(() => f.announce("eth9", "192.0.2.1", c.emit), { instanceOf: ForwarderConfigError, message: /eth9/ });
});

// ---------------------------------------------------------------- promiscuous

test("promiscuous: a unicast frame to a foreign MAC is dropped `not-for-us` on a normal port and routed on a promiscuous one", (t) => {
  const oldRouter = parseMac("02:00:00:00:04:99");
  const normal = lab();
  const c = collector();
  normal.f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { to: oldRouter }), c.emit, 0);
  t.is(normal.f.counters.drops["not-for-us"], 1);
  t.is(c.sent.length, 0);

  const config = labWorker();
  config.interfaces[0].promiscuous = true;
  const promiscuous = lab(() => false, config);
  promiscuous.f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { to: oldRouter }), c.emit, 0);
  t.is(promiscuous.f.counters.actions.route, 1);
  t.is(c.sent.length, 1);
  t.is(formatMac(c.sent[0].frame, 6), formatMac(MAC.v4));
  // Only that port: the IPv6 port still drops frames for other stations.
  promiscuous.f.processFrame(2, udp6Frame("2001:db8:1::99", "2001:db8:2::9", { to: oldRouter }), c.emit, 0);
  t.is(promiscuous.f.counters.drops["not-for-us"], 1);
  // IP to a broadcast MAC is still not routed (RFC 1812 §5.3.4).
  promiscuous.f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { to: BROADCAST_MAC }), c.emit, 0);
  t.is(promiscuous.f.counters.drops["not-for-us"], 2);
});

test("promiscuous: the configuration accepts a boolean and rejects anything else, naming the field", (t) => {
  const config = labWorker();
  config.interfaces[1].promiscuous = false;
  t.false(parseForwarderConfig(config).interfaces[1].promiscuous);
  (config.interfaces[1] as unknown as Record<string, unknown>).promiscuous = "yes";
  const e = t.throws(() => parseForwarderConfig(config), { instanceOf: ForwarderConfigError });
  t.is(e!.field, "worker.interfaces[1].promiscuous");
  t.regex(e!.message, /^worker\.interfaces\[1\]\.promiscuous: /);
  t.throws(() => new Forwarder(config), { instanceOf: ForwarderConfigError, message: /interfaces\[1\]\.promiscuous/ });
});

test("every frame the hooks make for inject and proxy ARP decodes in tshark without warnings", (t) => {
  const rules = [
    ...labRules(),
    { key: "vm/a/encap", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::a", innerSource: "192.0.2.1" } as Rule,
    { key: "binding/192.0.2.1", kind: "encapsulate", tunnel: "4in4", remote: "203.0.113.77", innerDestination: "192.0.2.1/32" } as Rule,
  ];
  const { f } = lab(() => false, labWorker(), rules);
  const c = collector();
  f.inject(udp4("192.0.2.1", "192.0.2.10"), c.emit, 0);
  f.inject(udp4("192.0.2.254", "192.0.2.1"), c.emit, 0);
  f.setProxied("192.0.2.1", true);
  f.processFrame(1, arpRequest("192.0.2.1"), c.emit, 0);
  t.is(c.sent.length, 3);
  const d = decodeWithTshark(c.sent.map((s) => s.frame));
  t.deepEqual(d.problems, []);
  t.deepEqual(frameProtocols(d), ["eth:ethertype:ipv6:ip:udp:data", "eth:ethertype:ip:ip:udp:data", "eth:ethertype:arp"]);
});
