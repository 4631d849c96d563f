// The ICMP errors a tunnel endpoint sends back to the source of an inner packet, built with the
// packet codec. When the rules forbid an error (RFC 1812 §4.3.2.7, RFC 4443 §2.4(e)) or the node
// has no source address for it, the packet is dropped with the same reason and nothing is sent.
import { buildIcmp4Error, fragmentationNeededRest, ICMP4_TIME_EXCEEDED, ICMP4_TYPE, ICMP4_UNREACH, mayQuoteIcmp4 } from "../packet/icmp4.js";
import { buildIcmp6Error, ICMP6_PARAM_PROBLEM, ICMP6_TIME_EXCEEDED, ICMP6_TYPE, ICMP6_UNREACH, mayQuoteIcmp6 } from "../packet/icmp6.js";
import { drop, type TunnelIcmpReason, type TunnelResult } from "./result.js";
import type { TunnelNode } from "./tunnel.js";

/** Hop limit of the errors we originate (the default, as for the outer headers). */
const ERROR_HOP_LIMIT = 64;

/** An ICMPv4 error about `invoking` from the node (RFC 1812 §4.3.2.7 decides whether one may go), else the drop. */
function error4(node: TunnelNode, invoking: Uint8Array, type: number, code: number, rest: number, reason: TunnelIcmpReason): TunnelResult {
  if (node.icmpSource4 === undefined || !mayQuoteIcmp4(invoking)) return drop(reason);
  const packet = buildIcmp4Error(type, code, rest, invoking, node.icmpSource4, invoking.subarray(12, 16), ERROR_HOP_LIMIT);
  return { action: "icmp", packet, length: packet.length, reason };
}

/** An ICMPv6 error about `invoking` from the node (RFC 4443 §2.4(e) decides whether one may go), else the drop. */
function error6(node: TunnelNode, invoking: Uint8Array, type: number, code: number, rest: number, reason: TunnelIcmpReason): TunnelResult {
  if (node.icmpSource6 === undefined || !mayQuoteIcmp6(invoking, type, code)) return drop(reason);
  const packet = buildIcmp6Error(type, code, rest, invoking, node.icmpSource6, invoking.subarray(8, 24), ERROR_HOP_LIMIT);
  return { action: "icmp", packet, length: packet.length, reason };
}

/** ICMP Time Exceeded, code 0 (RFC 792; RFC 1812 §5.3.1), about the IPv4 packet `invoking`. */
export function timeExceeded4(node: TunnelNode, invoking: Uint8Array): TunnelResult {
  return error4(node, invoking, ICMP4_TYPE.TIME_EXCEEDED, ICMP4_TIME_EXCEEDED.TTL, 0, "ttl-expired");
}

/** ICMPv6 Time Exceeded, code 0 (RFC 4443 §3.3). */
export function timeExceeded6(node: TunnelNode, invoking: Uint8Array): TunnelResult {
  return error6(node, invoking, ICMP6_TYPE.TIME_EXCEEDED, ICMP6_TIME_EXCEEDED.HOP_LIMIT, 0, "ttl-expired");
}

/** Destination Unreachable, Fragmentation Needed and DF set, with the next-hop MTU (RFC 1191 §4). */
export function fragmentationNeeded(node: TunnelNode, invoking: Uint8Array, mtu: number): TunnelResult {
  return error4(node, invoking, ICMP4_TYPE.DESTINATION_UNREACHABLE, ICMP4_UNREACH.FRAGMENTATION_NEEDED, fragmentationNeededRest(mtu), "too-big");
}

/** ICMPv6 Packet Too Big with the MTU in the 32-bit field (RFC 4443 §3.2). */
export function packetTooBig(node: TunnelNode, invoking: Uint8Array, mtu: number): TunnelResult {
  return error6(node, invoking, ICMP6_TYPE.PACKET_TOO_BIG, 0, mtu >>> 0, "too-big");
}

/** Destination Unreachable, host unreachable (RFC 2003 §4: what a tunnel error becomes). */
export function hostUnreachable4(node: TunnelNode, invoking: Uint8Array): TunnelResult {
  return error4(node, invoking, ICMP4_TYPE.DESTINATION_UNREACHABLE, ICMP4_UNREACH.HOST, 0, "tunnel-unreachable");
}

/** ICMPv6 Destination Unreachable, address unreachable (RFC 2473 §8.2). */
export function addressUnreachable6(node: TunnelNode, invoking: Uint8Array): TunnelResult {
  return error6(node, invoking, ICMP6_TYPE.DESTINATION_UNREACHABLE, ICMP6_UNREACH.ADDRESS, 0, "tunnel-unreachable");
}

/**
 * ICMPv6 Parameter Problem code 0 pointing at the Tunnel Encapsulation Limit option of a packet
 * whose limit is spent (RFC 2473 §4.1.1).
 */
export function encapsulationLimitProblem(node: TunnelNode, invoking: Uint8Array, pointer: number): TunnelResult {
  return error6(node, invoking, ICMP6_TYPE.PARAMETER_PROBLEM, ICMP6_PARAM_PROBLEM.HEADER_FIELD, pointer >>> 0, "encapsulation-limit");
}
