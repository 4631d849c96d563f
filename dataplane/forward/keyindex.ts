// Rule keys → slots for RuleSlots (slots.ts), in the table's order.

/**
 * Key → slot, and the table's order (insertion; a changed rule goes to the end). Hand-written:
 * open addressing over an Int32Array (the slot + 1; 0 empty, -1 a removed entry) with the
 * keys compared in RuleSlots.keys, the order a list of slots in two Int32Arrays. A Map of
 * 400,000 strings cost a snapshot twice the time (its growth is garbage the collector walks
 * while the decoded rules are still alive) and 12 MB of heap.
 */
export class KeyIndex {
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
