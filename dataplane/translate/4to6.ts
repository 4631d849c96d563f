// IPv4 → IPv6, RFC 7915 §4: the header rules of §4.1, the ICMP rules of §4.2 and §4.3, and the
// order of the steps. Read beside the RFC; each rule cites its section.
import { pseudoHeaderSum6, sum16 } from "../packet/checksum.js";
import { buildIcmp6Message } from "../packet/icmp6.js";
import { fragmentationNeededRest, isIcmp4Error, verifyIcmp4Checksum } from "../packet/icmp4.js";
import { IPPROTO, parseIPv4, type IPv4Header } from "../packet/ipv4.js";
import { IPV6_FRAGMENT_HEADER_LENGTH, IPV6_HEADER_LENGTH, IPV6_MIN_MTU, writeFragmentHeader, writeIPv6Header } from "../packet/ipv6.js";
import { copyPacket, outputPacket } from "./alloc.js";
import { fragmentIPv6Payload } from "../packet/fragment.js";
import { allocPacket, copyBytes } from "../packet/buffers.js";
import { icmp4Back, icmp4Untranslatable } from "./icmpErrors.js";
import { drop, type DropReason, type TranslateResult } from "./result.js";
import type { TranslatorState } from "./state.js";
import { computeUdpChecksum6, errorBody, rewriteEcho, updateTransportChecksum } from "./transport.js";

/** RFC 1191 §7 plateau table, for a Fragmentation Needed with no MTU in it (RFC 7915 §4.2). */
const PLATEAUS = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/** RFC 7915 §4.2 Figure 3: IPv4 header byte → IPv6 header byte for Parameter Problem pointers; -1 has no counterpart. */
const POINTER_4TO6 = [0, 1, 4, 4, -1, -1, -1, -1, 7, 6, -1, -1, 8, 8, 8, 8, 24, 24, 24, 24];

/**
 * IPv4 protocols §4.1 would copy into an IPv6 Next Header where they mean something else: IPv6
 * extension headers (hop-by-hop, routing, fragment, destination options, mobility) and ICMPv6,
 * whose checksum covers an IPv6 pseudo-header the IPv4 sender never included. The translation
 * would be a malformed IPv6 packet, so these are dropped (ICMPv4 in IPv6, the reverse: 6to4.ts).
 */
const UNTRANSLATABLE_4 = new Set<number>([IPPROTO.HOPOPTS, IPPROTO.ROUTING, IPPROTO.FRAGMENT, IPPROTO.DSTOPTS, IPPROTO.ICMPV6, IPPROTO.MOBILITY]);

/**
 * Translates one IPv4 packet (from its IP header on, no link header). Never throws on packet
 * data. `mapped`: the destination's explicit mapping is already in t.dst6 (Translator.destination4).
 * `hairpin`: the packet is the IPv4 form of an IPv6 packet coming back (RFC 7757 §4), whose
 * source takes its RFC 6052 form, so that the answer comes back through the translator too.
 */
export function translate4to6(t: TranslatorState, packet: Uint8Array, mapped = false, hairpin = false): TranslateResult {
  const cfg = t.cfg;
  const ip = parseIPv4(packet, 0, packet.length, t.ip4);
  if (ip === undefined) return drop("malformed");
  if (!ip.checksumValid) return drop("ipv4-header-checksum");
  if (UNTRANSLATABLE_4.has(ip.protocol)) return drop("untranslatable-protocol");
  // Link padding past Total Length is not part of the packet.
  if (packet.length > ip.totalLength) packet = packet.subarray(0, ip.totalLength);

  // §4.6: only a destination with an IPv6 form is translated. §4.1 "Destination Address", §6.
  if (!mapped && !cfg.mapping.map4to6(ip.dst, t.dst6, 0)) return drop("unmapped-destination");
  // §4.1 "Hop Limit": the translator is a router; it decrements the TTL and checks it (RFC 1812 §5.3.1).
  if (ip.ttl <= 1) return icmp4Back(t, packet, 11, 0, 0, "ttl-expired");
  // §4.1 "IPv4 options": ignored, except an unexpired source route, answered with Source Route Failed.
  if (ip.optionsLength > 0 && hasUnexpiredSourceRoute(packet, ip.optionsOffset, ip.optionsLength)) {
    return icmp4Back(t, packet, 3, 5, 0, "source-route");
  }
  // §4.1 "Source Address", §6 (RFC 7757 §3.3 and RFC 6052).
  const srcMapped = hairpin ? cfg.mapping.prefix4to6(ip.src, t.src6, 0) : cfg.mapping.map4to6(ip.src, t.src6, 0);
  if (!srcMapped) return icmp4Untranslatable(t, packet, "unmapped-source");

  const isFragment = ip.moreFragments || ip.fragmentOffset !== 0;
  const initial = ip.fragmentOffset === 0;
  // §4.1 "Next Header": ICMPv4 (1) becomes ICMPv6 (58); everything else is copied.
  const nextHeader = ip.protocol === IPPROTO.ICMP ? IPPROTO.ICMPV6 : ip.protocol;

  let icmp6: Uint8Array | undefined;
  let computeUdp = false;
  if (ip.protocol === IPPROTO.ICMP) {
    // §4.2 needs the whole message to add the pseudo-header to its checksum (§4.4: say so if allowed).
    if (isFragment) return initial ? icmp4Untranslatable(t, packet, "icmp-fragmented") : drop("icmp-fragmented");
    const r = translateIcmp4to6(t, packet, ip);
    if (typeof r === "string") return drop(r);
    icmp6 = r;
  } else if (ip.protocol === IPPROTO.UDP && initial && ip.payloadLength >= 8 && packet[ip.payloadOffset + 6] === 0 && packet[ip.payloadOffset + 7] === 0) {
    // §4.5: a zero UDP checksum is not allowed in IPv6 (RFC 8200 §8.1).
    if (isFragment) return icmp4Untranslatable(t, packet, "udp-zero-checksum-fragment");
    if (cfg.udpZeroChecksum === "drop") return icmp4Untranslatable(t, packet, "udp-zero-checksum");
    computeUdp = true;
  }

  const upperLength = icmp6 !== undefined ? icmp6.length : ip.payloadLength;
  const fh = isFragment ? IPV6_FRAGMENT_HEADER_LENGTH : 0;
  const size6 = IPV6_HEADER_LENGTH + fh + upperLength;
  // §4.1: with DF set and too big for the next hop, Fragmentation Needed with the MTU that fits.
  if (ip.dontFragment && size6 > cfg.ipv6Mtu) {
    return icmp4Back(t, packet, 3, 4, fragmentationNeededRest(cfg.ipv6Mtu - (IPV6_HEADER_LENGTH - 20) - fh), "packet-too-big");
  }
  const hopLimit = ip.ttl - 1;
  const srcSum = sum16(packet, ip.srcOffset, ip.srcOffset + 8);
  const newSum = sum16(t.src6, 0, 16) + sum16(t.dst6, 0, 16);
  const limit = Math.min(cfg.lowestIpv6Mtu, cfg.ipv6Mtu);

  // §4.1: without DF, a packet bigger than lowest-ipv6-mtu is fragmented so each IPv6 fragment fits.
  if (!ip.dontFragment && size6 > limit) {
    // A payload copied as it is (no ICMP rewrite, no UDP checksum to compute) is cut straight from
    // the packet, and only the first fragment's transport checksum changes; else it is translated
    // into a buffer of its own first.
    const asIs = icmp6 === undefined && !computeUdp;
    const upper = asIs ? packet.subarray(ip.payloadOffset, ip.payloadOffset + upperLength) : allocPacket(upperLength);
    if (!asIs) writeUpper(upper, 0);
    // §4.1: fragments so each IPv6 fragment fits lowest-ipv6-mtu; M and the identification come from the IPv4 packet.
    const packets = fragmentIPv6Payload(upper, {
      trafficClass: ip.tos, hopLimit, src: t.src6, dst: t.dst6, nextHeader,
      fragmentOffset: ip.fragmentOffset, moreFragments: ip.moreFragments, identification: ip.identification,
    }, limit);
    if (packets === undefined) return drop("malformed");
    // The first fragment holds the whole transport header: a fragment carries at least 1,232 bytes
    // (lowest-ipv6-mtu is never below 1280, RFC 8200 §5).
    const first = IPV6_HEADER_LENGTH + IPV6_FRAGMENT_HEADER_LENGTH;
    if (asIs && initial) updateTransportChecksum(packets[0], first, packets[0].length - first, ip.protocol, srcSum, newSum);
    return { action: "forward", packets };
  }

  const out = outputPacket(t.output, packet, size6);
  writeIPv6Header(out, 0, {
    trafficClass: ip.tos, // §4.1 "Traffic Class": copied from the Type of Service octet.
    flowLabel: 0, // §4.1 "Flow Label": 0.
    payloadLength: fh + upperLength, // §4.1 "Payload Length": Total Length − IHL×4 (+ 8 with a Fragment Header).
    nextHeader: isFragment ? IPPROTO.FRAGMENT : nextHeader,
    hopLimit,
    src: t.src6,
    dst: t.dst6,
  });
  // §4.1 "Fragment Header": added exactly when the IPv4 packet is a fragment (MF set or offset non-zero);
  // §4: never for an unfragmented packet. The identification carries the IPv4 one in its low 16 bits.
  if (isFragment) writeFragmentHeader(out, IPV6_HEADER_LENGTH, nextHeader, ip.fragmentOffset, ip.moreFragments, ip.identification);
  writeUpper(out, IPV6_HEADER_LENGTH + fh);
  return { action: "forward", packets: [out] };

  function writeUpper(buf: Uint8Array, at: number): void {
    if (icmp6 !== undefined) {
      buf.set(icmp6, at);
      return;
    }
    copyBytes(buf, at, packet, ip!.payloadOffset, upperLength);
    if (!initial) return; // a non-initial fragment has no transport header to update
    // §4.5 option 2: compute the missing UDP checksum.
    if (computeUdp) computeUdpChecksum6(buf, at, upperLength, t.src6, t.dst6);
    else updateTransportChecksum(buf, at, upperLength, ip!.protocol, srcSum, newSum);
  }
}

/** RFC 791 §3.1: Loose (131) or Strict (137) Source Route whose pointer has not passed its length. */
function hasUnexpiredSourceRoute(buf: Uint8Array, offset: number, length: number): boolean {
  const end = offset + length;
  let p = offset;
  while (p < end) {
    const type = buf[p];
    if (type === 0) return false; // End of Option List
    if (type === 1) { p++; continue; } // No Operation
    if (p + 1 >= end) return false;
    const optionLength = buf[p + 1];
    if (optionLength < 2 || p + optionLength > end) return false;
    if ((type === 131 || type === 137) && optionLength >= 3 && buf[p + 2] <= optionLength) return true;
    p += optionLength;
  }
  return false;
}

/**
 * §4.2 and §4.3: the ICMPv6 message for the ICMPv4 message of `ip` (whole, not fragmented), or
 * the reason to drop it silently.
 */
function translateIcmp4to6(t: TranslatorState, packet: Uint8Array, ip: IPv4Header): Uint8Array | DropReason {
  const off = ip.payloadOffset;
  const length = ip.payloadLength;
  if (length < 8) return "malformed";
  const type = packet[off];
  const code = packet[off + 1];
  switch (type) {
    case 8: // Echo Request → 128
    case 0: { // Echo Reply → 129; §4.2: "Code 0".
      const out = copyPacket(packet, off, off + length);
      // §4.2: ICMPv6 adds the pseudo-header to the checksum (RFC 4443 §2.3); RFC 1624 update.
      rewriteEcho(out, 0, type === 8 ? 128 : 129, 0, pseudoHeaderSum6(t.src6, 0, t.dst6, 0, IPPROTO.ICMPV6, length));
      return out;
    }
    case 3: { // Destination Unreachable
      switch (code) {
        case 0: case 1: case 5: case 6: case 7: case 8: case 11: case 12:
          return icmpError4to6(t, packet, ip, 1, 0, 0); // §4.2: Type 1 Code 0 (no route)
        case 2: // §4.2 Protocol Unreachable: Parameter Problem, Code 1, pointer to Next Header (6)
          return icmpError4to6(t, packet, ip, 4, 1, 6);
        case 3: // §4.2 Port Unreachable: Type 1 Code 4
          return icmpError4to6(t, packet, ip, 1, 4, 0);
        case 4: { // §4.2 Fragmentation Needed: Packet Too Big
          let mtu = (packet[off + 6] << 8) | packet[off + 7];
          if (mtu === 0) {
            // §4.2: MTU zero (pre-RFC 1191 router): the largest RFC 1191 plateau below the quoted Total Length.
            const quotedTotal = length >= 12 ? (packet[off + 10] << 8) | packet[off + 11] : 0;
            mtu = PLATEAUS.find((p) => p < quotedTotal) ?? 68;
          }
          const cfg = t.cfg;
          // §4.2: minimum(advertised MTU + 20, MTU of the IPv6 next hop, MTU of the IPv4 next hop + 20);
          // §5: never below 1280, so IPv6 hosts never see a path MTU below the IPv6 minimum.
          const mtu6 = Math.max(IPV6_MIN_MTU, Math.min(mtu + 20, cfg.ipv6Mtu, cfg.ipv4Mtu + 20));
          return icmpError4to6(t, packet, ip, 2, 0, mtu6);
        }
        case 9: case 10: case 13: case 15:
          return icmpError4to6(t, packet, ip, 1, 1, 0); // §4.2: Type 1 Code 1 (administratively prohibited)
        default:
          return "icmp-untranslatable"; // §4.2: Code 14 and unknown codes are silently dropped.
      }
    }
    case 11: // §4.2 Time Exceeded: Type 3, code unchanged.
      return icmpError4to6(t, packet, ip, 3, code, 0);
    case 12: { // §4.2 Parameter Problem
      if (code !== 0 && code !== 2) return "icmp-untranslatable"; // Code 1 (missing option) and others: drop.
      const pointer = POINTER_4TO6[packet[off + 4]] ?? -1; // Figure 3
      if (pointer < 0) return "icmp-untranslatable";
      return icmpError4to6(t, packet, ip, 4, 0, pointer);
    }
    default:
      // §4.2: Source Quench, Redirect, Alternative Host Address, router discovery, timestamp,
      // information and address mask messages, and unknown types are silently dropped.
      return "icmp-untranslatable";
  }
}

/**
 * §4.3: an ICMPv6 error whose body is the translated "packet in error". ICMPv4 Destination
 * Unreachable, Time Exceeded and Parameter Problem may carry RFC 4884 extensions; their length
 * attribute is converted (§4.2 "ICMP Error Payload").
 */
function icmpError4to6(t: TranslatorState, packet: Uint8Array, ip: IPv4Header, type: number, code: number, rest: number): Uint8Array | DropReason {
  // The error gets a checksum computed afresh; a damaged one must not come out repaired (RFC 792).
  if (!verifyIcmp4Checksum(packet, ip.payloadOffset, ip.payloadLength)) return "icmp-checksum";
  const body = ip.payloadOffset + 8;
  const bodyLength = ip.payloadLength - 8;
  // RFC 4884 §4.1: length attribute in byte 5, in 32-bit words; zero means no extension.
  const lengthAttribute = packet[ip.payloadOffset + 5] * 4;
  const hasExtension = lengthAttribute > 0 && lengthAttribute < bodyLength;
  const quotedLength = hasExtension ? lengthAttribute : bodyLength;
  const inner = quoted4to6(t, packet, body, quotedLength);
  if (inner === undefined) return "icmp-error-inner";
  // RFC 4443 §2.4(c), §4.2 "ICMP Error Payload": the error packet fits the minimum IPv6 MTU;
  // an extension stays whole (errorBody). RFC 4884 §4.1: only Destination Unreachable (1) and
  // Time Exceeded (3) carry a length in ICMPv6, in byte 4, in 64-bit words.
  const extension = hasExtension && (type === 1 || type === 3) ? packet.subarray(body + quotedLength, body + bodyLength) : undefined;
  const { body: payload, lengthWords } = errorBody(inner, extension, 8, IPV6_MIN_MTU - IPV6_HEADER_LENGTH - 8);
  rest = (rest | (lengthWords << 24)) >>> 0;
  return buildIcmp6Message(type, code, rest, payload, t.src6, t.dst6);
}

/**
 * §4.3: the translated form of the IPv4 packet quoted at buf[offset, offset+available), cut
 * where the quote was cut. The TTL is not decremented. Undefined when it cannot be translated:
 * too short, unmapped addresses, or itself an ICMP error ("MUST stop at the first embedded header").
 */
function quoted4to6(t: TranslatorState, buf: Uint8Array, offset: number, available: number): Uint8Array | undefined {
  // The quote's Total Length exceeds what is quoted, which parseIPv4 rightly refuses, so the
  // fixed header is read here. TODO(packet): a codec parser for quoted (truncated) headers.
  if (available < 20 || buf[offset] >> 4 !== 4) return undefined;
  const ihl = (buf[offset] & 0x0f) << 2;
  const total = (buf[offset + 2] << 8) | buf[offset + 3];
  if (ihl < 20 || ihl > available || total < ihl) return undefined;
  const ff = (buf[offset + 6] << 8) | buf[offset + 7];
  const moreFragments = (ff & 0x2000) !== 0;
  const fragmentOffset = ff & 0x1fff;
  const protocol = buf[offset + 9];
  const src = ((buf[offset + 12] << 24) | (buf[offset + 13] << 16) | (buf[offset + 14] << 8) | buf[offset + 15]) >>> 0;
  const dst = ((buf[offset + 16] << 24) | (buf[offset + 17] << 16) | (buf[offset + 18] << 8) | buf[offset + 19]) >>> 0;
  // §4.3: the inner addresses are translated like the outer ones.
  if (!t.cfg.mapping.map4to6(src, t.innerSrc6, 0) || !t.cfg.mapping.map4to6(dst, t.innerDst6, 0)) return undefined;
  const isFragment = moreFragments || fragmentOffset !== 0;
  const fh = isFragment ? IPV6_FRAGMENT_HEADER_LENGTH : 0;
  const have = Math.min(available, total) - ihl;
  const nextHeader = protocol === IPPROTO.ICMP ? IPPROTO.ICMPV6 : protocol;
  const out = allocPacket(IPV6_HEADER_LENGTH + fh + have);
  writeIPv6Header(out, 0, {
    trafficClass: buf[offset + 1],
    payloadLength: total - ihl + fh, // as the packet was, not as quoted
    nextHeader: isFragment ? IPPROTO.FRAGMENT : nextHeader,
    hopLimit: buf[offset + 8], // §4.3: "except the TTL value of the inner IPv4/IPv6 packet"
    src: t.innerSrc6,
    dst: t.innerDst6,
  });
  if (isFragment) writeFragmentHeader(out, IPV6_HEADER_LENGTH, nextHeader, fragmentOffset, moreFragments, (buf[offset + 4] << 8) | buf[offset + 5]);
  const at = IPV6_HEADER_LENGTH + fh;
  out.set(buf.subarray(offset + ihl, offset + ihl + have), at);
  if (fragmentOffset !== 0) return out;
  if (protocol === IPPROTO.ICMP) {
    if (have < 4) return out;
    const type = out[at];
    if (isIcmp4Error(type)) return undefined; // §4.3: no error inside an error.
    if (type !== 8 && type !== 0) return undefined; // only echo has an ICMPv6 counterpart to quote
    rewriteEcho(out, at, type === 8 ? 128 : 129, 0, pseudoHeaderSum6(t.innerSrc6, 0, t.innerDst6, 0, IPPROTO.ICMPV6, total - ihl));
  } else {
    updateTransportChecksum(out, at, have, protocol, sum16(buf, offset + 12, offset + 20), sum16(t.innerSrc6, 0, 16) + sum16(t.innerDst6, 0, 16));
  }
  return out;
}
