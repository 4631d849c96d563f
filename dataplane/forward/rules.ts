// The rule table (lib/rules/rules.ts) compiled into lookup structures the packet path reads with
// one Map probe per question: "is this a pool address being re-encapsulated?", "is this outer
// source a tunnel peer of this kind?", "is this an explicitly mapped IPv4 address?", "does an
// encapsulate rule hold this source?" (a probe by source address, then a short prefix list). A snapshot
// builds a new `CompiledRules`; a delta changes only the entries of the rules it names (the
// translator's AddressMapping is rebuilt when, and only when, mapping rules change).
import { AddressError } from "../../lib/net/address.js";
import { isRfc6052Length } from "../../lib/net/rfc6052.js";
import type { Rule, TunnelType } from "../../lib/rules/rules.js";
import { AddressMapping, AddressMappingError, type ExplicitAddressMapping, type Rfc6052Prefix } from "../translate/index.js";
import { TunnelPeerTable, type Prefix } from "../tunnel/peers.js";
import type { Tunnel } from "../tunnel/tunnel.js";
import { Ipv6Map } from "./addressmap.js";
import { addressBytes, addressOrPrefix, inPrefix6, ipv4Bytes, ipv6Bytes, mask4, prefixBytes, word4 } from "./addresses.js";

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

type Parsed =
  | { kind: "reencap-4in4-to-4in6"; rule: Rule; entry: Reencap4 }
  | { kind: "reencap-6in6-to-6in4"; rule: Rule; entry: Reencap6 }
  | { kind: "tunnel-peer"; rule: Rule; tunnel: TunnelType; peer: Uint8Array; innerSource: Prefix | null }
  | { kind: "address-mapping"; rule: Rule; eam: ExplicitAddressMapping }
  | { kind: "translation-prefix"; rule: Rule; prefix: Rfc6052Prefix }
  | { kind: "encapsulate"; rule: Rule; entry: Encap };

function hex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  return s;
}

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
      return { kind: r.kind, rule, entry: { key, poolIPv4: word4(pool), careOfIPv6: careOf } };
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
      // RFC 7757 §3.1: the suffixes have the same length.
      if (32 - v4.length !== 128 - v6.length) throw fieldError(key, "ipv6", `a /${v4.length} maps to a /${96 + v4.length}, not a /${v6.length} (RFC 7757 §3.1)`);
      return { kind: "address-mapping", rule, eam: { ipv4: word4(v4.bytes), ipv4Length: v4.length, ipv6: v6.bytes, ipv6Length: v6.length } };
    }
    case "translation-prefix": {
      const p = prefixBytes(r.prefix, "prefix", true);
      if (p.bytes.length !== 16) throw fieldError(key, "prefix", "must be an IPv6 prefix");
      if (!isRfc6052Length(p.length)) throw fieldError(key, "prefix", `length must be 32, 40, 48, 56, 64 or 96 (RFC 6052 §2.2), not ${p.length}`);
      return { kind: "translation-prefix", rule, prefix: { prefix: p.bytes, length: p.length } };
    }
    case "encapsulate":
      return { kind: "encapsulate", rule, entry: parseEncapsulate(r, key) };
    default:
      throw fieldError(key, "kind", `unknown rule kind ${JSON.stringify(r.kind)}`);
  }
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
    source4: v4 ? word4(source.bytes) : 0, sourceMask4: v4 ? mask4(source.length) : 0,
    destination4: v4 ? word4(destination.bytes) : 0, destinationMask4: v4 ? mask4(destination.length) : 0,
    seq: 0,
  };
}

/** More specific first: longer source, then longer destination, then the newer rule. */
function moreSpecific(a: Encap, b: Encap): number {
  return b.sourceLength - a.sourceLength || b.destinationLength - a.destinationLength || b.seq - a.seq;
}

function withEntry(list: readonly Encap[] | undefined, e: Encap): Encap[] {
  const next = list === undefined ? [e] : [...list, e];
  next.sort(moreSpecific);
  return next;
}

interface PeerGroup {
  address: Uint8Array;
  /** Rules for this peer without an inner source restriction. */
  unrestricted: number;
  /** Rule key → inner source prefix, for the rules with one (made on first use). */
  restricted: Map<string, Prefix> | undefined;
}

const INNER_4: readonly (4 | 6)[] = Object.freeze([4]);
const INNER_6: readonly (4 | 6)[] = Object.freeze([6]);

/** Translation settings that do not come from rules (worker configuration). */
export type MappingBuilder = (mapping: AddressMapping) => void;

export class CompiledRules {
  revision: bigint;
  readonly byKey = new Map<string, Parsed>();
  /** Pool IPv4 (uint32) → rules; the last one is in force (several only while the engine moves it). */
  readonly reencap4 = new Map<number, Reencap4[]>();
  readonly reencap6 = new Ipv6Map<Reencap6[]>();
  readonly peers: Record<TunnelType, TunnelPeerTable> = { "4in4": new TunnelPeerTable(), "6in6": new TunnelPeerTable(), "4in6": new TunnelPeerTable(), "6in4": new TunnelPeerTable() };
  private readonly peerGroups: Record<TunnelType, PeerGroups> = { "4in4": new PeerGroups(), "6in6": new PeerGroups(), "4in6": new PeerGroups(), "6in4": new PeerGroups() };
  /** Single-address explicit mappings by IPv4 / IPv6 (reference counts), plus the rare prefix ones. */
  readonly eamHosts4 = new Map<number, number>();
  readonly eamHosts6 = new Ipv6Map<number>();
  eamNets4: { network: number; mask: number }[] = [];
  /** The translator's mapping, rebuilt when a mapping rule changes. */
  mapping: AddressMapping = AddressMapping.build({});
  private readonly eams = new Map<string, ExplicitAddressMapping>();
  private readonly prefixes = new Map<string, Rfc6052Prefix>();
  /**
   * Encapsulate rules by inner family: host sources (/32, /128: one per VM, the bulk of a big
   * table) by address, the rest (prefixes, "any") in one list; each list most specific first.
   */
  readonly encapHosts4 = new Map<number, Encap[]>();
  readonly encapHosts6 = new Ipv6Map<Encap[]>();
  encapNets4: Encap[] = [];
  encapNets6: Encap[] = [];
  /** Number of encapsulate rules per inner family: with none, the packet path skips the lookup. */
  encapCount4 = 0;
  encapCount6 = 0;
  private encapSeq = 0;

  private constructor(revision: bigint) {
    this.revision = revision;
  }

  static empty(): CompiledRules {
    return new CompiledRules(-1n);
  }

  /** A whole snapshot; throws RuleTableError. */
  static compile(revision: bigint, rules: readonly Rule[]): CompiledRules {
    const c = new CompiledRules(revision);
    if (!Array.isArray(rules)) throw new RuleTableError("rules: must be an array");
    const parsed: Parsed[] = new Array(rules.length);
    for (let i = 0; i < rules.length; i++) {
      const p = parseRule(rules[i]);
      if (c.byKey.has(p.rule.key)) throw new RuleTableError(`rule ${JSON.stringify(p.rule.key)}: key: appears twice in the table`);
      c.byKey.set(p.rule.key, p);
      parsed[i] = p;
      if (p.kind === "address-mapping") c.eams.set(p.rule.key, p.eam);
      else if (p.kind === "translation-prefix") c.prefixes.set(p.rule.key, p.prefix);
    }
    c.mapping = buildMapping(c.eams, c.prefixes);
    const touched = new Map<PeerGroup, TunnelType>();
    for (const p of parsed) c.add(p, touched);
    c.refreshPeers(touched);
    return c;
  }

  get size(): number {
    return this.byKey.size;
  }

  /**
   * Removes `removes`, then adds or replaces `updates`, as one step: everything is validated
   * (and the new mapping built) before anything changes, so a RuleTableError leaves the table as
   * it was. Removing an unknown key is not an error (deltas are idempotent).
   */
  applyDelta(revision: bigint, updates: readonly Rule[], removes: readonly string[]): void {
    const parsed = updates.map(parseRule);
    const seen = new Set<string>();
    for (const p of parsed) {
      if (seen.has(p.rule.key)) throw new RuleTableError(`rule ${JSON.stringify(p.rule.key)}: key: appears twice in the delta`);
      seen.add(p.rule.key);
    }
    const gone = new Set<string>(removes);
    for (const p of parsed) gone.add(p.rule.key);
    const touchesMapping = (k: string): boolean => this.eams.has(k) || this.prefixes.has(k);
    let mappingChanged = parsed.some((p) => p.kind === "address-mapping" || p.kind === "translation-prefix");
    for (const k of gone) if (touchesMapping(k)) mappingChanged = true;
    let mapping = this.mapping;
    let eams = this.eams;
    let prefixes = this.prefixes;
    if (mappingChanged) {
      eams = new Map(this.eams);
      prefixes = new Map(this.prefixes);
      for (const k of gone) {
        eams.delete(k);
        prefixes.delete(k);
      }
      for (const p of parsed) {
        if (p.kind === "address-mapping") eams.set(p.rule.key, p.eam);
        else if (p.kind === "translation-prefix") prefixes.set(p.rule.key, p.prefix);
      }
      mapping = buildMapping(eams, prefixes);
    }
    // Nothing below throws.
    const touched = new Map<PeerGroup, TunnelType>();
    for (const k of gone) {
      const old = this.byKey.get(k);
      if (old !== undefined) this.remove(old, touched);
    }
    if (mappingChanged) {
      this.mapping = mapping;
      replaceMap(this.eams, eams);
      replaceMap(this.prefixes, prefixes);
    }
    for (const p of parsed) this.add(p, touched);
    this.refreshPeers(touched);
    this.revision = revision;
  }

  /** Each peer group changed by a batch of adds/removes is rebuilt once, not once per rule. */
  private refreshPeers(touched: Map<PeerGroup, TunnelType>): void {
    for (const [g, tunnel] of touched) {
      if (g.unrestricted === 0 && (g.restricted === undefined || g.restricted.size === 0)) {
        if (this.peerGroups[tunnel].get(g.address) === g) {
          this.peerGroups[tunnel].delete(g.address);
          this.peers[tunnel].delete(g.address);
        }
      } else {
        this.refreshPeer(tunnel, g);
      }
    }
  }

  private add(p: Parsed, touched: Map<PeerGroup, TunnelType>): void {
    this.byKey.set(p.rule.key, p);
    switch (p.kind) {
      case "reencap-4in4-to-4in6": {
        const list = this.reencap4.get(p.entry.poolIPv4);
        if (list === undefined) this.reencap4.set(p.entry.poolIPv4, [p.entry]);
        else list.push(p.entry);
        break;
      }
      case "reencap-6in6-to-6in4": {
        const list = this.reencap6.get(p.entry.careOfIPv6, 0);
        if (list === undefined) this.reencap6.set(p.entry.careOfIPv6, [p.entry]);
        else list.push(p.entry);
        break;
      }
      case "tunnel-peer": {
        const groups = this.peerGroups[p.tunnel];
        let g = groups.get(p.peer);
        if (g === undefined) groups.set(p.peer, (g = { address: p.peer, unrestricted: 0, restricted: undefined }));
        if (p.innerSource === null) g.unrestricted++;
        else (g.restricted ??= new Map()).set(p.rule.key, p.innerSource);
        touched.set(g, p.tunnel);
        break;
      }
      case "address-mapping": {
        const e = p.eam;
        if (e.ipv4Length === 32) {
          this.eamHosts4.set(e.ipv4, (this.eamHosts4.get(e.ipv4) ?? 0) + 1);
          this.eamHosts6.set(e.ipv6, (this.eamHosts6.get(e.ipv6, 0) ?? 0) + 1);
        } else {
          this.eamNets4 = [...this.eamNets4, { network: (e.ipv4 & mask4(e.ipv4Length)) >>> 0, mask: mask4(e.ipv4Length) }];
        }
        break;
      }
      case "translation-prefix":
        break;
      case "encapsulate": {
        const e = p.entry;
        e.seq = ++this.encapSeq;
        if (e.source.length === 4) {
          this.encapCount4++;
          if (e.sourceLength === 32) this.encapHosts4.set(e.source4, withEntry(this.encapHosts4.get(e.source4), e));
          else this.encapNets4 = withEntry(this.encapNets4, e);
        } else {
          this.encapCount6++;
          if (e.sourceLength === 128) this.encapHosts6.set(e.source, withEntry(this.encapHosts6.get(e.source, 0), e));
          else this.encapNets6 = withEntry(this.encapNets6, e);
        }
        break;
      }
    }
  }

  private remove(p: Parsed, touched: Map<PeerGroup, TunnelType>): void {
    this.byKey.delete(p.rule.key);
    switch (p.kind) {
      case "reencap-4in4-to-4in6": {
        const list = this.reencap4.get(p.entry.poolIPv4);
        if (list === undefined) break;
        const rest = list.filter((e) => e !== p.entry);
        if (rest.length === 0) this.reencap4.delete(p.entry.poolIPv4);
        else this.reencap4.set(p.entry.poolIPv4, rest);
        break;
      }
      case "reencap-6in6-to-6in4": {
        const list = this.reencap6.get(p.entry.careOfIPv6, 0);
        if (list === undefined) break;
        const rest = list.filter((e) => e !== p.entry);
        if (rest.length === 0) this.reencap6.delete(p.entry.careOfIPv6);
        else this.reencap6.set(p.entry.careOfIPv6, rest);
        break;
      }
      case "tunnel-peer": {
        const groups = this.peerGroups[p.tunnel];
        const g = groups.get(p.peer);
        if (g === undefined) break;
        if (p.innerSource === null) g.unrestricted--;
        else g.restricted?.delete(p.rule.key);
        touched.set(g, p.tunnel);
        break;
      }
      case "address-mapping": {
        const e = p.eam;
        if (e.ipv4Length === 32) {
          const n4 = (this.eamHosts4.get(e.ipv4) ?? 1) - 1;
          if (n4 <= 0) this.eamHosts4.delete(e.ipv4);
          else this.eamHosts4.set(e.ipv4, n4);
          const n6 = (this.eamHosts6.get(e.ipv6, 0) ?? 1) - 1;
          if (n6 <= 0) this.eamHosts6.delete(e.ipv6);
          else this.eamHosts6.set(e.ipv6, n6);
        } else {
          const network = (e.ipv4 & mask4(e.ipv4Length)) >>> 0;
          const i = this.eamNets4.findIndex((n) => n.network === network && n.mask === mask4(e.ipv4Length));
          if (i >= 0) this.eamNets4 = this.eamNets4.filter((_, j) => j !== i);
        }
        break;
      }
      case "translation-prefix":
        break;
      case "encapsulate": {
        const e = p.entry;
        if (e.source.length === 4) {
          this.encapCount4--;
          if (e.sourceLength === 32) {
            const rest = (this.encapHosts4.get(e.source4) ?? []).filter((x) => x !== e);
            if (rest.length === 0) this.encapHosts4.delete(e.source4);
            else this.encapHosts4.set(e.source4, rest);
          } else {
            this.encapNets4 = this.encapNets4.filter((x) => x !== e);
          }
        } else {
          this.encapCount6--;
          if (e.sourceLength === 128) {
            const rest = (this.encapHosts6.get(e.source, 0) ?? []).filter((x) => x !== e);
            if (rest.length === 0) this.encapHosts6.delete(e.source);
            else this.encapHosts6.set(e.source, rest);
          } else {
            this.encapNets6 = this.encapNets6.filter((x) => x !== e);
          }
        }
        break;
      }
    }
  }

  /**
   * One peer entry per (tunnel kind, outer address), from all its rules: RFC 4213 §3.6 ingress
   * filtering applies only when every rule for that peer restricts the inner source (the union
   * of their prefixes); one unrestricted rule lifts it.
   */
  private refreshPeer(tunnel: TunnelType, g: PeerGroup): void {
    const inner = tunnel === "4in4" || tunnel === "4in6" ? INNER_4 : INNER_6;
    const sources = g.unrestricted > 0 || g.restricted === undefined ? undefined : [...g.restricted.values()];
    this.peers[tunnel].set({ address: g.address, innerFamilies: inner, innerSources: sources });
  }

  /** The reencap-4in4-to-4in6 rule in force for this pool address (uint32). */
  reencap4For(pool: number): Reencap4 | undefined {
    const list = this.reencap4.get(pool);
    return list === undefined ? undefined : list[list.length - 1];
  }

  /** The reencap-6in6-to-6in4 rule in force for the IPv6 address at buf[off..]. */
  reencap6For(buf: Uint8Array, off: number): Reencap6 | undefined {
    const list = this.reencap6.get(buf, off);
    return list === undefined ? undefined : list[list.length - 1];
  }

  /** Whether the IPv4 address (uint32) is the IPv4 side of an explicit address mapping. */
  isMappedIPv4(a: number): boolean {
    if (this.eamHosts4.has(a)) return true;
    for (const n of this.eamNets4) if (((a & n.mask) >>> 0) === n.network) return true;
    return false;
  }

  /**
   * The encapsulate rule for an IPv4 packet from `src` to `dst` (uint32): the most specific one
   * whose selectors hold, host sources before prefixes (moreSpecific).
   */
  encap4For(src: number, dst: number): Encap | undefined {
    const hosts = this.encapHosts4.get(src);
    if (hosts !== undefined) {
      for (let i = 0; i < hosts.length; i++) if (((dst & hosts[i].destinationMask4) >>> 0) === hosts[i].destination4) return hosts[i];
    }
    const nets = this.encapNets4;
    for (let i = 0; i < nets.length; i++) {
      const e = nets[i];
      if (((src & e.sourceMask4) >>> 0) === e.source4 && ((dst & e.destinationMask4) >>> 0) === e.destination4) return e;
    }
    return undefined;
  }

  /** The same for an IPv6 packet (source at pkt[8..24], destination at pkt[24..40]). */
  encap6For(pkt: Uint8Array): Encap | undefined {
    const hosts = this.encapHosts6.get(pkt, 8);
    if (hosts !== undefined) {
      for (let i = 0; i < hosts.length; i++) if (inPrefix6(hosts[i].destination, hosts[i].destinationLength, pkt, 24)) return hosts[i];
    }
    const nets = this.encapNets6;
    for (let i = 0; i < nets.length; i++) {
      const e = nets[i];
      if (inPrefix6(e.source, e.sourceLength, pkt, 8) && inPrefix6(e.destination, e.destinationLength, pkt, 24)) return e;
    }
    return undefined;
  }

  rules(): Rule[] {
    return [...this.byKey.values()].map((p) => p.rule);
  }
}

/** Peer groups of one tunnel kind, by outer address (4 or 16 bytes). */
class PeerGroups {
  private readonly v4 = new Map<number, PeerGroup>();
  private readonly v6 = new Ipv6Map<PeerGroup>();
  get(a: Uint8Array): PeerGroup | undefined {
    return a.length === 4 ? this.v4.get(word4(a)) : this.v6.get(a, 0);
  }
  set(a: Uint8Array, g: PeerGroup): void {
    if (a.length === 4) this.v4.set(word4(a), g);
    else this.v6.set(a, g);
  }
  delete(a: Uint8Array): void {
    if (a.length === 4) this.v4.delete(word4(a));
    else this.v6.delete(a);
  }
}

function replaceMap<K, V>(target: Map<K, V>, source: Map<K, V>): void {
  target.clear();
  for (const [k, v] of source) target.set(k, v);
}

function buildMapping(eams: Map<string, ExplicitAddressMapping>, prefixes: Map<string, Rfc6052Prefix>): AddressMapping {
  try {
    return AddressMapping.build({ eam: [...eams.values()], rfc6052: [...prefixes.values()] });
  } catch (e) {
    if (e instanceof AddressMappingError) {
      // Name the rule: the only refusals for valid entries are duplicates, so find the second one.
      const seen = new Set<string>();
      for (const [k, m] of eams) {
        const a = `4/${m.ipv4 & mask4(m.ipv4Length)}/${m.ipv4Length}`;
        const b = `6/${hex(m.ipv6.subarray(0, m.ipv6Length >> 3))}/${m.ipv6Length}`;
        if (seen.has(a) || seen.has(b)) throw new RuleTableError(`rule ${JSON.stringify(k)}: ${e.message}`);
        seen.add(a);
        seen.add(b);
      }
      throw new RuleTableError(e.message);
    }
    throw e;
  }
}
