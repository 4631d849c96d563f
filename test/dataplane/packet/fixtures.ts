// Addresses and small helpers shared by the packet-codec tests (documentation ranges only).
import { parseIPv4, parseIPv6 } from "../../../lib/net/address.js";

export const a4 = (text: string): Uint8Array => parseIPv4(text, "test").bytes;
export const a6 = (text: string): Uint8Array => parseIPv6(text, "test").bytes;
export const u32 = (text: string): number => parseIPv4(text, "test").value;

export const MAC_A = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x0a);
export const MAC_B = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x0b);

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** Deterministic bytes, so failures reproduce. */
export function patternBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
