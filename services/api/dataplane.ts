// The gRPC adapter of DataPlaneSync: one bidirectional stream per worker.
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { DataPlaneSyncServer, EngineMessage, WorkerMessage } from "../../gen/mip46/v1/dataplane.js";
import type { Logger } from "../../lib/log.js";
import type { RulePublisher, WorkerSession } from "../rules/push.js";

export function dataPlaneSyncService(publisher: RulePublisher, log: Logger): DataPlaneSyncServer {
  return {
    syncRules(call: ServerDuplexStream<WorkerMessage, EngineMessage>) {
      let session: WorkerSession | undefined;
      /** The worker the stream's hello named: a stream is one worker's, from its first hello on. */
      let workerId: string | undefined;
      let ended = false;
      const send = (m: EngineMessage) => {
        if (!ended) call.write(m);
      };
      const end = () => {
        if (ended) return;
        ended = true;
        if (session) publisher.detach(session);
        log.info("worker disconnected", { workerId: session?.workerId });
      };
      call.on("data", (m: WorkerMessage) => {
        const msg = m.message;
        if (msg?.$case === "hello" && workerId !== undefined) {
          // A repeated hello changes nothing; one naming another worker ends the stream (the
          // certificate is checked on every hello too, in auth.ts).
          if (msg.value.workerId === workerId) return;
          log.warn("worker stream refused", { workerId, hello: msg.value.workerId.slice(0, 64) });
          call.emit("error", new Error(`hello.worker_id: this stream is worker ${workerId}'s; a stream says hello once`));
          return call.end();
        }
        if (msg?.$case === "hello") {
          if (!msg.value.workerId) {
            call.emit("error", new Error("hello.worker_id is required"));
            return call.end();
          }
          workerId = msg.value.workerId;
          log.info("worker connected", { workerId: msg.value.workerId, appliedRevision: msg.value.appliedRevision, appliedEpoch: msg.value.appliedEpoch || undefined });
          publisher.attach(msg.value.workerId, send).then((s) => {
            session = s;
            if (ended) publisher.detach(s);
          }, (e) => log.error("worker attach failed", { err: e }));
        } else if (msg?.$case === "ack") {
          session?.ack(msg.value.revision);
        }
      });
      call.on("end", () => { end(); call.end(); });
      call.on("error", end);
      call.on("cancelled", end);
      call.on("close", end);
    },
  };
}
