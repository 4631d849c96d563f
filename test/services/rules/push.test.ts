// The rule push (dataplane.proto) between a real engine and the worker's sync client over gRPC:
// snapshot, in-sync, deltas with revisions, acknowledgements, lag, and reconnection.
import test from "ava";
import { credentials } from "@grpc/grpc-js";
import { DataPlaneSyncClient, type EngineMessage } from "../../../gen/mip46/v1/dataplane.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { RuleSyncClient } from "../../../dataplane/sync/client.js";
import { RuleTableCache } from "../../../services/rules/push.js";
import { hostOn, killHard, spawnEngine, startTestEngine, tempDir } from "../../../harness/engine.js";
import { rmSync } from "node:fs";
import { freePort } from "../../../harness/etcd.js";

/** A worker's view of the table, kept the way a worker keeps it. */
function mirror() {
  const table = new Map<string, Rule>();
  const events: string[] = [];
  let revision = 0n;
  return {
    table, events, get revision() { return revision; },
    onSnapshot(t: { revision: bigint; rules: Rule[] }) {
      table.clear();
      for (const r of t.rules) table.set(r.key, r);
      revision = t.revision;
      events.push(`snapshot@${t.revision}`);
    },
    onDelta(rev: bigint, updates: Rule[], removes: string[]) {
      for (const k of removes) table.delete(k);
      for (const r of updates) table.set(r.key, r);
      revision = rev;
      events.push(`delta@${rev}`);
    },
  };
}

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function migrate(client: Awaited<ReturnType<typeof startTestEngine>>["client"], vm: string, home: string) {
  const c = await client.allocateCareOf({ hostId: "h6", vmId: vm, homeAddress: home });
  return client.registerMigration({ vmId: vm, homeAddress: home, homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
}

test("a worker gets a snapshot, then one delta per revision, and its table matches the engine's", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.heartbeat(hostOn(4, "h4")); // vm-a's home host, which registers it home below
  await migrate(e.client, "vm-a", "192.0.2.1");
  const m = mirror();
  const sync = new RuleSyncClient({ workerId: "w1", engines: [e.address], onSnapshot: m.onSnapshot, onDelta: m.onDelta });
  sync.start();
  t.teardown(() => sync.stop());
  await until(() => sync.connected);
  const first = await e.client.getRuleTable({});
  t.is(m.revision, first.revision);
  t.deepEqual([...m.table.keys()].sort(), first.rules.map((r) => r.key).sort());

  const r2 = await migrate(e.client, "vm-b", "192.0.2.7");
  await e.client.registerMigration({ vmId: "vm-a", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: "", careOfIpv6: "" });
  const last = await e.client.getRuleTable({});
  await until(() => m.revision === last.revision);
  t.deepEqual(m.events, [`snapshot@${first.revision}`, `delta@${r2.ruleRevision}`, `delta@${last.revision}`]);
  t.deepEqual([...m.table.keys()].sort(), last.rules.map((r) => r.key).sort(), "vm-a's rules were removed, vm-b's added");
  t.false([...m.table.keys()].some((k) => k.startsWith("vm/vm-a/")));
  await until(() => sync.appliedRevision === last.revision);
  const metrics = async () => (await fetch(`http://127.0.0.1:${e.running.metricsPort}/metrics`)).text();
  const noLag = /^mip46_dataplane_worker_lag_revisions\{worker="w1"\} 0$/m;
  await until(async () => noLag.test(await metrics())).catch(() => undefined);
  t.regex(await metrics(), noLag, "the engine counts the worker as caught up");
});

test("a worker that does not acknowledge shows up as lagging", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const raw = new DataPlaneSyncClient(e.address, credentials.createInsecure());
  const stream = raw.syncRules();
  t.teardown(() => { stream.cancel(); raw.close(); });
  const seen: EngineMessage[] = [];
  stream.on("data", (d: EngineMessage) => seen.push(d));
  stream.on("error", () => undefined);
  stream.write({ message: { $case: "hello", value: { workerId: "silent", appliedRevision: 0n, appliedEpoch: "" } } });
  await until(() => seen.some((s) => s.message?.$case === "inSync"));
  t.deepEqual(seen.map((s) => s.message?.$case), ["snapshotBegin", "snapshotRules", "inSync"]);
  await migrate(e.client, "vm-a", "192.0.2.1");
  await migrate(e.client, "vm-b", "192.0.2.7");
  await until(() => seen.filter((s) => s.message?.$case === "delta").length === 2);
  const metrics = await (await fetch(`http://127.0.0.1:${e.running.metricsPort}/metrics`)).text();
  const { revision } = await e.client.getRuleTable({});
  t.is(revision, 3n, "the snapshot's revision 1, and one for each migration");
  t.regex(metrics, /^mip46_dataplane_worker_lag_revisions\{worker="silent"\} 3$/m, "nothing was acknowledged, not even the snapshot");
  t.regex(metrics, /^mip46_dataplane_workers_connected 1$/m);
});

test("a stream is the worker its first hello names: a second hello naming another worker ends it, and no session is left", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const raw = new DataPlaneSyncClient(e.address, credentials.createInsecure());
  t.teardown(() => raw.close());
  const stream = raw.syncRules();
  const ended = new Promise<{ code: number }>((resolve) => stream.on("status", resolve));
  stream.on("data", () => undefined);
  stream.on("error", () => undefined);
  stream.write({ message: { $case: "hello", value: { workerId: "w1", appliedRevision: 0n, appliedEpoch: "" } } });
  stream.write({ message: { $case: "hello", value: { workerId: "w2", appliedRevision: 0n, appliedEpoch: "" } } });
  await ended;
  const metrics = async () => (await fetch(`http://127.0.0.1:${e.running.metricsPort}/metrics`)).text();
  await until(async () => /^mip46_dataplane_workers_connected 0$/m.test(await metrics())).catch(() => undefined);
  t.regex(await metrics(), /^mip46_dataplane_workers_connected 0$/m, "the stream's session is gone");
  t.notRegex(await metrics(), /worker="w2"/, "and w2 was never attached");
});

test("when the engine dies the worker keeps its table, reconnects by itself and gets a full snapshot", async (t) => {
  const dir = tempDir();
  const port = await freePort();
  const first = await spawnEngine(dir, { listen: `127.0.0.1:${port}` });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await first.client.heartbeat(hostOn(6, "h6"));
  await migrate(first.client, "vm-a", "192.0.2.1");
  const m = mirror();
  const states: boolean[] = [];
  const sync = new RuleSyncClient({
    workerId: "w1", engines: [first.address], onSnapshot: m.onSnapshot, onDelta: m.onDelta, onConnection: (c) => states.push(c), maxBackoffMs: 300,
  });
  sync.start();
  t.teardown(() => sync.stop());
  await until(() => sync.connected);
  const before = new Map(m.table);
  await killHard(first);
  await until(() => !sync.connected);
  t.deepEqual(new Map(m.table), before, "the last table is kept while the engine is away");

  const second = await spawnEngine(dir, { listen: `127.0.0.1:${port}` });
  t.teardown(() => killHard(second));
  await until(() => sync.connected, 15_000);
  t.deepEqual(states, [true, false, true]);
  t.is(m.events.filter((x) => x.startsWith("snapshot")).length, 2, "a reconnect brings a full snapshot");
  t.deepEqual(new Map(m.table), before);
  await migrate(second.client, "vm-b", "192.0.2.7");
  const last = await second.client.getRuleTable({});
  await until(() => m.revision === last.revision);
  t.true(m.table.has("vm/vm-b/reencap"));
});

test("a table the worker refuses is not acknowledged; the worker resynchronises with a fresh snapshot", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const m = mirror();
  let refuse = true;
  const sync = new RuleSyncClient({
    workerId: "picky", engines: [e.address], maxBackoffMs: 200,
    onSnapshot: (table) => {
      if (refuse) { refuse = false; throw new Error("cannot apply"); }
      m.onSnapshot(table);
    },
    onDelta: m.onDelta,
  });
  sync.start();
  t.teardown(() => sync.stop());
  await until(() => sync.connected);
  t.deepEqual(m.events, ["snapshot@1"], "the refused snapshot was followed by another, which applied");
  t.is(sync.appliedRevision, 1n);
});

test("the push's copy of the rule table follows the store's change log: after adds, changes and removes it is the store's table, at its revision, without reading it whole again", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.heartbeat(hostOn(4, "h4"));
  const store = e.running.store;
  const cache = new RuleTableCache(store);
  const same = async (label: string) => {
    const [mine, theirs] = await Promise.all([cache.current(), store.ruleTable()]);
    t.is(mine.revision, theirs.revision, label);
    t.deepEqual([...mine.rules].sort((a, b) => a.key.localeCompare(b.key)), [...theirs.rules].sort((a, b) => a.key.localeCompare(b.key)), label);
  };
  await same("first read: the whole table");
  let wholeReads = 0;
  const read = store.ruleTable.bind(store);
  store.ruleTable = () => { wholeReads++; return read(); };
  await migrate(e.client, "vm-a", "192.0.2.1");
  await migrate(e.client, "vm-b", "192.0.2.7");
  await same("two VMs away");
  await e.client.registerMigration({ vmId: "vm-a", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: "", careOfIpv6: "" });
  await e.client.mapCorrespondent({ ipv6Address: "2001:db8:c::10" });
  await same("vm-a home (its rules removed), a mapping added");
  store.ruleTable = read;
  t.is(wholeReads, 2, "only the comparisons above read the table whole");
});
