// Transport-layer header translation (RFC 7915 §4.5, §5.5). SIIT changes only the addresses of
// the TCP/UDP pseudo-header (protocol and length stay), so the checksum is updated with
// RFC 1624 instead of recomputed, and works on first fragments and truncated quotes alike.
import { pseudoHeaderSum6, updateChecksumSum } from "../packet/checksum.js";
import { IPPROTO } from "../packet/ipv4.js";
import { setUdpChecksum } from "../packet/udp.js";

/**
 * Updates the TCP or UDP checksum of the segment at buf[offset, offset+available) after its
 * pseudo-header addresses changed from a sum of `oldAddressSum` to `newAddressSum`. Bytes not
 * present (a truncated quote) are left alone. Other protocols pass unchanged (§4.5, §5.5:
 * "translators MUST forward all transport protocols").
 */
export function updateTransportChecksum(buf: Uint8Array, offset: number, available: number, protocol: number, oldAddressSum: number, newAddressSum: number): void {
  if (protocol === IPPROTO.TCP) {
    if (available < 18) return;
    const c = updateChecksumSum((buf[offset + 16] << 8) | buf[offset + 17], oldAddressSum, newAddressSum);
    buf[offset + 16] = c >> 8;
    buf[offset + 17] = c & 0xff;
  } else if (protocol === IPPROTO.UDP) {
    if (available < 8) return;
    const old = (buf[offset + 6] << 8) | buf[offset + 7];
    // A zero UDP checksum means "none" (RFC 768): there is nothing to update.
    if (old === 0) return;
    let c = updateChecksumSum(old, oldAddressSum, newAddressSum);
    // RFC 768: a computed zero is sent as all ones, zero meaning "no checksum".
    if (c === 0) c = 0xffff;
    buf[offset + 6] = c >> 8;
    buf[offset + 7] = c & 0xff;
  }
}

/** RFC 7915 §4.5 option 2: compute the checksum an IPv4 UDP datagram went without, for IPv6 (RFC 8200 §8.1). */
export function computeUdpChecksum6(buf: Uint8Array, offset: number, length: number, src6: Uint8Array, dst6: Uint8Array): void {
  setUdpChecksum(buf, offset, length, pseudoHeaderSum6(src6, 0, dst6, 0, IPPROTO.UDP, length));
}

/**
 * Rewrites the echo message header at buf[at..] to `type`, code 0 (RFC 7915 §4.2, §5.2), and
 * updates its checksum by RFC 1624: `oldPseudo` / `newPseudo` are the pseudo-header sums the old
 * and new checksums cover (ICMPv6 has one, RFC 4443 §2.3; ICMPv4 none: 0).
 */
export function rewriteEcho(buf: Uint8Array, at: number, type: number, oldPseudo: number, newPseudo: number): void {
  const old = (buf[at] << 8) | buf[at + 1];
  buf[at] = type;
  buf[at + 1] = 0;
  const c = updateChecksumSum((buf[at + 2] << 8) | buf[at + 3], old + oldPseudo, (type << 8) + newPseudo);
  buf[at + 2] = c >> 8;
  buf[at + 3] = c & 0xff;
}

/** RFC 4884 §4.1: the "original datagram" field of an error with an extension is at least 128 bytes. */
const RFC4884_MIN_ORIGINAL = 128;

/**
 * The body of a translated ICMP error: `inner` (the translated packet in error) and, when the
 * error has one and the new type can say so, the RFC 4884 `extension`, all within `maxBody`.
 * Returns the body and the RFC 4884 length attribute in `align`-byte words (0: no extension).
 *
 * RFC 4884 §4.1 and §4 (ours, written down in README.md "choices"):
 * - the quoted datagram is zero-padded to a multiple of `align` (4 for ICMPv4, 8 for ICMPv6) and
 *   to at least 128 bytes; when it must be cut, it is cut at such a multiple, never padded past it;
 * - it is cut so that the extension fits `maxBody` whole and the 8-bit length attribute can
 *   count it (at most 255 words): the extension is never cut, which would break its checksum;
 * - when even 128 bytes of quote and the whole extension do not fit, the extension is dropped
 *   and the body is the quote alone, cut at `maxBody`.
 */
export function errorBody(inner: Uint8Array, extension: Uint8Array | undefined, align: 4 | 8, maxBody: number): { body: Uint8Array; lengthWords: number } {
  if (extension !== undefined && extension.length > 0) {
    const room = Math.min(maxBody - extension.length, 255 * align) & ~(align - 1);
    if (room >= RFC4884_MIN_ORIGINAL) {
      const quoted = Math.min(room, Math.max(RFC4884_MIN_ORIGINAL, (inner.length + align - 1) & ~(align - 1)));
      const body = new Uint8Array(quoted + extension.length);
      body.set(inner.subarray(0, quoted), 0);
      body.set(extension, quoted);
      return { body, lengthWords: quoted / align };
    }
  }
  return { body: inner.length > maxBody ? inner.subarray(0, maxBody) : inner, lengthWords: 0 };
}
