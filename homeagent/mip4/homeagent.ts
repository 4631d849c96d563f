// r1's registration processing: the home agent side of RFC 5944 (§3.8), as pure code. Bytes and
// the time come in, a reply and the binding changes go out; the caller owns the socket, the
// clock and the data plane (proxy ARP and the IPv4-in-IPv4 tunnel follow the events).
import {
  MIP4_EXTENSION, MIP4_REPLY_CODE, appendMobileHomeAuth, buildRegistrationReply, parseMip4, verifyMobileHomeAuth,
  type Mip4RegistrationRequest,
} from "../../dataplane/packet/mip4.js";
import { AddressError, ipv4FromValue, parseCidr4, parseIPv4, prefixContains, type Cidr4 } from "../../lib/net/address.js";
import { identificationSkewS, isNewerIdentification, resyncIdentification } from "../../mobility/mip4/identification.js";
import type { Mip4SecurityAssociation } from "../../mobility/mip4/registration.js";

export type { Mip4AuthAlgorithm } from "../../dataplane/packet/mip4.js";
export type { Mip4SecurityAssociation } from "../../mobility/mip4/registration.js";

export interface Mip4HomeAgentConfig {
  /** This agent's unicast address, e.g. "192.0.2.2". */
  homeAgentAddress: string;
  /** The home network it serves, e.g. "192.0.2.0/24"; home addresses outside it are refused (129). */
  homeNetwork: string;
  /** Longest lifetime granted, 1–65535 s; the granted lifetime is min(requested, this). */
  maxLifetimeS: number;
  /** Largest accepted difference between a request's timestamp and our clock, default 7 s (RFC 5944 §5.7). */
  replayToleranceS?: number;
  /** Mobility security associations, keyed by home address text. */
  securityAssociations: Map<string, Mip4SecurityAssociation>;
}

export interface Mip4Binding {
  homeAddress: string;
  careOfAddress: string;
  /** Granted lifetime; 65535 is infinity (RFC 5944 §3.3), with `expiresAtMs` Infinity. */
  lifetimeS: number;
  registeredAtMs: number;
  expiresAtMs: number;
  /** Identification of the request that made or last renewed this binding. */
  identification: bigint;
}

export type Mip4BindingEvent = { kind: "added" | "updated" | "removed"; binding: Mip4Binding; reason: "registration" | "deregistration" | "expiry" };

export interface Mip4RequestInput {
  /** IP source and destination of the request, and its UDP source port. */
  source: string;
  destination: string;
  sourcePort: number;
  /** The UDP payload. */
  payload: Uint8Array;
}

export interface Mip4RequestOutcome {
  /** Reply code sent (0 and 1 accept); MIP4_NO_REPLY when the message was dropped silently. */
  code: number;
  /** UDP payload of the Registration Reply (authenticated when an SA is known); undefined when dropped. */
  reply?: Uint8Array;
  /** RFC 5944 §3.8.3: IP destination = the request's source, UDP destination port = its source port. */
  replyTo: { address: string; port: number };
  /** What changed; empty when refused or dropped, which change nothing. */
  events: Mip4BindingEvent[];
  /** Why refused or dropped, for logs and metrics (one of MIP4_REFUSAL_REASONS). */
  reason?: Mip4RefusalReason;
}

/** The code of an outcome with no reply. */
export const MIP4_NO_REPLY = -1;

/** Reasons a request is refused (a reply with code ≥ 128) or dropped (no reply). */
export const MIP4_REFUSAL_REASONS = [
  // dropped silently
  "malformed", "not-a-request", "unknown-extension",
  // 131
  "no-security-association", "no-auth", "bad-auth",
  // 133
  "timestamp-out-of-window", "replay",
  // 136, 129, 139, 134
  "unknown-home-agent", "unknown-home-address", "encapsulation-unavailable", "poorly-formed",
] as const;
export type Mip4RefusalReason = (typeof MIP4_REFUSAL_REASONS)[number];

/** Extension types below 128 this agent knows (RFC 5944 §1.9: an unknown one below 128 drops the message). */
const KNOWN_EXTENSIONS: ReadonlySet<number> = new Set([MIP4_EXTENSION.MOBILE_HOME_AUTH, MIP4_EXTENSION.MOBILE_FOREIGN_AUTH, MIP4_EXTENSION.FOREIGN_HOME_AUTH]);

const INFINITE_LIFETIME = 0xffff;

/** A configuration the agent cannot run with; `field` names the key. */
export class Mip4ConfigError extends Error {
  override name = "Mip4ConfigError";
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
  }
}

interface Association extends Mip4SecurityAssociation { homeAddress: number }

export class Mip4HomeAgent {
  private readonly address: number;
  private readonly addressText: string;
  private readonly network: Cidr4;
  private readonly maxLifetimeS: number;
  private readonly toleranceS: number;
  private readonly associations = new Map<number, Association>();
  private readonly table = new Map<number, Mip4Binding>();
  /** Last accepted Identification per home address; kept after deregistration and expiry so old requests stay replays. */
  private readonly lastIdentification = new Map<number, bigint>();

  constructor(config: Mip4HomeAgentConfig) {
    const ha = checked(() => parseIPv4(config.homeAgentAddress, "homeAgentAddress"));
    this.address = ha.value;
    this.addressText = ha.text;
    this.network = checked(() => parseCidr4(config.homeNetwork, "homeNetwork"));
    if (!Number.isInteger(config.maxLifetimeS) || config.maxLifetimeS < 1 || config.maxLifetimeS > 0xffff) {
      throw new Mip4ConfigError("maxLifetimeS", `${config.maxLifetimeS} is not a whole number of seconds in 1–65535`);
    }
    this.maxLifetimeS = config.maxLifetimeS;
    this.toleranceS = config.replayToleranceS ?? 7;
    if (!(this.toleranceS > 0) || !Number.isFinite(this.toleranceS)) throw new Mip4ConfigError("replayToleranceS", `${config.replayToleranceS} is not a positive number of seconds`);
    for (const [key, sa] of config.securityAssociations) {
      const field = `securityAssociations[${key}]`;
      const hoa = checked(() => parseIPv4(key, field));
      if (!Number.isInteger(sa.spi) || sa.spi < 256 || sa.spi > 0xffffffff) throw new Mip4ConfigError(`${field}.spi`, `${sa.spi} is not in 256–4294967295 (RFC 5944 §3.5.1 reserves 0–255)`);
      if (sa.algorithm !== "hmac-md5" && sa.algorithm !== "hmac-sha256") throw new Mip4ConfigError(`${field}.algorithm`, `'${String(sa.algorithm)}' is not hmac-md5 or hmac-sha256`);
      if (!(sa.key instanceof Uint8Array) || sa.key.length === 0) throw new Mip4ConfigError(`${field}.key`, "is empty");
      if (this.associations.has(hoa.value)) throw new Mip4ConfigError(field, `${hoa.text} is given twice`);
      this.associations.set(hoa.value, { spi: sa.spi, algorithm: sa.algorithm, key: Uint8Array.from(sa.key), homeAddress: hoa.value });
    }
  }

  handleRequest(input: Mip4RequestInput, nowMs: number): Mip4RequestOutcome {
    const replyTo = { address: input.source, port: input.sourcePort };
    const drop = (reason: Mip4RefusalReason): Mip4RequestOutcome => ({ code: MIP4_NO_REPLY, replyTo, events: [], reason });
    const msg = parseMip4(input.payload);
    if (msg === undefined) return drop("malformed");
    if (msg.type !== 1) return drop("not-a-request");
    // RFC 5944 §1.9: an unrecognised extension numbered 0–127 makes the whole message silently discarded.
    if (msg.extensions.some((e) => e.type < 128 && !KNOWN_EXTENSIONS.has(e.type))) return drop("unknown-extension");

    const sa = this.associations.get(msg.homeAddress);
    const refuse = (code: number, reason: Mip4RefusalReason, identification = msg.identification, homeAgent = msg.homeAgent): Mip4RequestOutcome => ({
      code, reason, replyTo, events: [],
      reply: this.reply(sa, { code, lifetime: 0, homeAddress: msg.homeAddress, homeAgent, identification }),
    });

    // §3.8.2.1 a): exactly one authorization-enabling extension, checked under the association;
    // without an association there is nothing to check it with, and the reply goes unauthenticated.
    if (sa === undefined) return refuse(MIP4_REPLY_CODE.HA_MOBILE_NODE_FAILED_AUTHENTICATION, "no-security-association");
    const auths = msg.extensions.filter((e) => e.type === MIP4_EXTENSION.MOBILE_HOME_AUTH);
    if (auths.length !== 1) return refuse(MIP4_REPLY_CODE.HA_MOBILE_NODE_FAILED_AUTHENTICATION, "no-auth");
    if (!verifyMobileHomeAuth(input.payload, msg, sa.spi, sa.key, sa.algorithm)) return refuse(MIP4_REPLY_CODE.HA_MOBILE_NODE_FAILED_AUTHENTICATION, "bad-auth");

    // §3.8.2.1 b) and §5.7: the timestamp must be close to our clock and later than the last
    // accepted one; the 133 reply carries our time in its high 32 bits for the node to resync.
    const resync = resyncIdentification(msg.identification, nowMs);
    if (Math.abs(identificationSkewS(msg.identification, nowMs)) > this.toleranceS) {
      return refuse(MIP4_REPLY_CODE.HA_REGISTRATION_IDENTIFICATION_MISMATCH, "timestamp-out-of-window", resync);
    }
    const last = this.lastIdentification.get(msg.homeAddress);
    if (last !== undefined && !isNewerIdentification(msg.identification, last)) {
      return refuse(MIP4_REPLY_CODE.HA_REGISTRATION_IDENTIFICATION_MISMATCH, "replay", resync);
    }

    // §3.8.2 and §3.4 code 136: a request naming another home agent (such as the subnet-directed
    // broadcast of dynamic home agent discovery) is refused with our unicast address in the reply.
    if (msg.homeAgent !== this.address) return refuse(MIP4_REPLY_CODE.HA_UNKNOWN_HOME_AGENT_ADDRESS, "unknown-home-agent", msg.identification, this.address);
    // RFC 5944 has no code for "not on my home network": it is our policy, so 129.
    if (!prefixContains(this.network.network.bytes, this.network.length, ipv4FromValue(msg.homeAddress).bytes)) {
      return refuse(MIP4_REPLY_CODE.HA_ADMINISTRATIVELY_PROHIBITED, "unknown-home-address");
    }
    // §4.1: IP-in-IP is the one encapsulation we build; minimal and GRE encapsulation are refused with the
    // IANA code for an unavailable encapsulation (139, RFC 3024).
    if (msg.minimalEncapsulation || msg.greEncapsulation) return refuse(MIP4_REPLY_CODE.HA_ENCAPSULATION_UNAVAILABLE, "encapsulation-unavailable");
    if (!usableCareOf(msg)) return refuse(MIP4_REPLY_CODE.HA_POORLY_FORMED_REQUEST, "poorly-formed");

    this.lastIdentification.set(msg.homeAddress, msg.identification);
    const events: Mip4BindingEvent[] = [];
    const current = this.table.get(msg.homeAddress);
    // The binding is past its time but expire() has not run yet: it ends by expiry, not by this request.
    if (current !== undefined && current.expiresAtMs <= nowMs) {
      this.table.delete(msg.homeAddress);
      events.push({ kind: "removed", binding: current, reason: "expiry" });
    }
    const existing = this.table.get(msg.homeAddress);
    // §3.8.2.2 (with §3.6.1.2): lifetime 0 deregisters; a care-of address equal to the home
    // address means the node is home, which removes every binding (we hold at most one).
    const deregistration = msg.lifetime === 0 || msg.careOfAddress === msg.homeAddress;
    let lifetime = 0;
    if (deregistration) {
      if (existing !== undefined) {
        this.table.delete(msg.homeAddress);
        events.push({ kind: "removed", binding: existing, reason: "deregistration" });
      }
    } else {
      // §3.8.3.2: the reply's lifetime is what we grant, never more than was asked.
      lifetime = Math.min(msg.lifetime, this.maxLifetimeS);
      const binding: Mip4Binding = Object.freeze({
        homeAddress: ipv4FromValue(msg.homeAddress).text,
        careOfAddress: ipv4FromValue(msg.careOfAddress).text,
        lifetimeS: lifetime,
        registeredAtMs: nowMs,
        expiresAtMs: lifetime === INFINITE_LIFETIME ? Infinity : nowMs + lifetime * 1000,
        identification: msg.identification,
      });
      this.table.set(msg.homeAddress, binding);
      events.push({ kind: existing === undefined ? "added" : "updated", binding, reason: "registration" });
    }
    // §3.4 code 1: we keep one binding per home address, so S is honoured by saying we do not support it.
    const code = msg.simultaneousBindings ? MIP4_REPLY_CODE.ACCEPTED_NO_SIMULTANEOUS_BINDINGS : MIP4_REPLY_CODE.ACCEPTED;
    // §5.7: an accepted reply carries the request's whole Identification.
    const reply = this.reply(sa, { code, lifetime, homeAddress: msg.homeAddress, homeAgent: this.address, identification: msg.identification });
    return { code, reply, replyTo, events };
  }

  /** Removes the bindings whose time has come (expiresAtMs ≤ nowMs). */
  expire(nowMs: number): Mip4BindingEvent[] {
    const events: Mip4BindingEvent[] = [];
    for (const [hoa, binding] of this.table) {
      if (binding.expiresAtMs <= nowMs) {
        this.table.delete(hoa);
        events.push({ kind: "removed", binding, reason: "expiry" });
      }
    }
    return events;
  }

  /** Every binding held, including any past its time that expire() has not removed yet. */
  bindings(): Mip4Binding[] {
    return [...this.table.values()];
  }

  binding(homeAddress: string): Mip4Binding | undefined {
    let value: number;
    try {
      value = parseIPv4(homeAddress, "homeAddress").value;
    } catch (e) {
      if (e instanceof AddressError) return undefined;
      throw e;
    }
    return this.table.get(value);
  }

  /** This agent's address, as the replies carry it. */
  get homeAgentAddress(): string {
    return this.addressText;
  }

  private reply(sa: Association | undefined, fields: Parameters<typeof buildRegistrationReply>[0]): Uint8Array {
    const reply = buildRegistrationReply(fields);
    // §3.8.3.2: the reply is authenticated whenever we share an association with the node.
    return sa === undefined ? reply : appendMobileHomeAuth(reply, sa.spi, sa.key, sa.algorithm);
  }
}

/** A care-of address a tunnel can be built to: not 0.0.0.0, not multicast or the limited broadcast. */
function usableCareOf(msg: Mip4RegistrationRequest): boolean {
  const coa = msg.careOfAddress >>> 0;
  if (coa === msg.homeAddress) return true; // deregistration from home
  return coa !== 0 && coa < 0xe0000000;
}

function checked<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof AddressError) throw new Mip4ConfigError(e.field, e.message.slice(e.field.length + 2));
    throw e;
  }
}
