// The Mobility Header options (RFC 6275 §6.2): builders with the alignment each defining RFC
// states, and decoders of their data; with the authentication option of RFC 4285 and the
// DSMIPv6 IPv4 options of RFC 5555. The header itself is in mip6.ts, which re-exports these.

import { readIPv4Address, writeIPv4Address, type IPv4AddressInput } from "./ipv4.js";
import type { AlignedOption } from "./options.js";

/** IANA Mobility Options registry (RFC 6275 §6.2; RFC 4285; RFC 5555). */
export const MOBILITY_OPTION = {
  PAD1: 0,
  PADN: 1,
  BINDING_REFRESH_ADVICE: 2,
  ALTERNATE_CARE_OF_ADDRESS: 3,
  NONCE_INDICES: 4,
  BINDING_AUTHORIZATION_DATA: 5,
  MOBILE_NODE_IDENTIFIER: 8,
  /** RFC 4285 §5: Mobility Message Authentication option. */
  AUTH: 9,
  /** RFC 4285 §6: Mobility Message Identification option. */
  MESG_ID: 10,
  IPV4_HOME_ADDRESS: 29,
  IPV4_ADDRESS_ACKNOWLEDGEMENT: 30,
  NAT_DETECTION: 31,
  IPV4_CARE_OF_ADDRESS: 32,
} as const;

export interface MobilityOption {
  type: number;
  /** Offset of the option's type byte in the buffer. */
  offset: number;
  /** The option data (after type and length); a view, not a copy. */
  data: Uint8Array;
}

/** An option to build: data plus its alignment requirement xn+y (RFC 6275 §6.2). */
export type MobilityOptionInput = AlignedOption;

// Option builders. Alignments are those the defining RFC states.

/** Binding Refresh Advice (RFC 6275 §6.2.4), 2n: refresh interval in 4-second units. */
export function bindingRefreshAdviceOption(interval: number): MobilityOptionInput {
  return { type: MOBILITY_OPTION.BINDING_REFRESH_ADVICE, data: Uint8Array.of(interval >> 8, interval & 0xff), alignMultiple: 2, alignOffset: 0 };
}

/** Alternate Care-of Address (RFC 6275 §6.2.5), 8n+6. */
export function alternateCareOfAddressOption(careOfAddress: Uint8Array): MobilityOptionInput {
  return { type: MOBILITY_OPTION.ALTERNATE_CARE_OF_ADDRESS, data: careOfAddress.slice(0, 16), alignMultiple: 8, alignOffset: 6 };
}

/** Nonce Indices (RFC 6275 §6.2.6), 2n. */
export function nonceIndicesOption(homeNonceIndex: number, careOfNonceIndex: number): MobilityOptionInput {
  return { type: MOBILITY_OPTION.NONCE_INDICES, data: Uint8Array.of(homeNonceIndex >> 8, homeNonceIndex & 0xff, careOfNonceIndex >> 8, careOfNonceIndex & 0xff), alignMultiple: 2, alignOffset: 0 };
}

/** Binding Authorization Data (RFC 6275 §6.2.7), 8n+2: the 96-bit authenticator. */
export function bindingAuthorizationDataOption(authenticator: Uint8Array): MobilityOptionInput {
  return { type: MOBILITY_OPTION.BINDING_AUTHORIZATION_DATA, data: authenticator.slice(0, 12), alignMultiple: 8, alignOffset: 2 };
}

/**
 * Mobility Message Authentication option (RFC 4285 §5): subtype, Mobility SPI, authentication
 * data. Placed at 4n+1 so the SPI falls on a 4-byte boundary.
 */
export function authOption(subtype: number, spi: number, authenticationData: Uint8Array): MobilityOptionInput {
  const data = new Uint8Array(5 + authenticationData.length);
  data[0] = subtype;
  writeIPv4Address(data, 1, spi >>> 0);
  data.set(authenticationData, 5);
  return { type: MOBILITY_OPTION.AUTH, data, alignMultiple: 4, alignOffset: 1 };
}

/**
 * Mobility Message Replay Protection option (RFC 4285 §6, IANA MESG-ID-OPTION-TYPE): a 64-bit
 * timestamp in NTP format. RFC 4285 §6 states the alignment 8n+2 (scapy lays it out the same way),
 * even though that leaves the timestamp off an 8-byte boundary.
 */
export function messageIdOption(timestamp: bigint): MobilityOptionInput {
  const data = new Uint8Array(8);
  writeIPv4Address(data, 0, Number((timestamp >> 32n) & 0xffffffffn));
  writeIPv4Address(data, 4, Number(timestamp & 0xffffffffn));
  return { type: MOBILITY_OPTION.MESG_ID, data, alignMultiple: 8, alignOffset: 2 };
}

/** IPv4 Care-of Address option (RFC 5555 §3.1.3), 4n: reserved 16 bits then the address. */
export function ipv4CareOfAddressOption(careOfAddress: IPv4AddressInput): MobilityOptionInput {
  const data = new Uint8Array(6);
  writeIPv4Address(data, 2, careOfAddress);
  return { type: MOBILITY_OPTION.IPV4_CARE_OF_ADDRESS, data, alignMultiple: 4, alignOffset: 0 };
}

/** IPv4 Home Address option (RFC 5555 §3.1.1), 4n: prefix length (6 bits), P flag, address. */
export function ipv4HomeAddressOption(homeAddress: IPv4AddressInput, prefixLength = 0, requestPrefix = false): MobilityOptionInput {
  const data = new Uint8Array(6);
  data[0] = ((prefixLength & 0x3f) << 2) | (requestPrefix ? 0x02 : 0);
  writeIPv4Address(data, 2, homeAddress);
  return { type: MOBILITY_OPTION.IPV4_HOME_ADDRESS, data, alignMultiple: 4, alignOffset: 0 };
}

/** IPv4 Address Acknowledgement option (RFC 5555 §3.2.1), 4n: status, prefix length, address. */
export function ipv4AddressAcknowledgementOption(status: number, homeAddress: IPv4AddressInput, prefixLength = 0): MobilityOptionInput {
  const data = new Uint8Array(6);
  data[0] = status;
  data[1] = (prefixLength & 0x3f) << 2;
  writeIPv4Address(data, 2, homeAddress);
  return { type: MOBILITY_OPTION.IPV4_ADDRESS_ACKNOWLEDGEMENT, data, alignMultiple: 4, alignOffset: 0 };
}

/** Decoders for the option data of the options above. Return undefined on a wrong length. */
export const decodeMobilityOption = {
  alternateCareOfAddress: (o: MobilityOption): Uint8Array | undefined => (o.data.length === 16 ? o.data.slice() : undefined),
  ipv4CareOfAddress: (o: MobilityOption): number | undefined => (o.data.length === 6 ? readIPv4Address(o.data, 2) : undefined),
  ipv4HomeAddress: (o: MobilityOption) => (o.data.length === 6 ? { prefixLength: o.data[0] >> 2, requestPrefix: (o.data[0] & 0x02) !== 0, homeAddress: readIPv4Address(o.data, 2) } : undefined),
  ipv4AddressAcknowledgement: (o: MobilityOption) => (o.data.length === 6 ? { status: o.data[0], prefixLength: o.data[1] >> 2, homeAddress: readIPv4Address(o.data, 2) } : undefined),
  nonceIndices: (o: MobilityOption) => (o.data.length === 4 ? { homeNonceIndex: (o.data[0] << 8) | o.data[1], careOfNonceIndex: (o.data[2] << 8) | o.data[3] } : undefined),
  bindingRefreshAdvice: (o: MobilityOption): number | undefined => (o.data.length === 2 ? (o.data[0] << 8) | o.data[1] : undefined),
  auth: (o: MobilityOption) => (o.data.length >= 5 ? { subtype: o.data[0], spi: readIPv4Address(o.data, 1), authenticationData: o.data.slice(5) } : undefined),
  messageId: (o: MobilityOption): bigint | undefined => (o.data.length === 8 ? (BigInt(readIPv4Address(o.data, 0)) << 32n) | BigInt(readIPv4Address(o.data, 4)) : undefined),
};
