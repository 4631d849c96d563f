// One rule of the table (lib/rules/rules.ts), validated and turned from text into bytes: what
// the per-kind indexes (indexes.ts) and CompiledRules (compiled.ts) are built from. The worker
// and the offline mode also use parseRule to check a table before they load it.
import { read32 } from "../packet/checksum.js";
import { AddressError } from "../../lib/net/address.js";
import { isRfc6052Length } from "../../lib/net/rfc6052.js";
import type { Rule, TunnelType } from "../../lib/rules/rules.js";
import type { ExplicitAddressMapping, Rfc6052Prefix } from "../translate/index.js";
import type { Prefix } from "../tunnel/peers.js";
import type { Tunnel } from "../tunnel/tunnel.js";
import { addressBytes, addressOrPrefix, ipv4Bytes, ipv6Bytes, mask4, prefixBytes } from "./addresses.js";

/** A rule the table refuses; the message starts with the rule's key and field. Nothing was changed. */
export class RuleTableError extends Error {
  override name = "RuleTableError";
}

const TUNNEL_TYPES: readonly TunnelType[] = ["4in4", "6in6", "4in6", "6in4"];

/** Where a tunnel we start leaves: resolved on first use (routes are static). */
export interface TunnelRoute {
  tunnel: Tunnel;
  ifIndex: number;
  /** Next hop: the gateway or the tunnel's remote (4 or 16 bytes). */
  nextHop: Uint8Array;
}

/** Flow 3.1 j: pool IPv4 → VM IPv6 care-of address. */
export interface Reencap4 {
  key: string;
  poolIPv4: number;
  careOfIPv6: Uint8Array;
  /** undefined: not resolved yet; null: no route. */
  route?: TunnelRoute | null;
}

/** Flow 3.2 i / m: VM IPv6 care-of address → VM IPv4 care-of address. */
export interface Reencap6 {
  key: string;
  careOfIPv6: Uint8Array;
  careOfIPv4: Uint8Array;
  route?: TunnelRoute | null;
}

/**
 * An `encapsulate` rule (flows 3.1 f, l / 3.2 d, k): packets of the inner family from `source`
 * to `destination` (prefixes; length 0 = any) leave in a tunnel to `remote`.
 */
export interface Encap {
  key: string;
  tunnel: TunnelType;
  remote: Uint8Array;
  /** Outer source from the rule; undefined: the worker's default. */
  local: Uint8Array | undefined;
  source: Uint8Array;
  sourceLength: number;
  destination: Uint8Array;
  destinationLength: number;
  /** IPv4 inner only: the selectors as words and masks, for the packet path. */
  source4: number;
  sourceMask4: number;
  destination4: number;
  destinationMask4: number;
  /** Order of arrival: among equally specific rules the newest wins (make-before-break while the engine moves a VM). */
  seq: number;
  route?: TunnelRoute | null;
}

/** A rule after parseRule, by kind. */
export type Parsed =
  | { kind: "reencap-4in4-to-4in6"; rule: Rule; entry: Reencap4 }
  | { kind: "reencap-6in6-to-6in4"; rule: Rule; entry: Reencap6 }
  | { kind: "tunnel-peer"; rule: Rule; tunnel: TunnelType; peer: Uint8Array; innerSource: Prefix | null }
  | { kind: "address-mapping"; rule: Rule; eam: ExplicitAddressMapping }
  | { kind: "translation-prefix"; rule: Rule; prefix: Rfc6052Prefix }
  | { kind: "encapsulate"; rule: Rule; entry: Encap };

export type ParsedOf<K extends Parsed["kind"]> = Extract<Parsed, { kind: K }>;

function fieldError(key: string, field: string, message: string): RuleTableError {
  return new RuleTableError(`rule ${JSON.stringify(key)}: ${field}: ${message}`);
}


/** Validates one rule and turns its text into bytes. */
export function parseRule(rule: Rule): Parsed {
  const r = rule as unknown as Record<string, unknown>;
  if (typeof r !== "object" || r === null) throw new RuleTableError("a rule must be an object");
  const key = r.key;
  if (typeof key !== "string" || key === "") throw new RuleTableError(`rule of kind ${JSON.stringify(r.kind)}: key: must be a non-empty string`);
  try {
    return parseFields(rule, r, key);
  } catch (e) {
    // One try per rule rather than one closure per field: the parsers name the field themselves.
    if (e instanceof AddressError) throw fieldError(key, e.field, e.message.slice(e.field.length + 2));
    throw e;
  }
}

function parseFields(rule: Rule, r: Record<string, unknown>, key: string): Parsed {
  switch (r.kind) {
    case "reencap-4in4-to-4in6": {
      const pool = ipv4Bytes(r.poolIPv4, "poolIPv4");
      const careOf = ipv6Bytes(r.careOfIPv6, "careOfIPv6");
      return { kind: r.kind, rule, entry: { key, poolIPv4: read32(pool), careOfIPv6: careOf } };
    }
    case "reencap-6in6-to-6in4": {
      const careOf6 = ipv6Bytes(r.careOfIPv6, "careOfIPv6");
      const careOf4 = ipv4Bytes(r.careOfIPv4, "careOfIPv4");
      return { kind: r.kind, rule, entry: { key, careOfIPv6: careOf6, careOfIPv4: careOf4 } };
    }
    case "tunnel-peer": {
      const tunnel = r.tunnel as TunnelType;
      if (!TUNNEL_TYPES.includes(tunnel)) throw fieldError(key, "tunnel", `must be one of ${TUNNEL_TYPES.join(", ")}, not ${JSON.stringify(r.tunnel)}`);
      const outer6 = tunnel === "6in6" || tunnel === "4in6";
      const inner6 = tunnel === "6in6" || tunnel === "6in4";
      const peer = outer6 ? ipv6Bytes(r.peer, "peer") : ipv4Bytes(r.peer, "peer");
      let innerSource: Prefix | null = null;
      if (r.innerSource !== undefined) {
        const p = addressOrPrefix(r.innerSource, "innerSource");
        if ((p.bytes.length === 16) !== inner6) throw fieldError(key, "innerSource", `must be an IPv${inner6 ? 6 : 4} address for a ${tunnel} tunnel`);
        innerSource = { prefix: p.bytes, length: p.length };
      }
      return { kind: "tunnel-peer", rule, tunnel, peer, innerSource };
    }
    case "address-mapping": {
      const v4 = addressOrPrefix(r.ipv4, "ipv4");
      if (v4.bytes.length !== 4) throw fieldError(key, "ipv4", "must be an IPv4 address");
      const v6 = addressOrPrefix(r.ipv6, "ipv6");
      if (v6.bytes.length !== 16) throw fieldError(key, "ipv6", "must be an IPv6 address");
      // RFC 7757 §3.2: the IPv4 suffix is copied into the IPv6 suffix, which must hold it.
      if (128 - v6.length < 32 - v4.length) throw fieldError(key, "ipv6", `a /${v4.length} needs an IPv6 prefix of /${96 + v4.length} or shorter to hold its ${32 - v4.length}-bit suffix, not a /${v6.length} (RFC 7757 §3.2)`);
      return { kind: "address-mapping", rule, eam: { ipv4: read32(v4.bytes), ipv4Length: v4.length, ipv6: v6.bytes, ipv6Length: v6.length } };
    }
    case "translation-prefix": {
      const p = prefixBytes(r.prefix, "prefix", true);
      if (p.bytes.length !== 16) throw fieldError(key, "prefix", "must be an IPv6 prefix");
      if (!isRfc6052Length(p.length)) throw fieldError(key, "prefix", `length must be 32, 40, 48, 56, 64 or 96 (RFC 6052 §2.2), not ${p.length}`);
      return { kind: "translation-prefix", rule, prefix: { prefix: p.bytes, length: p.length, ipv4Translatable: translatableList(key, r.ipv4Translatable) } };
    }
    case "encapsulate":
      return { kind: "encapsulate", rule, entry: parseEncapsulate(r, key) };
    default:
      throw fieldError(key, "kind", `unknown rule kind ${JSON.stringify(r.kind)}`);
  }
}

/** `ipv4Translatable` of a translation-prefix rule: IPv4 prefixes (RFC 6052 §2); absent: none. */
function translatableList(key: string, v: unknown): { network: number; length: number }[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw fieldError(key, "ipv4Translatable", "must be a list of IPv4 prefixes");
  return v.map((text, i) => {
    const field = `ipv4Translatable[${i}]`;
    const p = prefixBytes(text, field, true);
    if (p.bytes.length !== 4) throw fieldError(key, field, "must be an IPv4 prefix");
    return { network: read32(p.bytes), length: p.length };
  });
}

/** Why an outer endpoint cannot be one, or undefined (RFC 1812 §5.3.7, RFC 4291 §2.5.2, §2.7). */
function notUnicast(a: Uint8Array): string | undefined {
  if (a.length === 4) {
    if (a[0] >= 224) return "a multicast or reserved address";
    if (a[0] === 0 || a[0] === 127) return "a \"this network\" or loopback address";
    return undefined;
  }
  if (a[0] === 0xff) return "a multicast address";
  let zero = true;
  for (let i = 0; i < 15; i++) if (a[i] !== 0) zero = false;
  if (zero && a[15] <= 1) return "the unspecified or loopback address";
  return undefined;
}

function parseEncapsulate(r: Record<string, unknown>, key: string): Encap {
  const tunnel = r.tunnel as TunnelType;
  if (!TUNNEL_TYPES.includes(tunnel)) throw fieldError(key, "tunnel", `must be one of ${TUNNEL_TYPES.join(", ")}, not ${JSON.stringify(r.tunnel)}`);
  const outer6 = tunnel === "6in6" || tunnel === "4in6";
  const inner6 = tunnel === "6in6" || tunnel === "6in4";
  const endpoint = (field: "remote" | "local"): Uint8Array => {
    if (typeof r[field] !== "string") throw fieldError(key, field, `must be an IPv${outer6 ? 6 : 4} address (the outer ${field === "remote" ? "destination" : "source"}), not ${JSON.stringify(r[field])}`);
    const a = addressBytes(r[field], field);
    if ((a.length === 16) !== outer6) throw fieldError(key, field, `must be an IPv${outer6 ? 6 : 4} address for a ${tunnel} tunnel (its outer family)`);
    const why = notUnicast(a);
    if (why !== undefined) throw fieldError(key, field, `must be a unicast address, not ${why}`);
    return a;
  };
  const remote = endpoint("remote");
  const local = r.local === undefined ? undefined : endpoint("local");
  const selector = (field: "innerSource" | "innerDestination"): { bytes: Uint8Array; length: number } => {
    if (r[field] === undefined) return { bytes: new Uint8Array(inner6 ? 16 : 4), length: 0 };
    const p = addressOrPrefix(r[field], field);
    if ((p.bytes.length === 16) !== inner6) throw fieldError(key, field, `must be an IPv${inner6 ? 6 : 4} address or prefix for a ${tunnel} tunnel (its inner family)`);
    return p;
  };
  const source = selector("innerSource");
  const destination = selector("innerDestination");
  if (r.vmId !== undefined && typeof r.vmId !== "string") throw fieldError(key, "vmId", "must be a string");
  const v4 = !inner6;
  return {
    key, tunnel, remote, local,
    source: source.bytes, sourceLength: source.length,
    destination: destination.bytes, destinationLength: destination.length,
    source4: v4 ? read32(source.bytes) : 0, sourceMask4: v4 ? mask4(source.length) : 0,
    destination4: v4 ? read32(destination.bytes) : 0, destinationMask4: v4 ? mask4(destination.length) : 0,
    seq: 0,
  };
}
