// The engine with thousands of hosts, on its real SQLite store, with an injected clock (the
// engine's `now`; its sweep timer is stopped and the sweep called by hand): advice decides as a
// scan of every host would, a restart gives every known host its whole downAfterSeconds, silent
// hosts are marked down, and a heartbeat that changes nothing durable writes nothing.
import test, { type ExecutionContext } from "ava";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseAddress, parseIPv4, parseIPv6 } from "../../../lib/net/address.js";
import { silentLogger } from "../../../lib/log.js";
import { parseConfig } from "../../../services/config/config.js";
import { Engine, type HeartbeatInput } from "../../../services/engine/engine.js";
import { MigrationAdvisor, utilisation } from "../../../services/migration/advisor.js";
import { everyHost } from "../../../services/migration/headroom.js";
import { SqliteStore } from "../../../services/store/sqlite.js";
import type { HostRecord, Store } from "../../../services/store/store.js";
import { labConfig, tempDir } from "../../../harness/engine.js";
import { GIB, report, vms } from "../../../harness/reports.js";
import { seededRandom } from "../../../lib/random.js";




interface Fixture { engine: Engine; store: SqliteStore; clock: { ms: number }; dir: string }

async function open(t: ExecutionContext, dir: string, startMs: number, overrides: Record<string, unknown> = {}): Promise<Fixture> {
  const config = parseConfig(labConfig(dir, { hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 15 }, ...overrides }));
  const store = new SqliteStore(join(dir, "engine.db"));
  const clock = { ms: startMs };
  const engine = new Engine(config, store, silentLogger, undefined, () => clock.ms);
  await engine.start();
  engine.stop(); // no sweep timer: the test sweeps at the times it chooses
  t.teardown(() => store.close());
  return { engine, store, clock, dir };
}

function fresh(t: ExecutionContext): string {
  const dir = tempDir("mip46-scale-");
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("with 2,000 hosts the headroom index gives the same advice as a scan of every host, and never a destination the move would push to the low watermark", (t) => {
  const settings = { highWatermark: 0.8, lowWatermark: 0.6, windowMs: 30_000, vmCooldownMs: 300_000 };
  const byIndex = new MigrationAdvisor(settings);
  const byScan = new MigrationAdvisor(settings);
  const rnd = seededRandom(46);
  const hosts = new Map<string, HostRecord>();
  const draw = (i: number): HostRecord => {
    const cpuTotalCores = [16, 32, 64][i % 3];
    // A few hosts run hot, many are in between, some have room; load is quantised, so ties occur.
    const share = i % 50 === 0 ? 0.85 + rnd() * 0.1 : Math.round(rnd() * 40) / 50;
    const hostVms = Array.from({ length: 20 + (i % 31) }, (_, k) => ({
      vmId: `h${i}-vm${k}`, homeAddress: "", cpuUsedCores: Math.round(rnd() * 8) / 4, memoryUsedBytes: Math.round(rnd() * 4) * GIB,
    }));
    return {
      hostId: `h${String(i).padStart(4, "0")}`, state: "up", family: i % 2 === 0 ? 6 : 4, network: "", addresses: [], lastSeenMs: 0, vms: hostVms,
      resources: { cpuUsedCores: share * cpuTotalCores, cpuTotalCores, memoryUsedBytes: Math.round(rnd() * 100) * GIB, memoryTotalBytes: 256 * GIB },
    };
  };
  let advised = 0;
  let refused = 0;
  for (let round = 0; round < 12; round++) {
    const nowMs = round * 10_000;
    for (let i = 0; i < 2000; i++) {
      // Each round a quarter of the hosts report a new load; the others keep theirs.
      if (round > 0 && rnd() >= 0.25 && i % 50 !== 0) continue;
      const h = draw(i);
      h.state = byIndex.observe(h, nowMs) ? "hot" : "up";
      t.is(byScan.observe(h, nowMs), h.state === "hot");
      hosts.set(h.hostId, h);
    }
    const all = [...hosts.values()].sort((a, b) => (a.hostId < b.hostId ? -1 : 1));
    for (const source of all) {
      if (source.state !== "hot") continue;
      const a = byIndex.advise(source, byIndex.headroom, nowMs);
      const b = byScan.advise(source, everyHost(all), nowMs);
      t.deepEqual(a, b, `advice for ${source.hostId} at ${nowMs} ms`);
      if (a.length === 0) {
        refused++;
        continue;
      }
      advised++;
      const vm = source.vms.find((v) => v.vmId === a[0].vmId)!;
      const dest = hosts.get(a[0].destinationHostId)!;
      const after = utilisation(dest.resources, vm.cpuUsedCores, vm.memoryUsedBytes);
      t.true(after < settings.lowWatermark, `${dest.hostId} stays below the low watermark with ${vm.vmId}`);
      // Most headroom: no up, not hot host would be emptier with the VM.
      const emptiest = Math.min(...all.filter((h) => h.state === "up" && h.hostId !== source.hostId)
        .map((h) => utilisation(h.resources, vm.cpuUsedCores, vm.memoryUsedBytes)));
      t.true(after <= emptiest + 1e-9, `${dest.hostId} at ${after} is the emptiest (${emptiest})`);
    }
  }
  t.true(advised >= 20, `advice was given (${advised} times)`);
  t.true(refused > 0, "and refused within a window or while VMs rest");
});

test("engine with 1,000 hosts: a host turns hot after a window, gets one advice per window to the emptiest host, and its moved VM rests", async (t) => {
  const { engine, clock } = await open(t, fresh(t), 1_000_000, { migration: { highWatermark: 0.85, lowWatermark: 0.7, windowSeconds: 30, vmCooldownSeconds: 300 } });
  for (let n = 0; n < 1000; n++) await engine.heartbeat(report(n, 8 + (n % 10))); // 25%..53% CPU
  await engine.heartbeat(report(1000, 4)); // 12.5%: the emptiest
  const hot = (cpu: number, vmList = [{ vmId: "big", homeAddress: "192.0.2.9", cpuUsedCores: 6, memoryUsedBytes: GIB }, ...vms("hot", 5, 0.2)]) =>
    engine.heartbeat({ ...report(2000, cpu), hostId: "hot", vms: vmList });
  let r = await hot(30);
  t.is(r.host.state, "up", "above the high watermark, but not for a window yet");
  clock.ms += 29_000;
  t.is((await hot(30)).host.state, "up");
  clock.ms += 1_000;
  r = await hot(30);
  t.is(r.host.state, "hot");
  t.like(r.advice[0], { vmId: "big", sourceHostId: "hot", destinationHostId: "h1000" },
    "the smallest VM whose departure cools the host (30 - 6 = 24 of 32 cores) to the emptiest host");
  clock.ms += 1_000;
  r = await hot(26);
  t.is(r.host.state, "hot", "26/32 = 0.81 is between the watermarks: still hot (hysteresis)");
  t.deepEqual(r.advice, [], "no second advice within the window");
  clock.ms += 30_000;
  r = await hot(30, [{ vmId: "big", homeAddress: "192.0.2.9", cpuUsedCores: 6, memoryUsedBytes: GIB }]);
  t.deepEqual(r.advice, [], "the advised VM rests for its cool-down");
  clock.ms += 300_000;
  await engine.heartbeat(report(1000, 4));
  r = await hot(30, [{ vmId: "big", homeAddress: "192.0.2.9", cpuUsedCores: 6, memoryUsedBytes: GIB }]);
  t.is(r.advice[0]?.vmId, "big", "and may be advised again after it");
  clock.ms += 1_000;
  t.is((await hot(20)).host.state, "up", "20/32 = 0.63 is below the low watermark: cool again");
  // A destination that the move would take to the low watermark is refused: the emptiest is now too full.
  clock.ms += 300_000;
  for (let n = 0; n <= 1000; n++) await engine.heartbeat(report(n, 20)); // 62.5% everywhere: 20 + 6 = 81%
  await hot(30);
  clock.ms += 30_000;
  r = await hot(30);
  t.is(r.host.state, "hot");
  t.deepEqual(r.advice, [], "no host would stay below the low watermark with the VM");
});

test("a restart with 5,000 hosts known: none is lost, none is marked down before downAfterSeconds, the silent ones are after it", async (t) => {
  const dir = fresh(t);
  const first = await open(t, dir, 1_000_000);
  await Promise.all(Array.from({ length: 5000 }, (_, n) => first.engine.heartbeat(report(n, 8))));
  t.is((await first.engine.listHosts()).length, 5000);
  await first.store.close();

  // The engine comes back an hour later: every host's last beat is far past the deadline.
  const restartMs = 1_000_000 + 3_600_000;
  const second = await open(t, dir, restartMs);
  const hosts = await second.engine.listHosts();
  t.is(hosts.length, 5000, "every host is known again");
  t.true(hosts.every((h) => h.state === "up"));
  second.clock.ms = restartMs + 15_000 - 1;
  await second.engine.sweep();
  t.is((await second.engine.listHosts()).filter((h) => h.state === "down").length, 0, "none is down before 15 s after the restart");
  t.is((await second.store.listHosts()).filter((h) => h.state === "down").length, 0, "nor in the store");
  // Half report again within their grace; the others stay silent.
  await Promise.all(Array.from({ length: 2500 }, (_, n) => second.engine.heartbeat(report(n * 2, 8))));
  second.clock.ms = restartMs + 15_000 + 1;
  await second.engine.sweep();
  const after = await second.engine.listHosts();
  t.is(after.length, 5000);
  const down = after.filter((h) => h.state === "down").map((h) => Number(h.hostId.slice(1)));
  t.is(down.length, 2500);
  t.true(down.every((n) => n % 2 === 1), "exactly the silent ones are down");
  const stored = await second.store.listHosts();
  t.is(stored.filter((h) => h.state === "down").length, 2500, "and their state is stored");
});

test("down-marking in memory: a host is down once it has been silent for downAfterSeconds, once, and up again when it beats", async (t) => {
  const { engine, store, clock } = await open(t, fresh(t), 1_000_000);
  for (let n = 0; n < 300; n++) {
    await engine.heartbeat(report(n, 8));
    clock.ms += 100; // host n beats at 1,000,000 + 100 n
  }
  const state = async () => new Map((await engine.listHosts()).map((h) => [h.hostId, h.state]));
  // At 1,000,000 + 15,000 + 10,050 the hosts that beat before 1,010,050 (n <= 100) are past the deadline.
  clock.ms = 1_000_000 + 15_000 + 10_050;
  await engine.sweep();
  let s = await state();
  for (let n = 0; n < 300; n++) t.is(s.get(`h${n}`), n <= 100 ? "down" : "up", `h${n}`);
  const writes = store.writeStats().rowsChanged;
  await engine.sweep();
  t.is(store.writeStats().rowsChanged, writes, "a host already down is not marked again");
  clock.ms = 1_040_000;
  t.is((await engine.heartbeat(report(5, 8))).host.state, "up");
  clock.ms = 1_045_000; // deadline 1,030,000: every other host (the last beat at 1,029,900) is past it
  await engine.sweep();
  s = await state();
  t.is(s.get("h5"), "up", "back up, with a new deadline");
  t.is(s.get("h299"), "down", "the others went down as their deadlines passed");
  t.is((await store.getHost("h5"))?.state, "up");
  t.is((await store.getHost("h299"))?.state, "down");
});

test("a heartbeat writes to the store only when the host's network, VM list or state changed", async (t) => {
  const { engine, store, clock } = await open(t, fresh(t), 1_000_000);
  const before = store.writeStats();
  await engine.heartbeat(report(2, 8));
  const first = store.writeStats();
  t.true(first.rowsChanged > before.rowsChanged, "a new host is written");
  const written = () => store.writeStats();
  let last = first;
  const expect = async (input: HeartbeatInput, writes: boolean, what: string) => {
    clock.ms += 5_000;
    await engine.heartbeat(input);
    const now = written();
    if (writes) t.true(now.rowsChanged > last.rowsChanged && now.operations > last.operations, `${what}: written`);
    else t.deepEqual(now, last, `${what}: nothing written`);
    last = now;
  };
  const loaded = vms("h2", 20).map((v) => ({ ...v, cpuUsedCores: 1.5, memoryUsedBytes: 3 * GIB }));
  for (let i = 0; i < 5; i++) await expect(report(2, 8 + i), false, `beat ${i} with a new host load`);
  await expect(report(2, 8, loaded), false, "new VM loads, the same VMs");
  await expect(report(2, 8, vms("h2", 21)), true, "a VM more");
  await expect(report(2, 8, vms("h2", 21)), false, "the same again");
  await expect({ ...report(2, 8, vms("h2", 21)), addresses: ["2001:db8:1::99/64"] }, true, "a new address");
  await expect({ ...report(2, 8, vms("h2", 21)), addresses: ["192.0.2.99/24"] }, true, "another network");
  await expect({ ...report(2, 31, vms("h2", 21)), addresses: ["192.0.2.99/24"] }, true, "hot (the lab's window is 0 s)");
  await expect({ ...report(2, 31, vms("h2", 21)), addresses: ["192.0.2.99/24"] }, false, "still hot");
  const stored = await store.getHost("h2");
  t.like(stored, { state: "hot", family: 4, network: "192.0.2.0/24" });
  t.is(stored?.vms.length, 21);
  t.is((await engine.listHosts())[0].lastSeenMs, clock.ms, "the last beat's time is known, in memory");
});

test("heartbeats do not wait behind a migration that holds the engine's exclusive section", async (t) => {
  const dir = fresh(t);
  const config = parseConfig(labConfig(dir, { hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 15 } }));
  const sqlite = new SqliteStore(join(dir, "engine.db"));
  t.teardown(() => sqlite.close());
  // The real store, with its putBinding held at a gate: a RegisterMigration stalls inside the section.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const store = new Proxy(sqlite, {
    get(target, name, receiver) {
      if (name === "putBinding") return async (...args: Parameters<Store["putBinding"]>) => { await gate; return target.putBinding(...args); };
      const v = Reflect.get(target, name, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const engine = new Engine(config, store, silentLogger, undefined, () => 1_000_000);
  await engine.start();
  engine.stop();
  await engine.heartbeat(report(0, 8));
  await engine.heartbeat(report(1, 8));
  const c = await engine.allocateCareOf("h0", "vm", parseAddress("192.0.2.5", "home"));
  let registered = false;
  const migration = engine.registerMigration({
    vmId: "vm", home: parseAddress("192.0.2.5", "home"), homeAgent: parseAddress("192.0.2.1", "home_agent"), sourceHostId: "h1", destinationHostId: "h0",
    careOfIPv4: parseIPv4(c.careOfIPv4, "care_of_ipv4"), careOfIPv6: parseIPv6(c.careOfIPv6, "care_of_ipv6"),
  }).then((r) => { registered = true; return r; });
  let aborted = false;
  const abort = engine.abortMigration("other-vm", "h1").then(() => { aborted = true; });
  // New hosts (a durable write each), a changed VM list, an unchanged beat: all answered meanwhile.
  const beats = await Promise.all([engine.heartbeat(report(2, 8)), engine.heartbeat(report(0, 8, vms("h0", 21))), engine.heartbeat(report(1, 9))]);
  t.deepEqual(beats.map((b) => b.host.hostId), ["h2", "h0", "h1"]);
  t.is((await sqlite.getHost("h2"))?.hostId, "h2", "and the new host is stored");
  t.false(registered, "the migration is still held");
  t.false(aborted, "and the next exclusive operation waits behind it");
  open();
  t.is((await migration).returnedHome, false);
  await abort;
  t.true(aborted);
});
