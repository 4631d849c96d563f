// SIGHUP on mip46-engine as its own process (issue 11 §7): the keys each use reads afresh (leases,
// host timing, migration thresholds) are applied at once, and what the calls answer and store
// changes with them; the others are named as waiting for a restart and change nothing. On SQLite
// and on etcd (where hosts.downAfterSeconds waits for a restart: it sets the liveness batches).
import test from "ava";
import { rmSync, writeFileSync } from "node:fs";
import { stringify } from "yaml";
import { hostOn, killHard, labConfig, logLines as lines, spawnEngine, storedState, tempDir, waitForLogLine as waitForLine } from "../../../harness/engine.js";
import { startEtcdCluster, type EtcdCluster } from "../../../harness/etcd.js";

let cluster: EtcdCluster | undefined;
test.before(async () => {
  cluster = await startEtcdCluster(1);
});
test.after.always(async () => {
  await cluster?.stop();
});

for (const kind of ["sqlite", "etcd"] as const) {
  test(`${kind}: SIGHUP applies leases, host timing and migration thresholds at once, and names what needs a restart`, async (t) => {
    const dir = tempDir("m46ig-reload-");
    const store = kind === "sqlite" ? {} : { replica: "r0", store: { kind: "etcd", etcd: { endpoints: cluster!.endpoints, prefix: `/m46ig-reload-${process.pid}` } } };
    const engine = await spawnEngine(dir, store);
    const { child, client, log, configPath: path } = engine;
    t.teardown(async () => {
      await killHard(engine);
      rmSync(dir, { recursive: true, force: true });
    });
    t.is((await client.heartbeat(hostOn(6, "h6"))).heartbeatIntervalSeconds, 1);
    t.is((await client.allocateCareOf({ hostId: "h6", vmId: "a", homeAddress: "192.0.2.1" })).lifetimeSeconds, 600);
    const before = await storedState(client);

    const from = lines(log()).length;
    writeFileSync(path, stringify(labConfig(dir, {
      ...store,
      leases: { lifetimeSeconds: 900, cooldownSeconds: 5 },
      hosts: { heartbeatIntervalSeconds: 2, downAfterSeconds: 4 },
      migration: { highWatermark: 0.9, lowWatermark: 0.7, windowSeconds: 0, vmCooldownSeconds: 30 },
      // Keys that need a restart: the pool and the gRPC limits.
      pool: { name: "engine", prefix: "198.51.100.0/24", exclude: ["198.51.100.1", "198.51.100.2"] },
      grpc: { maxConnections: 10 },
    })));
    child.kill("SIGHUP");
    const applied = await waitForLine(log, from, (l) => l.msg === "configuration reloaded: changed keys applied");
    const restart = await waitForLine(log, from, (l) => l.msg === "configuration reread: changed keys take effect at the next restart");
    const reloadable = ["hosts.heartbeatIntervalSeconds", "leases.cooldownSeconds", "leases.lifetimeSeconds", "migration.highWatermark", "migration.vmCooldownSeconds"];
    const downAfter = ["hosts.downAfterSeconds"];
    t.deepEqual(applied.applied, kind === "sqlite" ? [...reloadable, ...downAfter].sort() : reloadable);
    t.deepEqual(restart.changed, kind === "sqlite" ? ["grpc.maxConnections", "pool.exclude"] : ["grpc.maxConnections", "hosts.downAfterSeconds", "pool.exclude"]);
    t.is(restart.level, "warn");
    t.is(await storedState(client), before, "a reload itself changes nothing stored (the pool keeps its addresses until a restart)");

    // What the calls answer and store follows the applied keys.
    t.is((await client.heartbeat(hostOn(6, "h6"))).heartbeatIntervalSeconds, 2);
    const atMs = Date.now();
    const renewed = await client.allocateCareOf({ hostId: "h6", vmId: "a", homeAddress: "192.0.2.1" });
    t.is(renewed.lifetimeSeconds, 900);
    const lease = (await client.listLeases({ holder: "a" })).leases[0];
    t.true(Number(lease.expiresAtMs) >= atMs + 900_000 && Number(lease.expiresAtMs) <= Date.now() + 900_000, "the renewed lease lasts the new lifetime");
    const released = await client.releaseCareOf({ address: renewed.careOfIpv4, vmId: "" });
    t.true(Number(released.cooldownUntilMs) <= Date.now() + 5000 && Number(released.cooldownUntilMs) >= atMs + 5000, "and cools down for the new cool-down");
    const pools = (await client.listPools({})).pools.find((p) => p.name === "engine")!;
    t.is(pools.size, 253, "the pool's exclude waits for a restart");
    t.is(child.exitCode, null);

    // A second SIGHUP of the same file: only the restart keys still differ.
    const again = lines(log()).length;
    child.kill("SIGHUP");
    const second = await waitForLine(log, again, (l) => l.msg.startsWith("configuration re"));
    t.is(second.msg, "configuration reread: changed keys take effect at the next restart");
    t.deepEqual(second.changed, restart.changed);
  });
}
