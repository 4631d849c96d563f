// The mobile node's side of a registration, as the privileged-VM agent plays it for a VM: the
// Binding Update it sends (RFC 6275 §11.7.1, RFC 4285, RFC 5555) and the check of the Binding
// Acknowledgement that answers it. The same builder, with a correspondent node as destination
// and no H flag, is the route-optimisation BU (RFC 6275 §11.7.2); note that RFC 6275 requires
// return routability (§5.2) for those, which is not implemented here.
import { parseIPv4, parseIPv6 } from "../../lib/net/address.js";
import { pseudoHeaderSum6 } from "../../dataplane/packet/checksum.js";
import { IPPROTO } from "../../dataplane/packet/ipv4.js";
import { IPV6_HEADER_LENGTH, walkIPv6Extensions } from "../../dataplane/packet/ipv6.js";
import {
  BA_STATUS, MH_TYPE, MOBILITY_OPTION, buildBindingUpdate, buildMobilityPacket, decodeMobilityOption, ipv4CareOfAddressOption, messageIdOption,
  parseMobilityHeader, verifyMhChecksum, type MobilityOptionInput,
} from "../../dataplane/packet/mip6.js";
import { ntpFromUnixMs } from "../mip4/identification.js";
import { checkMnHa, signMnHa, type Mip6SecurityAssociation } from "./auth.js";

export interface BindingUpdateParams {
  homeAddress: string;
  careOfAddress: string;
  /** The destination: the home agent, or a correspondent node when `homeRegistration` is false. */
  homeAgent: string;
  /** 0–65535; the node increments it modulo 2^16 for each BU (RFC 6275 §11.7.1). */
  sequence: number;
  /** Requested lifetime; sent in 4-second units, rounded up, at most 65535 units. 0 deregisters. */
  lifetimeS: number;
  /** With an SA, the BU carries the RFC 4285 timestamp and MN-HA authentication options. */
  sa?: Mip6SecurityAssociation;
  /** The clock for the RFC 4285 §6 timestamp. */
  nowMs: number;
  /** RFC 5555 §3.1.3: the IPv4 care-of address option (type 32). */
  careOfIPv4?: string;
  /** The H flag; default true. False for a BU to a correspondent node. */
  homeRegistration?: boolean;
  /** The A flag; default true (RFC 6275 §11.7.1: MUST for a home registration). */
  acknowledge?: boolean;
}

/**
 * The whole IPv6 packet of a Binding Update: source the care-of address, destination the home
 * agent, a Destination Options header with the Home Address option (RFC 6275 §6.3; left out when
 * the node is at home, care-of = home address), the BU with the A and H flags, then the
 * replay protection and MN-HA authentication options (RFC 4285 §6, §5; the latter last), and the
 * MH checksum over the home address as source (§6.1.1).
 */
export function buildBindingUpdatePacket(p: BindingUpdateParams): Uint8Array {
  const homeAddress = parseIPv6(p.homeAddress, "homeAddress");
  const careOfAddress = parseIPv6(p.careOfAddress, "careOfAddress");
  const destination = parseIPv6(p.homeAgent, "homeAgent");
  if (!Number.isInteger(p.sequence) || p.sequence < 0 || p.sequence > 0xffff) throw new RangeError(`sequence ${p.sequence} is not a 16-bit number`);
  if (!(p.lifetimeS >= 0)) throw new RangeError(`lifetimeS ${p.lifetimeS} is negative`);
  const fields = {
    sequence: p.sequence,
    acknowledge: p.acknowledge ?? true,
    homeRegistration: p.homeRegistration ?? true,
    lifetime: Math.min(0xffff, Math.ceil(p.lifetimeS / 4)),
  };
  const options: MobilityOptionInput[] = [];
  if (p.careOfIPv4 !== undefined) options.push(ipv4CareOfAddressOption(parseIPv4(p.careOfIPv4, "careOfIPv4").bytes));
  let mh: Uint8Array;
  if (p.sa === undefined) {
    mh = buildBindingUpdate(fields, options);
  } else {
    options.push(messageIdOption(ntpFromUnixMs(p.nowMs, 0)));
    mh = signMnHa((o) => buildBindingUpdate(fields, o), options, p.sa, careOfAddress.bytes, homeAddress.bytes);
  }
  const away = careOfAddress.text !== homeAddress.text;
  return buildMobilityPacket({ src: careOfAddress.bytes, dst: destination.bytes, ...(away ? { homeAddress: homeAddress.bytes } : {}) }, mh);
}

export interface AcknowledgementCheck {
  /** The BA status, or -1 when the packet is not a well-formed BA. */
  status: number;
  sequence: number;
  /** Granted lifetime in seconds (the BA's 4-second units × 4). */
  lifetimeS: number;
  /** True when the BA is well formed, authentic (with an SA) and accepts (status < 128). */
  ok: boolean;
  /** "malformed", "bad-checksum", "not-binding-acknowledgement", "bad-auth", or the refusal status name (e.g. "mipv6-id-mismatch"). */
  reason?: string;
  /** The RFC 4285 §6 timestamp the BA carries: ours echoed, or on 144 the home agent's clock. */
  timestamp?: bigint;
}

const STATUS_NAMES = new Map<number, string>(Object.entries(BA_STATUS).map(([name, value]) => [value, name.toLowerCase().replaceAll("_", "-")]));

/**
 * Checks a Binding Acknowledgement (a whole IPv6 packet, as it arrives at the care-of address,
 * with the type 2 routing header of RFC 6275 §6.4 when it carries one). With `sa`, the MN-HA
 * option is required and verified over the packet's destination (care-of address) and the
 * routing header's home address.
 */
export function checkAcknowledgement(packet: Uint8Array, sa?: Mip6SecurityAssociation): AcknowledgementCheck {
  const bad = (reason: string): AcknowledgementCheck => ({ status: -1, sequence: -1, lifetimeS: 0, ok: false, reason });
  const chain = packet.length >= IPV6_HEADER_LENGTH && packet[0] >> 4 === 6 ? walkIPv6Extensions(packet, 0) : undefined;
  if (chain === undefined || chain.upperProtocol !== IPPROTO.MOBILITY) return bad("malformed");
  const end = IPV6_HEADER_LENGTH + ((packet[4] << 8) | packet[5]);
  const mh = parseMobilityHeader(packet, chain.upperOffset, end - chain.upperOffset);
  if (mh === undefined) return bad("malformed");
  const source = packet.subarray(8, 24);
  const careOfAddress = packet.subarray(24, 40);
  // RFC 6275 §6.4: the routing header's address is the final destination, the home address.
  const homeAddress = chain.routingType2AddressOffset >= 0 ? packet.subarray(chain.routingType2AddressOffset, chain.routingType2AddressOffset + 16) : careOfAddress;
  if (!verifyMhChecksum(packet, mh.offset, mh.length, pseudoHeaderSum6(source, 0, homeAddress, 0, IPPROTO.MOBILITY, mh.length))) return bad("bad-checksum");
  if (mh.mhType !== MH_TYPE.BINDING_ACKNOWLEDGEMENT) return bad("not-binding-acknowledgement");
  const mesg = mh.options.find((o) => o.type === MOBILITY_OPTION.MESG_ID);
  const timestamp = mesg && decodeMobilityOption.messageId(mesg);
  const result: AcknowledgementCheck = { status: mh.status, sequence: mh.sequence, lifetimeS: mh.lifetime * 4, ok: false, ...(timestamp !== undefined ? { timestamp } : {}) };
  if (sa !== undefined && checkMnHa(packet, mh, sa, careOfAddress, homeAddress) !== "ok") return { ...result, reason: "bad-auth" };
  if (mh.status >= 128) return { ...result, reason: STATUS_NAMES.get(mh.status) ?? `status-${mh.status}` };
  return { ...result, ok: true };
}

