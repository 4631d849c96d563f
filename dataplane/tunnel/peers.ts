// Address-keyed lookups for the hot path: the tunnel peers a node accepts packets from, and the
// node's own tunnel endpoints (on AddressMap, addressmap.ts). Lookups read the address straight
// out of the packet buffer and allocate nothing.
import { prefixContains } from "../../lib/net/address.js";
import { AddressMap, type IPFamily } from "./addressmap.js";

export { AddressMap, type IPFamily } from "./addressmap.js";

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
