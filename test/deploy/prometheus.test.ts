// The Prometheus files of deploy/prometheus/, checked by Debian's promtool: the scrape
// configuration, the alert rules, and the rules' unit tests (alerts.test.yml).
import test from "ava";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

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

test("promtool test rules: engine replicas down, a worker behind on rules, a pool nearly exhausted", async (t) => {
  const { stdout } = await promtool("test", "rules", "alerts.test.yml");
  t.regex(stdout, /SUCCESS/);
  t.notRegex(stdout, /FAILED/);
});

test("the scrape configuration has a job for each mip46 process on the lab's ports", async (t) => {
  const { parse } = await import("yaml");
  const { readFileSync } = await import("node:fs");
  const cfg = parse(readFileSync(`${dir}/prometheus.yml`, "utf8")) as { scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
  const targets = Object.fromEntries(cfg.scrape_configs.map((j) => [j.job_name, j.static_configs.flatMap((s) => s.targets)]));
  t.deepEqual(targets, {
    "mip46-engine": ["[2001:db8:ff::1]:9046"],
    "mip46-dataplane": ["[2001:db8:ff::1]:9047"],
    "mip46-home-agent": ["[2001:db8:ff::2]:9048", "[2001:db8:ff::3]:9049"],
    "mip46-agent": ["[2001:db8:ff::4]:9050", "[2001:db8:ff::5]:9051"],
  });
});
