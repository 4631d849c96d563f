// The migration history a page at a time and the advice since a time, against both stores: the
// embedded SqliteStore and the EtcdStore on a real 3-member etcd cluster (issue 14 §1).
import test, { type ExecutionContext } from "ava";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { EtcdStore } from "../../../services/store/etcd.js";
import { SqliteStore } from "../../../services/store/sqlite.js";
import type { AdviceRecord, HostRecord, MigrationRecord, Store } from "../../../services/store/store.js";
import { startEtcdCluster, type EtcdCluster } from "../../../harness/etcd.js";
import { tempDir } from "../../../harness/engine.js";

let cluster: EtcdCluster | undefined;
let prefixes = 0;
test.before(async () => {
  cluster = await startEtcdCluster(3);
});
test.after.always(async () => {
  await cluster?.stop();
});

const kinds: { name: string; open(t: ExecutionContext): Promise<Store> }[] = [
  {
    name: "sqlite",
    async open(t) {
      const dir = tempDir("mip46-history-");
      const store = new SqliteStore(join(dir, "engine.db"));
      t.teardown(async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); });
      return store;
    },
  },
  {
    name: "etcd",
    async open(t) {
      const store = await EtcdStore.open({ endpoints: cluster!.endpoints, prefix: `/mip46-history-test-${process.pid}-${++prefixes}` });
      t.teardown(() => store.close());
      return store;
    },
  },
];

const migration = (id: string, at: number): MigrationRecord => ({
  migrationId: id, vmId: `vm-${id}`, sourceHostId: "h4", destinationHostId: "h6", careOfIPv4: "", careOfIPv6: "", registeredAtMs: at, cause: "hypervisor",
});
const advice = (vm: string, at: number): AdviceRecord => ({ vmId: vm, sourceHostId: "h4", destinationHostId: "h6", crossProtocol: true, reason: "hot", givenAtMs: at });

for (const kind of kinds) {
  const name = (s: string) => `${kind.name}: ${s}`;

  test(name("migrations page newest first by time then id, each page after the cursor, none twice; the cause is kept"), async (t) => {
    const store = await kind.open(t);
    // Two at the same millisecond: the id breaks the tie, so a page boundary between them loses neither.
    const all = [migration("a", 1000), migration("b", 2000), migration("c", 2000), migration("d", 3000)];
    for (const m of all) await store.deleteBinding(m.vmId, m);
    const expected = ["d", "c", "b", "a"];
    t.deepEqual((await store.listMigrations(10)).map((m) => m.migrationId), expected);
    const seen: string[] = [];
    let page = await store.listMigrations(2);
    while (page.length > 0) {
      seen.push(...page.map((m) => m.migrationId));
      const last = page[page.length - 1];
      page = await store.listMigrations(2, { registeredAtMs: last.registeredAtMs, migrationId: last.migrationId });
    }
    t.deepEqual(seen, expected);
    t.deepEqual((await store.listMigrations(1, { registeredAtMs: 2000, migrationId: "c" })).map((m) => m.migrationId), ["b"]);
    t.is((await store.listMigrations(1))[0].cause, "hypervisor");
  });

  test(name("advice since a time, newest first, at most the limit"), async (t) => {
    const store = await kind.open(t);
    await store.recordAdvice([advice("v1", 1000), advice("v2", 2000)]);
    await store.recordAdvice([advice("v3", 3000)]);
    t.deepEqual((await store.listAdvice(10, 0)).map((a) => a.vmId), ["v3", "v2", "v1"]);
    t.deepEqual((await store.listAdvice(10, 2000)).map((a) => a.vmId), ["v3", "v2"], "from sinceMs on, inclusive");
    t.deepEqual((await store.listAdvice(1, 0)).map((a) => a.vmId), ["v3"]);
    t.deepEqual(await store.listAdvice(10, 3001), []);
    t.deepEqual((await store.listAdvice(10, 0))[0], advice("v3", 3000), "the whole record");
  });

  test(name("a cordon (and a drain) is kept with the host: a later beat (putHost) keeps it; an unknown host is not cordoned"), async (t) => {
    const store = await kind.open(t);
    const host: HostRecord = {
      hostId: "h6", state: "up", family: 6, network: "2001:db8:1::/64", addresses: ["2001:db8:1::10/64"],
      resources: { cpuUsedCores: 1, cpuTotalCores: 8, memoryUsedBytes: 1, memoryTotalBytes: 2 }, vms: [], lastSeenMs: 1000,
    };
    await store.putHost(host);
    t.false(await store.setCordon("nobody", true));
    t.deepEqual(await store.listHosts(), [host], "nothing changed");
    t.true(await store.setCordon("h6", true));
    t.deepEqual(await store.getHost("h6"), { ...host, cordoned: true });
    // On SQLite the engine carries the cordon in its beats; on etcd the store keeps it apart from them.
    await store.putHost({ ...host, lastSeenMs: 2000, ...(kind.name === "sqlite" ? { cordoned: true } : {}) });
    t.deepEqual(await store.listHosts(), [{ ...host, lastSeenMs: 2000, cordoned: true }]);
    t.true(await store.setCordon("h6", true, true));
    t.deepEqual(await store.getHost("h6"), { ...host, lastSeenMs: 2000, cordoned: true, draining: true }, "draining");
    t.true(await store.setCordon("h6", false));
    t.deepEqual(await store.getHost("h6"), { ...host, lastSeenMs: 2000 }, "uncordoned: neither field left");
  });
}
