// The rule table compiled into lookup structures the packet path reads with one Map probe per
// question: "is this a pool address being re-encapsulated?", "is this outer source a tunnel peer
// of this kind?", "is this an explicitly mapped IPv4 address?", "does an encapsulate rule hold
// this source?" (a probe by source address, then a short prefix list). Each question has its
// index (indexes.ts), over the rules' slots (slots.ts). A snapshot builds a new `CompiledRules`;
// a delta changes only the entries of the rules it names (the translator's AddressMapping is
// rebuilt when, and only when, mapping rules change).
import type { Rule, TunnelType } from "../../lib/rules/rules.js";
import { AddressMapping, AddressMappingError, type ExplicitAddressMapping, type Rfc6052Prefix } from "../translate/index.js";
import type { TunnelPeerTable } from "../tunnel/peers.js";
import { mask4 } from "./addresses.js";
import { EamIndex, EncapIndex, PeerIndex, Reencap4Index, Reencap6Index } from "./indexes.js";
import { RuleTableError, type ParsedOf } from "./rules.js";
import { A, B, Kind, RuleSlots, STRIDE, type RuleImage } from "./slots.js";

export class CompiledRules {
  revision: bigint;
  readonly slots: RuleSlots;
  // The indexes the packet path asks (indexes.ts), one per rule kind.
  readonly reencap4: Reencap4Index;
  readonly reencap6: Reencap6Index;
  private readonly peerIndex: PeerIndex;
  readonly peers: Record<TunnelType, TunnelPeerTable>;
  readonly eam: EamIndex;
  readonly encaps = new EncapIndex();
  /** The translator's mapping, rebuilt when a mapping rule changes. */
  mapping: AddressMapping = AddressMapping.build({});
  /** The address-mapping rules' slots and the translation prefixes, in table order: what the mapping is built from. */
  private readonly eamSlots = new Set<number>();
  private readonly prefixes = new Map<number, Rfc6052Prefix>();

  private constructor(revision: bigint, slots: RuleSlots) {
    this.revision = revision;
    this.slots = slots;
    this.reencap4 = new Reencap4Index(slots);
    this.reencap6 = new Reencap6Index(slots);
    this.peerIndex = new PeerIndex(slots);
    this.peers = this.peerIndex.peers;
    this.eam = new EamIndex(slots);
  }

  static empty(): CompiledRules {
    return new CompiledRules(-1n, new RuleSlots());
  }

  /** A whole snapshot; throws RuleTableError. */
  static compile(revision: bigint, rules: readonly Rule[]): CompiledRules {
    return CompiledRules.over(revision, RuleSlots.build(rules));
  }

  /** A snapshot as another thread's RuleSlots.image() (its rules checked there): no text parsed again. Throws RuleTableError (a mapping clash). */
  static fromImage(revision: bigint, image: RuleImage): CompiledRules {
    return CompiledRules.over(revision, RuleSlots.fromImage(image));
  }

  private static over(revision: bigint, slots: RuleSlots): CompiledRules {
    const c = new CompiledRules(revision, slots);
    const order = slots.byKey.slots();
    for (const slot of order) {
      const k = slots.kinds[slot];
      if (k === Kind.Mapping) c.eamSlots.add(slot);
      else if (k === Kind.Prefix) c.prefixes.set(slot, (slots.parsed.get(slot) as ParsedOf<"translation-prefix">).prefix);
    }
    c.mapping = c.buildMapping(c.eamSlots, c.prefixes);
    for (const slot of order) c.add(slot);
    c.flush();
    return c;
  }

  get size(): number {
    return this.slots.size;
  }

  /**
   * Removes `removes`, then adds or replaces `updates`, as one step: everything is validated
   * (and the new mapping built) before anything changes, so a RuleTableError leaves the table as
   * it was. Removing an unknown key is not an error (deltas are idempotent).
   */
  applyDelta(revision: bigint, updates: readonly Rule[], removes: readonly string[]): void {
    const s = this.slots;
    const staged: number[] = [];
    try {
      const seen = new Set<string>();
      for (const u of updates) {
        const slot = s.fill(u);
        staged.push(slot);
        const key = s.keys[slot]!;
        if (seen.has(key)) throw new RuleTableError(`rule ${JSON.stringify(key)}: key: appears twice in the delta`);
        seen.add(key);
      }
      const gone: number[] = [];
      const goneKeys = new Set<string>(removes);
      for (const slot of staged) goneKeys.add(s.keys[slot]!);
      for (const k of goneKeys) {
        const slot = s.slotOf(k);
        if (slot >= 0) gone.push(slot);
      }
      const isMapping = (slot: number) => s.kinds[slot] === Kind.Mapping || s.kinds[slot] === Kind.Prefix;
      let mapping = this.mapping;
      const mappingChanged = staged.some(isMapping) || gone.some(isMapping);
      if (mappingChanged) {
        const eams = new Set(this.eamSlots);
        const prefixes = new Map(this.prefixes);
        for (const slot of gone) {
          eams.delete(slot);
          prefixes.delete(slot);
        }
        for (const slot of staged) {
          if (s.kinds[slot] === Kind.Mapping) eams.add(slot);
          else if (s.kinds[slot] === Kind.Prefix) prefixes.set(slot, (s.parsed.get(slot) as ParsedOf<"translation-prefix">).prefix);
        }
        mapping = this.buildMapping(eams, prefixes);
        // Nothing below throws.
        this.mapping = mapping;
        replaceSet(this.eamSlots, eams);
        replaceMap(this.prefixes, prefixes);
      }
      for (const slot of gone) {
        this.remove(slot);
        s.release(slot);
      }
      for (const slot of staged) {
        s.commit(slot);
        this.add(slot);
      }
      staged.length = 0;
      this.flush();
      s.settle();
      this.revision = revision;
    } finally {
      // A refused delta: its slots were never in the table.
      for (const slot of staged) s.discard(slot);
    }
  }

  private add(slot: number): void {
    switch (this.slots.kinds[slot]) {
      case Kind.Reencap4: return this.reencap4.add(slot);
      case Kind.Reencap6: return this.reencap6.add(slot);
      case Kind.Peer: return this.peerIndex.add(slot);
      case Kind.Mapping: return this.eam.add(slot);
      case Kind.Encap: return this.encaps.add(this.slots.parsed.get(slot) as ParsedOf<"encapsulate">);
    }
  }

  private remove(slot: number): void {
    switch (this.slots.kinds[slot]) {
      case Kind.Reencap4: return this.reencap4.remove(slot);
      case Kind.Reencap6: return this.reencap6.remove(slot);
      case Kind.Peer: return this.peerIndex.remove(slot);
      case Kind.Mapping: return this.eam.remove(slot);
      case Kind.Encap: return this.encaps.remove(this.slots.parsed.get(slot) as ParsedOf<"encapsulate">);
    }
  }

  private flush(): void {
    this.reencap4.flush();
    this.reencap6.flush();
    this.peerIndex.flush();
  }

  rules(): Rule[] {
    return this.slots.rules();
  }

  /** The mapping of an address-mapping rule's slot, as the translator takes it. */
  private eamOf(slot: number): ExplicitAddressMapping {
    const s = this.slots;
    return { ipv4: s.words[slot * STRIDE + A] >>> 0, ipv4Length: s.lengthA(slot), ipv6: s.bytes(slot, B, true), ipv6Length: s.lengthB(slot) };
  }

  private buildMapping(eamSlots: Set<number>, prefixes: Map<number, Rfc6052Prefix>): AddressMapping {
    const eams = [...eamSlots].map((slot) => this.eamOf(slot));
    try {
      return AddressMapping.build({ eam: eams, rfc6052: [...prefixes.values()] });
    } catch (e) {
      if (e instanceof AddressMappingError) {
        // Name the rule: the only refusals for valid entries are duplicates, so find the second one.
        const seen = new Set<string>();
        let i = 0;
        for (const slot of eamSlots) {
          const m = eams[i++];
          const a = `4/${m.ipv4 & mask4(m.ipv4Length)}/${m.ipv4Length}`;
          const b = `6/${hex(m.ipv6.subarray(0, m.ipv6Length >> 3))}/${m.ipv6Length}`;
          if (seen.has(a) || seen.has(b)) throw new RuleTableError(`rule ${JSON.stringify(this.slots.keys[slot])}: ${e.message}`);
          seen.add(a);
          seen.add(b);
        }
        throw new RuleTableError(e.message);
      }
      throw e;
    }
  }
}

function replaceSet<V>(target: Set<V>, source: Set<V>): void {
  target.clear();
  for (const v of source) target.add(v);
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
