// The `encapsulate` rule in the forwarder: which rule a packet matches (precedence of the
// selectors, newest among equals, deltas), what is never encapsulated (decapsulated packets, our
// own output, link-local), loops, and a 100,000-rule table. Byte-exact outputs are in
// test/dataplane/offline/encapsulate.test.ts.
import test from "ava";
import { Forwarder, RuleTableError } from "../../../dataplane/forward/index.js";
import { buildEthernetFrame, ETHERTYPE } from "../../../dataplane/packet/ethernet.js";
import { buildIPv4Packet, IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { collector, ip4, labWorker, MAC, udp4Frame, udp6Frame } from "./helpers.js";

function forwarder(rules: Rule[]): Forwarder {
  const f = new Forwarder(labWorker(), 0, { fallbackNeighbourMac: MAC.gw6 });
  f.replaceRules({ revision: 1n, rules });
  return f;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
/** Outer destination of an emitted frame, as text-free hex. */
function outerDestination(frame: Uint8Array): string {
  return ((frame[12] << 8) | frame[13]) === ETHERTYPE.IPV6 ? hex(frame.subarray(14 + 24, 14 + 40)) : hex(frame.subarray(14 + 16, 14 + 20));
}
const v6hex = (last: number): string => `20010db8000200000000000000000${last.toString(16).padStart(3, "0")}`;

test("the most specific encapsulate rule wins: host source before prefix, then the longer destination, then the newer rule", (t) => {
  const f = forwarder([
    { key: "host", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::a", innerSource: "192.0.2.1" },
    { key: "host-dst", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::b", innerSource: "192.0.2.1", innerDestination: "203.0.113.0/28" },
    { key: "net", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::c", innerSource: "192.0.2.0/28" },
    { key: "any-source", kind: "encapsulate", tunnel: "4in4", remote: "192.0.2.10", innerDestination: "203.0.113.128/25" },
  ]);
  const c = collector();
  const send = (src: string, dst: string): string => {
    c.sent.length = 0;
    f.processFrame(1, udp4Frame(src, dst), c.emit, 0);
    return c.sent.length === 1 ? outerDestination(c.sent[0].frame) : `${c.sent.length} frames`;
  };
  t.is(send("192.0.2.1", "203.0.113.5"), v6hex(0xb));
  t.is(send("192.0.2.1", "203.0.113.200"), v6hex(0xa));
  t.is(send("192.0.2.2", "203.0.113.5"), v6hex(0xc));
  t.is(send("192.0.2.30", "203.0.113.200"), hex(ip4("192.0.2.10")));
  t.is(send("192.0.2.30", "203.0.113.5"), hex(ip4("203.0.113.5")), "no rule holds: routed to the gateway, unchanged destination");
  t.is(f.counters.actions["encap-4in6"], 3);
  t.is(f.counters.actions["encap-4in4"], 1);
  t.is(f.counters.actions.route, 1);

  // Make-before-break: a newer rule with the same selectors takes over, and removing it gives the old one back.
  f.applyDelta(2n, [{ key: "host-newer", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::d", innerSource: "192.0.2.1" }], []);
  t.is(send("192.0.2.1", "203.0.113.200"), v6hex(0xd));
  f.applyDelta(3n, [], ["host-newer", "host-dst"]);
  t.is(send("192.0.2.1", "203.0.113.200"), v6hex(0xa));
  t.is(send("192.0.2.1", "203.0.113.5"), v6hex(0xa));
  // Replacing a rule by key moves its tunnel (the cached route is not reused).
  f.applyDelta(4n, [{ key: "host", kind: "encapsulate", tunnel: "4in4", remote: "192.0.2.11", innerSource: "192.0.2.1" }], []);
  t.is(send("192.0.2.1", "203.0.113.5"), hex(ip4("192.0.2.11")));
  f.applyDelta(5n, [], ["host", "net", "any-source"]);
  t.is(send("192.0.2.1", "203.0.113.5"), hex(ip4("203.0.113.5")));
  t.is(f.ruleCount, 0);
});

test("a decapsulated packet is never encapsulated again, though the same packet sent plain is", (t) => {
  const f = forwarder([
    { key: "peer", kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.10" },
    { key: "encap", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::a", innerSource: "192.0.2.1" },
  ]);
  const inner = buildUdp4({ src: ip4("192.0.2.1"), dst: ip4("203.0.113.9"), srcPort: 1, dstPort: 2 }, new Uint8Array(8));
  const tunnelled = buildEthernetFrame(MAC.v4, MAC.gw4, ETHERTYPE.IPV4, buildIPv4Packet({ src: ip4("192.0.2.10"), dst: ip4("192.0.2.254"), ttl: 64, protocol: IPPROTO.IPIP }, inner));
  const c = collector();
  f.processFrame(1, tunnelled, c.emit, 0);
  t.is(f.counters.actions.decap, 1);
  t.is(f.counters.actions.route, 1);
  t.is(f.counters.actions["encap-4in6"], 0);
  t.is(outerDestination(c.sent[0].frame), hex(ip4("203.0.113.9")));
  f.processFrame(1, buildEthernetFrame(MAC.v4, MAC.gw4, ETHERTYPE.IPV4, inner), c.emit, 0);
  t.is(f.counters.actions["encap-4in6"], 1);
});

test("no loops: our own addresses as source are routed, a remote that is ours is refused, link-local is never tunnelled", (t) => {
  const f = forwarder([
    { key: "all4", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::a", innerSource: "192.0.2.0/24" },
    { key: "self", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:1::fe", innerSource: "192.0.2.7" },
    { key: "all6", kind: "encapsulate", tunnel: "6in4", remote: "192.0.2.10" },
    { key: "nowhere", kind: "encapsulate", tunnel: "6in6", remote: "2001:db8:99::1", innerSource: "2001:db8:1::77" },
  ]);
  const c = collector();
  // Our own address as the source: our tunnel output coming back, or spoofed; routed as it is.
  f.processFrame(1, udp4Frame("192.0.2.254", "203.0.113.9"), c.emit, 0);
  t.is(f.counters.actions.route, 1);
  t.is(f.counters.actions["encap-4in6"], 0);
  // RFC 6324 §3: a tunnel to one of our own endpoints would come straight back.
  f.processFrame(1, udp4Frame("192.0.2.7", "203.0.113.9"), c.emit, 0);
  t.is(f.counters.drops.loop, 1);
  // RFC 4291 §2.5.6: link-local is never forwarded, so never tunnelled.
  f.processFrame(2, udp6Frame("fe80::1", "2001:db8:2::9"), c.emit, 0);
  t.is(f.counters.drops["not-for-us"], 1);
  t.is(f.counters.actions["encap-6in4"], 0);
  f.processFrame(2, udp6Frame("2001:db8:1::9", "2001:db8:2::9"), c.emit, 0);
  t.is(f.counters.actions["encap-6in4"], 1);
  // No route to the remote.
  f.processFrame(2, udp6Frame("2001:db8:1::77", "2001:db8:2::9"), c.emit, 0);
  t.is(f.counters.drops["no-route"], 1);
  t.is(f.counters.drops["internal-error"], 0);
});

test("100,000 encapsulate rules (one per VM source) compile, are found by the packet path and change by delta", (t) => {
  const rules: Rule[] = [];
  for (let n = 0; n < 100_000; n++) {
    const source = `2001:db8:5::${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
    rules.push(n % 2 === 0
      ? { key: `vm/${n}/encap`, kind: "encapsulate", tunnel: "6in4", remote: `192.0.2.${(n % 200) + 2}`, innerSource: source, vmId: String(n) }
      : { key: `vm/${n}/encap`, kind: "encapsulate", tunnel: "6in6", remote: `2001:db8:2::${(n % 4000).toString(16)}`, innerSource: source, vmId: String(n) });
  }
  rules.push({ key: "segment", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::1", innerSource: "198.51.100.0/24" });
  const f = new Forwarder(labWorker(), 0, { fallbackNeighbourMac: MAC.gw6 });
  const started = performance.now();
  f.replaceRules({ revision: 1n, rules });
  t.log(`compiled ${rules.length} encapsulate rules in ${(performance.now() - started).toFixed(0)} ms`);
  t.is(f.ruleCount, 100_001);
  const c = collector();
  // Rule 77,776 (0x12fd0): 6in4 to 192.0.2.178; rule 77,777: 6in6 to 2001:db8:2::6f1.
  f.processFrame(2, udp6Frame("2001:db8:5::1:2fd0", "2001:db8:2::9"), c.emit, 0);
  f.processFrame(2, udp6Frame("2001:db8:5::1:2fd1", "2001:db8:2::9"), c.emit, 0);
  f.processFrame(1, udp4Frame("198.51.100.9", "203.0.113.9"), c.emit, 0);
  t.deepEqual(c.sent.map((s) => outerDestination(s.frame)), [hex(ip4("192.0.2.178")), v6hex(0x6f1), v6hex(1)]);
  f.applyDelta(2n, [{ key: "vm/77777/encap", kind: "encapsulate", tunnel: "6in4", remote: "192.0.2.250", innerSource: "2001:db8:5::1:2fd1" }], ["vm/77776/encap"]);
  c.sent.length = 0;
  f.processFrame(2, udp6Frame("2001:db8:5::1:2fd0", "2001:db8:2::9"), c.emit, 0);
  f.processFrame(2, udp6Frame("2001:db8:5::1:2fd1", "2001:db8:2::9"), c.emit, 0);
  t.deepEqual(c.sent.map((s) => outerDestination(s.frame)), [hex(Uint8Array.from(Buffer.from("20010db8000200000000000000000009", "hex"))), hex(ip4("192.0.2.250"))], "the removed rule's source is routed");
  t.is(f.ruleCount, 100_000);
});

test("a delta with a bad encapsulate rule changes nothing", (t) => {
  const f = forwarder([{ key: "a", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:2::a", innerSource: "192.0.2.1" }]);
  const e = t.throws(() => f.applyDelta(2n, [{ key: "b", kind: "encapsulate", tunnel: "6in4", remote: "2001:db8:2::b" } as Rule], ["a"]), { instanceOf: RuleTableError });
  t.regex(e!.message, /^rule "b": remote: must be an IPv4 address for a 6in4 tunnel/);
  t.is(f.revision, 1n);
  t.deepEqual(f.currentRules().map((r) => r.key), ["a"]);
});
