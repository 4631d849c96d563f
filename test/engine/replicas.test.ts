// Failure tests of engine replicas on etcd, with real processes: a 3-member etcd cluster on
// loopback and 3 mip46-engine processes sharing one key prefix. Agents allocate through the
// failover client while replicas are killed with SIGKILL, then an etcd member, then everything is
// restarted on its data. (A worker that keeps forwarding while every engine is down is covered
// by test/dataplane/live/restart.test.ts.)
import test from "ava";
import type { ServiceError } from "@grpc/grpc-js";
import { rmSync } from "node:fs";
import { connectControlAny, type FailoverClient } from "../../clients/failover.js";
import { EtcdStore } from "../../services/store/etcd.js";
import { hostOn, killHard, spawnEngine, tempDir, type ChildEngine } from "../helpers/engine.js";
import { startEtcdCluster, type EtcdCluster } from "../helpers/etcd.js";

const PREFIX = "/mip46-replicas-test";

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test("replicas on etcd: kill -9 a replica, then the leader, then an etcd member; restart everything", async (t) => {
  t.timeout(240_000);
  const cluster: EtcdCluster = await startEtcdCluster(3);
  const dirs: string[] = [];
  const engines: ChildEngine[] = [];
  const clients: FailoverClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await Promise.all(engines.map(killHard));
    await cluster.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const overrides = (replica: string) => ({
    replica,
    // 198.18.0.0/22 (RFC 2544 benchmarking range) only as lease bookkeeping: no packet is sent.
    pool: { name: "engine", prefix: "198.18.0.0/22" },
    store: { kind: "etcd", etcd: { endpoints: cluster.endpoints, prefix: PREFIX, leaderTtlSeconds: 1 } },
    hosts: { heartbeatIntervalSeconds: 1, downAfterSeconds: 3600 },
  });
  const startReplicas = async () => {
    const started: ChildEngine[] = [];
    for (const r of ["r0", "r1", "r2"]) {
      const dir = tempDir("mip46-replica-");
      dirs.push(dir);
      const e = await spawnEngine(dir, overrides(r));
      engines.push(e);
      started.push(e);
    }
    return started;
  };
  const replicas = await startReplicas();
  const names = new Map(replicas.map((e, i) => [e, `r${i}`]));
  const etcd = await EtcdStore.open({ endpoints: cluster.endpoints, prefix: PREFIX });
  t.teardown(() => etcd.close());
  const leaderName = async () => (await etcd.client.get(etcd.k("leader")).string()) ?? "";
  await until("a leader", async () => (await leaderName()) !== "");
  const firstLeader = await leaderName();
  t.log(`leader: ${firstLeader}`);

  // 12 agents, each with every replica, starting at different ones so all three serve.
  const addresses = replicas.map((e) => e.address);
  const acked = new Map<string, string>();
  const successTimes: number[][] = [];
  const failures: string[] = [];
  let next = 0;
  let running = true;
  const agents = Array.from({ length: 12 }, async (_, a) => {
    const order = addresses.map((_, i) => addresses[(i + a) % addresses.length]);
    const client = connectControlAny(order, { deadlineMs: 20_000, attemptMs: 2000 });
    clients.push(client);
    successTimes[a] = [];
    await client.heartbeat(hostOn(6, `h6-${a}`, a + 10));
    while (running && next < 900) {
      const vm = `vm-${next++}`;
      try {
        const r = await client.allocateCareOf({ hostId: `h6-${a}`, vmId: vm, homeAddress: "192.0.2.1" });
        acked.set(vm, r.careOfIpv4);
        successTimes[a].push(Date.now());
      } catch (e) {
        failures.push(`${vm}: ${(e as ServiceError).code} ${(e as Error).message}`);
      }
    }
  });

  /** For each agent, the time from `at` to its first acknowledged allocation after it: the worst is when service was back for all. */
  const serviceBack = async (at: number) => {
    await until("every agent allocating again", () => successTimes.every((s) => s.some((x) => x > at)), 30_000);
    return Math.max(...successTimes.map((s) => s.find((x) => x > at)! - at));
  };

  await until("200 allocations", () => acked.size >= 200);
  const follower = replicas.find((e) => names.get(e) !== firstLeader)!;
  const killFollowerAt = Date.now();
  await killHard(follower);
  const followerGap = await serviceBack(killFollowerAt);
  t.log(`kill -9 of follower ${names.get(follower)}: every agent allocating again after ${followerGap} ms`);

  await until("200 more allocations", () => acked.size >= 400);
  const leader = replicas.find((e) => names.get(e) === firstLeader)!;
  const killLeaderAt = Date.now();
  await killHard(leader);
  const leaderGap = await serviceBack(killLeaderAt);
  await until("a new leader", async () => { const l = await leaderName(); return l !== "" && l !== firstLeader; });
  const electedAfter = Date.now() - killLeaderAt;
  const newLeader = await leaderName();
  t.log(`kill -9 of leader ${firstLeader}: every agent allocating again after ${leaderGap} ms; ${newLeader} leads after ${electedAfter} ms (leader lease TTL 1 s)`);
  t.true(followerGap < 10_000 && leaderGap < 10_000, "service came back");
  t.true(electedAfter < 10_000, "a new leader was elected");
  t.not(newLeader, names.get(follower), "the dead follower cannot lead");

  await until("200 more allocations", () => acked.size >= 600);
  running = false;
  await Promise.all(agents);
  t.log(`${acked.size} allocations acknowledged; ${failures.length} calls failed${failures.length ? `: ${failures.slice(0, 3).join("; ")}` : ""}`);
  t.deepEqual(failures, [], "the failover client hid both kills");

  const checkLeases = async (what: string, extra = new Map<string, string>()) => {
    const all = new Map([...acked, ...extra]);
    t.is(new Set(all.values()).size, all.size, `${what}: no address handed out twice`);
    const stored = new Map((await etcd.listLeases()).map((l) => [l.holder, l.address]));
    const lost = [...all].filter(([vm, address]) => stored.get(vm) !== address);
    t.deepEqual(lost, [], `${what}: every acknowledged lease is in etcd`);
    t.is(stored.size, all.size, `${what}: and nothing else`);
  };
  await checkLeases("after two kills");

  // One etcd member down: the engines (and the leader's duties) go on with the other two.
  const survivor = replicas.find((e) => e !== follower && e !== leader)!;
  const client = connectControlAny([survivor.address], { deadlineMs: 20_000 });
  clients.push(client);
  await cluster.kill(0);
  const extra = new Map<string, string>();
  for (let i = 0; i < 50; i++) extra.set(`late-${i}`, (await client.allocateCareOf({ hostId: "h6-0", vmId: `late-${i}`, homeAddress: "192.0.2.1" })).careOfIpv4);
  t.is((await client.listLeases({})).leases.length, acked.size + 50, "a replica still serves with one etcd member down");
  await until("the leader still leads", async () => (await leaderName()) === newLeader, 5000);
  await checkLeases("with an etcd member down", extra);

  // Everything goes: the last replica and the other etcd members, all with SIGKILL; then back.
  await killHard(survivor);
  await Promise.all([cluster.kill(1), cluster.kill(2)]);
  await etcd.close();
  for (let i = 0; i < 3; i++) cluster.start(i);
  await cluster.ready();
  const again = await startReplicas();
  const after = connectControlAny(again.map((e) => e.address), { deadlineMs: 20_000 });
  clients.push(after);
  const leases = new Map((await after.listLeases({})).leases.map((l) => [l.holder, l.address]));
  const all = new Map([...acked, ...extra]);
  t.deepEqual([...all].filter(([vm, a]) => leases.get(vm) !== a), [], "after a restart of everything, every lease is there");
  t.is(leases.size, all.size);
  const [vm, address] = [...acked][0];
  t.is((await after.allocateCareOf({ hostId: "h6-0", vmId: vm, homeAddress: "192.0.2.1" })).careOfIpv4, address, "a VM asking again keeps its address");
  t.is((await after.listHosts({})).hosts.length, 12);
});
