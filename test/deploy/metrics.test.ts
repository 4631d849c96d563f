// The Grafana dashboard and the alert rules may only name metrics that the code defines: the
// names are read from the source (every `new Counter/Gauge/Histogram/Summary({ name: "..." })`)
// and from the process metrics lib/metrics/http.ts registers. promtool checks what the engine and
// the worker serve.
import test from "ava";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { Registry } from "prom-client";
import { registerProcessMetrics } from "../../lib/metrics/http.js";
import { workerMetrics } from "../../dataplane/worker/metrics.js";
import { startTestEngine } from "../../harness/engine.js";
import { parse } from "yaml";

// The whole tree but what is not ours or not the product: a metric defined in a new folder is
// found without anyone remembering to list the folder here.
const SKIP = new Set(["node_modules", "dist", "gen", "test", "tmp", "bench"]);

function sources(dir: string): string[] {
  let out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name.startsWith(".") || SKIP.has(name)) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(sources(p));
    else if (/\.m?ts$/.test(p) && !p.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** Metric name to its type, as defined in the code. */
async function definedMetrics(): Promise<Map<string, string>> {
  const defined = new Map<string, string>();
  let processMetrics = false;
  for (const file of sources(".")) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*"([^"]+)"/g)) defined.set(m[2], m[1].toLowerCase());
    if (/registerProcessMetrics\(this\.registry\)|registerProcessMetrics\(registry\)/.test(text) && !file.endsWith("http.ts")) processMetrics = true;
  }
  if (processMetrics) {
    const registry = new Registry();
    registerProcessMetrics(registry);
    for (const m of await registry.getMetricsAsJSON()) defined.set(m.name, String(m.type));
  }
  return defined;
}

/** The metric names in a PromQL expression: ours (mip46_, grpc_server_) and `up`. */
function namesIn(expr: string): string[] {
  return [...expr.matchAll(/\b(mip46_[a-z0-9_]+|grpc_server_[a-z0-9_]+|process_[a-z0-9_]+|nodejs_[a-z0-9_]+|up)\b(?!\s*\()/g)].map((m) => m[1]);
}

function unknownNames(exprs: string[], defined: Map<string, string>): string[] {
  const unknown = new Set<string>();
  for (const expr of exprs) {
    for (const name of namesIn(expr)) {
      if (name === "up" || defined.has(name)) continue;
      // A histogram's series: NAME_bucket, NAME_sum, NAME_count (a summary's: _sum, _count).
      const base = /^(.*)_(bucket|sum|count)$/.exec(name);
      const type = base && defined.get(base[1]);
      if (type === "histogram" || (type === "summary" && base![2] !== "bucket")) continue;
      unknown.add(name);
    }
  }
  return [...unknown];
}

function dashboardExprs(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(dashboardExprs);
  if (node && typeof node === "object") {
    return Object.entries(node).flatMap(([k, v]) => (k === "expr" && typeof v === "string" ? [v] : dashboardExprs(v)));
  }
  return [];
}

test("the metric-name check finds our definitions, and refuses a name nobody defines", async (t) => {
  const defined = await definedMetrics();
  t.is(defined.get("grpc_server_handling_seconds"), "histogram");
  t.true(defined.has("mip46_dataplane_capture_drops_total"));
  t.true(defined.has("process_cpu_seconds_total"), "Prometheus' standard process metrics, unprefixed");
  t.false([...defined.keys()].some((n) => /^mip46_[a-z]+_(process|nodejs)_/.test(n)), "no process or nodejs metric under a mip46_ prefix");
  // One from each process: the home agents' and the agents' own are defined in homeagent/ and clients/.
  t.is(defined.get("mip46_home_agent_registrations_total"), "counter");
  t.is(defined.get("mip46_home_agent_bindings"), "gauge");
  t.is(defined.get("mip46_agent_handover_seconds"), "histogram");
  t.is(defined.get("mip46_agent_registrations_total"), "counter");
  t.deepEqual(unknownNames(['rate(mip46_pool_adresses[5m]) + grpc_server_handling_seconds_bucket + mip46_pool_leases_sum'], defined),
    ["mip46_pool_adresses", "mip46_pool_leases_sum"]);
});

test("the Grafana dashboard is valid JSON and names only defined metrics", async (t) => {
  const dashboard = JSON.parse(readFileSync("deploy/grafana/mip46.json", "utf8")) as { title: string; uid: string; panels: { id: number; type: string }[] };
  t.is(dashboard.uid, "mip46");
  const ids = dashboard.panels.map((p) => p.id);
  t.is(new Set(ids).size, ids.length, "panel ids are unique");
  const exprs = dashboardExprs(dashboard);
  t.true(exprs.length >= 20);
  t.deepEqual(unknownNames(exprs, await definedMetrics()), []);
});

test("the dashboard: a leader panel, worker and host variables every data-plane and agent panel follows, handover annotations", async (t) => {
  type Target = { expr: string };
  const d = JSON.parse(readFileSync("deploy/grafana/mip46.json", "utf8")) as {
    panels: { title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: Target[] }[];
    templating: { list: { name: string; definition?: string }[] };
    annotations: { list: { name: string; expr: string }[] };
  };
  const leader = d.panels.find((p) => p.title === "Leader");
  t.regex(leader?.targets?.[0].expr ?? "", /mip46_engine_leader\{[^}]*\} == 1/);
  const vars = new Map(d.templating.list.map((v) => [v.name, v.definition ?? ""]));
  t.regex(vars.get("worker") ?? "", /^label_values\(mip46_dataplane_rules_revision, instance\)$/);
  t.regex(vars.get("host") ?? "", /^label_values\(mip46_build_info\{job="mip46-agent"\}, instance\)$/);
  const defined = await definedMetrics();
  t.deepEqual(unknownNames([...vars.values()].map((v) => v.replace(/^label_values\((.*), instance\)$/, "$1")), defined), []);
  // Every series of a worker or an agent is filtered by its variable (the engine's own are not).
  for (const p of d.panels) {
    for (const { expr } of p.targets ?? []) {
      for (const m of expr.matchAll(/\b(mip46_(?:dataplane|agent)_[a-z_]+)(\{[^}]*\})?/g)) {
        if (m[2]?.includes('job="mip46-engine"')) continue;
        t.regex(m[2] ?? "", m[1].startsWith("mip46_agent_") ? /instance=~"\$host"/ : /instance=~"\$worker"/, `${p.title}: ${m[1]}`);
      }
    }
  }
  const handovers = d.annotations.list.find((a) => a.name === "Handovers");
  t.regex(handovers?.expr ?? "", /mip46_agent_handover_seconds_count\{step="registered"/);
  t.deepEqual(unknownNames([handovers!.expr], defined), []);
  // No two panels overlap on the grid.
  const cells = new Set<string>();
  for (const p of d.panels) {
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        t.false(cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
        cells.add(`${x},${y}`);
      }
    }
  }
});

test("the alert rules name only defined metrics", async (t) => {
  const doc = parse(readFileSync("deploy/prometheus/alerts.yml", "utf8")) as { groups: { rules: { alert: string; expr: string }[] }[] };
  const exprs = doc.groups.flatMap((g) => g.rules.map((r) => r.expr));
  t.true(exprs.length > 10);
  t.deepEqual(unknownNames(exprs, await definedMetrics()), []);
});

test("the dashboard and the alert rules select only jobs that prometheus.yml scrapes", (t) => {
  const cfg = parse(readFileSync("deploy/prometheus/prometheus.yml", "utf8")) as { scrape_configs: { job_name: string }[] };
  const jobs = new Set(cfg.scrape_configs.map((j) => j.job_name));
  const rules = parse(readFileSync("deploy/prometheus/alerts.yml", "utf8")) as { groups: { rules: { expr: string }[] }[] };
  const exprs = [...dashboardExprs(JSON.parse(readFileSync("deploy/grafana/mip46.json", "utf8"))), ...rules.groups.flatMap((g) => g.rules.map((r) => r.expr))];
  const selected = exprs.flatMap((e) => [...e.matchAll(/\bjob\s*=\s*"([^"]+)"/g)].map((m) => m[1]));
  t.true(selected.length > 10);
  t.deepEqual([...new Set(selected)].filter((j) => !jobs.has(j)), []);
});

/** What `promtool check metrics` says of a scrape (nothing when every name follows the conventions). */
function promtool(text: string): string {
  try {
    return execFileSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return `${err.stdout ?? ""}${err.stderr ?? ""}`;
  }
}

test("promtool check metrics finds nothing to say of what the engine and a worker serve", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const engine = await (await fetch(`http://127.0.0.1:${e.running.metricsPort}/metrics`)).text();
  t.regex(engine, /^nodejs_active_handles\{/m, "the per-type gauges stay");
  t.notRegex(engine, /^nodejs_active_handles_total /m);
  t.is(promtool(engine), "", "engine");
  const port = { received: 0, batches: 0, sent: 0, sendErrors: 0, truncated: 0, captureDrops: 0, socketErrors: 0 };
  const worker = await workerMetrics({
    interfaces: () => [{ name: "w0", rxPackets: 1, txPackets: 1, rxBytes: 60, txBytes: 60, port }], actions: () => ({ decap: 1 }), drops: () => ({ "no-route": 1 }),
    revision: () => 1n, rules: () => 3, neighbours: () => [{ family: "ipv4", state: "reachable", count: 1 }], engineConnected: () => true,
  }).metrics();
  t.regex(worker, /^mip46_dataplane_socket_errors_total\{interface="w0"\} 0/m);
  t.is(promtool(worker), "", "worker");
});
