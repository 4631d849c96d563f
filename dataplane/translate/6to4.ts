// IPv6 → IPv4, RFC 7915 §5: the header rules of §5.1 and §5.1.1, the ICMP rules of §5.2 and
// §5.3, and the order of the steps. Read beside the RFC; each rule cites its section.
import { sum16 } from "../packet/checksum.js";
import { buildIcmp4Message } from "../packet/icmp4.js";
import { isIcmp6Error, verifyIcmp6Checksum } from "../packet/icmp6.js";
import { IPPROTO, IPV4_HEADER_LENGTH, writeIPv4Header } from "../packet/ipv4.js";
import { IPV6_HEADER_LENGTH, IPV6_MIN_MTU, isIPv6ExtensionHeader, parseIPv6, walkIPv6Extensions, type IPv6Chain } from "../packet/ipv6.js";
import { copyPacket, outputPacket } from "./alloc.js";
import { fragmentIPv4Payload } from "../packet/fragment.js";
import { allocPacket, copyBytes } from "../packet/buffers.js";
import { icmp6Back, icmp6Untranslatable } from "./icmpErrors.js";
import { drop, type DropReason, type TranslateResult } from "./result.js";
import type { TranslatorState } from "./state.js";
import { errorBody, rewriteEcho, updateTransportChecksum } from "./transport.js";

/** RFC 7915 §5.1: translated packets up to this size go with DF clear, bigger ones with DF set. */
const DF_THRESHOLD = 1260;

/** RFC 7915 §5.2 Figure 6: IPv6 header byte → IPv4 header byte for Parameter Problem pointers; -1 has no counterpart. */
function pointer6to4(p: number): number {
  if (p === 0 || p === 1) return p;
  if (p === 4 || p === 5) return 2; // Payload Length → Total Length
  if (p === 6) return 9; // Next Header → Protocol
  if (p === 7) return 8; // Hop Limit → TTL
  if (p >= 8 && p < 24) return 12;
  if (p >= 24 && p < 40) return 16;
  return -1; // Flow Label and anything past the fixed header
}

/**
 * The sum of the two addresses of the pseudo-header the sender of the IPv6 packet at `ipOffset`
 * computed its upper-layer checksum over. RFC 8200 §8.1 and RFC 6275 §6.3: with a Home Address
 * option that is the home address, not the Source Address (the care-of address). The header
 * source is still what §5.1 translates; only the checksum update must start from the right sum.
 * (A routing header with Segments Left 0 has already made Destination Address final.)
 */
function pseudoAddressSum6(buf: Uint8Array, ipOffset: number, chain: IPv6Chain): number {
  const src = chain.homeAddressOffset >= 0 ? chain.homeAddressOffset : ipOffset + 8;
  return sum16(buf, src, src + 16) + sum16(buf, ipOffset + 24, ipOffset + 40);
}

/** Translates one IPv6 packet (from its IP header on, no link header). Never throws on packet data. */
export function translate6to4(t: TranslatorState, packet: Uint8Array): TranslateResult {
  const ip = parseIPv6(packet, 0, packet.length, t.ip6);
  if (ip === undefined) return drop("malformed");
  const end = ip.payloadOffset + ip.payloadLength;
  if (packet.length > end) packet = packet.subarray(0, end); // link padding is not part of the packet
  const chain = walkIPv6Extensions(packet, 0, end, t.chain);
  if (chain === undefined) return drop("malformed");
  return translateWalked6to4(t, packet, chain, t.cfg.mapping.map6to4(packet, 24));
}

/**
 * The translation of an IPv6 packet whose fixed header was checked (version 6, exactly 40 +
 * Payload Length bytes) and whose extension chain was walked into `chain`; `dst4` is the
 * destination's IPv4 form (-1: none). The forwarder calls this with what its well-formedness
 * step walked and its decision looked up, so neither is done twice.
 */
export function translateWalked6to4(t: TranslatorState, packet: Uint8Array, chain: IPv6Chain, dst4: number): TranslateResult {
  const cfg = t.cfg;
  const end = packet.length;
  const hopLimit = packet[7];
  const trafficClass = ((packet[0] & 0x0f) << 4) | (packet[1] >> 4);
  // ICMPv4 (protocol 1) inside IPv6 has no ICMPv6 form: §5.1 would copy it as it is, and its
  // checksum would cover what an ICMPv4 checksum does not (4to6.ts UNTRANSLATABLE_4, the reverse).
  if (chain.upperProtocol === IPPROTO.ICMP) return drop("untranslatable-protocol");

  // §5 / §4.6: only a destination with an IPv4 form is translated. §5.1 "Destination Address", §6.
  if (dst4 < 0) return drop("unmapped-destination");
  // §5.1 "TTL": the translator is a router; it decrements the hop limit and checks it (RFC 8200 §3).
  if (hopLimit <= 1) return icmp6Back(t, packet, 3, 0, 0, "ttl-expired");
  // §5.1: a routing header with Segments Left non-zero is answered with Parameter Problem pointing at the field.
  if (chain.segmentsLeft !== 0) return icmp6Back(t, packet, 4, 0, chain.routingHeaderOffset + 3, "segments-left");

  const initial = chain.fragmentOffset === 0;
  // RFC 6946 §4: an atomic fragment (offset 0, M clear) is a whole packet. ICMPv6 in one is
  // translated as if the Fragment Header were not there (§5.2 has the whole message); other
  // protocols keep the §5.1.1 rules (the identification is carried over).
  const atomicIcmp = chain.fragmentHeaderOffset >= 0 && initial && !chain.moreFragments && chain.upperProtocol === IPPROTO.ICMPV6;
  const isFragment = chain.fragmentHeaderOffset >= 0 && !atomicIcmp;
  // RFC 6145 erratum 3061 (on §5.1.1, kept by RFC 7915): extension headers after the fragment
  // header shift the data of later fragments by a length this stateless translator cannot know.
  // §5.4: say so when allowed (about the first fragment; the later ones do not show the headers).
  if (isFragment && (chain.upperProtocolFieldOffset !== chain.fragmentHeaderOffset || isIPv6ExtensionHeader(chain.upperProtocol))) {
    return initial ? icmp6Untranslatable(t, packet, "fragment-extension-headers") : drop("fragment-extension-headers");
  }
  const upperLength = end - chain.upperOffset;
  const isIcmpError = chain.upperProtocol === IPPROTO.ICMPV6 && initial && upperLength > 0 && isIcmp6Error(packet[chain.upperOffset]);

  // §5.1 "Source Address", §6. RFC 7915 §1.3 and RFC 6791 §4: an ICMPv6 error from an IPv6
  // router with no IPv4 form gets the configured IPv4 source, so the error still reaches the IPv4 host.
  let src4 = cfg.mapping.map6to4(packet, 8);
  if (src4 < 0) {
    if (!isIcmpError) return icmp6Untranslatable(t, packet, "unmapped-source");
    src4 = cfg.icmpErrorSource4;
  }

  // §5.1 "Protocol": the upper layer after the skipped hop-by-hop, destination options and
  // routing headers; ICMPv6 (58) becomes ICMP (1).
  const protocol = chain.upperProtocol === IPPROTO.ICMPV6 ? IPPROTO.ICMP : chain.upperProtocol;
  let icmp4: Uint8Array | undefined;
  if (chain.upperProtocol === IPPROTO.ICMPV6) {
    // §5.2 needs the whole message to take the pseudo-header out of its checksum (§5.4: say so if allowed).
    if (isFragment) return initial ? icmp6Untranslatable(t, packet, "icmp-fragmented") : drop("icmp-fragmented");
    const r = translateIcmp6to4(t, packet, chain.upperOffset, upperLength, pseudoAddressSum6(packet, 0, chain));
    if (typeof r === "string") return drop(r);
    icmp4 = r;
  }

  const payloadLength = icmp4 !== undefined ? icmp4.length : upperLength;
  // §5.1 "Total Length": Payload Length minus the extension headers, plus the IPv4 header.
  const total4 = IPV4_HEADER_LENGTH + payloadLength;
  // §5.1 "Flags": DF clear up to 1260 bytes, set above; §5.1.1: always clear for a fragment, MF copied from M.
  const dontFragment = !isFragment && total4 > DF_THRESHOLD;
  // §5.1 "Identification": from the translator's generator; §5.1.1: the low 16 bits of the fragment identification.
  const identification = isFragment ? chain.identification & 0xffff : t.nextIdentification();
  const ttl = hopLimit - 1;
  const oldSum = pseudoAddressSum6(packet, 0, chain);

  if (total4 > cfg.ipv4Mtu) {
    // An IPv4 router may not fragment with DF set, and the source is IPv6: Packet Too Big, with
    // the IPv6 size that fits and never below 1280 (RFC 8200 §5, RFC 8201 §4).
    if (dontFragment) return icmp6Back(t, packet, 2, 0, Math.max(IPV6_MIN_MTU, cfg.ipv4Mtu + 20), "packet-too-big");
    // RFC 791 §2.3: without DF the translator, an IPv4 router, fragments to the next hop.
    const upper = allocPacket(payloadLength);
    const newSum = addressSum4(dst4, src4);
    writeUpper(upper, 0, newSum);
    return {
      action: "forward",
      packets: fragmentIPv4Payload(upper, {
        tos: trafficClass, identification, ttl, protocol, src: src4, dst: dst4,
        fragmentOffset: chain.fragmentOffset, moreFragments: chain.moreFragments,
      }, cfg.ipv4Mtu),
    };
  }

  const out = outputPacket(t.output, packet, total4);
  writeIPv4Header(out, 0, {
    tos: trafficClass, // §5.1 "Type of Service": copied from Traffic Class.
    totalLength: total4,
    identification,
    dontFragment,
    moreFragments: chain.moreFragments, // §5.1.1 "Flags"
    fragmentOffset: chain.fragmentOffset, // §5.1.1 "Fragment Offset"
    ttl, // §5.1 "TTL": Hop Limit, decremented.
    protocol,
    src: src4,
    dst: dst4,
    // §5.1 "Header Checksum": computed by the writer. "IPv4 options": none.
  });
  writeUpper(out, IPV4_HEADER_LENGTH, sum16(out, 12, 20));
  return { action: "forward", packets: [out] };

  function addressSum4(d: number, s: number): number {
    return (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff);
  }

  function writeUpper(buf: Uint8Array, at: number, newSum: number): void {
    if (icmp4 !== undefined) {
      buf.set(icmp4, at);
      return;
    }
    copyBytes(buf, at, packet, chain.upperOffset, upperLength);
    // §5.5: TCP and UDP checksums follow the pseudo-header's new addresses (none in a non-initial fragment).
    if (initial) updateTransportChecksum(buf, at, upperLength, chain.upperProtocol, oldSum, newSum);
  }
}

/**
 * §5.2 and §5.3: the ICMP message for the ICMPv6 message at packet[offset, offset+length) (whole,
 * not fragmented), or the reason to drop it silently.
 */
function translateIcmp6to4(t: TranslatorState, packet: Uint8Array, offset: number, length: number, addressSum6: number): Uint8Array | DropReason {
  if (length < 8) return "malformed";
  // RFC 4443 §2.3: the ICMPv6 checksum covers the pseudo-header the sender used.
  const pseudo6 = addressSum6 + (length >>> 16) + (length & 0xffff) + IPPROTO.ICMPV6;
  const type = packet[offset];
  const code = packet[offset + 1];
  const cfg = t.cfg;
  switch (type) {
    case 128: // Echo Request → 8
    case 129: { // Echo Reply → 0; §5.2: "Code 0".
      const out = copyPacket(packet, offset, offset + length);
      // §5.2: ICMPv4 has no pseudo-header; take it out of the checksum (RFC 1624 update).
      rewriteEcho(out, 0, type === 128 ? 8 : 0, pseudo6, 0);
      return out;
    }
    case 1: { // Destination Unreachable → Type 3
      // §5.2: no route, beyond scope and address unreachable → Host Unreachable (1);
      // administratively prohibited → Host Administratively Prohibited (10); port → Port Unreachable (3).
      const code4 = code === 0 || code === 2 || code === 3 ? 1 : code === 1 ? 10 : code === 4 ? 3 : -1;
      if (code4 < 0) return "icmp-untranslatable";
      return icmpError6to4(t, packet, offset, length, pseudo6, 3, code4, 0);
    }
    case 2: { // Packet Too Big → Fragmentation Needed (3/4)
      const mtu6 = ((packet[offset + 4] << 24) | (packet[offset + 5] << 16) | (packet[offset + 6] << 8) | packet[offset + 7]) >>> 0;
      // §5.2: minimum(advertised MTU − 20, MTU of the IPv4 next hop, MTU of the IPv6 next hop − 20),
      // less 8 more when the packet in error carries a Fragment Header the IPv4 packet will not.
      const quotedHasFragmentHeader = length >= 48 && packet[offset + 8 + 6] === IPPROTO.FRAGMENT;
      const mtu4 = Math.min(mtu6 - 20 - (quotedHasFragmentHeader ? 8 : 0), cfg.ipv4Mtu, cfg.ipv6Mtu - 20);
      if (mtu4 < 68) return "icmp-untranslatable"; // RFC 791: no IPv4 link is smaller
      return icmpError6to4(t, packet, offset, length, pseudo6, 3, 4, mtu4 & 0xffff);
    }
    case 3: // §5.2 Time Exceeded → Type 11, code unchanged.
      return icmpError6to4(t, packet, offset, length, pseudo6, 11, code, 0);
    case 4: { // Parameter Problem
      if (code === 1) return icmpError6to4(t, packet, offset, length, pseudo6, 3, 2, 0); // §5.2: unrecognized Next Header → Protocol Unreachable
      if (code !== 0) return "icmp-untranslatable"; // §5.2: Code 2 (unrecognized option) and others: drop.
      const p6 = ((packet[offset + 4] << 24) | (packet[offset + 5] << 16) | (packet[offset + 6] << 8) | packet[offset + 7]) >>> 0;
      const p4 = p6 < 40 ? pointer6to4(p6) : -1; // Figure 6
      if (p4 < 0) return "icmp-untranslatable";
      return icmpError6to4(t, packet, offset, length, pseudo6, 12, 0, (p4 << 24) >>> 0);
    }
    default:
      // §5.2: MLD, Neighbor Discovery and other single-hop messages, unknown informational and
      // unknown error types are silently dropped.
      return "icmp-untranslatable";
  }
}

/**
 * §5.3: an ICMP error whose body is the translated "packet in error". ICMPv6 Destination
 * Unreachable and Time Exceeded may carry RFC 4884 extensions; their length attribute is
 * converted (§5.2 "ICMP Error Payload").
 */
function icmpError6to4(t: TranslatorState, packet: Uint8Array, offset: number, length: number, pseudo6: number, type: number, code: number, rest: number): Uint8Array | DropReason {
  // §5: the checksum is evaluated before translation; the ICMPv4 one is computed afresh and
  // must not make a damaged error look whole (RFC 4443 §2.3).
  if (!verifyIcmp6Checksum(packet, offset, length, pseudo6)) return "icmp-checksum";
  const body = offset + 8;
  const bodyLength = length - 8;
  const type6 = packet[offset];
  // RFC 4884 §4.1: ICMPv6 length attribute in byte 4, in 64-bit words, for types 1 and 3 only.
  const lengthAttribute = type6 === 1 || type6 === 3 ? packet[offset + 4] * 8 : 0;
  const hasExtension = lengthAttribute > 0 && lengthAttribute < bodyLength;
  const quotedLength = hasExtension ? lengthAttribute : bodyLength;
  const inner = quoted6to4(t, packet, body, quotedLength);
  if (inner === undefined) return "icmp-error-inner";
  // RFC 1812 §4.3.2.3: an ICMPv4 error is at most icmp4ErrorMaxBytes (576) with its IP header;
  // an extension stays whole (errorBody). RFC 4884 §4.1: Destination Unreachable (3), Time
  // Exceeded (11) and Parameter Problem (12) carry a length in ICMPv4, in byte 5, in 32-bit words.
  const extension = hasExtension && (type === 3 || type === 11 || type === 12) ? packet.subarray(body + quotedLength, body + bodyLength) : undefined;
  const { body: payload, lengthWords } = errorBody(inner, extension, 4, t.cfg.icmp4ErrorMaxBytes - IPV4_HEADER_LENGTH - 8);
  rest = (rest | (lengthWords << 16)) >>> 0;
  return buildIcmp4Message(type, code, rest, payload);
}

/**
 * §5.3: the translated form of the IPv6 packet quoted at buf[offset, offset+available), cut
 * where the quote was cut. The hop limit is not decremented. Undefined when it cannot be
 * translated: too short, unmapped addresses, or itself an ICMPv6 error.
 */
function quoted6to4(t: TranslatorState, buf: Uint8Array, offset: number, available: number): Uint8Array | undefined {
  if (available < IPV6_HEADER_LENGTH || buf[offset] >> 4 !== 6) return undefined;
  const declaredPayload = (buf[offset + 4] << 8) | buf[offset + 5];
  const end = offset + Math.min(available, IPV6_HEADER_LENGTH + declaredPayload);
  const chain: IPv6Chain | undefined = walkIPv6Extensions(buf, offset, end, t.innerChain);
  if (chain === undefined) return undefined;
  // §5.3: the inner addresses are translated like the outer ones.
  const src4 = t.cfg.mapping.map6to4(buf, offset + 8);
  const dst4 = t.cfg.mapping.map6to4(buf, offset + 24);
  if (src4 < 0 || dst4 < 0) return undefined;
  const isFragment = chain.fragmentHeaderOffset >= 0;
  const declaredUpper = declaredPayload - (chain.upperOffset - offset - IPV6_HEADER_LENGTH);
  const total4 = IPV4_HEADER_LENGTH + declaredUpper;
  if (declaredUpper < 0 || total4 > 0xffff) return undefined;
  const have = end - chain.upperOffset;
  const protocol = chain.upperProtocol === IPPROTO.ICMPV6 ? IPPROTO.ICMP : chain.upperProtocol;
  const out = allocPacket(IPV4_HEADER_LENGTH + have);
  writeIPv4Header(out, 0, {
    tos: ((buf[offset] & 0x0f) << 4) | (buf[offset + 1] >> 4),
    totalLength: total4, // as the packet was, not as quoted
    identification: isFragment ? chain.identification & 0xffff : 0,
    dontFragment: !isFragment && total4 > DF_THRESHOLD,
    moreFragments: chain.moreFragments,
    fragmentOffset: chain.fragmentOffset,
    ttl: buf[offset + 7], // §5.3: the inner hop limit is not decremented
    protocol,
    src: src4,
    dst: dst4,
  });
  const at = IPV4_HEADER_LENGTH;
  out.set(buf.subarray(chain.upperOffset, end), at);
  if (chain.fragmentOffset !== 0) return out;
  if (chain.upperProtocol === IPPROTO.ICMPV6) {
    if (have < 4) return out;
    const type = out[at];
    if (isIcmp6Error(type)) return undefined; // §5.3: no error inside an error.
    if (type !== 128 && type !== 129) return undefined; // only echo has an ICMPv4 counterpart to quote
    rewriteEcho(out, at, type === 128 ? 8 : 0, pseudoAddressSum6(buf, offset, chain) + (declaredUpper >>> 16) + (declaredUpper & 0xffff) + IPPROTO.ICMPV6, 0);
  } else {
    updateTransportChecksum(out, at, have, chain.upperProtocol, pseudoAddressSum6(buf, offset, chain), sum16(out, 12, 20));
  }
  return out;
}
