// Decapsulation: an outer IP-in-IP packet in, its inner packet out, only from a known peer
// (RFC 2003 §3, RFC 2473 §3.3, RFC 4213 §3.6) and with ECN combined per RFC 6040 §4.2.
// The inner packet is returned as a view of the input, which is changed in place (ECN, TTL):
// no copy on the hot path.
import { checksumOk, updateChecksum16 } from "../packet/checksum.js";
import { IPPROTO, IPV4_HEADER_LENGTH } from "../packet/ipv4.js";
import { IPV6_HEADER_LENGTH } from "../packet/ipv6.js";
import { decapsulateEcn, ECN_DROP, ecnCombinationUnexpected } from "./ecn.js";
import { decrementHopLimit } from "./encapsulate.js";
import { timeExceeded4, timeExceeded6 } from "./errors.js";
import { innerSourceAllowed, type IPFamily, type TunnelPeerTable } from "./peers.js";
import { drop, type TunnelResult } from "./result.js";
import type { TunnelNode } from "./tunnel.js";

export interface DecapsulateOptions {
  /**
   * True (the default) when this node forwards the inner packet on as a router, so its TTL / hop
   * limit is decremented (RFC 2003 §3.1: decapsulation itself leaves it alone, forwarding does
   * not). False when the inner packet is for this node or goes straight into another tunnel
   * (`reencapsulate` decrements once, when encapsulating).
   */
  forwarding?: boolean;
}

/** Bounds the outer extension headers we step over (we only expect the encapsulation limit). */
const MAX_OUTER_EXTENSIONS = 4;

/** Where a caller's walk of an IPv6 outer packet's extension chain found the upper layer (packet/ipv6.ts IPv6Chain). */
export interface WalkedOuter {
  upperProtocol: number;
  upperOffset: number;
}

/**
 * Decapsulates `packet`, an outer IPv4/IPv6 packet starting at byte 0 (bytes past its own length,
 * e.g. link padding, are ignored). The caller has already decided that the outer destination is
 * one this node terminates tunnels on. `walked`: for an IPv6 outer packet whose chain the caller
 * has walked and found to be only hop-by-hop and destination options headers (the forwarder's
 * well-formedness step), where the inner packet starts, so the chain is not stepped over again.
 * Never throws on packet contents.
 */
export function decapsulate(peers: TunnelPeerTable, node: TunnelNode, packet: Uint8Array, options: DecapsulateOptions = {}, walked?: WalkedOuter): TunnelResult {
  if (packet.length < 1) return drop("outer-malformed");
  const version = packet[0] >> 4;
  let outerFamily: IPFamily;
  let outerTos: number;
  let innerOffset: number;
  let outerEnd: number;
  let protocol: number;
  if (version === 4) {
    outerFamily = 4;
    if (packet.length < IPV4_HEADER_LENGTH) return drop("outer-malformed");
    const headerLength = (packet[0] & 0x0f) << 2;
    outerEnd = (packet[2] << 8) | packet[3];
    if (headerLength < IPV4_HEADER_LENGTH || outerEnd < headerLength || outerEnd > packet.length) return drop("outer-malformed");
    if (!checksumOk(packet, 0, headerLength)) return drop("outer-malformed");
    // No reassembly here: a fragment (MF set or an offset) cannot be decapsulated alone.
    if ((((packet[6] << 8) | packet[7]) & 0x3fff) !== 0) return drop("outer-fragment");
    outerTos = packet[1];
    protocol = packet[9];
    innerOffset = headerLength;
  } else if (version === 6) {
    outerFamily = 6;
    if (packet.length < IPV6_HEADER_LENGTH) return drop("outer-malformed");
    outerEnd = IPV6_HEADER_LENGTH + ((packet[4] << 8) | packet[5]);
    if (outerEnd > packet.length) return drop("outer-malformed");
    outerTos = ((packet[0] & 0x0f) << 4) | (packet[1] >> 4);
    // Step over hop-by-hop and destination options (e.g. the Tunnel Encapsulation Limit of
    // RFC 2473 §5.1, which ends its meaning here). A routing header would mean we are not the
    // final destination; a fragment means reassembly, which we do not do.
    protocol = walked === undefined ? packet[6] : walked.upperProtocol;
    innerOffset = walked === undefined ? IPV6_HEADER_LENGTH : walked.upperOffset;
    for (let n = 0; walked === undefined && (protocol === IPPROTO.HOPOPTS || protocol === IPPROTO.DSTOPTS); n++) {
      if (n === MAX_OUTER_EXTENSIONS || innerOffset + 8 > outerEnd) return drop("outer-malformed");
      if (protocol === IPPROTO.HOPOPTS && n !== 0) return drop("outer-malformed");
      protocol = packet[innerOffset];
      innerOffset += (packet[innerOffset + 1] + 1) << 3;
      if (innerOffset > outerEnd) return drop("outer-malformed");
    }
    if (protocol === IPPROTO.FRAGMENT) return drop("outer-fragment");
  } else {
    return drop("outer-malformed");
  }
  if (protocol !== IPPROTO.IPIP && protocol !== IPPROTO.IPV6) return drop("not-tunnel");

  // RFC 2003 §7 / RFC 4213 §3.6: only from a configured peer, and only the inner family
  // configured for it.
  const entry = peers.entry(packet, outerFamily === 4 ? 12 : 8, outerFamily);
  if (entry === undefined) return drop("unknown-peer");
  const innerFamily: IPFamily = protocol === IPPROTO.IPIP ? 4 : 6;
  if ((entry.families & (innerFamily === 4 ? 1 : 2)) === 0) return drop("family-mismatch");

  // The inner packet must be well formed before anyone reads it further.
  const room = outerEnd - innerOffset;
  let innerLength: number;
  let innerTos: number;
  let hopLimit: number;
  if (innerFamily === 4) {
    if (room < IPV4_HEADER_LENGTH || packet[innerOffset] >> 4 !== 4) return drop("inner-malformed");
    const headerLength = (packet[innerOffset] & 0x0f) << 2;
    innerLength = (packet[innerOffset + 2] << 8) | packet[innerOffset + 3];
    if (headerLength < IPV4_HEADER_LENGTH || innerLength < headerLength || innerLength > room) return drop("inner-malformed");
    if (!checksumOk(packet, innerOffset, innerOffset + headerLength)) return drop("inner-malformed");
    innerTos = packet[innerOffset + 1];
    hopLimit = packet[innerOffset + 8];
  } else {
    if (room < IPV6_HEADER_LENGTH || packet[innerOffset] >> 4 !== 6) return drop("inner-malformed");
    innerLength = IPV6_HEADER_LENGTH + ((packet[innerOffset + 4] << 8) | packet[innerOffset + 5]);
    if (innerLength > room) return drop("inner-malformed");
    innerTos = ((packet[innerOffset] & 0x0f) << 4) | (packet[innerOffset + 1] >> 4);
    hopLimit = packet[innerOffset + 7];
  }

  // RFC 4213 §3.6 ingress filtering, for every tunnel kind.
  if (!innerSourceAllowed(entry.peer, packet, innerOffset + (innerFamily === 4 ? 12 : 8), innerFamily)) return drop("ingress-filter");

  // RFC 6040 §4.2: combine the outer ECN field into the inner one.
  const innerEcn = innerTos & 3;
  const outerEcn = outerTos & 3;
  const ecn = decapsulateEcn(innerEcn, outerEcn);
  if (ecn === ECN_DROP) return drop("ecn-drop");
  if (ecn !== innerEcn) setEcn(packet, innerOffset, innerFamily, ecn);

  const inner = packet.subarray(innerOffset, innerOffset + innerLength);
  // RFC 2003 §3.1: an inner TTL of 0 after decapsulation is discarded; forwarding decrements.
  const forwarding = options.forwarding ?? true;
  if (hopLimit === 0) return drop("ttl-expired");
  if (forwarding) {
    if (hopLimit === 1) return innerFamily === 4 ? timeExceeded4(node, inner) : timeExceeded6(node, inner);
    decrementHopLimit(packet, innerOffset, innerFamily);
  }
  const result: TunnelResult = { action: "forward", packet: inner, length: innerLength };
  if (ecnCombinationUnexpected(innerEcn, outerEcn)) result.ecnUnexpected = true;
  return result;
}

/** Writes the ECN bits of the IP header at `offset`, with RFC 1624 for an IPv4 checksum. */
function setEcn(buf: Uint8Array, offset: number, family: IPFamily, ecn: number): void {
  if (family === 6) {
    buf[offset + 1] = (buf[offset + 1] & 0xcf) | (ecn << 4);
    return;
  }
  const oldWord = (buf[offset] << 8) | buf[offset + 1];
  buf[offset + 1] = (buf[offset + 1] & 0xfc) | ecn;
  const newWord = (buf[offset] << 8) | buf[offset + 1];
  const c = updateChecksum16((buf[offset + 10] << 8) | buf[offset + 11], oldWord, newWord);
  buf[offset + 10] = c >> 8;
  buf[offset + 11] = c & 0xff;
}
