// The rule table compiled into lookup structures the packet path reads with one Map probe per
// question: "is this a pool address being re-encapsulated?", "is this outer source a tunnel peer
// of this kind?", "is this an explicitly mapped IPv4 address?", "does an encapsulate rule hold
// this source?" (a probe by source address, then a short prefix list). Each question has its
// index (indexes.ts). A snapshot builds a new `CompiledRules`; a delta changes only the entries of
// the rules it names (the translator's AddressMapping is rebuilt when, and only when, mapping
// rules change).
import type { Rule, TunnelType } from "../../lib/rules/rules.js";
import { AddressMapping, AddressMappingError, type ExplicitAddressMapping, type Rfc6052Prefix } from "../translate/index.js";
import type { TunnelPeerTable } from "../tunnel/peers.js";
import { mask4 } from "./addresses.js";
import { EamIndex, EncapIndex, PeerIndex, Reencap4Index, Reencap6Index, type RuleIndex } from "./indexes.js";
import { parseRule, RuleTableError, type Parsed, type ParsedOf } from "./rules.js";

/** `translation-prefix` rules need no index of their own: the translator's mapping holds them. */
const NO_INDEX: RuleIndex<Parsed> = { add: () => {}, remove: () => {} };

export class CompiledRules {
  revision: bigint;
  readonly byKey = new Map<string, Parsed>();
  // The indexes the packet path asks (indexes.ts), one per rule kind.
  readonly reencap4 = new Reencap4Index();
  readonly reencap6 = new Reencap6Index();
  private readonly peerIndex = new PeerIndex();
  readonly peers: Record<TunnelType, TunnelPeerTable> = this.peerIndex.peers;
  readonly eam = new EamIndex();
  readonly encaps = new EncapIndex();
  /** The index of each rule kind. */
  private readonly indexes: { [K in Parsed["kind"]]: RuleIndex<ParsedOf<K>> } = {
    "reencap-4in4-to-4in6": this.reencap4,
    "reencap-6in6-to-6in4": this.reencap6,
    "tunnel-peer": this.peerIndex,
    "address-mapping": this.eam,
    "translation-prefix": NO_INDEX,
    "encapsulate": this.encaps,
  };
  /** The translator's mapping, rebuilt when a mapping rule changes. */
  mapping: AddressMapping = AddressMapping.build({});
  private readonly eams = new Map<string, ExplicitAddressMapping>();
  private readonly prefixes = new Map<string, Rfc6052Prefix>();

  private constructor(revision: bigint) {
    this.revision = revision;
  }

  static empty(): CompiledRules {
    return new CompiledRules(-1n);
  }

  /** A whole snapshot; throws RuleTableError. */
  static compile(revision: bigint, rules: readonly Rule[]): CompiledRules {
    const c = new CompiledRules(revision);
    if (!Array.isArray(rules)) throw new RuleTableError("rules: must be an array");
    const parsed: Parsed[] = new Array(rules.length);
    for (let i = 0; i < rules.length; i++) {
      const p = parseRule(rules[i]);
      if (c.byKey.has(p.rule.key)) throw new RuleTableError(`rule ${JSON.stringify(p.rule.key)}: key: appears twice in the table`);
      c.byKey.set(p.rule.key, p);
      parsed[i] = p;
      if (p.kind === "address-mapping") c.eams.set(p.rule.key, p.eam);
      else if (p.kind === "translation-prefix") c.prefixes.set(p.rule.key, p.prefix);
    }
    c.mapping = buildMapping(c.eams, c.prefixes);
    for (const p of parsed) c.add(p);
    c.peerIndex.flush();
    return c;
  }

  get size(): number {
    return this.byKey.size;
  }

  /**
   * Removes `removes`, then adds or replaces `updates`, as one step: everything is validated
   * (and the new mapping built) before anything changes, so a RuleTableError leaves the table as
   * it was. Removing an unknown key is not an error (deltas are idempotent).
   */
  applyDelta(revision: bigint, updates: readonly Rule[], removes: readonly string[]): void {
    const parsed = updates.map(parseRule);
    const seen = new Set<string>();
    for (const p of parsed) {
      if (seen.has(p.rule.key)) throw new RuleTableError(`rule ${JSON.stringify(p.rule.key)}: key: appears twice in the delta`);
      seen.add(p.rule.key);
    }
    const gone = new Set<string>(removes);
    for (const p of parsed) gone.add(p.rule.key);
    const touchesMapping = (k: string): boolean => this.eams.has(k) || this.prefixes.has(k);
    let mappingChanged = parsed.some((p) => p.kind === "address-mapping" || p.kind === "translation-prefix");
    for (const k of gone) if (touchesMapping(k)) mappingChanged = true;
    let mapping = this.mapping;
    let eams = this.eams;
    let prefixes = this.prefixes;
    if (mappingChanged) {
      eams = new Map(this.eams);
      prefixes = new Map(this.prefixes);
      for (const k of gone) {
        eams.delete(k);
        prefixes.delete(k);
      }
      for (const p of parsed) {
        if (p.kind === "address-mapping") eams.set(p.rule.key, p.eam);
        else if (p.kind === "translation-prefix") prefixes.set(p.rule.key, p.prefix);
      }
      mapping = buildMapping(eams, prefixes);
    }
    // Nothing below throws.
    for (const k of gone) {
      const old = this.byKey.get(k);
      if (old !== undefined) this.remove(old);
    }
    if (mappingChanged) {
      this.mapping = mapping;
      replaceMap(this.eams, eams);
      replaceMap(this.prefixes, prefixes);
    }
    for (const p of parsed) this.add(p);
    this.peerIndex.flush();
    this.revision = revision;
  }

  private add(p: Parsed): void {
    this.byKey.set(p.rule.key, p);
    (this.indexes[p.kind] as RuleIndex<Parsed>).add(p);
  }

  private remove(p: Parsed): void {
    this.byKey.delete(p.rule.key);
    (this.indexes[p.kind] as RuleIndex<Parsed>).remove(p);
  }

  rules(): Rule[] {
    return [...this.byKey.values()].map((p) => p.rule);
  }
}

function replaceMap<K, V>(target: Map<K, V>, source: Map<K, V>): void {
  target.clear();
  for (const [k, v] of source) target.set(k, v);
}

function hex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  return s;
}

function buildMapping(eams: Map<string, ExplicitAddressMapping>, prefixes: Map<string, Rfc6052Prefix>): AddressMapping {
  try {
    return AddressMapping.build({ eam: [...eams.values()], rfc6052: [...prefixes.values()] });
  } catch (e) {
    if (e instanceof AddressMappingError) {
      // Name the rule: the only refusals for valid entries are duplicates, so find the second one.
      const seen = new Set<string>();
      for (const [k, m] of eams) {
        const a = `4/${m.ipv4 & mask4(m.ipv4Length)}/${m.ipv4Length}`;
        const b = `6/${hex(m.ipv6.subarray(0, m.ipv6Length >> 3))}/${m.ipv6Length}`;
        if (seen.has(a) || seen.has(b)) throw new RuleTableError(`rule ${JSON.stringify(k)}: ${e.message}`);
        seen.add(a);
        seen.add(b);
      }
      throw new RuleTableError(e.message);
    }
    throw e;
  }
}
