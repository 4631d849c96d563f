// Buffers and views for the packet path, made as cheaply as Node allows.
// - A `new Uint8Array(n)` gets a zeroed ArrayBuffer of its own, which costs about a microsecond
//   in Node 20, more than the rest of a translation; allocPacket slices Buffer's shared pool
//   instead (memory not cleared: the caller writes every byte it asks for).
// - A `subarray` is a new object each time (~30 ns, and the collector's work after: 8 % of the
//   live worker's busy time went to scavenges, bench/README.md), and the pipeline asks for the
//   same few views of its output buffer for every packet: PrefixViews makes each once.
// Kept here, by hand, because no library does this.

/** `length` bytes of uninitialised memory; the caller writes all of them. */
export function allocPacket(length: number): Uint8Array {
  return Buffer.allocUnsafe(length);
}

/** The views buf[0..n) of one buffer, each made once per length and handed out again after. */
export class PrefixViews {
  private readonly views: (Uint8Array | undefined)[] = [];

  constructor(readonly buf: Uint8Array) {}

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
