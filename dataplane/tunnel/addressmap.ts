// Address-keyed maps for the hot path, looked up straight from packet bytes without allocating:
// Ipv6Map (the rule tables' IPv6 keys; filled from 100,000 rules without copying a key: it keeps
// the address's four 32-bit words, not its bytes) and AddressMap, IPv4 or IPv6 (tunnel peers,
// the neighbour cache, the correspondents' bindings).
import { read32 } from "../packet/checksum.js";

export type IPFamily = 4 | 6;

interface Entry<T> {
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  value: T;
  next: Entry<T> | undefined;
}

/** A small-integer hash, so the Map keys stay V8 "Smis" (no boxed numbers). */
export function hash(w0: number, w1: number, w2: number, w3: number): number {
  let h = Math.imul(w0 ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ w1 ^ (h >>> 13), 0xc2b2ae35);
  h = Math.imul(h ^ w2 ^ (h >>> 16), 0x85ebca6b);
  h = h ^ w3 ^ (h >>> 13);
  return h & 0x3fffffff;
}

export class Ipv6Map<T> {
  private readonly buckets = new Map<number, Entry<T>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(buf: Uint8Array, off: number): T | undefined {
    const w0 = read32(buf, off), w1 = read32(buf, off + 4), w2 = read32(buf, off + 8), w3 = read32(buf, off + 12);
    for (let e = this.buckets.get(hash(w0, w1, w2, w3)); e !== undefined; e = e.next) {
      if (e.w3 === w3 && e.w2 === w2 && e.w1 === w1 && e.w0 === w0) return e.value;
    }
    return undefined;
  }

  has(buf: Uint8Array, off: number): boolean {
    return this.get(buf, off) !== undefined;
  }

  set(address: Uint8Array, value: T): void {
    const w0 = read32(address, 0), w1 = read32(address, 4), w2 = read32(address, 8), w3 = read32(address, 12);
    const h = hash(w0, w1, w2, w3);
    const first = this.buckets.get(h);
    for (let e = first; e !== undefined; e = e.next) {
      if (e.w3 === w3 && e.w2 === w2 && e.w1 === w1 && e.w0 === w0) {
        e.value = value;
        return;
      }
    }
    this.buckets.set(h, { w0, w1, w2, w3, value, next: first });
    this.count++;
  }

  delete(address: Uint8Array): boolean {
    const w0 = read32(address, 0), w1 = read32(address, 4), w2 = read32(address, 8), w3 = read32(address, 12);
    const h = hash(w0, w1, w2, w3);
    let prev: Entry<T> | undefined;
    for (let e = this.buckets.get(h); e !== undefined; prev = e, e = e.next) {
      if (e.w3 === w3 && e.w2 === w2 && e.w1 === w1 && e.w0 === w0) {
        if (prev !== undefined) prev.next = e.next;
        else if (e.next !== undefined) this.buckets.set(h, e.next);
        else this.buckets.delete(h);
        this.count--;
        return true;
      }
    }
    return false;
  }
}

/** A map from IPv4 or IPv6 addresses (given as bytes) to values: IPv4 keys are the address as a number, IPv6 ones an Ipv6Map. */
export class AddressMap<T> {
  /** By the address as a signed 32-bit number: a V8 small integer, where an unsigned one above 2^31 is a boxed number the Map hashes in C++. */
  private readonly v4 = new Map<number, T>();
  private readonly v6 = new Ipv6Map<T>();

  get size(): number {
    return this.v4.size + this.v6.size;
  }

  /** `address` is 4 bytes (IPv4) or 16 bytes (IPv6). */
  set(address: Uint8Array, value: T): void {
    if (address.length === 4) this.v4.set(read32(address, 0) | 0, value);
    else if (address.length === 16) this.v6.set(address, value);
    else throw new RangeError(`an address is 4 or 16 bytes, not ${address.length}`);
  }

  delete(address: Uint8Array): boolean {
    return address.length === 4 ? this.v4.delete(read32(address, 0) | 0) : this.v6.delete(address);
  }

  /** The value for the address at buf[offset..], 4 or 16 bytes by `family`. */
  get(buf: Uint8Array, offset: number, family: IPFamily): T | undefined {
    return family === 4 ? this.v4.get(read32(buf, offset) | 0) : this.v6.get(buf, offset);
  }

  has(buf: Uint8Array, offset: number, family: IPFamily): boolean {
    return this.get(buf, offset, family) !== undefined;
  }
}
