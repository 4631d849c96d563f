// Well-formedness of frames, with our own codec: what the fuzz test demands of every frame the
// forwarder emits, and the "repair" that gives mutated inputs valid checksums so the fuzzer gets
// past the checksum checks into the deeper code.
import { ARP_LENGTH, parseArp } from "../../../dataplane/packet/arp.js";
import { checksumOk, pseudoHeaderSum4At, pseudoHeaderSum6At } from "../../../dataplane/packet/checksum.js";
import { setIcmp4Checksum } from "../../../dataplane/packet/icmp4.js";
import { setIcmp6Checksum } from "../../../dataplane/packet/icmp6.js";
import { IPPROTO, parseIPv4, setIPv4Checksum } from "../../../dataplane/packet/ipv4.js";
import { walkIPv6Extensions } from "../../../dataplane/packet/ipv6.js";
import { setTcpChecksum } from "../../../dataplane/packet/tcp.js";
import { setUdpChecksum } from "../../../dataplane/packet/udp.js";

export { setIPv4Checksum };

/**
 * Why `frame` is not a well-formed Ethernet frame, or undefined when it is. With `transport`, UDP,
 * TCP, ICMP and ICMPv6 checksums of unfragmented packets must be valid too.
 */
export function frameProblem(frame: Uint8Array, transport: boolean): string | undefined {
  if (frame.length < 14) return "shorter than an Ethernet header";
  const type = (frame[12] << 8) | frame[13];
  if (type === 0x0806) {
    if (frame.length !== 14 + ARP_LENGTH) return `ARP frame of ${frame.length} bytes`;
    return parseArp(frame, 14) === undefined ? "ARP does not parse" : undefined;
  }
  if (type === 0x0800) return ip4Problem(frame, 14, frame.length, transport, 0);
  if (type === 0x86dd) return ip6Problem(frame, 14, frame.length, transport, 0);
  return `ethertype ${type.toString(16)}`;
}

function ip4Problem(b: Uint8Array, off: number, end: number, transport: boolean, depth: number): string | undefined {
  const h = parseIPv4(b, off, end);
  if (h === undefined) return `IPv4 at ${off} does not parse`;
  if (!h.checksumValid) return `IPv4 header checksum at ${off}`;
  if (off + h.totalLength !== end) return `IPv4 total length ${h.totalLength} but ${end - off} bytes`;
  if (h.fragmentOffset !== 0 || h.moreFragments) return undefined;
  return upperProblem(b, h.protocol, h.payloadOffset, end, transport, depth, (proto, len) => pseudoHeaderSum4At(b, off, proto, len), 4);
}

function ip6Problem(b: Uint8Array, off: number, end: number, transport: boolean, depth: number): string | undefined {
  if (end - off < 40 || b[off] >> 4 !== 6) return `IPv6 at ${off} does not parse`;
  const total = 40 + ((b[off + 4] << 8) | b[off + 5]);
  if (off + total !== end) return `IPv6 payload length ${total - 40} but ${end - off - 40} bytes`;
  const c = walkIPv6Extensions(b, off, end);
  if (c === undefined) return `IPv6 extension headers at ${off}`;
  if (c.fragmentHeaderOffset >= 0 || c.homeAddressOffset >= 0 || c.routingHeaderOffset >= 0) return undefined;
  return upperProblem(b, c.upperProtocol, c.upperOffset, end, transport, depth, (proto, len) => pseudoHeaderSum6At(b, off, proto, len), 6);
}

function upperProblem(b: Uint8Array, proto: number, p: number, end: number, transport: boolean, depth: number, pseudo: (proto: number, len: number) => number, family: 4 | 6): string | undefined {
  const len = end - p;
  if (proto === IPPROTO.IPIP && depth < 2) return ip4Problem(b, p, end, transport, depth + 1);
  if (proto === IPPROTO.IPV6 && depth < 2) return ip6Problem(b, p, end, transport, depth + 1);
  if (!transport) return undefined;
  if (proto === IPPROTO.UDP) {
    if (len < 8) return "UDP shorter than its header";
    const ulen = (b[p + 4] << 8) | b[p + 5];
    if (ulen !== len) return undefined; // a router forwards a wrong UDP length as it came
    if (family === 4 && b[p + 6] === 0 && b[p + 7] === 0) return undefined;
    return checksumOk(b, p, end, pseudo(IPPROTO.UDP, len)) ? undefined : `UDP checksum at ${p}`;
  }
  if (proto === IPPROTO.TCP) {
    if (len < 20) return undefined;
    return checksumOk(b, p, end, pseudo(IPPROTO.TCP, len)) ? undefined : `TCP checksum at ${p}`;
  }
  if (proto === IPPROTO.ICMP && family === 4) return len >= 8 && !checksumOk(b, p, end) ? `ICMP checksum at ${p}` : undefined;
  if (proto === IPPROTO.ICMPV6 && family === 6) return len >= 8 && !checksumOk(b, p, end, pseudo(IPPROTO.ICMPV6, len)) ? `ICMPv6 checksum at ${p}` : undefined;
  return undefined;
}

/**
 * Recomputes every checksum of a (mutated) frame that can be: IPv4 headers, and the transport
 * checksum of unfragmented packets whose lengths agree. Lengths and everything else stay mutated.
 */
export function repair(frame: Uint8Array): void {
  if (frame.length < 14) return;
  const type = (frame[12] << 8) | frame[13];
  if (type === 0x0800) repair4(frame, 14, frame.length, 0);
  else if (type === 0x86dd) repair6(frame, 14, frame.length, 0);
}

function repair4(b: Uint8Array, off: number, end: number, depth: number): void {
  if (end - off < 20 || b[off] >> 4 !== 4) return;
  const ihl = (b[off] & 15) * 4;
  if (ihl < 20 || off + ihl > end) return;
  const total = (b[off + 2] << 8) | b[off + 3];
  const stop = Math.min(end, off + Math.max(total, ihl));
  if (((((b[off + 6] << 8) | b[off + 7]) & 0x3fff) === 0) && total >= ihl && off + total <= end) {
    repairUpper(b, b[off + 9], off + ihl, stop, depth, (proto, len) => pseudoHeaderSum4At(b, off, proto, len), 4);
  }
  setIPv4Checksum(b, off);
}

function repair6(b: Uint8Array, off: number, end: number, depth: number): void {
  if (end - off < 40 || b[off] >> 4 !== 6) return;
  const total = 40 + ((b[off + 4] << 8) | b[off + 5]);
  if (off + total > end) return;
  const c = walkIPv6Extensions(b, off, off + total);
  if (c === undefined || c.fragmentHeaderOffset >= 0 || c.homeAddressOffset >= 0 || c.routingHeaderOffset >= 0) return;
  repairUpper(b, c.upperProtocol, c.upperOffset, off + total, depth, (proto, len) => pseudoHeaderSum6At(b, off, proto, len), 6);
}

function repairUpper(b: Uint8Array, proto: number, p: number, end: number, depth: number, pseudo: (proto: number, len: number) => number, family: 4 | 6): void {
  const len = end - p;
  if (len <= 0) return;
  if (proto === IPPROTO.IPIP && depth < 2) return repair4(b, p, end, depth + 1);
  if (proto === IPPROTO.IPV6 && depth < 2) return repair6(b, p, end, depth + 1);
  if (proto === IPPROTO.UDP && len >= 8 && ((b[p + 4] << 8) | b[p + 5]) === len) setUdpChecksum(b, p, len, pseudo(IPPROTO.UDP, len));
  else if (proto === IPPROTO.TCP && len >= 20) setTcpChecksum(b, p, len, pseudo(IPPROTO.TCP, len));
  else if (proto === IPPROTO.ICMP && family === 4 && len >= 8) setIcmp4Checksum(b, p, len);
  else if (proto === IPPROTO.ICMPV6 && family === 6 && len >= 8) setIcmp6Checksum(b, p, len, pseudo(IPPROTO.ICMPV6, len));
}
