// SIGHUP and SIGUSR2 on a real daemon (mip46-engine as its own process, lib/process/main.ts):
// SIGHUP rereads and checks the file and names what changed, a refused file keeps the running
// one, and the engine serves on throughout; SIGUSR2 switches the log to debug and back.
import test from "ava";
import { spawnUntilReady } from "../../../lib/process/spawn.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { connectControl } from "../../../clients/control.js";
import { changedKeys } from "../../../lib/process/main.js";
import { labConfig, logLines as lines, waitForLogLine as waitForLine } from "../../../harness/engine.js";

test("changedKeys names the dotted paths that differ, lists compared whole", (t) => {
  t.deepEqual(changedKeys({ a: 1, b: { c: [1, 2], d: "x" } }, { a: 1, b: { c: [1, 2], d: "y" } }), ["b.d"]);
  t.deepEqual(changedKeys({ a: [1, 2] }, { a: [2, 1], e: 1 }), ["a", "e"]);
  t.deepEqual(changedKeys({ a: 1n }, { a: 1n }), []);
});

test("SIGHUP rereads the engine's file and names the changed keys, keeps it on a refusal and never stops the engine; SIGUSR2 switches debug on and off", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "m46-signals-"));
  const path = join(dir, "engine.yaml");
  writeFileSync(path, stringify(labConfig(dir)));
  const { child, ready, log } = await spawnUntilReady<{ grpcPort: number }>(process.execPath, ["bin/mip46-engine.js", "--config", path], "engine started");
  const client = connectControl(`127.0.0.1:${ready.grpcPort}`);
  t.teardown(() => {
    client.close();
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const mark = () => lines(log()).length;

  let from = mark();
  child.kill("SIGHUP");
  const same = await waitForLine(log, from, (l) => l.msg.startsWith("configuration reread"));
  t.is(same.msg, "configuration reread: unchanged");

  from = mark();
  // A key that needs a restart (the engine applies others in place: test/services/engine/reload.test.ts).
  writeFileSync(path, stringify(labConfig(dir, { pool: { name: "engine", prefix: "198.51.100.0/24", exclude: ["198.51.100.1", "198.51.100.2"] } })));
  child.kill("SIGHUP");
  const changed = await waitForLine(log, from, (l) => l.msg.startsWith("configuration reread"));
  t.is(changed.level, "warn");
  t.deepEqual(changed.changed, ["pool.exclude"]);

  from = mark();
  writeFileSync(path, stringify({ ...labConfig(dir), leases: { lifetimeSecond: 900 } }));
  child.kill("SIGHUP");
  const refused = await waitForLine(log, from, (l) => l.msg.includes("reload refused"));
  t.is(refused.level, "error");
  t.regex(String(refused.error), /leases\.lifetimeSecond: unknown key/);

  // Still serving, with the configuration it started with.
  const pools = await client.listPools({});
  t.true(pools.pools.length > 0);
  t.is(child.exitCode, null);

  from = mark();
  child.kill("SIGUSR2");
  const on = await waitForLine(log, from, (l) => l.msg === "log level");
  t.is(on.logLevel, "debug");
  from = mark();
  child.kill("SIGUSR2");
  const off = await waitForLine(log, from, (l) => l.msg === "log level");
  t.is(off.logLevel, "info", "back to the level it started with");
  t.is(child.exitCode, null);
});
