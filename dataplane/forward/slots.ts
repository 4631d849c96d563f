// The rule table's storage (issue 12, "Scale": 100,000 bindings, 400,000 rules, in ≤ 200 MB):
// one slot per rule, its addresses as 32-bit words in one Int32Array, its kind in a Uint8Array,
// its key and vmId as the only strings. No object is kept per rule: the indexes (indexes.ts) hold
// slot numbers, and the objects the packet path uses (a re-encapsulation's entry with its route,
// a tunnel peer) are made from the words the first time a packet asks for them.
//
// What a rule said is given back by currentRules from the words when the text is what the
// formatter makes of them (the engine's canonical text, RFC 5952 for IPv6), so nothing of it
// needs keeping; a rule in any other form (a prefix where an address would do, upper-case hex,
// extra fields) is kept as given. The rare kinds (translation-prefix, encapsulate) keep their
// parsed object, which their index uses anyway.
//
// The parse is hand-written for the three bulk kinds (re-encapsulation, tunnel peer, address
// mapping) in slotparse.ts: the common shape straight into the words, everything else through
// parseRule (rules.ts), so the language accepted and the errors are parseRule's. Keys are in a
// hand-written index too (keyindex.ts).
import type { Rule, TunnelType } from "../../lib/rules/rules.js";
import { formatIPv4, formatIPv6Words } from "./addresses.js";
import { KeyIndex } from "./keyindex.js";
import { fillFast, fillParsed } from "./slotparse.js";
import { parseRule, RuleTableError, type Parsed } from "./rules.js";

/** Rule kinds of a slot (plain numbers: the indexes test them on every add and remove). */
export const Kind = { Free: 0, Reencap4: 1, Reencap6: 2, Peer: 3, Mapping: 4, Prefix: 5, Encap: 6 } as const;

/** Words per slot: address A (4), address B (4), meta (lengths, tunnel kind, flags). */
export const STRIDE = 9;
export const A = 0;
export const B = 4;
export const META = 8;
// meta: bits 0-7 length of A, 8-15 length of B, 16-17 tunnel kind, 18 B present (a peer's inner
// source), 19 the vmId is in the key ("vm/<vmId>/...", as the engine makes them), 20-27 its length.
export const HAS_B = 1 << 18;
export const VM_IN_KEY = 1 << 19;

export const TUNNELS: readonly TunnelType[] = ["4in4", "6in6", "4in6", "6in4"];
export const TUNNEL_INDEX = new Map<unknown, number>([["4in4", 0], ["6in6", 1], ["4in6", 2], ["6in4", 3]]);
/** Outer / inner family of each tunnel kind (by TUNNELS index): true = IPv6. */
export const OUTER6 = [false, true, true, false];
export const INNER6 = [false, true, false, true];

/** A snapshot of a RuleSlots as plain arrays (structured-clonable, the words shareable): what the main thread posts to forwarding threads. */
export interface RuleImage {
  /** Per rule, in table order. */
  kinds: Uint8Array;
  words: Int32Array;
  /** JSON of the keys in table order (one string: a list of 400,000 costs each thread's structured clone more). */
  keys: string;
  /** The vmIds not in their key, by their place in the order. */
  vmIds: [number, string][];
  /** Rules kept as given, by their place in the order. */
  kept: [number, Rule][];
}

export const KIND_OF: Record<Parsed["kind"], number> = {
  "reencap-4in4-to-4in6": Kind.Reencap4, "reencap-6in6-to-6in4": Kind.Reencap6, "tunnel-peer": Kind.Peer,
  "address-mapping": Kind.Mapping, "translation-prefix": Kind.Prefix, "encapsulate": Kind.Encap,
};

export class RuleSlots {
  kinds: Uint8Array;
  words: Int32Array;
  keys: (string | undefined)[];
  /** The vmIds not in their rule's key (VM_IN_KEY), by slot. */
  readonly vmIds = new Map<number, string>();
  /** translation-prefix and encapsulate rules, parsed. */
  readonly parsed = new Map<number, Parsed>();
  /** Bulk-kind rules whose text the words do not give back, as given. */
  readonly verbatim = new Map<number, Rule>();
  /** Key → slot, in table order (currentRules' order). */
  readonly byKey: KeyIndex;
  private top = 0;
  private readonly free: number[] = [];
  /** Released since the last settle: not reused before the indexes dropped them. */
  private readonly released: number[] = [];

  constructor(capacity = 16) {
    this.kinds = new Uint8Array(capacity);
    this.words = new Int32Array(capacity * STRIDE);
    this.keys = new Array(capacity);
    this.byKey = new KeyIndex(capacity, this.keys);
  }

  get size(): number {
    return this.byKey.count;
  }

  get capacity(): number {
    return this.kinds.length;
  }

  /** A whole table; RuleTableError on a bad rule or a key twice. */
  static build(rules: readonly Rule[]): RuleSlots {
    if (!Array.isArray(rules)) throw new RuleTableError("rules: must be an array");
    const s = new RuleSlots(Math.max(16, rules.length));
    for (let i = 0; i < rules.length; i++) {
      const slot = s.fill(rules[i]);
      const key = s.keys[slot]!;
      if (s.byKey.get(key) >= 0) throw new RuleTableError(`rule ${JSON.stringify(key)}: key: appears twice in the table`);
      s.byKey.add(slot);
    }
    return s;
  }

  /**
   * A delta on the table alone (no indexes: the main thread of a worker with threads keeps the
   * table this way): every update parsed first, so a RuleTableError changes nothing.
   */
  applyDelta(updates: readonly Rule[], removes: readonly string[]): void {
    const staged: number[] = [];
    try {
      const seen = new Set<string>();
      for (const u of updates) {
        const slot = this.fill(u);
        staged.push(slot);
        const key = this.keys[slot]!;
        if (seen.has(key)) throw new RuleTableError(`rule ${JSON.stringify(key)}: key: appears twice in the delta`);
        seen.add(key);
      }
      for (const k of [...removes, ...seen]) {
        const slot = this.slotOf(k);
        if (slot >= 0) this.release(slot);
      }
      for (const slot of staged) this.commit(slot);
      staged.length = 0;
      this.settle();
    } finally {
      for (const slot of staged) this.discard(slot);
    }
  }

  /** The slot of `key`, or -1. */
  slotOf(key: string): number {
    return this.byKey.get(key);
  }

  /** Parses `rule` into a new slot, not yet in the table (commit); RuleTableError, with nothing taken, on a bad one. */
  fill(rule: Rule): number {
    const slot = this.alloc();
    try {
      if (!fillFast(this, slot, rule)) fillParsed(this, slot, rule);
    } catch (e) {
      this.kinds[slot] = Kind.Free;
      this.keys[slot] = undefined;
      this.vmIds.delete(slot);
      this.free.push(slot);
      throw e;
    }
    return slot;
  }

  commit(slot: number): void {
    this.byKey.add(slot);
  }

  /** Gives up a filled slot that was never committed. */
  discard(slot: number): void {
    this.clear(slot);
    this.free.push(slot);
  }

  /** Takes a committed slot out of the table; it is reused after settle(). */
  release(slot: number): void {
    this.byKey.delete(slot);
    this.clear(slot);
    this.released.push(slot);
  }

  /** The indexes have dropped the released slots: they may be reused. */
  settle(): void {
    for (const s of this.released) this.free.push(s);
    this.released.length = 0;
  }

  private clear(slot: number): void {
    this.kinds[slot] = Kind.Free;
    this.keys[slot] = undefined;
    this.vmIds.delete(slot);
    this.parsed.delete(slot);
    this.verbatim.delete(slot);
  }

  private alloc(): number {
    const f = this.free.pop();
    if (f !== undefined) return f;
    if (this.top === this.kinds.length) this.grow(this.kinds.length * 2);
    return this.top++;
  }

  private grow(capacity: number): void {
    const kinds = new Uint8Array(capacity);
    kinds.set(this.kinds);
    const words = new Int32Array(capacity * STRIDE);
    words.set(this.words);
    this.kinds = kinds;
    this.words = words;
    this.keys.length = capacity;
    this.byKey.grow(capacity);
  }

  meta(slot: number): number {
    return this.words[slot * STRIDE + META];
  }

  tunnelOf(slot: number): number {
    return (this.meta(slot) >> 16) & 3;
  }

  hasB(slot: number): boolean {
    return (this.meta(slot) & HAS_B) !== 0;
  }

  lengthA(slot: number): number {
    return this.meta(slot) & 0xff;
  }

  lengthB(slot: number): number {
    return (this.meta(slot) >> 8) & 0xff;
  }

  /** Address A or B of a slot as bytes (4 or 16). */
  bytes(slot: number, at: number, v6: boolean): Uint8Array {
    const out = new Uint8Array(v6 ? 16 : 4);
    const base = slot * STRIDE + at;
    for (let w = 0; w < out.length >> 2; w++) {
      const v = this.words[base + w];
      out[4 * w] = v >>> 24; out[4 * w + 1] = (v >>> 16) & 255; out[4 * w + 2] = (v >>> 8) & 255; out[4 * w + 3] = v & 255;
    }
    return out;
  }

  /** The vmId of a bulk-kind slot's rule, or undefined. */
  vmIdOf(slot: number): string | undefined {
    const meta = this.meta(slot);
    return (meta & VM_IN_KEY) === 0 ? this.vmIds.get(slot) : this.keys[slot]!.slice(3, 3 + ((meta >> 20) & 0xff));
  }

  /** The rule of a slot, as given (or as its canonical text, which is what was given). */
  rule(slot: number): Rule {
    const kept = this.verbatim.get(slot) ?? this.parsed.get(slot)?.rule;
    if (kept !== undefined) return kept;
    const key = this.keys[slot]!;
    const w = this.words;
    const base = slot * STRIDE;
    switch (this.kinds[slot]) {
      case Kind.Reencap4:
        return { key, kind: "reencap-4in4-to-4in6", poolIPv4: formatIPv4(w[base + A] >>> 0), careOfIPv6: formatIPv6Words(w, base + B), vmId: this.vmIdOf(slot)! };
      case Kind.Reencap6:
        return { key, kind: "reencap-6in6-to-6in4", careOfIPv6: formatIPv6Words(w, base + A), careOfIPv4: formatIPv4(w[base + B] >>> 0), vmId: this.vmIdOf(slot)! };
      case Kind.Peer: {
        const t = this.tunnelOf(slot);
        const r: Rule = { key, kind: "tunnel-peer", tunnel: TUNNELS[t], peer: OUTER6[t] ? formatIPv6Words(w, base + A) : formatIPv4(w[base + A] >>> 0) };
        if (this.hasB(slot)) r.innerSource = INNER6[t] ? formatIPv6Words(w, base + B) : formatIPv4(w[base + B] >>> 0);
        const vm = this.vmIdOf(slot);
        if (vm !== undefined) r.vmId = vm;
        return r;
      }
      case Kind.Mapping:
        return { key, kind: "address-mapping", ipv4: formatIPv4(w[base + A] >>> 0), ipv6: formatIPv6Words(w, base + B) };
      default:
        throw new Error(`slot ${slot} holds no rule`);
    }
  }

  rules(): Rule[] {
    const out: Rule[] = [];
    for (let slot = this.byKey.head; slot >= 0; slot = this.byKey.next[slot]) out.push(this.rule(slot));
    return out;
  }

  /** The table as a RuleImage, its words in a SharedArrayBuffer (read, never written, by the threads it is posted to). */
  image(): RuleImage {
    const n = this.byKey.count;
    const kinds = new Uint8Array(new SharedArrayBuffer(Math.max(1, n)), 0, n);
    const words = new Int32Array(new SharedArrayBuffer(Math.max(1, n) * STRIDE * 4), 0, n * STRIDE);
    const keys: string[] = new Array(n);
    const vmIds: [number, string][] = [];
    const kept: [number, Rule][] = [];
    let i = 0;
    for (let slot = this.byKey.head; slot >= 0; slot = this.byKey.next[slot]) {
      const key = this.keys[slot]!;
      kinds[i] = this.kinds[slot];
      words.set(this.words.subarray(slot * STRIDE, slot * STRIDE + STRIDE), i * STRIDE);
      keys[i] = key;
      const vm = this.vmIds.get(slot);
      if (vm !== undefined) vmIds.push([i, vm]);
      const k = this.verbatim.get(slot) ?? this.parsed.get(slot)?.rule;
      if (k !== undefined) kept.push([i, k]);
      i++;
    }
    return { kinds, words, keys: JSON.stringify(keys), vmIds, kept };
  }

  /** The table of an image (one that image() made: its rules were checked then), without parsing the bulk kinds again. */
  static fromImage(image: RuleImage): RuleSlots {
    const n = image.kinds.length;
    const s = new RuleSlots(Math.max(16, n));
    s.kinds.set(image.kinds);
    s.words.set(image.words);
    const keys = JSON.parse(image.keys) as string[];
    for (let i = 0; i < n; i++) {
      s.keys[i] = keys[i];
      s.byKey.add(i);
    }
    for (const [i, vm] of image.vmIds) s.vmIds.set(i, vm);
    for (const [i, rule] of image.kept) {
      const k = s.kinds[i];
      if (k === Kind.Prefix || k === Kind.Encap) s.parsed.set(i, parseRule(rule));
      else s.verbatim.set(i, rule);
    }
    s.top = n;
    return s;
  }
}
