// ICMP errors from inside a tunnel (RFC 2003 §4, RFC 2473 §8): a router between this node and a
// tunnel exit reports a problem with one of our outer packets. The error is about our header, so
// the original source never sees it unless we pass it on, translated to what it means for the
// inner packet; a reported MTU also lowers the tunnel MTU (RFC 2003 §5.1, RFC 2473 §6.7), which
// the caller, who owns the tunnel table, applies.
import { IPPROTO, IPV4_HEADER_LENGTH } from "../packet/ipv4.js";
import { IPV6_HEADER_LENGTH, IPV6_MIN_MTU } from "../packet/ipv6.js";
import { addressUnreachable6, fragmentationNeeded, hostUnreachable4, packetTooBig } from "./errors.js";
import { drop, type TunnelResult } from "./result.js";
import type { TunnelNode } from "./tunnel.js";

export interface TunnelIcmpRelay {
  /** What to send to the original source (or why not). */
  result: TunnelResult;
  /** The outer destination of the quoted tunnel packet (4 or 16 bytes), when it was ours. */
  remote?: Uint8Array;
  /** The path MTU towards `remote` the error reported, for the caller's tunnel table. */
  pathMtu?: number;
}

// RFC 1191 §7: MTU plateaus, for a Fragmentation Needed from a router that leaves the field 0.
const PLATEAUS = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

function nextPlateau(length: number): number {
  for (const p of PLATEAUS) if (p < length) return p;
  return 68;
}

/**
 * Handles `packet`, a whole IPv4 packet carrying ICMP or IPv6 packet carrying ICMPv6, addressed
 * to this node. When it is an error whose quote is a tunnel packet this node sent (quoted source
 * one of `node.endpoints`, protocol 4 or 41) and the quote shows the whole inner IP header,
 * the original source gets:
 * - for Fragmentation Needed / Packet Too Big: the same error about the inner packet with the
 *   reported MTU minus our headers (RFC 2003 §5.1; RFC 2473 §8.2, §8.3). An IPv4 inner without
 *   DF gets nothing: we fragment it next time (see `encapsulate`).
 * - for every other error (unreachable, time exceeded, parameter problem): host unreachable
 *   (RFC 2003 §4) or ICMPv6 address unreachable (RFC 2473 §8.2).
 * Anything else is dropped with "not-tunnel"; a quote too short to name the inner source with
 * "inner-malformed".
 */
export function relayTunnelIcmpError(node: TunnelNode, packet: Uint8Array): TunnelIcmpRelay {
  if (packet.length < 1) return { result: drop("not-tunnel") };
  let icmpOffset: number;
  let end: number;
  let tooBig: boolean;
  let mtu = 0;
  if (packet[0] >> 4 === 4) {
    if (packet.length < IPV4_HEADER_LENGTH || packet[9] !== IPPROTO.ICMP) return { result: drop("not-tunnel") };
    icmpOffset = (packet[0] & 0x0f) << 2;
    end = Math.min(packet.length, (packet[2] << 8) | packet[3]);
    if (icmpOffset < IPV4_HEADER_LENGTH || icmpOffset + 8 > end) return { result: drop("not-tunnel") };
    const type = packet[icmpOffset];
    if (type !== 3 && type !== 11 && type !== 12) return { result: drop("not-tunnel") };
    tooBig = type === 3 && packet[icmpOffset + 1] === 4;
    if (tooBig) mtu = (packet[icmpOffset + 6] << 8) | packet[icmpOffset + 7];
  } else if (packet[0] >> 4 === 6) {
    if (packet.length < IPV6_HEADER_LENGTH || packet[6] !== IPPROTO.ICMPV6) return { result: drop("not-tunnel") };
    icmpOffset = IPV6_HEADER_LENGTH;
    end = Math.min(packet.length, IPV6_HEADER_LENGTH + ((packet[4] << 8) | packet[5]));
    if (icmpOffset + 8 > end) return { result: drop("not-tunnel") };
    const type = packet[icmpOffset];
    if (type < 1 || type > 4) return { result: drop("not-tunnel") };
    tooBig = type === 2;
    if (tooBig) mtu = ((packet[icmpOffset + 4] << 24) | (packet[icmpOffset + 5] << 16) | (packet[icmpOffset + 6] << 8) | packet[icmpOffset + 7]) >>> 0;
  } else {
    return { result: drop("not-tunnel") };
  }

  // The quote: our outer header, then (part of) the inner packet.
  const q = icmpOffset + 8;
  let innerOffset: number;
  let protocol: number;
  let remote: Uint8Array;
  if (end - q >= IPV4_HEADER_LENGTH && packet[q] >> 4 === 4) {
    if (!node.endpoints.has(packet, q + 12, 4)) return { result: drop("not-tunnel") };
    protocol = packet[q + 9];
    innerOffset = q + ((packet[q] & 0x0f) << 2);
    remote = packet.slice(q + 16, q + 20);
    if (tooBig && mtu === 0) mtu = nextPlateau((packet[q + 2] << 8) | packet[q + 3]);
  } else if (end - q >= IPV6_HEADER_LENGTH && packet[q] >> 4 === 6) {
    if (!node.endpoints.has(packet, q + 8, 6)) return { result: drop("not-tunnel") };
    protocol = packet[q + 6];
    innerOffset = q + IPV6_HEADER_LENGTH;
    // Our own Tunnel Encapsulation Limit header (RFC 2473 §5.1), if we added one.
    if (protocol === IPPROTO.DSTOPTS && innerOffset + 8 <= end) {
      protocol = packet[innerOffset];
      innerOffset += (packet[innerOffset + 1] + 1) << 3;
    }
    remote = packet.slice(q + 24, q + 40);
  } else {
    return { result: drop("not-tunnel") };
  }
  if (protocol !== IPPROTO.IPIP && protocol !== IPPROTO.IPV6) return { result: drop("not-tunnel") };
  const innerIs4 = protocol === IPPROTO.IPIP;
  const need = innerIs4 ? IPV4_HEADER_LENGTH : IPV6_HEADER_LENGTH;
  if (end - innerOffset < need || packet[innerOffset] >> 4 !== (innerIs4 ? 4 : 6)) return { result: drop("inner-malformed"), remote };
  const inner = packet.subarray(innerOffset, end);
  const overhead = innerOffset - q;

  if (tooBig) {
    const innerMtu = mtu - overhead;
    if (innerIs4) {
      const df = (inner[6] & 0x40) !== 0;
      return { result: df ? fragmentationNeeded(node, inner, innerMtu) : drop("too-big"), remote, pathMtu: mtu };
    }
    return { result: packetTooBig(node, inner, Math.max(IPV6_MIN_MTU, innerMtu)), remote, pathMtu: mtu };
  }
  return { result: innerIs4 ? hostUnreachable4(node, inner) : addressUnreachable6(node, inner), remote };
}
