// The store's identity in the rule push (issue 11 §6): a worker that had applied a later
// revision of the same store, or a table of another store, takes the engine's snapshot and says
// which of the two happened.
import test from "ava";
import { copyFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { RuleSyncClient } from "../../../dataplane/sync/client.js";
import { hostOn, startTestEngine, tempDir, type TestEngine } from "../../../harness/engine.js";
import { freePort } from "../../../harness/etcd.js";
import { createLogger } from "../../../lib/log.js";

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) throw new Error(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("a restore of an older backup and a new store: the worker takes each snapshot, and logs a revision that went back, then an epoch that changed", async (t) => {
  const port = await freePort();
  const listen = { listen: `127.0.0.1:${port}`, hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } };
  const dirs: string[] = [];
  t.teardown(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
  const keep = (d: string) => (dirs.push(d), d);
  let engine: TestEngine = await startTestEngine(listen, keep(tempDir()));
  t.teardown(() => engine.running.stop().catch(() => undefined));
  const lines: Record<string, unknown>[] = [];
  let table = new Set<string>();
  let revision = 0n;
  const sync = new RuleSyncClient({
    workerId: "w1", engines: [`127.0.0.1:${port}`], maxBackoffMs: 200, log: createLogger({}, "info", (l) => lines.push(JSON.parse(l))),
    onSnapshot: (s) => { table = new Set(s.rules.map((r) => r.key)); revision = s.revision; },
    onDelta: (r, updates, removes) => { for (const k of removes) table.delete(k); for (const u of updates) table.add(u.key); revision = r; },
  });
  sync.start();
  t.teardown(() => sync.stop());
  await engine.client.heartbeat(hostOn(6, "h6"));
  await engine.client.heartbeat(hostOn(4, "h4"));
  await engine.client.mapCorrespondent({ ipv6Address: "2001:db8:c::10" });
  const atBackup = await engine.client.getRuleTable({});
  await until("the worker at the backup's revision", () => sync.appliedRevision === atBackup.revision);
  const epoch = sync.appliedEpoch;
  t.regex(epoch, /^[0-9a-f-]{36}$/, "the store's epoch came with the snapshot");
  const backup = join(keep(tempDir()), "backup.db");
  await engine.running.engine.backup(backup);
  await engine.client.mapCorrespondent({ ipv6Address: "2001:db8:c::11" });
  const later = await engine.client.getRuleTable({});
  await until("the worker at the later revision", () => sync.appliedRevision === later.revision);

  // The documented restore of the backup, on the same address.
  engine.client.close();
  await engine.running.stop();
  const restoredDir = keep(tempDir());
  copyFileSync(backup, join(restoredDir, "engine.db"));
  engine = await startTestEngine(listen, restoredDir);
  await until("the worker back at the backup's revision", () => revision === atBackup.revision && sync.connected);
  t.deepEqual([...table].sort(), atBackup.rules.map((r) => r.key).sort(), "the restored table replaced the later one");
  t.is(sync.appliedEpoch, epoch, "a backup keeps the store's epoch");
  const back = lines.filter((l) => l.msg === "the engine's rule revision went back (its store was restored from a backup?): its table replaces ours");
  t.is(back.length, 1);
  t.like(back[0], { level: "warn", epoch, appliedRevision: later.revision.toString(), revision: atBackup.revision.toString() });

  // Another store altogether.
  engine.client.close();
  await engine.running.stop();
  engine = await startTestEngine(listen, keep(tempDir()));
  await until("the worker on the new store", () => sync.appliedEpoch !== epoch && sync.connected);
  const other = lines.filter((l) => l.msg === "the engine's store is another one (its epoch changed): its table replaces ours");
  t.is(other.length, 1);
  t.like(other[0], { appliedEpoch: epoch, epoch: sync.appliedEpoch });
  t.false([...table].some((k) => k.includes("2001:db8:c::")), "the new store's table, without the old mappings");
});
