// The forwarder's control-plane hooks, part one: `intercept` (local delivery) and `inject`
// (locally made packets through the same decisions); proxy.test.ts has `setProxied`, `announce`
// and promiscuous ports. Frames are built with our codec; what the hooks emit is also decoded by
// tshark.
import test from "ava";
import { Forwarder } from "../../../dataplane/forward/index.js";
import { buildEthernetFrame, ETHERTYPE, formatMac, parseMac } from "../../../dataplane/packet/ethernet.js";
import { buildIcmp4Echo, ICMP4_TYPE } from "../../../dataplane/packet/icmp4.js";
import { buildIPv4Packet, IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { buildIPv6Packet } from "../../../dataplane/packet/ipv6.js";
import { buildNeighborSolicitation } from "../../../dataplane/packet/nd.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import { collector, ip4, ip6, labRules, labWorker, MAC, udp4Frame, udp6Frame } from "./helpers.js";

import { arpRequest, fromVmCareOf, hex, ipPayload, lab, udp4, udp6, utf8 } from "./hook-helpers.js";

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
