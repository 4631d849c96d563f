// Fragmentation without reassembly, for the tunnels and the translator: a buffer per fragment,
// from allocPacket.
import { allocPacket, copyBytes } from "./buffers.js";
import { IPPROTO, setIPv4Checksum, writeIPv4Header, type IPv4Fields } from "./ipv4.js";
import { IPV6_FRAGMENT_HEADER_LENGTH, IPV6_HEADER_LENGTH, writeFragmentHeader, writeIPv6Header } from "./ipv6.js";

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
 * With `headroom`, each fragment is a view that starts `headroom` bytes into a buffer of its own,
 * so that a tunnel can write its outer header before it without a copy (withHeadroom).
 */
export function fragmentIPv4Packet(packet: Uint8Array, maxSize: number, headroom = 0): Uint8Array[] | undefined {
  const headerLength = (packet[0] & 0x0f) << 2;
  const totalLength = (packet[2] << 8) | packet[3];
  const flags = (packet[6] << 8) | packet[7];
  if ((flags & 0x4000) !== 0) return undefined;
  if (totalLength <= maxSize) {
    const whole = allocFragment(headroom, totalLength);
    copyBytes(whole, 0, packet, 0, totalLength);
    return [whole];
  }
  return cutIPv4(packet.subarray(0, headerLength), copiedIPv4Options(packet, headerLength), packet.subarray(headerLength, totalLength),
    flags & 0x1fff, (flags & 0x2000) !== 0, maxSize, headroom);
}

/**
 * Builds the IPv4 fragments, of at most `maxSize` bytes each, of a datagram with header `base`
 * (no options) and payload `payload` (RFC 791 §2.3: a router may fragment what has DF clear).
 * `base.fragmentOffset` and `base.moreFragments` place `payload` in a datagram that may itself be
 * a fragment.
 */
export function fragmentIPv4Payload(payload: Uint8Array, base: Omit<IPv4Fields, "totalLength" | "options" | "dontFragment">, maxSize: number): Uint8Array[] {
  const header = allocPacket(20);
  writeIPv4Header(header, 0, { ...base, totalLength: 20, dontFragment: false, moreFragments: false, fragmentOffset: 0 });
  const pieces = cutIPv4(header, NO_OPTIONS, payload, base.fragmentOffset ?? 0, base.moreFragments ?? false, maxSize);
  if (!pieces) throw new RangeError(`an MTU of ${maxSize} leaves no room for IPv4 fragments`);
  return pieces;
}

const NO_OPTIONS = new Uint8Array(0);

function cutIPv4(firstHeader: Uint8Array, laterOptions: Uint8Array, payload: Uint8Array, firstOffset: number, lastMoreFragments: boolean, maxSize: number, headroom = 0): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  const laterHeaderLength = 20 + laterOptions.length;
  let at = 0; // next payload byte to send
  while (at < payload.length || out.length === 0) {
    const first = at === 0;
    const hl = first ? firstHeader.length : laterHeaderLength;
    const room = (maxSize - hl) & ~7;
    if (room < 8) return undefined;
    const size = Math.min(room, payload.length - at);
    const last = at + size >= payload.length;
    const f = allocFragment(headroom, hl + size);
    if (first) f.set(firstHeader, 0);
    else {
      f.set(firstHeader.subarray(0, 20), 0);
      f.set(laterOptions, 20);
      f[0] = 0x40 | (hl >> 2);
    }
    copyBytes(f, hl, payload, at, size);
    f[2] = f.length >> 8;
    f[3] = f.length & 0xff;
    const fo = firstOffset + (at >> 3);
    const ff = (last ? (lastMoreFragments ? 0x2000 : 0) : 0x2000) | (fo & 0x1fff);
    f[6] = ff >> 8;
    f[7] = ff & 0xff;
    setIPv4Checksum(f, 0);
    out.push(f);
    at += size;
  }
  return out;
}

/** `length` bytes for a fragment, `headroom` bytes into a buffer of their own (withHeadroom gives the whole). */
function allocFragment(headroom: number, length: number): Uint8Array {
  return headroom === 0 ? allocPacket(length) : allocPacket(headroom + length).subarray(headroom);
}

/** The `headroom` bytes before a fragment that fragmentIPv4Packet made with that headroom, and the fragment: one view, no copy. */
export function withHeadroom(fragment: Uint8Array, headroom: number): Uint8Array {
  if (fragment.byteOffset < headroom) throw new RangeError(`no ${headroom} bytes before this fragment`);
  return new Uint8Array(fragment.buffer, fragment.byteOffset - headroom, headroom + fragment.length);
}

export interface IPv6FragmentBase {
  trafficClass: number;
  hopLimit: number;
  src: Uint8Array;
  dst: Uint8Array;
  /** Protocol of the fragmented payload (the fragment header's next header). */
  nextHeader: number;
  /** Where `payload` starts in the original datagram, in 8-octet units (non-zero for a translated IPv4 fragment). */
  fragmentOffset: number;
  /** Whether more of the original datagram follows `payload`. */
  moreFragments: boolean;
  identification: number;
}

/**
 * Cuts `payload` into IPv6 fragments no bigger than `mtu` each, each the fixed header, a Fragment
 * header and a piece of the payload (RFC 8200 §4.5). Returns undefined if `mtu` leaves no room
 * for 8 bytes of data.
 */
export function fragmentIPv6Payload(payload: Uint8Array, base: IPv6FragmentBase, mtu: number): Uint8Array[] | undefined {
  // Every fragment but the last carries a multiple of 8 octets (RFC 8200 §4.5).
  const chunk = (mtu - IPV6_HEADER_LENGTH - IPV6_FRAGMENT_HEADER_LENGTH) & ~7;
  if (chunk < 8) return undefined;
  const out: Uint8Array[] = [];
  for (let at = 0; at < payload.length || at === 0; at += chunk) {
    const length = Math.min(chunk, payload.length - at);
    const last = at + length >= payload.length;
    const p = allocPacket(IPV6_HEADER_LENGTH + IPV6_FRAGMENT_HEADER_LENGTH + length);
    writeIPv6Header(p, 0, {
      trafficClass: base.trafficClass, payloadLength: IPV6_FRAGMENT_HEADER_LENGTH + length, nextHeader: IPPROTO.FRAGMENT,
      hopLimit: base.hopLimit, src: base.src, dst: base.dst,
    });
    writeFragmentHeader(p, IPV6_HEADER_LENGTH, base.nextHeader, base.fragmentOffset + (at >> 3), !last || base.moreFragments, base.identification);
    copyBytes(p, IPV6_HEADER_LENGTH + IPV6_FRAGMENT_HEADER_LENGTH, payload, at, length);
    out.push(p);
    if (last) break;
  }
  return out;
}
