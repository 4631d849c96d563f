// mipctl cluster and the etcd connectivity metric, against real replicas on a real 3-member etcd.
import test from "ava";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { startTestEngine } from "../../harness/engine.js";
import { startEtcdCluster } from "../../harness/etcd.js";

const run = promisify(execFile);
const mipctl = (address: string, ...args: string[]) => run(process.execPath, ["bin/mipctl.js", "--engine", address, ...args], { encoding: "utf8" });

test("mipctl cluster: both replicas, one leader, every etcd member healthy with one raft leader; a stopped member is unhealthy there and in mip46_etcd_endpoint_up; a stopped replica leaves the list", async (t) => {
  const etcd = await startEtcdCluster(3);
  t.teardown(() => etcd.stop());
  const store = { kind: "etcd", etcd: { endpoints: etcd.endpoints, prefix: "/mip46-cluster-test", leaderTtlSeconds: 1 } };
  const a = await startTestEngine({ store, replica: "ra" });
  t.teardown(() => a.stop());
  const b = await startTestEngine({ store, replica: "rb" });
  let bStopped = false;
  t.teardown(() => (bStopped ? undefined : b.stop()));

  const first = JSON.parse((await mipctl(b.address, "--json", "cluster")).stdout);
  t.is(first.store, "etcd");
  t.is(first.replica, "rb", "the replica that answered");
  t.true(["ra", "rb"].includes(first.leaderReplica), first.leaderReplica);
  t.deepEqual(first.replicas.map((r: { replica: string }) => r.replica), ["ra", "rb"]);
  t.deepEqual(first.etcd.map((m: { endpoint: string; healthy: boolean }) => [m.endpoint, m.healthy]), etcd.endpoints.map((e) => [e, true]));
  t.is(first.etcd.filter((m: { leader?: boolean }) => m.leader).length, 1, "exactly one raft leader");
  const table = (await mipctl(a.address, "cluster")).stdout;
  t.regex(table, new RegExp(`^store etcd; answered by ra; leader ${first.leaderReplica}$`, "m"));
  t.regex(table, new RegExp(`^${first.leaderReplica}\\s+\\S+\\s+\\S+\\s+\\S+\\s+leader$`, "m"));
  t.regex(table, /^ETCD ENDPOINT\s+HEALTH\s+RAFT LEADER\s+VERSION\s+DB SIZE\s+RAFT INDEX\s+ERROR$/m);

  // One member down: the replicas serve on (a quorum of two), and say which one is gone.
  await etcd.kill(2);
  const down = JSON.parse((await mipctl(a.address, "--json", "cluster")).stdout);
  const member = down.etcd.find((m: { endpoint: string }) => m.endpoint === etcd.endpoints[2]);
  t.false("healthy" in member, "unhealthy (proto3 JSON leaves false out)");
  t.truthy(member.error);
  t.is(down.etcd.filter((m: { healthy?: boolean }) => m.healthy).length, 2);
  const metrics = await (await fetch(`http://127.0.0.1:${a.running.metricsPort}/metrics`)).text();
  t.regex(metrics, new RegExp(`^mip46_etcd_endpoint_up\\{endpoint="${etcd.endpoints[2]}"\\} 0$`, "m"));
  t.regex(metrics, new RegExp(`^mip46_etcd_endpoint_up\\{endpoint="${etcd.endpoints[0]}"\\} 1$`, "m"));

  // A replica that stops takes its key with it.
  await b.stop();
  bStopped = true;
  const after = JSON.parse((await mipctl(a.address, "--json", "cluster")).stdout);
  t.deepEqual(after.replicas.map((r: { replica: string }) => r.replica), ["ra"]);
});

test("mipctl cluster on the embedded store: the one engine, its own leader, no etcd", async (t) => {
  const e = await startTestEngine({ replica: "solo" });
  t.teardown(() => e.stop());
  const r = JSON.parse((await mipctl(e.address, "--json", "cluster")).stdout);
  t.like(r, { store: "sqlite", replica: "solo", leaderReplica: "solo" });
  t.deepEqual(r.replicas.map((x: { replica: string }) => x.replica), ["solo"]);
  t.false("etcd" in r);
  t.notRegex(await (await fetch(`http://127.0.0.1:${e.running.metricsPort}/metrics`)).text(), /^mip46_etcd_endpoint_up\{/m, "no etcd series");
});
