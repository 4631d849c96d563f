// The Grafana dashboard and the alert rules may only name metrics that the code defines: the
// names are read from the source (every `new Counter/Gauge/Histogram/Summary({ name: "..." })`)
// and from prom-client's default metrics under the prefixes the code gives them.
import test from "ava";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { collectDefaultMetrics, Registry } from "prom-client";
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
  const prefixes = new Set<string>();
  for (const file of sources(".")) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*"([^"]+)"/g)) defined.set(m[2], m[1].toLowerCase());
    for (const m of text.matchAll(/collectDefaultMetrics\(\{([^}]*)\}/g)) prefixes.add(/prefix:\s*"([^"]+)"/.exec(m[1])?.[1] ?? "");
  }
  for (const prefix of prefixes) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix });
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
