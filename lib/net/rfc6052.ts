// IPv4-embedded IPv6 addresses, RFC 6052 §2.2. Pure byte code, shared by the engine (care-of
// addresses, translated addresses) and the data plane (the translator's address mapping).

/** The prefix lengths RFC 6052 §2.2 allows. */
export const RFC6052_LENGTHS: readonly number[] = [32, 40, 48, 56, 64, 96];

export function isRfc6052Length(length: number): boolean {
  return RFC6052_LENGTHS.includes(length);
}

/**
 * Where each IPv4 octet goes, per prefix length (RFC 6052 §2.2, Figure 1). Bits 64–71 (byte 8,
 * the "u" octet) are never used and must be zero.
 */
const OCTET_POSITIONS: Record<number, readonly number[]> = {
  32: [4, 5, 6, 7],
  40: [5, 6, 7, 9],
  48: [6, 7, 9, 10],
  56: [7, 9, 10, 11],
  64: [9, 10, 11, 12],
  96: [12, 13, 14, 15],
};

/**
 * Builds prefix + IPv4 address into `out` (16 bytes). The suffix bytes are zero (RFC 6052 §2.2:
 * "the suffix ... SHOULD be set to zero"). Throws on a length RFC 6052 does not allow.
 */
export function embedIPv4(prefix: Uint8Array, length: number, ipv4: Uint8Array, out = new Uint8Array(16)): Uint8Array {
  const pos = OCTET_POSITIONS[length];
  if (pos === undefined) throw new RangeError(`RFC 6052 prefix length must be one of ${RFC6052_LENGTHS.join(", ")}, not ${length}`);
  const whole = length >> 3;
  for (let i = 0; i < 16; i++) out[i] = i < whole ? prefix[i] : 0;
  out[pos[0]] = ipv4[0];
  out[pos[1]] = ipv4[1];
  out[pos[2]] = ipv4[2];
  out[pos[3]] = ipv4[3];
  return out;
}

/** The IPv4 address carried in an RFC 6052 address with the given prefix length. */
export function extractIPv4(address: Uint8Array, length: number, out = new Uint8Array(4)): Uint8Array {
  const pos = OCTET_POSITIONS[length];
  if (pos === undefined) throw new RangeError(`RFC 6052 prefix length must be one of ${RFC6052_LENGTHS.join(", ")}, not ${length}`);
  out[0] = address[pos[0]];
  out[1] = address[pos[1]];
  out[2] = address[pos[2]];
  out[3] = address[pos[3]];
  return out;
}

/**
 * The IPv4 address carried in the RFC 6052 address at buf[offset..offset+16], as an unsigned
 * 32-bit number: extractIPv4 without copying the address or the result (the translator's hot
 * path). The length must be an RFC 6052 one (checked by the caller when it took the prefix).
 */
export function extractIPv4At(buf: Uint8Array, offset: number, length: number): number {
  const pos = OCTET_POSITIONS[length];
  return ((buf[offset + pos[0]] << 24) | (buf[offset + pos[1]] << 16) | (buf[offset + pos[2]] << 8) | buf[offset + pos[3]]) >>> 0;
}
