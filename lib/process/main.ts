// What every mip46 daemon does around its work: wait for SIGTERM/SIGINT, and turn the outcome
// of main() into an exit code with a JSON log line for an unexpected failure.
import type { Logger } from "../log.js";

/** Resolves with the signal's name when SIGTERM or SIGINT arrives (logged as "stopping"). */
export function stopSignal(log: Logger): Promise<string> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      log.info("stopping", { signal });
      resolve(signal);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

/** Runs main() and exits with its code; an exception is logged as `<name> failed` and exits 1. */
export function runMain(name: string, main: () => Promise<number>): void {
  main().then((code) => process.exit(code), (e) => {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: "error", msg: `${name} failed`, error: String(e?.stack ?? e) })}\n`);
    process.exit(1);
  });
}
