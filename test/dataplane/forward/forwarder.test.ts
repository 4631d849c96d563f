// Forwarder behaviour around the rules: frames it must ignore, the one-decapsulation limit,
// configuration errors that name the field, counters, batches and table swaps.
import test from "ava";
import { Forwarder, ForwarderConfigError, parseForwarderConfig } from "../../../dataplane/forward/index.js";
import { buildEthernetFrame, ETHERTYPE, parseMac } from "../../../dataplane/packet/ethernet.js";
import { buildIPv4Packet, IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import { collector, ip4, labRules, labWorker, MAC, udp4Frame, udp6Frame } from "./helpers.js";

function lab(): Forwarder {
  const f = new Forwarder(labWorker(), 0);
  f.replaceRules({ revision: 3n, rules: labRules() });
  return f;
}

test("frames from our own MACs (the capture sees what we inject) are ignored", (t) => {
  const f = lab();
  const c = collector();
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { from: MAC.v6 }), c.emit);
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { from: MAC.v4 }), c.emit);
  t.is(c.sent.length, 0);
  t.is(f.counters.drops["own-frame"], 2);
});

test("unicast frames for another station, VLAN-tagged frames and unknown interfaces are dropped and counted", (t) => {
  const f = lab();
  const c = collector();
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { to: parseMac("02:00:00:00:04:99") }), c.emit);
  const tagged = buildEthernetFrame(MAC.v4, MAC.gw4, ETHERTYPE.IPV4, buildUdp4({ src: ip4("192.0.2.1"), dst: ip4("203.0.113.9"), srcPort: 1, dstPort: 2 }, new Uint8Array(4)), { vlanId: 5 });
  f.processFrame(1, tagged, c.emit);
  f.processFrame(9, udp4Frame("192.0.2.1", "203.0.113.9"), c.emit);
  f.processFrame(1, new Uint8Array(10), c.emit);
  t.is(c.sent.length, 0);
  t.is(f.counters.drops["not-for-us"], 1);
  t.is(f.counters.drops.unsupported, 2);
  t.is(f.counters.drops.malformed, 1);
});

test("a packet is decapsulated at most once: IPv4-in-IPv4-in-IPv4 from the peer is dropped after the first", (t) => {
  const f = lab();
  const c = collector();
  const udp = buildUdp4({ src: ip4("192.0.2.1"), dst: ip4("203.0.113.9"), srcPort: 1, dstPort: 2 }, new Uint8Array(8));
  const mid = buildIPv4Packet({ src: ip4("192.0.2.10"), dst: ip4("192.0.2.254"), ttl: 64, protocol: IPPROTO.IPIP }, udp);
  const outer = buildIPv4Packet({ src: ip4("192.0.2.10"), dst: ip4("192.0.2.254"), ttl: 64, protocol: IPPROTO.IPIP }, mid);
  f.processFrame(1, buildEthernetFrame(MAC.v4, parseMac("02:00:00:00:04:10"), ETHERTYPE.IPV4, outer), c.emit);
  t.is(c.sent.length, 0);
  t.is(f.counters.actions.decap, 1);
  t.is(f.counters.drops["decap-loop"], 1);
});

test("counters: per interface in/out, per action; processBatch takes count frames", (t) => {
  const f = lab();
  const c = collector();
  const frames = [udp4Frame("192.0.2.1", "203.0.113.9"), udp4Frame("203.0.113.5", "198.51.100.20"), udp4Frame("192.0.2.1", "203.0.113.9")];
  f.processBatch(1, frames, 2, c.emit, 0);
  t.is(c.sent.length, 2);
  const v4 = f.counters.interfaces.get(1)!;
  const v6 = f.counters.interfaces.get(2)!;
  t.is(v4.rxPackets, 2);
  t.is(v4.rxBytes, frames[0].length + frames[1].length);
  t.is(v4.txPackets, 1);
  t.is(v6.txPackets, 1);
  t.is(f.counters.actions.route, 1);
  t.is(f.counters.actions["translate-4to6"], 1);
  for (const v of Object.values(f.counters.drops)) t.is(v, 0);
});

test("replaceRules swaps the whole table: translation stops when its mapping goes, and comes back", (t) => {
  const f = lab();
  const c = collector();
  f.processFrame(2, udp6Frame("2001:db8:1::50", "2001:db8:64::cb00:7105", { from: parseMac("02:00:00:00:06:50") }), c.emit);
  t.is(f.counters.actions["translate-6to4"], 1);
  f.replaceRules({ revision: 4n, rules: [] });
  f.processFrame(2, udp6Frame("2001:db8:1::50", "2001:db8:64::cb00:7105", { from: parseMac("02:00:00:00:06:50") }), c.emit);
  t.is(f.counters.actions["translate-6to4"], 1);
  t.is(f.counters.drops["no-rule"], 1, "the translation prefix is still served, but no rule covers it");
  f.applyDelta(5n, labRules(), []);
  f.processFrame(2, udp6Frame("2001:db8:1::50", "2001:db8:64::cb00:7105", { from: parseMac("02:00:00:00:06:50") }), c.emit);
  t.is(f.counters.actions["translate-6to4"], 2);
  t.is(f.revision, 5n);
});

test("the emitted frame is a view into a reused buffer; the input frame may be reused by the caller at once", (t) => {
  const f = lab();
  const views: Uint8Array[] = [];
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), (_i, frame) => views.push(frame));
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.10"), (_i, frame) => views.push(frame));
  t.is(views[0].buffer, views[1].buffer, "same buffer: callers must send or copy inside emit");
});

test("configuration errors name the field", (t) => {
  const base = labWorker();
  const bad = (mutate: (c: Record<string, any>) => void): string => {
    const c = structuredClone(base) as Record<string, any>;
    mutate(c);
    const e = t.throws(() => parseForwarderConfig(c), { instanceOf: ForwarderConfigError });
    return e!.message;
  };
  t.regex(bad((c) => (c.interfaces[0].mac = "02:00:00:00:04")), /^worker\.interfaces\[0\]\.mac: /);
  t.regex(bad((c) => (c.interfaces[1].name = "v4")), /^worker\.interfaces\[1\]\.name: 'v4' is used twice/);
  t.regex(bad((c) => (c.routes[0].interface = "eth9")), /^worker\.routes\[0\]\.interface: no interface is named 'eth9'/);
  t.regex(bad((c) => (c.routes[1].via = "192.0.2.1")), /^worker\.routes\[1\]\.via: must be of the same family/);
  t.regex(bad((c) => (c.served = ["198.51.100.1/24"])), /^worker\.served\[0\]: .*host bits/);
  t.regex(bad((c) => (c.translator.icmpErrorSource4 = "2001:db8::1")), /^worker\.translator\.icmpErrorSource4: /);
  t.regex(bad((c) => (c.translator.lowestIpv6Mtu = 1000)), /^worker\.translator\.lowestIpv6Mtu: must be an integer in 1280\.\.65535/);
  t.regex(bad((c) => (c.interfaces[1].mtu = 1200)), /^worker\.interfaces\[1\]\.mtu: .*1280/);
  t.regex(bad((c) => (c.colour = "blue")), /^worker\.colour: unknown key/);
  t.regex(bad((c) => (c.interfaces[0].addresses = ["192.0.2.300/24"])), /^worker\.interfaces\[0\]\.addresses\[0\]: /);
});
