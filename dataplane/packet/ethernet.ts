// Ethernet II framing (IEEE 802.3 with EtherType) with at most one IEEE 802.1Q tag.

export const ETHERTYPE = { IPV4: 0x0800, ARP: 0x0806, RARP: 0x8035, VLAN: 0x8100, IPV6: 0x86dd } as const;

export const ETHERNET_HEADER_LENGTH = 14;
export const VLAN_TAG_LENGTH = 4;

export interface EthernetHeader {
  offset: number;
  dstOffset: number;
  srcOffset: number;
  /** VLAN ID of the 802.1Q tag, or -1 when the frame is untagged. */
  vlanId: number;
  /** Priority code point and drop-eligible bit of the tag (0 when untagged). */
  priority: number;
  dropEligible: boolean;
  /** The EtherType after any tag. Values below 0x0600 are 802.3 lengths, reported as they are. */
  etherType: number;
  payloadOffset: number;
}

export function newEthernetHeader(): EthernetHeader {
  return { offset: 0, dstOffset: 0, srcOffset: 0, vlanId: -1, priority: 0, dropEligible: false, etherType: 0, payloadOffset: 0 };
}

/**
 * Parses the Ethernet header at `offset`. Returns undefined if the frame is shorter than the
 * header (or the tagged header). A second 802.1Q tag (QinQ) is not stepped over: it shows as
 * etherType 0x8100, which callers treat as "not ours".
 */
export function parseEthernet(buf: Uint8Array, offset = 0, out?: EthernetHeader): EthernetHeader | undefined {
  if (buf.length - offset < ETHERNET_HEADER_LENGTH) return undefined;
  const h = out ?? newEthernetHeader();
  h.offset = offset;
  h.dstOffset = offset;
  h.srcOffset = offset + 6;
  let type = (buf[offset + 12] << 8) | buf[offset + 13];
  let p = offset + ETHERNET_HEADER_LENGTH;
  h.vlanId = -1;
  h.priority = 0;
  h.dropEligible = false;
  if (type === ETHERTYPE.VLAN) {
    if (buf.length - offset < ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH) return undefined;
    const tci = (buf[p] << 8) | buf[p + 1];
    h.priority = tci >> 13;
    h.dropEligible = (tci & 0x1000) !== 0;
    h.vlanId = tci & 0x0fff;
    type = (buf[p + 2] << 8) | buf[p + 3];
    p += VLAN_TAG_LENGTH;
  }
  h.etherType = type;
  h.payloadOffset = p;
  return h;
}

export interface VlanTag {
  vlanId: number;
  priority?: number;
  dropEligible?: boolean;
}

/** Writes the Ethernet header (with the tag if given) at `offset`; returns 14 or 18. */
export function writeEthernetHeader(buf: Uint8Array, offset: number, dst: Uint8Array, src: Uint8Array, etherType: number, vlan?: VlanTag): number {
  for (let i = 0; i < 6; i++) {
    buf[offset + i] = dst[i];
    buf[offset + 6 + i] = src[i];
  }
  let p = offset + 12;
  if (vlan !== undefined) {
    const tci = ((vlan.priority ?? 0) << 13) | (vlan.dropEligible ? 0x1000 : 0) | (vlan.vlanId & 0x0fff);
    buf[p] = ETHERTYPE.VLAN >> 8;
    buf[p + 1] = ETHERTYPE.VLAN & 0xff;
    buf[p + 2] = tci >> 8;
    buf[p + 3] = tci & 0xff;
    p += 4;
  }
  buf[p] = etherType >> 8;
  buf[p + 1] = etherType & 0xff;
  return p + 2 - offset;
}

/** A new frame: header then payload. No padding to 60 bytes is added; NICs pad on transmit. */
export function buildEthernetFrame(dst: Uint8Array, src: Uint8Array, etherType: number, payload: Uint8Array, vlan?: VlanTag): Uint8Array {
  const hl = ETHERNET_HEADER_LENGTH + (vlan === undefined ? 0 : VLAN_TAG_LENGTH);
  const out = new Uint8Array(hl + payload.length);
  writeEthernetHeader(out, 0, dst, src, etherType, vlan);
  out.set(payload, hl);
  return out;
}

export const BROADCAST_MAC: Uint8Array = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/** "aa:bb:cc:dd:ee:ff" (or with '-') to 6 bytes; throws RangeError otherwise. Not for the hot path. */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new RangeError(`not a MAC address: '${text}'`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(buf: Uint8Array, offset = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(buf[offset + i].toString(16).padStart(2, "0"));
  return parts.join(":");
}

/** The group bit (I/G, the low bit of the first byte): multicast or broadcast. */
export function isMulticastMac(buf: Uint8Array, offset = 0): boolean {
  return (buf[offset] & 1) !== 0;
}

/** RFC 2464 §7: an IPv6 multicast address maps to 33:33 and its last four bytes. */
export function ipv6MulticastMac(address: Uint8Array, addressOffset = 0, out = new Uint8Array(6)): Uint8Array {
  out[0] = 0x33;
  out[1] = 0x33;
  out[2] = address[addressOffset + 12];
  out[3] = address[addressOffset + 13];
  out[4] = address[addressOffset + 14];
  out[5] = address[addressOffset + 15];
  return out;
}
