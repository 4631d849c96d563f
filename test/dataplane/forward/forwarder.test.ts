// Forwarder behaviour around the rules: frames it must ignore, the one-decapsulation limit,
// configuration errors that name the field, counters, batches and table swaps. The frames it
// emits are read back with our codec (link, addresses, hop count, both checksums) and by tshark,
// which checks the IP and UDP checksums too.
import test, { type ExecutionContext } from "ava";
import { Forwarder, ForwarderConfigError, parseForwarderConfig } from "../../../dataplane/forward/index.js";
import { pseudoHeaderSum4At, pseudoHeaderSum6At } from "../../../dataplane/packet/checksum.js";
import { buildEthernetFrame, ETHERTYPE, formatMac, parseEthernet, parseMac } from "../../../dataplane/packet/ethernet.js";
import { buildIPv4Packet, IPPROTO, parseIPv4 } from "../../../dataplane/packet/ipv4.js";
import { parseIPv6 } from "../../../dataplane/packet/ipv6.js";
import { buildUdp4, parseUdp, verifyUdpChecksum } from "../../../dataplane/packet/udp.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import { collector, ip4, ip6, labRules, labWorker, MAC, udp4Frame, udp6Frame, type Sent } from "./helpers.js";
import { field, hex } from "./hook-helpers.js";

/** What a UDP frame we emitted says, read with our codec. */
interface UdpFrame {
  ifIndex: number;
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  /** TTL or hop limit. */
  hops: number;
  /** IPv4 protocol or IPv6 next header. */
  protocol: number;
  /** The IPv4 header checksum holds (true for IPv6, which has none). */
  ipChecksum: boolean;
  udpChecksum: boolean;
  ports: string;
  payload: string;
}

function readUdpFrame(s: Sent): UdpFrame {
  const f = s.frame;
  const eth = parseEthernet(f)!;
  const ip = f.subarray(eth.payloadOffset);
  let src: Uint8Array, dst: Uint8Array, hops: number, protocol: number, ipChecksum: boolean, at: number, length: number, pseudo: number;
  if (eth.etherType === ETHERTYPE.IPV4) {
    const h = parseIPv4(ip)!;
    [src, dst, hops, protocol, ipChecksum, at, length] = [ip.subarray(12, 16), ip.subarray(16, 20), h.ttl, h.protocol, h.checksumValid, h.payloadOffset, h.payloadLength];
    pseudo = pseudoHeaderSum4At(ip, 0, IPPROTO.UDP, length);
  } else {
    const h = parseIPv6(ip)!;
    [src, dst, hops, protocol, ipChecksum, at, length] = [ip.subarray(8, 24), ip.subarray(24, 40), h.hopLimit, h.nextHeader, true, h.payloadOffset, h.payloadLength];
    pseudo = pseudoHeaderSum6At(ip, 0, IPPROTO.UDP, length);
  }
  const u = parseUdp(ip, at, length)!;
  return {
    ifIndex: s.ifIndex, dstMac: formatMac(f, 0), srcMac: formatMac(f, 6), src: hex(src), dst: hex(dst), hops, protocol, ipChecksum,
    udpChecksum: verifyUdpChecksum(ip, at, u.length, pseudo), ports: `${u.srcPort}>${u.dstPort}`,
    payload: new TextDecoder().decode(ip.subarray(u.payloadOffset, at + u.length)),
  };
}

/** The UDP frame the helpers' udp4Frame / udp6Frame become, leaving on `ifIndex` to `dstMac`. */
function expected(ifIndex: number, dstMac: string, srcMac: Uint8Array, src: Uint8Array, dst: Uint8Array, hops: number): UdpFrame {
  return { ifIndex, dstMac, srcMac: formatMac(srcMac), src: hex(src), dst: hex(dst), hops, protocol: IPPROTO.UDP, ipChecksum: true, udpChecksum: true, ports: "1000>2000", payload: "payload" };
}

/** tshark decodes `frames` as Ethernet/IP/UDP without a warning (checksums checked), with these addresses and hop counts. */
function tsharkAgrees(t: ExecutionContext, sent: readonly Sent[], want: readonly UdpFrame[]): void {
  const d = decodeWithTshark(sent.map((s) => s.frame));
  t.deepEqual(d.problems, []);
  t.deepEqual(frameProtocols(d), want.map((w) => (w.src.length === 8 ? "eth:ethertype:ip:udp:data" : "eth:ethertype:ipv6:udp:data")));
  d.packets.forEach((p, i) => {
    const v4 = want[i].src.length === 8;
    const bytes = (name: string): string => hex((v4 ? ip4 : ip6)(String(field(p, name))));
    t.is(bytes(v4 ? "ip.src" : "ipv6.src"), want[i].src);
    t.is(bytes(v4 ? "ip.dst" : "ipv6.dst"), want[i].dst);
    t.is(Number(field(p, v4 ? "ip.ttl" : "ipv6.hlim")), want[i].hops);
    t.is(field(p, "eth.dst"), want[i].dstMac);
  });
}

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

test("counters: per interface in/out, per action; processBatch takes count frames, and sends the routed and the translated frame, byte for byte", (t) => {
  const f = lab();
  const c = collector();
  const frames = [udp4Frame("192.0.2.1", "203.0.113.9"), udp4Frame("203.0.113.5", "198.51.100.20"), udp4Frame("192.0.2.1", "203.0.113.9")];
  f.processBatch(1, frames, 2, c.emit, 0);
  t.is(c.sent.length, 2);
  // RFC 1812 §5.2: routed out of v4 to the gateway 192.0.2.1, TTL − 1, checksums still right.
  const routed = expected(1, "02:00:00:00:04:aa", MAC.v4, ip4("192.0.2.1"), ip4("203.0.113.9"), 63);
  // RFC 7915 §4.1: the EAM destination 198.51.100.20 is 2001:db8:1::50 (RFC 7757), the source in
  // the RFC 6052 prefix 2001:db8:64::/96; hop limit = TTL − 1; the UDP checksum follows (§4.5).
  const translated = expected(2, "02:00:00:00:06:50", MAC.v6, ip6("2001:db8:64::cb00:7105"), ip6("2001:db8:1::50"), 63);
  t.deepEqual(c.sent.map(readUdpFrame), [routed, translated]);
  tsharkAgrees(t, c.sent, [routed, translated]);
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

test("replaceRules swaps the whole table: translation stops when its mapping goes, and comes back with the same frame", (t) => {
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
  // RFC 7915 §5.1: the source 2001:db8:1::50 maps to its EAM 198.51.100.20, the destination out of
  // the RFC 6052 prefix to 203.0.113.5, routed to the gateway; TTL = hop limit − 1. Nothing
  // left while the table had no mapping.
  const out = expected(1, "02:00:00:00:04:aa", MAC.v4, ip4("198.51.100.20"), ip4("203.0.113.5"), 63);
  t.deepEqual(c.sent.map(readUdpFrame), [out, out]);
  tsharkAgrees(t, c.sent, [out, out]);
});

test("the emitted frame is a view into a reused buffer; the input frame may be reused by the caller at once", (t) => {
  const f = lab();
  const views: Uint8Array[] = [];
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9"), (_i, frame) => views.push(frame));
  f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.10"), (_i, frame) => views.push(frame));
  t.is(views[0].buffer, views[1].buffer, "same buffer: callers must send or copy inside emit");
  t.is(hex(views[0].subarray(14 + 16, 14 + 20)), hex(ip4("203.0.113.10")), "the first view now shows the second packet");
});

test("a frame emit handed out, passed straight back in, is forwarded as a copy of it would be", (t) => {
  // The 4→6 translation's frame (69 bytes) is a view of the output buffer. The test writes a
  // 4in4 frame of the same length into that view and hands the view back: re-encapsulated 4in6,
  // its outer IPv6 header is written where the inner packet starts, so read in place the inner
  // packet would be overwritten before it is copied.
  const f = lab();
  let view: Uint8Array | undefined;
  f.processFrame(1, udp4Frame("203.0.113.5", "198.51.100.20"), (_i, frame) => (view = frame));
  // The home agent's tunnel to the VM's pool address (flow 3.1 j), 69 bytes.
  const inner = buildUdp4({ src: ip4("203.0.113.5"), dst: ip4("192.0.2.1"), srcPort: 1000, dstPort: 2000, ttl: 64 }, new TextEncoder().encode("payload"));
  const outer = buildIPv4Packet({ src: ip4("192.0.2.10"), dst: ip4("198.51.100.10"), ttl: 64, protocol: IPPROTO.IPIP }, inner);
  const again = buildEthernetFrame(MAC.v4, parseMac("02:00:00:00:04:10"), ETHERTYPE.IPV4, outer);
  t.is(view?.length, again.length);
  view!.set(again);
  const looped = collector();
  f.processFrame(1, view!, looped.emit);
  const fresh = collector();
  lab().processFrame(1, again, fresh.emit);
  t.is(fresh.sent.length, 1);
  t.is(f.counters.actions["reencap-4in4-4in6"], 1);
  t.is(hex(looped.sent[0].frame), hex(fresh.sent[0].frame));
});

test("processBatch with the frames' packet views (as the ring hands them) sends what it sends without them", (t) => {
  const frames = [udp4Frame("192.0.2.1", "203.0.113.9"), udp6Frame("2001:db8:1::50", "2001:db8:64::cb00:7105"), udp4Frame("203.0.113.5", "198.51.100.20")];
  const ingress = [1, 2, 1];
  const run = (withPackets: boolean): string[] => {
    const f = lab();
    const c = collector();
    frames.forEach((frame, i) => f.processBatch(ingress[i], [frame], 1, c.emit, 0, withPackets ? [frame.subarray(14)] : undefined));
    return c.sent.map((s) => `${s.ifIndex} ${hex(s.frame)}`);
  };
  const plain = run(false);
  t.is(plain.length, 3);
  t.deepEqual(run(true), plain);
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
  t.regex(bad((c) => (c.translator.icmp4ErrorMaxBytes = 500)), /^worker\.translator\.icmp4ErrorMaxBytes: must be an integer in 576\.\.65535/);
  t.regex(bad((c) => (c.interfaces[1].mtu = 1200)), /^worker\.interfaces\[1\]\.mtu: .*1280/);
  t.regex(bad((c) => (c.colour = "blue")), /^worker\.colour: unknown key/);
  t.regex(bad((c) => (c.interfaces[0].addresses = ["192.0.2.300/24"])), /^worker\.interfaces\[0\]\.addresses\[0\]: /);
});
