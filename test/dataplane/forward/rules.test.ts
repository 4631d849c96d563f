// The compiled rule table: a 100,000-rule snapshot, lookups through the packet path, deltas by
// key, and refused tables that change nothing. No timing assertions (compile time is logged).
import test from "ava";
import { Forwarder, RuleTableError } from "../../../dataplane/forward/index.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { formatMac } from "../../../dataplane/packet/ethernet.js";
import { buildEthernetFrame, ETHERTYPE } from "../../../dataplane/packet/ethernet.js";
import { buildIPv4Packet, IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import { collector, ip4, labWorker, MAC, udp4Frame, udp6Frame } from "./helpers.js";

/**
 * Rule n of a big table. Only documentation ranges are used, so the IPv4-keyed rules (pool
 * addresses, explicit mappings) are limited to 198.51.100.0/24, as a real pool is; the bulk is
 * IPv6-keyed (care-of addresses, peers), as in a real table.
 */
function bigRule(n: number): Rule {
  const h = ((n >> 16) & 0xffff).toString(16);
  const w = (n & 0xffff).toString(16);
  const k = n >> 2;
  switch (n % 4) {
    case 0:
      return { key: `vm/${n}/reencap`, kind: "reencap-6in6-to-6in4", careOfIPv6: `2001:db8:3::${h}:${w}`, careOfIPv4: `192.0.2.${(n % 200) + 2}`, vmId: String(n) };
    case 1:
      return { key: `vm/${n}/peer`, kind: "tunnel-peer", tunnel: "6in6", peer: `2001:db8:2:1::${h}:${w}`, vmId: String(n) };
    case 2:
      return { key: `vm/${n}/peer`, kind: "tunnel-peer", tunnel: "4in6", peer: `2001:db8:1:1::${h}:${w}`, innerSource: `192.0.2.${(n % 200) + 2}`, vmId: String(n) };
    default:
      if (k < 120) return { key: `vm/${n}/mapping`, kind: "address-mapping", ipv4: `198.51.100.${k + 1}`, ipv6: `2001:db8:5::${k.toString(16)}` };
      if (k < 240) return { key: `vm/${n}/reencap`, kind: "reencap-4in4-to-4in6", poolIPv4: `198.51.100.${k + 1}`, careOfIPv6: `2001:db8:1::${h}:${w}`, vmId: String(n) };
      return { key: `vm/${n}/peer`, kind: "tunnel-peer", tunnel: "6in4", peer: `203.0.113.${(k % 250) + 1}`, innerSource: `2001:db8:5:1::${h}:${w}`, vmId: String(n) };
  }
}

function bigTable(count: number): Rule[] {
  const rules: Rule[] = [{ key: "config/translation-prefix", kind: "translation-prefix", prefix: "2001:db8:64::/96" }, { key: "r1", kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.10" }];
  for (let n = 0; rules.length < count; n++) rules.push(bigRule(n));
  return rules;
}

function forwarder(): Forwarder {
  // Every next hop resolves to one MAC, so the tests look at rule decisions only.
  return new Forwarder(labWorker({ routes: [{ prefix: "203.0.113.0/24", interface: "v4", via: "192.0.2.1" }, { prefix: "2001:db8:5::/48", interface: "v6" }] }), 0, { fallbackNeighbourMac: MAC.gw6 });
}

function fourInFour(outerDst: string, innerSrc: string, innerDst: string): Uint8Array {
  const inner = buildUdp4({ src: ip4(innerSrc), dst: ip4(innerDst), srcPort: 1, dstPort: 2 }, new Uint8Array(8));
  const outer = buildIPv4Packet({ src: ip4("192.0.2.10"), dst: ip4(outerDst), ttl: 64, protocol: IPPROTO.IPIP }, inner);
  return buildEthernetFrame(MAC.v4, MAC.gw4, ETHERTYPE.IPV4, outer);
}

test("a 100,000-rule snapshot compiles, its rules are found by the packet path, and deltas change only what they name", (t) => {
  const f = forwarder();
  const rules = bigTable(100_000);
  const started = performance.now();
  f.replaceRules({ revision: 1n, rules });
  t.log(`compiled ${rules.length} rules in ${(performance.now() - started).toFixed(0)} ms`);
  t.is(f.ruleCount, 100_000);
  t.is(f.revision, 1n);

  const c = collector();
  // Rule 483 (k = 120): pool 198.51.100.121 → care-of 2001:db8:1::0:1e3.
  f.processFrame(1, fourInFour("198.51.100.121", "203.0.113.5", "192.0.2.1"), c.emit, 0);
  t.is(f.counters.actions["reencap-4in4-4in6"], 1);
  const out = c.sent[0].frame;
  t.is((out[12] << 8) | out[13], ETHERTYPE.IPV6);
  t.deepEqual([...out.subarray(14 + 24, 14 + 40)], [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xe3]);
  // Rule 203 (k = 50): 198.51.100.51 ↔ 2001:db8:5::32 is translated 4 → 6.
  f.processFrame(1, udp4Frame("203.0.113.5", "198.51.100.51"), c.emit, 0);
  t.is(f.counters.actions["translate-4to6"], 1);
  t.deepEqual([...c.sent[1].frame.subarray(14 + 24, 14 + 40)], [0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x32]);
  // Rule 40,000: plain IPv6 to 2001:db8:3::0:9c40 is encapsulated 6in4 to 192.0.2.2 (route optimisation).
  f.processFrame(2, udp6Frame("2001:db8:5::1", "2001:db8:3::9c40"), c.emit, 0);
  t.is(f.counters.actions["encap-6in4"], 1);
  t.deepEqual([...c.sent[2].frame.subarray(14 + 16, 14 + 20)], [192, 0, 2, 2]);
  // A pool address no rule has: dropped as a served address without a rule.
  f.processFrame(1, udp4Frame("203.0.113.5", "198.51.100.250"), c.emit, 0);
  t.is(f.counters.drops["no-rule"], 1);

  // Delta: remove rule 483, change rule 203's mapping, add a new mapping.
  const changed: Rule = { key: "vm/203/mapping", kind: "address-mapping", ipv4: "198.51.100.51", ipv6: "2001:db8:5::beef" };
  const added: Rule = { key: "vm/new/mapping", kind: "address-mapping", ipv4: "198.51.100.250", ipv6: "2001:db8:5::f00d" };
  const d0 = performance.now();
  f.applyDelta(2n, [changed, added], ["vm/483/reencap", "no/such/key"]);
  t.log(`delta applied in ${(performance.now() - d0).toFixed(0)} ms`);
  t.is(f.revision, 2n);
  t.is(f.ruleCount, 100_000);
  c.sent.length = 0;
  f.processFrame(1, fourInFour("198.51.100.121", "203.0.113.5", "192.0.2.1"), c.emit, 0);
  t.is(f.counters.actions["reencap-4in4-4in6"], 1, "the removed rule no longer re-encapsulates");
  f.processFrame(1, udp4Frame("203.0.113.5", "198.51.100.51"), c.emit, 0);
  f.processFrame(1, udp4Frame("203.0.113.5", "198.51.100.250"), c.emit, 0);
  const translated = c.sent.filter((s) => ((s.frame[12] << 8) | s.frame[13]) === ETHERTYPE.IPV6);
  t.is(translated.length, 2);
  t.deepEqual([...translated[0].frame.subarray(14 + 36, 14 + 40)], [0, 0, 0xbe, 0xef]);
  t.deepEqual([...translated[1].frame.subarray(14 + 36, 14 + 40)], [0, 0, 0xf0, 0x0d]);
  // Rules far from the delta still work: rule 487 (pool 198.51.100.122).
  f.processFrame(1, fourInFour("198.51.100.122", "203.0.113.5", "192.0.2.1"), c.emit, 0);
  t.is(f.counters.actions["reencap-4in4-4in6"], 2);
});

test("a delta with an invalid rule, or a clashing mapping, is refused whole and changes nothing", (t) => {
  const f = forwarder();
  f.replaceRules({ revision: 5n, rules: bigTable(1000) });
  const good: Rule = { key: "vm/x/mapping", kind: "address-mapping", ipv4: "198.51.100.251", ipv6: "2001:db8:5::1:1" };
  const bad = { key: "vm/y/reencap", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.300", careOfIPv6: "2001:db8:1::1", vmId: "y" } as Rule;
  const e = t.throws(() => f.applyDelta(6n, [good, bad], ["vm/0/reencap"]), { instanceOf: RuleTableError });
  t.regex(e!.message, /^rule "vm\/y\/reencap": poolIPv4: /);
  t.is(f.revision, 5n);
  t.is(f.ruleCount, 1000);
  t.true(f.currentRules().some((r) => r.key === "vm/0/reencap"));
  t.false(f.currentRules().some((r) => r.key === "vm/x/mapping"));
  // The same IPv4 address mapped twice (RFC 7757 §3.2: one entry per prefix).
  const clash: Rule = { key: "vm/z/mapping", kind: "address-mapping", ipv4: "198.51.100.2", ipv6: "2001:db8:5::abc" };
  const e2 = t.throws(() => f.applyDelta(7n, [clash], []), { instanceOf: RuleTableError });
  t.regex(e2!.message, /vm\/z\/mapping/);
  t.is(f.ruleCount, 1000);
  // A snapshot with a bad rule keeps the old table.
  t.throws(() => f.replaceRules({ revision: 8n, rules: [{ key: "k", kind: "translation-prefix", prefix: "2001:db8:64::/80" }] }), { message: /RFC 6052/ });
  t.is(f.revision, 5n);
});

test("tunnel-peer rules for one peer combine: one unrestricted rule lifts the ingress filter, removing it restores it", (t) => {
  const f = forwarder();
  const base: Rule[] = [
    { key: "a", kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.10", innerSource: "192.0.2.1" },
    { key: "b", kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.10", innerSource: "192.0.2.2" },
  ];
  f.replaceRules({ revision: 1n, rules: base });
  const c = collector();
  const send = (src: string): void => f.processFrame(1, fourInFour("192.0.2.254", src, "203.0.113.9"), c.emit, 0);
  send("192.0.2.1");
  send("192.0.2.2");
  send("192.0.2.3");
  t.is(f.counters.actions.decap, 2);
  t.is(f.counters.drops["ingress-filter"], 1);
  f.applyDelta(2n, [{ key: "c", kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.10" }], []);
  send("192.0.2.3");
  t.is(f.counters.actions.decap, 3);
  f.applyDelta(3n, [], ["c", "a"]);
  send("192.0.2.1");
  send("192.0.2.2");
  t.is(f.counters.actions.decap, 4);
  t.is(f.counters.drops["ingress-filter"], 2);
  f.applyDelta(4n, [], ["b"]);
  send("192.0.2.2");
  t.is(f.counters.drops["unknown-peer"], 1);
  t.is(formatMac(c.sent[0].frame, 0), formatMac(MAC.gw4, 0), "routed to the gateway's static neighbour entry");
});
