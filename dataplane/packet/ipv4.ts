// IPv4 header codec (RFC 791 §3.1). Offsets in parsed headers are absolute positions in the
// buffer given to the parser, so a caller can rewrite fields in place.
import { checksumOk, read32, writeChecksum } from "./checksum.js";

/** IP protocol numbers (IANA "Assigned Internet Protocol Numbers"); shared by IPv6 next header. */
export const IPPROTO = {
  HOPOPTS: 0,
  ICMP: 1,
  IPIP: 4, // IPv4 encapsulation (RFC 2003)
  TCP: 6,
  UDP: 17,
  IPV6: 41, // IPv6 encapsulation (RFC 2473, RFC 4213)
  ROUTING: 43,
  FRAGMENT: 44,
  ESP: 50,
  AH: 51,
  ICMPV6: 58,
  NONE: 59,
  DSTOPTS: 60,
  MOBILITY: 135, // RFC 6275 §6.1
} as const;

export const IPV4_HEADER_LENGTH = 20;
export const IPV4_MAX_HEADER_LENGTH = 60;

export interface IPv4Header {
  /** Where the header starts. */
  offset: number;
  /** IHL × 4, 20..60. */
  headerLength: number;
  /** Type of service byte: DSCP (high 6 bits) and ECN (low 2 bits, RFC 3168). */
  tos: number;
  totalLength: number;
  identification: number;
  dontFragment: boolean;
  moreFragments: boolean;
  /** In 8-octet units, as on the wire (RFC 791). Byte offset is this × 8. */
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  checksum: number;
  checksumValid: boolean;
  /** Addresses as unsigned 32-bit integers, for cheap lookups. */
  src: number;
  dst: number;
  srcOffset: number;
  dstOffset: number;
  /** Options occupy [optionsOffset, optionsOffset + optionsLength). */
  optionsOffset: number;
  optionsLength: number;
  payloadOffset: number;
  /** totalLength − headerLength; bytes past totalLength (link padding) are not payload. */
  payloadLength: number;
}

/** A blank header object to reuse across `parseIPv4` calls on the hot path. */
export function newIPv4Header(): IPv4Header {
  return {
    offset: 0, headerLength: 0, tos: 0, totalLength: 0, identification: 0, dontFragment: false, moreFragments: false,
    fragmentOffset: 0, ttl: 0, protocol: 0, checksum: 0, checksumValid: false, src: 0, dst: 0, srcOffset: 0, dstOffset: 0,
    optionsOffset: 0, optionsLength: 0, payloadOffset: 0, payloadLength: 0,
  };
}

/**
 * Parses the IPv4 header at `offset`. `end` bounds the bytes that belong to the packet (default:
 * the end of `buf`). Returns undefined when the bytes are not a well-formed IPv4 header: version
 * not 4, IHL < 5, header or total length past `end`, total length shorter than the header.
 * A bad checksum is reported in `checksumValid`, not by failing.
 * Pass `out` to fill an existing object instead of allocating one.
 */
export function parseIPv4(buf: Uint8Array, offset = 0, end = buf.length, out?: IPv4Header): IPv4Header | undefined {
  if (end > buf.length) end = buf.length;
  if (end - offset < IPV4_HEADER_LENGTH) return undefined;
  const vihl = buf[offset];
  if (vihl >> 4 !== 4) return undefined;
  const headerLength = (vihl & 0x0f) << 2;
  if (headerLength < IPV4_HEADER_LENGTH || offset + headerLength > end) return undefined;
  const totalLength = (buf[offset + 2] << 8) | buf[offset + 3];
  if (totalLength < headerLength || offset + totalLength > end) return undefined;
  const h = out ?? newIPv4Header();
  h.offset = offset;
  h.headerLength = headerLength;
  h.tos = buf[offset + 1];
  h.totalLength = totalLength;
  h.identification = (buf[offset + 4] << 8) | buf[offset + 5];
  const ff = (buf[offset + 6] << 8) | buf[offset + 7];
  h.dontFragment = (ff & 0x4000) !== 0;
  h.moreFragments = (ff & 0x2000) !== 0;
  h.fragmentOffset = ff & 0x1fff;
  h.ttl = buf[offset + 8];
  h.protocol = buf[offset + 9];
  h.checksum = (buf[offset + 10] << 8) | buf[offset + 11];
  h.checksumValid = checksumOk(buf, offset, offset + headerLength);
  h.srcOffset = offset + 12;
  h.dstOffset = offset + 16;
  h.src = ((buf[offset + 12] << 24) | (buf[offset + 13] << 16) | (buf[offset + 14] << 8) | buf[offset + 15]) >>> 0;
  h.dst = ((buf[offset + 16] << 24) | (buf[offset + 17] << 16) | (buf[offset + 18] << 8) | buf[offset + 19]) >>> 0;
  h.optionsOffset = offset + IPV4_HEADER_LENGTH;
  h.optionsLength = headerLength - IPV4_HEADER_LENGTH;
  h.payloadOffset = offset + headerLength;
  h.payloadLength = totalLength - headerLength;
  return h;
}

/** An IPv4 address as 4 bytes or as an unsigned 32-bit integer. */
export type IPv4AddressInput = Uint8Array | number;

export interface IPv4Fields {
  tos?: number;
  /** Header plus payload. Builders that take a payload fill it in. */
  totalLength: number;
  identification?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** In 8-octet units. */
  fragmentOffset?: number;
  ttl: number;
  protocol: number;
  src: IPv4AddressInput;
  dst: IPv4AddressInput;
  /** Raw option bytes; padded with End of Option List (0) to a multiple of 4 (RFC 791). */
  options?: Uint8Array;
}

export function writeIPv4Address(buf: Uint8Array, offset: number, address: IPv4AddressInput): void {
  if (typeof address === "number") {
    buf[offset] = address >>> 24;
    buf[offset + 1] = (address >>> 16) & 0xff;
    buf[offset + 2] = (address >>> 8) & 0xff;
    buf[offset + 3] = address & 0xff;
  } else {
    buf[offset] = address[0];
    buf[offset + 1] = address[1];
    buf[offset + 2] = address[2];
    buf[offset + 3] = address[3];
  }
}

/** Header length that `writeIPv4Header` will write for these options. */
export function ipv4HeaderLengthFor(options?: Uint8Array): number {
  const o = options === undefined ? 0 : (options.length + 3) & ~3;
  return IPV4_HEADER_LENGTH + o;
}

/**
 * Writes an IPv4 header with its options and checksum at `offset`; returns the header length.
 * Throws RangeError if the options exceed 40 bytes (IHL is 4 bits, RFC 791).
 */
export function writeIPv4Header(buf: Uint8Array, offset: number, f: IPv4Fields): number {
  const headerLength = ipv4HeaderLengthFor(f.options);
  if (headerLength > IPV4_MAX_HEADER_LENGTH) throw new RangeError(`IPv4 options of ${f.options?.length} bytes exceed 40`);
  buf[offset] = 0x40 | (headerLength >> 2);
  buf[offset + 1] = f.tos ?? 0;
  buf[offset + 2] = f.totalLength >> 8;
  buf[offset + 3] = f.totalLength & 0xff;
  const id = f.identification ?? 0;
  buf[offset + 4] = id >> 8;
  buf[offset + 5] = id & 0xff;
  const ff = (f.dontFragment ? 0x4000 : 0) | (f.moreFragments ? 0x2000 : 0) | ((f.fragmentOffset ?? 0) & 0x1fff);
  buf[offset + 6] = ff >> 8;
  buf[offset + 7] = ff & 0xff;
  buf[offset + 8] = f.ttl;
  buf[offset + 9] = f.protocol;
  buf[offset + 10] = 0;
  buf[offset + 11] = 0;
  writeIPv4Address(buf, offset + 12, f.src);
  writeIPv4Address(buf, offset + 16, f.dst);
  if (f.options !== undefined) {
    buf.set(f.options, offset + IPV4_HEADER_LENGTH);
    buf.fill(0, offset + IPV4_HEADER_LENGTH + f.options.length, offset + headerLength);
  }
  writeChecksum(buf, offset, offset + headerLength, offset + 10);
  return headerLength;
}

/** Recomputes the header checksum in place (after a change to any header field). */
export function setIPv4Checksum(buf: Uint8Array, offset: number): void {
  writeChecksum(buf, offset, offset + ((buf[offset] & 0x0f) << 2), offset + 10);
}

/** A new IPv4 packet: header (totalLength computed) followed by `payload`. */
export function buildIPv4Packet(fields: Omit<IPv4Fields, "totalLength">, payload: Uint8Array): Uint8Array {
  const headerLength = ipv4HeaderLengthFor(fields.options);
  const out = new Uint8Array(headerLength + payload.length);
  writeIPv4Header(out, 0, { ...fields, totalLength: out.length });
  out.set(payload, headerLength);
  return out;
}

/** The address at buf[offset..offset+4] as an unsigned 32-bit integer. */
export function readIPv4Address(buf: Uint8Array, offset: number): number {
  return read32(buf, offset);
}

/** True for a fragment other than the first one, which has no upper-layer header. */
export function isNonInitialFragment(h: IPv4Header): boolean {
  return h.fragmentOffset !== 0;
}
