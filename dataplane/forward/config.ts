// The worker's own settings: interfaces, routes, served prefixes, translator and tunnel settings,
// static neighbours. Plain data with addresses as text, so the same object comes from a JSON
// table (offline mode), the worker's configuration file or a test. `parseForwarderConfig`
// validates untrusted input and names the field in every error.
import { AddressError } from "../../lib/net/address.js";
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
  neighbours?: StaticNeighbour[];
  neighbourTimers?: Partial<NeighbourTimers>;
  /**
   * Keep the binding cache of the correspondents behind us (route optimisation, flow 3.2 k–m):
   * the engine's worker sets it; see correspondent.ts.
   */
  correspondentRouter?: boolean;
}

/** A worker configuration that cannot be used; the message starts with the field's path. */
export class ForwarderConfigError extends Error {
  override name = "ForwarderConfigError";
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function object(v: unknown, field: string): Record<string, unknown> {
  if (!isObject(v)) throw new ForwarderConfigError(field, "must be an object");
  return v;
}

function onlyKeys(o: Record<string, unknown>, field: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new ForwarderConfigError(`${field}.${k}`, `unknown field (expected one of ${keys.join(", ")})`);
}

function array(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw new ForwarderConfigError(field, "must be an array");
  return v;
}

function str(v: unknown, field: string): string {
  if (typeof v !== "string" || v === "") throw new ForwarderConfigError(field, "must be a non-empty string");
  return v;
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new ForwarderConfigError(field, `must be an integer in ${min}..${max}, not ${JSON.stringify(v)}`);
  return v;
}

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

export function macBytes(v: unknown, field: string): Uint8Array {
  const text = str(v, field);
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) throw new ForwarderConfigError(field, `'${text}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return parseMac(text);
}

/**
 * Checks an untrusted value (parsed JSON) and returns it as a ForwarderConfig. Every problem is
 * a ForwarderConfigError whose message starts with the path of the field, under `field`.
 */
export function parseForwarderConfig(value: unknown, field = "worker"): ForwarderConfig {
  const o = object(value, field);
  onlyKeys(o, field, ["interfaces", "routes", "served", "translator", "tunnels", "neighbours", "neighbourTimers", "correspondentRouter"]);
  const names = new Set<string>();
  const indexes = new Set<number>();
  const interfaces = array(o.interfaces, `${field}.interfaces`).map((v, i) => {
    const f = `${field}.interfaces[${i}]`;
    const x = object(v, f);
    onlyKeys(x, f, ["index", "name", "mac", "mtu", "addresses", "promiscuous"]);
    const ifc: InterfaceConfig = { index: int(x.index, `${f}.index`, 0, 0x7fffffff), name: str(x.name, `${f}.name`), mac: str(x.mac, `${f}.mac`) };
    if (names.has(ifc.name)) throw new ForwarderConfigError(`${f}.name`, `'${ifc.name}' is used twice`);
    if (indexes.has(ifc.index)) throw new ForwarderConfigError(`${f}.index`, `${ifc.index} is used twice`);
    names.add(ifc.name);
    indexes.add(ifc.index);
    macBytes(ifc.mac, `${f}.mac`);
    if (x.mtu !== undefined) ifc.mtu = int(x.mtu, `${f}.mtu`, 68, 65535);
    if (x.promiscuous !== undefined) {
      if (typeof x.promiscuous !== "boolean") throw new ForwarderConfigError(`${f}.promiscuous`, "must be true or false");
      ifc.promiscuous = x.promiscuous;
    }
    if (x.addresses !== undefined) {
      ifc.addresses = array(x.addresses, `${f}.addresses`).map((a, j) => {
        const af = `${f}.addresses[${j}]`;
        const text = str(a, af);
        checked(af, () => prefixBytes(text, af, false));
        return text;
      });
      if (ifc.addresses.some((a) => a.includes(":")) && (ifc.mtu ?? 1500) < 1280) throw new ForwarderConfigError(`${f}.mtu`, "an interface with IPv6 addresses needs an MTU of at least 1280 (RFC 8200 §5)");
    }
    return ifc;
  });
  if (interfaces.length === 0) throw new ForwarderConfigError(`${field}.interfaces`, "needs at least one interface");
  const cfg: ForwarderConfig = { interfaces };
  if (o.routes !== undefined) {
    cfg.routes = array(o.routes, `${field}.routes`).map((v, i) => {
      const f = `${field}.routes[${i}]`;
      const x = object(v, f);
      onlyKeys(x, f, ["prefix", "interface", "via"]);
      const r: RouteConfig = { prefix: str(x.prefix, `${f}.prefix`), interface: str(x.interface, `${f}.interface`) };
      const p = checked(`${f}.prefix`, () => prefixBytes(r.prefix, `${f}.prefix`, true));
      if (!names.has(r.interface)) throw new ForwarderConfigError(`${f}.interface`, `no interface is named '${r.interface}'`);
      if (x.via !== undefined) {
        r.via = str(x.via, `${f}.via`);
        const g = checked(`${f}.via`, () => addressBytes(r.via, `${f}.via`));
        if (g.length !== p.bytes.length) throw new ForwarderConfigError(`${f}.via`, "must be of the same family as the prefix");
      }
      return r;
    });
  }
  if (o.served !== undefined) {
    cfg.served = array(o.served, `${field}.served`).map((v, i) => {
      const f = `${field}.served[${i}]`;
      const text = str(v, f);
      checked(f, () => prefixBytes(text, f, true));
      return text;
    });
  }
  if (o.translator !== undefined) {
    const f = `${field}.translator`;
    const x = object(o.translator, f);
    onlyKeys(x, f, ["lowestIpv6Mtu", "icmpErrorSource4", "routerAddress4", "routerAddress6", "udpZeroChecksum", "sendUntranslatableErrors"]);
    const t: TranslatorSettings = {};
    if (x.lowestIpv6Mtu !== undefined) t.lowestIpv6Mtu = int(x.lowestIpv6Mtu, `${f}.lowestIpv6Mtu`, 1280, 65535);
    for (const k of ["icmpErrorSource4", "routerAddress4"] as const) {
      if (x[k] !== undefined) {
        t[k] = str(x[k], `${f}.${k}`);
        checked(`${f}.${k}`, () => ipv4Bytes(t[k], `${f}.${k}`));
      }
    }
    if (x.routerAddress6 !== undefined) {
      t.routerAddress6 = str(x.routerAddress6, `${f}.routerAddress6`);
      checked(`${f}.routerAddress6`, () => ipv6Bytes(t.routerAddress6, `${f}.routerAddress6`));
    }
    if (x.udpZeroChecksum !== undefined) {
      if (x.udpZeroChecksum !== "compute" && x.udpZeroChecksum !== "drop") throw new ForwarderConfigError(`${f}.udpZeroChecksum`, "must be \"compute\" or \"drop\"");
      t.udpZeroChecksum = x.udpZeroChecksum;
    }
    if (x.sendUntranslatableErrors !== undefined) {
      if (typeof x.sendUntranslatableErrors !== "boolean") throw new ForwarderConfigError(`${f}.sendUntranslatableErrors`, "must be true or false");
      t.sendUntranslatableErrors = x.sendUntranslatableErrors;
    }
    cfg.translator = t;
  }
  if (o.tunnels !== undefined) {
    const f = `${field}.tunnels`;
    const x = object(o.tunnels, f);
    onlyKeys(x, f, ["hopLimit", "source4", "source6", "icmpSource4", "icmpSource6"]);
    const t: TunnelSettings = {};
    if (x.hopLimit !== undefined) t.hopLimit = int(x.hopLimit, `${f}.hopLimit`, 1, 255);
    for (const k of ["source4", "icmpSource4"] as const) {
      if (x[k] !== undefined) {
        t[k] = str(x[k], `${f}.${k}`);
        checked(`${f}.${k}`, () => ipv4Bytes(t[k], `${f}.${k}`));
      }
    }
    for (const k of ["source6", "icmpSource6"] as const) {
      if (x[k] !== undefined) {
        t[k] = str(x[k], `${f}.${k}`);
        checked(`${f}.${k}`, () => ipv6Bytes(t[k], `${f}.${k}`));
      }
    }
    cfg.tunnels = t;
  }
  if (o.neighbours !== undefined) {
    cfg.neighbours = array(o.neighbours, `${field}.neighbours`).map((v, i) => {
      const f = `${field}.neighbours[${i}]`;
      const x = object(v, f);
      onlyKeys(x, f, ["interface", "address", "mac"]);
      const n: StaticNeighbour = { interface: str(x.interface, `${f}.interface`), address: str(x.address, `${f}.address`), mac: str(x.mac, `${f}.mac`) };
      if (!names.has(n.interface)) throw new ForwarderConfigError(`${f}.interface`, `no interface is named '${n.interface}'`);
      checked(`${f}.address`, () => addressBytes(n.address, `${f}.address`));
      macBytes(n.mac, `${f}.mac`);
      return n;
    });
  }
  if (o.correspondentRouter !== undefined) {
    if (typeof o.correspondentRouter !== "boolean") throw new ForwarderConfigError(`${field}.correspondentRouter`, "must be true or false");
    cfg.correspondentRouter = o.correspondentRouter;
  }
  if (o.neighbourTimers !== undefined) {
    const f = `${field}.neighbourTimers`;
    const x = object(o.neighbourTimers, f);
    const keys = ["reachableMs", "retransMs", "maxRetries", "delayMs", "staleExpiryMs", "queueLength", "maxEntries"] as const;
    onlyKeys(x, f, keys);
    const t: Partial<NeighbourTimers> = {};
    for (const k of keys) if (x[k] !== undefined) t[k] = int(x[k], `${f}.${k}`, k === "maxEntries" || k === "retransMs" ? 1 : 0, 0x7fffffff);
    cfg.neighbourTimers = t;
  }
  return cfg;
}
