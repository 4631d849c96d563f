// UDP (RFC 768) with the pseudo-header checksums of IPv4 (RFC 768) and IPv6 (RFC 8200 §8.1).
import { checksumOk, finish, pseudoHeaderSum4At, pseudoHeaderSum6At, sum16 } from "./checksum.js";
import { IPPROTO, ipv4HeaderLengthFor, writeIPv4Header, type IPv4AddressInput } from "./ipv4.js";
import { IPV6_HEADER_LENGTH, writeIPv6Header } from "./ipv6.js";

export const UDP_HEADER_LENGTH = 8;

export interface UdpHeader {
  offset: number;
  srcPort: number;
  dstPort: number;
  /** The UDP length field: header plus data. */
  length: number;
  /** 0 means "no checksum" over IPv4 (RFC 768); over IPv6 it is invalid (RFC 8200 §8.1). */
  checksum: number;
  payloadOffset: number;
  payloadLength: number;
}

export function newUdpHeader(): UdpHeader {
  return { offset: 0, srcPort: 0, dstPort: 0, length: 0, checksum: 0, payloadOffset: 0, payloadLength: 0 };
}

/**
 * Parses the UDP header at `offset`; `available` is the IP payload length from `offset`.
 * Returns undefined if fewer than 8 bytes are available, or the length field is below 8 or above
 * `available`. A length below `available` is accepted (the rest is IP-level padding).
 */
export function parseUdp(buf: Uint8Array, offset: number, available = buf.length - offset, out?: UdpHeader): UdpHeader | undefined {
  if (available < UDP_HEADER_LENGTH || offset + available > buf.length) return undefined;
  const length = (buf[offset + 4] << 8) | buf[offset + 5];
  if (length < UDP_HEADER_LENGTH || length > available) return undefined;
  const h = out ?? newUdpHeader();
  h.offset = offset;
  h.srcPort = (buf[offset] << 8) | buf[offset + 1];
  h.dstPort = (buf[offset + 2] << 8) | buf[offset + 3];
  h.length = length;
  h.checksum = (buf[offset + 6] << 8) | buf[offset + 7];
  h.payloadOffset = offset + UDP_HEADER_LENGTH;
  h.payloadLength = length - UDP_HEADER_LENGTH;
  return h;
}

export function writeUdpHeader(buf: Uint8Array, offset: number, srcPort: number, dstPort: number, length: number, checksum = 0): number {
  buf[offset] = srcPort >> 8;
  buf[offset + 1] = srcPort & 0xff;
  buf[offset + 2] = dstPort >> 8;
  buf[offset + 3] = dstPort & 0xff;
  buf[offset + 4] = length >> 8;
  buf[offset + 5] = length & 0xff;
  buf[offset + 6] = checksum >> 8;
  buf[offset + 7] = checksum & 0xff;
  return UDP_HEADER_LENGTH;
}

/**
 * The checksum for the UDP datagram at buf[offset, offset+length) given the pseudo-header sum,
 * computed as if the field were zero. A computed 0 is sent as 0xFFFF (RFC 768), so a
 * result is never 0.
 */
export function computeUdpChecksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): number {
  const stored = (buf[offset + 6] << 8) | buf[offset + 7];
  const c = finish(sum16(buf, offset, offset + length, pseudoSum) - stored);
  return c === 0 ? 0xffff : c;
}

/** Computes and stores the checksum; returns it. */
export function setUdpChecksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): number {
  buf[offset + 6] = 0;
  buf[offset + 7] = 0;
  const c = computeUdpChecksum(buf, offset, length, pseudoSum);
  buf[offset + 6] = c >> 8;
  buf[offset + 7] = c & 0xff;
  return c;
}

/**
 * True if the stored checksum is right. A zero checksum is reported false: whether "no checksum"
 * is acceptable depends on the IP version and the caller (RFC 768; RFC 8200 §8.1; RFC 7915 §4.5).
 */
export function verifyUdpChecksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): boolean {
  if (buf[offset + 6] === 0 && buf[offset + 7] === 0) return false;
  return checksumOk(buf, offset, offset + length, pseudoSum);
}

export interface Udp4Options {
  src: IPv4AddressInput;
  dst: IPv4AddressInput;
  srcPort: number;
  dstPort: number;
  ttl?: number;
  tos?: number;
  identification?: number;
  dontFragment?: boolean;
  /** Send a zero checksum (RFC 768 allows it over IPv4). */
  zeroChecksum?: boolean;
}

/** A new IPv4/UDP packet with correct checksums. */
export function buildUdp4(o: Udp4Options, payload: Uint8Array): Uint8Array {
  const hl = ipv4HeaderLengthFor();
  const udpLength = UDP_HEADER_LENGTH + payload.length;
  const out = new Uint8Array(hl + udpLength);
  writeIPv4Header(out, 0, {
    totalLength: out.length, ttl: o.ttl ?? 64, protocol: IPPROTO.UDP, src: o.src, dst: o.dst,
    tos: o.tos, identification: o.identification, dontFragment: o.dontFragment,
  });
  writeUdpHeader(out, hl, o.srcPort, o.dstPort, udpLength);
  out.set(payload, hl + UDP_HEADER_LENGTH);
  if (!o.zeroChecksum) setUdpChecksum(out, hl, udpLength, pseudoHeaderSum4At(out, 0, IPPROTO.UDP, udpLength));
  return out;
}

export interface Udp6Options {
  src: Uint8Array;
  dst: Uint8Array;
  srcPort: number;
  dstPort: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  /** Leave the checksum zero: only for tests of what receivers do with it (RFC 8200 §8.1 forbids it). */
  zeroChecksum?: boolean;
}

/** A new IPv6/UDP packet with a correct checksum. */
export function buildUdp6(o: Udp6Options, payload: Uint8Array): Uint8Array {
  const udpLength = UDP_HEADER_LENGTH + payload.length;
  const out = new Uint8Array(IPV6_HEADER_LENGTH + udpLength);
  writeIPv6Header(out, 0, {
    payloadLength: udpLength, nextHeader: IPPROTO.UDP, hopLimit: o.hopLimit ?? 64, src: o.src, dst: o.dst,
    trafficClass: o.trafficClass, flowLabel: o.flowLabel,
  });
  writeUdpHeader(out, IPV6_HEADER_LENGTH, o.srcPort, o.dstPort, udpLength);
  out.set(payload, IPV6_HEADER_LENGTH + UDP_HEADER_LENGTH);
  if (!o.zeroChecksum) setUdpChecksum(out, IPV6_HEADER_LENGTH, udpLength, pseudoHeaderSum6At(out, 0, IPPROTO.UDP, udpLength));
  return out;
}
