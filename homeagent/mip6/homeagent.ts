// The protocol core of the Mobile IPv6 home agent (r2): Binding Update processing for home
// registrations (RFC 6275 §10.3.1, §10.3.2), authenticated with the MN-HA option and protected
// against replay with the timestamp option (RFC 4285 §5, §6), with the DSMIPv6 IPv4 care-of
// address (RFC 5555). Pure: bytes and times in, a Binding Acknowledgement and binding-cache
// events out. Sockets, timers, proxy ND and the tunnels belong to the caller.
import { isNewerSequence } from "../../dataplane/packet/mip6.js";
import { ipv4FromValue, ipv6FromBytes, parseCidr6, parseIPv6, prefixContains, type Cidr6, type IPv6 } from "../../lib/net/address.js";
import { pseudoHeaderSum6 } from "../../dataplane/packet/checksum.js";
import { IPPROTO } from "../../dataplane/packet/ipv4.js";
import { extensionHeaderLength, firstUnrecognisedOption, IPV6_HEADER_LENGTH, IPV6_OPTION, walkIPv6Extensions } from "../../dataplane/packet/ipv6.js";
import {
  BA_STATUS, IPV4_ACK_STATUS, MH_TYPE, MOBILITY_OPTION, buildBindingAcknowledgement, buildMobilityPacket, decodeMobilityOption,
  ipv4AddressAcknowledgementOption, messageIdOption, parseMobilityHeader, verifyMhChecksum, type BindingUpdate, type MobilityOptionInput,
} from "../../dataplane/packet/mip6.js";
import { identificationSkewS, isNewerIdentification, ntpFromUnixMs } from "../../mobility/mip4/identification.js";
import { checkMnHa, signMnHa, type Mip6SecurityAssociation } from "../../mobility/mip6/auth.js";

export type { Mip6SecurityAssociation } from "../../mobility/mip6/auth.js";

export interface Mip6HomeAgentConfig {
  /** The home agent's own address, e.g. "2001:db8:1::1"; BUs to any other address are ignored. */
  homeAgentAddress: string;
  /** The home subnet, e.g. "2001:db8:1::/64"; a home address outside it gets status 132. */
  homePrefix: string;
  /** Longest lifetime granted, in seconds; the BA carries it in 4-second units (RFC 6275 §6.1.7). */
  maxLifetimeS: number;
  /** RFC 4285 §6 "close enough" window for the timestamp, in seconds; default 7. */
  replayToleranceS?: number;
  /** MN-HA security associations, keyed by the home address in RFC 5952 text. */
  securityAssociations: Map<string, Mip6SecurityAssociation>;
}

export interface Mip6Binding {
  /** RFC 5952 text, as all addresses here. */
  homeAddress: string;
  careOfAddress: string;
  /** From the RFC 5555 IPv4 Care-of Address option, when the BU carried one. */
  careOfIPv4?: string;
  /** The sequence number of the BU that made or last refreshed the binding. */
  sequence: number;
  /** Granted lifetime, a multiple of 4 s. */
  lifetimeS: number;
  registeredAtMs: number;
  expiresAtMs: number;
  /** The RFC 4285 §6 timestamp of that BU (64-bit NTP format). */
  lastTimestamp: bigint;
}

export type Mip6BindingEvent = {
  kind: "added" | "updated" | "removed";
  binding: Mip6Binding;
  reason: "registration" | "deregistration" | "expiry";
};

export interface Mip6Outcome {
  /** The BA status decided; undefined when the packet was dropped silently. */
  status?: number;
  /**
   * The whole IPv6 packet of the BA, ready to route: from the HA to the BU's source address, with a
   * type 2 routing header holding the home address when the BU carried a Home Address option,
   * the MH checksum set, and the MN-HA authentication option when the SA is known. Absent when
   * the packet was dropped, and for an accepted BU without the A flag (RFC 6275 §10.3.1).
   */
  reply?: Uint8Array;
  /** Binding-cache changes; empty when refused, since a refused BU changes nothing. */
  events: Mip6BindingEvent[];
  /** Why it was refused or dropped; undefined when accepted. */
  reason?: Mip6RefusalReason;
}

export type Mip6RefusalReason =
  | "malformed" | "bad-checksum" | "not-for-home-agent" | "not-binding-update" | "not-home-registration"
  | "not-home-subnet" | "no-security-association" | "bad-auth" | "missing-replay-protection" | "replay"
  | "sequence-out-of-window" | "unknown-binding" | "unrecognised-option";

/** The options r2 processes in the headers before the Mobility Header; any other unknown one acts by its type bits. */
const KNOWN_OPTIONS: ReadonlySet<number> = new Set([IPV6_OPTION.HOME_ADDRESS]);

/** RFC 4285 §6: "close enough" default. */
const DEFAULT_REPLAY_TOLERANCE_S = 7;
/** BU and BA lifetimes are in units of 4 seconds (RFC 6275 §6.1.7, §6.1.8). */
const LIFETIME_UNIT_S = 4;


interface ReceivedBindingUpdate {
  packet: Uint8Array;
  bu: BindingUpdate;
  /** The IPv6 source: where the BA goes and the care-of address unless overridden. */
  source: IPv6;
  homeAddress: IPv6;
  careOfAddress: IPv6;
  careOfIPv4?: string;
  /** Whether a Home Address option carried the home address (then the BA has a type 2 RH). */
  viaHomeAddressOption: boolean;
  timestamp?: bigint;
}

export class Mip6HomeAgent {
  private readonly address: IPv6;
  private readonly prefix: Cidr6;
  private readonly maxLifetimeS: number;
  private readonly replayToleranceS: number;
  private readonly securityAssociations: Map<string, Mip6SecurityAssociation>;
  /** The binding cache, keyed by home address text. */
  private readonly cache = new Map<string, Mip6Binding>();
  /**
   * Last accepted RFC 4285 timestamp per home address. Kept after the binding goes, so that a
   * deregistration or an expiry does not reopen the door to replaying an older registration.
   */
  private readonly lastTimestamps = new Map<string, bigint>();

  constructor(config: Mip6HomeAgentConfig) {
    this.address = parseIPv6(config.homeAgentAddress, "homeAgentAddress");
    this.prefix = parseCidr6(config.homePrefix, "homePrefix");
    if (!Number.isFinite(config.maxLifetimeS) || config.maxLifetimeS < LIFETIME_UNIT_S) {
      throw new RangeError(`maxLifetimeS: ${config.maxLifetimeS} is below the 4-second lifetime unit`);
    }
    this.maxLifetimeS = config.maxLifetimeS;
    this.replayToleranceS = config.replayToleranceS ?? DEFAULT_REPLAY_TOLERANCE_S;
    // Normalise the keys so that "2001:DB8:1::0010" finds the SA of 2001:db8:1::10.
    this.securityAssociations = new Map([...config.securityAssociations].map(([hoa, sa]) => [parseIPv6(hoa, "securityAssociations").text, sa]));
  }

  /**
   * A whole IPv6 packet addressed to the HA that carries a Mobility Header (after any Destination
   * Options header with the Home Address option, RFC 6275 §6.3).
   */
  handlePacket(packet: Uint8Array, nowMs: number): Mip6Outcome {
    const received = this.receive(packet);
    if (typeof received === "string") return { events: [], reason: received };
    return this.process(received, nowMs);
  }

  /** Removes the bindings whose lifetime has run out by `nowMs` (RFC 6275 §10.3.1: lifetime). */
  expire(nowMs: number): Mip6BindingEvent[] {
    const events: Mip6BindingEvent[] = [];
    for (const [hoa, b] of this.cache) {
      if (b.expiresAtMs <= nowMs) {
        this.cache.delete(hoa);
        events.push({ kind: "removed", binding: { ...b }, reason: "expiry" });
      }
    }
    return events;
  }

  bindings(): Mip6Binding[] {
    return [...this.cache.values()].map((b) => ({ ...b }));
  }

  binding(homeAddress: string): Mip6Binding | undefined {
    let key: string;
    try {
      key = parseIPv6(homeAddress, "homeAddress").text;
    } catch {
      return undefined;
    }
    const b = this.cache.get(key);
    return b && { ...b };
  }

  /** Parses and validates the packet up to the point where a BA can be addressed. */
  private receive(packet: Uint8Array): ReceivedBindingUpdate | Mip6RefusalReason {
    if (packet.length < IPV6_HEADER_LENGTH || packet[0] >> 4 !== 6) return "malformed";
    const chain = walkIPv6Extensions(packet, 0);
    if (chain === undefined || chain.fragmentHeaderOffset >= 0) return "malformed";
    if (chain.upperProtocol !== IPPROTO.MOBILITY) return "malformed";
    // RFC 6275 §6.1.1: a Mobility Header is not sent with a type 2 routing header except in a BA.
    if (chain.routingType2AddressOffset >= 0) return "malformed";
    const source = ipv6FromBytes(packet.subarray(8, 24));
    const destination = ipv6FromBytes(packet.subarray(24, 40));
    if (destination.text !== this.address.text) return "not-for-home-agent";
    // RFC 8200 §4.2: as the packet's destination, r2 processes its options headers; an
    // unrecognised option whose type says "discard" (01, 10, 11) ends it here.
    for (let nh = packet[6], off = IPV6_HEADER_LENGTH; off < chain.upperOffset; ) {
      if ((nh === IPPROTO.DSTOPTS || nh === IPPROTO.HOPOPTS) && firstUnrecognisedOption(packet, off, KNOWN_OPTIONS) >= 0) return "unrecognised-option";
      const length = extensionHeaderLength(packet, off, nh);
      nh = packet[off];
      off += length;
    }
    const end = IPV6_HEADER_LENGTH + ((packet[4] << 8) | packet[5]);
    const mh = parseMobilityHeader(packet, chain.upperOffset, end - chain.upperOffset);
    // RFC 6275 §9.2: a Payload Proto other than 59 or a short message is not processed.
    if (mh === undefined || mh.payloadProto !== IPPROTO.NONE) return "malformed";
    // RFC 6275 §9.5.1: the home address is in the Home Address option if there is one, else the source.
    const viaHomeAddressOption = chain.homeAddressOffset >= 0;
    const homeAddress = viaHomeAddressOption ? ipv6FromBytes(packet.subarray(chain.homeAddressOffset, chain.homeAddressOffset + 16)) : source;
    // RFC 6275 §6.1.1 and §6.3: the pseudo-header carries the home address as the source.
    if (!verifyMhChecksum(packet, mh.offset, mh.length, pseudoHeaderSum6(homeAddress.bytes, 0, destination.bytes, 0, IPPROTO.MOBILITY, mh.length))) {
      return "bad-checksum";
    }
    if (mh.mhType !== MH_TYPE.BINDING_UPDATE) return "not-binding-update";
    let careOfAddress = source;
    let careOfIPv4: string | undefined;
    let timestamp: bigint | undefined;
    for (const option of mh.options) {
      if (option.type === MOBILITY_OPTION.ALTERNATE_CARE_OF_ADDRESS) {
        // RFC 6275 §6.2.5 / §9.5.1: the Alternate Care-of Address option overrides the source.
        const acoa = decodeMobilityOption.alternateCareOfAddress(option);
        if (acoa === undefined) return "malformed";
        careOfAddress = ipv6FromBytes(acoa);
      } else if (option.type === MOBILITY_OPTION.IPV4_CARE_OF_ADDRESS) {
        const v4 = decodeMobilityOption.ipv4CareOfAddress(option);
        if (v4 === undefined) return "malformed";
        careOfIPv4 = ipv4FromValue(v4).text;
      } else if (option.type === MOBILITY_OPTION.MESG_ID) {
        timestamp = decodeMobilityOption.messageId(option);
        if (timestamp === undefined) return "malformed";
      }
    }
    return { packet, bu: mh, source, homeAddress, careOfAddress, careOfIPv4, viaHomeAddressOption, timestamp };
  }

  private process(r: ReceivedBindingUpdate, nowMs: number): Mip6Outcome {
    const { bu } = r;
    // RFC 6275 §9.5.1: a correspondent registration needs the return routability options, which
    // this node does not implement; such a BU is silently discarded.
    if (!bu.homeRegistration) return { events: [], reason: "not-home-registration" };
    const hoa = r.homeAddress.text;
    const sa = this.securityAssociations.get(hoa);
    // RFC 6275 §10.3.1: a home address outside the home subnet gets 132.
    if (!prefixContains(this.prefix.network.bytes, this.prefix.length, r.homeAddress.bytes)) {
      return this.refuse(r, BA_STATUS.NOT_HOME_SUBNET, "not-home-subnet", sa);
    }
    // Without an SA for this home address we are not its home agent (RFC 6275 §10.3.1, 133), and
    // cannot sign the BA either.
    if (sa === undefined) return this.refuse(r, BA_STATUS.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE, "no-security-association", undefined);
    // RFC 4285 §5: the MN-HA option is required and checked with the SA of this home address, over
    // the care-of address the packet came from.
    if (checkMnHa(r.packet, bu, sa, r.source.bytes, r.homeAddress.bytes) !== "ok") {
      return this.refuse(r, BA_STATUS.MIPV6_AUTH_FAIL, "bad-auth", sa);
    }
    // RFC 4285 §6: we require the timestamp option; without it, 145.
    if (r.timestamp === undefined) return this.refuse(r, BA_STATUS.MIPV6_MESG_ID_REQD, "missing-replay-protection", sa);
    // RFC 4285 §6: the timestamp must be within the window of our clock and later than the last
    // accepted one; otherwise 144, and the BA carries our time so the node can correct its clock.
    const last = this.lastTimestamps.get(hoa);
    if (Math.abs(identificationSkewS(r.timestamp, nowMs)) > this.replayToleranceS || (last !== undefined && !isNewerIdentification(r.timestamp, last))) {
      return this.refuse(r, BA_STATUS.MIPV6_ID_MISMATCH, "replay", sa, { homeAgentTimestamp: ntpFromUnixMs(nowMs, 0) });
    }
    const existing = this.live(hoa, nowMs);
    // RFC 6275 §9.5.1: a sequence number not greater than the last accepted one (mod 2^16) gets
    // 135, with the last accepted sequence number in the BA.
    if (existing !== undefined && !isNewerSequence(bu.sequence, existing.sequence)) {
      return this.refuse(r, BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW, "sequence-out-of-window", sa, { lastSequence: existing.sequence });
    }
    // RFC 6275 §6.1.7 and RFC 5555 §4.3.1: lifetime 0, or a care-of address equal to the home
    // address with no IPv4 care-of address, asks for the binding to be deleted.
    const deregistration = bu.lifetime === 0 || (r.careOfAddress.text === hoa && r.careOfIPv4 === undefined);
    if (deregistration) {
      // RFC 6275 §10.3.2: no home registration entry for this node → 133.
      if (existing === undefined) return this.refuse(r, BA_STATUS.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE, "unknown-binding", sa);
      this.cache.delete(hoa);
      this.lastTimestamps.set(hoa, r.timestamp);
      const removed: Mip6Binding = { ...existing, sequence: bu.sequence, lastTimestamp: r.timestamp };
      return this.accept(r, sa, 0, [{ kind: "removed", binding: removed, reason: "deregistration" }]);
    }
    // RFC 6275 §10.3.1: the granted lifetime is at most what was asked and at most our maximum.
    const units = Math.min(bu.lifetime, Math.floor(this.maxLifetimeS / LIFETIME_UNIT_S));
    const lifetimeS = units * LIFETIME_UNIT_S;
    const binding: Mip6Binding = {
      homeAddress: hoa,
      careOfAddress: r.careOfAddress.text,
      ...(r.careOfIPv4 !== undefined ? { careOfIPv4: r.careOfIPv4 } : {}),
      sequence: bu.sequence,
      lifetimeS,
      registeredAtMs: nowMs,
      expiresAtMs: nowMs + lifetimeS * 1000,
      lastTimestamp: r.timestamp,
    };
    this.cache.set(hoa, binding);
    this.lastTimestamps.set(hoa, r.timestamp);
    return this.accept(r, sa, units, [{ kind: existing === undefined ? "added" : "updated", binding: { ...binding }, reason: "registration" }]);
  }

  /**
   * The cached binding for `hoa` unless its lifetime is over: an entry that `expire` has not swept
   * yet does not count (RFC 6275 §10.3.1 deletes it when the lifetime ends), so a BU after the
   * expiry is a new registration ("added").
   */
  private live(hoa: string, nowMs: number): Mip6Binding | undefined {
    const b = this.cache.get(hoa);
    return b !== undefined && b.expiresAtMs > nowMs ? b : undefined;
  }

  private accept(r: ReceivedBindingUpdate, sa: Mip6SecurityAssociation, lifetimeUnits: number, events: Mip6BindingEvent[]): Mip6Outcome {
    const options: MobilityOptionInput[] = [];
    // RFC 5555 §3.2.1 / §4.3.1: an IPv4 Home Address option is answered with an IPv4 Address
    // Acknowledgement. This home agent assigns no IPv4 home addresses: 132 for a dynamic request
    // (0.0.0.0), 129 for a static one. The IPv4 care-of address itself is acknowledged by the BA.
    const v4hoa = r.bu.options.find((o) => o.type === MOBILITY_OPTION.IPV4_HOME_ADDRESS);
    const requested = v4hoa && decodeMobilityOption.ipv4HomeAddress(v4hoa);
    if (requested) {
      const status = requested.homeAddress === 0 ? IPV4_ACK_STATUS.DYNAMIC_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_AVAILABLE : IPV4_ACK_STATUS.ADMINISTRATIVELY_PROHIBITED;
      options.push(ipv4AddressAcknowledgementOption(status, requested.homeAddress, requested.prefixLength));
    }
    // RFC 4285 §6: the BA echoes the timestamp of the BU it answers.
    if (r.timestamp !== undefined) options.push(messageIdOption(r.timestamp));
    const reply = r.bu.acknowledge ? this.acknowledgement(r, BA_STATUS.ACCEPTED, r.bu.sequence, lifetimeUnits, options, sa) : undefined;
    return { status: BA_STATUS.ACCEPTED, ...(reply ? { reply } : {}), events };
  }

  private refuse(
    r: ReceivedBindingUpdate,
    status: number,
    reason: Mip6RefusalReason,
    sa: Mip6SecurityAssociation | undefined,
    extra: { homeAgentTimestamp?: bigint; lastSequence?: number } = {},
  ): Mip6Outcome {
    const options: MobilityOptionInput[] = [];
    // RFC 4285 §6: on 144 the option carries our current time; otherwise echo what came.
    const timestamp = extra.homeAgentTimestamp ?? r.timestamp;
    if (timestamp !== undefined && sa !== undefined) options.push(messageIdOption(timestamp));
    // RFC 6275 §9.5.1: a refusal is acknowledged whatever the A flag says.
    const reply = this.acknowledgement(r, status, extra.lastSequence ?? r.bu.sequence, 0, options, sa);
    return { status, reply, events: [], reason };
  }

  /** RFC 6275 §9.5.4 and §10.3.1: the BA goes to the BU's source, through a type 2 RH to the home address. */
  private acknowledgement(r: ReceivedBindingUpdate, status: number, sequence: number, lifetimeUnits: number, options: MobilityOptionInput[], sa: Mip6SecurityAssociation | undefined): Uint8Array {
    const fields = { status, sequence, lifetime: lifetimeUnits };
    const mh = sa === undefined
      ? buildBindingAcknowledgement(fields, options)
      : signMnHa((o) => buildBindingAcknowledgement(fields, o), options, sa, r.source.bytes, r.homeAddress.bytes);
    return buildMobilityPacket({ src: this.address.bytes, dst: r.source.bytes, ...(r.viaHomeAddressOption ? { routingHomeAddress: r.homeAddress.bytes } : {}) }, mh);
  }
}

export { isNewerSequence };
