// The Watch RPC: the engine's change feed (services/engine/watch.ts) as a server stream.
import { type ServerWritableStream, type ServiceError, Metadata, status } from "@grpc/grpc-js";
import type { WatchResponse, WatchRequest } from "../../gen/mip46/v1/control.js";
import type { Logger } from "../../lib/log.js";
import type { Engine } from "../engine/engine.js";
import { ChangeHub, type ChangeEvent } from "../engine/watch.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import { bindingMessage, leaseMessage, migrationMessage } from "./messages.js";
import { STATUS_NAME } from "./status.js";

/**
 * Watchers at once per replica. They share one change feed (ChangeHub), so a watcher costs its
 * writes, not reads of the store; the bound is on the memory of their queues.
 */
export const MAX_WATCHERS = 256;
/** A watcher that reads this far behind (bytes queued) is cut off rather than held in memory. */
const MAX_QUEUED_BYTES = 8 << 20;

function eventMessage(e: ChangeEvent, atMs: number): WatchResponse {
  const at = BigInt(atMs);
  switch (e.kind) {
    case "revision": return { atMs: at, event: { $case: "revision", value: { revision: e.revision, updated: e.updated, removed: e.removed } } };
    case "binding": return { atMs: at, event: { $case: "binding", value: { binding: bindingMessage(e.binding), removed: e.removed } } };
    case "lease": return { atMs: at, event: { $case: "lease", value: { lease: leaseMessage(e.lease), released: e.released } } };
    case "migration": return { atMs: at, event: { $case: "migration", value: migrationMessage(e.migration) } };
    case "current-end": return { atMs: at, event: { $case: "currentEnd", value: {} } };
  }
}

export function watchHandler(engine: Engine, metrics: EngineMetrics, log: Logger, now: () => number = Date.now) {
  let watchers = 0;
  const hub = new ChangeHub(engine);
  const labels = { grpc_type: "server_stream", grpc_service: "mip46.v1.ControlEngine", grpc_method: "Watch" };
  return (call: ServerWritableStream<WatchRequest, WatchResponse>): void => {
    const fail = (code: status, details: string) => {
      metrics.handled.inc({ ...labels, grpc_code: STATUS_NAME[code] ?? String(code) });
      call.emit("error", { code, details, metadata: new Metadata() } satisfies Partial<ServiceError>);
    };
    if (watchers >= MAX_WATCHERS) return fail(status.RESOURCE_EXHAUSTED, `this engine serves at most ${MAX_WATCHERS} watchers at once`);
    watchers++;
    let ended = false;
    let unwatch: (() => void) | undefined;
    const end = (then?: () => void) => {
      if (ended) return;
      ended = true;
      watchers--;
      unwatch?.();
      then?.();
    };
    call.on("cancelled", () => end(() => metrics.handled.inc({ ...labels, grpc_code: "CANCELLED" })));
    call.on("close", () => end());
    hub.watch((e) => {
      if (ended) return;
      call.write(eventMessage(e, now()));
      if (call.writableLength > MAX_QUEUED_BYTES) end(() => fail(status.RESOURCE_EXHAUSTED, "this watcher reads too slowly: over 8 MiB of changes wait for it"));
    }, call.request.changesOnly).then((stop) => {
      // Ended while the feed started: it leaves at once.
      if (ended) stop();
      else unwatch = stop;
    }, (e: unknown) => {
      log.error("watch failed", { err: e });
      end(() => fail(status.UNAVAILABLE, `the engine could not read its state: ${(e as Error).message}`));
    });
  };
}
