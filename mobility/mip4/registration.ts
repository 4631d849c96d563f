// The mobile node's side of a registration (RFC 5944 §3.6), for the privileged-VM agent that
// registers a VM on its behalf: build an authenticated request, check the reply. Pure: the
// caller sends the bytes to the home agent's UDP port 434 and hands in the time.
import {
  MIP4_EXTENSION, MIP4_REPLY_CODE, appendMobileHomeAuth, buildRegistrationRequest, parseMip4, verifyMobileHomeAuth, type Mip4AuthAlgorithm, type Mip4RequestFields,
} from "../../dataplane/packet/mip4.js";
import { ipv4FromValue, parseIPv4 } from "../../lib/net/address.js";
import { ntpFromUnixMs, unixMsFromNtp } from "./identification.js";

/** An MN–HA security association (RFC 5944 §3.5.1), the same at both ends. */
export interface Mip4SecurityAssociation {
  /** RFC 5944 §3.5.1: 0–255 are reserved, so 256 and up. */
  spi: number;
  algorithm: Mip4AuthAlgorithm;
  key: Uint8Array;
}

/** Request flags; unset ones are clear, except D, which defaults to set (co-located care-of address). */
export type Mip4RequestFlags = Partial<Pick<Mip4RequestFields,
  "simultaneousBindings" | "broadcast" | "decapsulationByMobileNode" | "minimalEncapsulation" | "greEncapsulation" | "reverseTunnel">>;

export interface Mip4RegistrationInput {
  homeAddress: string;
  homeAgent: string;
  careOfAddress: string;
  /** Seconds; 0 (or careOfAddress = homeAddress) deregisters. */
  lifetimeS: number;
  sa: Mip4SecurityAssociation;
  /** Our clock, Unix ms: the Identification is its NTP timestamp (RFC 5944 §5.7). */
  nowMs: number;
  flags?: Mip4RequestFlags;
  /** Use this Identification instead of one from `nowMs` (to keep it for checkReply, or in tests). */
  identification?: bigint;
}

/** A Registration Request (the UDP payload) with its Mobile-Home Authentication Extension under `sa`. */
export function buildAuthenticatedRequest(input: Mip4RegistrationInput): Uint8Array {
  const f = input.flags ?? {};
  if (!Number.isInteger(input.lifetimeS) || input.lifetimeS < 0 || input.lifetimeS > 0xffff) throw new RangeError(`lifetimeS ${input.lifetimeS} is not in 0–65535`);
  const request = buildRegistrationRequest({
    ...f,
    decapsulationByMobileNode: f.decapsulationByMobileNode ?? true,
    lifetime: input.lifetimeS,
    homeAddress: parseIPv4(input.homeAddress, "homeAddress").bytes,
    homeAgent: parseIPv4(input.homeAgent, "homeAgent").bytes,
    careOfAddress: parseIPv4(input.careOfAddress, "careOfAddress").bytes,
    identification: input.identification ?? ntpFromUnixMs(input.nowMs),
  });
  // §3.6.1.3: the authentication extension comes last, after everything the home agent reads.
  return appendMobileHomeAuth(request, input.sa.spi, input.sa.key, input.sa.algorithm);
}

/** The Identification of a request built above (bytes 16–23), to hand to checkReply. */
export function requestIdentification(request: Uint8Array): bigint {
  if (request.length < 24) throw new RangeError("not a Registration Request");
  return new DataView(request.buffer, request.byteOffset, request.byteLength).getBigUint64(16);
}

export interface Mip4ReplyCheck {
  code: number;
  lifetimeS: number;
  homeAddress: string;
  /** Accepted (code 0 or 1), authenticated, and the answer to our request. */
  ok: boolean;
  /** Why not ok: "malformed", "not-a-reply", "no-auth", "bad-auth", "identification-mismatch", or "refused". */
  reason?: string;
  /**
   * With an authenticated code 133 (RFC 5944 §5.7): the home agent's clock, Unix ms, from the
   * reply's high 32 bits. Register again with nowMs shifted by (homeAgentTimeMs - our time).
   */
  homeAgentTimeMs?: number;
}

/**
 * Checks a Registration Reply (the UDP payload) against the request it answers: the mobile-home
 * authenticator under `sa` (RFC 5944 §3.6.2.1), and the Identification (§5.7: the low 32 bits
 * always match the request's; the whole field does when accepted).
 */
export function checkReply(payload: Uint8Array, sa: Mip4SecurityAssociation, requestIdentification: bigint): Mip4ReplyCheck {
  const msg = parseMip4(payload);
  if (msg === undefined) return { code: -1, lifetimeS: 0, homeAddress: "", ok: false, reason: "malformed" };
  if (msg.type !== 3) return { code: -1, lifetimeS: 0, homeAddress: ipv4FromValue(msg.homeAddress).text, ok: false, reason: "not-a-reply" };
  const base = { code: msg.code, lifetimeS: msg.lifetime, homeAddress: ipv4FromValue(msg.homeAddress).text };
  if (!msg.extensions.some((e) => e.type === MIP4_EXTENSION.MOBILE_HOME_AUTH)) return { ...base, ok: false, reason: "no-auth" };
  if (!verifyMobileHomeAuth(payload, msg, sa.spi, sa.key, sa.algorithm)) return { ...base, ok: false, reason: "bad-auth" };
  if ((msg.identification & 0xffffffffn) !== (requestIdentification & 0xffffffffn)) return { ...base, ok: false, reason: "identification-mismatch" };
  const accepted = msg.code === MIP4_REPLY_CODE.ACCEPTED || msg.code === MIP4_REPLY_CODE.ACCEPTED_NO_SIMULTANEOUS_BINDINGS;
  if (accepted && msg.identification !== requestIdentification) return { ...base, ok: false, reason: "identification-mismatch" };
  if (accepted) return { ...base, ok: true };
  if (msg.code === MIP4_REPLY_CODE.HA_REGISTRATION_IDENTIFICATION_MISMATCH) {
    // Our own request's time tells which NTP era the home agent's 32-bit seconds are in.
    const ours = unixMsFromNtp(requestIdentification);
    return { ...base, ok: false, reason: "refused", homeAgentTimeMs: Math.floor(unixMsFromNtp(msg.identification & ~0xffffffffn, ours)) };
  }
  return { ...base, ok: false, reason: "refused" };
}
