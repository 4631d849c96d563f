// Buffers for the packets the translator emits: in the forwarder's output buffer when they fit,
// else from allocPacket (dataplane/packet/buffers.ts).
import { allocPacket, type PrefixViews } from "../packet/buffers.js";

/**
 * The buffer a whole translated packet of `length` bytes is written to: the caller's output
 * buffer (TranslatorState.output, the forwarder's frame buffer, so the packet is written once,
 * where it is sent from) when it is given, big enough and the input is not one of its packets;
 * else a new one. An input is told from the output's packets by identity (PrefixViews.holds):
 * `.buffer` is a C++ call in Node 20, ~25 ns twice per packet. So an input must not overlap the
 * output unless it is a packet the output handed out (the forwarder's never does).
 */
export function outputPacket(output: PrefixViews | undefined, input: Uint8Array, length: number): Uint8Array {
  if (output !== undefined && length <= output.buf.length && !output.holds(input)) return output.of(length);
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
