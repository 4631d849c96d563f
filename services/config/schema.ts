// The shape of the engine's configuration file: every key it knows, its type, range and
// default. What the values mean (prefixes, ranges, overlaps) is checked in config.ts.
import { list, number, oneOf, strict, text, z } from "../../lib/config/schema.js";
import { TLS_FILES } from "../../lib/tls/tls.js";

/** Addresses of a pool: "FIRST-LAST" or a CIDR prefix, one or a list. */
const ranges = list(text("FIRST-LAST or a CIDR prefix"));
const addresses = list(text("an IPv4 address"));

const POOL = strict({
  prefix: text("an IPv4 prefix"),
  name: text().default("engine"),
  ranges: ranges.optional(),
  exclude: addresses.default([]),
});

const SEGMENT = strict({
  network: text("an IPv4 prefix"),
  name: text().optional(),
  prefix: text("an IPv6 prefix").optional(),
  careOfRange: z.union([text(), ranges], { error: "must be FIRST-LAST, a CIDR prefix, or a list of them" }).optional(),
  exclude: addresses.default([]),
  /** The home agent of the segment's VMs (an IPv4 address on it); absent: learned from the first registration. */
  homeAgent: text("an IPv4 address").optional(),
});

const IPV6_NETWORK = strict({
  network: text("an IPv6 prefix"),
  name: text().optional(),
  /** The home agent of the network's VMs (an IPv6 address on it); absent: learned from the first registration. */
  homeAgent: text("an IPv6 address").optional(),
});

const ETCD = strict({
  /** host:port (or http://host:port) of every etcd member. */
  endpoints: list(text()).default([]),
  prefix: text().default("/mip46"),
  dialTimeoutMs: number(100, 600_000).default(5000),
  // etcd refuses TTLs under 1 s, and raises small ones to 1.5 x its election timeout.
  leaderTtlSeconds: number(1, 600).default(2),
});

const STORE = strict({
  kind: oneOf(["sqlite", "etcd"], (v) => `'${String(v)}' is not supported (sqlite or etcd)`).default("sqlite"),
  path: text().default("mip46-engine.db"),
  sync: oneOf(["full", "normal"], (v) => `'${String(v)}' must be full or normal`).default("full"),
  etcd: ETCD.optional(),
});

export const ENGINE_FILE = strict({
  listen: text("HOST:PORT").default("[::1]:50046"),
  metricsListen: text("HOST:PORT").default("127.0.0.1:9046"),
  tls: TLS_FILES.optional(),
  store: STORE.prefault({}),
  replica: text().optional(),
  pool: POOL,
  segments: list(SEGMENT).default([]),
  ipv6Networks: list(IPV6_NETWORK).default([]),
  translation: strict({
    prefix: text("an IPv6 prefix").optional(),
    icmpErrorSource: text("an IPv4 address").optional(),
    /** IPv4 prefixes of IPv6 nodes reached at translation.prefix (RFC 6052 §2); config.ts checks them. */
    ipv4Translatable: list(text("an IPv4 prefix")).default([]),
  }).prefault({}),
  leases: strict({
    lifetimeSeconds: number(1, 86400 * 365).default(600),
    cooldownSeconds: number(0, 86400).default(60),
    correspondentLifetimeSeconds: number(1, 86400 * 365).default(3600),
  }).prefault({}),
  hosts: strict({
    heartbeatIntervalSeconds: number(0.1, 3600).default(5),
    downAfterSeconds: number(0.2, 86400).default(15),
  }).prefault({}),
  /** The gRPC port's limits (issue 11 §4); the defaults are services/api/server.ts's SERVER_LIMITS. */
  grpc: strict({
    maxConnectionIdleSeconds: number(1, 86400).default(300),
    keepaliveTimeSeconds: number(1, 86400).default(60),
    keepaliveTimeoutSeconds: number(1, 3600).default(20),
    maxConcurrentStreams: number(1, 1_000_000).default(100),
    maxConnections: number(1, 1_000_000).default(4096),
  }).prefault({}),
  migration: strict({
    highWatermark: number(0.01, 1).default(0.85),
    lowWatermark: number(0, 1).default(0.7),
    windowSeconds: number(0, 86400).default(30),
    vmCooldownSeconds: number(0, 86400).default(300),
  }).prefault({}),
});

export type EngineFile = z.output<typeof ENGINE_FILE>;

/** YAML's empty value (`leases:` with nothing under it) means "the defaults", as an absent key does. */
export function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (typeof v !== "object" || v === null) return v;
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, withoutNulls(x)]));
}
