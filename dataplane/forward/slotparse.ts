// The parse of one rule into its slot (slots.ts): the common shape of the three bulk kinds
// straight into the words, hand-written (a snapshot parses 400,000 rules: this is most of its
// apply time); everything else through parseRule (rules.ts), so the language accepted and the
// errors are parseRule's, and the rule is kept as given.
import type { Rule } from "../../lib/rules/rules.js";
import { fast4Value, fast6Words, isIPv6Text } from "./addresses.js";
import { parseRule } from "./rules.js";
import { A, B, HAS_B, INNER6, Kind, KIND_OF, META, OUTER6, STRIDE, TUNNEL_INDEX, VM_IN_KEY, type RuleSlots } from "./slots.js";

/**
 * The common shape of a bulk-kind rule, its addresses in canonical text (what the words give
 * back), parsed into the slot; false when it is not that shape (parseRule decides then).
 */
export function fillFast(s: RuleSlots, slot: number, rule: Rule): boolean {
  const r = rule as unknown as Record<string, unknown>;
  if (typeof r !== "object" || r === null) return false;
  const key = r.key;
  if (typeof key !== "string" || key === "") return false;
  const w = s.words;
  const base = slot * STRIDE;
  let fields = 0;
  // for-in over a plain rule: its field count without allocating, so an extra field goes to the slow path (kept as given).
  for (const _ in r) fields++;
  switch (r.kind) {
    case "reencap-4in4-to-4in6": {
      if (fields !== 5 || typeof r.vmId !== "string" || !v4Text(r.poolIPv4, w, base + A) || !v6Text(r.careOfIPv6, w, base + B)) return false;
      w[base + META] = 32 | (128 << 8);
      s.kinds[slot] = Kind.Reencap4;
      break;
    }
    case "reencap-6in6-to-6in4": {
      if (fields !== 5 || typeof r.vmId !== "string" || !v6Text(r.careOfIPv6, w, base + A) || !v4Text(r.careOfIPv4, w, base + B)) return false;
      w[base + META] = 128 | (32 << 8);
      s.kinds[slot] = Kind.Reencap6;
      break;
    }
    case "tunnel-peer": {
      const t = TUNNEL_INDEX.get(r.tunnel);
      if (t === undefined || (r.vmId !== undefined && typeof r.vmId !== "string")) return false;
      if (fields !== 4 + (r.innerSource !== undefined ? 1 : 0) + (r.vmId !== undefined ? 1 : 0)) return false;
      if (!(OUTER6[t] ? v6Text(r.peer, w, base + A) : v4Text(r.peer, w, base + A))) return false;
      let meta = (OUTER6[t] ? 128 : 32) | (t << 16);
      if (r.innerSource !== undefined) {
        if (!(INNER6[t] ? v6Text(r.innerSource, w, base + B) : v4Text(r.innerSource, w, base + B))) return false;
        meta |= ((INNER6[t] ? 128 : 32) << 8) | HAS_B;
      }
      w[base + META] = meta;
      s.kinds[slot] = Kind.Peer;
      break;
    }
    case "address-mapping": {
      if (fields !== 4 || !v4Text(r.ipv4, w, base + A) || !v6Text(r.ipv6, w, base + B)) return false;
      w[base + META] = 32 | (128 << 8);
      s.kinds[slot] = Kind.Mapping;
      break;
    }
    default:
      return false;
  }
  s.keys[slot] = key;
  const vm = r.vmId as string | undefined;
  // The engine's keys hold the VM's id ("vm/<vmId>/reencap"): kept once, in the key.
  if (vm !== undefined && vm.length < 256 && key.charCodeAt(3 + vm.length) === 47 && key.startsWith("vm/") && key.startsWith(vm, 3)) {
    w[base + META] |= VM_IN_KEY | (vm.length << 20);
  } else if (vm !== undefined) {
    s.vmIds.set(slot, vm);
  }
  return true;
}

/** Any other rule: parseRule's result, the bulk kinds into the words (and the rule kept as given). */
export function fillParsed(s: RuleSlots, slot: number, rule: Rule): void {
  const p = parseRule(rule);
  const base = slot * STRIDE;
  s.keys[slot] = p.rule.key;
  switch (p.kind) {
    case "reencap-4in4-to-4in6":
      s.words[base + A] = p.entry.poolIPv4;
      toWords(p.entry.careOfIPv6, s.words, base + B);
      s.words[base + META] = 32 | (128 << 8);
      break;
    case "reencap-6in6-to-6in4":
      toWords(p.entry.careOfIPv6, s.words, base + A);
      toWords(p.entry.careOfIPv4, s.words, base + B);
      s.words[base + META] = 128 | (32 << 8);
      break;
    case "tunnel-peer": {
      const t = TUNNEL_INDEX.get(p.tunnel)!;
      toWords(p.peer, s.words, base + A);
      let meta = (p.peer.length * 8) | (t << 16);
      if (p.innerSource !== null) {
        toWords(p.innerSource.prefix, s.words, base + B);
        meta |= (p.innerSource.length << 8) | HAS_B;
      }
      s.words[base + META] = meta;
      break;
    }
    case "address-mapping":
      s.words[base + A] = p.eam.ipv4;
      toWords(p.eam.ipv6, s.words, base + B);
      s.words[base + META] = p.eam.ipv4Length | (p.eam.ipv6Length << 8);
      break;
    default:
      s.parsed.set(slot, p);
  }
  if (p.kind !== "translation-prefix" && p.kind !== "encapsulate") s.verbatim.set(slot, rule);
  s.kinds[slot] = KIND_OF[p.kind];
}

/** A dotted quad in canonical form into w[at]; false for anything else. */
function v4Text(t: unknown, w: Int32Array, at: number): boolean {
  if (typeof t !== "string") return false;
  const v = fast4Value(t);
  if (v < 0) return false;
  w[at] = v;
  return true;
}

/** An IPv6 address in RFC 5952 form into w[at..at+4]; false for anything else (another form is parseRule's, and kept as given). */
function v6Text(t: unknown, w: Int32Array, at: number): boolean {
  return typeof t === "string" && fast6Words(t, w, at) && isIPv6Text(t, w, at);
}

function toWords(b: Uint8Array, w: Int32Array, at: number): void {
  for (let i = 0; i < b.length >> 2; i++) w[at + i] = (b[4 * i] << 24) | (b[4 * i + 1] << 16) | (b[4 * i + 2] << 8) | b[4 * i + 3];
}
