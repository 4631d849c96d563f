// The engines that bench/scale.ts loads, and what it reads of them: one engine as its own
// process on its durable SQLite store (sync=full), or replicas on a 3-member etcd cluster
// (harness/etcd.ts); each process's CPU and RSS from /proc, the store's size, and the engine's
// own handling-time histograms and advice counter from its /metrics.
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { labConfig } from "../../harness/engine.js";
import { startEtcdCluster, type EtcdCluster, type EtcdOps } from "../../harness/etcd.js";
import { spawnUntilReady } from "../../lib/process/spawn.js";

// --- the engine process ----------------------------------------------------------------------

export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.split(/\s+/)[1]) / 1024;
}

function sqliteMiB(dir: string): number {
  let bytes = 0;
  for (const f of ["engine.db", "engine.db-wal"]) {
    try { bytes += statSync(join(dir, f)).size; } catch { /* no WAL yet */ }
  }
  return bytes / (1 << 20);
}

/** The engine's own histogram of handling time, per method: bucket upper bound (s) -> count. */
export async function handling(metricsPort: number): Promise<Map<string, Map<number, number>>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out = new Map<string, Map<number, number>>();
  // prom-client's event-loop delay since the previous scrape (it resets its histogram on each).
  const lag = (name: string) => Number(new RegExp(`^nodejs_eventloop_lag_${name}_seconds (\\S+)$`, "m").exec(text)?.[1] ?? NaN) * 1000;
  out.set("eventLoopDelay", new Map([[0.99, lag("p99")], [1, lag("max")]]));
  for (const line of text.split("\n")) {
    if (!line.startsWith("grpc_server_handling_seconds_bucket{")) continue;
    const method = /grpc_method="([^"]+)"/.exec(line)![1];
    const le = /le="([^"]+)"/.exec(line)![1];
    let m = out.get(method);
    if (!m) out.set(method, (m = new Map()));
    m.set(le === "+Inf" ? Infinity : Number(le), Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return out;
}

/** The bucket (upper bound, ms) holding quantile p of the calls between two scrapes: the engine's side of the latency. */
export function serverQuantileMs(before: Map<string, Map<number, number>>, after: Map<string, Map<number, number>>, method: string, p: number): number {
  const a = after.get(method);
  if (!a) return NaN;
  const b = before.get(method);
  const bounds = [...a.keys()].sort((x, y) => x - y);
  const total = a.get(Infinity)! - (b?.get(Infinity) ?? 0);
  for (const le of bounds) if (a.get(le)! - (b?.get(le) ?? 0) >= p * total) return le * 1000;
  return Infinity;
}

// --- the deployment -------------------------------------------------------------------------

/** The engines under load: one on SQLite, or replicas on an etcd cluster. */
export interface Deployment {
  pids: number[];
  addresses: string[];
  metricsPorts: number[];
  etcd?: EtcdCluster;
  storeMiB(): Promise<number>;
  kill(): void;
  stop(): Promise<void>;
}

/** What to deploy: `replicas` engines on a 3-member etcd cluster, or one on SQLite; hosts beat every `intervalSeconds`. */
export interface DeployOptions {
  store: "sqlite" | "etcd";
  replicas: number;
  intervalSeconds: number;
  /** Runs the engines under --cpu-prof, writing their profiles here. */
  profile?: string;
}

export async function deploy(dir: string, o: DeployOptions): Promise<Deployment> {
  // 198.18.0.0/18 (RFC 2544 benchmarking range): lease bookkeeping only, no packet is sent.
  const common = {
    pool: { name: "engine", prefix: "198.18.0.0/18" },
    leases: { lifetimeSeconds: 3600, cooldownSeconds: 60 },
    hosts: { heartbeatIntervalSeconds: o.intervalSeconds, downAfterSeconds: o.intervalSeconds * 3 },
    migration: { highWatermark: 0.85, lowWatermark: 0.7, windowSeconds: o.intervalSeconds, vmCooldownSeconds: 300 },
  };
  const etcd = o.store === "etcd" ? await startEtcdCluster(3) : undefined;
  const engines: Awaited<ReturnType<typeof spawnUntilReady<{ grpcPort: number; metricsPort: number }>>>[] = [];
  const stop = async () => {
    await Promise.all(engines.map((e) => new Promise((r) => { if (e.child.exitCode !== null) return r(undefined); e.child.once("exit", r); e.child.kill("SIGTERM"); })));
    await etcd?.stop();
  };
  try {
    for (let i = 0; i < o.replicas; i++) {
      const store = etcd
        ? { kind: "etcd", etcd: { endpoints: etcd.endpoints, prefix: "/mip46-scale", leaderTtlSeconds: 2 } }
        : { kind: "sqlite", path: join(dir, "engine.db"), sync: "full" };
      const file = join(dir, `engine-${i}.yaml`);
      writeFileSync(file, stringify(labConfig(dir, { ...common, store, replica: `r${i}` })));
      const prof = o.profile ? ["--cpu-prof", "--cpu-prof-dir", o.profile] : [];
      engines.push(await spawnUntilReady<{ grpcPort: number; metricsPort: number }>(process.execPath, [...prof, "bin/mip46-engine.js", "--config", file], "engine started", 60_000));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    pids: engines.map((e) => e.child.pid!),
    addresses: engines.map((e) => `127.0.0.1:${e.ready.grpcPort}`),
    metricsPorts: engines.map((e) => e.ready.metricsPort),
    etcd,
    async storeMiB() {
      if (!etcd) return sqliteMiB(dir);
      const text = await (await fetch(`${etcd.members[0].clientUrl}/metrics`)).text();
      return Number(/^etcd_mvcc_db_total_size_in_bytes (\S+)$/m.exec(text)?.[1] ?? NaN) / (1 << 20);
    },
    kill() {
      for (const e of engines) e.child.kill("SIGKILL");
      for (const m of etcd?.members ?? []) m.child?.kill("SIGKILL");
    },
    stop,
  };
}

export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
export const etcdCpuMs = (c?: EtcdCluster) => sum((c?.members ?? []).map((m) => (m.child?.pid ? cpuMs(m.child.pid) : 0)));
export const written = (o: EtcdOps) => o.puts + o.deletes;

/** Migration advice given so far, by every replica (only the leader gives any). */
export async function adviceGiven(d: Deployment): Promise<number> {
  const counts = await Promise.all(d.metricsPorts.map(async (port) => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(/^mip46_migration_advice_total (\S+)$/m.exec(text)?.[1] ?? 0);
  }));
  return sum(counts);
}

