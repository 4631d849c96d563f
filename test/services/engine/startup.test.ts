// Configuration that says what it did (issue 11 §7), on mip46-engine as its own process: a start
// that cannot work ends with one log line naming the key and its value, and exit 1 (no stack
// trace); an engine on etcd that does not answer at start waits for it, its gRPC port saying
// NOT_SERVING meanwhile, and serves once etcd answers.
import test from "ava";
import { spawn } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { credentials, makeGenericClientConstructor, type ServiceError, status } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { stringify } from "yaml";
import { connectControl } from "../../../clients/control.js";
import { spawnUntilReady } from "../../../lib/process/spawn.js";
import { failure, hostOn, labConfig, storedState, tempDir } from "../../../harness/engine.js";
import { startEtcdCluster } from "../../../harness/etcd.js";

type Line = { level: string; msg: string; error?: string; grpcPort?: number };

/** Runs the engine on `overrides` (and `flags`) until it exits: its exit code and its log lines. */
function runToExit(dir: string, overrides: Record<string, unknown>, flags: string[] = []): Promise<{ code: number | null; lines: Line[]; stderr: string }> {
  const path = join(dir, `engine-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, stringify(labConfig(dir, overrides)));
  const child = spawn(process.execPath, ["bin/mip46-engine.js", "--config", path, ...flags], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve) => child.once("exit", (code) => {
    resolve({ code, stderr, lines: stderr.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Line) });
  }));
}

function listening(): Promise<Server & { port: number }> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => resolve(Object.assign(s, { port: (s.address() as { port: number }).port })));
  });
}

test("a start that cannot work ends in one line naming the key and the value, exit 1: folder missing, port out of range, port in use", async (t) => {
  const dir = tempDir("m46ig-start-");
  const taken = await listening();
  t.teardown(() => {
    taken.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const missing = join(dir, "no-such-folder", "engine.db");
  const cases: [string, Record<string, unknown>, string[], string, string][] = [
    ["the store's folder is missing", { store: { kind: "sqlite", path: missing } }, [], "engine could not start", `store.path: ${missing}: the folder ${join(dir, "no-such-folder")} does not exist`],
    ["listen's port out of range", { listen: "127.0.0.1:70000" }, [], "configuration refused", "listen: '127.0.0.1:70000': port 70000 is out of range (0-65535)"],
    ["metricsListen's port out of range", { metricsListen: "127.0.0.1:65536" }, [], "configuration refused", "metricsListen: '127.0.0.1:65536': port 65536 is out of range (0-65535)"],
    ["listen not HOST:PORT", { listen: "localhost" }, [], "configuration refused", "listen: 'localhost' must be HOST:PORT or [IPv6]:PORT"],
    ["listen a unix socket without its path", { listen: "unix:" }, [], "configuration refused", "listen: 'unix:': a unix socket needs its path (unix:/run/mip46/engine.sock)"],
    ["metricsListen a unix socket (HTTP takes HOST:PORT)", { metricsListen: "unix:/tmp/x.sock" }, [], "configuration refused", "metricsListen: 'unix:/tmp/x.sock' must be HOST:PORT or [IPv6]:PORT"],
    ["--listen's port out of range", {}, ["--listen", "127.0.0.1:99999"], "engine could not start", "listen: '127.0.0.1:99999': port 99999 is out of range (0-65535)"],
    ["listen's port in use", { listen: `127.0.0.1:${taken.port}` }, [], "engine could not start", `listen: 127.0.0.1:${taken.port} is in use`],
    ["metricsListen's port in use", { metricsListen: `127.0.0.1:${taken.port}` }, [], "engine could not start", `metricsListen: 127.0.0.1:${taken.port} is in use`],
  ];
  for (const [what, overrides, flags, msg, error] of cases) {
    const { code, lines, stderr } = await runToExit(dir, overrides, flags);
    t.is(code, 1, `${what}: exit 1\n${stderr}`);
    const errors = lines.filter((l) => l.level === "error");
    t.deepEqual(errors.map((l) => [l.msg, l.error]), [[msg, error]], `${what}: one error line, naming the key`);
    t.false(stderr.includes("    at "), `${what}: no stack trace`);
  }
  t.false(existsSync(join(dir, "no-such-folder")), "the missing folder was not made");
});

test("etcd unreachable at start: the engine retries, answers NOT_SERVING (health) and UNAVAILABLE (calls) meanwhile, and serves once etcd answers", async (t) => {
  const cluster = await startEtcdCluster(1);
  const dir = tempDir("m46ig-etcdwait-");
  await cluster.kill(0);
  const path = join(dir, "engine.yaml");
  writeFileSync(path, stringify(labConfig(dir, {
    replica: "r0", store: { kind: "etcd", etcd: { endpoints: cluster.endpoints, prefix: `/m46ig-wait-${process.pid}`, dialTimeoutMs: 500 } },
  })));
  const { child, ready, log } = await spawnUntilReady<{ grpcPort: number }>(process.execPath, ["bin/mip46-engine.js", "--config", path], "engine waiting for its store");
  const address = `127.0.0.1:${ready.grpcPort}`;
  const Health = makeGenericClientConstructor(healthService, "Health");
  const health = new Health(address, credentials.createInsecure()) as unknown as {
    check(req: { service: string }, cb: (err: ServiceError | null, res: { status: string | number }) => void): void; close(): void;
  };
  const client = connectControl(address);
  t.teardown(async () => {
    health.close();
    client.close();
    if (child.exitCode === null) child.kill("SIGKILL");
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const check = (service: string) => new Promise<string | number>((resolve, reject) => health.check({ service }, (err, r) => (err ? reject(err) : resolve(r.status))));
  for (const service of ["", "mip46.v1.ControlEngine", "mip46.v1.DataPlaneSync"]) {
    t.true(["NOT_SERVING", 2].includes(await check(service)), `${service || "server"}: NOT_SERVING while etcd does not answer`);
  }
  const refused = await failure(client.listPools({}));
  t.is(refused.code, status.UNAVAILABLE, "a call is UNAVAILABLE, which clients wait out or take to another replica");
  t.regex(refused.details, /^engine r0 is not ready: etcd \(store\.etcd\.endpoints 127\.0\.0\.1:\d+\) does not answer yet$/);
  // It retries (lib/retry.ts), saying so, and is still running.
  const retried = () => log().split("\n").filter((l) => l.includes('"msg":"etcd does not answer; trying again"')).length;
  while (retried() < 2) await new Promise((r) => setTimeout(r, 100));
  t.is(child.exitCode, null);

  cluster.start(0);
  await cluster.ready();
  const until = Date.now() + 30_000;
  while (!log().includes('"msg":"engine started"') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  const started = JSON.parse(log().split("\n").find((l) => l.includes('"msg":"engine started"'))!) as { grpcPort: number };
  t.is(started.grpcPort, ready.grpcPort, "on the port it answered NOT_SERVING on");
  let serving: string | number = "";
  while (Date.now() < until) {
    serving = await check("").catch((e: Error) => e.message);
    if (serving === "SERVING" || serving === 1) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.true(serving === "SERVING" || serving === 1, `SERVING once etcd answers (${String(serving)})\n${log()}`);
  // It serves: the pools are synced to etcd, and a call changes what it should.
  await client.heartbeat(hostOn(6, "h6"));
  const lease = await client.allocateCareOf({ hostId: "h6", vmId: "a", homeAddress: "192.0.2.1" });
  const state = JSON.parse(await storedState(client)) as { pools: { pools: { name: string; leased: number }[] }; leases: { leases: { address: string; holder: string }[] }; bindings: { bindings: unknown[] }; hosts: { hostId: string }[] };
  t.deepEqual(state.pools.pools.map((p) => [p.name, p.leased]), [["engine", 1], ["ipv4-lab", 0]]);
  t.deepEqual(state.leases.leases.map((l) => [l.address, l.holder]), [[lease.careOfIpv4, "a"]]);
  t.deepEqual(state.bindings.bindings, []);
  t.deepEqual(state.hosts.map((h) => h.hostId), ["h6"]);
});
