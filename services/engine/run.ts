// Wires an engine together: store, engine, metrics, gRPC. Used by the executable and by tests,
// which run a real engine on port 0.
import { existsSync } from "node:fs";
import type { Server as HttpServer } from "node:http";
import { dirname, resolve } from "node:path";
import { createLogger, type Logger } from "../../lib/log.js";
import { type ServerLimits, startGrpcServer, type GrpcServer } from "../api/server.js";
import { checkListen, type EngineConfig } from "../config/config.js";
import { EngineMetrics } from "../metrics/metrics.js";
import { registerBuildInfo, serveMetrics, splitHostPort } from "../../lib/metrics/http.js";
import { EtcdStore } from "../store/etcd.js";
import { SqliteStore } from "../store/sqlite.js";
import type { Store } from "../store/store.js";
import { Engine } from "./engine.js";
import { EtcdLeaderElection, soleLeader, type Leadership } from "./leader.js";
import { RulePublisher } from "../rules/push.js";
import { type ClusterView, EtcdReplicas, soleEngine } from "./replicas.js";
import { ConsistencyCheck } from "./consistency.js";
import { buildInfo } from "../../lib/process/version.js";
import { openEtcdUntilReady, startWaitingServer } from "./waiting.js";

export interface RunningEngine {
  engine: Engine;
  publisher: RulePublisher;
  store: Store;
  grpc: GrpcServer;
  grpcPort: number;
  metricsPort: number;
  metrics: EngineMetrics;
  /** The leader election of a replica on etcd; absent with the embedded store. */
  election?: EtcdLeaderElection;
  /** Heartbeats against bindings; tests call check() rather than wait for its timer. */
  consistency: ConsistencyCheck;
  stop(): Promise<void>;
  /** SIGHUP: applies the changed keys that can be (Engine.reload); answers those that need a restart. */
  reload(fresh: EngineConfig, changed: string[]): { applied: string[]; restart: string[] };
}

/** Options of runEngine beyond the configuration. */
export interface RunOptions {
  /** Ends the wait for etcd at start (runEngine then rejects). */
  signal?: AbortSignal;
}

export async function runEngine(
  config: EngineConfig, log: Logger = createLogger({ component: "engine" }), grpcLimits: ServerLimits = limitsOf(config), options: RunOptions = {},
): Promise<RunningEngine> {
  // A --listen or --store flag replaces the file's value after it was checked: checked again here.
  for (const key of ["listen", "metricsListen"] as const) checkListen(key, config[key], (m) => new StartError(m));
  let listen = config.listen;
  let store: Store;
  let election: EtcdLeaderElection | undefined;
  let leadership: Leadership;
  let cluster: ClusterView;
  const self = { replica: config.replica, listen: config.listen, startedAtMs: Date.now(), version: buildInfo().version };
  if (config.store.kind === "etcd") {
    const opened = await openEtcd(config, log, options.signal);
    store = opened.store;
    listen = opened.listen;
    const e = (leadership = election = new EtcdLeaderElection(opened.store, config.replica, config.store.etcd!.leaderTtlSeconds, log));
    cluster = new EtcdReplicas(opened.store, self, config.store.etcd!.endpoints, () => e.status().leaderReplica, log);
  } else {
    store = openSqlite(config);
    leadership = soleLeader(store);
    cluster = soleEngine(self);
  }
  self.listen = listen;
  const metrics = new EngineMetrics(store);
  metrics.watchLeadership(() => election?.status().leader ?? true);
  const engine = new Engine(config, store, log, metrics, Date.now, leadership);
  metrics.watchHosts(() => engine.listHosts());
  const consistency = new ConsistencyCheck(engine, log);
  metrics.watchConsistency(consistency);
  metrics.watchEtcd(cluster);
  try {
    await engine.start();
    await election?.start();
    if (cluster instanceof EtcdReplicas) await cluster.start();
  } catch (e) {
    engine.stop();
    await election?.stop();
    if (cluster instanceof EtcdReplicas) await cluster.stop();
    await store.close();
    throw e;
  }
  const publisher = new RulePublisher(store, log);
  metrics.watchWorkers(publisher);
  let grpc: GrpcServer | undefined;
  let http: { server: HttpServer; port: number };
  try {
    grpc = await startGrpcServer(engine, publisher, metrics, log, listen, grpcLimits, cluster).catch((e) => { throw listenError("listen", listen, e); });
    registerBuildInfo(metrics.registry);
    http = await serveMetrics(metrics.registry, config.metricsListen).catch((e) => { throw listenError("metricsListen", config.metricsListen, e); });
  } catch (e) {
    await grpc?.shutdown(0);
    engine.stop();
    await election?.stop();
    if (cluster instanceof EtcdReplicas) await cluster.stop();
    await store.close();
    throw e;
  }
  const where = config.store.kind === "etcd" ? { store: "etcd", endpoints: config.store.etcd!.endpoints, prefix: config.store.etcd!.prefix, replica: config.replica } : { store: config.store.path };
  consistency.start();
  log.info("engine started", { grpcPort: grpc.port, metricsPort: http.port, ...where });
  const served = grpc;
  return {
    engine, publisher, store, grpc: served, grpcPort: served.port, metricsPort: http.port, metrics, election, consistency,
    reload: (fresh, changed) => engine.reload(fresh, changed),
    async stop() {
      consistency.stop();
      await served.shutdown();
      await engine.close();
      // Resigning deletes the leader key, so another replica takes over without waiting for the TTL.
      await election?.stop();
      if (cluster instanceof EtcdReplicas) await cluster.stop();
      await new Promise<void>((r) => http.server.close(() => r()));
      await store.close();
      log.info("engine stopped");
    },
  };
}

/** A start-up failure that names the configuration key and its value (issue 11 §7): logged as "engine could not start". */
export class StartError extends Error {
  override name = "StartError";
}

/** A failed bind of `key` as a StartError with the key and the address; other failures (a TLS file, say) as they are. */
function listenError(key: string, value: string, e: unknown): Error {
  const text = `${(e as { code?: string }).code ?? ""} ${(e as Error).message}`;
  if (text.includes("EADDRINUSE")) return new StartError(`${key}: ${value} is in use`);
  if (text.includes("EADDRNOTAVAIL")) return new StartError(`${key}: ${value} is not an address of this machine`);
  if (text.includes("EACCES")) return new StartError(`${key}: ${value}: permission denied (ports below 1024 need privileges)`);
  if (/No address added|Name resolution failed|ENOTFOUND|EAI_AGAIN/.test(text)) return new StartError(`${key}: ${value}: ${(e as Error).message}`);
  return e as Error;
}

function openSqlite(config: EngineConfig): SqliteStore {
  const path = config.store.path;
  if (!existsSync(dirname(resolve(path)))) throw new StartError(`store.path: ${path}: the folder ${dirname(resolve(path))} does not exist`);
  try {
    return new SqliteStore(path, { sync: config.store.sync });
  } catch (e) {
    const message = (e as Error).message;
    throw new StartError(message.startsWith("store.path:") ? message : `store.path: ${path}: ${message}`);
  }
}

/**
 * The etcd store. When etcd does not answer at once, the gRPC port answers NOT_SERVING (health)
 * and UNAVAILABLE (every call) while the engine tries again with backoff (waiting.ts); resolves
 * the store, and where the engine's gRPC server is to listen: the waiting server's port (so a
 * `listen` with port 0 keeps the port it already told its callers).
 */
async function openEtcd(config: EngineConfig, log: Logger, signal?: AbortSignal): Promise<{ store: EtcdStore; listen: string }> {
  const etcd = config.store.etcd!;
  try {
    return { store: await EtcdStore.open({ endpoints: etcd.endpoints, prefix: etcd.prefix, dialTimeoutMs: etcd.dialTimeoutMs }), listen: config.listen };
  } catch (e) {
    log.warn("etcd does not answer at start; serving NOT_SERVING until it does", { setting: "store.etcd.endpoints", endpoints: etcd.endpoints, error: (e as Error).message });
  }
  const details = `engine ${config.replica} is not ready: etcd (store.etcd.endpoints ${etcd.endpoints.join(", ")}) does not answer yet`;
  const waiting = await startWaitingServer(config, config.listen, details).catch((e) => { throw listenError("listen", config.listen, e); });
  log.info("engine waiting for its store", { grpcPort: waiting.port, endpoints: etcd.endpoints, replica: config.replica });
  try {
    const store = await openEtcdUntilReady(config, log, signal);
    const { host } = splitHostPort(config.listen);
    return { store, listen: `${host.includes(":") ? `[${host}]` : host}:${waiting.port}` };
  } finally {
    await waiting.close();
  }
}

/** The gRPC port's limits from the configuration's `grpc` section (its defaults are SERVER_LIMITS). */
export function limitsOf(config: EngineConfig): ServerLimits {
  const g = config.grpc;
  return {
    maxConnectionIdleMs: g.maxConnectionIdleSeconds * 1000, keepaliveTimeMs: g.keepaliveTimeSeconds * 1000,
    keepaliveTimeoutMs: g.keepaliveTimeoutSeconds * 1000, maxConcurrentStreams: g.maxConcurrentStreams, maxConnections: g.maxConnections,
  };
}
