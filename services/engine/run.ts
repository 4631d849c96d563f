// Wires an engine together: store, engine, metrics, gRPC. Used by the executable and by tests,
// which run a real engine on port 0.
import type { Server as HttpServer } from "node:http";
import { createLogger, type Logger } from "../../lib/log.js";
import { type ServerLimits, startGrpcServer, type GrpcServer } from "../api/server.js";
import type { EngineConfig } from "../config/config.js";
import { EngineMetrics } from "../metrics/metrics.js";
import { registerBuildInfo, serveMetrics } from "../../lib/metrics/http.js";
import { EtcdStore } from "../store/etcd.js";
import { SqliteStore } from "../store/sqlite.js";
import type { Store } from "../store/store.js";
import { Engine } from "./engine.js";
import { EtcdLeaderElection, soleLeader, type Leadership } from "./leader.js";
import { RulePublisher } from "../rules/push.js";
import { type ClusterView, EtcdReplicas, soleEngine } from "./replicas.js";
import { ConsistencyCheck } from "./consistency.js";
import { buildInfo } from "../../lib/process/version.js";

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
}

export async function runEngine(
  config: EngineConfig, log: Logger = createLogger({ component: "engine" }), grpcLimits: ServerLimits = limitsOf(config),
): Promise<RunningEngine> {
  let store: Store;
  let election: EtcdLeaderElection | undefined;
  let leadership: Leadership;
  let cluster: ClusterView;
  const self = { replica: config.replica, listen: config.listen, startedAtMs: Date.now(), version: buildInfo().version };
  if (config.store.kind === "etcd") {
    const etcd = config.store.etcd!;
    const etcdStore = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: etcd.prefix, dialTimeoutMs: etcd.dialTimeoutMs });
    store = etcdStore;
    const e = (leadership = election = new EtcdLeaderElection(etcdStore, config.replica, etcd.leaderTtlSeconds, log));
    cluster = new EtcdReplicas(etcdStore, self, etcd.endpoints, () => e.status().leaderReplica, log);
  } else {
    store = new SqliteStore(config.store.path, { sync: config.store.sync });
    leadership = soleLeader(store);
    cluster = soleEngine(self);
  }
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
  let grpc: GrpcServer;
  let http: { server: HttpServer; port: number };
  try {
    grpc = await startGrpcServer(engine, publisher, metrics, log, config.listen, grpcLimits, cluster);
    registerBuildInfo(metrics.registry);
    http = await serveMetrics(metrics.registry, config.metricsListen);
  } catch (e) {
    engine.stop();
    await election?.stop();
    if (cluster instanceof EtcdReplicas) await cluster.stop();
    await store.close();
    throw e;
  }
  const where = config.store.kind === "etcd" ? { store: "etcd", endpoints: config.store.etcd!.endpoints, prefix: config.store.etcd!.prefix, replica: config.replica } : { store: config.store.path };
  consistency.start();
  log.info("engine started", { grpcPort: grpc.port, metricsPort: http.port, ...where });
  return {
    engine, publisher, store, grpc, grpcPort: grpc.port, metricsPort: http.port, metrics, election, consistency,
    async stop() {
      consistency.stop();
      await grpc.shutdown();
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

/** The gRPC port's limits from the configuration's `grpc` section (its defaults are SERVER_LIMITS). */
export function limitsOf(config: EngineConfig): ServerLimits {
  const g = config.grpc;
  return {
    maxConnectionIdleMs: g.maxConnectionIdleSeconds * 1000, keepaliveTimeMs: g.keepaliveTimeSeconds * 1000,
    keepaliveTimeoutMs: g.keepaliveTimeoutSeconds * 1000, maxConcurrentStreams: g.maxConcurrentStreams, maxConnections: g.maxConnections,
  };
}
