// The Backup RPC: an online copy of the store, streamed to the caller in chunks and then removed.
import type { ServerWritableStream } from "@grpc/grpc-js";
import { mkdtempSync, openSync, readSync, closeSync, fstatSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BackupResponse, BackupRequest } from "../../gen/mip46/v1/control.js";
import type { Logger } from "../../lib/log.js";
import type { Engine } from "../engine/engine.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import { audit } from "./audit.js";
import { STATUS_NAME, toStatus } from "./status.js";

const CHUNK = 1 << 20;

export function backupHandler(engine: Engine, metrics: EngineMetrics, log: Logger) {
  const labels = { grpc_type: "server_stream", grpc_service: "mip46.v1.ControlEngine", grpc_method: "Backup" };
  return (call: ServerWritableStream<BackupRequest, BackupResponse>): void => {
    const dir = mkdtempSync(join(tmpdir(), "mip46-backup-"));
    const path = join(dir, "engine.db");
    let cancelled = false;
    call.on("cancelled", () => (cancelled = true));
    void (async () => {
      const { revision } = await engine.backup(path);
      const fd = openSync(path, "r");
      try {
        const size = fstatSync(fd).size;
        let first = true;
        for (let at = 0; at < size && !cancelled;) {
          const buf = Buffer.alloc(Math.min(CHUNK, size - at));
          const n = readSync(fd, buf, 0, buf.length, at);
          at += n;
          const chunk: BackupResponse = { data: buf.subarray(0, n), revision: first ? revision : 0n, totalBytes: first ? BigInt(size) : 0n };
          first = false;
          // Backpressure: wait for the stream to drain rather than hold the whole file in memory.
          if (!call.write(chunk)) await new Promise<void>((resolve) => call.once("drain", () => resolve()));
        }
        audit(log, call, { what: "Backup", request: {}, before: {}, after: { revision: revision.toString(), bytes: size } });
      } finally {
        closeSync(fd);
      }
    })().then(
      () => {
        rmSync(dir, { recursive: true, force: true });
        metrics.handled.inc({ ...labels, grpc_code: cancelled ? "CANCELLED" : "OK" });
        if (!cancelled) call.end();
      },
      (e: unknown) => {
        rmSync(dir, { recursive: true, force: true });
        const err = toStatus(e, log, "Backup");
        metrics.handled.inc({ ...labels, grpc_code: STATUS_NAME[err.code!] ?? String(err.code) });
        call.emit("error", err);
      },
    );
  };
}
