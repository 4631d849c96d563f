// AllocateCareOf throughput and latency over gRPC on loopback, against the engine as its own
// process with its durable SQLite store. The load generator shares the machine's two cores with
// the engine, so the engine's own CPU time per call is reported too: 1000 / (ms per call) is what
// one core of engine could serve with the client elsewhere. Baselines measured in the same run: the same engine with
// store.sync=normal (durable against kill -9, not power loss). The reference is ISC Kea's
// published ~11,700 leases/s (memfile, single thread, server hardware), quoted, not measured here.
//
//   npm run bench:allocate -- [--calls 5000] [--concurrency 1,8,32,128,512] [--json out.json]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { connectControl } from "../clients/control.js";
import { spawnUntilReady } from "../lib/process/spawn.js";
import { labConfig } from "../harness/engine.js";

const { values } = parseArgs({ options: { calls: { type: "string" }, concurrency: { type: "string" }, json: { type: "string" } } });
const CALLS = Number(values.calls ?? 5000);
const LEVELS = (values.concurrency ?? "1,8,32,128,512").split(",").map(Number);
const KEA_PUBLISHED = 11_700;

interface Result { sync: string; concurrency: number; calls: number; seconds: number; perSecond: number; p50ms: number; p99ms: number; engineCpuMsPerCall: number }

/** CPU time (user + system) a process has used, in ms, from /proc (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function measure(sync: "full" | "normal", concurrency: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), "mip46-bench-"));
  // 198.18.0.0/15 (RFC 2544 benchmarking range): lease bookkeeping only, no packet is sent.
  const cfg = labConfig(dir, { pool: { name: "engine", prefix: "198.18.0.0/15" }, store: { kind: "sqlite", path: join(dir, "engine.db"), sync } });
  writeFileSync(join(dir, "engine.yaml"), stringify(cfg));
  const engine = await spawnUntilReady<{ grpcPort: number }>(process.execPath, ["bin/mip46-engine.js", "--config", join(dir, "engine.yaml")], "engine started", 60_000);
  const client = connectControl(`127.0.0.1:${engine.ready.grpcPort}`, 60_000);
  try {
    await client.heartbeat({ hostId: "h6", addresses: ["2001:db8:1::10/64"], resources: undefined, vms: [] });
    // Warm-up: connections, JIT, prepared statements.
    for (let i = 0; i < 200; i++) await client.allocateCareOf({ hostId: "h6", vmId: `warm-${i}`, homeAddress: "192.0.2.1" });
    const latencies: number[] = [];
    let next = 0;
    const cpuBefore = cpuMs(engine.child.pid!);
    const start = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < CALLS) {
        const i = next++;
        const t = performance.now();
        await client.allocateCareOf({ hostId: "h6", vmId: `vm-${i}`, homeAddress: "192.0.2.1" });
        latencies.push(performance.now() - t);
      }
    }));
    const seconds = (performance.now() - start) / 1000;
    const engineCpuMsPerCall = (cpuMs(engine.child.pid!) - cpuBefore) / CALLS;
    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    return { sync, concurrency, calls: CALLS, seconds, perSecond: CALLS / seconds, p50ms: q(0.5), p99ms: q(0.99), engineCpuMsPerCall };
  } finally {
    client.close();
    await new Promise((r) => { engine.child.once("exit", r); engine.child.kill("SIGTERM"); });
    rmSync(dir, { recursive: true, force: true });
  }
}

const results: Result[] = [];
for (const concurrency of LEVELS) {
  for (const sync of ["full", "normal"] as const) {
    const r = await measure(sync, concurrency);
    results.push(r);
    process.stdout.write(`sync=${sync.padEnd(6)} concurrency=${String(concurrency).padStart(4)}  ${r.perSecond.toFixed(0).padStart(6)} allocations/s  p50 ${r.p50ms.toFixed(2)} ms  p99 ${r.p99ms.toFixed(2)} ms  engine CPU ${(r.engineCpuMsPerCall * 1000).toFixed(0)} us/call\n`);
  }
}
process.stdout.write("\nconcurrency  durable(full)/s  p50 ms  p99 ms  vs sync=normal  vs Kea published 11,700/s  engine-core capacity/s\n");
for (const concurrency of LEVELS) {
  const full = results.find((r) => r.sync === "full" && r.concurrency === concurrency)!;
  const normal = results.find((r) => r.sync === "normal" && r.concurrency === concurrency)!;
  process.stdout.write(`${String(concurrency).padStart(11)}  ${full.perSecond.toFixed(0).padStart(15)}  ${full.p50ms.toFixed(2).padStart(6)}  ${full.p99ms.toFixed(2).padStart(6)}  ${(full.perSecond / normal.perSecond).toFixed(2).padStart(14)}  ${(full.perSecond / KEA_PUBLISHED).toFixed(2).padStart(25)}  ${(1000 / full.engineCpuMsPerCall).toFixed(0).padStart(22)}\n`);
}
if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
