// mipctl backup as an operator runs it: an online copy of a serving engine's SQLite store, and the
// documented restore (an engine started on the copy holds the whole state as it was).
import test from "ava";
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { awayFromHome, startTestEngine, storedState, tempDir } from "../../harness/engine.js";
import { startEtcdCluster } from "../../harness/etcd.js";

const run = promisify(execFile);
const mipctl = (address: string, ...args: string[]) => run(process.execPath, ["bin/mipctl.js", "--engine", address, ...args], { encoding: "utf8" });
const LONG_HOSTS = { hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } };

test("mipctl backup copies a serving engine's store; an engine restored from the copy holds every lease, binding, rule and migration as they were at the backup, and nothing after it", async (t) => {
  const e = await startTestEngine(LONG_HOSTS);
  t.teardown(() => e.stop());
  await awayFromHome(e.client);
  await e.client.mapCorrespondent({ ipv6Address: "2001:db8:c::10" });
  const before = await storedState(e.client);
  const { revision } = await e.client.getRuleTable({});

  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "backup.db");
  const out = (await mipctl(e.address, "backup", file)).stdout;
  t.regex(out, new RegExp(`^backup of the store at rule revision ${revision} \\(\\d+ bytes\\) in ${file.replaceAll("/", "\\/")}; restore: `));
  t.true(existsSync(file));
  t.deepEqual(readdirSync(dir), ["backup.db"], "no partial file left");
  t.is(readFileSync(file).subarray(0, 16).toString("latin1"), "SQLite format 3\0", "a SQLite database file");
  t.is(await storedState(e.client), before, "the backup changed nothing in the serving engine");

  // A change after the backup: the restored engine must not have it.
  await e.client.allocateCareOf({ hostId: "h6", vmId: "late", homeAddress: "192.0.2.7" });

  // The documented restore: the file at store.path of a stopped engine, then start it.
  const restoredDir = tempDir();
  t.teardown(() => rmSync(restoredDir, { recursive: true, force: true }));
  copyFileSync(file, join(restoredDir, "engine.db"));
  const restored = await startTestEngine(LONG_HOSTS, restoredDir);
  t.teardown(() => restored.stop());
  t.is(await storedState(restored.client), before, "leases, bindings, hosts, rules and migrations exactly as at the backup");
  t.false((await restored.client.listLeases({})).leases.some((l) => l.holder === "late"), "the later allocation is not in it");
  t.is((await restored.client.getRuleTable({})).revision, revision);

  const again = await t.throwsAsync(mipctl(e.address, "backup", file)) as Error & { code: number; stderr: string };
  t.is(again.code, 2);
  t.regex(again.stderr, /exists; give a new file \(a backup never overwrites one\)/);
  const none = await t.throwsAsync(mipctl(e.address, "backup")) as Error & { code: number; stderr: string };
  t.is(none.code, 2);
  t.regex(none.stderr, /backup takes the FILE to write/);
});

test("mipctl backup of an engine on etcd says to use etcd's own snapshot, and writes no file", async (t) => {
  const cluster = await startEtcdCluster(1);
  t.teardown(() => cluster.stop());
  const e = await startTestEngine({ store: { kind: "etcd", etcd: { endpoints: cluster.endpoints, prefix: "/mip46-backup-test", leaderTtlSeconds: 1 } } });
  t.teardown(() => e.stop());
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "keep"), "");
  const err = await t.throwsAsync(mipctl(e.address, "backup", join(dir, "x.db"))) as Error & { code: number; stderr: string };
  t.is(err.code, 1);
  t.regex(err.stderr, /the store is etcd: back it up with etcd's own snapshot \(etcdctl snapshot save FILE\)/);
  t.deepEqual(readdirSync(dir), ["keep"], "no file and no partial file");
});
