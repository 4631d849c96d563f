// ICMPv6 (RFC 4443), with the checksum over the IPv6 pseudo-header (RFC 4443 §2.3).
import { checksumOk, pseudoHeaderSum6, writeChecksum } from "./checksum.js";
import { IPPROTO } from "./ipv4.js";
import { IPV6_HEADER_LENGTH, IPV6_MIN_MTU, walkIPv6Extensions, writeIPv6Header } from "./ipv6.js";
import { type IcmpMessage, newIcmpMessage, parseIcmpMessage, writeIcmpFields } from "./icmp4.js";

export const ICMP6_HEADER_LENGTH = 8;

export const ICMP6_TYPE = {
  DESTINATION_UNREACHABLE: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  PARAMETER_PROBLEM: 4,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
  ROUTER_SOLICITATION: 133,
  ROUTER_ADVERTISEMENT: 134,
  NEIGHBOR_SOLICITATION: 135,
  NEIGHBOR_ADVERTISEMENT: 136,
  REDIRECT: 137,
} as const;

/** Destination Unreachable codes (RFC 4443 §3.1). */
export const ICMP6_UNREACH = {
  NO_ROUTE: 0,
  ADMIN_PROHIBITED: 1,
  BEYOND_SCOPE: 2,
  ADDRESS: 3,
  PORT: 4,
  SOURCE_POLICY: 5,
  REJECT_ROUTE: 6,
} as const;

export const ICMP6_TIME_EXCEEDED = { HOP_LIMIT: 0, REASSEMBLY: 1 } as const;

/** Parameter Problem codes (RFC 4443 §3.4). */
export const ICMP6_PARAM_PROBLEM = { HEADER_FIELD: 0, NEXT_HEADER: 1, OPTION: 2 } as const;

/** The ICMPv6 header is the ICMP one (RFC 4443 §2.1). */
export type Icmp6Message = IcmpMessage;
export const newIcmp6Message = newIcmpMessage;
export const parseIcmp6 = parseIcmpMessage;

/** RFC 4443 §2.1: types 0–127 are errors. */
export function isIcmp6Error(type: number): boolean {
  return type < 128;
}

/** `pseudoSum` from pseudoHeaderSum6/pseudoHeaderSum6At with next header 58 and `length`. */
export function verifyIcmp6Checksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): boolean {
  return checksumOk(buf, offset, offset + length, pseudoSum);
}

export function setIcmp6Checksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): number {
  return writeChecksum(buf, offset, offset + length, offset + 2, pseudoSum);
}

/** Writes an ICMPv6 message with its checksum (RFC 4443 §2.3) at `offset`; returns its length. */
export function writeIcmp6(buf: Uint8Array, offset: number, type: number, code: number, restOfHeader: number, body: Uint8Array, src: Uint8Array, dst: Uint8Array): number {
  const length = writeIcmpFields(buf, offset, type, code, restOfHeader, body);
  setIcmp6Checksum(buf, offset, length, pseudoHeaderSum6(src, 0, dst, 0, IPPROTO.ICMPV6, length));
  return length;
}

/** A new ICMPv6 message (no IP header); the checksum needs the addresses it will travel between. */
export function buildIcmp6Message(type: number, code: number, restOfHeader: number, body: Uint8Array, src: Uint8Array, dst: Uint8Array): Uint8Array {
  const out = new Uint8Array(ICMP6_HEADER_LENGTH + body.length);
  writeIcmp6(out, 0, type, code, restOfHeader, body, src, dst);
  return out;
}

export interface Icmp6PacketOptions {
  src: Uint8Array;
  dst: Uint8Array;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

/** A new IPv6 packet carrying an ICMPv6 message. */
export function buildIcmp6Packet(ip: Icmp6PacketOptions, type: number, code: number, restOfHeader: number, body: Uint8Array): Uint8Array {
  const length = ICMP6_HEADER_LENGTH + body.length;
  const out = new Uint8Array(IPV6_HEADER_LENGTH + length);
  writeIPv6Header(out, 0, {
    payloadLength: length, nextHeader: IPPROTO.ICMPV6, hopLimit: ip.hopLimit ?? 64, src: ip.src, dst: ip.dst,
    trafficClass: ip.trafficClass, flowLabel: ip.flowLabel,
  });
  writeIcmp6(out, IPV6_HEADER_LENGTH, type, code, restOfHeader, body, ip.src, ip.dst);
  return out;
}

/** Echo request or reply (RFC 4443 §4.1, §4.2). */
export function buildIcmp6Echo(ip: Icmp6PacketOptions, reply: boolean, identifier: number, sequence: number, data: Uint8Array): Uint8Array {
  return buildIcmp6Packet(ip, reply ? ICMP6_TYPE.ECHO_REPLY : ICMP6_TYPE.ECHO_REQUEST, 0, ((identifier & 0xffff) << 16 | (sequence & 0xffff)) >>> 0, data);
}

/**
 * A full IPv6 packet carrying an ICMPv6 error about `invokingPacket` (an IPv6 packet from its
 * header on). RFC 4443 §2.4(c): as much of the invoking packet as fits without the error packet
 * exceeding the minimum IPv6 MTU, 1280 bytes. For Packet Too Big `restOfHeader` is the MTU
 * (§3.2); for Parameter Problem the pointer (§3.4). Whether an error may be sent at all is the
 * caller's call (`mayQuoteIcmp6`).
 */
export function buildIcmp6Error(type: number, code: number, restOfHeader: number, invokingPacket: Uint8Array, src: Uint8Array, dst: Uint8Array, hopLimit = 64): Uint8Array {
  let invokingLength = invokingPacket.length;
  if (invokingLength >= IPV6_HEADER_LENGTH && invokingPacket[0] >> 4 === 6) {
    const total = IPV6_HEADER_LENGTH + ((invokingPacket[4] << 8) | invokingPacket[5]);
    if (total < invokingLength) invokingLength = total; // do not quote link padding
  }
  const quote = Math.min(invokingLength, IPV6_MIN_MTU - IPV6_HEADER_LENGTH - ICMP6_HEADER_LENGTH);
  return buildIcmp6Packet({ src, dst, hopLimit }, type, code, restOfHeader, invokingPacket.subarray(0, quote));
}

function isMulticast6(buf: Uint8Array, offset: number): boolean {
  return buf[offset] === 0xff;
}

function isUnspecified6(buf: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 16; i++) if (buf[offset + i] !== 0) return false;
  return true;
}

/**
 * Whether RFC 4443 §2.4(e) allows sending an error of `type`/`code` about the IPv6 packet at
 * `offset`: not about an ICMPv6 error or a Redirect (e.1, e.2); not about a packet to a
 * multicast address unless the error is Packet Too Big or Parameter Problem code 2 (e.3); not
 * when the source is unspecified or multicast (e.5). Link-layer multicast (e.4) and anycast
 * sources are not visible in the bytes; callers that know must check them. A packet that does
 * not parse gets no error.
 */
export function mayQuoteIcmp6(packet: Uint8Array, type: number, code: number, offset = 0): boolean {
  if (packet.length - offset < IPV6_HEADER_LENGTH || packet[offset] >> 4 !== 6) return false;
  if (isUnspecified6(packet, offset + 8) || isMulticast6(packet, offset + 8)) return false;
  if (isMulticast6(packet, offset + 24)) {
    const allowed = type === ICMP6_TYPE.PACKET_TOO_BIG || (type === ICMP6_TYPE.PARAMETER_PROBLEM && code === ICMP6_PARAM_PROBLEM.OPTION);
    if (!allowed) return false;
  }
  // The chain may be cut short in a quote; walk what is there.
  const end = Math.min(packet.length, offset + IPV6_HEADER_LENGTH + ((packet[offset + 4] << 8) | packet[offset + 5]));
  const chain = walkIPv6Extensions(packet, offset, end);
  if (chain === undefined) return true;
  if (chain.upperProtocol === IPPROTO.ICMPV6 && chain.fragmentOffset === 0) {
    if (chain.upperOffset >= end) return false;
    const t = packet[chain.upperOffset];
    if (isIcmp6Error(t) || t === ICMP6_TYPE.REDIRECT) return false;
  }
  return true;
}
