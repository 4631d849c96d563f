// The Internet checksum (RFC 1071), the pseudo-header sums of IPv4 (RFC 768, RFC 793) and IPv6
// (RFC 8200 §8.1), and incremental updates (RFC 1624).
//
// Sums are kept unfolded in a JS number (a double holds integers to 2^53, so the sum of any
// packet's 16-bit words cannot overflow) and folded once at the end: the end-around carry of
// RFC 1071 §2(B) is applied by `fold`.

/**
 * The sum of the 16-bit big-endian words of buf[start, end), plus `initial`, unfolded.
 * An odd last byte is padded with a zero byte on the right (RFC 1071 §4.1).
 */
export function sum16(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  // Four bytes per turn: fewer loop tests on the hot path, same result as word by word.
  const end4 = end - 3;
  for (; i < end4; i += 4) sum += ((buf[i] << 8) | buf[i + 1]) + ((buf[i + 2] << 8) | buf[i + 3]);
  for (; i < end - 1; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

/** Folds a sum to 16 bits with end-around carries (RFC 1071 §2(B)). */
export function fold(sum: number): number {
  // Bit operators work on 32 bits; sums of packets under 64 KiB stay below 2^32, so the
  // arithmetic path is only for larger spans.
  while (sum > 0xffffffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The checksum field value for a sum: the ones' complement of the folded sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** RFC 1071 checksum of buf[start, end) with the checksum field in it taken as it is. */
export function internetChecksum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  return finish(sum16(buf, start, end, initial));
}

/**
 * Computes the RFC 1071 checksum of buf[start, end) (with `initial`, a pseudo-header sum) as if
 * the 16-bit field at `field` were zero, and stores it there; returns it. The one writer behind
 * every "set checksum" of the codec (IPv4 header, ICMP, ICMPv6, Mobility Header).
 */
export function writeChecksum(buf: Uint8Array, start: number, end: number, field: number, initial = 0): number {
  buf[field] = 0;
  buf[field + 1] = 0;
  const c = finish(sum16(buf, start, end, initial));
  buf[field] = c >> 8;
  buf[field + 1] = c & 0xff;
  return c;
}

/** The unsigned 32-bit big-endian word at buf[offset..offset+4] (an IPv4 address, a quarter of an IPv6 one). */
export function read32(buf: Uint8Array, offset = 0): number {
  return ((buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]) >>> 0;
}

/**
 * True when buf[start, end), checksum field included, sums to all ones, the receiver's check
 * of RFC 1071 §1(3).
 */
export function checksumOk(buf: Uint8Array, start: number, end: number, initial = 0): boolean {
  return fold(sum16(buf, start, end, initial)) === 0xffff;
}

/**
 * Sum of the IPv4 pseudo-header (RFC 768; RFC 793 §3.1): source, destination, zero+protocol,
 * upper-layer length.
 */
export function pseudoHeaderSum4(src: Uint8Array, srcOffset: number, dst: Uint8Array, dstOffset: number, protocol: number, length: number): number {
  return sum16(src, srcOffset, srcOffset + 4) + sum16(dst, dstOffset, dstOffset + 4) + protocol + length;
}

/** IPv4 pseudo-header sum with the addresses taken from the IPv4 header at `ipOffset`. */
export function pseudoHeaderSum4At(buf: Uint8Array, ipOffset: number, protocol: number, length: number): number {
  return sum16(buf, ipOffset + 12, ipOffset + 20) + protocol + length;
}

/**
 * Sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination, 32-bit upper-layer
 * length, three zero bytes and the next header. `dst` is the final destination: with a routing
 * header it is the last address in it (RFC 8200 §8.1; RFC 6275 §6.4 for type 2), and with a
 * Home Address option `src` is the home address (RFC 6275 §6.3).
 */
export function pseudoHeaderSum6(src: Uint8Array, srcOffset: number, dst: Uint8Array, dstOffset: number, nextHeader: number, length: number): number {
  return sum16(src, srcOffset, srcOffset + 16) + sum16(dst, dstOffset, dstOffset + 16) + (length >>> 16) + (length & 0xffff) + nextHeader;
}

/** IPv6 pseudo-header sum with the addresses taken from the IPv6 header at `ipOffset`. */
export function pseudoHeaderSum6At(buf: Uint8Array, ipOffset: number, nextHeader: number, length: number): number {
  return sum16(buf, ipOffset + 8, ipOffset + 40) + (length >>> 16) + (length & 0xffff) + nextHeader;
}

/**
 * RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): the new checksum after a 16-bit word of the covered
 * data changes from `oldWord` to `newWord`. Unlike eqn. 2 it never produces 0x0000 from a
 * non-zero sum, which is what RFC 1624 §3 fixes.
 */
export function updateChecksum16(checksum: number, oldWord: number, newWord: number): number {
  return ~fold((~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/**
 * RFC 1624 eqn. 3 for a change of several words at once: `oldSum` and `newSum` are the sums
 * (see `sum16`; folded or not) of the words before and after, e.g. of an old and a new address.
 */
export function updateChecksumSum(checksum: number, oldSum: number, newSum: number): number {
  return ~fold((~checksum & 0xffff) + (~fold(oldSum) & 0xffff) + fold(newSum)) & 0xffff;
}

/**
 * The new checksum after `length` bytes (even) of covered data change from old[oldOffset..] to
 * neu[newOffset..]: replacing an address, or a pseudo-header's addresses under translation.
 */
export function updateChecksumBytes(checksum: number, old: Uint8Array, oldOffset: number, neu: Uint8Array, newOffset: number, length: number): number {
  return updateChecksumSum(checksum, sum16(old, oldOffset, oldOffset + length), sum16(neu, newOffset, newOffset + length));
}
