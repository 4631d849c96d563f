// Buffers and views for the packet path, made as cheaply as Node allows.
// - A `new Uint8Array(n)` gets a zeroed ArrayBuffer of its own, which costs about a microsecond
//   in Node 20, more than the rest of a translation; allocPacket hands out views of a shared
//   64 KiB slab instead, zeroed once when the slab is made and never handed out twice. Plain
//   Uint8Arrays, not Buffers (Buffer.allocUnsafe's pool): with Buffers among them, the
//   pipeline's functions saw two kinds of array and every case got slower, the short ones by 5–10 %
//   (bench/README.md).
// - A `subarray` is a new object each time (~30 ns, and the collector's work after: 8 % of the
//   live worker's busy time went to scavenges, bench/README.md), and the pipeline asks for the
//   same few views of its output buffer for every packet: PrefixViews makes each once.
// Kept here, by hand, because no library does this.

const SLAB_BYTES = 64 * 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

/**
 * `length` zeroed bytes for a packet: a view of the current slab, or a buffer of its own above a
 * quarter of a slab. A view keeps its whole slab alive, so a packet held for long (a queue) is
 * copied out with `slice()`, as the neighbour cache does.
 */
export function allocPacket(length: number): Uint8Array {
  if (length > SLAB_BYTES >> 2) return new Uint8Array(length);
  if (slabUsed + length > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const v = new Uint8Array(slab, slabUsed, length);
  slabUsed += (length + 7) & ~7;
  return v;
}

/** The views buf[0..n) of one buffer, each made once per length and handed out again after. */
export class PrefixViews {
  /**
   * By length, one place for every length from the start: an array grown by assignment turns
   * into a hash table (V8's dictionary elements) once a length leaves a gap of over 1,024 places
   * (a 1,514-byte frame after 60-byte ones), and every lookup after is a hash probe. 8 bytes a
   * place: 0.5 MB for the forwarder's 64 KiB output buffer.
   */
  private readonly views: (Uint8Array | undefined)[];

  constructor(readonly buf: Uint8Array) {
    this.views = new Array<Uint8Array | undefined>(buf.length + 1).fill(undefined);
  }

  /** Whether `v` is one of the views this has handed out (no `.buffer`: a C++ call in Node 20). */
  holds(v: Uint8Array): boolean {
    return this.views[v.length] === v;
  }

  /** buf.subarray(0, n), the same object for the same n; n in 0..buf.length. */
  of(n: number): Uint8Array {
    let v = this.views[n];
    if (v === undefined) {
      if (!(n >= 0 && n <= this.buf.length)) throw new RangeError(`view of ${n} bytes in a buffer of ${this.buf.length}`);
      v = this.buf.subarray(0, n);
      this.views[n] = v;
    }
    return v;
  }
}

/** Below this many bytes a loop copies faster than `set` over a subarray (no view to make). */
const SHORT_COPY = 64;

/**
 * Copies src[from, from + length) to dst[at..], as dst.set(src.subarray(from, from + length), at)
 * does but without the view for short copies. The two ranges must not overlap.
 */
export function copyBytes(dst: Uint8Array, at: number, src: Uint8Array, from: number, length: number): void {
  if (length <= SHORT_COPY) {
    for (let i = 0; i < length; i++) dst[at + i] = src[from + i];
    return;
  }
  dst.set(src.subarray(from, from + length), at);
}
