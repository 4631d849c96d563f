// ICMP for IPv4 (RFC 792), with the error rules of RFC 1812 §4.3.2.
import { checksumOk, writeChecksum } from "./checksum.js";
import { IPPROTO, IPV4_HEADER_LENGTH, readIPv4Address, writeIPv4Header, type IPv4AddressInput } from "./ipv4.js";

export const ICMP4_HEADER_LENGTH = 8;

export const ICMP4_TYPE = {
  ECHO_REPLY: 0,
  DESTINATION_UNREACHABLE: 3,
  SOURCE_QUENCH: 4,
  REDIRECT: 5,
  ECHO_REQUEST: 8,
  ROUTER_ADVERTISEMENT: 9,
  ROUTER_SOLICITATION: 10,
  TIME_EXCEEDED: 11,
  PARAMETER_PROBLEM: 12,
  TIMESTAMP: 13,
  TIMESTAMP_REPLY: 14,
  INFORMATION_REQUEST: 15,
  INFORMATION_REPLY: 16,
} as const;

/** Destination Unreachable codes (RFC 792; 6–12 RFC 1122 §3.2.2.1; 13–15 RFC 1812 §5.2.7.1). */
export const ICMP4_UNREACH = {
  NET: 0,
  HOST: 1,
  PROTOCOL: 2,
  PORT: 3,
  /** Fragmentation needed and DF set; next-hop MTU in the low 16 bits of rest-of-header (RFC 1191 §4). */
  FRAGMENTATION_NEEDED: 4,
  SOURCE_ROUTE_FAILED: 5,
  NET_UNKNOWN: 6,
  HOST_UNKNOWN: 7,
  SOURCE_HOST_ISOLATED: 8,
  NET_PROHIBITED: 9,
  HOST_PROHIBITED: 10,
  NET_TOS: 11,
  HOST_TOS: 12,
  ADMIN_PROHIBITED: 13,
  HOST_PRECEDENCE_VIOLATION: 14,
  PRECEDENCE_CUTOFF: 15,
} as const;

export const ICMP4_TIME_EXCEEDED = { TTL: 0, REASSEMBLY: 1 } as const;

/** RFC 1812 §4.3.2.3: an ICMP error datagram, IP header included, stays within 576 bytes. */
export const ICMP4_ERROR_MAX_LENGTH = 576;

/**
 * An ICMP or ICMPv6 message: both start with type, code, checksum and 4 bytes whose meaning
 * depends on the type (RFC 792; RFC 4443 §2.1).
 */
export interface IcmpMessage {
  offset: number;
  type: number;
  code: number;
  checksum: number;
  /** Bytes 4..7 as an unsigned 32-bit integer: identifier/sequence, pointer, MTU, gateway... */
  restOfHeader: number;
  /** The data after the 8-byte header; for errors, the quoted invoking packet. */
  bodyOffset: number;
  bodyLength: number;
}

export type Icmp4Message = IcmpMessage;

export function newIcmpMessage(): IcmpMessage {
  return { offset: 0, type: 0, code: 0, checksum: 0, restOfHeader: 0, bodyOffset: 0, bodyLength: 0 };
}

export const newIcmp4Message = newIcmpMessage;

/**
 * Parses the ICMP (or ICMPv6) message at buf[offset, offset+length). Returns undefined if it is
 * shorter than its 8-byte header or runs past the buffer. The checksum is not checked here (it
 * covers the whole message): use `verifyIcmp4Checksum` / `verifyIcmp6Checksum`.
 */
export function parseIcmpMessage(buf: Uint8Array, offset: number, length = buf.length - offset, out?: IcmpMessage): IcmpMessage | undefined {
  if (length < ICMP4_HEADER_LENGTH || offset + length > buf.length) return undefined;
  const m = out ?? newIcmpMessage();
  m.offset = offset;
  m.type = buf[offset];
  m.code = buf[offset + 1];
  m.checksum = (buf[offset + 2] << 8) | buf[offset + 3];
  m.restOfHeader = ((buf[offset + 4] << 24) | (buf[offset + 5] << 16) | (buf[offset + 6] << 8) | buf[offset + 7]) >>> 0;
  m.bodyOffset = offset + ICMP4_HEADER_LENGTH;
  m.bodyLength = length - ICMP4_HEADER_LENGTH;
  return m;
}

export const parseIcmp4 = parseIcmpMessage;

/** RFC 792: the checksum covers the ICMP message only, no pseudo-header. */
export function verifyIcmp4Checksum(buf: Uint8Array, offset: number, length: number): boolean {
  return checksumOk(buf, offset, offset + length);
}

export function setIcmp4Checksum(buf: Uint8Array, offset: number, length: number): number {
  return writeChecksum(buf, offset, offset + length, offset + 2);
}

/** True for the error types RFC 1812 §4.3.2.7 means by "ICMP error message". */
export function isIcmp4Error(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/**
 * Writes an ICMP or ICMPv6 message's type, code, rest of header and body at `offset` (the two
 * share this layout: RFC 792, RFC 4443 §2.1), the checksum left to the caller; returns its length.
 */
export function writeIcmpFields(buf: Uint8Array, offset: number, type: number, code: number, restOfHeader: number, body: Uint8Array): number {
  buf[offset] = type;
  buf[offset + 1] = code;
  buf[offset + 4] = restOfHeader >>> 24;
  buf[offset + 5] = (restOfHeader >>> 16) & 0xff;
  buf[offset + 6] = (restOfHeader >>> 8) & 0xff;
  buf[offset + 7] = restOfHeader & 0xff;
  buf.set(body, offset + ICMP4_HEADER_LENGTH);
  return ICMP4_HEADER_LENGTH + body.length;
}

/** Writes an ICMP message (header, body, checksum) at `offset`; returns its length. */
export function writeIcmp4(buf: Uint8Array, offset: number, type: number, code: number, restOfHeader: number, body: Uint8Array): number {
  const length = writeIcmpFields(buf, offset, type, code, restOfHeader, body);
  setIcmp4Checksum(buf, offset, length);
  return length;
}

/** A new ICMP message (no IP header). */
export function buildIcmp4Message(type: number, code: number, restOfHeader: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(ICMP4_HEADER_LENGTH + body.length);
  writeIcmp4(out, 0, type, code, restOfHeader, body);
  return out;
}

export interface Icmp4PacketOptions {
  src: IPv4AddressInput;
  dst: IPv4AddressInput;
  ttl?: number;
  tos?: number;
  identification?: number;
  dontFragment?: boolean;
}

/** A new IPv4 packet carrying an ICMP message. */
export function buildIcmp4Packet(ip: Icmp4PacketOptions, type: number, code: number, restOfHeader: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(IPV4_HEADER_LENGTH + ICMP4_HEADER_LENGTH + body.length);
  writeIPv4Header(out, 0, {
    totalLength: out.length, ttl: ip.ttl ?? 64, protocol: IPPROTO.ICMP, src: ip.src, dst: ip.dst, tos: ip.tos,
    identification: ip.identification, dontFragment: ip.dontFragment,
  });
  writeIcmp4(out, IPV4_HEADER_LENGTH, type, code, restOfHeader, body);
  return out;
}

/** Echo request or reply (RFC 792): identifier and sequence number in rest-of-header. */
export function buildIcmp4Echo(ip: Icmp4PacketOptions, reply: boolean, identifier: number, sequence: number, data: Uint8Array): Uint8Array {
  return buildIcmp4Packet(ip, reply ? ICMP4_TYPE.ECHO_REPLY : ICMP4_TYPE.ECHO_REQUEST, 0, ((identifier & 0xffff) << 16 | (sequence & 0xffff)) >>> 0, data);
}

/** Rest-of-header for Fragmentation Needed: the next-hop MTU (RFC 1191 §4). */
export function fragmentationNeededRest(mtu: number): number {
  return mtu & 0xffff;
}

/** Rest-of-header for Parameter Problem: the pointer in the first byte (RFC 792). */
export function parameterProblemRest(pointer: number): number {
  return ((pointer & 0xff) << 24) >>> 0;
}

export interface Icmp4ErrorOptions {
  /**
   * RFC 1812 §4.3.2.5: errors other than Source Quench SHOULD carry precedence 6 (Internetwork
   * Control), hence the default TOS 0xC0.
   */
  tos?: number;
  identification?: number;
  /** Cap on the whole error datagram; default 576 (RFC 1812 §4.3.2.3). */
  maxLength?: number;
}

/**
 * A full IPv4 packet carrying an ICMP error about `invokingPacket` (an IPv4 packet, from its IP
 * header on). The quote is as much of the invoking packet as fits in `maxLength` (RFC 1812
 * §4.3.2.3, which asks for more than the 8 bytes RFC 792 requires), cut at the invoking packet's
 * total length so link padding is not quoted. Callers decide whether an error may be sent at all
 * (`mayQuoteIcmp4`).
 */
export function buildIcmp4Error(type: number, code: number, restOfHeader: number, invokingPacket: Uint8Array, src: IPv4AddressInput, dst: IPv4AddressInput, ttl = 64, options: Icmp4ErrorOptions = {}): Uint8Array {
  const max = options.maxLength ?? ICMP4_ERROR_MAX_LENGTH;
  let invokingLength = invokingPacket.length;
  if (invokingLength >= 4 && invokingPacket[0] >> 4 === 4) {
    const total = (invokingPacket[2] << 8) | invokingPacket[3];
    if (total >= IPV4_HEADER_LENGTH && total < invokingLength) invokingLength = total;
  }
  const quote = Math.max(0, Math.min(invokingLength, max - IPV4_HEADER_LENGTH - ICMP4_HEADER_LENGTH));
  return buildIcmp4Packet(
    { src, dst, ttl, tos: options.tos ?? 0xc0, identification: options.identification },
    type, code, restOfHeader, invokingPacket.subarray(0, quote),
  );
}

function isUnicastSource4(a: number): boolean {
  const first = a >>> 24;
  // RFC 1812 §4.3.2.7 / §5.3.7: not 0.0.0.0/8 ("this network"), 127/8, class D or E, broadcast.
  return first !== 0 && first !== 127 && first < 224;
}

/**
 * Whether RFC 1812 §4.3.2.7 allows an ICMP error about the IPv4 packet at `offset`: not about an
 * ICMP error, a non-initial fragment, a packet to a multicast or limited-broadcast address, or
 * from a source that does not name one host. Link-layer broadcast and directed broadcast cannot
 * be seen from the bytes alone; callers that know must check those too. A packet that does not
 * parse gets no error.
 */
export function mayQuoteIcmp4(packet: Uint8Array, offset = 0): boolean {
  if (packet.length - offset < IPV4_HEADER_LENGTH || packet[offset] >> 4 !== 4) return false;
  const headerLength = (packet[offset] & 0x0f) << 2;
  if (headerLength < IPV4_HEADER_LENGTH) return false;
  const fragmentOffset = ((packet[offset + 6] << 8) | packet[offset + 7]) & 0x1fff;
  if (fragmentOffset !== 0) return false;
  const src = readIPv4Address(packet, offset + 12);
  const dst = readIPv4Address(packet, offset + 16);
  if (!isUnicastSource4(src)) return false;
  if (dst >>> 28 === 0xe || dst === 0xffffffff) return false;
  if (packet[offset + 9] === IPPROTO.ICMP) {
    const t = offset + headerLength;
    // An ICMP packet too short to show its type is treated as an error: sending nothing is safe.
    if (t >= packet.length || isIcmp4Error(packet[t])) return false;
  }
  return true;
}
