// Mobile IPv4 registration messages (RFC 5944 §3.3, §3.4) with their extensions (§1.9, §3.5),
// carried in UDP to port 434. These are control messages: parsing allocates freely.
import { createHmac, timingSafeEqual } from "node:crypto";
import { readIPv4Address, writeIPv4Address, type IPv4AddressInput } from "./ipv4.js";

/** RFC 5944 §3.1: registration requests go to UDP port 434. */
export const MIP4_PORT = 434;

export const MIP4_TYPE = { REGISTRATION_REQUEST: 1, REGISTRATION_REPLY: 3 } as const;

/** Extension types (RFC 5944 §3.5.2–§3.5.4). */
export const MIP4_EXTENSION = { MOBILE_HOME_AUTH: 32, MOBILE_FOREIGN_AUTH: 33, FOREIGN_HOME_AUTH: 34 } as const;

/** Registration Reply codes (RFC 5944 §3.4; 137–139 are RFC 3024's, reverse tunnelling, in the IANA registry). */
export const MIP4_REPLY_CODE = {
  ACCEPTED: 0,
  ACCEPTED_NO_SIMULTANEOUS_BINDINGS: 1,
  FA_REASON_UNSPECIFIED: 64,
  HA_REASON_UNSPECIFIED: 128,
  HA_ADMINISTRATIVELY_PROHIBITED: 129,
  HA_INSUFFICIENT_RESOURCES: 130,
  HA_MOBILE_NODE_FAILED_AUTHENTICATION: 131,
  HA_FOREIGN_AGENT_FAILED_AUTHENTICATION: 132,
  HA_REGISTRATION_IDENTIFICATION_MISMATCH: 133,
  HA_POORLY_FORMED_REQUEST: 134,
  HA_TOO_MANY_SIMULTANEOUS_BINDINGS: 135,
  HA_UNKNOWN_HOME_AGENT_ADDRESS: 136,
  HA_REVERSE_TUNNEL_UNAVAILABLE: 137,
  HA_REVERSE_TUNNEL_MANDATORY: 138,
  HA_ENCAPSULATION_UNAVAILABLE: 139,
} as const;

/** Request flag bits of RFC 5944 §3.3 (T from RFC 3024). */
export const MIP4_FLAG = { S: 0x80, B: 0x40, D: 0x20, M: 0x10, G: 0x08, T: 0x02 } as const;

export const MIP4_REQUEST_LENGTH = 24;
export const MIP4_REPLY_LENGTH = 20;

export interface Mip4Extension {
  type: number;
  /** Offset of the type byte within the message. */
  offset: number;
  /** Data (after type and length). */
  data: Uint8Array;
}

export interface Mip4RegistrationRequest {
  type: 1;
  simultaneousBindings: boolean;
  broadcast: boolean;
  decapsulationByMobileNode: boolean;
  minimalEncapsulation: boolean;
  greEncapsulation: boolean;
  reverseTunnel: boolean;
  /** Seconds; 0 deregisters, 0xffff is infinity. */
  lifetime: number;
  homeAddress: number;
  homeAgent: number;
  careOfAddress: number;
  identification: bigint;
  extensions: Mip4Extension[];
}

export interface Mip4RegistrationReply {
  type: 3;
  code: number;
  lifetime: number;
  homeAddress: number;
  homeAgent: number;
  identification: bigint;
  extensions: Mip4Extension[];
}

function readU64(buf: Uint8Array, at: number): bigint {
  return (BigInt(readIPv4Address(buf, at)) << 32n) | BigInt(readIPv4Address(buf, at + 4));
}

function writeU64(buf: Uint8Array, at: number, v: bigint): void {
  writeIPv4Address(buf, at, Number((v >> 32n) & 0xffffffffn));
  writeIPv4Address(buf, at + 4, Number(v & 0xffffffffn));
}

/** Extensions in the type-length-value form of RFC 5944 §1.9; undefined if one runs past the end. */
function parseExtensions(msg: Uint8Array, start: number): Mip4Extension[] | undefined {
  const out: Mip4Extension[] = [];
  let p = start;
  while (p < msg.length) {
    if (p + 2 > msg.length) return undefined;
    const length = msg[p + 1];
    if (p + 2 + length > msg.length) return undefined;
    out.push({ type: msg[p], offset: p, data: msg.subarray(p + 2, p + 2 + length) });
    p += 2 + length;
  }
  return out;
}

/**
 * Parses a registration message (the UDP payload). Returns undefined for another type, a
 * message shorter than its fixed part, or an extension that runs past the end.
 */
export function parseMip4(msg: Uint8Array): Mip4RegistrationRequest | Mip4RegistrationReply | undefined {
  if (msg.length < 1) return undefined;
  if (msg[0] === MIP4_TYPE.REGISTRATION_REQUEST) {
    if (msg.length < MIP4_REQUEST_LENGTH) return undefined;
    const extensions = parseExtensions(msg, MIP4_REQUEST_LENGTH);
    if (extensions === undefined) return undefined;
    const f = msg[1];
    return {
      type: 1,
      simultaneousBindings: (f & MIP4_FLAG.S) !== 0,
      broadcast: (f & MIP4_FLAG.B) !== 0,
      decapsulationByMobileNode: (f & MIP4_FLAG.D) !== 0,
      minimalEncapsulation: (f & MIP4_FLAG.M) !== 0,
      greEncapsulation: (f & MIP4_FLAG.G) !== 0,
      reverseTunnel: (f & MIP4_FLAG.T) !== 0,
      lifetime: (msg[2] << 8) | msg[3],
      homeAddress: readIPv4Address(msg, 4),
      homeAgent: readIPv4Address(msg, 8),
      careOfAddress: readIPv4Address(msg, 12),
      identification: readU64(msg, 16),
      extensions,
    };
  }
  if (msg[0] === MIP4_TYPE.REGISTRATION_REPLY) {
    if (msg.length < MIP4_REPLY_LENGTH) return undefined;
    const extensions = parseExtensions(msg, MIP4_REPLY_LENGTH);
    if (extensions === undefined) return undefined;
    return {
      type: 3,
      code: msg[1],
      lifetime: (msg[2] << 8) | msg[3],
      homeAddress: readIPv4Address(msg, 4),
      homeAgent: readIPv4Address(msg, 8),
      identification: readU64(msg, 12),
      extensions,
    };
  }
  return undefined;
}

export interface Mip4ExtensionInput {
  type: number;
  data: Uint8Array;
}

function extensionsLength(exts: readonly Mip4ExtensionInput[]): number {
  let n = 0;
  for (const e of exts) {
    if (e.data.length > 255) throw new RangeError(`MIPv4 extension ${e.type} data of ${e.data.length} bytes exceeds 255`);
    n += 2 + e.data.length;
  }
  return n;
}

function writeExtensions(out: Uint8Array, at: number, exts: readonly Mip4ExtensionInput[]): void {
  for (const e of exts) {
    out[at] = e.type;
    out[at + 1] = e.data.length;
    out.set(e.data, at + 2);
    at += 2 + e.data.length;
  }
}

export interface Mip4RequestFields {
  simultaneousBindings?: boolean;
  broadcast?: boolean;
  decapsulationByMobileNode?: boolean;
  minimalEncapsulation?: boolean;
  greEncapsulation?: boolean;
  reverseTunnel?: boolean;
  lifetime: number;
  homeAddress: IPv4AddressInput;
  homeAgent: IPv4AddressInput;
  careOfAddress: IPv4AddressInput;
  identification: bigint;
}

/** A Registration Request (RFC 5944 §3.3), the UDP payload. Add authentication with `appendMobileHomeAuth`. */
export function buildRegistrationRequest(f: Mip4RequestFields, extensions: readonly Mip4ExtensionInput[] = []): Uint8Array {
  const out = new Uint8Array(MIP4_REQUEST_LENGTH + extensionsLength(extensions));
  out[0] = MIP4_TYPE.REGISTRATION_REQUEST;
  out[1] = (f.simultaneousBindings ? MIP4_FLAG.S : 0) | (f.broadcast ? MIP4_FLAG.B : 0) | (f.decapsulationByMobileNode ? MIP4_FLAG.D : 0)
    | (f.minimalEncapsulation ? MIP4_FLAG.M : 0) | (f.greEncapsulation ? MIP4_FLAG.G : 0) | (f.reverseTunnel ? MIP4_FLAG.T : 0);
  out[2] = f.lifetime >> 8;
  out[3] = f.lifetime & 0xff;
  writeIPv4Address(out, 4, f.homeAddress);
  writeIPv4Address(out, 8, f.homeAgent);
  writeIPv4Address(out, 12, f.careOfAddress);
  writeU64(out, 16, f.identification);
  writeExtensions(out, MIP4_REQUEST_LENGTH, extensions);
  return out;
}

export interface Mip4ReplyFields {
  code: number;
  lifetime: number;
  homeAddress: IPv4AddressInput;
  homeAgent: IPv4AddressInput;
  identification: bigint;
}

/** A Registration Reply (RFC 5944 §3.4), the UDP payload. */
export function buildRegistrationReply(f: Mip4ReplyFields, extensions: readonly Mip4ExtensionInput[] = []): Uint8Array {
  const out = new Uint8Array(MIP4_REPLY_LENGTH + extensionsLength(extensions));
  out[0] = MIP4_TYPE.REGISTRATION_REPLY;
  out[1] = f.code;
  out[2] = f.lifetime >> 8;
  out[3] = f.lifetime & 0xff;
  writeIPv4Address(out, 4, f.homeAddress);
  writeIPv4Address(out, 8, f.homeAgent);
  writeU64(out, 12, f.identification);
  writeExtensions(out, MIP4_REPLY_LENGTH, extensions);
  return out;
}

/**
 * Authenticator algorithms of a mobility security association. RFC 5944 §3.5.1 makes HMAC-MD5
 * (RFC 2104) the default and lets the association name another; HMAC-SHA-256 is the one we add,
 * with its full 32-byte output (the extension's length field allows up to 251 bytes).
 */
export type Mip4AuthAlgorithm = "hmac-md5" | "hmac-sha256";

/** Authenticator bytes each algorithm puts in the extension after the SPI. */
export const MIP4_AUTHENTICATOR_LENGTH: Readonly<Record<Mip4AuthAlgorithm, number>> = { "hmac-md5": 16, "hmac-sha256": 32 };

const HASH: Readonly<Record<Mip4AuthAlgorithm, string>> = { "hmac-md5": "md5", "hmac-sha256": "sha256" };

/**
 * RFC 5944 §3.5.1: the authenticator covers the registration message, all extensions before this
 * one, and this extension's type, length and SPI.
 */
function authenticator(algorithm: Mip4AuthAlgorithm, key: Uint8Array, protectedBytes: Uint8Array): Uint8Array {
  const hash = HASH[algorithm];
  if (hash === undefined) throw new RangeError(`unknown MIPv4 authentication algorithm '${String(algorithm)}'`);
  return new Uint8Array(createHmac(hash, key).update(protectedBytes).digest());
}

/**
 * Appends a Mobile-Home Authentication Extension (type 32, RFC 5944 §3.5.2) with the given SPI,
 * its authenticator computed with `algorithm` (HMAC-MD5 by default) under `key`. It must be the
 * last extension the mobile node and home agent see (§3.6.1.3), so call this after adding every
 * other extension.
 */
export function appendMobileHomeAuth(message: Uint8Array, spi: number, key: Uint8Array, algorithm: Mip4AuthAlgorithm = "hmac-md5"): Uint8Array {
  const length = 4 + MIP4_AUTHENTICATOR_LENGTH[algorithm];
  const out = new Uint8Array(message.length + 2 + length);
  out.set(message, 0);
  const at = message.length;
  out[at] = MIP4_EXTENSION.MOBILE_HOME_AUTH;
  out[at + 1] = length;
  writeIPv4Address(out, at + 2, spi >>> 0);
  out.set(authenticator(algorithm, key, out.subarray(0, at + 6)), at + 6);
  return out;
}

/**
 * Checks the (first) Mobile-Home Authentication Extension of a parsed message: true if present,
 * its SPI is `spi`, its authenticator has the length `algorithm` gives, and it matches under `key`.
 */
export function verifyMobileHomeAuth(
  message: Uint8Array, parsed: Mip4RegistrationRequest | Mip4RegistrationReply, spi: number, key: Uint8Array, algorithm: Mip4AuthAlgorithm = "hmac-md5",
): boolean {
  const ext = parsed.extensions.find((e) => e.type === MIP4_EXTENSION.MOBILE_HOME_AUTH);
  const length = MIP4_AUTHENTICATOR_LENGTH[algorithm];
  if (ext === undefined || ext.data.length !== 4 + length) return false;
  if (readIPv4Address(ext.data, 0) !== spi >>> 0) return false;
  const expected = authenticator(algorithm, key, message.subarray(0, ext.offset + 6));
  return timingSafeEqual(expected, ext.data.subarray(4, 4 + length));
}
