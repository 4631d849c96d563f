// The change feed behind Watch (services/engine/watch.ts) over a real engine on its embedded
// store: one feed for every watcher of a replica (ChangeHub). The stream as an operator sees it
// is tested through mipctl in test/clients/mipctl-watch.test.ts.
import test from "ava";
import type { ChangeEvent, WatchSource } from "../../../services/engine/watch.js";
import { ChangeHub } from "../../../services/engine/watch.js";
import { hostOn, startTestEngine } from "../../../harness/engine.js";

/** The engine's own reads, counting how often the feed lists the leases (once per look). */
function counted(source: WatchSource): { source: WatchSource; looks: () => number } {
  let n = 0;
  return {
    looks: () => n,
    source: {
      ruleTable: () => source.ruleTable(),
      ruleChangesSince: (r) => source.ruleChangesSince(r),
      onRulesChanged: (l) => source.onRulesChanged(l),
      listBindings: () => source.listBindings(),
      listLeases: () => { n++; return source.listLeases(); },
      listMigrations: (p) => source.listMigrations(p),
    },
  };
}

const text = (e: ChangeEvent) => JSON.stringify(e, (_, v) => (typeof v === "bigint" ? v.toString() : v));

async function until(what: string, cond: () => boolean): Promise<void> {
  for (const end = Date.now() + 15_000; !cond();) {
    if (Date.now() > end) throw new Error(`${what} did not come`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("watchers share one feed: a later watcher is told the state the first was told, both get the same changes, and a look reads the store once however many watch", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.heartbeat(hostOn(4, "h4"));
  const { source, looks } = counted(e.running.engine);
  // No timer: the feed looks only when a rule revision is made, so the looks can be counted.
  const hub = new ChangeHub(source, 1e9);
  const a: ChangeEvent[] = [];
  const stopA = await hub.watch((x) => a.push(x));
  t.is(looks(), 1, "the first watcher: the state read once");
  t.deepEqual(a.map((x) => x.kind), ["revision", "current-end"]);

  // A migration while one watches: a revision (one look), the binding, the leases.
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "sv", homeAddress: "192.0.2.1" });
  await e.client.registerMigration({ vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
  await until("the binding", () => a.some((x) => x.kind === "binding"));

  // The second watcher is told the state from the feed, with the binding and lease in it: no read of its own.
  const b: ChangeEvent[] = [];
  const before = looks();
  const stopB = await hub.watch((x) => b.push(x));
  t.is(looks(), before, "the second watcher reads nothing from the store");
  t.is(hub.size, 2);
  const rev = (await e.client.getRuleTable({})).revision;
  t.deepEqual(b[0], { kind: "revision", revision: rev, updated: [], removed: [] });
  t.deepEqual(b.filter((x) => x.kind === "binding").map((x) => x.kind === "binding" && x.binding.vmId), ["sv"]);
  t.deepEqual(b.filter((x) => x.kind === "lease").map((x) => x.kind === "lease" && x.lease.address), [c.careOfIpv4]);
  t.is(b.at(-1)!.kind, "current-end");

  // A change with two watching: one look, the same events to both.
  const markA = a.length;
  const looksBefore = looks();
  await e.client.releaseCareOf({ address: c.careOfIpv4, vmId: "", force: true });
  await until("the removal at both", () => a.slice(markA).some((x) => x.kind === "binding") && b.some((x) => x.kind === "binding" && x.removed));
  const changesA = a.slice(markA).map(text);
  const changesB = b.slice(b.findIndex((x) => x.kind === "current-end") + 1).map(text);
  t.deepEqual(changesB, changesA, "the same changes, in the same order");
  t.true(changesA.some((x) => x.includes('"removed":true')));
  t.is(looks() - looksBefore, 1, "one look for two watchers");

  // The last watcher gone, the feed stops; the next one starts a feed of its own again.
  stopA();
  stopB();
  t.is(hub.size, 0);
  await e.client.allocateCareOf({ hostId: "h6", vmId: "sv2", homeAddress: "192.0.2.2" });
  await e.client.releaseCareOf({ address: "", vmId: "sv2", force: false });
  const idle = looks();
  const c2: ChangeEvent[] = [];
  const stopC = await hub.watch((x) => c2.push(x), true);
  t.is(looks(), idle + 1, "a new feed reads the state again");
  t.deepEqual(c2, [], "changes only: no current state");
  stopC();
});
