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
// mapping): the common shape straight into the words, everything else through parseRule
// (rules.ts), so the language accepted and the errors are parseRule's.
import type { Rule, TunnelType } from "../../lib/rules/rules.js";
import { fast4Value, fast6Words, formatIPv4, formatIPv6Words, isIPv6Text } from "./addresses.js";
import { parseRule, RuleTableError, type Parsed } from "./rules.js";

/** Rule kinds of a slot (plain numbers: the indexes test them on every add and remove). */
export const Kind = { Free: 0, Reencap4: 1, Reencap6: 2, Peer: 3, Mapping: 4, Prefix: 5, Encap: 6 } as const;

/** Words per slot: address A (4), address B (4), meta (lengths, tunnel kind, flags). */
export const STRIDE = 9;
export const A = 0;
export const B = 4;
const META = 8;
// meta: bits 0-7 length of A, 8-15 length of B, 16-17 tunnel kind, 18 B present (a peer's inner
// source), 19 the vmId is in the key ("vm/<vmId>/...", as the engine makes them), 20-27 its length.
const HAS_B = 1 << 18;
const VM_IN_KEY = 1 << 19;

export const TUNNELS: readonly TunnelType[] = ["4in4", "6in6", "4in6", "6in4"];
const TUNNEL_INDEX = new Map<unknown, number>([["4in4", 0], ["6in6", 1], ["4in6", 2], ["6in4", 3]]);
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

const KIND_OF: Record<Parsed["kind"], number> = {
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
      if (!this.fillFast(slot, rule)) this.fillParsed(slot, rule);
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

  /**
   * The common shape of a bulk-kind rule, its addresses in canonical text (what the words give
   * back), parsed into the slot; false when it is not that shape (parseRule decides then).
   */
  private fillFast(slot: number, rule: Rule): boolean {
    const r = rule as unknown as Record<string, unknown>;
    if (typeof r !== "object" || r === null) return false;
    const key = r.key;
    if (typeof key !== "string" || key === "") return false;
    const w = this.words;
    const base = slot * STRIDE;
    let fields = 0;
    // for-in over a plain rule: its field count without allocating, so an extra field goes to the slow path (kept as given).
    for (const _ in r) fields++;
    switch (r.kind) {
      case "reencap-4in4-to-4in6": {
        if (fields !== 5 || typeof r.vmId !== "string" || !v4Text(r.poolIPv4, w, base + A) || !v6Text(r.careOfIPv6, w, base + B)) return false;
        w[base + META] = 32 | (128 << 8);
        this.kinds[slot] = Kind.Reencap4;
        break;
      }
      case "reencap-6in6-to-6in4": {
        if (fields !== 5 || typeof r.vmId !== "string" || !v6Text(r.careOfIPv6, w, base + A) || !v4Text(r.careOfIPv4, w, base + B)) return false;
        w[base + META] = 128 | (32 << 8);
        this.kinds[slot] = Kind.Reencap6;
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
        this.kinds[slot] = Kind.Peer;
        break;
      }
      case "address-mapping": {
        if (fields !== 4 || !v4Text(r.ipv4, w, base + A) || !v6Text(r.ipv6, w, base + B)) return false;
        w[base + META] = 32 | (128 << 8);
        this.kinds[slot] = Kind.Mapping;
        break;
      }
      default:
        return false;
    }
    this.keys[slot] = key;
    const vm = r.vmId as string | undefined;
    // The engine's keys hold the VM's id ("vm/<vmId>/reencap"): kept once, in the key.
    if (vm !== undefined && vm.length < 256 && key.charCodeAt(3 + vm.length) === 47 && key.startsWith("vm/") && key.startsWith(vm, 3)) {
      w[base + META] |= VM_IN_KEY | (vm.length << 20);
    } else if (vm !== undefined) {
      this.vmIds.set(slot, vm);
    }
    return true;
  }

  /** The vmId of a bulk-kind slot's rule, or undefined. */
  vmIdOf(slot: number): string | undefined {
    const meta = this.meta(slot);
    return (meta & VM_IN_KEY) === 0 ? this.vmIds.get(slot) : this.keys[slot]!.slice(3, 3 + ((meta >> 20) & 0xff));
  }

  /** Any other rule: parseRule's result, the bulk kinds into the words (and the rule kept as given). */
  private fillParsed(slot: number, rule: Rule): void {
    const p = parseRule(rule);
    const base = slot * STRIDE;
    this.keys[slot] = p.rule.key;
    switch (p.kind) {
      case "reencap-4in4-to-4in6":
        this.words[base + A] = p.entry.poolIPv4;
        toWords(p.entry.careOfIPv6, this.words, base + B);
        this.words[base + META] = 32 | (128 << 8);
        break;
      case "reencap-6in6-to-6in4":
        toWords(p.entry.careOfIPv6, this.words, base + A);
        toWords(p.entry.careOfIPv4, this.words, base + B);
        this.words[base + META] = 128 | (32 << 8);
        break;
      case "tunnel-peer": {
        const t = TUNNEL_INDEX.get(p.tunnel)!;
        toWords(p.peer, this.words, base + A);
        let meta = (p.peer.length * 8) | (t << 16);
        if (p.innerSource !== null) {
          toWords(p.innerSource.prefix, this.words, base + B);
          meta |= (p.innerSource.length << 8) | HAS_B;
        }
        this.words[base + META] = meta;
        break;
      }
      case "address-mapping":
        this.words[base + A] = p.eam.ipv4;
        toWords(p.eam.ipv6, this.words, base + B);
        this.words[base + META] = p.eam.ipv4Length | (p.eam.ipv6Length << 8);
        break;
      default:
        this.parsed.set(slot, p);
    }
    if (p.kind !== "translation-prefix" && p.kind !== "encapsulate") this.verbatim.set(slot, rule);
    this.kinds[slot] = KIND_OF[p.kind];
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

/**
 * Key → slot, and the table's order (insertion; a changed rule goes to the end). Hand-written:
 * open addressing over an Int32Array (the slot + 1; 0 empty, -1 a removed entry) with the
 * keys compared in RuleSlots.keys, the order a list of slots in two Int32Arrays. A Map of
 * 400,000 strings cost a snapshot twice the time (its growth is garbage the collector walks
 * while the decoded rules are still alive) and 12 MB of heap.
 */
class KeyIndex {
  private table = new Int32Array(32);
  private used = 0;
  count = 0;
  head = -1;
  private tail = -1;
  next: Int32Array;
  private prev: Int32Array;
  private hashes: Int32Array;

  constructor(capacity: number, private readonly keys: (string | undefined)[]) {
    this.next = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.hashes = new Int32Array(capacity);
    let size = 32;
    while (size < capacity * 2) size *= 2;
    this.table = new Int32Array(size);
  }

  grow(capacity: number): void {
    for (const name of ["next", "prev", "hashes"] as const) {
      const a = new Int32Array(capacity);
      a.set(this[name]);
      this[name] = a;
    }
  }

  /** The slot of `key`, or -1. */
  get(key: string): number {
    const mask = this.table.length - 1;
    for (let p = hashOf(key) & mask; ; p = (p + 1) & mask) {
      const e = this.table[p];
      if (e === 0) return -1;
      if (e > 0 && this.keys[e - 1] === key) return e - 1;
    }
  }

  /** `slot` (its key in keys[slot], not in the index) at the end of the order. */
  add(slot: number): void {
    if ((this.used + 1) * 2 > this.table.length) this.rehash();
    const h = hashOf(this.keys[slot]!);
    this.hashes[slot] = h;
    const mask = this.table.length - 1;
    let p = h & mask;
    while (this.table[p] !== 0) p = (p + 1) & mask;
    this.table[p] = slot + 1;
    this.used++;
    this.count++;
    this.prev[slot] = this.tail;
    this.next[slot] = -1;
    if (this.tail >= 0) this.next[this.tail] = slot;
    else this.head = slot;
    this.tail = slot;
  }

  /** Takes `slot` (in the index, its key still in keys[slot]) out. */
  delete(slot: number): void {
    const mask = this.table.length - 1;
    let p = this.hashes[slot] & mask;
    while (this.table[p] !== slot + 1) p = (p + 1) & mask;
    this.table[p] = -1;
    this.count--;
    const before = this.prev[slot], after = this.next[slot];
    if (before >= 0) this.next[before] = after;
    else this.head = after;
    if (after >= 0) this.prev[after] = before;
    else this.tail = before;
  }

  /** A table twice the live entries (at least), without the removed ones. */
  private rehash(): void {
    let size = 32;
    while (size < (this.count + 1) * 4) size *= 2;
    const table = new Int32Array(size);
    const mask = size - 1;
    for (let slot = this.head; slot >= 0; slot = this.next[slot]) {
      let p = this.hashes[slot] & mask;
      while (table[p] !== 0) p = (p + 1) & mask;
      table[p] = slot + 1;
    }
    this.table = table;
    this.used = this.count;
  }

  /** The slots in table order. */
  slots(): number[] {
    const out: number[] = [];
    for (let slot = this.head; slot >= 0; slot = this.next[slot]) out.push(slot);
    return out;
  }
}

/** FNV-1a over the UTF-16 code units. */
function hashOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return h;
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
