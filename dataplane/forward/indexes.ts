// One index per rule kind, each with its own add and remove (the way Felix gives each kind of
// state its own manager): what the packet path asks of the table is answered by one of these
// with a Map probe. CompiledRules (compiled.ts) hands each parsed rule to the index of its kind.
import { read32 } from "../packet/checksum.js";
import { prefixContainsAt } from "../../lib/net/address.js";
import type { TunnelType } from "../../lib/rules/rules.js";
import { TunnelPeerTable, type Prefix } from "../tunnel/peers.js";
import { Ipv6Map } from "../tunnel/addressmap.js";
import { mask4 } from "./addresses.js";
import type { Encap, ParsedOf, Reencap4, Reencap6 } from "./rules.js";

/** What CompiledRules needs of an index: rules of its kind come and go. */
export interface RuleIndex<P> {
  add(p: P): void;
  remove(p: P): void;
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

/** The last entry of a list: the rule in force when the engine briefly has two (while it moves a VM). */
function last<E>(list: E[] | undefined): E | undefined {
  return list === undefined ? undefined : list[list.length - 1];
}

/** `reencap-4in4-to-4in6` (flow 3.1 j): pool IPv4 (uint32) → rules. */
export class Reencap4Index implements RuleIndex<ParsedOf<"reencap-4in4-to-4in6">> {
  private readonly byPool = new Map<number, Reencap4[]>();
  add(p: ParsedOf<"reencap-4in4-to-4in6">): void {
    listAdd(this.byPool, p.entry.poolIPv4, p.entry);
  }
  remove(p: ParsedOf<"reencap-4in4-to-4in6">): void {
    listRemove(this.byPool, p.entry.poolIPv4, p.entry);
  }
  inForce(pool: number): Reencap4 | undefined {
    return last(this.byPool.get(pool));
  }
  has(pool: number): boolean {
    return this.byPool.has(pool);
  }
}

/** `reencap-6in6-to-6in4` (flows 3.2 i, m): VM IPv6 care-of address → rules. */
export class Reencap6Index implements RuleIndex<ParsedOf<"reencap-6in6-to-6in4">> {
  private readonly byCareOf = new Ipv6Map<Reencap6[]>();
  private readonly lists = ipv6Keyed(this.byCareOf);
  add(p: ParsedOf<"reencap-6in6-to-6in4">): void {
    listAdd(this.lists, p.entry.careOfIPv6, p.entry);
  }
  remove(p: ParsedOf<"reencap-6in6-to-6in4">): void {
    listRemove(this.lists, p.entry.careOfIPv6, p.entry);
  }
  /** The rule in force for the IPv6 address at buf[off..]. */
  inForce(buf: Uint8Array, off: number): Reencap6 | undefined {
    return last(this.byCareOf.get(buf, off));
  }
}

interface PeerGroup {
  tunnel: TunnelType;
  address: Uint8Array;
  /** Rules for this peer without an inner source restriction. */
  unrestricted: number;
  /** Rule key → inner source prefix, for the rules with one (made on first use). */
  restricted: Map<string, Prefix> | undefined;
}

const INNER_4: readonly (4 | 6)[] = Object.freeze([4]);
const INNER_6: readonly (4 | 6)[] = Object.freeze([6]);

/**
 * `tunnel-peer`: one peer entry per (tunnel kind, outer address), from all its rules. A batch of
 * adds and removes marks the groups it touches; `flush` rebuilds each of them once.
 */
export class PeerIndex implements RuleIndex<ParsedOf<"tunnel-peer">> {
  readonly peers: Record<TunnelType, TunnelPeerTable> = { "4in4": new TunnelPeerTable(), "6in6": new TunnelPeerTable(), "4in6": new TunnelPeerTable(), "6in4": new TunnelPeerTable() };
  private readonly groups: Record<TunnelType, PeerGroups> = { "4in4": new PeerGroups(), "6in6": new PeerGroups(), "4in6": new PeerGroups(), "6in4": new PeerGroups() };
  private readonly touched = new Set<PeerGroup>();

  add(p: ParsedOf<"tunnel-peer">): void {
    const groups = this.groups[p.tunnel];
    let g = groups.get(p.peer);
    if (g === undefined) groups.set(p.peer, (g = { tunnel: p.tunnel, address: p.peer, unrestricted: 0, restricted: undefined }));
    if (p.innerSource === null) g.unrestricted++;
    else (g.restricted ??= new Map()).set(p.rule.key, p.innerSource);
    this.touched.add(g);
  }

  remove(p: ParsedOf<"tunnel-peer">): void {
    const g = this.groups[p.tunnel].get(p.peer);
    if (g === undefined) return;
    if (p.innerSource === null) g.unrestricted--;
    else g.restricted?.delete(p.rule.key);
    this.touched.add(g);
  }

  /**
   * RFC 4213 §3.6 ingress filtering applies only when every rule for a peer restricts the inner
   * source (the union of their prefixes); one unrestricted rule lifts it.
   */
  flush(): void {
    for (const g of this.touched) {
      const tunnel = g.tunnel;
      if (g.unrestricted === 0 && (g.restricted === undefined || g.restricted.size === 0)) {
        if (this.groups[tunnel].get(g.address) === g) {
          this.groups[tunnel].delete(g.address);
          this.peers[tunnel].delete(g.address);
        }
        continue;
      }
      const inner = tunnel === "4in4" || tunnel === "4in6" ? INNER_4 : INNER_6;
      const sources = g.unrestricted > 0 || g.restricted === undefined ? undefined : [...g.restricted.values()];
      this.peers[tunnel].set({ address: g.address, innerFamilies: inner, innerSources: sources });
    }
    this.touched.clear();
  }
}

/** Peer groups of one tunnel kind, by outer address (4 or 16 bytes). */
class PeerGroups {
  private readonly v4 = new Map<number, PeerGroup>();
  private readonly v6 = new Ipv6Map<PeerGroup>();
  get(a: Uint8Array): PeerGroup | undefined {
    return a.length === 4 ? this.v4.get(read32(a)) : this.v6.get(a, 0);
  }
  set(a: Uint8Array, g: PeerGroup): void {
    if (a.length === 4) this.v4.set(read32(a), g);
    else this.v6.set(a, g);
  }
  delete(a: Uint8Array): void {
    if (a.length === 4) this.v4.delete(read32(a));
    else this.v6.delete(a);
  }
}

/**
 * `address-mapping` (RFC 7757), as the packet path asks it: is this IPv4 address mapped? Single
 * addresses by value (reference counts, two rules may name one address while it moves), plus
 * the rare prefix mappings in a list. The translator's own mapping is built in compiled.ts.
 */
export class EamIndex implements RuleIndex<ParsedOf<"address-mapping">> {
  private readonly hosts4 = new Map<number, number>();
  private readonly hosts6 = new Ipv6Map<number>();
  private nets4: { network: number; mask: number }[] = [];

  add(p: ParsedOf<"address-mapping">): void {
    const e = p.eam;
    if (e.ipv4Length === 32) {
      this.hosts4.set(e.ipv4, (this.hosts4.get(e.ipv4) ?? 0) + 1);
      this.hosts6.set(e.ipv6, (this.hosts6.get(e.ipv6, 0) ?? 0) + 1);
    } else {
      this.nets4 = [...this.nets4, { network: (e.ipv4 & mask4(e.ipv4Length)) >>> 0, mask: mask4(e.ipv4Length) }];
    }
  }

  remove(p: ParsedOf<"address-mapping">): void {
    const e = p.eam;
    if (e.ipv4Length === 32) {
      const n4 = (this.hosts4.get(e.ipv4) ?? 1) - 1;
      if (n4 <= 0) this.hosts4.delete(e.ipv4);
      else this.hosts4.set(e.ipv4, n4);
      const n6 = (this.hosts6.get(e.ipv6, 0) ?? 1) - 1;
      if (n6 <= 0) this.hosts6.delete(e.ipv6);
      else this.hosts6.set(e.ipv6, n6);
    } else {
      const network = (e.ipv4 & mask4(e.ipv4Length)) >>> 0;
      const i = this.nets4.findIndex((n) => n.network === network && n.mask === mask4(e.ipv4Length));
      if (i >= 0) this.nets4 = this.nets4.filter((_, j) => j !== i);
    }
  }

  /** Whether the IPv4 address (uint32) is the IPv4 side of an explicit address mapping. */
  isMappedIPv4(a: number): boolean {
    if (this.hosts4.has(a)) return true;
    for (const n of this.nets4) if (((a & n.mask) >>> 0) === n.network) return true;
    return false;
  }
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
      if (e.sourceLength === 32) listAdd(this.hosts4, e.source4, e, moreSpecific);
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
      if (e.sourceLength === 32) listRemove(this.hosts4, e.source4, e);
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
    const hosts = this.hosts4.get(src);
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
