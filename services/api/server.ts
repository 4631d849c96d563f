// The engine's gRPC server: ControlEngine, the standard health service (grpc.health.v1) and
// server reflection, so generic tools (grpcurl, grpc_cli) can list and call the API.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import { fileURLToPath } from "node:url";
import { ControlEngineService } from "../../gen/mip46/v1/control.js";
import { DataPlaneSyncService } from "../../gen/mip46/v1/dataplane.js";
import type { RulePublisher } from "../tunnel/push.js";
import { dataPlaneSyncService } from "./dataplane.js";
import type { Logger } from "../../lib/log.js";
import type { Engine } from "../engine/engine.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import { controlService, SERVICE_NAME } from "./control.js";

export const SYNC_SERVICE_NAME = "mip46.v1.DataPlaneSync";
export const PROTO_DIR = fileURLToPath(new URL("../../proto", import.meta.url));

export interface GrpcServer {
  server: Server;
  port: number;
  health: HealthImplementation;
  /** Marks the server NOT_SERVING, then stops it, letting calls in flight finish (up to graceMs). */
  shutdown(graceMs?: number): Promise<void>;
}

export async function startGrpcServer(engine: Engine, publisher: RulePublisher, metrics: EngineMetrics, log: Logger, listen: string): Promise<GrpcServer> {
  const server = new Server({ "grpc.max_receive_message_length": 4 * 1024 * 1024, "grpc.enable_channelz": 0 });
  server.addService(ControlEngineService, controlService(engine, metrics, log));
  server.addService(DataPlaneSyncService, dataPlaneSyncService(publisher, log));
  const health = new HealthImplementation({ "": "SERVING", [SERVICE_NAME]: "SERVING", [SYNC_SERVICE_NAME]: "SERVING" });
  health.addToServer(server);
  const definition = protoLoader.loadSync(["mip46/v1/control.proto", "mip46/v1/dataplane.proto", healthProtoPath], {
    includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  new ReflectionService(definition).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    server, port, health,
    async shutdown(graceMs = 5000) {
      health.setStatus("", "NOT_SERVING");
      health.setStatus(SERVICE_NAME, "NOT_SERVING");
      health.setStatus(SYNC_SERVICE_NAME, "NOT_SERVING");
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => { server.forceShutdown(); resolve(); }, graceMs);
        server.tryShutdown(() => { clearTimeout(force); resolve(); });
      });
    },
  };
}
