// The worker's own settings: interfaces, routes, served prefixes, translator and tunnel settings,
// static neighbours. Plain data with addresses as text, so the same object comes from a JSON
// table (offline mode), the worker's configuration file or a test. `parseForwarderConfig`
// validates untrusted input and names the field in every error.
import { AddressError } from "../../lib/net/address.js";
import { ConfigFieldError, flag, integer, list, oneOf, parseShape, strict, text } from "../../lib/config/schema.js";
import { parseMac } from "../packet/ethernet.js";
import type { NeighbourTimers } from "../neighbour/cache.js";
import { addressBytes, ipv4Bytes, ipv6Bytes, prefixBytes } from "./addresses.js";

export interface InterfaceConfig {
  /** The number the caller uses in processFrame(ingressIf) and gets back in emit(egressIf). */
  index: number;
  name: string;
  /** "02:00:00:00:00:01" */
  mac: string;
  /** IP MTU; default 1500. */
  mtu?: number;
  /** Own addresses with their prefix length ("192.0.2.254/24"); each gives a connected route. */
  addresses?: string[];
  /**
   * Accept unicast frames to any MAC, not only ours: a host's port toward migrated VMs, whose
   * neighbour caches may still hold the MAC of their home network's router.
   */
  promiscuous?: boolean;
}

export interface RouteConfig {
  /** "0.0.0.0/0", "2001:db8:1::/64" */
  prefix: string;
  /** Interface name. */
  interface: string;
  /** Gateway of the same family; absent means the destination is on the link. */
  via?: string;
}

export interface TranslatorSettings {
  /** RFC 7915 §4.1 lowest-ipv6-mtu; default 1280. */
  lowestIpv6Mtu?: number;
  /** RFC 6791 source of translated ICMPv4 errors whose IPv6 source has no mapping; default 192.0.0.8. */
  icmpErrorSource4?: string;
  /** Source of the translator's own ICMPv4 errors; default icmpErrorSource4. */
  routerAddress4?: string;
  /** Source of its own ICMPv6 errors; default the offending packet's destination. */
  routerAddress6?: string;
  udpZeroChecksum?: "compute" | "drop";
  sendUntranslatableErrors?: boolean;
  /** RFC 1812 §4.3.2.3: largest translated ICMPv4 error, IPv4 header included; 576..65535, default 576. */
  icmp4ErrorMaxBytes?: number;
  /** RFC 7757 §4: IPv6 to the RFC 6052 form of an explicit-mapping IPv4 address comes back as IPv6; default true. */
  eamHairpinning?: boolean;
}

export interface TunnelSettings {
  /** Outer TTL / hop limit of the tunnels we start; default 64. */
  hopLimit?: number;
  /** Outer source of IPv4-outer tunnels we start; default the egress interface's first IPv4 address. */
  source4?: string;
  /** Outer source of IPv6-outer tunnels we start; default the egress interface's first IPv6 address. */
  source6?: string;
  /** Source of the ICMPv4 errors about tunnels and routing; default the first own IPv4 address. */
  icmpSource4?: string;
  /** Source of the ICMPv6 errors about tunnels and routing; default the first own IPv6 address. */
  icmpSource6?: string;
}

/** RFC 4443 §2.4(f), RFC 1812 §4.3.2.8: a token bucket on the ICMP errors the worker originates. */
export interface IcmpErrorLimit {
  /** Errors per second once the burst is spent; default 100. */
  perSecond?: number;
  /** Errors that may go at once; default 100. */
  burst?: number;
}

export interface StaticNeighbour {
  interface: string;
  address: string;
  mac: string;
}

export interface ForwarderConfig {
  interfaces: InterfaceConfig[];
  routes?: RouteConfig[];
  /** Prefixes we answer ARP/NDP for and own: the pool, segment prefixes, translation prefixes. */
  served?: string[];
  translator?: TranslatorSettings;
  tunnels?: TunnelSettings;
  /** Rate limit of the ICMP errors of the router, the tunnels and the translator (ratelimit.ts). */
  icmpErrorLimit?: IcmpErrorLimit;
  neighbours?: StaticNeighbour[];
  neighbourTimers?: Partial<NeighbourTimers>;
  /**
   * Keep the binding cache of the correspondents behind us (route optimisation, flow 3.2 k–m):
   * the engine's worker sets it; see correspondent.ts.
   */
  correspondentRouter?: boolean;
}

/** A worker configuration that cannot be used; the message starts with the field's path. */
export class ForwarderConfigError extends ConfigFieldError {
  override name = "ForwarderConfigError";
  constructor(field: string, message: string) {
    super(`${field}: ${message}`, field);
  }
}

// The shape of each part (lib/config/schema.ts: unknown keys refused); what the values mean is
// checked by parseForwarderConfig. The worker's configuration file uses the same shapes.
const address = text("an address");

/** An interface as the worker's file names it: the index is its place, the MAC may be read from the interface. */
export const WORKER_INTERFACE = strict({
  name: text(),
  mac: text("a MAC address").optional(),
  mtu: integer(68, 65535).optional(),
  addresses: list(text("ADDRESS/LENGTH")).optional(),
  promiscuous: flag().optional(),
});

const INTERFACE = strict({ index: integer(0, 0x7fffffff), ...WORKER_INTERFACE.shape, mac: text("a MAC address") });

const timer = (min: number) => integer(min, 0x7fffffff).optional();

/** Everything of the forwarder's settings but its interfaces. */
export const FORWARDER_SETTINGS = {
  routes: list(strict({ prefix: text("a prefix"), interface: text(), via: address.optional() })).optional(),
  served: list(text("a prefix")).optional(),
  translator: strict({
    lowestIpv6Mtu: integer(1280, 65535).optional(),
    icmpErrorSource4: address.optional(),
    routerAddress4: address.optional(),
    routerAddress6: address.optional(),
    udpZeroChecksum: oneOf(["compute", "drop"]).optional(),
    sendUntranslatableErrors: flag().optional(),
    icmp4ErrorMaxBytes: integer(576, 65535).optional(),
    eamHairpinning: flag().optional(),
  }).optional(),
  tunnels: strict({
    hopLimit: integer(1, 255).optional(),
    source4: address.optional(),
    source6: address.optional(),
    icmpSource4: address.optional(),
    icmpSource6: address.optional(),
  }).optional(),
  icmpErrorLimit: strict({ perSecond: integer(1, 1_000_000).optional(), burst: integer(1, 1_000_000).optional() }).optional(),
  neighbours: list(strict({ interface: text(), address, mac: text("a MAC address") })).optional(),
  neighbourTimers: strict({
    reachableMs: timer(0), retransMs: timer(1), maxRetries: timer(0), delayMs: timer(0), staleExpiryMs: timer(0), queueLength: timer(0), maxEntries: timer(1),
  }).optional(),
  correspondentRouter: flag().optional(),
};

const FORWARDER = strict({ interfaces: list(INTERFACE), ...FORWARDER_SETTINGS });

/** Runs a parser from addresses.ts and turns its AddressError into a ForwarderConfigError. */
export function checked<T>(field: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof AddressError) throw new ForwarderConfigError(field, e.message.slice(field.length + 2));
    if (e instanceof ForwarderConfigError) throw e;
    throw new ForwarderConfigError(field, (e as Error).message);
  }
}

export function macBytes(v: string, field: string): Uint8Array {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(v)) throw new ForwarderConfigError(field, `'${v}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return parseMac(v);
}

/** Checks that each of `keys` of `part`, when given, is an address `parse` accepts. */
function addressesIn<T extends object>(part: T | undefined, f: string, keys: readonly (keyof T & string)[], parse: (text: string, field: string) => unknown): void {
  for (const k of keys) {
    const v = part?.[k];
    if (typeof v === "string") checked(`${f}.${k}`, () => parse(v, `${f}.${k}`));
  }
}

/**
 * Checks an untrusted value (parsed JSON) and returns it as a ForwarderConfig. Every problem is
 * a ForwarderConfigError whose message starts with the path of the field, under `field`.
 */
export function parseForwarderConfig(value: unknown, field = "worker"): ForwarderConfig {
  const cfg: ForwarderConfig = parseShape(FORWARDER, value, (m, f) => new ForwarderConfigError(f, m.slice(f.length + 2)), field);
  const names = new Set<string>();
  const indexes = new Set<number>();
  cfg.interfaces.forEach((ifc, i) => {
    const f = `${field}.interfaces[${i}]`;
    if (names.has(ifc.name)) throw new ForwarderConfigError(`${f}.name`, `'${ifc.name}' is used twice`);
    if (indexes.has(ifc.index)) throw new ForwarderConfigError(`${f}.index`, `${ifc.index} is used twice`);
    names.add(ifc.name);
    indexes.add(ifc.index);
    macBytes(ifc.mac, `${f}.mac`);
    ifc.addresses?.forEach((a, j) => checked(`${f}.addresses[${j}]`, () => prefixBytes(a, `${f}.addresses[${j}]`, false)));
    if (ifc.addresses?.some((a) => a.includes(":")) && (ifc.mtu ?? 1500) < 1280) throw new ForwarderConfigError(`${f}.mtu`, "an interface with IPv6 addresses needs an MTU of at least 1280 (RFC 8200 §5)");
  });
  if (cfg.interfaces.length === 0) throw new ForwarderConfigError(`${field}.interfaces`, "needs at least one interface");
  cfg.routes?.forEach((r, i) => {
    const f = `${field}.routes[${i}]`;
    const p = checked(`${f}.prefix`, () => prefixBytes(r.prefix, `${f}.prefix`, true));
    if (!names.has(r.interface)) throw new ForwarderConfigError(`${f}.interface`, `no interface is named '${r.interface}'`);
    if (r.via !== undefined) {
      const g = checked(`${f}.via`, () => addressBytes(r.via, `${f}.via`));
      if (g.length !== p.bytes.length) throw new ForwarderConfigError(`${f}.via`, "must be of the same family as the prefix");
    }
  });
  cfg.served?.forEach((text, i) => checked(`${field}.served[${i}]`, () => prefixBytes(text, `${field}.served[${i}]`, true)));
  addressesIn(cfg.translator, `${field}.translator`, ["icmpErrorSource4", "routerAddress4"], ipv4Bytes);
  addressesIn(cfg.translator, `${field}.translator`, ["routerAddress6"], ipv6Bytes);
  addressesIn(cfg.tunnels, `${field}.tunnels`, ["source4", "icmpSource4"], ipv4Bytes);
  addressesIn(cfg.tunnels, `${field}.tunnels`, ["source6", "icmpSource6"], ipv6Bytes);
  cfg.neighbours?.forEach((n, i) => {
    const f = `${field}.neighbours[${i}]`;
    if (!names.has(n.interface)) throw new ForwarderConfigError(`${f}.interface`, `no interface is named '${n.interface}'`);
    checked(`${f}.address`, () => addressBytes(n.address, `${f}.address`));
    macBytes(n.mac, `${f}.mac`);
  });
  return cfg;
}
