// Run inside the worker namespace: the worker with `workers: N` in this process
// (runThreadedWorker), so that the test can end one of its threads. argv: a JSON file
// {config, table?, minBackoffMs?}. Prints one JSON line per thread event ({"event": ...}) and
// answers commands on stdin: "kill N" (end thread N as a crash would), "stats" (prints
// {"stats": per thread received frames}), "stop".
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { silentLogger } from "../../../lib/log.js";
import { parseWorkerConfig } from "../../../dataplane/worker/config.js";
import { runThreadedWorker } from "../../../dataplane/worker/threads.js";

const input = JSON.parse(readFileSync(process.argv[2], "utf8")) as { config: unknown; table?: { revision: number; rules: never[] }; minBackoffMs?: number };
const say = (o: unknown) => process.stdout.write(JSON.stringify(o, (_k, v) => (typeof v === "bigint" ? Number(v) : v)) + "\n");
const running = await runThreadedWorker(parseWorkerConfig(input.config), silentLogger, {
  table: input.table && { revision: BigInt(input.table.revision), rules: input.table.rules },
  // The restart waits (nearly) the whole first window, so that the test can change the table while the thread is down.
  minBackoffMs: input.minBackoffMs, random: () => 0.999,
  onEvent: say,
});
say({ event: "started", metricsPort: running.metricsPort, threads: running.threads.threads() });
for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, arg] = line.trim().split(" ");
  if (cmd === "kill") await running.threads.kill(Number(arg));
  else if (cmd === "stats") {
    const s = await running.threads.stats();
    say({ stats: s.threads.map((t) => t?.interfaces.map((i) => i.rxPackets) ?? null), revisions: s.threads.map((t) => t?.revision), threads: running.threads.threads() });
  } else if (cmd === "stop") break;
}
await running.stop();
say({ event: "stopped" });
