// The worker's side of bench/snapshot.ts, in a process of its own (bundled as the worker is, so
// that its RSS is a worker's): reads the snapshot's EngineMessage chunks from a file, decodes
// them as the sync client does (dataplane/sync/client.ts), and applies the table as the worker
// does: with --threads 1 to one Forwarder (runWorker), with N > 1 as runThreadedWorker does,
// through a ThreadTable in this thread and a Forwarder in each of N worker threads (no rings:
// the table's path alone). Prints one JSON line of figures.
//
//   node --expose-gc dist/bench-snapshot-worker.mjs CHUNKS-FILE CONFIG-FILE THREADS IDLE-SECONDS
import { readFileSync } from "node:fs";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { Forwarder, type ForwarderConfig } from "../dataplane/forward/index.js";
import { applyTable, ThreadTable, type TableMessage } from "../dataplane/worker/threadtable.js";
import { EngineMessage } from "../gen/mip46/v1/dataplane.js";
import type { Rule } from "../lib/rules/rules.js";
import { ruleFromMessage } from "../lib/rules/wire.js";

const mb = (n: number) => Math.round(n / 2 ** 20);

/** Full collections, a little apart: V8 gives the freed pages back to the system after the collection that freed them. */
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    global.gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function memory(): Promise<{ rssMiB: number; heapMiB: number }> {
  await collect();
  const m = process.memoryUsage();
  return { rssMiB: mb(m.rss), heapMiB: mb(m.heapUsed) };
}

/** The chunks, each a 4-byte length and an EngineMessage. */
function chunks(path: string): Uint8Array[] {
  const b = readFileSync(path);
  const out: Uint8Array[] = [];
  for (let at = 0; at < b.length; ) {
    const n = b.readUInt32BE(at);
    out.push(b.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

function decode(wire: Uint8Array[]): Rule[] {
  const rules: Rule[] = [];
  for (const w of wire) {
    const m = EngineMessage.decode(w).message;
    if (m?.$case === "snapshotRules") for (const r of m.value.rules) { const rule = ruleFromMessage(r); if (rule) rules.push(rule); }
  }
  return rules;
}

async function main(): Promise<void> {
  const [file, configFile, threadsArg, idleArg] = process.argv.slice(2);
  const threads = Number(threadsArg);
  const config = JSON.parse(readFileSync(configFile, "utf8")) as ForwarderConfig;
  let wire: Uint8Array[] | undefined = chunks(file);
  const forwarder = threads === 1 ? new Forwarder(config, 0) : undefined;
  const workers = threads === 1 ? [] : Array.from({ length: threads }, () => new Worker(new URL(import.meta.url), { workerData: { config } }));
  await Promise.all(workers.map((w) => new Promise((r) => w.once("message", r))));
  const before = await memory();

  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let rules: Rule[] | undefined = decode(wire);
  const count = rules.length;
  const decodeMs = performance.now() - t0;
  let keepMs = 0;
  let threadMs: number[] = [];
  if (forwarder) {
    forwarder.replaceRules({ revision: 1n, rules });
  } else {
    // As ForwardingThreads.replaceRules: kept (parsed once) here, its image posted to every thread.
    const table = new ThreadTable();
    const t1 = performance.now();
    const m: TableMessage = table.snapshot(1, { revision: 1n, rules });
    keepMs = performance.now() - t1;
    const answers = workers.map((w) => new Promise<{ ms: number }>((r) => w.once("message", r)));
    for (const w of workers) w.postMessage(m);
    threadMs = (await Promise.all(answers)).map((a) => a.ms);
    (globalThis as { keep?: unknown }).keep = table;
  }
  const appliedMs = performance.now() - t0;
  const used = process.cpuUsage(cpu0);
  // CPU of the whole process (every thread) while it applied: the figure the machine's load does not change.
  const cpuMs = (used.user + used.system) / 1000;
  rules = undefined;
  wire = undefined;
  // Every thread collects, then this one; the process's RSS after.
  const measure = async () => {
    const threads = await Promise.all(workers.map((w) => {
      const answer = new Promise<{ heapMiB: number; rules: number }>((r) => w.once("message", r));
      w.postMessage("memory");
      return answer;
    }));
    return { threads, ...(await memory()) };
  };
  const after = await measure();
  // Idle, as a worker is between changes: V8's memory reducer gives back the young generation the apply grew.
  await new Promise((r) => setTimeout(r, Number(idleArg) * 1000));
  const idle = await measure();
  const threadMemory = idle.threads;
  if (forwarder && forwarder.ruleCount !== count) throw new Error("the forwarder holds a different number of rules");
  for (const t of threadMemory) if (t.rules !== count) throw new Error("a thread holds a different number of rules");
  process.stdout.write(JSON.stringify({
    threads, rules: count, decodeMs, keepMs, threadMs, appliedMs, cpuMs,
    rssBeforeMiB: before.rssMiB, rssMiB: after.rssMiB, rssIdleMiB: idle.rssMiB, mainHeapMiB: idle.heapMiB,
    threadHeapMiB: threadMemory.map((t) => t.heapMiB),
  }) + "\n");
  for (const w of workers) await w.terminate();
}

function thread(): void {
  const forwarder = new Forwarder((workerData as { config: ForwarderConfig }).config, 0);
  const port = parentPort!;
  port.on("message", async (m: TableMessage | "memory") => {
    if (m === "memory") {
      await collect();
      port.postMessage({ heapMiB: mb(process.memoryUsage().heapUsed), rules: forwarder.ruleCount });
      return;
    }
    const t = performance.now();
    applyTable(forwarder, m);
    port.postMessage({ ms: performance.now() - t });
  });
  port.postMessage("ready");
}

if (isMainThread) await main();
else thread();
