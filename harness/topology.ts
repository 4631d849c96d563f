// The live topology of the data-plane tests and the benchmark: sender ns → worker ns → receiver
// ns, two veth pairs, nothing else. The worker's side is set up as deploy/examples/dataplane.yaml
// asks (no addresses, IPv6 disabled on its interfaces, forwarding off), so the kernel there leaves
// the packets to the worker.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { NetnsLab, type Teardown } from "./netns.js";

export const SYSTEM_PYTHON = "/usr/bin/python3";
export const FRAMES_PY = fileURLToPath(new URL("./frames.py", import.meta.url));
const REPO = fileURLToPath(new URL("../", import.meta.url));

export interface Topology {
  lab: NetnsLab;
  dir: string;
  sender: string;
  worker: string;
  receiver: string;
  /** sender s0 ↔ worker w0; worker w1 ↔ receiver r0 */
  macs: { s0: string; w0: string; w1: string; r0: string };
  /** Kills what runs in the namespaces, deletes them and the temporary directory (also registered with t.teardown). */
  destroy(): Promise<void>;
}

export async function createTopology(t?: Teardown): Promise<Topology> {
  const lab = NetnsLab.create(t);
  const dir = mkdtempSync(join(tmpdir(), "m46-live-"));
  const destroy = async () => {
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  t?.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sender = await lab.addNamespace("s");
  const worker = await lab.addNamespace("w");
  const receiver = await lab.addNamespace("r");
  await lab.addVethPair(sender, "s0", worker, "w0");
  await lab.addVethPair(worker, "w1", receiver, "r0");
  // The kernel of the worker namespace must not answer or forward what the worker handles.
  await lab.sysctl(worker, "net.ipv4.ip_forward", "0");
  await lab.sysctl(worker, "net.ipv6.conf.all.forwarding", "0");
  for (const i of ["w0", "w1"]) await lab.sysctl(worker, `net.ipv6.conf.${i}.disable_ipv6`, "1");
  // Neither end host sends router solicitations or other chatter we did not ask for. Their
  // sockets' packets must leave with complete checksums and unsegmented: a veth otherwise hands
  // the capture a partial checksum (CHECKSUM_PARTIAL) or a 64 KiB GSO super-packet, which a NIC
  // would have finished on the wire.
  for (const [ns, i] of [[sender, "s0"], [receiver, "r0"]]) {
    await lab.exec(ns, ["ethtool", "-K", i, "tx", "off", "tso", "off", "gso", "off"]);
    await lab.sysctl(ns, `net.ipv6.conf.${i}.accept_ra`, "0");
    await lab.sysctl(ns, `net.ipv6.conf.${i}.router_solicitations`, "0");
  }
  const macs = {
    s0: await lab.mac(sender, "s0"), w0: await lab.mac(worker, "w0"),
    w1: await lab.mac(worker, "w1"), r0: await lab.mac(receiver, "r0"),
  };
  return { lab, dir, sender, worker, receiver, macs, destroy };
}

/** Adds addresses (nodad for IPv6, so they are usable at once) and routes to an end namespace. */
export async function configureHost(topo: Topology, ns: string, ifName: string, addresses: string[], routes: string[][] = []): Promise<void> {
  for (const a of addresses) {
    await topo.lab.exec(ns, ["ip", "addr", "add", a, "dev", ifName, ...(a.includes(":") ? ["nodad"] : [])]);
  }
  for (const r of routes) await topo.lab.exec(ns, ["ip", ...(r.some((x) => x.includes(":")) ? ["-6"] : []), "route", "add", ...r]);
}

export interface StartedWorker {
  child: ChildProcess;
  metricsPort: number;
  log(): string;
}

/** Writes the worker's YAML and starts bin/mip46-dataplane.js inside the worker namespace. */
export async function startWorker(topo: Topology, config: Record<string, unknown>, table?: unknown, name = "worker", nodeArgs: string[] = []): Promise<StartedWorker> {
  const configPath = join(topo.dir, `${name}.yaml`);
  // The live tests run on both capture backends: MIP46_TEST_CAPTURE_BACKEND (forwarding-cap.test.ts sets cap).
  const backend = process.env.MIP46_TEST_CAPTURE_BACKEND ?? "ring";
  const full: Record<string, unknown> = { metricsListen: "127.0.0.1:0", ...config, capture: { backend, ...(config.capture as object | undefined) } };
  if (table !== undefined) {
    const tablePath = join(topo.dir, `${name}-table.json`);
    writeFileSync(tablePath, JSON.stringify(table, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
    full.table = tablePath;
  }
  writeFileSync(configPath, stringify(full));
  const started = await topo.lab.spawnUntilReady<{ metricsPort: number; backend: string }>(topo.worker,
    [process.execPath, ...nodeArgs, join(REPO, "bin/mip46-dataplane.js"), "--config", configPath], "dataplane started");
  const want = (full.capture as { backend: string }).backend;
  if (started.ready.backend !== want) {
    started.child.kill("SIGKILL");
    throw new Error(`worker runs on capture backend ${started.ready.backend}, the test asked for ${want}`);
  }
  return { child: started.child, metricsPort: started.ready.metricsPort, log: started.log };
}

/** Fetches the worker's /metrics from inside its namespace. */
export async function workerMetricsText(topo: Topology, port: number): Promise<string> {
  const script = `fetch("http://127.0.0.1:${port}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))`;
  return (await topo.lab.exec(topo.worker, [process.execPath, "-e", script])).stdout;
}

/** The value of one series in Prometheus text, or undefined. */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** A process in a namespace whose stdout lines are collected; resolves once it printed "ready". */
export interface LineReader { lines: string[]; done: Promise<string[]>; child: ChildProcess }

export function startLines(topo: Topology, ns: string, argv: string[]): Promise<LineReader> {
  const child = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let stderr = "";
  let pending = "";
  return new Promise((resolve, reject) => {
    let ready = false;
    const done = new Promise<string[]>((res) => child.once("exit", () => res(lines)));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout!.on("data", (d: Buffer) => {
      pending += d.toString();
      const parts = pending.split("\n");
      pending = parts.pop()!;
      for (const l of parts) {
        if (!ready && l === "ready") {
          ready = true;
          resolve({ lines, done, child });
        } else if (ready) lines.push(l);
      }
    });
    child.once("exit", (code) => {
      if (!ready) reject(new Error(`${argv.join(" ")} exited (${code}) before it was ready: ${stderr}`));
    });
    topo.lab.track(child);
  });
}

/** Captures frames containing `marker` on the receiver's r0 (at most `max`, for `timeoutS`). */
export function captureFrames(topo: Topology, marker: Uint8Array, max: number, timeoutS: number): Promise<LineReader> {
  return startLines(topo, topo.receiver, [SYSTEM_PYTHON, FRAMES_PY, "capture", "r0", Buffer.from(marker).toString("hex"), String(max), String(timeoutS)]);
}

/** Sends frames out of the sender's s0, the list `count` times, `intervalS` apart. */
export async function sendFrames(topo: Topology, frames: Uint8Array[], count: number, intervalS: number): Promise<void> {
  await topo.lab.exec(topo.sender, [SYSTEM_PYTHON, FRAMES_PY, "send", "s0", String(count), String(intervalS)],
    { input: frames.map((f) => Buffer.from(f).toString("hex")).join("\n") + "\n", timeoutMs: 60_000 });
}

export function parseMac(text: string): Uint8Array {
  return Uint8Array.from(text.split(":").map((h) => parseInt(h, 16)));
}
