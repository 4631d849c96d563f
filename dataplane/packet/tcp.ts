// TCP header codec (RFC 9293 §3.1) with the pseudo-header checksum.
import { checksumOk, finish, pseudoHeaderSum4At, pseudoHeaderSum6At, sum16 } from "./checksum.js";
import { IPPROTO, ipv4HeaderLengthFor, writeIPv4Header, type IPv4AddressInput } from "./ipv4.js";
import { IPV6_HEADER_LENGTH, writeIPv6Header } from "./ipv6.js";

export const TCP_HEADER_LENGTH = 20;

export const TCP_FLAG = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export interface TcpHeader {
  offset: number;
  srcPort: number;
  dstPort: number;
  /** Unsigned 32-bit. */
  seq: number;
  ack: number;
  /** Data offset × 4: 20..60. */
  headerLength: number;
  /** The low 8 flag bits (CWR..FIN); see TCP_FLAG. */
  flags: number;
  window: number;
  checksum: number;
  urgentPointer: number;
  optionsOffset: number;
  optionsLength: number;
  payloadOffset: number;
  payloadLength: number;
}

export function newTcpHeader(): TcpHeader {
  return {
    offset: 0, srcPort: 0, dstPort: 0, seq: 0, ack: 0, headerLength: 0, flags: 0, window: 0, checksum: 0, urgentPointer: 0,
    optionsOffset: 0, optionsLength: 0, payloadOffset: 0, payloadLength: 0,
  };
}

/**
 * Parses the TCP header at `offset`; `available` is the segment length (IP payload length).
 * Returns undefined if the segment is shorter than 20 bytes or than its data offset, or the data
 * offset is below 5.
 */
export function parseTcp(buf: Uint8Array, offset: number, available = buf.length - offset, out?: TcpHeader): TcpHeader | undefined {
  if (available < TCP_HEADER_LENGTH || offset + available > buf.length) return undefined;
  const headerLength = (buf[offset + 12] >> 4) << 2;
  if (headerLength < TCP_HEADER_LENGTH || headerLength > available) return undefined;
  const h = out ?? newTcpHeader();
  h.offset = offset;
  h.srcPort = (buf[offset] << 8) | buf[offset + 1];
  h.dstPort = (buf[offset + 2] << 8) | buf[offset + 3];
  h.seq = ((buf[offset + 4] << 24) | (buf[offset + 5] << 16) | (buf[offset + 6] << 8) | buf[offset + 7]) >>> 0;
  h.ack = ((buf[offset + 8] << 24) | (buf[offset + 9] << 16) | (buf[offset + 10] << 8) | buf[offset + 11]) >>> 0;
  h.headerLength = headerLength;
  h.flags = buf[offset + 13];
  h.window = (buf[offset + 14] << 8) | buf[offset + 15];
  h.checksum = (buf[offset + 16] << 8) | buf[offset + 17];
  h.urgentPointer = (buf[offset + 18] << 8) | buf[offset + 19];
  h.optionsOffset = offset + TCP_HEADER_LENGTH;
  h.optionsLength = headerLength - TCP_HEADER_LENGTH;
  h.payloadOffset = offset + headerLength;
  h.payloadLength = available - headerLength;
  return h;
}

export interface TcpFields {
  srcPort: number;
  dstPort: number;
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  urgentPointer?: number;
  /** Raw option bytes, padded with End of Option List (0) to a multiple of 4. */
  options?: Uint8Array;
}

export function tcpHeaderLengthFor(options?: Uint8Array): number {
  return TCP_HEADER_LENGTH + (options === undefined ? 0 : (options.length + 3) & ~3);
}

/** Writes a TCP header with a zero checksum; returns its length. */
export function writeTcpHeader(buf: Uint8Array, offset: number, f: TcpFields): number {
  const hl = tcpHeaderLengthFor(f.options);
  if (hl > 60) throw new RangeError(`TCP options of ${f.options?.length} bytes exceed 40`);
  const seq = f.seq ?? 0;
  const ack = f.ack ?? 0;
  const window = f.window ?? 65535;
  const urg = f.urgentPointer ?? 0;
  buf[offset] = f.srcPort >> 8;
  buf[offset + 1] = f.srcPort & 0xff;
  buf[offset + 2] = f.dstPort >> 8;
  buf[offset + 3] = f.dstPort & 0xff;
  buf[offset + 4] = seq >>> 24;
  buf[offset + 5] = (seq >>> 16) & 0xff;
  buf[offset + 6] = (seq >>> 8) & 0xff;
  buf[offset + 7] = seq & 0xff;
  buf[offset + 8] = ack >>> 24;
  buf[offset + 9] = (ack >>> 16) & 0xff;
  buf[offset + 10] = (ack >>> 8) & 0xff;
  buf[offset + 11] = ack & 0xff;
  buf[offset + 12] = (hl >> 2) << 4;
  buf[offset + 13] = f.flags ?? 0;
  buf[offset + 14] = window >> 8;
  buf[offset + 15] = window & 0xff;
  buf[offset + 16] = 0;
  buf[offset + 17] = 0;
  buf[offset + 18] = urg >> 8;
  buf[offset + 19] = urg & 0xff;
  if (f.options !== undefined) {
    buf.set(f.options, offset + TCP_HEADER_LENGTH);
    buf.fill(0, offset + TCP_HEADER_LENGTH + f.options.length, offset + hl);
  }
  return hl;
}

/** The checksum of the segment at buf[offset, offset+length), as if its field were zero. */
export function computeTcpChecksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): number {
  const stored = (buf[offset + 16] << 8) | buf[offset + 17];
  return finish(sum16(buf, offset, offset + length, pseudoSum) - stored);
}

export function setTcpChecksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): number {
  const c = computeTcpChecksum(buf, offset, length, pseudoSum);
  buf[offset + 16] = c >> 8;
  buf[offset + 17] = c & 0xff;
  return c;
}

export function verifyTcpChecksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): boolean {
  return checksumOk(buf, offset, offset + length, pseudoSum);
}

/** A new IPv4/TCP packet with correct checksums. */
export function buildTcp4(ip: { src: IPv4AddressInput; dst: IPv4AddressInput; ttl?: number; tos?: number; identification?: number; dontFragment?: boolean }, tcp: TcpFields, payload: Uint8Array): Uint8Array {
  const hl = ipv4HeaderLengthFor();
  const th = tcpHeaderLengthFor(tcp.options);
  const out = new Uint8Array(hl + th + payload.length);
  writeIPv4Header(out, 0, {
    totalLength: out.length, ttl: ip.ttl ?? 64, protocol: IPPROTO.TCP, src: ip.src, dst: ip.dst, tos: ip.tos,
    identification: ip.identification, dontFragment: ip.dontFragment,
  });
  writeTcpHeader(out, hl, tcp);
  out.set(payload, hl + th);
  setTcpChecksum(out, hl, th + payload.length, pseudoHeaderSum4At(out, 0, IPPROTO.TCP, th + payload.length));
  return out;
}

/** A new IPv6/TCP packet with a correct checksum. */
export function buildTcp6(ip: { src: Uint8Array; dst: Uint8Array; hopLimit?: number; trafficClass?: number; flowLabel?: number }, tcp: TcpFields, payload: Uint8Array): Uint8Array {
  const th = tcpHeaderLengthFor(tcp.options);
  const out = new Uint8Array(IPV6_HEADER_LENGTH + th + payload.length);
  writeIPv6Header(out, 0, {
    payloadLength: th + payload.length, nextHeader: IPPROTO.TCP, hopLimit: ip.hopLimit ?? 64, src: ip.src, dst: ip.dst,
    trafficClass: ip.trafficClass, flowLabel: ip.flowLabel,
  });
  writeTcpHeader(out, IPV6_HEADER_LENGTH, tcp);
  out.set(payload, IPV6_HEADER_LENGTH + th);
  setTcpChecksum(out, IPV6_HEADER_LENGTH, th + payload.length, pseudoHeaderSum6At(out, 0, IPPROTO.TCP, th + payload.length));
  return out;
}
