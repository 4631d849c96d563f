// The engine's configuration file (YAML), checked strictly at start-up: its shape (every key,
// type, range and default) in schema.ts, what it means here. A plan that cannot work
// (overlapping prefixes, a range outside its segment, a prefix length RFC 6052 does not allow)
// stops the engine with a message naming the key.
import { hostname } from "node:os";
import {
  AddressError, type Cidr4, ipv4FromValue, type Cidr6, type IPv4, type IPv6, cidrText, parseCidr4, parseCidr6, parseIPv4, parseIPv6, prefixContains, prefixesOverlap,
} from "../../lib/net/address.js";
import { isRfc6052Length, RFC6052_LENGTHS } from "../../lib/net/rfc6052.js";
import { ConfigError } from "../errors.js";
import type { TlsFiles } from "../../lib/tls/tls.js";
import { isObject, parseShape, readYamlFile } from "../../lib/config/schema.js";
import { ENGINE_FILE, withoutNulls, type EngineFile } from "./schema.js";
import { splitHostPort } from "../../lib/metrics/http.js";

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
  /** The segment's home agent (`homeAgent`); absent: the engine learns it from the first registration. */
  homeAgent?: IPv4;
}

export interface IPv6NetworkConfig {
  name: string;
  network: Cidr6;
  /** The network's home agent (`homeAgent`); absent: the engine learns it from the first registration. */
  homeAgent?: IPv6;
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
  /**
   * IPv4 prefixes whose addresses are IPv6 nodes at translationPrefix (RFC 6052 §2,
   * "IPv4-translatable"): the workers translate IPv4 packets to them and answer ARP for them.
   * Never overlapping the pool (its addresses get explicit mappings) nor a segment.
   */
  ipv4Translatable: Cidr4[];
  leases: { lifetimeSeconds: number; cooldownSeconds: number; correspondentLifetimeSeconds: number };
  hosts: { heartbeatIntervalSeconds: number; downAfterSeconds: number };
  migration: { highWatermark: number; lowWatermark: number; windowSeconds: number; vmCooldownSeconds: number };
  grpc: { maxConnectionIdleSeconds: number; keepaliveTimeSeconds: number; keepaliveTimeoutSeconds: number; maxConcurrentStreams: number; maxConnections: number };
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

function parsePool(key: string, name: string, kind: PoolConfig["kind"], rangeTexts: string[], excludeTexts: string[]): PoolConfig {
  const ranges = rangeTexts.map((r, i) => parseRange(r, `${key}.ranges[${i}]`));
  if (ranges.length === 0) throw new ConfigError(`${key}: needs at least one range`);
  const exclude = excludeTexts.map((a, i) => parseIPv4(a, `${key}.exclude[${i}]`));
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      if (ranges[i].first.value <= ranges[j].last.value && ranges[j].first.value <= ranges[i].last.value) {
        throw new ConfigError(`${key}.ranges: ranges ${i} and ${j} overlap`);
      }
    }
  }
  return { name, kind, ranges, exclude };
}

function outside(net: Cidr4, r: AddressRange): boolean {
  return !prefixContains(net.network.bytes, net.length, r.first.bytes) || !prefixContains(net.network.bytes, net.length, r.last.bytes);
}

/** RFC 6052 §2.2: the prefix lengths an IPv4-embedded IPv6 address may have. */
function rfc6052Prefix(text: string, key: string): Cidr6 {
  const prefix = parseCidr6(text, key);
  if (!isRfc6052Length(prefix.length)) {
    throw new ConfigError(`${key}: /${prefix.length} is not an RFC 6052 prefix length (${RFC6052_LENGTHS.join(", ")})`);
  }
  return prefix;
}

/**
 * Checks a parsed YAML document: its shape (schema.ts: unknown keys, types, ranges), then what
 * it means. Throws ConfigError naming the key.
 */
export function parseConfig(rawDoc: unknown, source = "config"): EngineConfig {
  if (rawDoc !== undefined && rawDoc !== null && !isObject(rawDoc)) throw new ConfigError(`${source}: must be a mapping`);
  const raw = parseShape(ENGINE_FILE, withoutNulls(rawDoc ?? {}), (m) => new ConfigError(m));
  return wrap(() => engineConfig(raw));
}

/** The plan the checked file describes; what cannot work is a ConfigError. */
function engineConfig(raw: EngineFile): EngineConfig {
  const poolNet = parseCidr4(raw.pool.prefix, "pool.prefix");
  const pool = parsePool("pool", raw.pool.name, "engine", raw.pool.ranges ?? [raw.pool.prefix], raw.pool.exclude);
  for (const r of pool.ranges) {
    if (outside(poolNet, r)) throw new ConfigError(`pool.ranges: ${r.first.text}-${r.last.text} lies outside pool.prefix ${raw.pool.prefix}`);
  }

  const segments: SegmentConfig[] = raw.segments.map((sr, i) => {
    const key = `segments[${i}]`;
    const network = parseCidr4(sr.network, `${key}.network`);
    const name = sr.name ?? cidrText(network);
    let prefix: Cidr6 | undefined;
    if (sr.prefix !== undefined) {
      prefix = rfc6052Prefix(sr.prefix, `${key}.prefix`);
      // RFC 6052 §2.2: bits 64-71 must be zero; a /96 or shorter prefix with them set cannot carry addresses.
      if (prefix.length === 96 && prefix.network.bytes[8] !== 0) {
        throw new ConfigError(`${key}.prefix: bits 64 to 71 must be zero (RFC 6052 §2.2)`);
      }
    }
    let careOfPool: PoolConfig | undefined;
    if (sr.careOfRange !== undefined) {
      const ranges = Array.isArray(sr.careOfRange) ? sr.careOfRange : [sr.careOfRange];
      careOfPool = parsePool(`${key}.careOfRange`, name, "segment", ranges, sr.exclude);
      for (const r of careOfPool.ranges) {
        if (outside(network, r)) throw new ConfigError(`${key}.careOfRange: ${r.first.text}-${r.last.text} lies outside the segment ${cidrText(network)}`);
      }
    }
    const homeAgent = sr.homeAgent === undefined ? undefined : parseIPv4(sr.homeAgent, `${key}.homeAgent`);
    if (homeAgent && !prefixContains(network.network.bytes, network.length, homeAgent.bytes)) {
      throw new ConfigError(`${key}.homeAgent: ${homeAgent.text} is not on the segment ${cidrText(network)}; a home agent is a router of its home network`);
    }
    return { name, network, prefix, careOfPool, homeAgent };
  });

  const ipv6Networks: IPv6NetworkConfig[] = raw.ipv6Networks.map((nr, i) => {
    const key = `ipv6Networks[${i}]`;
    const network = parseCidr6(nr.network, `${key}.network`);
    // The care-of address carries the IPv4 home address in its low 32 bits (paper, flow 3.1 b),
    // so the network must leave at least 32 bits for it.
    if (network.length > 96) throw new ConfigError(`${key}.network: must be /96 or shorter to hold an IPv4 address`);
    const homeAgent = nr.homeAgent === undefined ? undefined : parseIPv6(nr.homeAgent, `${key}.homeAgent`);
    if (homeAgent && !prefixContains(network.network.bytes, network.length, homeAgent.bytes)) {
      throw new ConfigError(`${key}.homeAgent: ${homeAgent.text} is not on the network ${cidrText(network)}; a home agent is a router of its home network`);
    }
    return { name: nr.name ?? cidrText(network), network, homeAgent };
  });

  const xlat = raw.translation;
  const translationPrefix = xlat.prefix === undefined ? undefined : rfc6052Prefix(xlat.prefix, "translation.prefix");
  const icmpErrorSource = xlat.icmpErrorSource === undefined ? undefined : parseIPv4(xlat.icmpErrorSource, "translation.icmpErrorSource");

  const ipv4Translatable = xlat.ipv4Translatable.map((t, i) => parseCidr4(t, `translation.ipv4Translatable[${i}]`));
  if (ipv4Translatable.length > 0 && translationPrefix === undefined) {
    throw new ConfigError("translation.ipv4Translatable: needs translation.prefix (the RFC 6052 prefix the addresses are translated with)");
  }
  checkOverlaps(pool, poolNet, segments, ipv6Networks, translationPrefix, ipv4Translatable);

  checkListen("listen", raw.listen);
  checkListen("metricsListen", raw.metricsListen);
  const kind = raw.store.kind;
  const config: EngineConfig = {
    listen: raw.listen,
    metricsListen: raw.metricsListen,
    tls: raw.tls,
    store: { kind, path: raw.store.path, sync: raw.store.sync, etcd: kind === "etcd" ? etcdConfig(raw.store.etcd) : undefined },
    replica: raw.replica ?? `${hostname()}-${process.pid}`,
    pool, segments, ipv6Networks, translationPrefix, icmpErrorSource, ipv4Translatable,
    leases: raw.leases,
    hosts: raw.hosts,
    migration: raw.migration,
    grpc: raw.grpc,
  };
  if (config.migration.lowWatermark >= config.migration.highWatermark) {
    throw new ConfigError("migration.lowWatermark: must be below migration.highWatermark (the gap is the hysteresis)");
  }
  const total = [pool, ...segments.flatMap((s) => (s.careOfPool ? [s.careOfPool] : []))]
    .reduce((n, p) => n + p.ranges.reduce((m, r) => m + rangeSize(r), 0), 0);
  if (total > MAX_POOL_ADDRESSES) throw new ConfigError(`pools: ${total} addresses in all; at most ${MAX_POOL_ADDRESSES}`);
  return config;
}

/**
 * `listen` / `metricsListen`: HOST:PORT (or [IPv6]:PORT) with a port in 0-65535; `error` names the
 * key otherwise. The gRPC `listen` may also be a unix socket, `unix:PATH` (gRPC's own name form).
 */
export function checkListen(key: string, value: string, error: (message: string) => Error = (m) => new ConfigError(m)): void {
  if (key === "listen" && value.startsWith("unix:")) {
    if (value.length === "unix:".length) throw error(`${key}: '${value}': a unix socket needs its path (unix:/run/mip46/engine.sock)`);
    return;
  }
  let port: number;
  try {
    port = splitHostPort(value).port;
  } catch (e) {
    throw error(`${key}: ${(e as Error).message}`);
  }
  if (port > 65535) throw error(`${key}: '${value}': port ${port} is out of range (0-65535)`);
}

function checkOverlaps(pool: PoolConfig, poolNet: Cidr4, segments: SegmentConfig[], nets: IPv6NetworkConfig[], xlat: Cidr6 | undefined, translatable: Cidr4[]): void {
  const v4: [string, Cidr4][] = [
    ["pool.prefix", poolNet],
    ...segments.map((s, i): [string, Cidr4] => [`segments[${i}].network`, s.network]),
    // The pool's addresses are translated by their explicit mappings, a segment's are VMs' care-of addresses: neither is IPv4-translatable.
    ...translatable.map((t, i): [string, Cidr4] => [`translation.ipv4Translatable[${i}]`, t]),
  ];
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

function etcdConfig(raw: EngineFile["store"]["etcd"]): EtcdStoreConfig {
  if (raw === undefined || raw.endpoints.length === 0) throw new ConfigError("store.etcd.endpoints: needs at least one etcd member");
  if (!raw.prefix.startsWith("/")) throw new ConfigError(`store.etcd.prefix: '${raw.prefix}' must start with /`);
  return raw;
}

export function loadConfig(path: string): EngineConfig {
  return parseConfig(readYamlFile(path, (m) => new ConfigError(m)), path);
}
