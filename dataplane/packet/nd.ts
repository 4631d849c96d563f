// IPv6 Neighbor Discovery messages and options (RFC 4861 §4): RS, RA, NS, NA, Redirect.
import { ICMP6_HEADER_LENGTH, ICMP6_TYPE, buildIcmp6Packet } from "./icmp6.js";

/** RFC 4861 §4.6 option types. */
export const ND_OPTION = { SOURCE_LINK_LAYER: 1, TARGET_LINK_LAYER: 2, PREFIX_INFORMATION: 3, REDIRECTED_HEADER: 4, MTU: 5 } as const;

/** RFC 4861 §6.1, §7.1: ND messages are sent, and accepted only, with hop limit 255. */
export const ND_HOP_LIMIT = 255;

export interface NdPrefix {
  /** Offset of the 16-byte prefix. */
  prefixOffset: number;
  prefixLength: number;
  onLink: boolean;
  autonomous: boolean;
  validLifetime: number;
  preferredLifetime: number;
}

export interface NdMessage {
  type: number;
  code: number;
  /** Target address (NS, NA, Redirect) offset, or -1. */
  targetOffset: number;
  /** Redirect's destination address offset, or -1. */
  destinationOffset: number;
  /** NA flags (RFC 4861 §4.4). */
  router: boolean;
  solicited: boolean;
  override: boolean;
  /** RA fields (RFC 4861 §4.2); 0/false for other types. */
  curHopLimit: number;
  managed: boolean;
  other: boolean;
  routerLifetime: number;
  reachableTime: number;
  retransTimer: number;
  /** Offset of the 6-byte MAC in a source / target link-layer address option, or -1. */
  sourceLinkLayerOffset: number;
  targetLinkLayerOffset: number;
  /** MTU option value, or -1. */
  mtu: number;
  prefixes: NdPrefix[];
}

function fixedLength(type: number): number {
  switch (type) {
    case ICMP6_TYPE.ROUTER_SOLICITATION: return 8;
    case ICMP6_TYPE.ROUTER_ADVERTISEMENT: return 16;
    case ICMP6_TYPE.NEIGHBOR_SOLICITATION: return 24;
    case ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT: return 24;
    case ICMP6_TYPE.REDIRECT: return 40;
    default: return -1;
  }
}

/**
 * Parses an ND message at buf[icmpOffset, icmpOffset+length) (the ICMPv6 message). Returns
 * undefined if it is not RS/RA/NS/NA/Redirect, is shorter than its fixed part, or has an option
 * of length 0 or running past the end (RFC 4861 §4.6, §6.1.1, §7.1.1). The checksum and the
 * hop limit of 255 are the caller's to check (`verifyIcmp6Checksum`, `ND_HOP_LIMIT`).
 */
export function parseNd(buf: Uint8Array, icmpOffset: number, length = buf.length - icmpOffset): NdMessage | undefined {
  if (icmpOffset + length > buf.length || length < ICMP6_HEADER_LENGTH) return undefined;
  const type = buf[icmpOffset];
  const fixed = fixedLength(type);
  if (fixed < 0 || length < fixed) return undefined;
  const o = icmpOffset;
  const m: NdMessage = {
    type, code: buf[o + 1], targetOffset: -1, destinationOffset: -1, router: false, solicited: false, override: false,
    curHopLimit: 0, managed: false, other: false, routerLifetime: 0, reachableTime: 0, retransTimer: 0,
    sourceLinkLayerOffset: -1, targetLinkLayerOffset: -1, mtu: -1, prefixes: [],
  };
  if (type === ICMP6_TYPE.ROUTER_ADVERTISEMENT) {
    m.curHopLimit = buf[o + 4];
    m.managed = (buf[o + 5] & 0x80) !== 0;
    m.other = (buf[o + 5] & 0x40) !== 0;
    m.routerLifetime = (buf[o + 6] << 8) | buf[o + 7];
    m.reachableTime = ((buf[o + 8] << 24) | (buf[o + 9] << 16) | (buf[o + 10] << 8) | buf[o + 11]) >>> 0;
    m.retransTimer = ((buf[o + 12] << 24) | (buf[o + 13] << 16) | (buf[o + 14] << 8) | buf[o + 15]) >>> 0;
  } else if (type === ICMP6_TYPE.NEIGHBOR_SOLICITATION || type === ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT || type === ICMP6_TYPE.REDIRECT) {
    m.targetOffset = o + 8;
    if (type === ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT) {
      m.router = (buf[o + 4] & 0x80) !== 0;
      m.solicited = (buf[o + 4] & 0x40) !== 0;
      m.override = (buf[o + 4] & 0x20) !== 0;
    }
    if (type === ICMP6_TYPE.REDIRECT) m.destinationOffset = o + 24;
  }
  const end = o + length;
  let p = o + fixed;
  while (p < end) {
    if (p + 2 > end) return undefined;
    const optLength = buf[p + 1] << 3;
    if (optLength === 0 || p + optLength > end) return undefined;
    const t = buf[p];
    if (t === ND_OPTION.SOURCE_LINK_LAYER && optLength >= 8) m.sourceLinkLayerOffset = p + 2;
    else if (t === ND_OPTION.TARGET_LINK_LAYER && optLength >= 8) m.targetLinkLayerOffset = p + 2;
    else if (t === ND_OPTION.MTU && optLength === 8) m.mtu = ((buf[p + 4] << 24) | (buf[p + 5] << 16) | (buf[p + 6] << 8) | buf[p + 7]) >>> 0;
    else if (t === ND_OPTION.PREFIX_INFORMATION && optLength === 32) {
      m.prefixes.push({
        prefixLength: buf[p + 2],
        onLink: (buf[p + 3] & 0x80) !== 0,
        autonomous: (buf[p + 3] & 0x40) !== 0,
        validLifetime: ((buf[p + 4] << 24) | (buf[p + 5] << 16) | (buf[p + 6] << 8) | buf[p + 7]) >>> 0,
        preferredLifetime: ((buf[p + 8] << 24) | (buf[p + 9] << 16) | (buf[p + 10] << 8) | buf[p + 11]) >>> 0,
        prefixOffset: p + 16,
      });
    }
    // RFC 4861 §4.6: options a receiver does not know are skipped.
    p += optLength;
  }
  return m;
}

/** Link-layer address option (RFC 4861 §4.6.1) for a 6-byte MAC: 8 bytes. */
function linkLayerOption(type: number, mac: Uint8Array): Uint8Array {
  const out = new Uint8Array(8);
  out[0] = type;
  out[1] = 1;
  out.set(mac.subarray(0, 6), 2);
  return out;
}

function u32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** RFC 4291 §2.7.1: ff02::1:ff00:0/104 plus the low 24 bits of the address. */
export function solicitedNodeAddress(address: Uint8Array, offset = 0): Uint8Array {
  const out = new Uint8Array(16);
  out[0] = 0xff;
  out[1] = 0x02;
  out[11] = 0x01;
  out[12] = 0xff;
  out[13] = address[offset + 13];
  out[14] = address[offset + 14];
  out[15] = address[offset + 15];
  return out;
}

export const ALL_NODES: Uint8Array = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
export const ALL_ROUTERS: Uint8Array = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);

/**
 * A Neighbor Solicitation (RFC 4861 §4.3) as a full IPv6 packet with hop limit 255. `dst`
 * defaults to the target's solicited-node address (§7.2.2). Leave `sourceLinkLayer` out when
 * `src` is the unspecified address (DAD, §4.3).
 */
export function buildNeighborSolicitation(o: { src: Uint8Array; target: Uint8Array; dst?: Uint8Array; sourceLinkLayer?: Uint8Array }): Uint8Array {
  const body = concat([o.target.subarray(0, 16), ...(o.sourceLinkLayer ? [linkLayerOption(ND_OPTION.SOURCE_LINK_LAYER, o.sourceLinkLayer)] : [])]);
  return buildIcmp6Packet({ src: o.src, dst: o.dst ?? solicitedNodeAddress(o.target), hopLimit: ND_HOP_LIMIT }, ICMP6_TYPE.NEIGHBOR_SOLICITATION, 0, 0, body);
}

/** A Neighbor Advertisement (RFC 4861 §4.4) as a full IPv6 packet with hop limit 255. */
export function buildNeighborAdvertisement(o: { src: Uint8Array; dst: Uint8Array; target: Uint8Array; router?: boolean; solicited?: boolean; override?: boolean; targetLinkLayer?: Uint8Array }): Uint8Array {
  const flags = ((o.router ? 0x80 : 0) | (o.solicited ? 0x40 : 0) | (o.override ? 0x20 : 0)) << 24;
  const body = concat([o.target.subarray(0, 16), ...(o.targetLinkLayer ? [linkLayerOption(ND_OPTION.TARGET_LINK_LAYER, o.targetLinkLayer)] : [])]);
  return buildIcmp6Packet({ src: o.src, dst: o.dst, hopLimit: ND_HOP_LIMIT }, ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT, 0, flags >>> 0, body);
}

/** A Router Solicitation (RFC 4861 §4.1) to all-routers by default. */
export function buildRouterSolicitation(o: { src: Uint8Array; dst?: Uint8Array; sourceLinkLayer?: Uint8Array }): Uint8Array {
  const body = o.sourceLinkLayer ? linkLayerOption(ND_OPTION.SOURCE_LINK_LAYER, o.sourceLinkLayer) : new Uint8Array(0);
  return buildIcmp6Packet({ src: o.src, dst: o.dst ?? ALL_ROUTERS, hopLimit: ND_HOP_LIMIT }, ICMP6_TYPE.ROUTER_SOLICITATION, 0, 0, body);
}

export interface RouterAdvertisementFields {
  src: Uint8Array;
  dst?: Uint8Array;
  curHopLimit?: number;
  managed?: boolean;
  other?: boolean;
  routerLifetime: number;
  reachableTime?: number;
  retransTimer?: number;
  sourceLinkLayer?: Uint8Array;
  mtu?: number;
  prefixes?: { prefix: Uint8Array; prefixLength: number; onLink?: boolean; autonomous?: boolean; validLifetime: number; preferredLifetime: number }[];
}

/** A Router Advertisement (RFC 4861 §4.2) to all-nodes by default. */
export function buildRouterAdvertisement(o: RouterAdvertisementFields): Uint8Array {
  const fixed = new Uint8Array(8);
  u32(fixed, 0, o.reachableTime ?? 0);
  u32(fixed, 4, o.retransTimer ?? 0);
  const parts: Uint8Array[] = [fixed];
  if (o.sourceLinkLayer) parts.push(linkLayerOption(ND_OPTION.SOURCE_LINK_LAYER, o.sourceLinkLayer));
  if (o.mtu !== undefined) {
    const m = new Uint8Array(8);
    m[0] = ND_OPTION.MTU;
    m[1] = 1;
    u32(m, 4, o.mtu);
    parts.push(m);
  }
  for (const p of o.prefixes ?? []) {
    const q = new Uint8Array(32);
    q[0] = ND_OPTION.PREFIX_INFORMATION;
    q[1] = 4;
    q[2] = p.prefixLength;
    q[3] = (p.onLink ?? true ? 0x80 : 0) | (p.autonomous ?? true ? 0x40 : 0);
    u32(q, 4, p.validLifetime);
    u32(q, 8, p.preferredLifetime);
    q.set(p.prefix.subarray(0, 16), 16);
    parts.push(q);
  }
  const rest = (((o.curHopLimit ?? 64) << 24) | (((o.managed ? 0x80 : 0) | (o.other ? 0x40 : 0)) << 16) | (o.routerLifetime & 0xffff)) >>> 0;
  return buildIcmp6Packet({ src: o.src, dst: o.dst ?? ALL_NODES, hopLimit: ND_HOP_LIMIT }, ICMP6_TYPE.ROUTER_ADVERTISEMENT, 0, rest, concat(parts));
}
