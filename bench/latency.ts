// One-way latency at a low rate (issue 12 §3): UDP datagrams at 1 kpps from a socket in the sender
// namespace to a socket in the receiver namespace, stamped on send (CLOCK_REALTIME) and on the
// receiver's kernel receive (SO_TIMESTAMPNS); see bench/latency.py. Cases, in one run:
// - direct: one veth pair, no middle: the floor that the others are measured against;
// - kernel: the middle namespace forwarding IPv4 in the kernel;
// - ceiling: bench/ceiling/forward.c in the middle (the worker's ring I/O in C, no packet work):
//   what the I/O alone adds;
// - translate-4to6/BACKEND: the worker in the middle translating 4→6 (RFC 7915 §4).
// "added" is a case's percentile minus the direct one's: what the middle costs.
//
//   node --import tsx bench/latency.ts [--count 3000] [--rate 1000] [--backends ring,cap]
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

/** Runs the probe from `sender` to `receiver` (which gets IPv`arrivesAs`) and returns the latencies in µs. */
async function probe(lab: NetnsLab, sender: string, receiver: string, family: 4 | 6, target: string, count: number, rate: number, name: string, arrivesAs = family): Promise<LatencyResult> {
  const topoLike = { lab } as Topology;
  const listener = await startLines(topoLike, receiver, [SYSTEM_PYTHON, PROBE, "recv", String(arrivesAs), String(PORT), String(count), String(Math.ceil(count / rate) + 5)]);
  await lab.exec(sender, [SYSTEM_PYTHON, PROBE, "send", String(family), target, String(PORT), String(count), String(rate)], { timeoutMs: (count / rate) * 1000 + 30_000 });
  const lines = await listener.done;
  const r = JSON.parse(lines[lines.length - 1]) as { received: number; latencyNs: number[] };
  // The first datagrams pay for cold caches and the first neighbour lookups: a tenth is warm-up.
  const warm = r.latencyNs.slice(Math.floor(r.latencyNs.length / 10)).map((ns) => ns / 1000).sort((a, b) => a - b);
  if (warm.length === 0) throw new Error(`${name}: no datagram arrived`);
  return { name, received: r.received, sent: count, p50: percentile(warm, 50), p99: percentile(warm, 99), max: warm[warm.length - 1] };
}

async function direct(count: number, rate: number): Promise<LatencyResult> {
  const lab = NetnsLab.create();
  try {
    const s = await lab.addNamespace("s");
    const r = await lab.addNamespace("r");
    await lab.addVethPair(s, "s0", r, "r0");
    for (const [ns, i] of [[s, "s0"], [r, "r0"]]) await lab.exec(ns, ["ethtool", "-K", i, "tx", "off", "tso", "off", "gso", "off"]);
    await lab.exec(s, ["ip", "addr", "add", "203.0.113.10/24", "dev", "s0"]);
    await lab.exec(r, ["ip", "addr", "add", "203.0.113.20/24", "dev", "r0"]);
    await lab.exec(s, ["ip", "neigh", "replace", "203.0.113.20", "lladdr", await lab.mac(r, "r0"), "dev", "s0", "nud", "permanent"]);
    return await probe(lab, s, r, 4, "203.0.113.20", count, rate, "direct");
  } finally {
    await lab.destroy();
  }
}

/** The sender's side, the same for every middle: 203.0.113.10, everything else via w0. */
async function sender(topo: Topology): Promise<void> {
  await configureHost(topo, topo.sender, "s0", ["203.0.113.10/24"], [["default", "via", "203.0.113.1"]]);
  await topo.lab.exec(topo.sender, ["ip", "neigh", "replace", "203.0.113.1", "lladdr", topo.macs.w0, "dev", "s0", "nud", "permanent"]);
}

async function kernel(count: number, rate: number): Promise<LatencyResult> {
  const topo = await createTopology();
  try {
    const { lab, worker: ns } = topo;
    await sender(topo);
    await lab.sysctl(ns, "net.ipv4.ip_forward", "1");
    await lab.exec(ns, ["ip", "addr", "add", "203.0.113.1/24", "dev", "w0"]);
    await lab.exec(ns, ["ip", "addr", "add", "192.0.2.254/24", "dev", "w1"]);
    await lab.exec(ns, ["ip", "neigh", "replace", "192.0.2.1", "lladdr", topo.macs.r0, "dev", "w1", "nud", "permanent"]);
    await configureHost(topo, topo.receiver, "r0", ["192.0.2.1/24"], [["default", "dev", "r0"]]);
    return await probe(lab, topo.sender, topo.receiver, 4, "192.0.2.1", count, rate, "kernel");
  } finally {
    await topo.destroy();
  }
}

async function ceiling(count: number, rate: number): Promise<LatencyResult> {
  const topo = await createTopology();
  try {
    await sender(topo);
    await configureHost(topo, topo.receiver, "r0", ["192.0.2.1/24"], [["default", "dev", "r0"]]);
    const child = topo.lab.spawn(topo.worker, [ceilingBinary(), "w0", "w1", topo.macs.r0], "ignore");
    await new Promise((r) => setTimeout(r, 200));
    try {
      return await probe(topo.lab, topo.sender, topo.receiver, 4, "192.0.2.1", count, rate, "ceiling");
    } finally {
      await NetnsLab.stop(child);
    }
  } finally {
    await topo.destroy();
  }
}

async function translate(count: number, rate: number, backend: string): Promise<LatencyResult> {
  const topo = await createTopology();
  try {
    await sender(topo);
    await configureHost(topo, topo.receiver, "r0", ["2001:db8:1::2/64"], [["default", "dev", "r0"]]);
    const w = await startWorker(topo, {
      workerId: `latency-${backend}`, capture: { backend },
      interfaces: [{ name: "w0", addresses: ["203.0.113.1/24"] }, { name: "w1", addresses: ["2001:db8:1::fe/64"] }],
      served: ["198.51.100.0/24"],
      neighbours: [{ interface: "w1", address: "2001:db8:1::2", mac: topo.macs.r0 }],
    }, {
      revision: 1, rules: [{ key: "pfx", kind: "translation-prefix", prefix: "2001:db8:64::/96" },
        { key: "eam", kind: "address-mapping", ipv4: "198.51.100.20", ipv6: "2001:db8:1::2" }],
    }, `latency-${backend}`);
    try {
      return await probe(topo.lab, topo.sender, topo.receiver, 4, "198.51.100.20", count, rate, `translate-4to6/${backend}`, 6);
    } finally {
      await NetnsLab.stop(w.child);
    }
  } finally {
    await topo.destroy();
  }
}

/** Every latency case, one after the other, and the table with the added latency of each. */
export async function latencyTable(count: number, rate: number, backends: string[]): Promise<string> {
  const results = [await direct(count, rate), await kernel(count, rate), await ceiling(count, rate)];
  for (const b of backends) results.push(await translate(count, rate, b));
  const floor = results[0];
  const us = (n: number) => n.toFixed(0);
  return [
    `# one-way latency at ${rate} pps, ${count} UDP datagrams per case (the first tenth left out as warm-up), µs, ${new Date().toISOString()}`,
    "| case | received | p50 | p99 | max | added p50 | added p99 | added max |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    ...results.map((r) => `| ${r.name} | ${r.received}/${r.sent} | ${us(r.p50)} | ${us(r.p99)} | ${us(r.max)} | ${us(r.p50 - floor.p50)} | ${us(r.p99 - floor.p99)} | ${us(r.max - floor.max)} |`),
  ].join("\n") + "\n";
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { count: { type: "string", default: "3000" }, rate: { type: "string", default: "1000" }, backends: { type: "string", default: "ring,cap" } } });
  latencyTable(Number(values.count), Number(values.rate), values.backends!.split(",")).then((t) => process.stdout.write(t), (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
