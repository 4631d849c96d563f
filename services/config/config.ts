// The engine's configuration file (YAML), checked strictly at start-up: a plan that cannot work
// (overlapping prefixes, a range outside its segment, a prefix length RFC 6052 does not allow)
// stops the engine with a message naming the key.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parse as parseYaml } from "yaml";
import {
  AddressError, type Cidr4, ipv4FromValue, type Cidr6, type IPv4, cidrText, parseCidr4, parseCidr6, parseIPv4, prefixContains, prefixesOverlap,
} from "../../lib/net/address.js";
import { isRfc6052Length, RFC6052_LENGTHS } from "../../lib/net/rfc6052.js";
import { ConfigError } from "../errors.js";
import { parseTlsConfig, type TlsFiles } from "../../lib/tls/tls.js";

/** A contiguous IPv4 range leases are served from. */
export interface AddressRange {
  first: IPv4;
  last: IPv4;
}

export interface PoolConfig {
  /** "engine" for the engine's own pool; a segment's name for its care-of range. */
  name: string;
  kind: "engine" | "segment";
  ranges: AddressRange[];
  /** Addresses inside the ranges that are never leased (the engine's own, routers, ...). */
  exclude: IPv4[];
}

export interface SegmentConfig {
  name: string;
  network: Cidr4;
  /** The RFC 6052 prefix assigned to the segment (flow 3.2 c); absent if it has none. */
  prefix?: Cidr6;
  careOfPool?: PoolConfig;
}

export interface IPv6NetworkConfig {
  name: string;
  network: Cidr6;
}

export interface EngineConfig {
  listen: string;
  metricsListen: string;
  /** Mutual TLS on gRPC (PEM file paths); absent: plaintext, every caller trusted (the lab default). */
  tls?: TlsFiles;
  /** SQLite's synchronous setting: full survives power loss, normal survives a crashed process (kill -9). */
  store: StoreConfig;
  /** This replica's name in the leader election and the logs; replicas of one cluster need distinct names. */
  replica: string;
  pool: PoolConfig;
  segments: SegmentConfig[];
  ipv6Networks: IPv6NetworkConfig[];
  /** RFC 6052 prefix at which IPv6 correspondents reach IPv4 VMs through the translator. */
  translationPrefix?: Cidr6;
  /** RFC 6791: the IPv4 source of ICMPv4 errors translated from untranslatable IPv6 sources. */
  icmpErrorSource?: IPv4;
  leases: { lifetimeSeconds: number; cooldownSeconds: number; correspondentLifetimeSeconds: number };
  hosts: { heartbeatIntervalSeconds: number; downAfterSeconds: number };
  migration: { highWatermark: number; lowWatermark: number; windowSeconds: number; vmCooldownSeconds: number };
}

type Raw = Record<string, unknown>;

/**
 * A mapping; with `known`, any other key is refused, naming its path, so that a typo
 * (`cooldownSecond`, `careofRange`) is not silently replaced by a default.
 */
function obj(v: unknown, key: string, known?: readonly string[]): Raw {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new ConfigError(`${key}: must be a mapping`);
  if (known) {
    const unknown = Object.keys(v).find((k) => !known.includes(k));
    if (unknown !== undefined) throw new ConfigError(`${key === "" ? "" : `${key}.`}${unknown}: unknown key (known: ${known.join(", ")})`);
  }
  return v as Raw;
}

function str(v: unknown, key: string, fallback?: string): string {
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(`${key}: is required`);
  }
  if (typeof v !== "string" || v === "") throw new ConfigError(`${key}: must be a non-empty string`);
  return v;
}

function num(v: unknown, key: string, fallback: number, min: number, max: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    throw new ConfigError(`${key}: must be a number from ${min} to ${max}`);
  }
  return v;
}

function list(v: unknown, key: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ConfigError(`${key}: must be a list`);
  return v;
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AddressError) throw new ConfigError(e.message);
    throw e;
  }
}

/** "a.b.c.d-e.f.g.h" or a CIDR (whose network and broadcast addresses are left out). */
function parseRange(text: string, key: string): AddressRange {
  if (text.includes("/")) {
    const c = parseCidr4(text, key);
    const size = 2 ** (32 - c.length);
    const first = c.network.value + (c.length <= 30 ? 1 : 0);
    const last = c.network.value + size - 1 - (c.length <= 30 ? 1 : 0);
    return { first: ipv4FromValue(first), last: ipv4FromValue(last) };
  }
  const parts = text.split("-");
  if (parts.length !== 2) throw new ConfigError(`${key}: '${text}' must be FIRST-LAST or a CIDR prefix`);
  const first = parseIPv4(parts[0].trim(), key);
  const last = parseIPv4(parts[1].trim(), key);
  if (last.value < first.value) throw new ConfigError(`${key}: '${text}' ends before it starts`);
  return { first, last };
}

function rangeSize(r: AddressRange): number {
  return r.last.value - r.first.value + 1;
}

/** At most this many addresses in all pools: each is a row in the store. */
export const MAX_POOL_ADDRESSES = 1 << 20;

function parsePool(raw: Raw, key: string, name: string, kind: PoolConfig["kind"], rangesRaw: unknown): PoolConfig {
  const ranges = list(rangesRaw, `${key}.ranges`).map((r, i) => parseRange(str(r, `${key}.ranges[${i}]`), `${key}.ranges[${i}]`));
  if (ranges.length === 0) throw new ConfigError(`${key}: needs at least one range`);
  const exclude = list(raw.exclude, `${key}.exclude`).map((a, i) => parseIPv4(str(a, `${key}.exclude[${i}]`), `${key}.exclude[${i}]`));
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      if (ranges[i].first.value <= ranges[j].last.value && ranges[j].first.value <= ranges[i].last.value) {
        throw new ConfigError(`${key}.ranges: ranges ${i} and ${j} overlap`);
      }
    }
  }
  return { name, kind, ranges, exclude };
}

export function parseConfig(rawDoc: unknown, source = "config"): EngineConfig {
  return wrap(() => {
    const raw = obj(rawDoc, source);
    obj(rawDoc, "", ["listen", "metricsListen", "tls", "store", "replica", "pool", "segments", "ipv6Networks", "translation", "leases", "hosts", "migration"]);
    const storeRaw = obj(raw.store, "store", ["kind", "path", "sync", "etcd"]);
    const kind = str(storeRaw.kind, "store.kind", "sqlite");
    if (kind !== "sqlite" && kind !== "etcd") throw new ConfigError(`store.kind: '${kind}' is not supported (sqlite or etcd)`);

    const poolRaw = obj(raw.pool, "pool", ["prefix", "name", "ranges", "exclude"]);
    const poolPrefix = str(poolRaw.prefix, "pool.prefix");
    const poolNet = parseCidr4(poolPrefix, "pool.prefix");
    const pool = parsePool(poolRaw, "pool", str(poolRaw.name, "pool.name", "engine"), "engine", poolRaw.ranges ?? [poolPrefix]);
    for (const r of pool.ranges) {
      if (!prefixContains(poolNet.network.bytes, poolNet.length, r.first.bytes) || !prefixContains(poolNet.network.bytes, poolNet.length, r.last.bytes)) {
        throw new ConfigError(`pool.ranges: ${r.first.text}-${r.last.text} lies outside pool.prefix ${poolPrefix}`);
      }
    }

    const segments: SegmentConfig[] = list(raw.segments, "segments").map((s, i) => {
      const key = `segments[${i}]`;
      const sr = obj(s, key, ["network", "name", "prefix", "careOfRange", "exclude"]);
      const network = parseCidr4(str(sr.network, `${key}.network`), `${key}.network`);
      const name = str(sr.name, `${key}.name`, cidrText(network));
      let prefix: Cidr6 | undefined;
      if (sr.prefix !== undefined) {
        prefix = parseCidr6(str(sr.prefix, `${key}.prefix`), `${key}.prefix`);
        if (!isRfc6052Length(prefix.length)) {
          throw new ConfigError(`${key}.prefix: /${prefix.length} is not an RFC 6052 prefix length (${RFC6052_LENGTHS.join(", ")})`);
        }
        // RFC 6052 §2.2: bits 64-71 must be zero; a /96 or shorter prefix with them set cannot carry addresses.
        if (prefix.length === 96 && prefix.network.bytes[8] !== 0) {
          throw new ConfigError(`${key}.prefix: bits 64 to 71 must be zero (RFC 6052 §2.2)`);
        }
      }
      let careOfPool: PoolConfig | undefined;
      if (sr.careOfRange !== undefined) {
        const ranges = Array.isArray(sr.careOfRange) ? sr.careOfRange : [sr.careOfRange];
        careOfPool = parsePool(sr, `${key}.careOfRange`, name, "segment", ranges);
        for (const r of careOfPool.ranges) {
          if (!prefixContains(network.network.bytes, network.length, r.first.bytes) || !prefixContains(network.network.bytes, network.length, r.last.bytes)) {
            throw new ConfigError(`${key}.careOfRange: ${r.first.text}-${r.last.text} lies outside the segment ${cidrText(network)}`);
          }
        }
      }
      return { name, network, prefix, careOfPool };
    });

    const ipv6Networks: IPv6NetworkConfig[] = list(raw.ipv6Networks, "ipv6Networks").map((n, i) => {
      const key = `ipv6Networks[${i}]`;
      const nr = obj(n, key, ["network", "name"]);
      const network = parseCidr6(str(nr.network, `${key}.network`), `${key}.network`);
      // The care-of address carries the IPv4 home address in its low 32 bits (paper, flow 3.1 b),
      // so the network must leave at least 32 bits for it.
      if (network.length > 96) throw new ConfigError(`${key}.network: must be /96 or shorter to hold an IPv4 address`);
      return { name: str(nr.name, `${key}.name`, cidrText(network)), network };
    });

    const xlat = obj(raw.translation, "translation", ["prefix", "icmpErrorSource"]);
    let translationPrefix: Cidr6 | undefined;
    if (xlat.prefix !== undefined) {
      translationPrefix = parseCidr6(str(xlat.prefix, "translation.prefix"), "translation.prefix");
      if (!isRfc6052Length(translationPrefix.length)) {
        throw new ConfigError(`translation.prefix: /${translationPrefix.length} is not an RFC 6052 prefix length (${RFC6052_LENGTHS.join(", ")})`);
      }
    }
    const icmpErrorSource = xlat.icmpErrorSource === undefined ? undefined : parseIPv4(str(xlat.icmpErrorSource, "translation.icmpErrorSource"), "translation.icmpErrorSource");

    checkOverlaps(pool, poolNet, segments, ipv6Networks, translationPrefix);

    const leases = obj(raw.leases, "leases", ["lifetimeSeconds", "cooldownSeconds", "correspondentLifetimeSeconds"]);
    const hosts = obj(raw.hosts, "hosts", ["heartbeatIntervalSeconds", "downAfterSeconds"]);
    const mig = obj(raw.migration, "migration", ["highWatermark", "lowWatermark", "windowSeconds", "vmCooldownSeconds"]);
    const config: EngineConfig = {
      listen: str(raw.listen, "listen", "[::1]:50046"),
      metricsListen: str(raw.metricsListen, "metricsListen", "127.0.0.1:9046"),
      tls: parseTlsConfig(raw.tls, "tls", (m) => new ConfigError(m)),
      store: {
        kind, path: str(storeRaw.path, "store.path", "mip46-engine.db"), sync: storeSync(storeRaw.sync),
        etcd: kind === "etcd" ? etcdConfig(obj(storeRaw.etcd, "store.etcd", ["endpoints", "prefix", "dialTimeoutMs", "leaderTtlSeconds"])) : undefined,
      },
      replica: str(raw.replica, "replica", `${hostname()}-${process.pid}`),
      pool, segments, ipv6Networks, translationPrefix, icmpErrorSource,
      leases: {
        lifetimeSeconds: num(leases.lifetimeSeconds, "leases.lifetimeSeconds", 600, 1, 86400 * 365),
        cooldownSeconds: num(leases.cooldownSeconds, "leases.cooldownSeconds", 60, 0, 86400),
        correspondentLifetimeSeconds: num(leases.correspondentLifetimeSeconds, "leases.correspondentLifetimeSeconds", 3600, 1, 86400 * 365),
      },
      hosts: {
        heartbeatIntervalSeconds: num(hosts.heartbeatIntervalSeconds, "hosts.heartbeatIntervalSeconds", 5, 0.1, 3600),
        downAfterSeconds: num(hosts.downAfterSeconds, "hosts.downAfterSeconds", 15, 0.2, 86400),
      },
      migration: {
        highWatermark: num(mig.highWatermark, "migration.highWatermark", 0.85, 0.01, 1),
        lowWatermark: num(mig.lowWatermark, "migration.lowWatermark", 0.7, 0, 1),
        windowSeconds: num(mig.windowSeconds, "migration.windowSeconds", 30, 0, 86400),
        vmCooldownSeconds: num(mig.vmCooldownSeconds, "migration.vmCooldownSeconds", 300, 0, 86400),
      },
    };
    if (config.migration.lowWatermark >= config.migration.highWatermark) {
      throw new ConfigError("migration.lowWatermark: must be below migration.highWatermark (the gap is the hysteresis)");
    }
    const total = [pool, ...segments.flatMap((s) => (s.careOfPool ? [s.careOfPool] : []))]
      .reduce((n, p) => n + p.ranges.reduce((m, r) => m + rangeSize(r), 0), 0);
    if (total > MAX_POOL_ADDRESSES) throw new ConfigError(`pools: ${total} addresses in all; at most ${MAX_POOL_ADDRESSES}`);
    return config;
  });
}

function checkOverlaps(pool: PoolConfig, poolNet: Cidr4, segments: SegmentConfig[], nets: IPv6NetworkConfig[], xlat?: Cidr6): void {
  const v4: [string, Cidr4][] = [["pool.prefix", poolNet], ...segments.map((s, i): [string, Cidr4] => [`segments[${i}].network`, s.network])];
  const v6: [string, Cidr6][] = [
    ...segments.flatMap((s, i): [string, Cidr6][] => (s.prefix ? [[`segments[${i}].prefix`, s.prefix]] : [])),
    ...nets.map((n, i): [string, Cidr6] => [`ipv6Networks[${i}].network`, n.network]),
    ...(xlat ? [["translation.prefix", xlat] as [string, Cidr6]] : []),
  ];
  for (const group of [v4, v6] as [string, Cidr4 | Cidr6][][]) {
    for (let i = 0; i < group.length; i++) {
      for (let j = i + 1; j < group.length; j++) {
        if (prefixesOverlap(group[i][1], group[j][1])) {
          throw new ConfigError(`${group[j][0]}: ${cidrText(group[j][1])} overlaps ${group[i][0]} ${cidrText(group[i][1])}`);
        }
      }
    }
  }
  const names = [pool.name, ...segments.map((s) => s.name)];
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new ConfigError(`segments: the name '${dup}' is used twice (pool and segment names must differ)`);
}

/** The etcd cluster the replicas share (store.kind: etcd). */
export interface EtcdStoreConfig {
  /** host:port (or http://host:port) of every etcd member. */
  endpoints: string[];
  /** Key prefix of this engine cluster; replicas with the same prefix share their state. */
  prefix: string;
  dialTimeoutMs: number;
  /** TTL of the leader key's etcd lease: a dead leader is replaced within about this time. */
  leaderTtlSeconds: number;
}

export interface StoreConfig {
  kind: "sqlite" | "etcd";
  /** SQLite only. */
  path: string;
  /** SQLite's synchronous setting: full survives power loss, normal survives a crashed process (kill -9). */
  sync: "full" | "normal";
  etcd?: EtcdStoreConfig;
}

function etcdConfig(raw: Raw): EtcdStoreConfig {
  const endpoints = list(raw.endpoints, "store.etcd.endpoints").map((e, i) => str(e, `store.etcd.endpoints[${i}]`));
  if (endpoints.length === 0) throw new ConfigError("store.etcd.endpoints: needs at least one etcd member");
  const prefix = str(raw.prefix, "store.etcd.prefix", "/mip46");
  if (!prefix.startsWith("/")) throw new ConfigError(`store.etcd.prefix: '${prefix}' must start with /`);
  return {
    endpoints, prefix,
    dialTimeoutMs: num(raw.dialTimeoutMs, "store.etcd.dialTimeoutMs", 5000, 100, 600_000),
    // etcd refuses TTLs under 1 s, and raises small ones to 1.5 x its election timeout.
    leaderTtlSeconds: num(raw.leaderTtlSeconds, "store.etcd.leaderTtlSeconds", 2, 1, 600),
  };
}

function storeSync(v: unknown): "full" | "normal" {
  const s = str(v, "store.sync", "full");
  if (s !== "full" && s !== "normal") throw new ConfigError(`store.sync: '${s}' must be full or normal`);
  return s;
}

export function loadConfig(path: string): EngineConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid YAML: ${(e as Error).message}`);
  }
  return parseConfig(doc, path);
}
