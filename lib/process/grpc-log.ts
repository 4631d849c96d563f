// grpc-js writes its own lines to stderr ("E 2026-… | No address added …"); a daemon's stderr
// holds JSON lines only, so they go through the daemon's logger instead.
import { setLogger, setLogVerbosity, logVerbosity } from "@grpc/grpc-js";
import type { Logger } from "../log.js";

export function routeGrpcLogs(log: Logger): void {
  const line = (...args: unknown[]) => log.warn("grpc-js", { message: args.map(String).join(" ").trim() });
  setLogger({ error: line, warn: line, info: line, debug: line, log: line } as unknown as Partial<Console>);
  setLogVerbosity(logVerbosity.ERROR);
}
