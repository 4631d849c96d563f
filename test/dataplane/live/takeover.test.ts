// Live: `mip46-dataplane --takeover` (dataplane/worker/takeover.ts) under a steady stream of 16
// UDP flows, with a real engine. A worker with one thread is replaced by one with two threads,
// which is replaced by one with one thread again: each new process has the engine's revision
// before it forwards, takes the old one's neighbours, shares its rings, then the old one exits 0;
// the new one forwards every flow and no frame reaches the receiver twice. Then what must be
// refused is: a second worker without --takeover, and a takeover whose engine does not answer;
// both leave the running worker forwarding. The last takeover runs with --detach, as systemd's
// ExecReload does.
import { readFileSync, writeFileSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import anyTest, { type TestFn } from "ava";
import { stringify } from "yaml";
import { NetnsLab, netnsAvailable } from "../../../harness/netns.js";
import { spawnUntilReady } from "../../../lib/process/spawn.js";
import { engineOnSocket } from "./engine-lab.js";
import { until as waitUntil } from "./wait.js";
import { captureFrames, configureHost, createTopology, FRAMES_PY, metricValue, parseMac, SYSTEM_PYTHON, workerMetricsText, type Topology } from "../../../harness/topology.js";
import { buildEthernetFrame, ETHERTYPE } from "../../../dataplane/packet/ethernet.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import { parseIPv4 } from "../../../lib/net/address.js";

const test = anyTest as TestFn;
const live = netnsAvailable() ? test.serial : test.serial.skip;
const until = (what: string, check: () => boolean | Promise<boolean>) => waitUntil(what, check, 30_000, 50);
const WORKER = join(import.meta.dirname, "../../../bin/mip46-dataplane.js");

interface Proc {
  child: ChildProcess;
  ready: { metricsPort: number; tookOverFrom?: number; workers: number };
  log(): string;
  /** The worker's exit code (with --detach: the command's, which returns once the old worker exited). */
  exited: Promise<number | null>;
  /** The worker's pid: the child's, or with --detach the one takeover.pidFile names. */
  pid: number;
}

/** Starts the worker in its namespace with `config` (YAML written to NAME.yaml) and the extra flags. */
async function worker(topo: Topology, name: string, config: Record<string, unknown>, flags: string[] = []): Promise<Proc> {
  const path = join(topo.dir, `${name}.yaml`);
  writeFileSync(path, stringify({ metricsListen: "127.0.0.1:9047", ...config }));
  const started = await topo.lab.spawnUntilReady<Proc["ready"]>(topo.worker, [process.execPath, WORKER, "--config", path, ...flags], "dataplane started");
  const exited = new Promise<number | null>((r) => (started.child.exitCode !== null ? r(started.child.exitCode) : started.child.once("exit", (code) => r(code))));
  const pid = flags.includes("--detach") ? Number(readFileSync((config.takeover as { pidFile: string }).pidFile, "utf8")) : started.child.pid!;
  return { ...started, exited, pid };
}

live("--takeover replaces the running worker under a steady stream: the new one has the engine's table and the old one's neighbours, the old one leaves, no frame twice", async (t) => {
  const topo = await createTopology(t);
  const { socket, migrate } = await engineOnSocket(t, topo);
  const r1 = Number(await migrate("vm-a", "192.0.2.50"));

  await topo.lab.sysctl(topo.sender, "net.ipv6.conf.s0.disable_ipv6", "1");
  await configureHost(topo, topo.sender, "s0", ["203.0.113.10/24"], [["default", "via", "203.0.113.1"]]);
  await configureHost(topo, topo.receiver, "r0", ["192.0.2.1/24"], [["default", "via", "192.0.2.254"]]);
  const base = {
    workerId: "live-takeover", engines: [`unix:${socket}`],
    takeover: { socket: join(topo.dir, "takeover.sock"), pidFile: join(topo.dir, "dataplane.pid") },
    interfaces: [{ name: "w0", addresses: ["203.0.113.1/24"] }, { name: "w1", addresses: ["192.0.2.254/24"] }],
  };
  const revisionOf = async (p: Proc) => metricValue(await workerMetricsText(topo, p.ready.metricsPort), "mip46_dataplane_rules_revision");

  const first = await worker(topo, "first", base);
  await until("the first worker's table from the engine", async () => (await revisionOf(first)) === r1);

  // 16 UDP flows (source ports 7000..7015), 200 frames a second, for the whole test.
  const frames = Array.from({ length: 6000 }, (_, i) => buildEthernetFrame(parseMac(topo.macs.w0), parseMac(topo.macs.s0), ETHERTYPE.IPV4,
    buildUdp4({ src: parseIPv4("203.0.113.10", "t").bytes, dst: parseIPv4("192.0.2.1", "t").bytes, srcPort: 7000 + (i % 16), dstPort: 4020 }, new TextEncoder().encode(`m46-tko-${String(i).padStart(5, "0")}`))));
  const capture = await captureFrames(topo, new TextEncoder().encode("m46-tko-"), 8000, 90);
  const stream = spawn("ip", ["netns", "exec", topo.sender, SYSTEM_PYTHON, FRAMES_PY, "stream", "s0", "0.005"], { stdio: ["pipe", "ignore", "ignore"] });
  topo.lab.track(stream);
  stream.stdin!.end(frames.map((f) => Buffer.from(f).toString("hex")).join("\n") + "\n");
  await until("frames through the first worker", () => capture.lines.length >= 40);

  // A revision made now reaches the new process by its own sync, before it forwards.
  const r2 = Number(await migrate("vm-b", "192.0.2.51"));
  const flowsAfter = async (from: number, what: string) => {
    await until(what, () => new Set(capture.lines.slice(from).map(flowOf)).size === 16);
  };
  const takeOver = async (old: Proc, name: string, config: Record<string, unknown>, flags: string[] = []) => {
    const next = await worker(topo, name, config, ["--takeover", ...flags]);
    t.is(next.ready.tookOverFrom, old.pid, `${name} took over from the running worker`);
    t.is(await old.exited, 0, "the old worker exited 0 once taken over");
    t.regex(old.log(), /"msg":"taken over: leaving"/);
    const handed = /"msg":"neighbours taken over"[^\n]*"learned":(\d+)/.exec(next.log());
    t.true(Number(handed?.[1]) >= 1, `the receiver's MAC was handed over (${handed?.[0]})`);
    const lines = next.log().split("\n");
    const synced = lines.findIndex((l) => l.includes(`"msg":"rule table applied"`) && l.includes(`"source":"engine"`));
    const left = lines.findIndex((l) => l.includes(`"msg":"the old worker left"`));
    t.true(synced >= 0 && left > synced, `the engine's table was applied before the old worker was told to go:\n${next.log()}`);
    t.is(await revisionOf(next), r2, "the new worker holds the engine's latest revision");
    const at = capture.lines.length;
    await flowsAfter(at, `every flow through ${name}`);
    return next;
  };

  const second = await takeOver(first, "second", { ...base, workers: 2 });
  t.is(second.ready.workers, 2);
  // The third as systemd's ExecReload runs it: --detach returns once the old worker has exited, and
  // the pid file names the worker that forwards.
  const third = await takeOver(second, "third", base, ["--detach"]);
  t.is(await third.exited, 0, "--detach returned 0 once the old worker had exited");
  t.not(third.pid, third.child.pid, "the worker runs as a process of its own");
  t.true(alive(third.pid), `the pid file names the running worker (${third.pid})`);

  // Refused, and the running worker goes on: a second worker beside it, a takeover without an engine.
  const beside = await spawnUntilReady("ip", ["netns", "exec", topo.worker, process.execPath, WORKER, "--config", join(topo.dir, "first.yaml")], "worker could not start").catch((e: Error) => e);
  t.false(beside instanceof Error, "a second worker without --takeover refuses to start");
  if (!(beside instanceof Error)) t.regex(beside.log(), /another worker answers on takeover.socket/);
  const noEngine = join(topo.dir, "no-engine.yaml");
  writeFileSync(noEngine, stringify({ ...base, metricsListen: "127.0.0.1:9047", engines: [`unix:${join(topo.dir, "nobody.sock")}`], takeover: { ...base.takeover, syncTimeoutMs: 1500 } }));
  const refused = await spawnUntilReady("ip", ["netns", "exec", topo.worker, process.execPath, WORKER, "--config", noEngine, "--takeover"], "worker could not start").catch((e: Error) => e);
  t.false(refused instanceof Error, "a takeover with no engine answering refuses to start");
  if (!(refused instanceof Error)) t.regex(refused.log(), /no rule table from the engine within takeover\.syncTimeoutMs \(1500 ms\): the running worker stays/);
  t.true(alive(third.pid), "the running worker is still there");
  const at = capture.lines.length;
  await flowsAfter(at, "every flow through the third worker after the refusals");

  const seqs = capture.lines.map((hex) => Number(Buffer.from(hex, "hex").toString("latin1").match(/m46-tko-(\d{5})/)![1]));
  t.is(new Set(seqs).size, seqs.length, "no frame reached the receiver twice");
  await NetnsLab.stop(stream, 100);
  process.kill(third.pid, "SIGTERM");
  await until("the third worker to stop", () => !alive(third.pid));
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The UDP source port of a captured frame (Ethernet + 20-byte IPv4 header). */
function flowOf(hex: string): number {
  const f = Buffer.from(hex, "hex");
  return (f[14 + 20] << 8) | f[14 + 21];
}
