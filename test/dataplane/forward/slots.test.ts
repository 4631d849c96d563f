// The compact rule table (dataplane/forward/slots.ts): rules held as words and keys give back
// exactly what was applied, a table posted as an image (workers: N) forwards as the table it
// came from, many rules of one peer leave in one delta, and the main thread's ThreadTable
// starts a thread with the table the running threads hold, in their order.
import test from "ava";
import { Forwarder, RuleSlots } from "../../../dataplane/forward/index.js";
import { ThreadTable } from "../../../dataplane/worker/threadtable.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { buildEthernetFrame, ETHERTYPE } from "../../../dataplane/packet/ethernet.js";
import { buildIPv4Packet, IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import { collector, ip4, ip6 as ipv6, labWorker, MAC, udp4Frame } from "./helpers.js";

function forwarder(): Forwarder {
  return new Forwarder(labWorker({ routes: [{ prefix: "203.0.113.0/24", interface: "v4", via: "192.0.2.1" }, { prefix: "2001:db8:5::/48", interface: "v6" }] }), 0, { fallbackNeighbourMac: MAC.gw6 });
}

function fourInFour(outerSrc: string, outerDst: string, innerSrc: string, innerDst: string): Uint8Array {
  const inner = buildUdp4({ src: ip4(innerSrc), dst: ip4(innerDst), srcPort: 1, dstPort: 2 }, new Uint8Array(8));
  const outer = buildIPv4Packet({ src: ip4(outerSrc), dst: ip4(outerDst), ttl: 64, protocol: IPPROTO.IPIP }, inner);
  return buildEthernetFrame(MAC.v4, MAC.gw4, ETHERTYPE.IPV4, outer);
}

/** Rules in the engine's form (canonical text, vmId in the key) and in every other form the table accepts. */
const RULES: Rule[] = [
  { key: "config/translation-prefix", kind: "translation-prefix", prefix: "2001:db8:64::/96" },
  { key: "vm/a/reencap", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.7", careOfIPv6: "2001:db8:1::7", vmId: "a" },
  { key: "vm/a/peer-home-agent", kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.10", vmId: "a" },
  { key: "vm/a/peer-vm", kind: "tunnel-peer", tunnel: "4in6", peer: "2001:db8:1::7", innerSource: "192.0.2.7", vmId: "a" },
  { key: "vm/b/reencap", kind: "reencap-6in6-to-6in4", careOfIPv6: "2001:db8:2::b", careOfIPv4: "203.0.113.11", vmId: "b" },
  { key: "vm/b/peer-vm-home", kind: "tunnel-peer", tunnel: "6in4", peer: "203.0.113.11", innerSource: "2001:db8:5::b", vmId: "b" },
  { key: "vm/b/mapping", kind: "address-mapping", ipv4: "198.51.100.11", ipv6: "2001:db8:5::b" },
  // Not the formatter's text: kept as given.
  { key: "upper", kind: "reencap-6in6-to-6in4", careOfIPv6: "2001:DB8:2::C", careOfIPv4: "203.0.113.12", vmId: "c" },
  { key: "zeros", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.8", careOfIPv6: "2001:db8:1:0:0:0:0:8", vmId: "d" },
  { key: "single-zero", kind: "tunnel-peer", tunnel: "6in6", peer: "2001:db8::1:0:0:1" },
  { key: "prefix-form", kind: "address-mapping", ipv4: "198.51.100.12/32", ipv6: "2001:db8:5::c" },
  { key: "prefix-mapping", kind: "address-mapping", ipv4: "198.51.100.64/28", ipv6: "2001:db8:6::/124" },
  { key: "inner-prefix", kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.20", innerSource: "192.0.2.128/25" },
  { key: "extra", kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.21", note: "kept" } as unknown as Rule,
  { key: "vm/e/reencap", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.9", careOfIPv6: "2001:db8:1::9", vmId: "not-e" },
  { key: "empty-vm", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.10", careOfIPv6: "2001:db8:1::a", vmId: "" },
  { key: "vm//reencap", kind: "reencap-6in6-to-6in4", careOfIPv6: "2001:db8:2::d", careOfIPv4: "203.0.113.13", vmId: "" },
  { key: "vm/f/encap", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:1::1", innerSource: "192.0.2.99" },
];

test("currentRules gives back every rule as it was applied, in the engine's form or any other, in table order", (t) => {
  const f = forwarder();
  f.replaceRules({ revision: 1n, rules: RULES });
  t.deepEqual(f.currentRules(), RULES);
  t.is(JSON.stringify(f.currentRules()), JSON.stringify(RULES));
  // A delta re-adds a changed rule at the end, as the table of objects did.
  const changed: Rule = { key: "vm/a/reencap", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.7", careOfIPv6: "2001:db8:1::77", vmId: "a" };
  f.applyDelta(2n, [changed], ["upper", "no/such/key"]);
  t.deepEqual(f.currentRules(), [...RULES.filter((r) => r.key !== "vm/a/reencap" && r.key !== "upper"), changed]);
});

test("a table posted as an image (workers: N) holds the same rules and forwards as the table it came from, deltas included", (t) => {
  const compiled = forwarder();
  const posted = forwarder();
  compiled.replaceRules({ revision: 1n, rules: RULES });
  // Through a structured clone, as postMessage hands it to a thread.
  posted.replaceRulesImage(1n, structuredClone(RuleSlots.build(RULES).image()));
  t.is(posted.revision, 1n);
  t.deepEqual(posted.currentRules(), compiled.currentRules());
  const frames = [
    fourInFour("192.0.2.10", "198.51.100.7", "203.0.113.5", "192.0.2.1"), // re-encapsulated to 2001:db8:1::7
    fourInFour("192.0.2.10", "198.51.100.8", "203.0.113.5", "192.0.2.1"), // the rule kept as given
    fourInFour("192.0.2.20", "203.0.113.9", "192.0.2.200", "203.0.113.9"), // decapsulated: inner source in the peer's /25
    fourInFour("192.0.2.20", "203.0.113.9", "192.0.2.100", "203.0.113.9"), // refused: outside it
    udp4Frame("203.0.113.5", "198.51.100.11"), // translated (mapping)
    udp4Frame("203.0.113.5", "198.51.100.70"), // translated (the /28 mapping)
  ];
  const run = (f: Forwarder) => {
    const c = collector();
    for (const frame of frames) f.processFrame(1, frame, c.emit, 0);
    return { sent: c.sent.map((s) => [s.ifIndex, [...s.frame]]), actions: { ...f.counters.actions }, drops: { ...f.counters.drops } };
  };
  const a = run(compiled);
  t.is(a.sent.length, 5);
  t.deepEqual(run(posted), a);
  const delta: [Rule[], string[]] = [[{ key: "vm/a/reencap", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.7", careOfIPv6: "2001:db8:1::77", vmId: "a" }], ["inner-prefix", "vm/b/mapping"]];
  compiled.applyDelta(2n, ...delta);
  posted.applyDelta(2n, ...delta);
  t.deepEqual(posted.currentRules(), compiled.currentRules());
  t.deepEqual(run(posted), run(compiled));
});

test("10,000 rules naming one peer: all but one leave in a delta and the peer stays; the last leaves and it goes", (t) => {
  const f = forwarder();
  const rules: Rule[] = Array.from({ length: 10_000 }, (_, i) => ({ key: `vm/${i}/peer-home-agent`, kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.10", vmId: String(i) }));
  f.replaceRules({ revision: 1n, rules });
  const c = collector();
  const send = () => f.processFrame(1, fourInFour("192.0.2.10", "192.0.2.254", "192.0.2.1", "203.0.113.9"), c.emit, 0);
  send();
  t.is(f.counters.actions.decap, 1);
  f.applyDelta(2n, [], rules.slice(1).map((r) => r.key));
  t.is(f.ruleCount, 1);
  send();
  t.is(f.counters.actions.decap, 2);
  f.applyDelta(3n, [], [rules[0].key]);
  t.is(f.ruleCount, 0);
  send();
  t.is(f.counters.actions.decap, 2, "no rule names the peer any more");
});

test("ThreadTable: a thread started after deltas gets the table the running threads hold, in their order; bad changes are not kept", (t) => {
  const table = new ThreadTable();
  const running = forwarder();
  t.is(table.start(0), undefined);
  const first = table.snapshot(1, { revision: 1n, rules: RULES });
  t.is(first.kind, "image");
  running.replaceRules({ revision: 1n, rules: RULES });
  const changes: [bigint, Rule[], string[]][] = [
    [2n, [{ key: "vm/f/encap2", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:1::2", innerSource: "192.0.2.99" }], []],
    [3n, [{ key: "vm/f/encap", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:1::3", innerSource: "192.0.2.99" }], ["zeros"]],
    [4n, [], ["vm/f/encap2", "no/such/key"]],
    [5n, [{ key: "vm/f/encap2", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:1::4", innerSource: "192.0.2.99" }], []],
  ];
  for (const [revision, updates, removes] of changes) {
    t.is(table.delta(Number(revision), revision, updates, removes).kind, "delta");
    running.applyDelta(revision, updates, removes);
  }
  // Bad ones: not kept (the threads refuse them too).
  t.is(table.delta(6, 6n, [{ key: "bad", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.300", careOfIPv6: "2001:db8:1::1", vmId: "x" } as Rule], ["vm/a/reencap"]).kind, "delta");
  t.is(table.snapshot(7, { revision: 7n, rules: [{ key: "k", kind: "translation-prefix", prefix: "2001:db8:64::/80" }] }).kind, "snapshot");
  const start = table.start(7)!;
  t.is(start.seq, 7);
  t.is(start.revision, 5n);
  const started = forwarder();
  started.replaceRulesImage(start.revision, structuredClone(start.image));
  t.deepEqual(started.currentRules(), running.currentRules());
  // Equally specific encapsulate rules: the newest wins, in the started thread as in the running one.
  const route = (f: Forwarder) => {
    const c = collector();
    f.processFrame(1, udp4Frame("192.0.2.99", "203.0.113.50"), c.emit, 0);
    return c.sent.map((s) => [...s.frame]);
  };
  const sent = route(running);
  t.is(sent.length, 1);
  t.deepEqual([...sent[0].slice(14 + 24, 14 + 40)], [...ipv6("2001:db8:1::4")], "the newest of the equally specific rules");
  t.deepEqual(route(started), sent);
});
