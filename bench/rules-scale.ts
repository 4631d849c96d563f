// Issue 15, "Rule compile and push stay incremental": one engine as its own process on SQLite
// (sync=full), a connected worker (the real rule sync client), and the binding table grown from
// the first count to the last through the real API (AllocateCareOf + RegisterMigration, an IPv4
// VM moving to an IPv6 host, flow 3.1). At each count:
//   - RegisterMigration: p50 / p99 of the pair as the client sees it (one at a time, 200 pairs),
//     and the rules in each delta the worker receives (a migration's delta is its VM's rules);
//   - GetRuleTable: its time;
//   - a worker reconnecting (from a process of its own): hello to in-sync (a full snapshot), 3
//     times, while pairs go on: the pairs' p99 during the reconnects against the p99 without them;
// then each figure at the last count as a ratio of the first, in the same run.
//
//   node --import tsx bench/rules-scale.ts [--bindings 100,20000] [--samples 200] [--json out.json]
//
// 198.18.0.0/17 (RFC 2544 benchmarking range) is lease bookkeeping only: no packet is sent.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { execFile } from "node:child_process";
import { RuleSyncClient } from "../dataplane/sync/client.js";
import { hostOn, killHard, spawnEngine } from "../harness/engine.js";

const { values } = parseArgs({ options: { bindings: { type: "string", default: "100,20000" }, samples: { type: "string", default: "200" }, json: { type: "string" }, reconnect: { type: "string" } } });
const run = promisify(execFile);

if (values.reconnect) {
  // A worker connecting to a running engine: prints the ms from hello to in-sync (a full snapshot).
  const t = performance.now();
  const fresh = new RuleSyncClient({ workerId: `w-reconnect-${process.pid}`, engines: [values.reconnect], onSnapshot: () => undefined, onDelta: () => undefined });
  fresh.start();
  while (!fresh.connected) await new Promise((r) => setTimeout(r, 2));
  console.log((performance.now() - t).toFixed(1));
  fresh.stop();
  process.exit(0);
}
const COUNTS = values.bindings!.split(",").map(Number);
const SAMPLES = Number(values.samples);
if (COUNTS.some((n) => !(n > 0 && n <= 30_000)) || COUNTS.some((n, i) => i > 0 && n <= COUNTS[i - 1])) throw new Error("--bindings: growing counts, 1 to 30000");

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
};

const dir = mkdtempSync(join(tmpdir(), "mip46-rules-scale-"));
const engine = await spawnEngine(dir, {
  pool: { name: "engine", prefix: "198.18.0.0/17" },
  leases: { lifetimeSeconds: 7200, cooldownSeconds: 60 },
  hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 3600 },
});
const stop = async () => {
  engine.client.close();
  await killHard(engine).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
};
process.once("SIGINT", () => void stop().then(() => process.exit(130)));

try {
  await engine.client.heartbeat(hostOn(6, "h6"));
  await engine.client.heartbeat(hostOn(4, "h4"));
  const deltaRules: number[] = [];
  const worker = new RuleSyncClient({
    workerId: "w-bench", engines: [engine.address], onSnapshot: () => undefined,
    onDelta: (_r, updates, removes) => { deltaRules.push(updates.length + removes.length); },
  });
  worker.start();
  while (!worker.connected) await new Promise((r) => setTimeout(r, 20));

  let made = 0;
  /** One more VM away: its own home address in 10/8 (on no network the engine serves), care-of from the pool. */
  const pair = async (): Promise<number> => {
    const n = ++made;
    const vmId = `vm-${n}`, home = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const t = performance.now();
    const c = await engine.client.allocateCareOf({ hostId: "h6", vmId, homeAddress: home });
    await engine.client.registerMigration({ vmId, homeAddress: home, homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
    return performance.now() - t;
  };
  const grow = async (to: number) => {
    const lanes = Array.from({ length: 8 }, async () => { while (made < to) await pair(); });
    await Promise.all(lanes);
  };

  const rows: Record<string, number>[] = [];
  for (const count of COUNTS) {
    await grow(count - SAMPLES > made ? count - SAMPLES : made);
    // Pairs one at a time, and the deltas they bring.
    deltaRules.length = 0;
    const plain: number[] = [];
    for (let i = 0; i < SAMPLES; i++) plain.push(await pair());
    while (deltaRules.length < SAMPLES) await new Promise((r) => setTimeout(r, 10));
    const deltas = [...deltaRules];
    const bindings = made;
    const t0 = performance.now();
    const table = await engine.client.getRuleTable({}, 60_000);
    const getMs = performance.now() - t0;
    // Reconnects, with pairs going on meanwhile.
    const during: number[] = [];
    const syncMs: number[] = [];
    let reconnecting = true;
    const load = (async () => { while (reconnecting) during.push(await pair()); })();
    for (let i = 0; i < 3; i++) {
      // From a process of its own: decoding 60,000 rules here would stall this process's pairs
      // and be taken for the engine's stall.
      const out = await run(process.execPath, ["--import", "tsx", "bench/rules-scale.ts", "--reconnect", engine.address], { encoding: "utf8" });
      syncMs.push(Number(out.stdout.trim()));
    }
    reconnecting = false;
    await load;
    rows.push({
      bindings, rules: table.rules.length, pairP50: quantile(plain, 0.5), pairP99: quantile(plain, 0.99),
      deltaRulesMax: Math.max(...deltas), deltaRulesMean: deltas.reduce((a, b) => a + b, 0) / deltas.length,
      getRuleTableMs: getMs, snapshotSyncMs: quantile(syncMs, 0.5), pairP99DuringReconnect: quantile(during, 0.99), pairsDuringReconnect: during.length,
    });
    process.stderr.write(`at ${bindings} bindings: ${JSON.stringify(rows.at(-1))}\n`);
  }
  worker.stop();

  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");
  const head = ["bindings", "rules", "pair p50 ms", "pair p99 ms", "delta rules (max)", "GetRuleTable ms", "snapshot sync ms", "pair p99 ms while reconnecting"];
  const line = (r: Record<string, number>) => [String(r.bindings), String(r.rules), f(r.pairP50), f(r.pairP99), `${f(r.deltaRulesMean, 2)} (${r.deltaRulesMax})`, f(r.getRuleTableMs), f(r.snapshotSyncMs), `${f(r.pairP99DuringReconnect)} (${r.pairsDuringReconnect} pairs)`];
  const table = [head, ...rows.map(line)];
  const widths = head.map((_, i) => Math.max(...table.map((r) => r[i].length)));
  for (const r of table) console.log(r.map((c, i) => c.padStart(widths[i])).join("  "));
  const first = rows[0], last = rows.at(-1)!;
  console.log(`\nlast ÷ first (${last.bindings} against ${first.bindings} bindings): pair p50 ×${f(last.pairP50 / first.pairP50, 2)}, pair p99 ×${f(last.pairP99 / first.pairP99, 2)}, `
    + `delta rules ×${f(last.deltaRulesMean / first.deltaRulesMean, 2)}, GetRuleTable ×${f(last.getRuleTableMs / first.getRuleTableMs, 1)}, snapshot sync ×${f(last.snapshotSyncMs / first.snapshotSyncMs, 1)}, `
    + `pair p99 while reconnecting ×${f(last.pairP99DuringReconnect / last.pairP99, 2)} of the same count's without`);
  if (values.json) writeFileSync(values.json, JSON.stringify(rows, null, 2));
} finally {
  await stop();
}
