// What an engine on etcd does while etcd does not answer at start (issue 11 §7): it keeps trying
// (lib/retry.ts), and its gRPC port answers meanwhile: the health service NOT_SERVING, every
// ControlEngine and DataPlaneSync call UNAVAILABLE, which the agents' and workers' clients wait
// out or take to another replica. Once etcd answers this server goes and the engine's own takes
// the same port.
import {
  type handleUnaryCall, type Server as GrpcServerType, Server, ServerCredentials, status, type StatusObject, type UntypedHandleCall, type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { ControlEngineService } from "../../gen/mip46/v1/control.js";
import { DataPlaneSyncService } from "../../gen/mip46/v1/dataplane.js";
import type { Logger } from "../../lib/log.js";
import { retry } from "../../lib/retry.js";
import { readTlsFiles, serverCredentials } from "../../lib/tls/tls.js";
import { SERVICE_NAME } from "../api/control.js";
import { SYNC_SERVICE_NAME } from "../api/server.js";
import type { EngineConfig } from "../config/config.js";
import { EtcdStore } from "../store/etcd.js";

/** The first wait between attempts to reach etcd, and the longest (ms): jittered, doubling (lib/retry.ts). */
export const ETCD_RETRY = { baseMs: 500, capMs: 10_000 };

/** A gRPC server on the engine's port that only says the engine is not ready yet. */
export interface WaitingServer {
  port: number;
  close(): Promise<void>;
}

/** Every method of a service answering UNAVAILABLE with `details`. */
function unavailable(service: typeof ControlEngineService | typeof DataPlaneSyncService, details: string): UntypedServiceImplementation {
  const err: Partial<StatusObject> = { code: status.UNAVAILABLE, details };
  const streaming: UntypedHandleCall = (call: { emit(event: "error", e: Partial<StatusObject>): void }) => call.emit("error", err);
  const unary: handleUnaryCall<unknown, unknown> = (_call, callback) => callback(err, null);
  return Object.fromEntries(Object.entries(service).map(([name, m]) => [name, m.responseStream || m.requestStream ? streaming : unary]));
}

export async function startWaitingServer(config: EngineConfig, listen: string, details: string): Promise<WaitingServer> {
  // Channelz stays on here: grpc-js 1.14's forceShutdown() destroys only the sessions channelz
  // tracks, and the connections must go, so that callers reconnect to the engine's own server.
  const server: GrpcServerType = new Server();
  const health = new HealthImplementation({ "": "NOT_SERVING", [SERVICE_NAME]: "NOT_SERVING", [SYNC_SERVICE_NAME]: "NOT_SERVING" });
  health.addToServer(server);
  server.addService(ControlEngineService, unavailable(ControlEngineService, details));
  server.addService(DataPlaneSyncService, unavailable(DataPlaneSyncService, details));
  const creds = config.tls ? serverCredentials(readTlsFiles(config.tls)) : ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, creds, (err, p) => (err ? reject(err) : resolve(p))));
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      // Its callers are told UNAVAILABLE at once, and health watchers see the stream end: nothing to wait for.
      server.forceShutdown();
      resolve();
    }),
  };
}

/**
 * Opens the etcd store, trying again with backoff for as long as etcd does not answer (each
 * attempt waits up to store.etcd.dialTimeoutMs); `signal` ends the wait.
 */
export function openEtcdUntilReady(config: EngineConfig, log: Logger, signal?: AbortSignal): Promise<EtcdStore> {
  const etcd = config.store.etcd!;
  return retry(() => EtcdStore.open({ endpoints: etcd.endpoints, prefix: etcd.prefix, dialTimeoutMs: etcd.dialTimeoutMs }), {
    ...ETCD_RETRY, signal, retryable: () => true,
    onRetry: (e, attempt, delayMs) => log.warn("etcd does not answer; trying again", {
      setting: "store.etcd.endpoints", endpoints: etcd.endpoints, attempt, delayMs, error: (e as Error).message,
    }),
  });
}
