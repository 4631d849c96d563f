// Buffers for the packets the translator emits. A `new Uint8Array(n)` gets a zeroed ArrayBuffer
// of its own, which costs about a microsecond in Node 20, more than the rest of a translation;
// Buffer.allocUnsafe slices a shared pool instead. The memory is not cleared, so every caller
// writes every byte of what it asks for.
import type { PrefixViews } from "../packet/views.js";

/** `length` bytes of uninitialised memory; the caller writes all of them. */
export function allocPacket(length: number): Uint8Array {
  return Buffer.allocUnsafe(length);
}

/**
 * The buffer a whole translated packet of `length` bytes is written to: the caller's output
 * buffer (TranslatorState.output, the forwarder's frame buffer, so the packet is written once,
 * where it is sent from) when it is given, big enough and not the input's memory; else a new one.
 */
export function outputPacket(output: PrefixViews | undefined, input: Uint8Array, length: number): Uint8Array {
  if (output !== undefined && length <= output.buf.length && output.buf.buffer !== input.buffer) return output.of(length);
  return allocPacket(length);
}

/**
 * A copy of buf[start, end) in a new packet buffer. (`Buffer#slice` returns a view, not a copy,
 * so `.slice` on an input that may be a Buffer would let the translator write into its input.)
 */
export function copyPacket(buf: Uint8Array, start: number, end: number): Uint8Array {
  const out = allocPacket(end - start);
  out.set(buf.subarray(start, end));
  return out;
}
