// Child process of ring.test.ts: the addon's forwardingScheduling called on this process's main
// thread, then on a worker thread started after it; prints the policy of every thread of the
// process (/proc/self/task/TID/stat, field 41) after each, and what each call answered.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { forwardingScheduling, loadRingAddon } from "../../../dataplane/io/ring.js";

function policies(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync("/proc/self/task")) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    out[tid] = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[38]);
  }
  return out;
}

const ADDON = join(import.meta.dirname, "../../../dataplane/io/native/build/Release/mip46ring.node");
const lib = loadRingAddon([ADDON])!;
const before = policies();
const main = forwardingScheduling(lib);
const afterMain = policies();
const fromThread = await new Promise<{ answer: unknown; tid: number }>((resolve, reject) => {
  const w = new Worker(`
    const { parentPort } = require("node:worker_threads");
    const lib = require(${JSON.stringify(ADDON)});
    parentPort.postMessage({ answer: lib.forwardingScheduling(), tid: lib.threadId() });
  `, { eval: true });
  w.once("message", (m) => { resolve(m); void w.terminate(); });
  w.once("error", reject);
});
const afterThread = policies();
process.stdout.write(JSON.stringify({ pid: process.pid, before, main, afterMain, fromThread, afterThread }) + "\n");
