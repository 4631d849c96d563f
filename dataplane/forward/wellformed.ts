// Well-formedness: the checks every IP packet passes before any decision. RFC 1812 §5.2.2 asks a
// router to check only the IP header; we also check that the headers up to the transport header
// are complete (UDP, TCP and ICMP header and length fields, an IPv6 extension chain that can be
// walked, and the inner packet of IP-in-IP with its length equal to what the outer packet
// carries), so that nothing the worker emits is malformed, whatever came in. Transport checksums
// are not verified here: routers pass them on. The IPv6 extension chain is walked once per
// packet, here, and left in the packet state (chain6, tunnel6) for the steps after.
import { checksumOk, read32 } from "../packet/checksum.js";
import { isIcmp4Error } from "../packet/icmp4.js";
import { IPPROTO } from "../packet/ipv4.js";
import { walkIPv6Extensions, type IPv6Chain } from "../packet/ipv6.js";
import type { PacketState } from "./packet.js";
import type { Router } from "./router.js";

/**
 * The IPv4 header (RFC 1812 §5.2.2), the addresses a router does not forward to or from
 * (§5.3.7) and the headers up to the transport one. Returns the packet without link padding, or
 * undefined once the drop is counted.
 */
export function wellFormed4(r: Router, s: PacketState, pkt: Uint8Array): Uint8Array | undefined {
  if (pkt.length < 20 || pkt[0] >> 4 !== 4) return dropped(r, "malformed");
  const ihl = (pkt[0] & 0x0f) << 2;
  const total = (pkt[2] << 8) | pkt[3];
  if (ihl < 20 || total < ihl || total > pkt.length) return dropped(r, "malformed");
  // RFC 1812 §5.2.2: a router discards a datagram whose header checksum is wrong.
  if (!checksumOk(pkt, 0, ihl)) return dropped(r, "ipv4-header-checksum");
  if (total < pkt.length) pkt = pkt.subarray(0, total);
  const dst = read32(pkt, 16);
  const src = read32(pkt, 12);
  // RFC 1812 §5.3.7: no forwarding to or from multicast/broadcast/"this network"/loopback here.
  if (dst >>> 28 >= 0xe || dst >>> 24 === 0 || dst >>> 24 === 127) return dropped(r, "not-for-us");
  // An ICMPv4 error from such a source goes on to the translator, which translates it for
  // troubleshooting (RFC 7915 §4.1); ipv4.ts drops it when it is not translated.
  if (martianSource4(src) && !isIcmp4ErrorPacket(pkt, ihl)) return dropped(r, "malformed");
  if (!sound4(pkt, 0, s)) return dropped(r, "malformed");
  return pkt;
}

/** The IPv6 fixed header (RFC 8200 §3, RFC 4291 §2.7). Returns the packet without link padding, or undefined once the drop is counted. */
export function header6(r: Router, pkt: Uint8Array): Uint8Array | undefined {
  if (pkt.length < 40 || pkt[0] >> 4 !== 6) return dropped(r, "malformed");
  const total = 40 + ((pkt[4] << 8) | pkt[5]);
  if (total > pkt.length) return dropped(r, "malformed");
  if (total < pkt.length) pkt = pkt.subarray(0, total);
  // RFC 4291 §2.7: a multicast source is invalid.
  if (pkt[8] === 0xff) return dropped(r, "malformed");
  return pkt;
}

/**
 * The IPv6 headers up to the transport one, walked once into `s.chain6` for the steps after it:
 * the tunnel protocol (s.tunnel6), the correspondents' binding updates and the translator take
 * that walk. The inner packet of a tunnel was walked with its outer packet (`s.innerChain6`);
 * when it comes back for its own pass (link.ts), that walk is taken, not done again. False when
 * malformed.
 */
export function sound6Outer(s: PacketState, pkt: Uint8Array): boolean {
  let c: IPv6Chain | undefined;
  if (s.innerWalked) {
    // The decapsulated inner packet: walked when its outer packet was checked.
    c = s.innerChain6;
    s.innerChain6 = s.chain6;
    s.chain6 = c;
    s.innerWalked = false;
  } else {
    c = walkIPv6Extensions(pkt, 0, pkt.length, s.chain6);
  }
  s.tunnel6 = -1;
  if (c === undefined) return false;
  s.tunnel6 = tunnelProtocol6(c);
  return chainSound(pkt, c, 0, s);
}

/** RFC 1812 §5.3.7: a source a router does not forward from (multicast, class E, loopback). */
export function martianSource4(src: number): boolean {
  return src >>> 28 >= 0xe || src >>> 24 === 127;
}

/** An unfragmented ICMPv4 error (its header is checked later, by sound4). */
function isIcmp4ErrorPacket(pkt: Uint8Array, ihl: number): boolean {
  return pkt[9] === IPPROTO.ICMP && (((pkt[6] << 8) | pkt[7]) & 0x3fff) === 0 && pkt.length > ihl && isIcmp4Error(pkt[ihl]);
}

function dropped(r: Router, reason: string): undefined {
  r.drop(reason);
  return undefined;
}

/**
 * 4 or 41 when the IPv6 packet carries IPv4 / IPv6 after at most three hop-by-hop and destination
 * options headers (where RFC 2473 §5.1 puts its Tunnel Encapsulation Limit), else -1.
 */
function tunnelProtocol6(c: IPv6Chain): number {
  const nh = c.upperProtocol;
  if (nh !== IPPROTO.IPIP && nh !== IPPROTO.IPV6) return -1;
  return c.extensionCount === c.optionsCount && c.extensionCount <= 3 ? nh : -1;
}

function transportSound(pkt: Uint8Array, proto: number, off: number, moreFragments: boolean, depth: number, s: PacketState): boolean {
  const len = pkt.length - off;
  // A first fragment carries only the start of the transport data; its header is checked by the destination.
  if (moreFragments) return len >= 8 || (proto !== IPPROTO.UDP && proto !== IPPROTO.TCP && proto !== IPPROTO.ICMP && proto !== IPPROTO.ICMPV6);
  switch (proto) {
    case IPPROTO.UDP: {
      if (len < 8) return false;
      const ulen = (pkt[off + 4] << 8) | pkt[off + 5];
      return ulen >= 8 && ulen <= len;
    }
    case IPPROTO.TCP: {
      if (len < 20) return false;
      const hl = (pkt[off + 12] >> 4) << 2;
      return hl >= 20 && hl <= len;
    }
    case IPPROTO.ICMP:
      return len >= 8;
    case IPPROTO.ICMPV6:
      return len >= 4;
    case IPPROTO.IPIP:
      if (depth > 0) return true;
      return inner4Sound(pkt.subarray(off), s);
    case IPPROTO.IPV6:
      if (depth > 0) return true;
      return inner6Sound(pkt.subarray(off), s);
    default:
      return true;
  }
}

function inner4Sound(inner: Uint8Array, s: PacketState): boolean {
  if (inner.length < 20 || inner[0] >> 4 !== 4) return false;
  const ihl = (inner[0] & 0x0f) << 2;
  const total = (inner[2] << 8) | inner[3];
  if (ihl < 20 || total < ihl || total !== inner.length || !checksumOk(inner, 0, ihl)) return false;
  return sound4(inner, 1, s);
}

/** The inner IPv6 packet of a tunnel, walked into `s.innerChain6` for its own pass should it be decapsulated. */
function inner6Sound(inner: Uint8Array, s: PacketState): boolean {
  if (inner.length < 40 || inner[0] >> 4 !== 6) return false;
  if (40 + ((inner[4] << 8) | inner[5]) !== inner.length) return false;
  const c = walkIPv6Extensions(inner, 0, inner.length, s.innerChain6);
  if (c === undefined) return false;
  s.innerWalked = true;
  return chainSound(inner, c, 1, s);
}

/** `pkt` is an IPv4 packet whose header was checked and whose length is its total length. */
function sound4(pkt: Uint8Array, depth: number, s: PacketState): boolean {
  const frag = (pkt[6] << 8) | pkt[7];
  if ((frag & 0x1fff) !== 0) return true;
  return transportSound(pkt, pkt[9], (pkt[0] & 0x0f) << 2, (frag & 0x2000) !== 0, depth, s);
}

/** The transport header after the walked chain `c` of the IPv6 packet `pkt`. */
function chainSound(pkt: Uint8Array, c: IPv6Chain, depth: number, s: PacketState): boolean {
  if (c.fragmentOffset !== 0) return true;
  return transportSound(pkt, c.upperProtocol, c.upperOffset, c.moreFragments, depth, s);
}
