// The Prometheus files of deploy/prometheus/, checked by Debian's promtool: the scrape
// configuration, the alert rules, and the rules' unit tests (alerts.test.yml).
import test from "ava";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { parse } from "yaml";
import { LAB_ENDPOINTS } from "../../deploy/lab/configs.js";

const run = promisify(execFile);
const dir = "deploy/prometheus";
const promtool = (...args: string[]) => run("promtool", args, { cwd: dir, encoding: "utf8" });

test("promtool check config: the scrape configuration and the rule files it names", async (t) => {
  const { stdout } = await promtool("check", "config", "prometheus.yml");
  t.regex(stdout, /SUCCESS: prometheus\.yml is valid/);
  t.regex(stdout, /SUCCESS: 1 rule files found/);
});

test("promtool check rules: the alert rules", async (t) => {
  const { stdout } = await promtool("check", "rules", "alerts.yml");
  t.regex(stdout, /SUCCESS: \d+ rules found/);
});

test("promtool test rules: the scenarios of alerts.test.yml", async (t) => {
  const { stdout } = await promtool("test", "rules", "alerts.test.yml");
  t.regex(stdout, /SUCCESS/);
  t.notRegex(stdout, /FAILED/);
});

test("the scrape configuration scrapes exactly the lab's six metrics endpoints (LAB_ENDPOINTS), one job per kind of process", async (t) => {
  const cfg = parse(readFileSync(`${dir}/prometheus.yml`, "utf8")) as { scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
  const targets = Object.fromEntries(cfg.scrape_configs.map((j) => [j.job_name, j.static_configs.flatMap((s) => s.targets)]));
  t.deepEqual(targets, {
    "mip46-engine": [LAB_ENDPOINTS.engineMetrics],
    "mip46-dataplane": [LAB_ENDPOINTS.engineWorkerMetrics],
    "mip46-home-agent": [LAB_ENDPOINTS.r1Metrics, LAB_ENDPOINTS.r2Metrics],
    "mip46-agent": [LAB_ENDPOINTS.h4Metrics, LAB_ENDPOINTS.h6Metrics],
  });
});
