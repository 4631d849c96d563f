// Encapsulation: one inner IP packet in, one outer IP packet out (RFC 2003 §3, RFC 2473 §3 and
// §5-§7, RFC 4213 §3). The outer packet is written into the caller's buffer; the fast path
// allocates only the result object.
import { allocPacket } from "../packet/buffers.js";
import { checksumOk, updateChecksum16 } from "../packet/checksum.js";
import { IPPROTO, IPV4_HEADER_LENGTH, setIPv4Checksum } from "../packet/ipv4.js";
import { findIPv6Option, IPV6_HEADER_LENGTH, IPV6_MIN_MTU } from "../packet/ipv6.js";
import { encapsulateEcn } from "./ecn.js";
import { encapsulationLimitProblem, fragmentationNeeded, packetTooBig, timeExceeded4, timeExceeded6 } from "./errors.js";
import { fragmentIPv4Packet, fragmentOwnIPv6Packet, withHeadroom } from "./fragment.js";
import { drop, type TunnelResult } from "./result.js";
import { DEFAULT_TUNNEL_HOP_LIMIT, encapsulationOverhead, innerFamily, outerFamily, type Tunnel, type TunnelNode } from "./tunnel.js";

/** RFC 2473 §5.1: option type of the Tunnel Encapsulation Limit destination option. */
export const TUNNEL_ENCAPSULATION_LIMIT_OPTION = 4;
/** A destination options header holding only that option, padded to 8 bytes. */
const LIMIT_HEADER_LENGTH = 8;

export interface EncapsulateOptions {
  /**
   * True (the default) when this node forwards the packet into the tunnel as a router: the inner
   * TTL / hop limit is then decremented first (RFC 2003 §3.1; RFC 2473 §3.2, the tunnel is one
   * hop of the original packet's path). False for packets this node originates.
   */
  forwarding?: boolean;
}

/** The largest outer packet `encapsulate` can write for an inner packet of `innerLength`. */
export function encapsulatedLength(tunnel: Tunnel, innerLength: number): number {
  return encapsulationOverhead(tunnel.kind) + LIMIT_HEADER_LENGTH + innerLength;
}

/**
 * Where the inner packet's Tunnel Encapsulation Limit option is (RFC 2473 §4.1.1), or -1: in a
 * destination options header that comes first or right after hop-by-hop options, the place
 * RFC 2473 §5.1 gives it in a tunnel packet.
 */
function findEncapsulationLimit(inner: Uint8Array, end: number): number {
  let nh = inner[6];
  let off = IPV6_HEADER_LENGTH;
  if (nh === IPPROTO.HOPOPTS) {
    if (off + 8 > end) return -1;
    nh = inner[off];
    off += (inner[off + 1] + 1) << 3;
  }
  if (nh !== IPPROTO.DSTOPTS || off + 8 > end || off + ((inner[off + 1] + 1) << 3) > end) return -1;
  const p = findIPv6Option(inner, off, TUNNEL_ENCAPSULATION_LIMIT_OPTION);
  return p >= 0 && inner[p + 1] === 1 ? p : -1;
}

/**
 * Encapsulates `inner` (a whole IPv4 or IPv6 packet starting at byte 0; bytes past its own length
 * are ignored) for `tunnel`, writing the outer packet to the start of `out`. `out` must hold
 * `encapsulatedLength(tunnel, inner length)` bytes. `inner` is not modified.
 *
 * Never throws on packet contents: every outcome is a `TunnelResult`.
 */
export function encapsulate(tunnel: Tunnel, node: TunnelNode, inner: Uint8Array, out: Uint8Array, options: EncapsulateOptions = {}): TunnelResult {
  const forwarding = options.forwarding ?? true;
  const family = innerFamily(tunnel.kind);
  const outer = outerFamily(tunnel.kind);
  if (inner.length < 1 || inner[0] >> 4 !== family) return drop("family-mismatch");

  // The inner packet must be well formed before it is trusted for lengths.
  let innerLength: number;
  let hopLimit: number;
  let tos: number;
  if (family === 4) {
    if (inner.length < IPV4_HEADER_LENGTH) return drop("inner-malformed");
    const headerLength = (inner[0] & 0x0f) << 2;
    innerLength = (inner[2] << 8) | inner[3];
    if (headerLength < IPV4_HEADER_LENGTH || innerLength < headerLength || innerLength > inner.length) return drop("inner-malformed");
    // RFC 1812 §5.2.2: a router checks the header checksum of what it forwards.
    if (!checksumOk(inner, 0, headerLength)) return drop("inner-malformed");
    hopLimit = inner[8];
    tos = inner[1];
  } else {
    if (inner.length < IPV6_HEADER_LENGTH) return drop("inner-malformed");
    innerLength = IPV6_HEADER_LENGTH + ((inner[4] << 8) | inner[5]);
    if (innerLength > inner.length) return drop("inner-malformed");
    hopLimit = inner[7];
    tos = ((inner[0] & 0x0f) << 4) | (inner[1] >> 4);
  }

  // No loops (RFC 6324 §3): a packet for one of this node's tunnel endpoints, or a tunnel to one
  // of them, would come straight back here; and a packet that already is this tunnel's own
  // outer packet must not be wrapped again (recursive encapsulation, RFC 2473 §4).
  const dstOffset = family === 4 ? 16 : 24;
  if (node.endpoints.has(inner, dstOffset, family)) return drop("loop");
  if (node.endpoints.has(tunnel.remote, 0, outer)) return drop("loop");
  if (family === outer) {
    const protocol = family === 4 ? inner[9] : inner[6];
    if ((protocol === IPPROTO.IPIP || protocol === IPPROTO.IPV6) && sameAddress(inner, family === 4 ? 12 : 8, tunnel.local)
      && sameAddress(inner, dstOffset, tunnel.remote)) return drop("loop");
  }

  // RFC 2003 §3.1: decrement when forwarding; MUST NOT encapsulate a datagram with TTL 0, and a
  // TTL that reaches 0 gets ICMP Time Exceeded. RFC 2473 §3.2 (hop limit) is the same for IPv6.
  if (hopLimit === 0 || (forwarding && hopLimit === 1)) {
    const invoking = inner.subarray(0, innerLength);
    return family === 4 ? timeExceeded4(node, invoking) : timeExceeded6(node, invoking);
  }

  // RFC 2473 §4.1.1: an inner packet that carries a Tunnel Encapsulation Limit is itself a tunnel
  // packet; limit 0 → Parameter Problem, otherwise our header carries the limit minus one. We add
  // the option to no other packet: RFC 2473 §6.6 makes it a per-tunnel choice, and our tunnels
  // end at a host that never re-encapsulates.
  let limit = -1;
  if (family === 6 && outer === 6) {
    const p = findEncapsulationLimit(inner, innerLength);
    if (p >= 0) {
      if (inner[p + 2] === 0) return encapsulationLimitProblem(node, inner.subarray(0, innerLength), p);
      limit = inner[p + 2] - 1;
    }
  }

  const overhead = encapsulationOverhead(tunnel.kind) + (limit >= 0 ? LIMIT_HEADER_LENGTH : 0);
  const outerLength = overhead + innerLength;
  if (outerLength > tunnel.mtu) return tooBig(tunnel, node, inner, innerLength, overhead, limit, forwarding);
  if (out.length < outerLength) return drop("buffer-too-small");

  writeOuter(tunnel, node, out, tos, innerLength, overhead, limit, inner);
  out.set(inner.length === innerLength ? inner : inner.subarray(0, innerLength), overhead);
  if (forwarding) decrementHopLimit(out, overhead, family);
  return { action: "forward", packet: out.subarray(0, outerLength), length: outerLength };
}

function copyAddress(out: Uint8Array, at: number, address: Uint8Array, size: number): void {
  for (let i = 0; i < size; i++) out[at + i] = address[i];
}

function sameAddress(buf: Uint8Array, offset: number, address: Uint8Array): boolean {
  for (let i = 0; i < address.length; i++) if (buf[offset + i] !== address[i]) return false;
  return true;
}

/** Decrements the TTL / hop limit of the IP packet at `offset`, fixing an IPv4 checksum (RFC 1624). */
export function decrementHopLimit(buf: Uint8Array, offset: number, family: 4 | 6): void {
  if (family === 6) {
    buf[offset + 7]--;
    return;
  }
  const oldWord = (buf[offset + 8] << 8) | buf[offset + 9];
  buf[offset + 8]--;
  const c = updateChecksum16((buf[offset + 10] << 8) | buf[offset + 11], oldWord, oldWord - 0x100);
  buf[offset + 10] = c >> 8;
  buf[offset + 11] = c & 0xff;
}

/**
 * Writes the outer header(s) at out[0, overhead). Field by field:
 * - DSCP is copied from the inner header (RFC 2983 §3, uniform on entry) and ECN in the normal
 *   mode of RFC 6040 §4.1;
 * - TTL / hop limit: the tunnel's, default 64 (RFC 2003 §3.1, RFC 2473 §6.3);
 * - IPv4 DF: copied from an IPv4 inner (RFC 2003 §3.1). For IPv6 inner (RFC 4213 §3.2.1, static
 *   tunnel MTU) DF is clear so the IPv4 path may fragment what we send within the 1280 guarantee.
 * - IPv6 flow label 0 (RFC 2473 §6.5 leaves it to configuration; we have none).
 */
function writeOuter(tunnel: Tunnel, node: TunnelNode, out: Uint8Array, tos: number, innerLength: number, overhead: number, limit: number, inner: Uint8Array): void {
  const traffic = (tos & 0xfc) | encapsulateEcn(tos);
  const hop = tunnel.hopLimit ?? DEFAULT_TUNNEL_HOP_LIMIT;
  const innerIs4 = inner[0] >> 4 === 4;
  const protocol = innerIs4 ? IPPROTO.IPIP : IPPROTO.IPV6;
  if (outerFamily(tunnel.kind) === 4) {
    const total = overhead + innerLength;
    const id = node.nextIdentification();
    const df = innerIs4 ? inner[6] & 0x40 : 0;
    out[0] = 0x45;
    out[1] = traffic;
    out[2] = total >> 8;
    out[3] = total & 0xff;
    out[4] = id >> 8;
    out[5] = id & 0xff;
    out[6] = df;
    out[7] = 0;
    out[8] = hop;
    out[9] = protocol;
    out[10] = 0;
    out[11] = 0;
    copyAddress(out, 12, tunnel.local, 4);
    copyAddress(out, 16, tunnel.remote, 4);
    setIPv4Checksum(out, 0);
    return;
  }
  const payload = overhead - IPV6_HEADER_LENGTH + innerLength;
  out[0] = 0x60 | (traffic >> 4);
  out[1] = (traffic & 0x0f) << 4;
  out[2] = 0;
  out[3] = 0;
  out[4] = payload >> 8;
  out[5] = payload & 0xff;
  out[6] = limit >= 0 ? IPPROTO.DSTOPTS : protocol;
  out[7] = hop;
  copyAddress(out, 8, tunnel.local, 16);
  copyAddress(out, 24, tunnel.remote, 16);
  if (limit >= 0) {
    // RFC 2473 §5.1: Next Header, Hdr Ext Len 0, option 4 with one byte of limit, then PadN
    // (RFC 8200 §4.2) for the last three bytes.
    const o = IPV6_HEADER_LENGTH;
    out[o] = protocol;
    out[o + 1] = 0;
    out[o + 2] = TUNNEL_ENCAPSULATION_LIMIT_OPTION;
    out[o + 3] = 1;
    out[o + 4] = limit;
    out[o + 5] = 1;
    out[o + 6] = 1;
    out[o + 7] = 0;
  }
}

/**
 * The inner packet does not fit the tunnel MTU (RFC 2473 §6.7, §7; RFC 4213 §3.2; RFC 2003 §5.1).
 * - IPv4 with DF: Fragmentation Needed with the tunnel MTU, the link MTU minus our headers
 *   (RFC 1191 §4; RFC 2473 §7.2(a)).
 * - IPv4 without DF: we fragment the inner packet and encapsulate each fragment. RFC 2473
 *   §7.2(b) says to fragment the outer packet instead; we depart from it because the tunnel
 *   exits here (the engine) reassemble nothing, while inner fragments are plain IPv4 fragments
 *   every exit and the destination handle (RFC 791 lets any node fragment; RFC 4459 §3.4).
 * - IPv6 larger than 1280: Packet Too Big with the tunnel MTU, never below 1280 (RFC 2473 §7.1,
 *   RFC 4213 §3.2).
 * - IPv6 of 1280 or less: IPv6 may not be fragmented on the way, so the outer packet is
 *   (RFC 2473 §7.1 for an IPv6 outer, RFC 4213 §3.2.1 for an IPv4 outer).
 */
function tooBig(tunnel: Tunnel, node: TunnelNode, inner: Uint8Array, innerLength: number, overhead: number, limit: number, forwarding: boolean): TunnelResult {
  const room = tunnel.mtu - overhead;
  const invoking = inner.subarray(0, innerLength);
  if (inner[0] >> 4 === 4) {
    if ((inner[6] & 0x40) !== 0) return fragmentationNeeded(node, invoking, room);
    // Each fragment is cut with room for our header before it, and its TTL goes down in the
    // fragment (the inner packet is not ours to change).
    const pieces = fragmentIPv4Packet(invoking, room, overhead);
    if (pieces === undefined) return drop("too-big");
    const packets: Uint8Array[] = [];
    for (const piece of pieces) {
      if (forwarding) decrementHopLimit(piece, 0, 4);
      const o = withHeadroom(piece, overhead);
      writeOuter(tunnel, node, o, piece[1], piece.length, overhead, limit, piece);
      packets.push(o);
    }
    return { action: "fragments", packets };
  }
  if (innerLength > IPV6_MIN_MTU) return packetTooBig(node, invoking, Math.max(IPV6_MIN_MTU, room));
  const whole = allocPacket(overhead + innerLength);
  const tos = ((inner[0] & 0x0f) << 4) | (inner[1] >> 4);
  writeOuter(tunnel, node, whole, tos, innerLength, overhead, limit, inner);
  whole.set(invoking, overhead);
  if (forwarding) decrementHopLimit(whole, overhead, 6);
  const packets = outerFamily(tunnel.kind) === 4
    ? fragmentIPv4Packet(whole, tunnel.mtu)
    : fragmentOwnIPv6Packet(whole, tunnel.mtu, node.nextFragmentIdentification());
  if (packets === undefined) return drop("too-big");
  return { action: "fragments", packets };
}
