// IPv4-translatable destinations (RFC 6052 §2, RFC 6144) in the forwarder: the translation-prefix
// rule's `ipv4Translatable` makes the worker translate IPv4 packets to those addresses (after the
// explicit mappings, RFC 7757 §3.3) and answer ARP for them. The exact bytes are the translator's
// pair tests (test/dataplane/translate) and the offline cases; here: the decision and the responder.
import test from "ava";
import { Forwarder, RuleTableError } from "../../../dataplane/forward/index.js";
import { ARP_OPERATION, parseArp } from "../../../dataplane/packet/arp.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { collector, ip4, ip6, labRules, labWorker, udp4Frame } from "./helpers.js";
import { arpRequest, hex } from "./hook-helpers.js";

/** The IPv6 source and destination of an emitted frame (IPv6 after a 14-byte Ethernet header). */
const src6 = (frame: Uint8Array): string => hex(frame.subarray(22, 38));
const dst6 = (frame: Uint8Array): string => hex(frame.subarray(38, 54));

// 198.18.0.0/24 (RFC 2544 §C.2.2): neither served nor routed by the lab worker, so only the list can make it ours.
const LISTED = ["198.18.0.0/24", "198.51.100.0/24"];

function rulesWith(list: string[] | undefined): Rule[] {
  return labRules().map((r) => (r.kind === "translation-prefix" && list !== undefined ? { ...r, ipv4Translatable: list } : r));
}

function worker(list: string[] | undefined): Forwarder {
  // The RFC 6052 forms of the IPv4-translatable addresses leave by the IPv6 gateway.
  const f = new Forwarder(labWorker({ routes: [...labWorker().routes!, { prefix: "2001:db8:64::/96", interface: "v6", via: "2001:db8:1::1" }] }), 0);
  f.replaceRules({ revision: 1n, rules: rulesWith(list) });
  return f;
}

test("RFC 6052 §2: ARP for an IPv4-translatable address is answered, for one outside the list it is not", (t) => {
  const without = worker(undefined);
  const c0 = collector();
  without.processFrame(1, arpRequest("198.18.0.7"), c0.emit, 0);
  t.is(c0.sent.length, 0, "no list: 198.18.0.7 is not ours");

  const f = worker(LISTED);
  const c = collector();
  f.processFrame(1, arpRequest("198.18.0.7"), c.emit, 0);
  t.is(c.sent.length, 1);
  const a = parseArp(c.sent[0].frame, 14)!;
  t.is(a.operation, ARP_OPERATION.REPLY);
  t.is(hex(c.sent[0].frame.subarray(a.senderIpOffset, a.senderIpOffset + 4)), hex(ip4("198.18.0.7")));
  f.processFrame(1, arpRequest("198.18.1.7"), c.emit, 0);
  t.is(c.sent.length, 1, "198.18.1.7 is outside the list");
});

test("RFC 6052 §2: an IPv4 packet to an IPv4-translatable address is translated to its RFC 6052 form; outside the list it is not", (t) => {
  const f = worker(LISTED);
  const c = collector();
  f.processFrame(1, udp4Frame("203.0.113.5", "198.18.0.7"), c.emit, 0);
  t.is(f.counters.actions["translate-4to6"], 1);
  t.is(c.sent.length, 1);
  t.is(c.sent[0].ifIndex, 2);
  t.is(c.sent[0].frame[14] >> 4, 6);
  t.is(dst6(c.sent[0].frame), hex(ip6("2001:db8:64::c612:7")));
  t.is(src6(c.sent[0].frame), hex(ip6("2001:db8:64::cb00:7105")));

  f.processFrame(1, udp4Frame("203.0.113.5", "198.18.1.7"), c.emit, 0);
  t.is(f.counters.actions["translate-4to6"], 1, "198.18.1.7 is not translated");
  t.false(c.sent.some((s) => s.ifIndex === 2 && s !== c.sent[0]));
});

test("RFC 7757 §3.3: an EAM inside an IPv4-translatable prefix wins over the prefix", (t) => {
  const f = worker(LISTED);
  const c = collector();
  // 198.51.100.20 is vm/b's explicit mapping (2001:db8:1::50); 198.51.100.0/24 is listed too.
  f.processFrame(1, udp4Frame("203.0.113.5", "198.51.100.20"), c.emit, 0);
  t.is(c.sent.length, 1);
  t.is(dst6(c.sent[0].frame), hex(ip6("2001:db8:1::50")));
  // Its neighbour 198.51.100.21 has no EAM: it takes the prefix.
  f.processFrame(1, udp4Frame("203.0.113.5", "198.51.100.21"), c.emit, 0);
  t.is(f.counters.actions["translate-4to6"], 2);
  t.is(dst6(c.sent[1].frame), hex(ip6("2001:db8:64::c633:6415")));
});

test("translation-prefix ipv4Translatable and address-mapping lengths: bad rules are refused with the field, the table unchanged", (t) => {
  const f = worker(LISTED);
  const refused = (rule: Record<string, unknown>): string =>
    t.throws(() => f.applyDelta(2n, [rule as unknown as Rule], []), { instanceOf: RuleTableError })!.message;
  const prefix = { key: "p2", kind: "translation-prefix", prefix: "2001:db8:65::/96" };
  t.regex(refused({ ...prefix, ipv4Translatable: "198.18.1.0/24" }), /^rule "p2": ipv4Translatable: must be a list of IPv4 prefixes/);
  t.regex(refused({ ...prefix, ipv4Translatable: ["2001:db8::/64"] }), /^rule "p2": ipv4Translatable\[0\]: must be an IPv4 prefix/);
  t.regex(refused({ ...prefix, ipv4Translatable: ["198.18.1.1/24"] }), /^rule "p2": ipv4Translatable\[0\]: /);
  t.regex(refused({ ...prefix, ipv4Translatable: ["198.18.0.128/25"] }), /IPv4-translatable prefix 198\.18\.0\.128\/25 overlaps 198\.18\.0\.0\/24/);
  // RFC 7757 §3.2: the IPv6 suffix must hold the IPv4 suffix.
  t.regex(refused({ key: "m", kind: "address-mapping", ipv4: "203.0.113.0/24", ipv6: "2001:db8:ea::/121" }), /^rule "m": ipv6: a \/24 needs an IPv6 prefix of \/120 or shorter/);
  t.is(f.ruleCount, labRules().length, "nothing was applied");
  // A longer IPv6 suffix is accepted.
  f.applyDelta(3n, [{ key: "m", kind: "address-mapping", ipv4: "203.0.113.0/24", ipv6: "2001:db8:ea::/72" }], []);
  t.is(f.ruleCount, labRules().length + 1);
});
