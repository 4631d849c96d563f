// One-way latency at a low rate (issue 12 §3): UDP datagrams at 1 kpps from a socket in the sender
// namespace to a socket in the receiver namespace, stamped on send (CLOCK_REALTIME) and on the
// receiver's kernel receive (SO_TIMESTAMPNS); see bench/latency.py. Cases, in one run:
// - direct: one veth pair, no middle: the floor that the others are measured against;
// - kernel: the middle namespace forwarding IPv4 in the kernel;
// - ceiling: bench/ceiling/forward.c in the middle (the worker's ring I/O in C, no packet work):
//   what the I/O alone adds;
// - translate-4to6/BACKEND: the worker in the middle translating 4→6 (RFC 7915 §4);
// - translate-4to6/ring, default scheduling (--default-scheduling): the same with
//   MIP46_DATAPLANE_SCHEDULING=default, the kernel's scheduling for the worker's threads (its V8
//   helpers not made SCHED_BATCH: dataplane/io/ring.ts forwardingScheduling), as before the fix.
// "added" is a case's percentile minus the direct one's: what the middle costs. With --repeat N the
// cases run N times in turn (one table each) and a last table gives each case's added p50 and p99
// per run and their medians: the machine is shared, one run alone says little.
//
// Each case first sends --warmup datagrams (30,000 at 10 kpps unless told) that are not measured.
//
//   node --import tsx bench/latency.ts [--count 3000] [--rate 1000] [--warmup 30000] [--backends ring,cap] [--default-scheduling] [--repeat N]
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ceilingBinary } from "./ceiling/build.js";
import { NetnsLab } from "../harness/netns.js";
import { configureHost, createTopology, startLines, startWorker, SYSTEM_PYTHON, type Topology } from "../harness/topology.js";

const PROBE = fileURLToPath(new URL("./latency.py", import.meta.url));
const PORT = 9;

export interface LatencyResult { name: string; received: number; sent: number; p50: number; p99: number; max: number }

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** What each case sends: `warmup` datagrams at WARMUP_RATE first (not measured), then `count` at `rate`. */
export interface ProbeLoad { count: number; rate: number; warmup: number }
const WARMUP_RATE = 10_000;
/** 3 s at 10 kpps: enough that V8 compiles nothing of the packet path while the probe runs (bench/README.md). */
export const DEFAULT_WARMUP = 30_000;

/** Runs the probe from `sender` to `receiver` (which gets IPv`arrivesAs`) and returns the latencies in µs. */
async function probe(lab: NetnsLab, sender: string, receiver: string, family: 4 | 6, target: string, load: ProbeLoad, name: string, arrivesAs = family): Promise<LatencyResult> {
  // RFC 2544 §26 measures latency after the device has carried the stream for a while: the warm-up
  // runs the middle at load first (for the worker: V8 has compiled the packet path by then).
  if (load.warmup > 0) await datagrams(lab, sender, receiver, family, target, load.warmup, WARMUP_RATE, arrivesAs);
  const r = await datagrams(lab, sender, receiver, family, target, load.count, load.rate, arrivesAs);
  // The first datagrams pay for cold caches and the first neighbour lookups: a tenth is warm-up.
  const warm = r.latencyNs.slice(Math.floor(r.latencyNs.length / 10)).map((ns) => ns / 1000).sort((a, b) => a - b);
  if (warm.length === 0) throw new Error(`${name}: no datagram arrived`);
  return { name, received: r.received, sent: load.count, p50: percentile(warm, 50), p99: percentile(warm, 99), max: warm[warm.length - 1] };
}

/** `count` datagrams at `rate` per second, and what the receiver saw of them. */
async function datagrams(lab: NetnsLab, sender: string, receiver: string, family: 4 | 6, target: string, count: number, rate: number, arrivesAs: 4 | 6): Promise<{ received: number; latencyNs: number[] }> {
  const topoLike = { lab } as Topology;
  const listener = await startLines(topoLike, receiver, [SYSTEM_PYTHON, PROBE, "recv", String(arrivesAs), String(PORT), String(count), String(Math.ceil(count / rate) + 5)]);
  await lab.exec(sender, [SYSTEM_PYTHON, PROBE, "send", String(family), target, String(PORT), String(count), String(rate)], { timeoutMs: (count / rate) * 1000 + 30_000 });
  const lines = await listener.done;
  return JSON.parse(lines[lines.length - 1]) as { received: number; latencyNs: number[] };
}

async function direct(load: ProbeLoad): Promise<LatencyResult> {
  const lab = NetnsLab.create();
  try {
    const s = await lab.addNamespace("s");
    const r = await lab.addNamespace("r");
    await lab.addVethPair(s, "s0", r, "r0");
    for (const [ns, i] of [[s, "s0"], [r, "r0"]]) await lab.exec(ns, ["ethtool", "-K", i, "tx", "off", "tso", "off", "gso", "off"]);
    await lab.exec(s, ["ip", "addr", "add", "203.0.113.10/24", "dev", "s0"]);
    await lab.exec(r, ["ip", "addr", "add", "203.0.113.20/24", "dev", "r0"]);
    await lab.exec(s, ["ip", "neigh", "replace", "203.0.113.20", "lladdr", await lab.mac(r, "r0"), "dev", "s0", "nud", "permanent"]);
    return await probe(lab, s, r, 4, "203.0.113.20", load, "direct");
  } finally {
    await lab.destroy();
  }
}

/** The sender's side, the same for every middle: 203.0.113.10, everything else via w0. */
async function sender(topo: Topology): Promise<void> {
  await configureHost(topo, topo.sender, "s0", ["203.0.113.10/24"], [["default", "via", "203.0.113.1"]]);
  await topo.lab.exec(topo.sender, ["ip", "neigh", "replace", "203.0.113.1", "lladdr", topo.macs.w0, "dev", "s0", "nud", "permanent"]);
}

async function kernel(load: ProbeLoad): Promise<LatencyResult> {
  const topo = await createTopology();
  try {
    const { lab, worker: ns } = topo;
    await sender(topo);
    await lab.sysctl(ns, "net.ipv4.ip_forward", "1");
    await lab.exec(ns, ["ip", "addr", "add", "203.0.113.1/24", "dev", "w0"]);
    await lab.exec(ns, ["ip", "addr", "add", "192.0.2.254/24", "dev", "w1"]);
    await lab.exec(ns, ["ip", "neigh", "replace", "192.0.2.1", "lladdr", topo.macs.r0, "dev", "w1", "nud", "permanent"]);
    await configureHost(topo, topo.receiver, "r0", ["192.0.2.1/24"], [["default", "dev", "r0"]]);
    return await probe(lab, topo.sender, topo.receiver, 4, "192.0.2.1", load, "kernel");
  } finally {
    await topo.destroy();
  }
}

async function ceiling(load: ProbeLoad): Promise<LatencyResult> {
  const topo = await createTopology();
  try {
    await sender(topo);
    await configureHost(topo, topo.receiver, "r0", ["192.0.2.1/24"], [["default", "dev", "r0"]]);
    const child = topo.lab.spawn(topo.worker, [ceilingBinary(), "w0", "w1", topo.macs.r0], "ignore");
    await new Promise((r) => setTimeout(r, 200));
    try {
      return await probe(topo.lab, topo.sender, topo.receiver, 4, "192.0.2.1", load, "ceiling");
    } finally {
      await NetnsLab.stop(child);
    }
  } finally {
    await topo.destroy();
  }
}

async function translate(load: ProbeLoad, backend: string, defaultScheduling = false): Promise<LatencyResult> {
  const topo = await createTopology();
  try {
    await sender(topo);
    await configureHost(topo, topo.receiver, "r0", ["2001:db8:1::2/64"], [["default", "dev", "r0"]]);
    const name = `translate-4to6/${backend}${defaultScheduling ? ", default scheduling" : ""}`;
    // The child takes the environment as it is at spawn.
    if (defaultScheduling) process.env.MIP46_DATAPLANE_SCHEDULING = "default";
    const w = await startWorker(topo, {
      workerId: `latency-${backend}`, capture: { backend },
      interfaces: [{ name: "w0", addresses: ["203.0.113.1/24"] }, { name: "w1", addresses: ["2001:db8:1::fe/64"] }],
      served: ["198.51.100.0/24"],
      neighbours: [{ interface: "w1", address: "2001:db8:1::2", mac: topo.macs.r0 }],
    }, {
      revision: 1, rules: [{ key: "pfx", kind: "translation-prefix", prefix: "2001:db8:64::/96" },
        { key: "eam", kind: "address-mapping", ipv4: "198.51.100.20", ipv6: "2001:db8:1::2" }],
    }, `latency-${backend}`).finally(() => delete process.env.MIP46_DATAPLANE_SCHEDULING);
    try {
      return await probe(topo.lab, topo.sender, topo.receiver, 4, "198.51.100.20", load, name, 6);
    } finally {
      await NetnsLab.stop(w.child);
    }
  } finally {
    await topo.destroy();
  }
}

/** Every latency case, one after the other (the worker on each backend, then on ring with the default scheduling if asked). */
export async function latencyRun(load: ProbeLoad, backends: string[], defaultScheduling = false): Promise<LatencyResult[]> {
  const results = [await direct(load), await kernel(load), await ceiling(load)];
  for (const b of backends) results.push(await translate(load, b));
  if (defaultScheduling) results.push(await translate(load, "ring", true));
  return results;
}

const us = (n: number) => n.toFixed(0);

/** One run's table, with the added latency of each case (against the first, direct). */
export function latencyTableOf(results: LatencyResult[], load: ProbeLoad): string {
  const floor = results[0];
  const warmup = load.warmup > 0 ? `after ${load.warmup} at ${WARMUP_RATE} pps not measured, ` : "";
  return [
    `# one-way latency at ${load.rate} pps, ${load.count} UDP datagrams per case (${warmup}the first tenth left out), µs, ${new Date().toISOString()}, load average ${loadavg()[0].toFixed(2)}`,
    "| case | received | p50 | p99 | max | added p50 | added p99 | added max |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    ...results.map((r) => `| ${r.name} | ${r.received}/${r.sent} | ${us(r.p50)} | ${us(r.p99)} | ${us(r.max)} | ${us(r.p50 - floor.p50)} | ${us(r.p99 - floor.p99)} | ${us(r.max - floor.max)} |`),
  ].join("\n") + "\n";
}

/** Every latency case, one after the other, and the table with the added latency of each. */
export async function latencyTable(count: number, rate: number, backends: string[]): Promise<string> {
  const load = { count, rate, warmup: DEFAULT_WARMUP };
  return latencyTableOf(await latencyRun(load, backends), load);
}

/** Each case's added p99 in every run, and the median of those. */
export function repeatSummary(runs: LatencyResult[][]): string {
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];
  const added = (run: LatencyResult[], i: number, key: "p50" | "p99") => run[i][key] - run[0][key];
  return [
    `# added latency over ${runs.length} runs, µs: each run's, then the median (the lower middle one for an even count)`,
    "| case | added p50 per run | added p99 per run | median added p50 | median added p99 |",
    "|---|---|---|---:|---:|",
    ...runs[0].slice(1).map((r, j) => {
      const i = j + 1;
      const p50s = runs.map((run) => added(run, i, "p50"));
      const p99s = runs.map((run) => added(run, i, "p99"));
      return `| ${r.name} | ${p50s.map(us).join(", ")} | ${p99s.map(us).join(", ")} | ${us(median(p50s))} | ${us(median(p99s))} |`;
    }),
  ].join("\n") + "\n";
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    count: { type: "string", default: "3000" }, rate: { type: "string", default: "1000" }, backends: { type: "string", default: "ring,cap" },
    "default-scheduling": { type: "boolean", default: false }, repeat: { type: "string", default: "1" }, warmup: { type: "string", default: String(DEFAULT_WARMUP) },
  } });
  const load = { count: Number(values.count), rate: Number(values.rate), warmup: Number(values.warmup) };
  const repeat = Number(values.repeat);
  const runs: LatencyResult[][] = [];
  for (let i = 0; i < repeat; i++) {
    runs.push(await latencyRun(load, values.backends!.split(","), values["default-scheduling"]));
    process.stdout.write((i > 0 ? "\n" : "") + latencyTableOf(runs[i], load));
  }
  if (repeat > 1) process.stdout.write("\n" + repeatSummary(runs));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
