// ReleaseCareOf by address, and its authorisation, look up the one lease the call names: neither
// lists every lease (which grew with the pool). A real engine on SQLite, its store wrapped to count
// the calls that reach it.
import test from "ava";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseAddress, parseIPv4 } from "../../../lib/net/address.js";
import { silentLogger } from "../../../lib/log.js";
import { leaseOwners } from "../../../services/api/server.js";
import { parseConfig } from "../../../services/config/config.js";
import { Engine } from "../../../services/engine/engine.js";
import { NotFoundError } from "../../../services/errors.js";
import { SqliteStore } from "../../../services/store/sqlite.js";
import type { Store } from "../../../services/store/store.js";
import { labConfig, tempDir } from "../../../harness/engine.js";

test("release by address and its authorisation look the lease up by address, never listing every lease", async (t) => {
  const dir = tempDir("mip46-release-");
  const sqlite = new SqliteStore(join(dir, "engine.db"));
  t.teardown(async () => { await sqlite.close(); rmSync(dir, { recursive: true, force: true }); });
  const calls = new Map<string, number>();
  const store = new Proxy(sqlite, {
    get(target, name, receiver) {
      const v = Reflect.get(target, name, receiver);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        calls.set(String(name), (calls.get(String(name)) ?? 0) + 1);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as Store;
  const engine = new Engine(parseConfig(labConfig(dir)), store, silentLogger, undefined, () => 1_000_000);
  await engine.start();
  engine.stop();
  await engine.heartbeat({
    hostId: "h6", addresses: ["2001:db8:1::10/64"], vms: [],
    resources: { cpuUsedCores: 1, cpuTotalCores: 8, memoryUsedBytes: 1 << 30, memoryTotalBytes: 16 * (1 << 30) },
  });
  const a = await engine.allocateCareOf("h6", "vm-a", parseAddress("192.0.2.1", "home"));
  await engine.allocateCareOf("h6", "vm-b", parseAddress("192.0.2.2", "home"));
  calls.clear();

  const owners = leaseOwners(engine);
  t.is(await owners.hostOfLease({ address: a.careOfIPv4 }), "h6", "the auth finds the host the lease is held for");
  t.is(await owners.hostOfLease({ address: "198.51.100.250" }), undefined, "a free address: no holder");
  t.is(await owners.hostOfLease({ address: "198.51.100" }), undefined, "no address: no holder (the call answers INVALID_ARGUMENT)");
  t.is(await owners.hostOfLease({ vmId: "vm-a" }), "h6");
  const released = await engine.releaseCareOf({ address: parseIPv4(a.careOfIPv4, "address") });
  t.like(released, { address: a.careOfIPv4, holder: "vm-a" });
  await t.throwsAsync(engine.releaseCareOf({ address: parseIPv4(a.careOfIPv4, "address") }), { instanceOf: NotFoundError });

  t.is(calls.get("listLeases") ?? 0, 0, "no call listed every lease");
  t.is(calls.get("leaseByAddress"), 4, "each by-address question with an address was one lookup by it (2 from the auth, 2 from release)");
  t.is((await engine.listLeases()).length, 1, "vm-b keeps its lease");
});
