// Rules between the domain form and the protobuf messages: every kind survives
// ruleToMessage → binary encoding → ruleFromMessage, optional fields stay absent, and a message
// this version cannot read (an unknown tunnel kind) gives undefined rather than a wrong rule.
import test from "ava";
import { Rule as RuleMessage, TunnelKind } from "../../../gen/mip46/v1/control.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { inDependencyOrder, ruleFromMessage, ruleToMessage } from "../../../lib/rules/wire.js";

const RULES: Rule[] = [
  { key: "vm/a/reencap", kind: "reencap-4in4-to-4in6", poolIPv4: "198.51.100.10", careOfIPv6: "2001:db8:1::c000:201", vmId: "a" },
  { key: "vm/b/reencap", kind: "reencap-6in6-to-6in4", careOfIPv6: "2001:db8:3::c000:264", careOfIPv4: "192.0.2.100", vmId: "b" },
  { key: "vm/a/peer", kind: "tunnel-peer", tunnel: "4in6", peer: "2001:db8:1::c000:201", innerSource: "192.0.2.1", vmId: "a" },
  { key: "r1", kind: "tunnel-peer", tunnel: "4in4", peer: "192.0.2.10" },
  { key: "vm/b/mapping", kind: "address-mapping", ipv4: "198.51.100.20", ipv6: "2001:db8:1::50" },
  { key: "prefix", kind: "translation-prefix", prefix: "2001:db8:64::/96" },
  { key: "vm/a/encap", kind: "encapsulate", tunnel: "4in6", remote: "2001:db8:1::fe", innerSource: "192.0.2.1", vmId: "a" },
  { key: "vm/b/encap", kind: "encapsulate", tunnel: "6in4", remote: "192.0.2.254", local: "192.0.2.100", innerSource: "2001:db8:1::50", innerDestination: "2001:db8:c::/64", vmId: "b" },
  { key: "default", kind: "encapsulate", tunnel: "4in4", remote: "192.0.2.10" },
  { key: "vm/d/encap", kind: "encapsulate", tunnel: "6in6", remote: "2001:db8:1::10", innerSource: "2001:db8:1::51" },
  { key: "prefix-pool6", kind: "translation-prefix", prefix: "2001:db8:65::/96", ipv4Translatable: ["203.0.113.0/25", "198.51.100.128/25"] },
];

for (const rule of RULES) {
  test(`${rule.kind} "${rule.key}" survives the wire both ways`, (t) => {
    const bytes = RuleMessage.encode(ruleToMessage(rule)).finish();
    const back = ruleFromMessage(RuleMessage.decode(bytes));
    t.deepEqual(back, rule);
  });
}

test("an encapsulate rule is the Encapsulate message of Rule.kind field 7 with the tunnel kind enum", (t) => {
  const m = ruleToMessage(RULES[6]);
  t.deepEqual(m.kind, { $case: "encapsulate", value: { kind: TunnelKind.TUNNEL_KIND_IPV4_IN_IPV6, remote: "2001:db8:1::fe", local: "", innerSource: "192.0.2.1", innerDestination: "", vmId: "a" } });
  // Protobuf encoding: after the key (field 1, one length byte), field 7 with wire type 2.
  const bytes = RuleMessage.encode(m).finish();
  t.is(bytes[2 + "vm/a/encap".length], (7 << 3) | 2);
});

test("an encapsulate message with an unknown tunnel kind is not understood", (t) => {
  const m = ruleToMessage(RULES[6]);
  if (m.kind?.$case !== "encapsulate") return t.fail();
  m.kind.value.kind = TunnelKind.TUNNEL_KIND_UNSPECIFIED;
  t.is(ruleFromMessage(m), undefined);
});

test("adds go in dependency order: prefixes and mappings, then peers, then the rules that send through tunnels", (t) => {
  // Within one rank, by key.
  t.deepEqual(inDependencyOrder(RULES).map((r) => r.key), [
    "prefix", "prefix-pool6", "vm/b/mapping", "r1", "vm/a/peer",
    "default", "vm/a/encap", "vm/a/reencap", "vm/b/encap", "vm/b/reencap", "vm/d/encap",
  ]);
});

test("a translation-prefix's ipv4Translatable is TranslationPrefix field 2, repeated; an empty list reads back as absent", (t) => {
  const m = ruleToMessage({ key: "p", kind: "translation-prefix", prefix: "2001:db8:65::/96", ipv4Translatable: ["203.0.113.0/25"] });
  t.deepEqual(m.kind, { $case: "translationPrefix", value: { prefix: "2001:db8:65::/96", ipv4Translatable: ["203.0.113.0/25"] } });
  const empty = ruleFromMessage(RuleMessage.decode(RuleMessage.encode(ruleToMessage({ key: "p", kind: "translation-prefix", prefix: "2001:db8:65::/96", ipv4Translatable: [] })).finish()));
  t.deepEqual(empty, { key: "p", kind: "translation-prefix", prefix: "2001:db8:65::/96" });
});
