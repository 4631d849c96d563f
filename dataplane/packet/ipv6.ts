// IPv6 header (RFC 8200 §3) and extension headers (RFC 8200 §4): hop-by-hop, routing (type 2 of
// RFC 6275 §6.4), fragment, destination options (Home Address option, RFC 6275 §6.3).
import { IPPROTO } from "./ipv4.js";
import { type AlignedOption, layOutOptions, writeOptions } from "./options.js";

export const IPV6_HEADER_LENGTH = 40;
/** RFC 8200 §5: every link carries at least this; ICMPv6 errors stay within it (RFC 4443 §2.4(c)). */
export const IPV6_MIN_MTU = 1280;

export interface IPv6Header {
  offset: number;
  /** DSCP (high 6 bits) and ECN (low 2 bits). */
  trafficClass: number;
  flowLabel: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  srcOffset: number;
  dstOffset: number;
  payloadOffset: number;
}

export function newIPv6Header(): IPv6Header {
  return { offset: 0, trafficClass: 0, flowLabel: 0, payloadLength: 0, nextHeader: 0, hopLimit: 0, srcOffset: 0, dstOffset: 0, payloadOffset: 0 };
}

/**
 * Parses the fixed IPv6 header at `offset`. Returns undefined if the version is not 6 or the
 * header or its payload (payload length) runs past `end`. A zero payload length with a
 * hop-by-hop header would be a jumbogram (RFC 2675); jumbograms are not supported and such a
 * packet parses with payloadLength 0.
 */
export function parseIPv6(buf: Uint8Array, offset = 0, end = buf.length, out?: IPv6Header): IPv6Header | undefined {
  if (end > buf.length) end = buf.length;
  if (end - offset < IPV6_HEADER_LENGTH) return undefined;
  const b0 = buf[offset];
  if (b0 >> 4 !== 6) return undefined;
  const payloadLength = (buf[offset + 4] << 8) | buf[offset + 5];
  if (offset + IPV6_HEADER_LENGTH + payloadLength > end) return undefined;
  const h = out ?? newIPv6Header();
  const b1 = buf[offset + 1];
  h.offset = offset;
  h.trafficClass = ((b0 & 0x0f) << 4) | (b1 >> 4);
  h.flowLabel = ((b1 & 0x0f) << 16) | (buf[offset + 2] << 8) | buf[offset + 3];
  h.payloadLength = payloadLength;
  h.nextHeader = buf[offset + 6];
  h.hopLimit = buf[offset + 7];
  h.srcOffset = offset + 8;
  h.dstOffset = offset + 24;
  h.payloadOffset = offset + IPV6_HEADER_LENGTH;
  return h;
}

export interface IPv6Fields {
  trafficClass?: number;
  flowLabel?: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  src: Uint8Array;
  dst: Uint8Array;
  /** Where in src/dst the 16 address bytes start (default 0). */
  srcOffset?: number;
  dstOffset?: number;
}

/** Writes the 40-byte fixed header at `offset`; returns 40. */
export function writeIPv6Header(buf: Uint8Array, offset: number, f: IPv6Fields): number {
  const tc = f.trafficClass ?? 0;
  const fl = f.flowLabel ?? 0;
  buf[offset] = 0x60 | (tc >> 4);
  buf[offset + 1] = ((tc & 0x0f) << 4) | ((fl >> 16) & 0x0f);
  buf[offset + 2] = (fl >> 8) & 0xff;
  buf[offset + 3] = fl & 0xff;
  buf[offset + 4] = f.payloadLength >> 8;
  buf[offset + 5] = f.payloadLength & 0xff;
  buf[offset + 6] = f.nextHeader;
  buf[offset + 7] = f.hopLimit;
  const so = f.srcOffset ?? 0;
  const dof = f.dstOffset ?? 0;
  for (let i = 0; i < 16; i++) {
    buf[offset + 8 + i] = f.src[so + i];
    buf[offset + 24 + i] = f.dst[dof + i];
  }
  return IPV6_HEADER_LENGTH;
}

/** A new IPv6 packet: fixed header (payload length computed) followed by `payload`. */
export function buildIPv6Packet(fields: Omit<IPv6Fields, "payloadLength">, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(IPV6_HEADER_LENGTH + payload.length);
  writeIPv6Header(out, 0, { ...fields, payloadLength: payload.length });
  out.set(payload, IPV6_HEADER_LENGTH);
  return out;
}

/** The result of walking the extension-header chain. Offsets are absolute. */
export interface IPv6Chain {
  /** Protocol of the first header that is not an extension header walked here (e.g. 6, 17, 58, 135, 59). */
  upperProtocol: number;
  /** Where it starts. For a non-initial fragment this is fragment data, not a header. */
  upperOffset: number;
  /** Offset of the byte that holds `upperProtocol` (fixed header byte 6 or an extension's byte 0). */
  upperProtocolFieldOffset: number;
  /** Fragment header (RFC 8200 §4.5) offset, or -1 when there is none. */
  fragmentHeaderOffset: number;
  /** Fragment offset in 8-octet units, M flag and identification; 0/false/0 without a fragment header. */
  fragmentOffset: number;
  moreFragments: boolean;
  identification: number;
  /** Offset of the 16-byte home address in a Home Address option (RFC 6275 §6.3), or -1. */
  homeAddressOffset: number;
  /** Offset of the 16-byte address in a type 2 routing header (RFC 6275 §6.4), or -1. */
  routingType2AddressOffset: number;
  /**
   * Segments Left of the first routing header whose Segments Left is non-zero, else of the last
   * routing header (0 without one). RFC 8200 §4.4: a node processes the first routing header
   * first, so a later one with nothing left does not make the packet final.
   */
  segmentsLeft: number;
  /** Offset of the routing header `segmentsLeft` comes from, or -1. */
  routingHeaderOffset: number;
  /** Number of extension headers walked. */
  extensionCount: number;
  /** How many of them are hop-by-hop or destination options headers. */
  optionsCount: number;
}

export function newIPv6Chain(): IPv6Chain {
  return {
    upperProtocol: 0, upperOffset: 0, upperProtocolFieldOffset: 0, fragmentHeaderOffset: -1, fragmentOffset: 0, moreFragments: false,
    identification: 0, homeAddressOffset: -1, routingType2AddressOffset: -1, segmentsLeft: 0, routingHeaderOffset: -1, extensionCount: 0, optionsCount: 0,
  };
}

/** True for the extension headers `walkIPv6Extensions` steps over. */
export function isIPv6ExtensionHeader(nextHeader: number): boolean {
  return nextHeader === IPPROTO.HOPOPTS || nextHeader === IPPROTO.ROUTING || nextHeader === IPPROTO.FRAGMENT
    || nextHeader === IPPROTO.DSTOPTS || nextHeader === IPPROTO.AH;
}

/** IPv6 option types (IANA "Destination Options and Hop-by-Hop Options"). */
export const IPV6_OPTION = { PAD1: 0, PADN: 1, TUNNEL_ENCAPSULATION_LIMIT: 4, ROUTER_ALERT: 5, HOME_ADDRESS: 201 } as const;

/** Bound on the chain, so a crafted packet cannot make the walk long. */
const MAX_EXTENSION_HEADERS = 16;

/**
 * Walks the extension headers of the IPv6 packet at `ipOffset`, whose payload ends at `end`
 * (default: from the payload length). Returns undefined if a header runs past the payload, a
 * hop-by-hop header is not first (RFC 8200 §4.1), an options area is malformed, or the chain
 * is longer than 16. A chain cut short by a non-initial fragment stops at the fragment header:
 * `upperProtocol` is the fragment header's next header and `upperOffset` the fragment data.
 * The Mobility header (135) is reported as the upper layer, since nothing follows it in practice
 * (RFC 6275 §6.1.1: its payload proto is 59). ESP (50) is opaque and is an upper layer too.
 */
export function walkIPv6Extensions(buf: Uint8Array, ipOffset: number, end?: number, out?: IPv6Chain): IPv6Chain | undefined {
  if (buf.length - ipOffset < IPV6_HEADER_LENGTH) return undefined;
  const c = out ?? newIPv6Chain();
  const stop = end ?? ipOffset + IPV6_HEADER_LENGTH + ((buf[ipOffset + 4] << 8) | buf[ipOffset + 5]);
  if (stop > buf.length) return undefined;
  c.fragmentHeaderOffset = -1;
  c.fragmentOffset = 0;
  c.moreFragments = false;
  c.identification = 0;
  c.homeAddressOffset = -1;
  c.routingType2AddressOffset = -1;
  c.segmentsLeft = 0;
  c.routingHeaderOffset = -1;
  let nh = buf[ipOffset + 6];
  let fieldOffset = ipOffset + 6;
  let off = ipOffset + IPV6_HEADER_LENGTH;
  let count = 0;
  let options = 0;
  while (isIPv6ExtensionHeader(nh)) {
    if (count === MAX_EXTENSION_HEADERS) return undefined;
    if (nh === IPPROTO.HOPOPTS && count !== 0) return undefined;
    if (off + 8 > stop) return undefined;
    const length = extensionHeaderLength(buf, off, nh);
    if (nh === IPPROTO.FRAGMENT) {
      const fo = (buf[off + 2] << 8) | buf[off + 3];
      c.fragmentHeaderOffset = off;
      c.fragmentOffset = fo >> 3;
      c.moreFragments = (fo & 1) !== 0;
      c.identification = ((buf[off + 4] << 24) | (buf[off + 5] << 16) | (buf[off + 6] << 8) | buf[off + 7]) >>> 0;
    }
    if (off + length > stop) return undefined;
    if (nh === IPPROTO.ROUTING) {
      if (c.segmentsLeft === 0) {
        c.segmentsLeft = buf[off + 3];
        c.routingHeaderOffset = off;
      }
      // RFC 6275 §6.4: type 2 carries exactly one address, Hdr Ext Len 2, Segments Left 1 (0 once processed).
      if (buf[off + 2] === 2) {
        if (buf[off + 1] !== 2) return undefined;
        c.routingType2AddressOffset = off + 8;
      }
    } else if (nh === IPPROTO.DSTOPTS || nh === IPPROTO.HOPOPTS) {
      options++;
      const hoa = findIPv6Option(buf, off, IPV6_OPTION.HOME_ADDRESS);
      if (hoa === -2) return undefined;
      // RFC 6275 §6.3: Option Data Length is 16; the option only means something in a destination options header.
      if (hoa >= 0 && nh === IPPROTO.DSTOPTS) {
        if (buf[hoa + 1] !== 16) return undefined;
        c.homeAddressOffset = hoa + 2;
      }
    }
    count++;
    fieldOffset = off;
    nh = buf[off];
    off += length;
    if (c.fragmentHeaderOffset === off - 8 && c.fragmentOffset !== 0) break;
  }
  c.upperProtocol = nh;
  c.upperOffset = off;
  c.upperProtocolFieldOffset = fieldOffset;
  c.extensionCount = count;
  c.optionsCount = options;
  return c;
}

/** The length of the extension header of type `nh` at `off` (RFC 8200 §4; RFC 4302 §2.2 for AH). */
export function extensionHeaderLength(buf: Uint8Array, off: number, nh: number): number {
  if (nh === IPPROTO.FRAGMENT) return 8;
  if (nh === IPPROTO.AH) return (buf[off + 1] + 2) << 2; // in 4-octet units, minus 2
  return (buf[off + 1] + 1) << 3;
}

/**
 * Finds an option of `type` in the hop-by-hop or destination options header at `headerOffset`
 * (RFC 8200 §4.2). Returns the offset of the option's type byte, -1 if absent, or -2 if the
 * options area is malformed (an option runs past the header).
 */
export function findIPv6Option(buf: Uint8Array, headerOffset: number, type: number): number {
  const end = headerOffset + ((buf[headerOffset + 1] + 1) << 3);
  let p = headerOffset + 2;
  while (p < end) {
    const t = buf[p];
    if (t === IPV6_OPTION.PAD1) { p++; continue; }
    if (p + 2 > end) return -2;
    const next = p + 2 + buf[p + 1];
    if (next > end) return -2;
    if (t === type) return p;
    p = next;
  }
  return -1;
}

/**
 * RFC 8200 §4.2: the node that processes an options header acts on an option it does not
 * recognise by the two highest bits of its type: 00 skip it, 01 discard the packet, 10 and 11
 * discard it (and send a Parameter Problem). Returns the type of the first option of the header
 * at `headerOffset` that is not in `known` and does not say "skip", or -1 if there is none.
 */
export function firstUnrecognisedOption(buf: Uint8Array, headerOffset: number, known: ReadonlySet<number>): number {
  const end = headerOffset + ((buf[headerOffset + 1] + 1) << 3);
  let p = headerOffset + 2;
  while (p < end) {
    const t = buf[p];
    if (t === IPV6_OPTION.PAD1) { p++; continue; }
    if (p + 2 > end) return -1;
    if (t !== IPV6_OPTION.PADN && !known.has(t) && (t >> 6) !== 0) return t;
    p += 2 + buf[p + 1];
  }
  return -1;
}

/** One option for a hop-by-hop or destination options header (alignment per RFC 8200 §4.2). */
export type IPv6Option = AlignedOption;

/**
 * Builds a hop-by-hop (next header 0) or destination options (60) header holding `options`,
 * each placed at its alignment and the whole padded to a multiple of 8 octets (RFC 8200 §4.2).
 */
export function buildOptionsHeader(nextHeader: number, options: readonly IPv6Option[]): Uint8Array {
  const { places, end } = layOutOptions(2, options);
  const out = new Uint8Array(end);
  out[0] = nextHeader;
  out[1] = (end >> 3) - 1;
  writeOptions(out, 2, options, places, end);
  return out;
}

/** The Home Address option (RFC 6275 §6.3): type 201, length 16, alignment 8n+6. */
export function homeAddressOption(homeAddress: Uint8Array): IPv6Option {
  return { type: IPV6_OPTION.HOME_ADDRESS, data: homeAddress.slice(0, 16), alignMultiple: 8, alignOffset: 6 };
}

/** A destination options header carrying only the Home Address option (24 bytes). */
export function buildHomeAddressDestinationOptions(nextHeader: number, homeAddress: Uint8Array): Uint8Array {
  return buildOptionsHeader(nextHeader, [homeAddressOption(homeAddress)]);
}

/** Type 2 routing header (RFC 6275 §6.4): Hdr Ext Len 2, Segments Left 1, one home address. */
export function buildRoutingType2(nextHeader: number, homeAddress: Uint8Array, segmentsLeft = 1): Uint8Array {
  const out = new Uint8Array(24);
  out[0] = nextHeader;
  out[1] = 2;
  out[2] = 2;
  out[3] = segmentsLeft;
  out.set(homeAddress.subarray(0, 16), 8);
  return out;
}

export const IPV6_FRAGMENT_HEADER_LENGTH = 8;

/**
 * Writes a fragment header (RFC 8200 §4.5) at `offset`. `fragmentOffset` is in 8-octet units.
 * Returns 8.
 */
export function writeFragmentHeader(buf: Uint8Array, offset: number, nextHeader: number, fragmentOffset: number, moreFragments: boolean, identification: number): number {
  buf[offset] = nextHeader;
  buf[offset + 1] = 0;
  const fo = ((fragmentOffset & 0x1fff) << 3) | (moreFragments ? 1 : 0);
  buf[offset + 2] = fo >> 8;
  buf[offset + 3] = fo & 0xff;
  buf[offset + 4] = identification >>> 24;
  buf[offset + 5] = (identification >>> 16) & 0xff;
  buf[offset + 6] = (identification >>> 8) & 0xff;
  buf[offset + 7] = identification & 0xff;
  return IPV6_FRAGMENT_HEADER_LENGTH;
}

export function buildFragmentHeader(nextHeader: number, fragmentOffset: number, moreFragments: boolean, identification: number): Uint8Array {
  const out = new Uint8Array(8);
  writeFragmentHeader(out, 0, nextHeader, fragmentOffset, moreFragments, identification);
  return out;
}

/**
 * Chains extension headers in front of an upper-layer payload: the next-header byte of each
 * header is rewritten to the following one, the last to `upperProtocol`. Returns the first
 * header's protocol (to put in the fixed header) and the bytes.
 */
export function chainExtensions(headers: readonly { protocol: number; bytes: Uint8Array }[], upperProtocol: number, payload: Uint8Array): { nextHeader: number; bytes: Uint8Array } {
  let length = payload.length;
  for (const h of headers) length += h.bytes.length;
  const out = new Uint8Array(length);
  let p = 0;
  headers.forEach((h, i) => {
    out.set(h.bytes, p);
    out[p] = i + 1 < headers.length ? headers[i + 1].protocol : upperProtocol;
    p += h.bytes.length;
  });
  out.set(payload, p);
  return { nextHeader: headers.length > 0 ? headers[0].protocol : upperProtocol, bytes: out };
}
