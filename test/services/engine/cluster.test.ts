// Engine replicas on a real 3-member etcd cluster, with many hosts and an injected clock: three
// in-process engines share one key prefix, each on its own EtcdStore (its own client and
// watches); the test says which one leads (a real leader key, and the guarded view on it) and
// calls the sweep and each replica's liveness batch by hand. Hosts beat at non-leaders; the
// leader advises them and marks them down from the batches. The whole stored state is read back
// from etcd after the calls.
import test, { type ExecutionContext } from "ava";
import { rmSync } from "node:fs";
import { createLogger, silentLogger } from "../../../lib/log.js";
import { parseConfig } from "../../../services/config/config.js";
import { Engine, type HeartbeatInput } from "../../../services/engine/engine.js";
import type { Leadership } from "../../../services/engine/leader.js";
import { EtcdStore } from "../../../services/store/etcd.js";
import type { AdviceRecord, HostRecord, Store, VmRecord } from "../../../services/store/store.js";
import { labConfig, tempDir } from "../../../harness/engine.js";
import { GIB, report, vms } from "../../../harness/reports.js";
import { etcdOps, startEtcdCluster, type EtcdCluster } from "../../../harness/etcd.js";

const T0 = 1_000_000;

let cluster: EtcdCluster | undefined;
let prefixes = 0;

test.before(async () => {
  cluster = await startEtcdCluster(3);
});
test.after.always(async () => {
  await cluster?.stop();
});

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits for a watch to bring a change (no timing is measured; the deadline only ends a broken run). */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}


interface Replica {
  name: string;
  engine: Engine;
  store: EtcdStore;
  /** Makes this replica lead (with the guarded view) or not (undefined). */
  lead(view: Store | undefined): void;
}

interface Fixture {
  replicas: Replica[];
  clock: { ms: number };
  /** A client of its own on the prefix, for reading back what is stored. */
  etcd: EtcdStore;
  prefix: string;
  elect(i: number): Promise<void>;
  /** Opens replicas r0..r(n-1) on the prefix (again, after close: a restart). */
  open(n: number): Promise<Replica[]>;
  close(): Promise<void>;
}

async function fixture(t: ExecutionContext, overrides: Record<string, unknown> = {}): Promise<Fixture> {
  const dir = tempDir("mip46-cluster-");
  const prefix = `/mip46-cluster-test-${process.pid}-${++prefixes}`;
  const endpoints = cluster!.endpoints;
  const clock = { ms: T0 };
  const etcd = await EtcdStore.open({ endpoints, prefix });
  const f: Fixture = {
    replicas: [], clock, etcd, prefix,
    async open(n) {
      f.replicas = [];
      for (let i = 0; i < n; i++) {
        const name = `r${i}`;
        const config = parseConfig(labConfig(dir, {
          replica: name, store: { kind: "etcd", etcd: { endpoints, prefix } },
          hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 15 }, ...overrides,
        }));
        const store = await EtcdStore.open({ endpoints, prefix });
        let view: Store | undefined;
        const listeners: (() => void)[] = [];
        const leadership: Leadership = { leaderStore: () => view, onElected: (l) => listeners.push(l) };
        const engine = new Engine(config, store, process.env.M46_DEBUG ? createLogger({ component: name }) : silentLogger, undefined, () => clock.ms, leadership);
        await engine.start();
        engine.stop(); // no timers: the test sweeps and writes batches when it chooses
        f.replicas.push({
          name, engine, store,
          lead(v) {
            view = v;
            if (v) for (const l of listeners) l();
          },
        });
      }
      return f.replicas;
    },
    async elect(i) {
      // A real leader key, as leader.ts keeps it; the guarded view compares its create revision.
      const key = etcd.k("leader");
      await etcd.client.delete().key(key).exec();
      const put = await etcd.client.put(key).value(`r${i}`).exec();
      const guarded = f.replicas[i].store.guarded({ key, createRevision: put.header.revision });
      f.replicas.forEach((r, j) => { if (j !== i) r.lead(undefined); });
      f.replicas[i].lead(guarded);
    },
    async close() {
      for (const r of f.replicas) {
        await r.engine.close();
        await r.store.close();
      }
      f.replicas = [];
    },
  };
  t.teardown(async () => {
    await f.close();
    await etcd.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return f;
}

/** Beats many hosts at once, at most 64 calls in flight. */
async function beatAll(inputs: [Replica, HeartbeatInput][]): Promise<void> {
  for (let i = 0; i < inputs.length; i += 64) await Promise.all(inputs.slice(i, i + 64).map(([r, h]) => r.engine.heartbeat(h)));
}

/** `from` writes its liveness batch; resolves once each of `to` has taken it (from its watch). */
async function publish(from: Replica, ...to: Replica[]): Promise<void> {
  const revision = await from.engine.publishLiveness();
  await until(`${from.name}'s batch at ${to.map((r) => r.name).join(", ")}`, () => to.every((r) => r.engine.batchSeen(from.name) >= revision));
}

/** Every host record under hosts/, read from etcd (not from any replica's copy). */
async function storedHosts(f: Fixture): Promise<Map<string, HostRecord>> {
  return new Map((await f.etcd.listHosts()).map((h) => [h.hostId, h]));
}

async function keysUnder(f: Fixture, path: string): Promise<string[]> {
  return (await f.etcd.client.getAll().prefix(f.etcd.k(path)).keys()).map((k) => k.slice(f.etcd.k(path).length)).sort();
}

test.serial("1,001 hosts at two non-leaders: a hot host beating at a non-leader is advised by the leader as on one engine (window, hysteresis, headroom, cool-down, no destination the move makes hot), handed over once by its replica", async (t) => {
  t.timeout(180_000);
  const f = await fixture(t, { migration: { highWatermark: 0.85, lowWatermark: 0.7, windowSeconds: 30, vmCooldownSeconds: 300 } });
  const [r0, r1, r2] = await f.open(3);
  await f.elect(0);
  const clock = f.clock;
  // Hosts 0..999 at 25%..53% CPU, half at r1 and half at r2; h1000 (12.5%, the emptiest) at r1.
  await beatAll(Array.from({ length: 1000 }, (_, n) => [n % 2 === 0 ? r1 : r2, report(n, 8 + (n % 10))] as [Replica, HeartbeatInput]));
  await r1.engine.heartbeat(report(1000, 4));
  await Promise.all([publish(r1, r0), publish(r2, r0)]);
  await until("the leader knowing every host", async () => (await r0.engine.listHosts()).length === 1001);

  const bigVm = { vmId: "big", homeAddress: "192.0.2.9", cpuUsedCores: 6, memoryUsedBytes: GIB };
  const hot = (cpu: number, vmList = [bigVm, ...vms("hot", 5, 0.2)]) => r2.engine.heartbeat({ ...report(2000, cpu), hostId: "hot", vms: vmList });
  /** The hot host beats at r2, r2 writes its batch, the leader reads it and has written whatever advice it decided. */
  const beatAndBatch = async (cpu: number, vmList?: VmRecord[]) => {
    const r = await hot(cpu, vmList);
    await publish(r2, r0);
    await r0.engine.remoteAdviceWritten();
    return r;
  };
  const pending = () => keysUnder(f, "pending/");

  let r = await beatAndBatch(30);
  t.is(r.host.state, "up", "above the high watermark, but not for a window yet");
  t.deepEqual(r.advice, []);
  clock.ms += 29_000;
  r = await beatAndBatch(30);
  t.is(r.host.state, "up");
  t.deepEqual(await pending(), [], "no advice before a whole window");
  clock.ms += 1_000;
  r = await beatAndBatch(30);
  t.is(r.host.state, "hot", "its own replica sees it hot");
  t.deepEqual(r.advice, [], "the leader's advice was not there yet when r2 answered");
  t.deepEqual(await pending(), ["hot"], "the leader left advice for the replica it beats at");
  // r2's watch brings it; its next answer hands it over, once.
  let handed: AdviceRecord[] = [];
  await until("r2 handing the advice over", async () => (handed = (await hot(30)).advice).length > 0);
  t.is(handed.length, 1);
  t.like(handed[0], { vmId: "big", sourceHostId: "hot", destinationHostId: "h1000", crossProtocol: false, givenAtMs: clock.ms },
    "the smallest VM whose departure cools the host (30 - 6 = 24 of 32 cores) to the emptiest host, which beats at r1");
  t.deepEqual(await pending(), [], "and the pending key is gone");
  t.deepEqual((await hot(30)).advice, [], "nothing twice");
  const first = handed[0];

  clock.ms += 1_000;
  r = await beatAndBatch(26);
  t.is(r.host.state, "hot", "26/32 = 0.81 is between the watermarks: still hot (hysteresis)");
  t.deepEqual(await pending(), [], "no second advice within the window");
  clock.ms += 30_000;
  await beatAndBatch(30, [bigVm]);
  t.deepEqual(await pending(), [], "the advised VM rests for its cool-down");
  clock.ms += 300_000;
  await r1.engine.heartbeat(report(1000, 4));
  await publish(r1, r0);
  await beatAndBatch(30, [bigVm]);
  t.deepEqual(await pending(), ["hot"], "and may be advised again after it");
  await until("r2 handing the second advice over", async () => (handed = (await hot(30, [bigVm])).advice).length > 0);
  t.like(handed[0], { vmId: "big", destinationHostId: "h1000" });
  const second = handed[0];
  clock.ms += 1_000;
  t.is((await beatAndBatch(20)).host.state, "up", "20/32 = 0.63 is below the low watermark: cool again");

  // Every host at 62.5%: with the VM (6 more cores) any destination would be at 81%, above the low watermark.
  clock.ms += 300_000;
  await beatAll(Array.from({ length: 1001 }, (_, n) => [n % 2 === 0 ? r1 : r2, report(n, 20)] as [Replica, HeartbeatInput]));
  await Promise.all([publish(r1, r0), publish(r2, r0)]);
  await beatAndBatch(30);
  clock.ms += 30_000;
  r = await beatAndBatch(30);
  t.is(r.host.state, "hot");
  t.deepEqual(await pending(), [], "no host would stay below the low watermark with the VM");

  // The whole stored state: every host with its VMs and state; two pieces of advice in the history.
  const stored = await storedHosts(f);
  t.is(stored.size, 1002);
  for (let n = 0; n <= 1000; n++) t.like(stored.get(`h${n}`), { state: "up", family: n % 2 === 0 ? 6 : 4 }, `h${n}`);
  t.like(stored.get("hot"), { state: "hot", network: "2001:db8:1::/64" });
  t.deepEqual(stored.get("hot")?.vms.map((v) => v.vmId), ["big", ...vms("hot", 5).map((v) => v.vmId)]);
  t.deepEqual((await f.etcd.listAdvice(100, 0)).map((a) => [a.vmId, a.destinationHostId, a.givenAtMs]),
    [[second.vmId, "h1000", second.givenAtMs], [first.vmId, "h1000", first.givenAtMs]]);
  t.deepEqual(await pending(), []);
  t.deepEqual(await keysUnder(f, "liveness/"), ["r1/0", "r2/0"], "one batch key per replica that had hosts beat at it (at most 1,000 hosts a key)");
});

test.serial("down-marking from batched liveness: a host is down once no replica heard it for downAfterSeconds plus one batch period; its last beat at another replica counts; once, and up again when it beats", async (t) => {
  t.timeout(120_000);
  const f = await fixture(t);
  const reps = await f.open(3);
  const [r0, r1, r2] = reps;
  await f.elect(0);
  const clock = f.clock;
  // 300 hosts, host n at replica n % 3 (the leader r0 included), all at T0.
  await beatAll(Array.from({ length: 300 }, (_, n) => [reps[n % 3], report(n, 8)] as [Replica, HeartbeatInput]));
  await Promise.all([publish(r1, r0), publish(r2, r0)]);
  // At T0 + 10 s the even hosts beat again, each at the next replica (its agent failed over).
  clock.ms = T0 + 10_000;
  await beatAll(Array.from({ length: 150 }, (_, k) => [reps[(2 * k + 1) % 3], report(2 * k, 8)] as [Replica, HeartbeatInput]));
  await Promise.all([publish(r0, r1, r2), publish(r1, r0, r2), publish(r2, r0, r1)]);

  const stateAt = async (r: Replica) => new Map((await r.engine.listHosts()).map((h) => [h.hostId, h.state]));
  const revision = async () => BigInt((await f.etcd.client.get(f.etcd.k("rules/revision")).exec()).header.revision);
  // downAfterSeconds 15, batches every 5 s: a host heard last at T0 is down after T0 + 20 s.
  clock.ms = T0 + 20_000;
  let before = await revision();
  await r0.engine.sweep();
  t.is(await revision(), before, "none is down at T0 + 20 s: nothing written");
  clock.ms = T0 + 20_001;
  await r1.engine.sweep();
  await r2.engine.sweep();
  t.is(await revision(), before, "a replica that does not lead marks nothing");
  await r0.engine.sweep();
  const stored = await storedHosts(f);
  t.is(stored.size, 300);
  for (let n = 0; n < 300; n++) {
    t.is(stored.get(`h${n}`)?.state, n % 2 === 0 ? "up" : "down", `h${n} in etcd: ${n % 2 === 0 ? "heard at T0 + 10 s, at another replica than before" : "silent since T0"}`);
  }
  for (const r of reps) {
    await until(`${r.name} seeing the hosts down`, async () => [...(await stateAt(r)).values()].filter((s) => s === "down").length === 150);
    const s = await stateAt(r);
    for (let n = 0; n < 300; n++) t.is(s.get(`h${n}`), n % 2 === 0 ? "up" : "down", `h${n} at ${r.name}`);
  }
  before = await revision();
  await r0.engine.sweep();
  t.is(await revision(), before, "a host already down is not marked again");

  // A down host beats at a non-leader: its replica writes it up (it saw the down-marking), once.
  clock.ms = T0 + 21_000;
  t.is((await r2.engine.heartbeat(report(1, 8))).host.state, "up");
  t.is((await storedHosts(f)).get("h1")?.state, "up", "h1 is up in etcd again");
  const up = await revision();
  t.is(up, before + 1n, "with one write");
  await r2.engine.heartbeat(report(1, 8));
  t.is(await revision(), up, "and the next beat writes nothing");
  await publish(r2, r0);
  // At T0 + 30 s + 1 ms the hosts heard last at T0 + 10 s are past their deadline; h1 (T0 + 21 s) is not.
  clock.ms = T0 + 30_001;
  await r0.engine.sweep();
  const after = await storedHosts(f);
  t.is(after.get("h1")?.state, "up");
  t.is([...after.values()].filter((h) => h.state === "down").length, 299, "every other host is down");
  t.deepEqual(await keysUnder(f, "pending/"), []);
});

test.serial("a leader change, and a restart of every replica, with 2,000 hosts known: none lost, none down before it had downAfterSeconds from the election, the silent ones after", async (t) => {
  t.timeout(180_000);
  const f = await fixture(t);
  let reps = await f.open(3);
  await f.elect(0);
  const N = 2000;
  await beatAll(Array.from({ length: N }, (_, n) => [reps[1 + (n % 2)], report(n, 8)] as [Replica, HeartbeatInput]));
  await Promise.all([publish(reps[1], reps[0], reps[2]), publish(reps[2], reps[0], reps[1])]);
  // Each replica's watch of hosts/ brings the records written at the others.
  for (const r of reps) await until(`${r.name} knowing every host`, async () => (await r.engine.listHosts()).length === N);

  // An hour later, r0 is gone and r1 leads: every host's last beat is far past the deadline.
  const check = async (what: string, leader: Replica, electedMs: number, beating: (n: number) => boolean) => {
    f.clock.ms = electedMs + 20_000;
    await leader.engine.sweep();
    let stored = await storedHosts(f);
    t.is(stored.size, N, `${what}: every host is still stored`);
    t.is([...stored.values()].filter((h) => h.state === "down").length, 0, `${what}: none is down at downAfterSeconds + one batch after the election`);
    // Half report again within their grace, at the replica that does not lead; the others stay silent.
    const other = reps.find((r) => r !== leader)!;
    f.clock.ms = electedMs + 10_000;
    await beatAll(Array.from({ length: N }, (_, n) => n).filter(beating).map((n) => [other, report(n, 8)] as [Replica, HeartbeatInput]));
    await publish(other, leader);
    f.clock.ms = electedMs + 20_001;
    await leader.engine.sweep();
    stored = await storedHosts(f);
    t.is(stored.size, N);
    const wrong = Array.from({ length: N }, (_, n) => n).filter((n) => stored.get(`h${n}`)?.state !== (beating(n) ? "up" : "down"));
    t.deepEqual(wrong.slice(0, 10).map((n) => `h${n} is ${stored.get(`h${n}`)?.state}`), [], `${what}: ${wrong.length} hosts in the wrong state`);
    t.is([...stored.values()].filter((h) => h.state === "down").length, N - Array.from({ length: N }, (_, n) => n).filter(beating).length, `${what}: exactly the silent ones are down`);
  };
  const firstMs = T0 + 3_600_000;
  f.clock.ms = firstMs;
  await reps[0].engine.close();
  await reps[0].store.close();
  reps = reps.slice(1);
  f.replicas = reps;
  await f.elect(0); // r1 (index 0 of the replicas left) leads from now
  await check("leader change", reps[0], firstMs, (n) => n % 2 === 0);

  // Every replica restarts a day later, on what etcd holds: the hosts are loaded, and get their grace again.
  await f.close();
  const restartMs = T0 + 86_400_000;
  f.clock.ms = restartMs;
  reps = await f.open(2);
  await f.elect(1);
  for (const r of reps) t.is((await r.engine.listHosts()).length, N, `${r.name} loaded every host after the restart`);
  // The ones down stay down; the others must report within their grace.
  const downBefore = new Set([...(await storedHosts(f)).values()].filter((h) => h.state === "down").map((h) => h.hostId));
  t.is(downBefore.size, N / 2);
  f.clock.ms = restartMs + 20_000;
  await reps[1].engine.sweep();
  t.deepEqual(new Set([...(await storedHosts(f)).values()].filter((h) => h.state === "down").map((h) => h.hostId)), downBefore, "after the restart, none more is down within the grace");
  f.clock.ms = restartMs + 10_000;
  await beatAll(Array.from({ length: N / 4 }, (_, k) => [reps[0], report(4 * k, 8)] as [Replica, HeartbeatInput]));
  await publish(reps[0], reps[1]);
  f.clock.ms = restartMs + 20_001;
  await reps[1].engine.sweep();
  const final = await storedHosts(f);
  t.is(final.size, N);
  t.is([...final.values()].filter((h) => h.state === "up").length, N / 4, "only the quarter that beat after the restart is up");
  t.true([...final.values()].every((h) => (h.state === "up") === (Number(h.hostId.slice(1)) % 4 === 0)));
});

test.serial("on etcd the cordon is kept in memory: ordinary beats at any replica make no etcd request; a cordon set at one replica holds at the others; only a durable change writes", async (t) => {
  t.timeout(60_000);
  const f = await fixture(t);
  const [r0, r1, r2] = await f.open(3);
  await f.elect(0);
  await beatAll(Array.from({ length: 30 }, (_, n) => [[r0, r1, r2][n % 3], report(n, 8)] as [Replica, HeartbeatInput]));
  const { after } = await r2.engine.cordonHost("h1", true, true);
  t.like(after, { hostId: "h1", cordoned: true, draining: true });
  await until("r1 seeing the drain", async () => (await r1.engine.listHosts({ hostId: "h1" }))[0]?.draining === true);
  await until("r0 seeing the drain", async () => (await r0.engine.listHosts({ hostId: "h1" }))[0]?.draining === true);

  const ops0 = await etcdOps(cluster!);
  for (let i = 0; i < 5; i++) {
    f.clock.ms += 1_000;
    for (let n = 2; n < 30; n++) await [r0, r1, r2][n % 3].engine.heartbeat(report(n, 8 + i)); // load changes, nothing durable
  }
  const ops1 = await etcdOps(cluster!);
  t.deepEqual(ops1, ops0, "140 beats: no etcd read, put, delete or transaction at all");
  const beat = await r1.engine.heartbeat(report(1, 8));
  t.like(beat.host, { cordoned: true, draining: true }, "a beat at another replica keeps the drain");
  const ops2 = await etcdOps(cluster!);
  t.is(ops2.puts, ops1.puts, "and writes nothing");
  await r1.engine.heartbeat(report(4, 8, vms("h4", 21)));
  const ops3 = await etcdOps(cluster!);
  t.is(ops3.puts - ops2.puts, 1, "a VM more: one put");
  const stored = await storedHosts(f);
  t.like(stored.get("h1"), { cordoned: true, draining: true });
  t.is(stored.get("h4")?.vms.length, 21);
  t.is(stored.size, 30);
  await t.throwsAsync(r0.engine.cordonHost("nope", true), { message: /host nope is unknown/ });
  t.deepEqual(await keysUnder(f, "cordons/"), ["h1"], "an unknown host gets no cordon");
});
