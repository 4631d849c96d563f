// A map from IPv6 addresses to values for the rule tables: keyed by the address's four 32-bit
// words, looked up straight from packet bytes without allocating, and filled from 100,000 rules
// without copying keys (the rule table owns its address bytes and never changes them).

interface Entry<T> {
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  value: T;
  next: Entry<T> | undefined;
}

function word(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** A small-integer hash, so the Map keys stay V8 "Smis" (no boxed numbers). */
function hash(w0: number, w1: number, w2: number, w3: number): number {
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
    const w0 = word(buf, off), w1 = word(buf, off + 4), w2 = word(buf, off + 8), w3 = word(buf, off + 12);
    for (let e = this.buckets.get(hash(w0, w1, w2, w3)); e !== undefined; e = e.next) {
      if (e.w3 === w3 && e.w2 === w2 && e.w1 === w1 && e.w0 === w0) return e.value;
    }
    return undefined;
  }

  has(buf: Uint8Array, off: number): boolean {
    return this.get(buf, off) !== undefined;
  }

  set(address: Uint8Array, value: T): void {
    const w0 = word(address, 0), w1 = word(address, 4), w2 = word(address, 8), w3 = word(address, 12);
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
    const w0 = word(address, 0), w1 = word(address, 4), w2 = word(address, 8), w3 = word(address, 12);
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
