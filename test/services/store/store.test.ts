// One store suite, run against both implementations: the embedded SqliteStore and the EtcdStore
// on a real 3-member etcd cluster. The etcd runs use a fresh key prefix per test, and some open a
// second store on the same prefix to stand for another engine replica.
import test, { type ExecutionContext } from "ava";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseIPv4 } from "../../../lib/net/address.js";
import type { Rule } from "../../../lib/rules/rules.js";
import { FailedPreconditionError, ResourceExhaustedError } from "../../../services/errors.js";
import { EtcdStore, LeadershipLostError } from "../../../services/store/etcd.js";
import { SqliteStore } from "../../../services/store/sqlite.js";
import type { BindingRecord, HostRecord, MigrationRecord, PoolAddressSet, Store } from "../../../services/store/store.js";
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

interface Kind {
  name: string;
  /** A fresh store, and a factory for a second one on the same state (another replica), if the kind has one. */
  open(t: ExecutionContext): Promise<{ store: Store; another?: () => Promise<Store> }>;
}

const kinds: Kind[] = [
  {
    name: "sqlite",
    async open(t) {
      const dir = tempDir("mip46-store-");
      const store = new SqliteStore(join(dir, "engine.db"));
      t.teardown(async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); });
      return { store };
    },
  },
  {
    name: "etcd",
    async open(t) {
      const prefix = `/mip46-store-test-${process.pid}-${++prefixes}`;
      const opened: Store[] = [];
      const openOne = async () => {
        const s = await EtcdStore.open({ endpoints: cluster!.endpoints, prefix });
        opened.push(s);
        return s;
      };
      t.teardown(async () => { for (const s of opened) await s.close(); });
      return { store: await openOne(), another: openOne };
    },
  },
];

const v = (a: string) => parseIPv4(a, "address").value;
const POOL: PoolAddressSet = { pool: "engine", kind: "engine", addresses: ["198.51.100.10", "198.51.100.11", "198.51.100.12"].map(v) };
const SEGMENT: PoolAddressSet = { pool: "ipv4-lab", kind: "segment", addresses: ["192.0.2.100", "192.0.2.101"].map(v) };
const base = { pool: "engine", purpose: "care-of" as const, hostId: "h6", nowMs: 1000, expiresAtMs: 61_000, cooldownMs: 10_000 };

function rule(vm: string, n: number): Rule {
  return { key: `vm/${vm}/peer-${n}`, kind: "tunnel-peer", tunnel: "4in6", peer: `2001:db8:1::${n}`, vmId: vm };
}

function binding(vm: string, migrationId: string): { b: BindingRecord; m: MigrationRecord } {
  return {
    b: {
      vmId: vm, homeAddress: "192.0.2.1", homeAgent: "192.0.2.254", hostId: "h6", careOfIPv4: "198.51.100.10", careOfIPv6: "2001:db8:1::c000:201",
      translatedIPv4: "", translatedIPv6: "2001:db8:64::c000:201", migrationId, updatedAtMs: 5000,
    },
    m: { migrationId, vmId: vm, sourceHostId: "h4", destinationHostId: "h6", careOfIPv4: "198.51.100.10", careOfIPv6: "2001:db8:1::c000:201", registeredAtMs: 5000 },
  };
}

for (const kind of kinds) {
  const name = (s: string) => `${kind.name}: ${s}`;

  test(name("allocate, renew the same address, list, usage"), async (t) => {
    const { store } = await kind.open(t);
    await store.syncPools([POOL, SEGMENT]);
    const a = await store.acquireLease({ ...base, holder: "vm-a" });
    t.true(POOL.addresses.includes(v(a.address)));
    t.like(a, { pool: "engine", holder: "vm-a", purpose: "care-of", hostId: "h6", expiresAtMs: 61_000 });
    const again = await store.acquireLease({ ...base, holder: "vm-a", hostId: "h6b", nowMs: 2000, expiresAtMs: 62_000 });
    t.is(again.address, a.address, "asking again renews the same lease");
    t.like(await store.getLease("vm-a", "care-of"), { address: a.address, hostId: "h6b", expiresAtMs: 62_000 });
    t.is(await store.getLease("vm-a", "translation"), undefined);
    const b = await store.acquireLease({ ...base, holder: "vm-b" });
    t.not(b.address, a.address);
    t.deepEqual((await store.listLeases()).map((l) => l.holder).sort(), ["vm-a", "vm-b"]);
    const usage = await store.poolUsage(2000);
    t.deepEqual(usage.map((u) => [u.pool, u.kind, u.first, u.last, u.size, u.leased, u.cooling, u.free]), [
      ["engine", "engine", "198.51.100.10", "198.51.100.12", 3, 2, 0, 1],
      ["ipv4-lab", "segment", "192.0.2.100", "192.0.2.101", 2, 0, 0, 2],
    ]);
  });

  test(name("a holder that moves to another pool leaves its old address cooling"), async (t) => {
    const { store } = await kind.open(t);
    await store.syncPools([POOL, SEGMENT]);
    const a = await store.acquireLease({ ...base, holder: "vm-a" });
    const s = await store.acquireLease({ ...base, pool: "ipv4-lab", holder: "vm-a", nowMs: 2000 });
    t.true(SEGMENT.addresses.includes(v(s.address)));
    t.is((await store.getLease("vm-a", "care-of"))?.address, s.address);
    const usage = await store.poolUsage(2000);
    t.like(usage.find((u) => u.pool === "engine"), { leased: 0, cooling: 1 });
    t.false((await store.listLeases()).some((l) => l.address === a.address));
  });

  test(name("release: the address cools down, its holder may have it back, others only after the cooldown"), async (t) => {
    const { store } = await kind.open(t);
    await store.syncPools([POOL]);
    const leases = await Promise.all(["vm-a", "vm-b", "vm-c"].map((holder) => store.acquireLease({ ...base, holder })));
    t.is(new Set(leases.map((l) => l.address)).size, 3);
    const released = await store.releaseLease({ holder: "vm-a", purpose: "care-of" }, 2000, 10_000);
    t.like(released, { address: leases[0].address, holder: "vm-a", cooldownUntilMs: 12_000 });
    t.is(await store.releaseLease({ holder: "vm-a", purpose: "care-of" }, 2000, 10_000), undefined, "nothing left to release");
    t.is(await store.getLease("vm-a", "care-of"), undefined);
    const early = await t.throwsAsync(store.acquireLease({ ...base, holder: "vm-d", nowMs: 5000 }));
    t.true(early instanceof ResourceExhaustedError, `${early?.name}: ${early?.message}`);
    t.regex(early!.message, /no free address \(2 leased, 1 cooling down, of 3\)/);
    const back = await store.acquireLease({ ...base, holder: "vm-a", nowMs: 5000 });
    t.is(back.address, leases[0].address, "the holder gets its own cooling address back");
    await store.releaseLease({ address: back.address }, 6000, 10_000);
    const later = await store.acquireLease({ ...base, holder: "vm-d", nowMs: 16_000 });
    t.is(later.address, leases[0].address, "after the cooldown another VM may have it");
  });

  test(name("the lease on an address: found, not found, gone after release and after expiry; bad text refused"), async (t) => {
    const { store } = await kind.open(t);
    await store.syncPools([POOL, SEGMENT]);
    const a = await store.acquireLease({ ...base, holder: "vm-a", expiresAtMs: 3000 });
    const b = await store.acquireLease({ ...base, holder: "vm-b" });
    const s = await store.acquireLease({ ...base, pool: "ipv4-lab", holder: "vm-s" });
    t.deepEqual(await store.leaseByAddress(a.address), a, "found: the lease as acquireLease returned it");
    t.deepEqual(await store.leaseByAddress(s.address), s, "found in another pool");
    const free = POOL.addresses.map((x) => `198.51.100.${x & 0xff}`).find((x) => x !== a.address && x !== b.address)!;
    t.is(await store.leaseByAddress(free), undefined, "a free pool address has no lease");
    t.is(await store.leaseByAddress("203.0.113.9"), undefined, "an address of no pool has no lease");
    await store.releaseLease({ address: b.address }, 2000, 10_000);
    t.is(await store.leaseByAddress(b.address), undefined, "after release the address cools: no lease");
    t.deepEqual(await store.expireLeases(5000, 10_000), [{ address: a.address, pool: "engine", holder: "vm-a", purpose: "care-of", cooldownUntilMs: 13_000 }]);
    t.is(await store.leaseByAddress(a.address), undefined, "after expiry: no lease");
    t.deepEqual(await store.leaseByAddress(s.address), s, "the others are untouched");
    await t.throwsAsync(store.leaseByAddress("198.51.100"), { message: /^address: /, name: "AddressError" });
  });

  test(name("expiry moves only ended leases to cooling"), async (t) => {
    const { store } = await kind.open(t);
    await store.syncPools([POOL]);
    const a = await store.acquireLease({ ...base, holder: "vm-a", expiresAtMs: 3000 });
    await store.acquireLease({ ...base, holder: "vm-b", expiresAtMs: 9000 });
    await store.acquireLease({ ...base, holder: "vm-t", purpose: "translation", expiresAtMs: null });
    t.deepEqual(await store.expireLeases(2999, 10_000), []);
    const expired = await store.expireLeases(5000, 10_000);
    t.deepEqual(expired, [{ address: a.address, pool: "engine", holder: "vm-a", purpose: "care-of", cooldownUntilMs: 13_000 }]);
    t.deepEqual((await store.listLeases()).map((l) => l.holder).sort(), ["vm-b", "vm-t"]);
    t.deepEqual(await store.expireLeases(5000, 10_000), [], "an expired lease is expired once");
  });

  test(name("concurrent allocations never share an address; the rest are ResourceExhausted"), async (t) => {
    const { store, another } = await kind.open(t);
    const big: PoolAddressSet = { pool: "engine", kind: "engine", addresses: Array.from({ length: 40 }, (_, i) => v(`198.51.100.${i + 10}`)) };
    await store.syncPools([big]);
    // For etcd, a second store on the same prefix stands for another replica racing this one.
    const other = another ? await another() : store;
    const results = await Promise.allSettled(Array.from({ length: 60 }, (_, i) =>
      (i % 2 ? other : store).acquireLease({ ...base, holder: `vm-${i}` })));
    const ok = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.address] : []));
    const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
    t.is(ok.length, 40);
    t.is(new Set(ok).size, 40);
    t.is(failed.length, 20);
    t.true(failed.every((e) => e instanceof ResourceExhaustedError), failed.map((e) => e.message).join("; "));
    t.deepEqual((await store.listLeases()).map((l) => l.address).sort(), [...ok].sort());
    const holder = (await store.listLeases())[0];
    t.is((await other.acquireLease({ ...base, holder: holder.holder, nowMs: 2000 })).address, holder.address, "a full pool still renews a holder's lease");
  });

  test(name("syncPools keeps leased addresses that left the configuration, drops the rest"), async (t) => {
    const { store } = await kind.open(t);
    await store.syncPools([POOL]);
    const a = await store.acquireLease({ ...base, holder: "vm-a" });
    await store.syncPools([{ ...POOL, addresses: [] }]);
    t.deepEqual((await store.listLeases()).map((l) => l.address), [a.address]);
    t.like((await store.poolUsage(1000))[0], { size: 1, leased: 1 });
    await store.syncPools([POOL]);
    t.like((await store.poolUsage(1000))[0], { size: 3, leased: 1 });
  });

  test(name("one binding per home address: another VM's is refused (on etcd, from another replica too) and changes nothing; once the first goes, the home is free"), async (t) => {
    const { store, another } = await kind.open(t);
    const other = another ? await another() : store;
    const a = binding("vm-a", "m1");
    await store.putBinding(a.b, a.m, [rule("vm-a", 1)]);
    const before = { table: await store.ruleTable(), bindings: await store.listBindings(), migrations: await store.listMigrations(10) };
    const b = binding("vm-b", "m2");
    await t.throwsAsync(other.putBinding(b.b, b.m, [rule("vm-b", 1)]), {
      instanceOf: FailedPreconditionError, message: "home_address: 192.0.2.1 is the home address of vm vm-a's binding; two VMs cannot hold one home address",
    });
    t.deepEqual({ table: await store.ruleTable(), bindings: await store.listBindings(), migrations: await store.listMigrations(10) }, before, "nothing was written");
    t.deepEqual((await store.bindingsWithHome("192.0.2.1")).map((x) => x.vmId), ["vm-a"]);
    t.deepEqual(await store.bindingsWithHome("192.0.2.9"), []);
    // The same VM re-registers with its home; then it goes, by a forced release, and vm-b may bind.
    await other.putBinding({ ...a.b, hostId: "h4" }, { ...a.m, migrationId: "m3" }, [rule("vm-a", 1)]);
    const { released } = await store.forceRelease("vm-a", ["vm:vm-a"], [], 6000, 1000);
    t.deepEqual(released, []);
    t.deepEqual(await store.listBindings(), []);
    await other.putBinding(b.b, b.m, [rule("vm-b", 1)]);
    t.deepEqual((await store.bindingsWithHome("192.0.2.1")).map((x) => x.vmId), ["vm-b"]);
    await store.deleteBinding("vm-b");
    await store.putBinding(a.b, a.m, [rule("vm-a", 1)]);
    t.deepEqual((await other.listBindings()).map((x) => x.vmId), ["vm-a"], "deleteBinding frees the home too");
  });

  test(name("bindings and rules change together, with one revision per change, and a log"), async (t) => {
    const { store } = await kind.open(t);
    const changed: bigint[] = [];
    store.onRulesChanged((r) => changed.push(r));
    t.deepEqual(await store.ruleTable(), { revision: 0n, rules: [] });
    t.is(await store.replaceRules("config", [{ key: "config/xlat", kind: "translation-prefix", prefix: "2001:db8:64::/96" }]), 1n);
    t.is(await store.replaceRules("config", [{ key: "config/xlat", kind: "translation-prefix", prefix: "2001:db8:64::/96" }]), 1n, "no change, no new revision");
    const { b, m } = binding("vm-a", "m1");
    t.is(await store.putBinding(b, m, [rule("vm-a", 1), rule("vm-a", 2)]), 2n);
    t.deepEqual(await store.getBinding("vm-a"), b);
    t.deepEqual(await store.listBindings(), [b]);
    const table = await store.ruleTable();
    t.is(table.revision, 2n);
    t.deepEqual(table.rules.map((r) => r.key).sort(), ["config/xlat", "vm/vm-a/peer-1", "vm/vm-a/peer-2"]);
    const second = binding("vm-a", "m2");
    t.is(await store.putBinding({ ...second.b, careOfIPv6: "2001:db8:1::1:c000:201" }, { ...second.m, registeredAtMs: 6000 }, [rule("vm-a", 1), rule("vm-a", 3)]), 3n);
    t.deepEqual((await store.listMigrations(10)).map((x) => x.migrationId), ["m2", "m1"], "newest first");
    t.deepEqual((await store.listMigrations(1)).map((x) => x.migrationId), ["m2"]);
    const gone = await store.deleteBinding("vm-a", { ...second.m, migrationId: "m3", registeredAtMs: 7000 });
    t.is(gone.revision, 4n);
    t.is(gone.binding?.migrationId, "m2");
    t.is(await store.getBinding("vm-a"), undefined);
    t.deepEqual((await store.ruleTable()).rules.map((r) => r.key), ["config/xlat"]);
    t.deepEqual((await store.deleteBinding("vm-a")).binding, undefined);
    const since = await store.ruleChangesSince(2n);
    // Within one revision the order of changes is not part of the contract.
    t.deepEqual(since?.map((c) => `${c.revision} ${c.key} ${c.rule === null ? "removed" : "put"}`).sort(), [
      "3 vm/vm-a/peer-2 removed", "3 vm/vm-a/peer-3 put", "4 vm/vm-a/peer-1 removed", "4 vm/vm-a/peer-3 removed",
    ]);
    t.deepEqual(since?.map((c) => c.revision), [3n, 3n, 4n, 4n], "oldest first");
    t.deepEqual(await store.ruleChangesSince(4n), []);
    await new Promise((r) => setTimeout(r, 100));
    t.deepEqual(changed, [1n, 2n, 3n, 4n]);
  });

  test(name("hosts and advice"), async (t) => {
    const { store } = await kind.open(t);
    const host: HostRecord = {
      hostId: "h6", state: "up", family: 6, network: "2001:db8:1::/64", addresses: ["2001:db8:1::10/64"],
      resources: { cpuUsedCores: 1, cpuTotalCores: 8, memoryUsedBytes: 1, memoryTotalBytes: 16 }, vms: [], lastSeenMs: 1000,
    };
    await store.putHost(host);
    await store.putHost({ ...host, hostId: "h4", family: 4, network: "192.0.2.0/24" });
    t.deepEqual(await store.getHost("h6"), host);
    t.is(await store.getHost("nope"), undefined);
    await store.putHost({ ...host, state: "down" });
    t.deepEqual((await store.listHosts()).map((h) => [h.hostId, h.state]), [["h4", "up"], ["h6", "down"]]);
    await t.notThrowsAsync(store.recordAdvice([{ vmId: "vm-a", sourceHostId: "h6", destinationHostId: "h4", crossProtocol: true, reason: "hot", givenAtMs: 1000 }]));
  });
}

test("etcd: a rule change made by another replica reaches this replica's listeners (watch)", async (t) => {
  const { store, another } = await kinds[1].open(t);
  const other = await another!();
  const seen: bigint[] = [];
  store.onRulesChanged((r) => seen.push(r));
  await other.replaceRules("config", [{ key: "config/xlat", kind: "translation-prefix", prefix: "2001:db8:64::/96" }]);
  const { b, m } = binding("vm-a", "m1");
  await other.putBinding(b, m, [rule("vm-a", 1)]);
  for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(seen, [1n, 2n]);
  t.deepEqual((await store.ruleChangesSince(1n))?.map((c) => c.key), ["vm/vm-a/peer-1"]);
  t.deepEqual(await store.getBinding("vm-a"), b);
});

test("etcd: a view guarded by a leader key cannot write once the key is gone", async (t) => {
  const { store } = await kinds[1].open(t);
  const etcd = store as EtcdStore;
  const leaderKey = etcd.k("leader");
  const put = await etcd.client.put(leaderKey).value("replica-1").exec();
  const guarded = etcd.guarded({ key: leaderKey, createRevision: put.header.revision });
  await guarded.syncPools([POOL]);
  await guarded.putHost({ hostId: "h6", state: "up", family: 6, network: "", addresses: [], resources: { cpuUsedCores: 0, cpuTotalCores: 0, memoryUsedBytes: 0, memoryTotalBytes: 0 }, vms: [], lastSeenMs: 1 });
  await etcd.client.delete().key(leaderKey).exec();
  await etcd.client.put(leaderKey).value("replica-2").exec(); // a new leader: a new create revision
  await t.throwsAsync(guarded.putHost({ hostId: "h6", state: "down", family: 6, network: "", addresses: [], resources: { cpuUsedCores: 0, cpuTotalCores: 0, memoryUsedBytes: 0, memoryTotalBytes: 0 }, vms: [], lastSeenMs: 1 }), { instanceOf: LeadershipLostError });
  await t.throwsAsync(guarded.replaceRules("vm:x", [rule("x", 1)]), { instanceOf: LeadershipLostError });
  t.is((await store.getHost("h6"))?.state, "up", "the deposed leader's write did not land");
  t.is((await store.ruleTable()).revision, 0n);
});

test("config: store.kind etcd needs endpoints; the prefix is absolute; other kinds are refused", async (t) => {
  const { parseConfig } = await import("../../../services/config/config.js");
  const { labConfig } = await import("../../../harness/engine.js");
  const { ConfigError } = await import("../../../services/errors.js");
  const c = parseConfig(labConfig("/tmp", { replica: "r1", store: { kind: "etcd", etcd: { endpoints: ["127.0.0.1:2379"] } } }));
  t.deepEqual(c.store.etcd, { endpoints: ["127.0.0.1:2379"], prefix: "/mip46", dialTimeoutMs: 5000, leaderTtlSeconds: 2 });
  t.is(c.replica, "r1");
  t.throws(() => parseConfig(labConfig("/tmp", { store: { kind: "etcd", etcd: {} } })), { instanceOf: ConfigError, message: /^store\.etcd\.endpoints:/ });
  t.throws(() => parseConfig(labConfig("/tmp", { store: { kind: "etcd", etcd: { endpoints: ["a:1"], prefix: "mip46" } } })), { message: /^store\.etcd\.prefix:/ });
  t.throws(() => parseConfig(labConfig("/tmp", { store: { kind: "redis" } })), { message: /^store\.kind: 'redis'/ });
});

// The etcd reads of whole prefixes (the address table, the rule table, the rule log) are paged:
// one gRPC message holds at most 4 MiB, which a /16 pool or a 20,000-binding rule table exceeds.
// Here the client accepts 64 KiB a message, so state of a few hundred KiB shows it at small scale.
test("etcd: the address table, the rule table and the rule log are read a page at a time (a 64 KiB message limit, 1,024 addresses, 400 rules in 400 revisions)", async (t) => {
  const prefix = `/mip46-store-test-${process.pid}-${++prefixes}`;
  const small = { grpcOptions: { "grpc.max_receive_message_length": 64 * 1024 } };
  const opened: EtcdStore[] = [];
  t.teardown(async () => { for (const s of opened) await s.close(); });
  const open = async () => { const s = await EtcdStore.open({ endpoints: cluster!.endpoints, prefix, etcdOptions: small }); opened.push(s); return s; };
  const store = await open();
  // 198.18.0.0/22 (RFC 2544's benchmarking range): data in the store only, never on a wire.
  const big: PoolAddressSet = { pool: "engine", kind: "engine", addresses: Array.from({ length: 1024 }, (_, i) => v("198.18.0.0") + i) };
  await store.syncPools([big]);
  await store.syncPools([big]); // the second sync reads the whole table back and writes nothing
  const lease = await store.acquireLease({ ...base, holder: "vm-a" });
  for (let i = 0; i < 400; i++) await store.replaceRules(`vm:r${i}`, [rule(`r${i}`, i)]);

  // A second store (another replica) loads the whole address table when it opens.
  const other = await open();
  const usage = (await other.poolUsage(base.nowMs)).find((p) => p.pool === "engine");
  t.like(usage, { size: 1024, leased: 1, free: 1023 });
  t.deepEqual(await other.listLeases(), [lease]);
  const table = await other.ruleTable();
  t.is(table.revision, 400n);
  t.deepEqual(table.rules.map((r) => r.key).sort(), Array.from({ length: 400 }, (_, i) => rule(`r${i}`, i).key).sort());
  const changes = await other.ruleChangesSince(0n);
  t.is(changes?.length, 400);
  t.deepEqual(changes?.map((c) => c.revision), Array.from({ length: 400 }, (_, i) => BigInt(i + 1)));
});
