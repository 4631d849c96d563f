// A real Prometheus (Debian's /usr/bin/prometheus) against the lab (issue 5, part 5): it runs in
// the management namespace with deploy/prometheus/prometheus.yml and alerts.yml as shipped, only
// the intervals shortened to 1 s, and must find every mip46 target up. One VM handover (vm4 to the
// IPv6 host) gives the mobility metrics something to count, so the per-job queries see real values
// and not only series that exist at zero; every alert rule must then evaluate without error
// against the lab's real series (a wrong label matcher or vector match would show up there).
import anyTest, { type TestFn } from "ava";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { LAB_ENDPOINTS } from "../../deploy/lab/configs.js";
import { REPO, startLab, type RunningLab } from "../../deploy/lab/lab.js";
import { destroyLab, exec, spawnIn } from "../../deploy/lab/netns.js";
import { migrate } from "../../deploy/lab/qemu.js";
import { LAB_PLAN } from "../../deploy/lab/topology.js";
import { labUnavailable, logPath, logSize, waitFor, waitForHandover } from "../helpers/lab.js";

const test = anyTest as TestFn<unknown>;
const PROMETHEUS = "/usr/bin/prometheus";
const unavailable = labUnavailable() ?? (existsSync(PROMETHEUS) ? undefined : `needs ${PROMETHEUS} (Debian's prometheus)`);
if (unavailable) console.log(`test/deploy/lab-prometheus: skipped, ${unavailable}`);
const live = unavailable ? test.serial.skip : test.serial;

const prefix = `m46p${randomBytes(2).toString("hex")}`;
const MGMT = LAB_PLAN.mgmt.bridgeAddress.split("/")[0];
const API = `http://[${MGMT}]:9090/api/v1`;
/** The six metrics endpoints, by the job that must scrape them. */
const EXPECTED: Record<string, string[]> = {
  "mip46-engine": [LAB_ENDPOINTS.engineMetrics],
  "mip46-dataplane": [LAB_ENDPOINTS.engineWorkerMetrics],
  "mip46-home-agent": [LAB_ENDPOINTS.r1Metrics, LAB_ENDPOINTS.r2Metrics],
  "mip46-agent": [LAB_ENDPOINTS.h4Metrics, LAB_ENDPOINTS.h6Metrics],
};

let lab: RunningLab | undefined;
let prometheus: ChildProcess | undefined;
let prometheusLog = "";
let dir: string | undefined;

interface Target { labels: Record<string, string>; scrapePool: string; scrapeUrl: string; health: string; lastError: string }
interface Sample { metric: Record<string, string>; value: [number, string] }
interface Rule { name: string; health: string; lastError?: string; type: string }

/** GET on Prometheus's HTTP API from the management namespace (the only place it can be reached). */
async function api<T>(path: string): Promise<T> {
  const script = `const r = await fetch(${JSON.stringify(API + path)}); process.stdout.write(await r.text());`;
  const { stdout } = await exec(prefix, "mgmt", [process.execPath, "--input-type=module", "-e", script], { timeoutMs: 15_000 });
  const body = JSON.parse(stdout) as { status: string; data: T; error?: string };
  if (body.status !== "success") throw new Error(`${path}: ${body.error ?? stdout}`);
  return body.data;
}

const activeTargets = async () => (await api<{ activeTargets: Target[] }>("/targets?state=active")).activeTargets;
const query = async (expr: string) => (await api<{ resultType: string; result: Sample[] }>(`/query?query=${encodeURIComponent(expr)}`)).result;

if (!unavailable) {
  test.before(async () => {
    dir = mkdtempSync(join(tmpdir(), "m46p-prometheus-"));
    // The shipped files, intervals shortened so the test does not wait out 10 s scrapes.
    const cfg = parse(readFileSync(join(REPO, "deploy/prometheus/prometheus.yml"), "utf8")) as { global: Record<string, unknown> };
    Object.assign(cfg.global, { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" });
    writeFileSync(join(dir, "prometheus.yml"), stringify(cfg));
    copyFileSync(join(REPO, "deploy/prometheus/alerts.yml"), join(dir, "alerts.yml"));
    lab = await startLab({ prefix });
    prometheus = spawnIn(prefix, "mgmt", [
      PROMETHEUS, `--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=[${MGMT}]:9090`,
    ], { stdio: ["ignore", "ignore", "pipe"] });
    prometheus.stderr!.on("data", (d) => (prometheusLog = (prometheusLog + String(d)).slice(-20_000)));
  });

  test.after.always(async () => {
    if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
      const exited = new Promise((r) => prometheus!.once("exit", r));
      prometheus.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (prometheus.exitCode === null && prometheus.signalCode === null) prometheus.kill("SIGKILL");
    }
    if (lab) await lab.stop();
    else await destroyLab(prefix).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
}

/** Prometheus's own log, for failure messages. */
const tail = () => `\nprometheus said:\n${prometheusLog.split("\n").slice(-15).join("\n")}`;

live("Prometheus finds the lab's six targets, in the jobs of prometheus.yml, all up", async (t) => {
  let last: Target[] = [];
  try {
    await waitFor("every target up", async () => {
      last = await activeTargets();
      return last.length > 0 && last.every((x) => x.health === "up") && last;
    }, 30_000, 500);
  } catch (e) {
    t.fail(`${(e as Error).message}: ${JSON.stringify(last.map((x) => ({ url: x.scrapeUrl, health: x.health, error: x.lastError })))}${tail()}`);
    return;
  }
  t.is(last.length, 6);
  const byJob: Record<string, string[]> = {};
  for (const x of last) (byJob[x.labels.job] ??= []).push(x.labels.instance);
  for (const job of Object.keys(byJob)) byJob[job].sort();
  t.deepEqual(byJob, Object.fromEntries(Object.entries(EXPECTED).map(([job, eps]) => [job, [...eps].sort()])));
  t.true(last.every((x) => x.health === "up" && x.lastError === ""));
  // The target labels of prometheus.yml (replica, worker, home_agent, host) clash with none of the
  // processes' own: a clash would rename the process's label to exported_<name>.
  const labels = await api<string[]>("/labels");
  t.deepEqual(labels.filter((l) => l.startsWith("exported_")), []);
  // Through the query API too: `up` is 1 for each of the six.
  const up = await query("up");
  t.is(up.length, 6);
  t.true(up.every((s) => s.value[1] === "1"), JSON.stringify(up));
});

live("a query per job returns the lab's values, after vm4 moves to the IPv6 host", async (t) => {
  const l = lab!;
  // Everything exists at zero before any VM moves; these are what the dashboard's panels read.
  const engine = await waitFor("mip46_rules_revision", async () => (await query('mip46_rules_revision{job="mip46-engine"}')).at(0), 10_000, 500);
  t.is(engine.metric.instance, LAB_ENDPOINTS.engineMetrics);
  t.true(Number(engine.value[1]) >= 1, "the engine has published a rule table");
  const actions = await query('mip46_dataplane_action_packets_total{job="mip46-dataplane"}');
  t.true(actions.some((s) => s.metric.action === "deliver") && actions.some((s) => s.metric.action === "decap"), JSON.stringify(actions.map((s) => s.metric.action)));
  const connected = await query('mip46_dataplane_engine_connected{job="mip46-dataplane"}');
  t.deepEqual(connected.map((s) => s.value[1]), ["1"]);

  // vm4's handover: h6's agent registers it with r1 through the engine (flow 3.1).
  const from = logSize(logPath(l, "agent-h6"));
  await migrate(prefix, "vm4", "h6");
  const handover = await waitForHandover(l, "h6", "vm4", from, 20_000);
  t.true(handover.ok === true, `vm4's handover: ${JSON.stringify(handover)}`);

  const bindings = await waitFor("r1's mip4 binding in Prometheus", async () => {
    const r = await query('mip46_home_agent_bindings{job="mip46-home-agent"}');
    return r.some((s) => s.metric.home_agent === "r1" && s.value[1] === "1") && r;
  }, 15_000, 500);
  t.deepEqual(bindings.map((s) => `${s.metric.home_agent} ${s.metric.protocol} ${s.value[1]}`).sort(), ["r1 mip4 1", "r2 mip6 0"]);
  const accepted = await query('mip46_home_agent_registrations_total{job="mip46-home-agent", result="accepted"}');
  t.true(accepted.some((s) => s.metric.home_agent === "r1" && Number(s.value[1]) >= 1), JSON.stringify(accepted));

  const registered = await waitFor("h6's handover in Prometheus", async () => {
    const r = await query('mip46_agent_handover_seconds_count{job="mip46-agent", step="registered"}');
    return r.length > 0 && r;
  }, 15_000, 500);
  t.deepEqual(registered.map((s) => [s.metric.host, s.metric.direction !== undefined, Number(s.value[1]) >= 1]), [["h6", true, true]]);
  const agentRegs = await query('sum by (host, result) (mip46_agent_registrations_total{job="mip46-agent"})');
  t.true(agentRegs.some((s) => s.metric.host === "h6" && s.metric.result === "accepted" && Number(s.value[1]) >= 1), JSON.stringify(agentRegs));
  // The dashboard's handover panel: a quantile per step, a number rather than NaN.
  const p90 = await query('histogram_quantile(0.9, sum by (le, step) (mip46_agent_handover_seconds_bucket{job="mip46-agent"}))');
  t.true(p90.length >= 1 && p90.every((s) => Number.isFinite(Number(s.value[1]))), JSON.stringify(p90));
});

live("every alert rule evaluates against the lab's series without error, and none fires", async (t) => {
  const rules = await waitFor("every rule evaluated", async () => {
    const groups = (await api<{ groups: { name: string; rules: Rule[] }[] }>("/rules")).groups;
    const all = groups.flatMap((g) => g.rules);
    return all.length > 0 && all.every((r) => r.health !== "unknown") && all;
  }, 15_000, 500);
  const ruleCount = (parse(readFileSync(join(REPO, "deploy/prometheus/alerts.yml"), "utf8")) as { groups: { rules: unknown[] }[] }).groups.flatMap((g) => g.rules).length;
  t.is(rules.length, ruleCount);
  t.deepEqual(rules.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.lastError}`), []);
  // A healthy lab fires nothing. Pending ones are only logged: right after a handover a worker
  // may be a revision behind for a moment, which is what the rules' `for:` is there to absorb.
  const alerts = (await api<{ alerts: { labels: Record<string, string>; state: string }[] }>("/alerts")).alerts;
  for (const a of alerts) t.log(`${a.state}: ${JSON.stringify(a.labels)}`);
  t.deepEqual(alerts.filter((a) => a.state === "firing").map((a) => a.labels.alertname), []);
});
