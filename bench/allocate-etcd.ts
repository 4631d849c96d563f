// AllocateCareOf throughput over gRPC: 3 engine replicas on a 3-member etcd cluster against one
// engine on its embedded SQLite store (sync=full), in the same run, with the same client and the
// same number of calls in flight. Every process (etcd members, engines, the load generator) is
// real and on loopback; on a small machine they share its cores, so compare the ratio.
// Against etcd the calls are spread round-robin over the 3 replicas, as agents would be.
//
//   node --import tsx bench/allocate-etcd.ts [--calls 3000] [--concurrency 8,32,128] [--json out.json]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { connectControl, type ControlClient } from "../clients/control.js";
import { spawnUntilReady, type Started } from "../lib/process/spawn.js";
import { labConfig } from "../harness/engine.js";
import { startEtcdCluster, type EtcdCluster } from "../harness/etcd.js";

const { values } = parseArgs({ options: { calls: { type: "string" }, concurrency: { type: "string" }, json: { type: "string" } } });
const CALLS = Number(values.calls ?? 3000);
const LEVELS = (values.concurrency ?? "8,32,128").split(",").map(Number);
const WARMUP = 200;

interface Result { store: "sqlite" | "etcd"; concurrency: number; calls: number; perSecond: number; p50ms: number; p99ms: number }

let run = 0;

async function measure(kind: "sqlite" | "etcd", concurrency: number, cluster: EtcdCluster): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), "mip46-bench-"));
  // 198.18.0.0/20 (RFC 2544 benchmarking range): lease bookkeeping only, no packet is sent.
  const pool = { name: "engine", prefix: "198.18.0.0/20" };
  const prefix = `/mip46-bench-${process.pid}-${++run}`;
  const replicas = kind === "etcd" ? 3 : 1;
  const engines: Started<{ grpcPort: number }>[] = [];
  const clients: ControlClient[] = [];
  try {
    for (let i = 0; i < replicas; i++) {
      const store = kind === "etcd"
        ? { kind: "etcd", etcd: { endpoints: cluster.endpoints, prefix } }
        : { kind: "sqlite", path: join(dir, "engine.db"), sync: "full" };
      const path = join(dir, `engine-${i}.yaml`);
      writeFileSync(path, stringify(labConfig(dir, { pool, store, replica: `r${i}` })));
      const e = await spawnUntilReady<{ grpcPort: number }>(process.execPath, ["bin/mip46-engine.js", "--config", path], "engine started", 60_000);
      engines.push(e);
      clients.push(connectControl(`127.0.0.1:${e.ready.grpcPort}`, 60_000));
    }
    await clients[0].heartbeat({ hostId: "h6", addresses: ["2001:db8:1::10/64"], resources: undefined, vms: [] });
    let turn = 0;
    const pick = () => clients[turn++ % clients.length];
    for (let i = 0; i < WARMUP; i++) await pick().allocateCareOf({ hostId: "h6", vmId: `warm-${i}`, homeAddress: "192.0.2.1" });
    const latencies: number[] = [];
    let next = 0;
    const start = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < CALLS) {
        const i = next++;
        const t = performance.now();
        await pick().allocateCareOf({ hostId: "h6", vmId: `vm-${i}`, homeAddress: "192.0.2.1" });
        latencies.push(performance.now() - t);
      }
    }));
    const seconds = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    // Every call was acknowledged, and no address went to two VMs.
    const leases = (await clients[0].listLeases({})).leases;
    if (leases.length !== CALLS + WARMUP || new Set(leases.map((l) => l.address)).size !== leases.length) throw new Error(`${kind}: ${leases.length} leases stored`);
    return { store: kind, concurrency, calls: CALLS, perSecond: CALLS / seconds, p50ms: q(0.5), p99ms: q(0.99) };
  } finally {
    for (const c of clients) c.close();
    await Promise.all(engines.map((e) => new Promise((r) => { e.child.once("exit", r); e.child.kill("SIGTERM"); })));
    rmSync(dir, { recursive: true, force: true });
  }
}

const cluster = await startEtcdCluster(3);
const results: Result[] = [];
try {
  for (const concurrency of LEVELS) {
    for (const kind of ["sqlite", "etcd"] as const) {
      const r = await measure(kind, concurrency, cluster);
      results.push(r);
      process.stdout.write(`${kind.padEnd(6)} concurrency=${String(concurrency).padStart(4)}  ${r.perSecond.toFixed(0).padStart(6)} allocations/s  p50 ${r.p50ms.toFixed(2)} ms  p99 ${r.p99ms.toFixed(2)} ms\n`);
    }
  }
} finally {
  await cluster.stop();
}
process.stdout.write("\nconcurrency  sqlite (1 engine)/s  etcd (3 replicas, 3 members)/s  etcd/sqlite  etcd p50 ms  etcd p99 ms\n");
for (const concurrency of LEVELS) {
  const s = results.find((r) => r.store === "sqlite" && r.concurrency === concurrency)!;
  const e = results.find((r) => r.store === "etcd" && r.concurrency === concurrency)!;
  process.stdout.write(`${String(concurrency).padStart(11)}  ${s.perSecond.toFixed(0).padStart(19)}  ${e.perSecond.toFixed(0).padStart(30)}  ${(e.perSecond / s.perSecond).toFixed(2).padStart(11)}  ${e.p50ms.toFixed(2).padStart(11)}  ${e.p99ms.toFixed(2).padStart(11)}\n`);
}
if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
