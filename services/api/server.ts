// The engine's gRPC server: ControlEngine, the standard health service (grpc.health.v1) and
// server reflection, so generic tools (grpcurl, grpc_cli) can list and call the API. With `tls`
// configured it speaks mutual TLS only and checks every call against the caller's certificate
// (auth.ts); without it, it speaks plaintext and trusts every caller.
import { type ServerInterceptor, Server, ServerCredentials, status } from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ControlEngineService } from "../../gen/mip46/v1/control.js";
import { DataPlaneSyncService } from "../../gen/mip46/v1/dataplane.js";
import type { RulePublisher } from "../rules/push.js";
import { dataPlaneSyncService } from "./dataplane.js";
import type { Logger } from "../../lib/log.js";
import { packageRoot } from "../../lib/process/version.js";
import type { Engine } from "../engine/engine.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import { controlService, SERVICE_NAME } from "./control.js";
import { authInterceptor, type Denial, type LeaseOwners } from "./auth.js";
import { readTlsFiles, serverCredentials } from "../../lib/tls/tls.js";

export const SYNC_SERVICE_NAME = "mip46.v1.DataPlaneSync";
/** The .proto files reflection serves: the checkout's proto/, from the sources or from dist/. */
export const PROTO_DIR = join(packageRoot() ?? fileURLToPath(new URL("../..", import.meta.url)), "proto");

export interface GrpcServer {
  server: Server;
  port: number;
  health: HealthImplementation;
  /** Marks the server NOT_SERVING, then stops it, letting calls in flight finish (up to graceMs). */
  shutdown(graceMs?: number): Promise<void>;
}

export async function startGrpcServer(engine: Engine, publisher: RulePublisher, metrics: EngineMetrics, log: Logger, listen: string): Promise<GrpcServer> {
  const tls = engine.config.tls;
  let creds = ServerCredentials.createInsecure();
  const interceptors: ServerInterceptor[] = [];
  if (tls) {
    const material = readTlsFiles(tls);
    if (material.keyReadableByOthers) log.warn("the TLS key file can be read by other users; make it mode 0600", { file: tls.key });
    creds = serverCredentials(material);
    interceptors.push(authInterceptor(leaseOwners(engine), log, (d) => countDenied(metrics, d)));
  } else {
    log.warn("gRPC without TLS: callers are not authenticated and every call is allowed; configure tls {ca, cert, key} outside a lab");
  }
  const server = new Server({ "grpc.max_receive_message_length": 4 * 1024 * 1024, "grpc.enable_channelz": 0, interceptors });
  server.addService(ControlEngineService, controlService(engine, metrics, log));
  server.addService(DataPlaneSyncService, dataPlaneSyncService(publisher, log));
  const health = new HealthImplementation({ "": "SERVING", [SERVICE_NAME]: "SERVING", [SYNC_SERVICE_NAME]: "SERVING" });
  health.addToServer(server);
  const definition = protoLoader.loadSync(["mip46/v1/control.proto", "mip46/v1/dataplane.proto", healthProtoPath], {
    includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  new ReflectionService(definition).addToServer(server);
  if (tls) log.info("gRPC over mutual TLS; calls are checked against the client certificate's identity", { ca: tls.ca, cert: tls.cert });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, creds, (err, p) => (err ? reject(err) : resolve(p))));
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

/** What the authorisation of ReleaseCareOf asks: whose lease a call names (one lookup, through the engine). */
export function leaseOwners(engine: Engine): LeaseOwners {
  return {
    async hostOfLease(sel) {
      return (await engine.leaseToRelease(sel))?.hostId;
    },
  };
}

const STATUS_NAME = Object.fromEntries(Object.entries(status).filter(([, v]) => typeof v === "number").map(([k, v]) => [v, k])) as Record<number, string>;

/** Refused calls count in grpc_server_handled_total like any other, with their status code. */
function countDenied(metrics: EngineMetrics, d: Denial): void {
  const [, service = "", method = ""] = /^\/([^/]+)\/(.+)$/.exec(d.path) ?? [];
  const type = d.requestStream ? (d.responseStream ? "bidi_stream" : "client_stream") : d.responseStream ? "server_stream" : "unary";
  metrics.handled.inc({ grpc_type: type, grpc_service: service, grpc_method: method, grpc_code: STATUS_NAME[d.code] ?? String(d.code) });
}
