// The engine's gRPC server: ControlEngine, the standard health service (grpc.health.v1) and
// server reflection, so generic tools (grpcurl, grpc_cli, buf curl) can list, describe and call the API. With `tls`
// configured it speaks mutual TLS only and checks every call against the caller's certificate
// (auth.ts); without it, it speaks plaintext and trusts every caller.
import { type ServerInterceptor, Server, ServerCredentials } from "@grpc/grpc-js";
import type * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import type { Server as NetServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ControlEngineService } from "../../gen/mip46/v1/control.js";
import { DataPlaneSyncService } from "../../gen/mip46/v1/dataplane.js";
import type { RulePublisher } from "../rules/push.js";
import { type ClusterView, soleEngine } from "../engine/replicas.js";
import { dataPlaneSyncService } from "./dataplane.js";
import type { Logger } from "../../lib/log.js";
import { packageRoot } from "../../lib/process/version.js";
import type { Engine } from "../engine/engine.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import { controlService, SERVICE_NAME } from "./control.js";
import { STATUS_NAME } from "./status.js";
import { authInterceptor, type Denial, type LeaseOwners } from "./auth.js";
import { readTlsFiles, serverCredentials } from "../../lib/tls/tls.js";

export const SYNC_SERVICE_NAME = "mip46.v1.DataPlaneSync";
/** The descriptors reflection serves, in the checkout's gen/ (from the sources or from dist/). */
const DESCRIPTORS = join(packageRoot() ?? fileURLToPath(new URL("../..", import.meta.url)), "gen", "descriptors.binpb");

/**
 * What server reflection serves: the FileDescriptorProtos protoc wrote for `npm run generate`
 * (gen/descriptors.binpb), with the .proto comments and fully qualified type names, so that a
 * generic tool resolves every type (the health service's too) and shows each call's comment.
 * ReflectionService reads only `fileDescriptorProtos` of what it is given.
 */
function reflectedFiles(): protoLoader.PackageDefinition {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTORS));
  const fileDescriptorProtos = set.file.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f)));
  return { files: { fileDescriptorProtos } } as unknown as protoLoader.PackageDefinition;
}

export interface GrpcServer {
  server: Server;
  port: number;
  health: HealthImplementation;
  /** Marks the server NOT_SERVING, then stops it, letting calls in flight finish (up to graceMs). */
  shutdown(graceMs?: number): Promise<void>;
}

/**
 * The gRPC port's connection limits (issue 11 §4). These are defaults until the configuration
 * has keys for them; grpc-js's own names are given for each.
 */
export interface ServerLimits {
  /** `grpc.max_connection_idle_ms`: a connection with no call for this long gets a GOAWAY and closes (agents beat every few seconds; a worker's stream is a call). */
  maxConnectionIdleMs: number;
  /** `grpc.keepalive_time_ms`: the server pings a connection after this long... */
  keepaliveTimeMs: number;
  /** `grpc.keepalive_timeout_ms`: ...and closes it when the ping is not answered within this: a peer that vanished does not hold a connection. */
  keepaliveTimeoutMs: number;
  /** `grpc.max_concurrent_streams`: calls in flight on one connection. */
  maxConcurrentStreams: number;
  /** Open connections on the listening socket; more are closed at once (the socket's `maxConnections`: grpc-js has no option for it). */
  maxConnections: number;
}

export const SERVER_LIMITS: Readonly<ServerLimits> = {
  maxConnectionIdleMs: 5 * 60_000,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  maxConcurrentStreams: 100,
  maxConnections: 4096,
};

export async function startGrpcServer(
  engine: Engine, publisher: RulePublisher, metrics: EngineMetrics, log: Logger, listen: string, limits: ServerLimits = SERVER_LIMITS,
  cluster: ClusterView = soleEngine({ replica: engine.config.replica, listen, startedAtMs: Date.now(), version: "" }),
): Promise<GrpcServer> {
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
  const server = new Server({
    "grpc.max_receive_message_length": 4 * 1024 * 1024, "grpc.enable_channelz": 0, interceptors,
    "grpc.max_connection_idle_ms": limits.maxConnectionIdleMs,
    "grpc.keepalive_time_ms": limits.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": limits.keepaliveTimeoutMs,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
  });
  server.addService(ControlEngineService, controlService(engine, metrics, log, publisher, cluster));
  server.addService(DataPlaneSyncService, dataPlaneSyncService(publisher, log));
  const health = new HealthImplementation({ "": "SERVING", [SERVICE_NAME]: "SERVING", [SYNC_SERVICE_NAME]: "SERVING" });
  health.addToServer(server);
  new ReflectionService(reflectedFiles()).addToServer(server);
  if (tls) log.info("gRPC over mutual TLS; calls are checked against the client certificate's identity", { ca: tls.ca, cert: tls.cert });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, creds, (err, p) => (err ? reject(err) : resolve(p))));
  capConnections(server, limits.maxConnections, log);
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

/**
 * grpc-js has no option for a connection cap, but each listening socket is a node:net server,
 * whose `maxConnections` closes a connection over the cap as it is accepted. grpc-js keeps those
 * servers in a private map; should a release rename it, the engine says the cap is not applied.
 */
function capConnections(server: Server, max: number, log: Logger): void {
  const listening = (server as unknown as { http2Servers?: Map<NetServer, unknown> }).http2Servers;
  if (!(listening instanceof Map)) {
    log.warn("the gRPC connection cap is not applied: this grpc-js keeps its listening sockets elsewhere", { maxConnections: max });
    return;
  }
  for (const s of listening.keys()) s.maxConnections = max;
}

/** What the authorisation of ReleaseCareOf asks: whose lease a call names (one lookup, through the engine). */
export function leaseOwners(engine: Engine): LeaseOwners {
  return {
    async hostOfLease(sel) {
      return (await engine.leaseToRelease(sel))?.hostId;
    },
  };
}

/** Refused calls count in grpc_server_handled_total like any other, with their status code. */
function countDenied(metrics: EngineMetrics, d: Denial): void {
  const [, service = "", method = ""] = /^\/([^/]+)\/(.+)$/.exec(d.path) ?? [];
  const type = d.requestStream ? (d.responseStream ? "bidi_stream" : "client_stream") : d.responseStream ? "server_stream" : "unary";
  metrics.handled.inc({ grpc_type: type, grpc_service: service, grpc_method: method, grpc_code: STATUS_NAME[d.code] ?? String(d.code) });
}
