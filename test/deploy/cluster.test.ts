// deploy/examples/cluster/: the three etcd member files start a real cluster (moved from the
// example addresses to loopback ports), and the three engine replica files pass the engine's own
// configuration check and point at those members.
import test from "ava";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";

import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parse } from "yaml";
import { parseConfig } from "../../services/config/config.js";
import { freePort } from "../../harness/etcd.js";

const run = promisify(execFile);
const DIR = "deploy/examples/cluster";
const MEMBERS = [1, 2, 3];

test("the engine replica files pass the configuration check and list every etcd member", (t) => {
  const members = MEMBERS.map((n) => parse(readFileSync(`${DIR}/etcd-${n}.yaml`, "utf8")) as Record<string, string>);
  const clientUrls = members.map((m) => m["advertise-client-urls"].replace(/^http:\/\//, ""));
  const replicas = MEMBERS.map((n) => parseConfig(parse(readFileSync(`${DIR}/engine-${n}.yaml`, "utf8")), `engine-${n}.yaml`));
  t.deepEqual(replicas.map((r) => r.replica), ["e1", "e2", "e3"]);
  for (const r of replicas) {
    t.is(r.store.kind, "etcd");
    t.deepEqual(r.store.etcd?.endpoints, clientUrls);
    t.is(r.store.etcd?.prefix, "/mip46");
    t.truthy(r.tls?.key);
  }
  t.is(new Set(replicas.map((r) => r.listen)).size, 3);
});

test("the etcd member files start a 3-member cluster that serves", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mip46-deploy-etcd-"));
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once("exit", () => resolve());
      c.kill("SIGKILL");
    })));
    rmSync(dir, { recursive: true, force: true });
  });
  // Each example address:port becomes a free loopback port, the same in every file.
  const ports = new Map<string, number>();
  for (const n of MEMBERS) for (const p of [2379, 2380, 2381]) ports.set(`[2001:db8:ff:1::${n}]:${p}`, await freePort());
  const local = (text: string) => text.replace(/\[2001:db8:ff:1::\d\]:\d+/g, (a) => `127.0.0.1:${ports.get(a) ?? a}`);
  const clientUrls: string[] = [];
  for (const n of MEMBERS) {
    const cfg = parse(readFileSync(`${DIR}/etcd-${n}.yaml`, "utf8")) as Record<string, string>;
    for (const [k, v] of Object.entries(cfg)) if (typeof v === "string") cfg[k] = local(v);
    cfg["data-dir"] = join(dir, `etcd-${n}`);
    cfg["listen-client-urls"] = cfg["advertise-client-urls"]; // the file's extra 127.0.0.1:2379 would clash
    cfg["initial-cluster-token"] = `mip46-deploy-test-${process.pid}`;
    clientUrls.push(cfg["advertise-client-urls"]);
    const file = join(dir, `etcd-${n}.yaml`);
    writeFileSync(file, JSON.stringify(cfg)); // YAML is a superset of JSON
    const child = spawn("/usr/bin/etcd", ["--config-file", file], { stdio: "ignore" });
    children.push(child);
  }
  const etcdctl = (...args: string[]) => run("etcdctl", ["--endpoints", clientUrls.join(","), "--command-timeout=2s", ...args], { env: { ...process.env, ETCDCTL_API: "3" }, encoding: "utf8" });
  let health = "";
  for (let i = 0; i < 60 && !/is healthy.*\n.*is healthy.*\n.*is healthy/s.test(health); i++) {
    await new Promise((r) => setTimeout(r, 250));
    health = await etcdctl("endpoint", "health").then((r) => r.stdout + r.stderr, (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
  t.is(health.match(/is healthy/g)?.length, 3, health);
  const list = await etcdctl("member", "list");
  t.is(list.stdout.trim().split("\n").length, 3);
  t.regex(list.stdout, /etcd-1.*etcd-2|etcd-2.*etcd-1/s);
  await etcdctl("put", "/mip46/deploy-test", "ok");
  t.regex((await etcdctl("get", "/mip46/deploy-test")).stdout, /^\/mip46\/deploy-test\nok\n$/);
});
