// Fragmentation the tunnels need and the packet codec does not offer (see the README for when
// each is used). Slow path: allocates one buffer per fragment.
import { setIPv4Checksum } from "../packet/ipv4.js";
import { IPV6_FRAGMENT_HEADER_LENGTH, IPV6_HEADER_LENGTH, writeFragmentHeader } from "../packet/ipv6.js";

/**
 * The options a non-initial fragment carries: those with the copied flag set (RFC 791 §3.1,
 * "Options"; §3.2 fragmentation procedure), padded with End of Option List to a multiple of 4.
 */
function copiedIPv4Options(packet: Uint8Array, headerLength: number): Uint8Array {
  const kept: number[] = [];
  let p = 20;
  while (p < headerLength) {
    const type = packet[p];
    if (type === 0) break; // End of Option List
    if (type === 1) { p++; continue; } // No Operation: not copied
    const length = packet[p + 1];
    if (length < 2 || p + length > headerLength) break; // malformed tail: copy nothing more
    if ((type & 0x80) !== 0) for (let i = 0; i < length; i++) kept.push(packet[p + i]);
    p += length;
  }
  while (kept.length % 4 !== 0) kept.push(0);
  return Uint8Array.from(kept);
}

/**
 * Splits the IPv4 packet packet[0, totalLength) into fragments of at most `maxSize` bytes per
 * RFC 791 §3.2. The packet may itself be a fragment: offsets add to its own and the last piece
 * keeps its MF flag. Returns undefined if `maxSize` leaves no room for 8 bytes of data after a
 * header, or the packet has DF set (callers must not fragment those).
 */
export function fragmentIPv4Packet(packet: Uint8Array, maxSize: number): Uint8Array[] | undefined {
  const headerLength = (packet[0] & 0x0f) << 2;
  const totalLength = (packet[2] << 8) | packet[3];
  const flags = (packet[6] << 8) | packet[7];
  if ((flags & 0x4000) !== 0) return undefined;
  if (totalLength <= maxSize) return [packet.slice(0, totalLength)];
  const firstOffset = flags & 0x1fff;
  const lastMoreFragments = (flags & 0x2000) !== 0;
  const laterOptions = copiedIPv4Options(packet, headerLength);
  const laterHeaderLength = 20 + laterOptions.length;
  const out: Uint8Array[] = [];
  let at = headerLength; // next payload byte to send
  while (at < totalLength) {
    const first = at === headerLength;
    const hl = first ? headerLength : laterHeaderLength;
    const room = (maxSize - hl) & ~7;
    if (room < 8) return undefined;
    const size = Math.min(room, totalLength - at);
    const last = at + size >= totalLength;
    const f = new Uint8Array(hl + size);
    f.set(packet.subarray(0, 20), 0);
    if (first) f.set(packet.subarray(20, headerLength), 20);
    else {
      f.set(laterOptions, 20);
      f[0] = 0x40 | (hl >> 2);
    }
    f.set(packet.subarray(at, at + size), hl);
    f[2] = f.length >> 8;
    f[3] = f.length & 0xff;
    const fo = firstOffset + ((at - headerLength) >> 3);
    const ff = (last ? (lastMoreFragments ? 0x2000 : 0) : 0x2000) | (fo & 0x1fff);
    f[6] = ff >> 8;
    f[7] = ff & 0xff;
    setIPv4Checksum(f, 0);
    out.push(f);
    at += size;
  }
  return out;
}

/**
 * Splits an IPv6 packet that we built ourselves (a fixed header and no extension header that must
 * stay unfragmentable) into fragments of at most `maxSize` bytes, RFC 8200 §4.5: each fragment is
 * the fixed header, a Fragment header and a piece of the rest. Returns undefined if `maxSize`
 * leaves no room for 8 bytes of data.
 */
export function fragmentOwnIPv6Packet(packet: Uint8Array, maxSize: number, identification: number): Uint8Array[] | undefined {
  const total = IPV6_HEADER_LENGTH + ((packet[4] << 8) | packet[5]);
  const firstNextHeader = packet[6];
  const room = (maxSize - IPV6_HEADER_LENGTH - IPV6_FRAGMENT_HEADER_LENGTH) & ~7;
  if (room < 8) return undefined;
  const out: Uint8Array[] = [];
  for (let at = IPV6_HEADER_LENGTH; at < total; at += room) {
    const size = Math.min(room, total - at);
    const last = at + size >= total;
    const f = new Uint8Array(IPV6_HEADER_LENGTH + IPV6_FRAGMENT_HEADER_LENGTH + size);
    f.set(packet.subarray(0, IPV6_HEADER_LENGTH), 0);
    const payloadLength = IPV6_FRAGMENT_HEADER_LENGTH + size;
    f[4] = payloadLength >> 8;
    f[5] = payloadLength & 0xff;
    f[6] = 44; // Fragment
    writeFragmentHeader(f, IPV6_HEADER_LENGTH, firstNextHeader, (at - IPV6_HEADER_LENGTH) >> 3, !last, identification);
    f.set(packet.subarray(at, at + size), IPV6_HEADER_LENGTH + IPV6_FRAGMENT_HEADER_LENGTH);
    out.push(f);
  }
  return out;
}
