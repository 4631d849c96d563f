// Address-keyed lookups for the hot path: the tunnel peers a node accepts packets from, and the
// node's own tunnel endpoints. Lookups read the address straight out of the packet buffer and
// allocate nothing.
import { prefixContains } from "../../lib/net/address.js";
import { readIPv4Address } from "../packet/ipv4.js";

export type IPFamily = 4 | 6;

function word(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function equal16(a: Uint8Array, b: Uint8Array, bo: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[bo + i]) return false;
  return true;
}

/**
 * A map from IPv4 or IPv6 addresses (given as bytes) to values. IPv4 keys are the address as a
 * number; IPv6 keys are bucketed by the XOR of their four 32-bit words and compared in full.
 */
export class AddressMap<T> {
  private readonly v4 = new Map<number, T>();
  private readonly v6 = new Map<number, { key: Uint8Array; value: T }[]>();
  private count6 = 0;

  get size(): number {
    return this.v4.size + this.count6;
  }

  /** `address` is 4 bytes (IPv4) or 16 bytes (IPv6). */
  set(address: Uint8Array, value: T): void {
    if (address.length === 4) {
      this.v4.set(readIPv4Address(address, 0), value);
      return;
    }
    if (address.length !== 16) throw new RangeError(`an address is 4 or 16 bytes, not ${address.length}`);
    const h = hash6(address, 0);
    const bucket = this.v6.get(h);
    if (bucket === undefined) {
      this.v6.set(h, [{ key: Uint8Array.from(address), value }]);
      this.count6++;
      return;
    }
    for (const e of bucket) {
      if (equal16(e.key, address, 0)) {
        e.value = value;
        return;
      }
    }
    bucket.push({ key: Uint8Array.from(address), value });
    this.count6++;
  }

  delete(address: Uint8Array): boolean {
    if (address.length === 4) return this.v4.delete(readIPv4Address(address, 0));
    const h = hash6(address, 0);
    const bucket = this.v6.get(h);
    if (bucket === undefined) return false;
    const i = bucket.findIndex((e) => equal16(e.key, address, 0));
    if (i < 0) return false;
    bucket.splice(i, 1);
    if (bucket.length === 0) this.v6.delete(h);
    this.count6--;
    return true;
  }

  /** The value for the address at buf[offset..], 4 or 16 bytes by `family`. */
  get(buf: Uint8Array, offset: number, family: IPFamily): T | undefined {
    if (family === 4) return this.v4.get(word(buf, offset));
    const bucket = this.v6.get(hash6(buf, offset));
    if (bucket === undefined) return undefined;
    for (let i = 0; i < bucket.length; i++) if (equal16(bucket[i].key, buf, offset)) return bucket[i].value;
    return undefined;
  }

  has(buf: Uint8Array, offset: number, family: IPFamily): boolean {
    return this.get(buf, offset, family) !== undefined;
  }
}

function hash6(b: Uint8Array, o: number): number {
  return (word(b, o) ^ word(b, o + 4) ^ word(b, o + 8) ^ word(b, o + 12)) >>> 0;
}

/** A set of addresses, e.g. every tunnel endpoint of this node (the loop check). */
export class AddressSet {
  private readonly map = new AddressMap<true>();
  constructor(addresses: Iterable<Uint8Array> = []) {
    for (const a of addresses) this.add(a);
  }
  get size(): number {
    return this.map.size;
  }
  add(address: Uint8Array): void {
    this.map.set(address, true);
  }
  delete(address: Uint8Array): boolean {
    return this.map.delete(address);
  }
  has(buf: Uint8Array, offset: number, family: IPFamily): boolean {
    return this.map.get(buf, offset, family) === true;
  }
}

export interface Prefix {
  /** Network bytes, 4 or 16. */
  prefix: Uint8Array;
  length: number;
}

/** A node at the far end of tunnels that end here. */
export interface TunnelPeer {
  /** The peer's outer address (4 or 16 bytes); packets must come from it. */
  address: Uint8Array;
  /** The inner families this peer may send (e.g. [4] for an RFC 2003 peer, [6] for RFC 4213). */
  innerFamilies: readonly IPFamily[];
  /**
   * RFC 4213 §3.6 ingress filtering: when given and not empty, the inner source must lie in one
   * of these prefixes (of the inner family). Applied to every tunnel kind, not only 6in4.
   */
  innerSources?: readonly Prefix[];
}

interface PeerEntry {
  peer: TunnelPeer;
  /** Bit 0: IPv4 inner allowed; bit 1: IPv6 inner allowed. */
  families: number;
}

/** The tunnel peers this node decapsulates from, keyed by their outer address. */
export class TunnelPeerTable {
  private readonly map = new AddressMap<PeerEntry>();

  constructor(peers: Iterable<TunnelPeer> = []) {
    for (const p of peers) this.set(p);
  }

  get size(): number {
    return this.map.size;
  }

  set(peer: TunnelPeer): void {
    let families = 0;
    for (const f of peer.innerFamilies) families |= f === 4 ? 1 : 2;
    for (const p of peer.innerSources ?? []) {
      if (p.prefix.length !== 4 && p.prefix.length !== 16) throw new RangeError("an inner source prefix is 4 or 16 bytes");
    }
    this.map.set(peer.address, { peer, families });
  }

  delete(address: Uint8Array): boolean {
    return this.map.delete(address);
  }

  /** The peer whose address is at buf[offset..] (`family` 4 or 6), or undefined. */
  lookup(buf: Uint8Array, offset: number, family: IPFamily): TunnelPeer | undefined {
    return this.map.get(buf, offset, family)?.peer;
  }

  /** @internal Peer and its family bits in one lookup, for decapsulation. */
  entry(buf: Uint8Array, offset: number, family: IPFamily): PeerEntry | undefined {
    return this.map.get(buf, offset, family);
  }
}

/** RFC 4213 §3.6: is the inner source at buf[offset..] allowed for this peer? */
export function innerSourceAllowed(peer: TunnelPeer, buf: Uint8Array, offset: number, family: IPFamily): boolean {
  const list = peer.innerSources;
  if (list === undefined || list.length === 0) return true;
  const size = family === 4 ? 4 : 16;
  const address = buf.subarray(offset, offset + size);
  for (let i = 0; i < list.length; i++) {
    const p = list[i];
    if (p.prefix.length === size && prefixContains(p.prefix, p.length, address)) return true;
  }
  return false;
}
