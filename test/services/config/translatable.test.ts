// translation.ipv4Translatable (RFC 6052 §2): the IPv4 prefixes the workers translate with the
// RFC 6052 prefix. Accepted when they are prefixes outside the pool and the segments; refused by path.
import test from "ava";
import { parseConfig } from "../../../services/config/config.js";
import { ConfigError } from "../../../services/errors.js";
import { labConfig } from "../../../harness/engine.js";
import { configRules } from "../../../services/rules/compile.js";
import { cidrText } from "../../../lib/net/address.js";

const XLAT = { prefix: "2001:db8:64::/96", icmpErrorSource: "198.51.100.1" };
const plan = (translation: Record<string, unknown>) => labConfig("/nonexistent", { translation });

test("translation.ipv4Translatable: IPv4 prefixes outside the pool and the segments are accepted and compiled into the translation-prefix rule", (t) => {
  const c = parseConfig(plan({ ...XLAT, ipv4Translatable: ["203.0.113.0/25", "203.0.113.128/26"] }));
  t.deepEqual(c.ipv4Translatable.map(cidrText), ["203.0.113.0/25", "203.0.113.128/26"]);
  t.deepEqual(configRules(c), [
    { key: "config/translation-prefix", kind: "translation-prefix", prefix: "2001:db8:64::/96", ipv4Translatable: ["203.0.113.0/25", "203.0.113.128/26"] },
  ]);
  // Without the list the rule is as before: no ipv4Translatable field.
  const plain = parseConfig(plan(XLAT));
  t.deepEqual(plain.ipv4Translatable, []);
  t.deepEqual(configRules(plain), [{ key: "config/translation-prefix", kind: "translation-prefix", prefix: "2001:db8:64::/96" }]);
});

const refused: [string, Record<string, unknown>, RegExp][] = [
  ["not a list", { ...XLAT, ipv4Translatable: "203.0.113.0/24" }, /^translation\.ipv4Translatable: /],
  ["not a prefix", { ...XLAT, ipv4Translatable: ["203.0.113.0/33"] }, /^translation\.ipv4Translatable\[0\]: /],
  ["an IPv6 prefix", { ...XLAT, ipv4Translatable: ["2001:db8::/64"] }, /^translation\.ipv4Translatable\[0\]: /],
  ["host bits set", { ...XLAT, ipv4Translatable: ["203.0.113.1/24"] }, /^translation\.ipv4Translatable\[0\]: /],
  ["overlapping the pool (its addresses have explicit mappings)", { ...XLAT, ipv4Translatable: ["198.51.100.128/25"] }, /^translation\.ipv4Translatable\[0\]: 198\.51\.100\.128\/25 overlaps pool\.prefix 198\.51\.100\.0\/24/],
  ["overlapping a segment", { ...XLAT, ipv4Translatable: ["192.0.2.0/23"] }, /^translation\.ipv4Translatable\[0\]: 192\.0\.2\.0\/23 overlaps segments\[0\]\.network 192\.0\.2\.0\/24/],
  ["overlapping each other", { ...XLAT, ipv4Translatable: ["203.0.113.0/24", "203.0.113.64/26"] }, /^translation\.ipv4Translatable\[1\]: 203\.0\.113\.64\/26 overlaps translation\.ipv4Translatable\[0\]/],
  ["without translation.prefix", { ipv4Translatable: ["203.0.113.0/24"] }, /^translation\.ipv4Translatable: needs translation\.prefix/],
];
for (const [what, translation, message] of refused) {
  test(`translation.ipv4Translatable refused: ${what}`, (t) => {
    t.throws(() => parseConfig(plan(translation)), { instanceOf: ConfigError, message });
  });
}
