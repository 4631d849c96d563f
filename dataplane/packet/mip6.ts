// The Mobile IPv6 Mobility Header (RFC 6275 §6.1, next header 135) and its options (§6.2), with
// the authentication options of RFC 4285 and the DSMIPv6 IPv4 options of RFC 5555. Option type
// numbers are the IANA "Mobility Options" registry values. Control messages: parsing allocates.
import { createHmac } from "node:crypto";
import { checksumOk, pseudoHeaderSum6, writeChecksum } from "./checksum.js";
import { IPPROTO } from "./ipv4.js";
import { IPV6_HEADER_LENGTH, buildHomeAddressDestinationOptions, buildRoutingType2, chainExtensions, writeIPv6Header } from "./ipv6.js";
import { MOBILITY_OPTION, type MobilityOption, type MobilityOptionInput } from "./mip6options.js";
import { layOutOptions, writeOptions } from "./options.js";

export * from "./mip6options.js";

/** MH Type values (RFC 6275 §6.1.2–§6.1.9). */
export const MH_TYPE = {
  BINDING_REFRESH_REQUEST: 0,
  HOME_TEST_INIT: 1,
  CARE_OF_TEST_INIT: 2,
  HOME_TEST: 3,
  CARE_OF_TEST: 4,
  BINDING_UPDATE: 5,
  BINDING_ACKNOWLEDGEMENT: 6,
  BINDING_ERROR: 7,
} as const;

/** Binding Acknowledgement status (IANA "Status Codes": RFC 6275 §6.1.8, RFC 4285, RFC 5555). */
export const BA_STATUS = {
  ACCEPTED: 0,
  ACCEPTED_PREFIX_DISCOVERY_NECESSARY: 1,
  REASON_UNSPECIFIED: 128,
  ADMINISTRATIVELY_PROHIBITED: 129,
  INSUFFICIENT_RESOURCES: 130,
  HOME_REGISTRATION_NOT_SUPPORTED: 131,
  NOT_HOME_SUBNET: 132,
  NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE: 133,
  DUPLICATE_ADDRESS_DETECTION_FAILED: 134,
  SEQUENCE_NUMBER_OUT_OF_WINDOW: 135,
  EXPIRED_HOME_NONCE_INDEX: 136,
  EXPIRED_CARE_OF_NONCE_INDEX: 137,
  EXPIRED_NONCES: 138,
  REGISTRATION_TYPE_CHANGE_DISALLOWED: 139,
  /** RFC 4285 §6: the replay protection timestamp is out of the window or not newer than the last. */
  MIPV6_ID_MISMATCH: 144,
  /** RFC 4285 §6: the replay protection option is required and was missing. */
  MIPV6_MESG_ID_REQD: 145,
  /** RFC 4285 §5: the mobility message authentication option is missing or wrong. */
  MIPV6_AUTH_FAIL: 146,
  /** RFC 5555 §4.3.1 (IANA "Invalid Care-of Address"). */
  INVALID_CARE_OF_ADDRESS: 174,
} as const;

/** Binding Error status (RFC 6275 §6.1.9). */
export const BE_STATUS = { UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION: 1, UNRECOGNIZED_MH_TYPE: 2 } as const;

/** RFC 4285 §5: subtypes of the authentication option. */
export const AUTH_SUBTYPE = { MN_HA: 1, MN_AAA: 2 } as const;

/** IPv4 Address Acknowledgement status (RFC 5555 §3.2.1). */
export const IPV4_ACK_STATUS = {
  SUCCESS: 0,
  FAILURE_REASON_UNSPECIFIED: 128,
  ADMINISTRATIVELY_PROHIBITED: 129,
  INCORRECT_IPV4_HOME_ADDRESS: 130,
  INVALID_IPV4_ADDRESS: 131,
  DYNAMIC_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_AVAILABLE: 132,
  PREFIX_ALLOCATION_UNAUTHORIZED: 133,
} as const;

/** Bytes from the start of the MH to its options, per type (RFC 6275 §6.1.2–§6.1.9). */
const OPTIONS_START: Record<number, number> = { 0: 8, 1: 16, 2: 16, 3: 24, 4: 24, 5: 12, 6: 12, 7: 24 };

interface MhCommon {
  offset: number;
  /** Whole header in bytes: (Header Len + 1) × 8. */
  length: number;
  /** RFC 6275 §6.1.1 says 59; anything else is the caller's Parameter Problem. */
  payloadProto: number;
  checksum: number;
  options: MobilityOption[];
}

export interface BindingRefreshRequest extends MhCommon { mhType: 0 }
export interface HomeTestInit extends MhCommon { mhType: 1; cookie: Uint8Array }
export interface CareOfTestInit extends MhCommon { mhType: 2; cookie: Uint8Array }
export interface HomeTest extends MhCommon { mhType: 3; nonceIndex: number; cookie: Uint8Array; keygenToken: Uint8Array }
export interface CareOfTest extends MhCommon { mhType: 4; nonceIndex: number; cookie: Uint8Array; keygenToken: Uint8Array }
export interface BindingUpdate extends MhCommon {
  mhType: 5;
  sequence: number;
  acknowledge: boolean;
  homeRegistration: boolean;
  linkLocalCompatibility: boolean;
  keyManagementCapability: boolean;
  /** In units of 4 seconds (RFC 6275 §6.1.7). */
  lifetime: number;
}
export interface BindingAcknowledgement extends MhCommon {
  mhType: 6;
  status: number;
  keyManagementCapability: boolean;
  sequence: number;
  lifetime: number;
}
export interface BindingError extends MhCommon { mhType: 7; status: number; homeAddress: Uint8Array }

export type MobilityMessage = BindingRefreshRequest | HomeTestInit | CareOfTestInit | HomeTest | CareOfTest | BindingUpdate | BindingAcknowledgement | BindingError;

/**
 * Parses the Mobility Header at `offset`; `available` is what is left of the IPv6 payload.
 * Returns undefined if the header is shorter than 8 bytes or its Header Len says more than is
 * available, the type is not 0–7, the message is shorter than its type needs (RFC 6275 §9.2:
 * such messages are discarded), or an option runs past the end. The checksum is checked with
 * `verifyMhChecksum`.
 */
export function parseMobilityHeader(buf: Uint8Array, offset: number, available = buf.length - offset): MobilityMessage | undefined {
  if (available < 8 || offset + available > buf.length) return undefined;
  const length = (buf[offset + 1] + 1) << 3;
  if (length > available) return undefined;
  const mhType = buf[offset + 2];
  const start = OPTIONS_START[mhType];
  if (start === undefined || length < start) return undefined;
  const options = parseMobilityOptions(buf, offset + start, offset + length);
  if (options === undefined) return undefined;
  const o = offset;
  const common = { offset, length, payloadProto: buf[o], checksum: (buf[o + 4] << 8) | buf[o + 5], options };
  const u16 = (at: number) => (buf[o + at] << 8) | buf[o + at + 1];
  switch (mhType) {
    case 0: return { ...common, mhType: 0 };
    case 1: return { ...common, mhType: 1, cookie: buf.slice(o + 8, o + 16) };
    case 2: return { ...common, mhType: 2, cookie: buf.slice(o + 8, o + 16) };
    case 3: return { ...common, mhType: 3, nonceIndex: u16(6), cookie: buf.slice(o + 8, o + 16), keygenToken: buf.slice(o + 16, o + 24) };
    case 4: return { ...common, mhType: 4, nonceIndex: u16(6), cookie: buf.slice(o + 8, o + 16), keygenToken: buf.slice(o + 16, o + 24) };
    case 5: {
      const f = buf[o + 8];
      return {
        ...common, mhType: 5, sequence: u16(6), acknowledge: (f & 0x80) !== 0, homeRegistration: (f & 0x40) !== 0,
        linkLocalCompatibility: (f & 0x20) !== 0, keyManagementCapability: (f & 0x10) !== 0, lifetime: u16(10),
      };
    }
    case 6: return { ...common, mhType: 6, status: buf[o + 6], keyManagementCapability: (buf[o + 7] & 0x80) !== 0, sequence: u16(8), lifetime: u16(10) };
    default: return { ...common, mhType: 7, status: buf[o + 6], homeAddress: buf.slice(o + 8, o + 24) };
  }
}

/** Options in [start, end) (RFC 6275 §6.2.1); Pad1 and PadN are skipped. */
export function parseMobilityOptions(buf: Uint8Array, start: number, end: number): MobilityOption[] | undefined {
  const out: MobilityOption[] = [];
  let p = start;
  while (p < end) {
    const t = buf[p];
    if (t === MOBILITY_OPTION.PAD1) { p++; continue; }
    if (p + 2 > end) return undefined;
    const next = p + 2 + buf[p + 1];
    if (next > end) return undefined;
    if (t !== MOBILITY_OPTION.PADN) out.push({ type: t, offset: p, data: buf.subarray(p + 2, next) });
    p = next;
  }
  return out;
}

/**
 * A Mobility Header of `mhType` whose fixed message data (after the 6-byte MH header) is
 * `fixed`, followed by `options` at their alignments, padded to a multiple of 8 octets (RFC 6275
 * §6.1.1). Payload Proto is 59 and the checksum is zero; see `setMhChecksum` and
 * `buildMobilityPacket`.
 */
export function buildMobilityHeader(mhType: number, fixed: Uint8Array, options: readonly MobilityOptionInput[] = []): Uint8Array {
  const start = 6 + fixed.length;
  const { places, end } = layOutOptions(start, options);
  if (end > 2048) throw new RangeError(`Mobility Header of ${end} bytes exceeds the 8-bit Header Len`);
  const out = new Uint8Array(end);
  out[0] = IPPROTO.NONE;
  out[1] = (end >> 3) - 1;
  out[2] = mhType;
  out.set(fixed, 6);
  writeOptions(out, start, options, places, end);
  return out;
}

export function buildBindingUpdate(f: { sequence: number; acknowledge?: boolean; homeRegistration?: boolean; linkLocalCompatibility?: boolean; keyManagementCapability?: boolean; lifetime: number }, options: readonly MobilityOptionInput[] = []): Uint8Array {
  const fixed = new Uint8Array(6);
  fixed[0] = f.sequence >> 8;
  fixed[1] = f.sequence & 0xff;
  fixed[2] = (f.acknowledge ? 0x80 : 0) | (f.homeRegistration ? 0x40 : 0) | (f.linkLocalCompatibility ? 0x20 : 0) | (f.keyManagementCapability ? 0x10 : 0);
  fixed[4] = f.lifetime >> 8;
  fixed[5] = f.lifetime & 0xff;
  return buildMobilityHeader(MH_TYPE.BINDING_UPDATE, fixed, options);
}

export function buildBindingAcknowledgement(f: { status: number; keyManagementCapability?: boolean; sequence: number; lifetime: number }, options: readonly MobilityOptionInput[] = []): Uint8Array {
  const fixed = new Uint8Array(6);
  fixed[0] = f.status;
  fixed[1] = f.keyManagementCapability ? 0x80 : 0;
  fixed[2] = f.sequence >> 8;
  fixed[3] = f.sequence & 0xff;
  fixed[4] = f.lifetime >> 8;
  fixed[5] = f.lifetime & 0xff;
  return buildMobilityHeader(MH_TYPE.BINDING_ACKNOWLEDGEMENT, fixed, options);
}

export function buildBindingError(status: number, homeAddress: Uint8Array, options: readonly MobilityOptionInput[] = []): Uint8Array {
  const fixed = new Uint8Array(18);
  fixed[0] = status;
  fixed.set(homeAddress.subarray(0, 16), 2);
  return buildMobilityHeader(MH_TYPE.BINDING_ERROR, fixed, options);
}

export function buildBindingRefreshRequest(options: readonly MobilityOptionInput[] = []): Uint8Array {
  return buildMobilityHeader(MH_TYPE.BINDING_REFRESH_REQUEST, new Uint8Array(2), options);
}

/** Home Test Init (§6.1.3) or Care-of Test Init (§6.1.4): reserved, 8-byte init cookie. */
export function buildTestInit(careOf: boolean, cookie: Uint8Array, options: readonly MobilityOptionInput[] = []): Uint8Array {
  const fixed = new Uint8Array(10);
  fixed.set(cookie.subarray(0, 8), 2);
  return buildMobilityHeader(careOf ? MH_TYPE.CARE_OF_TEST_INIT : MH_TYPE.HOME_TEST_INIT, fixed, options);
}

/** Home Test (§6.1.5) or Care-of Test (§6.1.6): nonce index, init cookie, keygen token. */
export function buildTest(careOf: boolean, nonceIndex: number, cookie: Uint8Array, keygenToken: Uint8Array, options: readonly MobilityOptionInput[] = []): Uint8Array {
  const fixed = new Uint8Array(18);
  fixed[0] = nonceIndex >> 8;
  fixed[1] = nonceIndex & 0xff;
  fixed.set(cookie.subarray(0, 8), 2);
  fixed.set(keygenToken.subarray(0, 8), 10);
  return buildMobilityHeader(careOf ? MH_TYPE.CARE_OF_TEST : MH_TYPE.HOME_TEST, fixed, options);
}

/** Checksum over the IPv6 pseudo-header (next header 135) and the whole MH (RFC 6275 §6.1.1). */
export function setMhChecksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): number {
  return writeChecksum(buf, offset, offset + length, offset + 4, pseudoSum);
}

export function verifyMhChecksum(buf: Uint8Array, offset: number, length: number, pseudoSum: number): boolean {
  return checksumOk(buf, offset, offset + length, pseudoSum);
}

export interface MobilityPacketOptions {
  src: Uint8Array;
  dst: Uint8Array;
  hopLimit?: number;
  /** Adds a destination options header with the Home Address option (a BU from a mobile node, RFC 6275 §11.7.1). */
  homeAddress?: Uint8Array;
  /** Adds a type 2 routing header carrying this home address (a BA to a mobile node, RFC 6275 §9.5.4). */
  routingHomeAddress?: Uint8Array;
}

/**
 * A full IPv6 packet carrying the Mobility Header `mh`, with the checksum set. The pseudo-header
 * uses the home address as source when a Home Address option is present (RFC 6275 §6.3) and the
 * type 2 routing header's address as the final destination (RFC 8200 §8.1).
 */
export function buildMobilityPacket(o: MobilityPacketOptions, mh: Uint8Array): Uint8Array {
  const headers: { protocol: number; bytes: Uint8Array }[] = [];
  // RFC 8200 §4.1 order: routing header before destination options for the final destination.
  if (o.routingHomeAddress) headers.push({ protocol: IPPROTO.ROUTING, bytes: buildRoutingType2(0, o.routingHomeAddress) });
  if (o.homeAddress) headers.push({ protocol: IPPROTO.DSTOPTS, bytes: buildHomeAddressDestinationOptions(0, o.homeAddress) });
  const chain = chainExtensions(headers, IPPROTO.MOBILITY, mh);
  const out = new Uint8Array(IPV6_HEADER_LENGTH + chain.bytes.length);
  writeIPv6Header(out, 0, { payloadLength: chain.bytes.length, nextHeader: chain.nextHeader, hopLimit: o.hopLimit ?? 64, src: o.src, dst: o.dst });
  out.set(chain.bytes, IPV6_HEADER_LENGTH);
  const mhOffset = out.length - mh.length;
  const src = o.homeAddress ?? o.src;
  const dst = o.routingHomeAddress ?? o.dst;
  setMhChecksum(out, mhOffset, mh.length, pseudoHeaderSum6(src, 0, dst, 0, IPPROTO.MOBILITY, mh.length));
  return out;
}

/**
 * The MN-HA authentication data of RFC 4285 §5.1: the first 96 bits of HMAC-SHA1 under the
 * shared key over care-of address | home address | the Mobility Header (offsets relative to `mh`) up to and including the
 * SPI of the authentication option, with the MH checksum taken as zero. `mh` must already hold
 * its final Header Len, i.e. be built with an AUTH option of 12 bytes of placeholder data.
 */
export function computeMnHaAuthenticator(key: Uint8Array, careOfAddress: Uint8Array, homeAddress: Uint8Array, mh: Uint8Array, authOptionOffset: number): Uint8Array {
  const covered = Uint8Array.from(mh.subarray(0, authOptionOffset + 7));
  covered[4] = 0;
  covered[5] = 0;
  const h = createHmac("sha1", key).update(careOfAddress.subarray(0, 16)).update(homeAddress.subarray(0, 16)).update(covered);
  return new Uint8Array(h.digest()).slice(0, 12);
}

/**
 * RFC 6275 §9.5.1: sequence numbers are compared modulo 2^16; `a` is newer than `b` when it lies
 * in the half of the circle after `b`.
 */
export function isNewerSequence(a: number, b: number): boolean {
  const d = (a - b) & 0xffff;
  return d !== 0 && d < 0x8000;
}
