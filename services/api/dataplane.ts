// The gRPC adapter of DataPlaneSync: one bidirectional stream per worker.
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { DataPlaneSyncServer, EngineMessage, WorkerMessage } from "../../gen/mip46/v1/dataplane.js";
import type { Logger } from "../../lib/log.js";
import type { RulePublisher, WorkerSession } from "../rules/push.js";

export function dataPlaneSyncService(publisher: RulePublisher, log: Logger): DataPlaneSyncServer {
  return {
    syncRules(call: ServerDuplexStream<WorkerMessage, EngineMessage>) {
      let session: WorkerSession | undefined;
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
        if (msg?.$case === "hello" && !session) {
          if (!msg.value.workerId) {
            call.emit("error", new Error("hello.worker_id is required"));
            return call.end();
          }
          log.info("worker connected", { workerId: msg.value.workerId, appliedRevision: msg.value.appliedRevision });
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
