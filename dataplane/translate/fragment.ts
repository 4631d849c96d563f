// Fragmentation without reassembly. IPv4 → IPv6: RFC 7915 §4.1 "lowest-ipv6-mtu" (IPv4 packets
// without DF are cut so each IPv6 fragment, fragment header included, fits). IPv6 → IPv4: the
// translator is an IPv4 router, so a packet it may fragment (DF clear, §5.1 and §5.1.1) is
// fragmented to the next-hop MTU as RFC 791 §2.3 lets routers do.
import { IPPROTO, IPV4_HEADER_LENGTH, writeIPv4Header, type IPv4Fields } from "../packet/ipv4.js";
import { allocPacket } from "./alloc.js";
import { IPV6_FRAGMENT_HEADER_LENGTH, IPV6_HEADER_LENGTH, writeFragmentHeader, writeIPv6Header } from "../packet/ipv6.js";

export interface Fragment6Base {
  trafficClass: number;
  hopLimit: number;
  src: Uint8Array;
  dst: Uint8Array;
  /** Protocol of the fragmented payload (the fragment header's next header). */
  nextHeader: number;
  /** Where `upper` starts in the original datagram, in 8-octet units (non-zero for an IPv4 fragment). */
  fragmentOffset: number;
  /** Whether more of the original datagram follows `upper` (an IPv4 fragment with MF). */
  moreFragments: boolean;
  identification: number;
}

/** Cuts `upper` into IPv6 fragments no bigger than `mtu` each (RFC 7915 §4.1, RFC 8200 §4.5). */
export function fragment6(upper: Uint8Array, base: Fragment6Base, mtu: number): Uint8Array[] {
  // Every fragment but the last carries a multiple of 8 octets (RFC 8200 §4.5).
  const chunk = ((mtu - IPV6_HEADER_LENGTH - IPV6_FRAGMENT_HEADER_LENGTH) >> 3) << 3;
  const out: Uint8Array[] = [];
  for (let at = 0; at < upper.length || at === 0; at += chunk) {
    const length = Math.min(chunk, upper.length - at);
    const last = at + length >= upper.length;
    const p = allocPacket(IPV6_HEADER_LENGTH + IPV6_FRAGMENT_HEADER_LENGTH + length);
    writeIPv6Header(p, 0, {
      trafficClass: base.trafficClass, payloadLength: IPV6_FRAGMENT_HEADER_LENGTH + length, nextHeader: IPPROTO.FRAGMENT,
      hopLimit: base.hopLimit, src: base.src, dst: base.dst,
    });
    // RFC 7915 §4.1 Fragment Header: M copied from MF unless this cut adds more; identification from the IPv4 one.
    writeFragmentHeader(p, IPV6_HEADER_LENGTH, base.nextHeader, base.fragmentOffset + (at >> 3), !last || base.moreFragments, base.identification);
    p.set(upper.subarray(at, at + length), IPV6_HEADER_LENGTH + IPV6_FRAGMENT_HEADER_LENGTH);
    out.push(p);
    if (last) break;
  }
  return out;
}

/** Cuts `upper` into IPv4 fragments no bigger than `mtu` (RFC 791 §2.3, §3.2 "Fragmentation"). */
export function fragment4(upper: Uint8Array, base: Omit<IPv4Fields, "totalLength" | "options" | "dontFragment">, mtu: number): Uint8Array[] {
  const chunk = ((mtu - IPV4_HEADER_LENGTH) >> 3) << 3;
  const out: Uint8Array[] = [];
  const firstOffset = base.fragmentOffset ?? 0;
  for (let at = 0; at < upper.length || at === 0; at += chunk) {
    const length = Math.min(chunk, upper.length - at);
    const last = at + length >= upper.length;
    const p = allocPacket(IPV4_HEADER_LENGTH + length);
    writeIPv4Header(p, 0, {
      ...base, totalLength: p.length, dontFragment: false,
      fragmentOffset: firstOffset + (at >> 3), moreFragments: !last || (base.moreFragments ?? false),
    });
    p.set(upper.subarray(at, at + length), IPV4_HEADER_LENGTH);
    out.push(p);
    if (last) break;
  }
  return out;
}
