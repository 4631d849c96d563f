// One index per rule kind, each with its own add and remove (the way Felix gives each kind of
// state its own manager): what the packet path asks of the table is answered by one of these
// with a Map probe. CompiledRules (compiled.ts) hands each rule to the index of its kind: the
// bulk kinds by slot (slots.ts), the entries the packet path reads made from the slot's words
// the first time a packet asks (and kept, with the route resolved for them, until the rule
// changes), so a table of 400,000 rules holds numbers, not 400,000 objects.
import { read32 } from "../packet/checksum.js";
import { prefixContainsAt } from "../../lib/net/address.js";
import type { TunnelType } from "../../lib/rules/rules.js";
import { TunnelPeerTable, type IPFamily, type Prefix, type TunnelPeer } from "../tunnel/peers.js";
import { hash, Ipv6Map } from "../tunnel/addressmap.js";
import type { Encap, ParsedOf, Reencap4, Reencap6 } from "./rules.js";
import { A, B, INNER6, Kind, OUTER6, STRIDE, TUNNELS, type RuleSlots } from "./slots.js";

/** What CompiledRules needs of an index: rules of its kind come and go. */
export interface RuleIndex<P> {
  add(p: P): void;
  remove(p: P): void;
}

/**
 * Slots by one of their addresses (A or B of the slot, IPv4 or IPv6): a number for one slot, a
 * list in the order added for more (two rules for one address while the engine moves a VM, or
 * a home agent every VM's peer rule names). IPv4 keys are the address as a signed 32-bit
 * number (a V8 small integer), IPv6 keys a hash of the words, the slots' words telling
 * colliding addresses apart. A removal marks the key; flush() sweeps the freed slots out once
 * per batch, so removing many rules of one address is not quadratic.
 */
class SlotMap {
  private readonly map = new Map<number, number | number[]>();
  private readonly dirty = new Set<number>();

  constructor(private readonly s: RuleSlots, private readonly at: number, readonly v6: boolean) {}

  private keyOf(slot: number): number {
    const w = this.s.words;
    const b = slot * STRIDE + this.at;
    return this.v6 ? hash(w[b], w[b + 1], w[b + 2], w[b + 3]) : w[b];
  }

  add(slot: number): void {
    const k = this.keyOf(slot);
    const v = this.map.get(k);
    if (v === undefined) this.map.set(k, slot);
    else if (typeof v === "number") this.map.set(k, [v, slot]);
    else v.push(slot);
  }

  /** The slot is freed (RuleSlots.release) before the next flush. */
  remove(slot: number): void {
    this.dirty.add(this.keyOf(slot));
  }

  flush(): void {
    const kinds = this.s.kinds;
    for (const k of this.dirty) {
      const v = this.map.get(k);
      if (v === undefined) continue;
      if (typeof v === "number") {
        if (kinds[v] === Kind.Free) this.map.delete(k);
        continue;
      }
      const live = v.filter((slot) => kinds[slot] !== Kind.Free);
      if (live.length === 0) this.map.delete(k);
      else this.map.set(k, live.length === 1 ? live[0] : live);
    }
    this.dirty.clear();
  }

  /** Whether slot's address equals the IPv6 address of words w0..w3. */
  private same6(slot: number, w0: number, w1: number, w2: number, w3: number): boolean {
    const w = this.s.words;
    const b = slot * STRIDE + this.at;
    return w[b + 3] === w3 && w[b + 2] === w2 && w[b + 1] === w1 && w[b] === w0;
  }

  /** The newest slot for the IPv4 address `a` (uint32 or int32), or -1. */
  last4(a: number): number {
    const v = this.map.get(a | 0);
    if (v === undefined) return -1;
    return typeof v === "number" ? v : v[v.length - 1];
  }

  /** The newest slot for the IPv6 address at buf[off..off+16], or -1. */
  last6(buf: Uint8Array, off: number): number {
    const w0 = read32(buf, off) | 0, w1 = read32(buf, off + 4) | 0, w2 = read32(buf, off + 8) | 0, w3 = read32(buf, off + 12) | 0;
    const v = this.map.get(hash(w0, w1, w2, w3));
    if (v === undefined) return -1;
    if (typeof v === "number") return this.same6(v, w0, w1, w2, w3) ? v : -1;
    for (let i = v.length - 1; i >= 0; i--) if (this.same6(v[i], w0, w1, w2, w3)) return v[i];
    return -1;
  }

  /** Every slot for the address at buf[off..] (4 or 16 bytes by v6), oldest first. */
  all(buf: Uint8Array, off: number): number[] {
    if (!this.v6) {
      const v = this.map.get(read32(buf, off) | 0);
      return v === undefined ? [] : typeof v === "number" ? [v] : v;
    }
    const w0 = read32(buf, off) | 0, w1 = read32(buf, off + 4) | 0, w2 = read32(buf, off + 8) | 0, w3 = read32(buf, off + 12) | 0;
    const v = this.map.get(hash(w0, w1, w2, w3));
    if (v === undefined) return [];
    return (typeof v === "number" ? [v] : v).filter((slot) => this.same6(slot, w0, w1, w2, w3));
  }
}

/** Entries made from slots, by slot: as many as the packet path asked for, not one per rule. */
type Made<E> = Map<number, E>;

/** `reencap-4in4-to-4in6` (flow 3.1 j): pool IPv4 → rules. */
export class Reencap4Index {
  private readonly byPool: SlotMap;
  private readonly made: Made<Reencap4>;
  constructor(private readonly s: RuleSlots) {
    this.byPool = new SlotMap(s, A, false);
    this.made = new Map();
  }
  add(slot: number): void {
    this.byPool.add(slot);
  }
  remove(slot: number): void {
    this.byPool.remove(slot);
    this.made.delete(slot);
  }
  flush(): void {
    this.byPool.flush();
  }
  inForce(pool: number): Reencap4 | undefined {
    const slot = this.byPool.last4(pool);
    if (slot < 0) return undefined;
    let e = this.made.get(slot);
    if (e === undefined) this.made.set(slot, (e = { key: this.s.keys[slot]!, poolIPv4: this.s.words[slot * STRIDE + A] >>> 0, careOfIPv6: this.s.bytes(slot, B, true) }));
    return e;
  }
  has(pool: number): boolean {
    return this.byPool.last4(pool) >= 0;
  }
}

/** `reencap-6in6-to-6in4` (flows 3.2 i, m): VM IPv6 care-of address → rules. */
export class Reencap6Index {
  private readonly byCareOf: SlotMap;
  private readonly made: Made<Reencap6>;
  constructor(private readonly s: RuleSlots) {
    this.byCareOf = new SlotMap(s, A, true);
    this.made = new Map();
  }
  add(slot: number): void {
    this.byCareOf.add(slot);
  }
  remove(slot: number): void {
    this.byCareOf.remove(slot);
    this.made.delete(slot);
  }
  flush(): void {
    this.byCareOf.flush();
  }
  /** The rule in force for the IPv6 address at buf[off..]. */
  inForce(buf: Uint8Array, off: number): Reencap6 | undefined {
    const slot = this.byCareOf.last6(buf, off);
    if (slot < 0) return undefined;
    let e = this.made.get(slot);
    if (e === undefined) this.made.set(slot, (e = { key: this.s.keys[slot]!, careOfIPv6: this.s.bytes(slot, A, true), careOfIPv4: this.s.bytes(slot, B, false) }));
    return e;
  }
}

const INNER_4: readonly IPFamily[] = Object.freeze([4]);
const INNER_6: readonly IPFamily[] = Object.freeze([6]);

/**
 * The tunnel peers of one tunnel kind, as decapsulation asks them (a TunnelPeerTable): a peer's
 * entry is made from all its rules' slots the first time a packet of it comes, and dropped when
 * one of its rules changes. RFC 4213 §3.6 ingress filtering applies only when every rule for a
 * peer restricts the inner source (the union of their prefixes); one unrestricted rule lifts it.
 */
class PeerTable extends TunnelPeerTable {
  constructor(private readonly s: RuleSlots, private readonly bySlot: SlotMap, private readonly inner6: boolean) {
    super();
  }

  override entry(buf: Uint8Array, offset: number, family: IPFamily): ReturnType<TunnelPeerTable["entry"]> {
    const e = super.entry(buf, offset, family);
    if (e !== undefined || (family === 6) !== this.bySlot.v6) return e;
    const slots = this.bySlot.all(buf, offset);
    if (slots.length === 0) return undefined;
    let sources: Prefix[] | undefined = [];
    for (const slot of slots) {
      if (!this.s.hasB(slot)) {
        sources = undefined;
        break;
      }
      sources.push({ prefix: this.s.bytes(slot, B, this.inner6), length: this.s.lengthB(slot) });
    }
    const peer: TunnelPeer = { address: buf.slice(offset, offset + (family === 6 ? 16 : 4)), innerFamilies: this.inner6 ? INNER_6 : INNER_4, innerSources: sources };
    this.set(peer);
    return super.entry(buf, offset, family);
  }

  override lookup(buf: Uint8Array, offset: number, family: IPFamily): TunnelPeer | undefined {
    return this.entry(buf, offset, family)?.peer;
  }
}

/** `tunnel-peer`: per tunnel kind, the rules by outer address; the peers made from them (PeerTable). */
export class PeerIndex {
  private readonly bySlot: SlotMap[];
  readonly peers: Record<TunnelType, TunnelPeerTable>;
  private readonly scratch4 = new Uint8Array(4);
  private readonly scratch16 = new Uint8Array(16);

  constructor(private readonly s: RuleSlots) {
    this.bySlot = TUNNELS.map((_, t) => new SlotMap(s, A, OUTER6[t]));
    const table = (t: number) => new PeerTable(s, this.bySlot[t], INNER6[t]);
    this.peers = { "4in4": table(0), "6in6": table(1), "4in6": table(2), "6in4": table(3) };
  }

  add(slot: number): void {
    this.bySlot[this.s.tunnelOf(slot)].add(slot);
    this.forget(slot);
  }

  remove(slot: number): void {
    this.bySlot[this.s.tunnelOf(slot)].remove(slot);
    this.forget(slot);
  }

  flush(): void {
    for (const m of this.bySlot) m.flush();
  }

  /** The slot's peer changes: its entry is made again on the next packet. */
  private forget(slot: number): void {
    const t = this.s.tunnelOf(slot);
    const table = this.peers[TUNNELS[t]];
    if (table.size === 0) return;
    const a = OUTER6[t] ? this.scratch16 : this.scratch4;
    const base = slot * STRIDE + A;
    for (let w = 0; w < a.length >> 2; w++) {
      const v = this.s.words[base + w];
      a[4 * w] = v >>> 24; a[4 * w + 1] = (v >>> 16) & 255; a[4 * w + 2] = (v >>> 8) & 255; a[4 * w + 3] = v & 255;
    }
    table.delete(a);
  }
}

/**
 * `address-mapping` (RFC 7757), as the packet path asks it: is this IPv4 address mapped? Single
 * addresses by value (reference counts, two rules may name one address while it moves), plus
 * the rare prefix mappings in a list. The translator's own mapping is built in compiled.ts.
 */
export class EamIndex {
  private readonly hosts4 = new Map<number, number>();
  private nets4: { network: number; mask: number }[] = [];

  constructor(private readonly s: RuleSlots) {}

  add(slot: number): void {
    const a = this.s.words[slot * STRIDE + A];
    const length = this.s.lengthA(slot);
    if (length === 32) this.hosts4.set(a, (this.hosts4.get(a) ?? 0) + 1);
    else this.nets4 = [...this.nets4, { network: (a & mask(length)) >>> 0, mask: mask(length) }];
  }

  remove(slot: number): void {
    const a = this.s.words[slot * STRIDE + A];
    const length = this.s.lengthA(slot);
    if (length === 32) {
      const n = (this.hosts4.get(a) ?? 1) - 1;
      if (n <= 0) this.hosts4.delete(a);
      else this.hosts4.set(a, n);
    } else {
      const network = (a & mask(length)) >>> 0;
      const i = this.nets4.findIndex((n) => n.network === network && n.mask === mask(length));
      if (i >= 0) this.nets4 = this.nets4.filter((_, j) => j !== i);
    }
  }

  /** Whether the IPv4 address (uint32) is the IPv4 side of an explicit address mapping. */
  isMappedIPv4(a: number): boolean {
    if (this.hosts4.has(a | 0)) return true;
    for (const n of this.nets4) if (((a & n.mask) >>> 0) === n.network) return true;
    return false;
  }
}

function mask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** A map with the shape both Map<number, V> and an IPv6 address map can take. */
interface Keyed<K, V> {
  get(key: K): V | undefined;
  set(key: K, value: V): void;
  delete(key: K): unknown;
}

function ipv6Keyed<V>(m: Ipv6Map<V>): Keyed<Uint8Array, V> {
  return { get: (a) => m.get(a, 0), set: (a, v) => m.set(a, v), delete: (a) => m.delete(a) };
}

/** `list` with `e` added (and sorted by `order` when given); `list` itself is not changed. */
function added<E>(list: readonly E[] | undefined, e: E, order?: (a: E, b: E) => number): E[] {
  const next = list === undefined ? [e] : [...list, e];
  if (order !== undefined) next.sort(order);
  return next;
}

function removed<E>(list: readonly E[], e: E): E[] {
  return list.filter((x) => x !== e);
}

/** Adds `e` to the list at `key`, or takes it out; an empty list leaves the map. */
function listAdd<K, E>(map: Keyed<K, E[]>, key: K, e: E, order?: (a: E, b: E) => number): void {
  map.set(key, added(map.get(key), e, order));
}

function listRemove<K, E>(map: Keyed<K, E[]>, key: K, e: E): void {
  const list = map.get(key);
  if (list === undefined) return;
  const rest = removed(list, e);
  if (rest.length === 0) map.delete(key);
  else map.set(key, rest);
}

/** More specific first: longer source, then longer destination, then the newer rule. */
function moreSpecific(a: Encap, b: Encap): number {
  return b.sourceLength - a.sourceLength || b.destinationLength - a.destinationLength || b.seq - a.seq;
}

/**
 * `encapsulate`, by inner family: host sources (/32, /128: one per VM, the bulk of a big table)
 * by address, the rest (prefixes, "any") in one list; each list most specific first.
 */
export class EncapIndex implements RuleIndex<ParsedOf<"encapsulate">> {
  /** By the source as a signed 32-bit number: a V8 small integer, not a boxed one above 2^31. */
  private readonly hosts4 = new Map<number, Encap[]>();
  private readonly hosts6 = new Ipv6Map<Encap[]>();
  private readonly hostLists6 = ipv6Keyed(this.hosts6);
  private nets4: Encap[] = [];
  private nets6: Encap[] = [];
  /** Number of rules per inner family: with none, the packet path skips the lookup. */
  count4 = 0;
  count6 = 0;
  private seq = 0;

  add(p: ParsedOf<"encapsulate">): void {
    const e = p.entry;
    e.seq = ++this.seq;
    if (e.source.length === 4) {
      this.count4++;
      if (e.sourceLength === 32) listAdd(this.hosts4, e.source4 | 0, e, moreSpecific);
      else this.nets4 = added(this.nets4, e, moreSpecific);
    } else {
      this.count6++;
      if (e.sourceLength === 128) listAdd(this.hostLists6, e.source, e, moreSpecific);
      else this.nets6 = added(this.nets6, e, moreSpecific);
    }
  }

  remove(p: ParsedOf<"encapsulate">): void {
    const e = p.entry;
    if (e.source.length === 4) {
      this.count4--;
      if (e.sourceLength === 32) listRemove(this.hosts4, e.source4 | 0, e);
      else this.nets4 = removed(this.nets4, e);
    } else {
      this.count6--;
      if (e.sourceLength === 128) listRemove(this.hostLists6, e.source, e);
      else this.nets6 = removed(this.nets6, e);
    }
  }

  /**
   * The rule for an IPv4 packet from `src` to `dst` (uint32): the most specific one whose
   * selectors hold, host sources before prefixes (moreSpecific).
   */
  for4(src: number, dst: number): Encap | undefined {
    const hosts = this.hosts4.get(src | 0);
    if (hosts !== undefined) {
      for (let i = 0; i < hosts.length; i++) if (((dst & hosts[i].destinationMask4) >>> 0) === hosts[i].destination4) return hosts[i];
    }
    const nets = this.nets4;
    for (let i = 0; i < nets.length; i++) {
      const e = nets[i];
      if (((src & e.sourceMask4) >>> 0) === e.source4 && ((dst & e.destinationMask4) >>> 0) === e.destination4) return e;
    }
    return undefined;
  }

  /** The same for an IPv6 packet (source at pkt[8..24], destination at pkt[24..40]). */
  for6(pkt: Uint8Array): Encap | undefined {
    const hosts = this.hosts6.get(pkt, 8);
    if (hosts !== undefined) {
      for (let i = 0; i < hosts.length; i++) if (prefixContainsAt(hosts[i].destination, hosts[i].destinationLength, pkt, 24)) return hosts[i];
    }
    const nets = this.nets6;
    for (let i = 0; i < nets.length; i++) {
      const e = nets[i];
      if (prefixContainsAt(e.source, e.sourceLength, pkt, 8) && prefixContainsAt(e.destination, e.destinationLength, pkt, 24)) return e;
    }
    return undefined;
  }
}
