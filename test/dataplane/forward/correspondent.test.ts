// Route optimisation at the engine (flow 3.2 k–m, dataplane/forward/correspondent.ts): the worker
// with `correspondentRouter` takes a migrated VM's binding update to a correspondent out of the
// VM's 6in4 tunnel, answers it with a Binding Acknowledgement through the same tunnel, and from
// then on sends what the correspondent (IPv6, or IPv4 through the translator) addresses to the
// home address straight to the VM's IPv4 care-of address. The rules are the engine's own
// (services/rules/compile.ts bindingRules for an IPv6 VM); the BUs are the agent's
// (mobility/mip6/binding-update.ts); the acknowledgements are checked with our codec and by tshark.
import test from "ava";
import { formatMac } from "../../../dataplane/packet/ethernet.js";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { walkIPv6Extensions } from "../../../dataplane/packet/ipv6.js";
import { pseudoHeaderSum6 } from "../../../dataplane/packet/checksum.js";
import { BA_STATUS, setMhChecksum } from "../../../dataplane/packet/mip6.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import { Forwarder } from "../../../dataplane/forward/index.js";
import type { CorrespondentChange } from "../../../dataplane/forward/correspondent.js";
import { ip6, labWorker, udp4Frame, udp6Frame } from "./helpers.js";
import { bindingsToAdopt, connectTakeover, handedBindings, serveTakeover } from "../../../dataplane/worker/takeover.js";
import { silentLogger } from "../../../lib/log.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ackOf, buPacket, CARE_OF4, CARE_OF6, CN4, CN4_AS6, CN6, fromCn6, hex, HOME, HOME_AGENT, HOME_MAC, inner6in4, POOL4, router, rules, send, tunnelled, VM_RULES } from "./correspondent-fixtures.js";

test("a BU to an IPv6 correspondent is taken, acknowledged through the tunnel, and then the correspondent's packets skip the home agent", (t) => {
  const f = router();
  t.is(fromCn6(f), "routed", "no binding yet: routed toward the home link as usual");
  t.is(f.counters.actions["encap-6in4"], 0);

  const out = send(f, 1, tunnelled(buPacket({ sequence: 7, lifetimeS: 300 })));
  t.is(f.counters.actions.decap, 1);
  t.is(f.counters.actions["correspondent-binding"], 1);
  t.is(f.counters.drops["correspondent-refused"], 0);
  const ack = ackOf(out);
  t.true(ack.ok, JSON.stringify(ack));
  t.is(ack.status, BA_STATUS.ACCEPTED);
  t.is(ack.sequence, 7);
  t.is(ack.lifetimeS, 300);
  // RFC 6275 §9.5.4: from the correspondent to the care-of address, the home address in a type 2 routing header.
  t.is(hex(ack.packet.subarray(8, 24)), hex(ip6(CN6)));
  t.is(hex(ack.packet.subarray(24, 40)), hex(ip6(CARE_OF6)));
  const chain = walkIPv6Extensions(ack.packet, 0)!;
  t.true(chain.routingType2AddressOffset > 0);
  t.is(hex(ack.packet.subarray(chain.routingType2AddressOffset, chain.routingType2AddressOffset + 16)), hex(ip6(HOME)));

  const ts = decodeWithTshark([out[0].frame]);
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:ip:ipv6:ipv6\.routing:mipv6/);

  const before = f.counters.actions["encap-6in4"];
  t.is(fromCn6(f, 1000), "shortcut");
  t.is(f.counters.actions["encap-6in4"], before + 1);
  // The shortcut forwards: the inner hop limit is spent once, and tshark is happy with the frame.
  const again = send(f, 2, udp6Frame(CN6, HOME, { hopLimit: 9 }), 1000);
  t.is(inner6in4(again[0])[7], 8);
  t.deepEqual(decodeWithTshark([again[0].frame]).problems, []);
  // Another correspondent has no binding: still routed.
  t.is(send(f, 2, udp6Frame("2001:db8:2::10", HOME), 1000)[0].ifIndex, 2);
});

test("without correspondentRouter the BU passes on (routed to the correspondent) and nothing is bound", (t) => {
  const f = router(false);
  const out = send(f, 1, tunnelled(buPacket()));
  t.is(f.counters.actions["correspondent-binding"], 0);
  t.is(out.length, 1);
  t.is(out[0].ifIndex, 2, "toward the correspondent");
  t.is(fromCn6(f), "routed");
});

test("an IPv4 correspondent: translated as usual, and after a BU to its translation-prefix form, translated straight into the VM's tunnel", (t) => {
  const f = router();
  const sendV4 = () => send(f, 1, udp4Frame(CN4, POOL4), 2000);
  let out = sendV4();
  t.is(out.length, 1);
  t.is(out[0].ifIndex, 2, "translated to the home address on the v6 link");
  t.is(formatMac(out[0].frame, 0), HOME_MAC);
  t.is(f.counters.actions["translate-4to6"], 1);

  const ack = ackOf(send(f, 1, tunnelled(buPacket({ correspondent: CN4_AS6, sequence: 100 })), 2000));
  t.true(ack.ok, JSON.stringify(ack));
  t.is(hex(ack.packet.subarray(8, 24)), hex(ip6(CN4_AS6)), "the BA comes from the address the BU went to");

  out = sendV4();
  t.is(f.counters.actions["translate-4to6"], 2);
  t.is(out.length, 1);
  const inner = inner6in4(out[0]);
  t.is(hex(inner.subarray(8, 24)), hex(ip6(CN4_AS6)));
  t.is(hex(inner.subarray(24, 40)), hex(ip6(HOME)));
  t.is(inner[7], 63, "the translation spent the hop, the tunnel does not spend another");
  const ts = decodeWithTshark([out[0].frame]);
  t.deepEqual(ts.problems, []);
  t.regex(frameProtocols(ts)[0], /eth:ethertype:ip:ipv6:udp/);
  // A binding for the IPv4 correspondent is not one for IPv6 correspondents.
  t.is(fromCn6(f, 2000), "routed");
});

test("a BU for a home address the rule table does not bind to that care-of address is refused with 129 and binds nothing", (t) => {
  const f = router();
  const other = "2001:db8:1::77";
  const out = send(f, 1, tunnelled(buPacket({ home: other })));
  const encapsulated = f.counters.actions["encap-6in4"];
  t.is(f.counters.actions["correspondent-binding"], 0);
  t.is(f.counters.drops["correspondent-refused"], 1);
  const ack = ackOf(out);
  t.false(ack.ok);
  t.is(ack.status, BA_STATUS.ADMINISTRATIVELY_PROHIBITED);
  t.deepEqual(decodeWithTshark([out[0].frame]).problems, []);
  const o = send(f, 2, udp6Frame(CN6, other));
  t.is(o.length, 1);
  t.is(o[0].ifIndex, 2, "routed (a neighbour solicitation for it on the home link), no shortcut");
  t.is(f.counters.actions["encap-6in4"], encapsulated);
  t.is(fromCn6(f), "routed", "nor for the VM's real home address");
});

test("a BU whose care-of address the rule table pairs with no IPv4 care-of address is refused", (t) => {
  const f = router();
  // The 6in4 peer lets the home address through as inner source; the BU claims a care-of address that is the VM's home.
  f.applyDelta(2n, [{ key: "vm/b/peer-vm-other", kind: "tunnel-peer", tunnel: "6in4", peer: CARE_OF4, innerSource: "2001:db8:3::1" }], []);
  const out = send(f, 1, tunnelled(buPacket({ careOf: "2001:db8:3::1" })));
  t.is(f.counters.actions.decap, 1);
  t.is(f.counters.drops["correspondent-refused"], 1);
  // The refusal (BA 129) would go to that care-of address, which no tunnel reaches: it is not sent.
  t.is(out.length, 0);
  t.is(fromCn6(f), "routed");
});

test("a home registration (H flag) passes on to the home agent untouched", (t) => {
  const f = router();
  const bu = buPacket({ correspondent: HOME_AGENT, homeRegistration: true });
  const out = send(f, 1, tunnelled(bu));
  t.is(f.counters.actions["correspondent-binding"], 0);
  t.is(f.counters.drops["correspondent-refused"], 0);
  t.is(f.counters.actions.route, 1);
  t.is(out.length, 1);
  t.is(out[0].ifIndex, 2);
  t.is(formatMac(out[0].frame, 0), "02:00:00:00:06:10");
  const expected = bu.slice();
  expected[7]--;
  t.is(hex(out[0].frame.subarray(14)), hex(expected), "the same BU, one hop later");
});

test("a BU with a sequence number not newer than the binding's gets 135 with the binding's number, and the binding stays", (t) => {
  const f = router();
  t.true(ackOf(send(f, 1, tunnelled(buPacket({ sequence: 10 })))).ok);
  for (const sequence of [10, 9, 10 - 0x8000 + 1]) {
    const ack = ackOf(send(f, 1, tunnelled(buPacket({ sequence: sequence & 0xffff, lifetimeS: 0 }))));
    t.is(ack.status, BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW, `sequence ${sequence}`);
    // RFC 6275 §9.5.1: the BA carries the last accepted sequence number.
    t.is(ack.sequence, 10);
  }
  t.is(f.counters.drops["correspondent-refused"], 3);
  t.is(fromCn6(f), "shortcut", "the stale updates (even with lifetime 0) removed nothing");
  // Wrapping around 2^16 is newer (RFC 6275 §9.5.1).
  const f2 = router();
  t.true(ackOf(send(f2, 1, tunnelled(buPacket({ sequence: 0xfffe })))).ok);
  const wrapped = ackOf(send(f2, 1, tunnelled(buPacket({ sequence: 1 }))));
  t.true(wrapped.ok);
  t.is(wrapped.sequence, 1);
});

test("lifetime 0 removes the binding (acknowledged with status 0)", (t) => {
  const f = router();
  t.true(ackOf(send(f, 1, tunnelled(buPacket({ sequence: 1 })))).ok);
  t.is(fromCn6(f), "shortcut");
  const ack = ackOf(send(f, 1, tunnelled(buPacket({ sequence: 2, lifetimeS: 0 }))));
  t.true(ack.ok);
  t.is(ack.status, BA_STATUS.ACCEPTED);
  t.is(ack.lifetimeS, 0);
  t.is(f.counters.actions["correspondent-binding"], 2);
  t.is(fromCn6(f), "routed");
  // And a new binding may start from any sequence number.
  t.true(ackOf(send(f, 1, tunnelled(buPacket({ sequence: 1 })))).ok);
  t.is(fromCn6(f), "shortcut");
});

test("care-of address = home address also deletes the binding (RFC 6275 §9.5.1)", (t) => {
  const f = router();
  t.true(ackOf(send(f, 1, tunnelled(buPacket({ sequence: 1 })))).ok);
  // At home the VM sends from its home address, with no Home Address option: malformed for a correspondent
  // router, which needs the option; so this is not a way to delete here. The binding stays.
  send(f, 1, tunnelled(buPacket({ sequence: 2, careOf: HOME })));
  t.is(f.counters.drops.malformed, 1);
  t.is(fromCn6(f), "shortcut");
});

test("removing the VM's rules (applyDelta) stops the shortcut; putting them back does not revive the binding by itself", (t) => {
  const f = router();
  t.true(ackOf(send(f, 1, tunnelled(buPacket({ sequence: 1 })))).ok);
  t.is(fromCn6(f), "shortcut");
  f.applyDelta(2n, [], VM_RULES.map((r) => r.key));
  t.is(fromCn6(f), "routed");
  f.applyDelta(3n, structuredClone(VM_RULES), []);
  t.is(fromCn6(f), "routed", "the binding was dropped when its rules went");
});

test("a binding moved to another IPv4 care-of address by the engine stops the old shortcut", (t) => {
  const f = router();
  t.true(ackOf(send(f, 1, tunnelled(buPacket({ sequence: 1 })))).ok);
  // The engine re-pairs the IPv6 care-of address with another IPv4 care-of address (a new lease).
  f.applyDelta(2n, [{ ...VM_RULES.find((r) => r.key === "vm/b/reencap")!, careOfIPv4: "192.0.2.101" } as Rule], []);
  t.is(fromCn6(f), "routed");
});

test("bindings expire: the shortcut holds until the granted lifetime ends, and tick() drops them", (t) => {
  const f = router();
  const ack = ackOf(send(f, 1, tunnelled(buPacket({ sequence: 1, lifetimeS: 8 })), 1_000));
  t.is(ack.lifetimeS, 8);
  t.is(fromCn6(f, 8_999), "shortcut");
  f.tick(9_000, () => {});
  // tick() removed it: even a packet stamped before the end finds no binding now.
  t.is(fromCn6(f, 8_999), "routed");

  // The router keeps a binding at most 600 s, whatever the BU asks (RFC 6275 §9.5.1 lets it shorten).
  const g = router();
  const long = ackOf(send(g, 1, tunnelled(buPacket({ sequence: 1, lifetimeS: 65535 * 4 })), 0));
  t.is(long.lifetimeS, 600);
  t.is(fromCn6(g, 599_999), "shortcut");
  t.is(fromCn6(g, 600_000), "routed");
});

test("a binding is refreshed by a newer BU, which extends it", (t) => {
  const f = router();
  t.true(ackOf(send(f, 1, tunnelled(buPacket({ sequence: 1, lifetimeS: 8 })), 0)).ok);
  t.true(ackOf(send(f, 1, tunnelled(buPacket({ sequence: 2, lifetimeS: 8 })), 6_000)).ok);
  t.is(fromCn6(f, 13_000), "shortcut");
  t.is(fromCn6(f, 14_000), "routed");
});

/** Sets the MH checksum of a BU packet to a wrong value. */
function badChecksum(bu: Uint8Array): Uint8Array {
  const p = bu.slice();
  const c = walkIPv6Extensions(p, 0)!;
  p[c.upperOffset + 4] ^= 0x5a;
  return p;
}

test("malformed BUs are counted and bind nothing", (t) => {
  const f = router();
  const bu = buPacket();
  const c = walkIPv6Extensions(bu, 0)!;
  const mh = c.upperOffset;
  const cases: { name: string; packet: Uint8Array; drop: string }[] = [];
  // MH Header Len beyond the packet.
  {
    const p = bu.slice();
    p[mh + 1] = 40;
    cases.push({ name: "header length past the end", packet: p, drop: "malformed" });
  }
  // A mobility option running past the header.
  {
    const p = bu.slice();
    const len = (p[mh + 1] + 1) << 3;
    if (len > 12) {
      p[mh + 12] = 1;
      p[mh + 13] = 200;
      cases.push({ name: "option past the end", packet: p, drop: "malformed" });
    }
  }
  // Cut short inside the BU's fixed part (the MH length still claims the whole message).
  {
    const p = bu.slice(0, mh + 12);
    p[4] = 0;
    p[5] = p.length - 40;
    cases.push({ name: "cut short", packet: p, drop: "malformed" });
  }
  // Wrong MH checksum: RFC 6275 §9.2 says discard silently.
  cases.push({ name: "bad MH checksum", packet: badChecksum(bu), drop: "malformed" });
  // Payload Proto other than 59 (RFC 6275 §9.2), with a checksum that is right for it.
  {
    const p = bu.slice();
    p[mh] = IPPROTO.UDP;
    const mhLength = p.length - mh;
    setMhChecksum(p, mh, mhLength, pseudoHeaderSum6(ip6(HOME), 0, ip6(CN6), 0, IPPROTO.MOBILITY, mhLength));
    cases.push({ name: "payload proto not 59", packet: p, drop: "malformed" });
  }
  // Shorter than the BU's flags: not recognised as a BU at all, so it is routed on to the
  // correspondent like any packet (which discards it), and binds nothing.
  {
    const p = bu.slice(0, mh + 10);
    p[4] = 0;
    p[5] = p.length - 40;
    const out = send(f, 1, tunnelled(p));
    t.is(out.length, 1);
    t.is(f.counters.actions.route, 1);
  }
  for (const k of cases) {
    const before = { ...f.counters.drops };
    const out = send(f, 1, tunnelled(k.packet));
    t.is(f.counters.drops[k.drop], before[k.drop] + 1, k.name);
    t.is(out.length, 0, `${k.name}: nothing sent`);
  }
  t.is(f.counters.actions["correspondent-binding"], 0);
  t.is(f.counters.drops["internal-error"], 0);
  t.is(fromCn6(f), "routed");
});

test("random corruption of BUs never throws inside the forwarder", (t) => {
  const f = router();
  const bu = buPacket({ sequence: 1 });
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 3000; i++) {
    const p = bu.slice();
    const flips = 1 + rand(4);
    for (let j = 0; j < flips; j++) p[40 + rand(p.length - 40)] = rand(256);
    send(f, 1, tunnelled(p), i);
  }
  t.is(f.counters.drops["internal-error"], 0);
  const d = f.counters.drops;
  const a = f.counters.actions;
  const handled = a["correspondent-binding"] + d["correspondent-refused"] + d.malformed + a.route + d["no-route"] + d.local + (d["no-rule"] ?? 0) + a.deliver + (d["untranslatable-protocol"] ?? 0) + a["translate-6to4"];
  t.true(handled > 0);
  t.true(d.malformed > 0, "some corruptions are seen as malformed");
});

test("threads (workers: N): a binding one thread takes is adopted by another, whose correspondent packets then take the shortcut; so is its removal, and a stale sequence is judged on the adopted binding", (t) => {
  const changes: CorrespondentChange[] = [];
  const share = { neighbourLearned: () => {}, correspondentChanged: (c: CorrespondentChange) => changes.push(structuredClone(c)) };
  const make = () => {
    const f = new Forwarder(labWorker({ correspondentRouter: true }), 0, { share });
    f.replaceRules({ revision: 1n, rules: rules() });
    return f;
  };
  const a = make();
  const b = make();
  t.true(ackOf(send(a, 1, tunnelled(buPacket({ sequence: 5, lifetimeS: 300 })))).ok);
  t.is(changes.length, 1, "the binding was shared");
  t.is(fromCn6(b), "routed", "not adopted yet");
  b.adoptCorrespondent(changes.shift()!);
  t.is(fromCn6(b), "shortcut", "b sends the correspondent's packets straight to the VM");
  t.is(changes.length, 0, "adopting shares nothing again");
  // b judges the next update by the adopted binding: sequence 5 again is stale.
  t.is(ackOf(send(b, 1, tunnelled(buPacket({ sequence: 5, lifetimeS: 300 })))).status, BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW);
  t.is(changes.length, 0);
  t.true(ackOf(send(b, 1, tunnelled(buPacket({ sequence: 6, lifetimeS: 0 })))).ok);
  t.is(changes.length, 1, "the removal was shared");
  t.is(fromCn6(a), "shortcut");
  a.adoptCorrespondent(changes.shift()!);
  t.is(fromCn6(a), "routed");
});

test("a takeover hands the correspondent bindings over the takeover socket: the new worker's forwarder takes the short way at once; malformed or expired entries are not adopted", async (t) => {
  const old = new Forwarder(labWorker({ correspondentRouter: true }), 0);
  old.replaceRules({ revision: 1n, rules: rules() });
  const fresh = new Forwarder(labWorker({ correspondentRouter: true }), 0);
  fresh.replaceRules({ revision: 1n, rules: rules() });
  t.true(ackOf(send(old, 1, tunnelled(buPacket({ sequence: 5, lifetimeS: 300 })))).ok);
  t.is(fromCn6(old), "shortcut");
  t.is(fromCn6(fresh), "routed", "a new process starts without it");

  const dir = mkdtempSync(join(tmpdir(), "m46-ro-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = await serveTakeover(join(dir, "takeover.sock"), {
    workerId: "dp-1", revision: () => 1n, neighbours: () => [], leave: async () => undefined, afterLeft: () => undefined,
    bindings: () => handedBindings(old.correspondentBindings()),
  }, silentLogger);
  t.teardown(() => server.close());
  const peer = await connectTakeover(join(dir, "takeover.sock"));
  const handed = await peer!.leave();
  peer!.close();
  t.is(handed.length, 1);
  t.like(handed[0], { home: HOME, careOfIPv6: CARE_OF6, careOfIPv4: CARE_OF4, sequence: 5 });
  // These forwarders run on the fixtures' clock (0); a worker's on Date.now(), in both processes.
  for (const c of bindingsToAdopt(handed, 0)) fresh.adoptCorrespondent(c);
  t.is(fromCn6(fresh), "shortcut", "the correspondent's packets go straight to the VM after the takeover");
  t.is(ackOf(send(fresh, 1, tunnelled(buPacket({ sequence: 5, lifetimeS: 300 })))).status, BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW, "and the next update is judged by the handed binding's sequence");

  t.deepEqual(bindingsToAdopt([{ ...handed[0], expiresAtMs: 0 }, { ...handed[0], home: "not an address" }, "junk"], 0), [], "expired, malformed and foreign entries are left out");
  t.deepEqual(bindingsToAdopt("junk", 0), []);
});
