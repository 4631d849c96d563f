// Wires an engine together: store, engine, metrics, gRPC. Used by the executable and by tests,
// which run a real engine on port 0.
import type { Server as HttpServer } from "node:http";
import { createLogger, type Logger } from "../../lib/log.js";
import { startGrpcServer, type GrpcServer } from "../api/server.js";
import type { EngineConfig } from "../config/config.js";
import { EngineMetrics, serveMetrics } from "../metrics/metrics.js";
import { SqliteStore } from "../store/sqlite.js";
import type { Store } from "../store/store.js";
import { Engine } from "./engine.js";
import { RulePublisher } from "../tunnel/push.js";

export interface RunningEngine {
  engine: Engine;
  publisher: RulePublisher;
  store: Store;
  grpc: GrpcServer;
  grpcPort: number;
  metricsPort: number;
  metrics: EngineMetrics;
  stop(): Promise<void>;
}

export async function runEngine(config: EngineConfig, log: Logger = createLogger({ component: "engine" })): Promise<RunningEngine> {
  const store = new SqliteStore(config.store.path, { sync: config.store.sync });
  const metrics = new EngineMetrics(store);
  const engine = new Engine(config, store, log, metrics);
  await engine.start();
  const publisher = new RulePublisher(store, log);
  metrics.watchWorkers(publisher);
  let grpc: GrpcServer;
  let http: { server: HttpServer; port: number };
  try {
    grpc = await startGrpcServer(engine, publisher, metrics, log, config.listen);
    http = await serveMetrics(metrics.registry, config.metricsListen);
  } catch (e) {
    engine.stop();
    await store.close();
    throw e;
  }
  log.info("engine started", { grpcPort: grpc.port, metricsPort: http.port, store: config.store.path });
  return {
    engine, publisher, store, grpc, grpcPort: grpc.port, metricsPort: http.port, metrics,
    async stop() {
      await grpc.shutdown();
      engine.stop();
      await new Promise<void>((r) => http.server.close(() => r()));
      await store.close();
      log.info("engine stopped");
    },
  };
}
