// Concurrency and durability against real engines: concurrent calls never share an address, and
// every acknowledged change survives kill -9.
import test from "ava";
import { status, type ServiceError } from "@grpc/grpc-js";
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { hostOn, killHard, spawnEngine, startTestEngine, tempDir } from "../../../harness/engine.js";

test("1,000 concurrent AllocateCareOf calls from distinct VMs get distinct addresses", async (t) => {
  // 198.18.0.0/22 (RFC 2544 benchmarking range) only as lease bookkeeping: no packet is sent; the
  // documentation ranges are /24s, too small for 1,000 VMs.
  const e = await startTestEngine({ pool: { name: "engine", prefix: "198.18.0.0/22" } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) =>
    e.client.allocateCareOf({ hostId: "h6", vmId: `vm-${i}`, homeAddress: `192.0.2.${(i % 250) + 1}` }, 60_000)));
  const addresses = new Set(replies.map((r) => r.careOfIpv4));
  t.is(addresses.size, 1000);
  const leases = await e.client.listLeases({});
  t.is(leases.leases.length, 1000);
  t.deepEqual(new Set(leases.leases.map((l) => l.address)), addresses, "what was acknowledged is what is stored");
});

test("concurrent calls past the end of the pool: each address once, the rest RESOURCE_EXHAUSTED", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const results = await Promise.allSettled(Array.from({ length: 400 }, (_, i) =>
    e.client.allocateCareOf({ hostId: "h6", vmId: `vm-${i}`, homeAddress: "192.0.2.1" }, 60_000)));
  const ok = results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<{ careOfIpv4: string }>).value.careOfIpv4);
  const failed = results.filter((r) => r.status === "rejected").map((r) => ((r as PromiseRejectedResult).reason as ServiceError).code);
  t.is(ok.length, 253, "198.51.100.2-.254: the whole pool but the engine's own .1");
  t.is(new Set(ok).size, 253);
  t.is(failed.length, 147);
  t.true(failed.every((c) => c === status.RESOURCE_EXHAUSTED));
});

test("after kill -9, every acknowledged lease, prefix and binding is still there", async (t) => {
  const dir = tempDir();
  const first = await spawnEngine(dir, { pool: { name: "engine", prefix: "198.18.0.0/22" } });
  t.teardown(async () => { await killHard(first); rmSync(dir, { recursive: true, force: true }); });
  await first.client.heartbeat(hostOn(6, "h6"));
  await first.client.heartbeat(hostOn(4, "h4"));
  const c6 = await first.client.allocateCareOf({ hostId: "h4", vmId: "sv6", homeAddress: "2001:db8:1::2" });
  const m = await first.client.registerMigration({
    vmId: "sv6", homeAddress: "2001:db8:1::2", homeAgent: "2001:db8:1::1", sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: c6.careOfIpv4, careOfIpv6: c6.careOfIpv6,
  });
  // 64 agents allocate back to back; the engine is killed while their calls are in flight.
  const acked = new Map<string, string>();
  let next = 0;
  let refused = 0;
  const agents = Array.from({ length: 64 }, async () => {
    while (next < 1000) {
      const vm = `vm-${next++}`;
      try {
        acked.set(vm, (await first.client.allocateCareOf({ hostId: "h6", vmId: vm, homeAddress: "192.0.2.1" }, 30_000)).careOfIpv4);
      } catch {
        refused++;
        return;
      }
    }
  });
  while (acked.size < 200) await new Promise((r) => setTimeout(r, 1));
  await killHard(first);
  await Promise.all(agents);
  t.true(refused > 0, "some calls were still in flight when the engine died");
  t.log(`${acked.size} allocations acknowledged before kill -9, ${refused} calls cut off`);

  const second = await spawnEngine(dir, { pool: { name: "engine", prefix: "198.18.0.0/22" } });
  t.teardown(() => killHard(second));
  const leases = new Map((await second.client.listLeases({})).leases.map((l) => [l.holder, l.address]));
  for (const [vm, address] of acked) t.is(leases.get(vm), address, `acknowledged lease of ${vm}`);
  t.is(leases.get("sv6"), c6.careOfIpv4);
  const bindings = (await second.client.listBindings({})).bindings;
  t.is(bindings.length, 1);
  t.is(bindings[0].migrationId, m.migrationId);
  t.is((await second.client.getRuleTable({})).revision, m.ruleRevision);
  t.is((await second.client.requestPrefix({ hostId: "h4", ipv4Segment: "192.0.2.0/24" })).ipv6Prefix, "2001:db8:3::/96");
  // The VM asking again after the crash gets the same address, and no address was handed out twice.
  const again = await second.client.allocateCareOf({ hostId: "h6", vmId: [...acked.keys()][0], homeAddress: "192.0.2.1" });
  t.is(again.careOfIpv4, [...acked.values()][0]);
  const all = (await second.client.listLeases({})).leases.map((l) => l.address);
  t.is(new Set(all).size, all.length);
});

test("a second engine on the same SQLite file refuses to start, naming the file; the first serves on; after the first is killed, the file opens again", async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await spawnEngine(dir);
  t.teardown(() => killHard(first));
  await first.client.heartbeat(hostOn(6, "h6"));
  const lease = await first.client.allocateCareOf({ hostId: "h6", vmId: "v", homeAddress: "192.0.2.1" });
  const second = spawnSync(process.execPath, ["bin/mip46-engine.js", "--config", join(dir, "engine.yaml"), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"], { encoding: "utf8", timeout: 60_000 });
  t.is(second.status, 1);
  const last = JSON.parse(second.stderr.trim().split("\n").at(-1)!) as { msg: string; error: string };
  t.is(last.msg, "engine could not start");
  t.regex(last.error, /^store\.path: .*engine\.db is in use by another engine/);
  t.deepEqual((await first.client.listLeases({})).leases.map((l) => l.address), [lease.careOfIpv4], "the first engine serves on, its lease intact");
  await killHard(first);
  const again = await spawnEngine(dir);
  t.teardown(() => killHard(again));
  t.deepEqual((await again.client.listLeases({})).leases.map((l) => l.address), [lease.careOfIpv4], "the file opens again once its engine is gone");
});
