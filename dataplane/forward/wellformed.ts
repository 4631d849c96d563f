// Well-formedness: the checks every IP packet passes before any decision. RFC 1812 §5.2.2 asks a
// router to check only the IP header; we also check that the headers up to the transport header
// are complete (UDP, TCP and ICMP header and length fields, an IPv6 extension chain that can be
// walked, and the inner packet of IP-in-IP with its length equal to what the outer packet
// carries), so that nothing the worker emits is malformed, whatever came in. Transport checksums
// are not verified here: routers pass them on. The decision list walks the IPv6 chain once, here,
// and leaves what it needs in the packet state (tunnel6); the translator walks its own.
import { checksumOk } from "../packet/checksum.js";
import { IPPROTO } from "../packet/ipv4.js";
import { walkIPv6Extensions, type IPv6Chain } from "../packet/ipv6.js";
import { word4 } from "./addresses.js";
import type { PacketState } from "./packet.js";
import type { Router } from "./router.js";

/**
 * The IPv4 header (RFC 1812 §5.2.2), the addresses a router does not forward to or from
 * (§5.3.7) and the headers up to the transport one. Returns the packet without link padding, or
 * undefined once the drop is counted.
 */
export function wellFormed4(r: Router, pkt: Uint8Array): Uint8Array | undefined {
  if (pkt.length < 20 || pkt[0] >> 4 !== 4) return dropped(r, "malformed");
  const ihl = (pkt[0] & 0x0f) << 2;
  const total = (pkt[2] << 8) | pkt[3];
  if (ihl < 20 || total < ihl || total > pkt.length) return dropped(r, "malformed");
  // RFC 1812 §5.2.2: a router discards a datagram whose header checksum is wrong.
  if (!checksumOk(pkt, 0, ihl)) return dropped(r, "ipv4-header-checksum");
  if (total < pkt.length) pkt = pkt.subarray(0, total);
  const dst = word4(pkt, 16);
  const src = word4(pkt, 12);
  // RFC 1812 §5.3.7: no forwarding to or from multicast/broadcast/"this network"/loopback here.
  if (dst >>> 28 >= 0xe || dst >>> 24 === 0 || dst >>> 24 === 127) return dropped(r, "not-for-us");
  if (src >>> 28 >= 0xe || src >>> 24 === 127) return dropped(r, "malformed");
  if (!sound4(pkt, 0, r.innerChain)) return dropped(r, "malformed");
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
 * The IPv6 headers up to the transport one, and the tunnel protocol (s.tunnel6) for the
 * decisions. False when malformed.
 */
export function sound6Outer(r: Router, s: PacketState, pkt: Uint8Array): boolean {
  s.tunnel6 = tunnelProtocol6(pkt);
  return sound6(pkt, 0, r.chain, r.innerChain);
}

function dropped(r: Router, reason: string): undefined {
  r.drop(reason);
  return undefined;
}

function isExtension(nh: number): boolean {
  return nh === IPPROTO.HOPOPTS || nh === IPPROTO.ROUTING || nh === IPPROTO.FRAGMENT || nh === IPPROTO.DSTOPTS || nh === IPPROTO.AH;
}

/**
 * 4 or 41 when the IPv6 packet carries IPv4 / IPv6 after at most three hop-by-hop and destination
 * options headers (where RFC 2473 §5.1 puts its Tunnel Encapsulation Limit), else -1.
 */
function tunnelProtocol6(pkt: Uint8Array): number {
  let nh = pkt[6];
  let off = 40;
  for (let n = 0; n < 3 && (nh === IPPROTO.HOPOPTS || nh === IPPROTO.DSTOPTS); n++) {
    if (off + 8 > pkt.length) return -1;
    nh = pkt[off];
    off += (pkt[off + 1] + 1) << 3;
  }
  return nh === IPPROTO.IPIP || nh === IPPROTO.IPV6 ? nh : -1;
}

function transportSound(pkt: Uint8Array, proto: number, off: number, moreFragments: boolean, depth: number, chain: IPv6Chain): boolean {
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
      return inner4Sound(pkt.subarray(off), chain);
    case IPPROTO.IPV6:
      if (depth > 0) return true;
      return inner6Sound(pkt.subarray(off), chain);
    default:
      return true;
  }
}

function inner4Sound(inner: Uint8Array, chain: IPv6Chain): boolean {
  if (inner.length < 20 || inner[0] >> 4 !== 4) return false;
  const ihl = (inner[0] & 0x0f) << 2;
  const total = (inner[2] << 8) | inner[3];
  if (ihl < 20 || total < ihl || total !== inner.length || !checksumOk(inner, 0, ihl)) return false;
  return sound4(inner, 1, chain);
}

function inner6Sound(inner: Uint8Array, chain: IPv6Chain): boolean {
  if (inner.length < 40 || inner[0] >> 4 !== 6) return false;
  if (40 + ((inner[4] << 8) | inner[5]) !== inner.length) return false;
  return sound6(inner, 1, chain, chain);
}

/** `pkt` is an IPv4 packet whose header was checked and whose length is its total length. */
function sound4(pkt: Uint8Array, depth: number, chain: IPv6Chain): boolean {
  const frag = (pkt[6] << 8) | pkt[7];
  if ((frag & 0x1fff) !== 0) return true;
  return transportSound(pkt, pkt[9], (pkt[0] & 0x0f) << 2, (frag & 0x2000) !== 0, depth, chain);
}

/** `pkt` is an IPv6 packet whose length is 40 + its payload length; its chain is walked into `chain`, an inner packet's into `innerChain`. */
function sound6(pkt: Uint8Array, depth: number, chain: IPv6Chain, innerChain: IPv6Chain): boolean {
  const nh = pkt[6];
  if (!isExtension(nh)) return transportSound(pkt, nh, 40, false, depth, innerChain);
  const c = walkIPv6Extensions(pkt, 0, pkt.length, chain);
  if (c === undefined) return false;
  if (c.fragmentOffset !== 0) return true;
  return transportSound(pkt, c.upperProtocol, c.upperOffset, c.moreFragments, depth, innerChain);
}
