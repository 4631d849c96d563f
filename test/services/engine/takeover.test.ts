// Care-of leases held for another host (issue 11 §1): taken over only for a migration the engine
// knows of, on the embedded store and on a real etcd cluster, through the real gRPC API, with the
// whole stored state compared around each refusal.
import test from "ava";
import { status } from "@grpc/grpc-js";
import { HostState } from "../../../gen/mip46/v1/control.js";
import { failure, hostOn, storedState } from "../../../harness/engine.js";
import { beatListing, engineOn, engineOnWith, parts, STORES, useEtcd } from "./integrity-harness.js";

useEtcd(test);

for (const kind of STORES) {
  test(`${kind}: AllocateCareOf takes over a lease another host holds only for a migration the engine knows of; across pools the binding goes with the address`, async (t) => {
    // h5 is on a second IPv4 segment: an IPv4 VM's care-of address there comes from its range, not the engine pool.
    const e = await engineOnWith(t, kind, {
      segments: [
        { name: "ipv4-lab", network: "192.0.2.0/24", prefix: "2001:db8:3::/96", careOfRange: "192.0.2.100-192.0.2.199" },
        { name: "ipv4-b", network: "203.0.113.0/24", prefix: "2001:db8:4::/96", careOfRange: "203.0.113.100-203.0.113.199" },
      ],
    });
    const h6 = hostOn(6, "h6");
    await e.client.heartbeat(h6);
    await e.client.heartbeat(hostOn(6, "h7", 11));
    await e.client.heartbeat({ ...hostOn(4, "h5"), addresses: ["203.0.113.10/24"] });
    const reg = (vmId: string, home: string, hostId: string, c: { careOfIpv4: string; careOfIpv6: string }) =>
      e.client.registerMigration({ vmId, homeAddress: home, homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: hostId, careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
    // b and c are bound at h6, which lists them; p is prepared toward h6 (its care-of lease and rules, no binding).
    const cb = await e.client.allocateCareOf({ hostId: "h6", vmId: "b", homeAddress: "192.0.2.7" });
    await reg("b", "192.0.2.7", "h6", cb);
    const cc = await e.client.allocateCareOf({ hostId: "h6", vmId: "c", homeAddress: "192.0.2.8" });
    await reg("c", "192.0.2.8", "h6", cc);
    const cp = await e.client.allocateCareOf({ hostId: "h6", vmId: "p", homeAddress: "192.0.2.9" });
    t.true((await e.client.prepareMigration({ vmId: "p", homeAddress: "192.0.2.9", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: cp.careOfIpv4, careOfIpv6: cp.careOfIpv6 })).prepared);
    await e.client.heartbeat(beatListing(h6, [["b", "192.0.2.7"], ["c", "192.0.2.8"]]));
    const start = await parts(e);
    const before = await storedState(e.client);
    const refusals: [string, Parameters<typeof e.client.allocateCareOf>[0], RegExp][] = [
      ["a bound VM its host lists, same pool", { hostId: "h7", vmId: "b", homeAddress: "192.0.2.7" },
        new RegExp(`^vm_id: vm b is bound at host h6 \\(migration [0-9a-f-]+\\) with care-of address ${cb.careOfIpv4}, and that host's heartbeat lists it`)],
      ["a bound VM its host lists, another pool", { hostId: "h5", vmId: "c", homeAddress: "192.0.2.8" }, /^vm_id: vm c is bound at host h6 .* heartbeat lists it/],
      ["a VM prepared toward another host", { hostId: "h7", vmId: "p", homeAddress: "192.0.2.9" },
        new RegExp(`^vm_id: vm p's care-of address ${cp.careOfIpv4} is held for host h6, where its migration is prepared: one migration per VM at a time`)],
    ];
    for (const [what, req, details] of refusals) {
      const got = await failure(e.client.allocateCareOf(req));
      t.is(got.code, status.FAILED_PRECONDITION, what);
      t.regex(got.details, details, what);
    }
    t.is(await storedState(e.client), before, "no refused AllocateCareOf changed the stored state");
    t.deepEqual((await e.client.listLeases({ holder: "b" })).leases.map((l) => l.hostId), ["h6"]);

    // h6 no longer lists b and c (the hypervisor moved them): h7 takes b's lease over, same pool, same address; b's binding keeps pointing at it.
    await e.client.heartbeat(h6);
    const taken = await e.client.allocateCareOf({ hostId: "h7", vmId: "b", homeAddress: "192.0.2.7" });
    t.is(taken.careOfIpv4, cb.careOfIpv4);
    const afterSame = await parts(e);
    t.deepEqual(afterSame, start, "the same leases, bindings, rules and cooling");
    t.deepEqual((await e.client.listLeases({ holder: "b" })).leases.map((l) => l.hostId), ["h7"]);
    t.is((await reg("b", "192.0.2.7", "h7", taken)).returnedHome, false, "and h7 registers the move");
    t.deepEqual((await e.client.listBindings({ vmId: "b" })).bindings.map((x) => x.hostId), ["h7"]);

    // h5 takes c's lease over from another pool: the engine-pool address cools, and c's binding and rules go with it.
    const c4 = await e.client.allocateCareOf({ hostId: "h5", vmId: "c", homeAddress: "192.0.2.8" });
    t.regex(c4.careOfIpv4, /^203\.0\.113\./);
    const afterPool = await parts(e);
    t.deepEqual(afterPool.bindings, afterSame.bindings.filter((x) => !x.startsWith("c@")).map((x) => (x.startsWith("b@") ? `b@h7 ${cb.careOfIpv4} ` : x)));
    t.deepEqual(afterPool.rules, afterSame.rules.filter((k) => !k.startsWith("vm/c/")));
    t.true(afterSame.rules.some((k) => k.startsWith("vm/c/")));
    t.deepEqual(afterPool.leases, [...afterSame.leases.filter((l) => !l.startsWith(`${cc.careOfIpv4} `)), `${c4.careOfIpv4} c LEASE_PURPOSE_CARE_OF`].sort());
    t.deepEqual(afterPool.cooling, { ...afterSame.cooling, engine: afterSame.cooling.engine + 1 });
    t.true(e.logs.some((l) => l.msg === "care-of lease taken over" && l.vmId === "c" && l.bindingRemoved === true));
  });

  test(`${kind}: a VM bound at a host after that host's last heartbeat counts as running there: another host's AllocateCareOf is refused with reason VM_RUNS_AT_SOURCE until the host beats without it`, async (t) => {
    const e = await engineOn(t, kind);
    const h6 = hostOn(6, "h6");
    await e.client.heartbeat(h6);
    await e.client.heartbeat(hostOn(6, "h7", 11));
    // b is registered at h6 after h6's last beat (a later millisecond), so h6 has not listed it yet.
    await new Promise((r) => setTimeout(r, 5));
    const cb = await e.client.allocateCareOf({ hostId: "h6", vmId: "b", homeAddress: "192.0.2.7" });
    await e.client.registerMigration({ vmId: "b", homeAddress: "192.0.2.7", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: cb.careOfIpv4, careOfIpv6: cb.careOfIpv6 });
    const before = await storedState(e.client);
    const got = await failure(e.client.allocateCareOf({ hostId: "h7", vmId: "b", homeAddress: "192.0.2.7" }));
    t.is(got.code, status.FAILED_PRECONDITION);
    t.is(got.reason, "VM_RUNS_AT_SOURCE", "the reason in the mip46-reason trailer");
    t.regex(got.details, /^vm_id: vm b is bound at host h6 .* and it was bound there after that host's last heartbeat: /);
    t.is(await storedState(e.client), before, "the refusal changed nothing");
    // A refusal of another kind carries no reason.
    const unknown = await failure(e.client.allocateCareOf({ hostId: "h9", vmId: "x", homeAddress: "192.0.2.9" }));
    t.is(unknown.code, status.FAILED_PRECONDITION);
    t.is(unknown.reason, undefined);
    // h6 beats without b (the VM left), a later millisecond than the binding: h7 takes the lease over, the same address.
    await new Promise((r) => setTimeout(r, 5));
    await e.client.heartbeat(h6);
    const taken = await e.client.allocateCareOf({ hostId: "h7", vmId: "b", homeAddress: "192.0.2.7" });
    t.is(taken.careOfIpv4, cb.careOfIpv4);
    t.deepEqual((await e.client.listLeases({ holder: "b" })).leases.map((l) => l.hostId), ["h7"]);
  });
}

for (const kind of STORES) {
  test(`${kind}: a migration the engine knows of lets another host take a bound VM's lease over: its advice, or the VM's host down`, async (t) => {
    // VMs rest no time after a move, so the registrations below do not hold back the advice.
    const e = await engineOnWith(t, kind, {
      hosts: { heartbeatIntervalSeconds: 0.1, downAfterSeconds: 2 },
      migration: { highWatermark: 0.85, lowWatermark: 0.7, windowSeconds: 0, vmCooldownSeconds: 0 },
    });
    const gib = 1n << 30n;
    const cool = { cpuUsedCores: 1, cpuTotalCores: 16, memoryUsedBytes: 2n * gib, memoryTotalBytes: 64n * gib };
    const h6 = hostOn(6, "h6");
    await e.client.heartbeat({ ...hostOn(6, "h7", 11), resources: cool });
    const reg = async (vmId: string, home: string) => {
      const c = await e.client.allocateCareOf({ hostId: "h6", vmId, homeAddress: home });
      await e.client.registerMigration({ vmId, homeAddress: home, homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
      return c;
    };
    await e.client.heartbeat(h6);
    const cbig = await reg("big", "192.0.2.51");
    await reg("small", "192.0.2.50");
    // h6 runs both and is hot: the engine advises moving big to h7 (the leader's duty: on etcd once it leads).
    const hot = {
      ...h6, resources: { cpuUsedCores: 7.6, cpuTotalCores: 8, memoryUsedBytes: 8n * gib, memoryTotalBytes: 32n * gib },
      vms: [{ vmId: "small", homeAddress: "192.0.2.50", cpuUsedCores: 0.2, memoryUsedBytes: gib }, { vmId: "big", homeAddress: "192.0.2.51", cpuUsedCores: 3, memoryUsedBytes: 4n * gib }],
    };
    let advice = (await e.client.heartbeat(hot)).advice;
    for (let i = 0; advice.length === 0 && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await e.client.heartbeat({ ...hostOn(6, "h7", 11), resources: cool });
      advice = (await e.client.heartbeat(hot)).advice;
    }
    t.like(advice[0], { vmId: "big", sourceHostId: "h6", destinationHostId: "h7" });
    const refused = await failure(e.client.allocateCareOf({ hostId: "h7", vmId: "small", homeAddress: "192.0.2.50" }));
    t.regex(refused.details, /^vm_id: vm small is bound at host h6 .* heartbeat lists it/, "no advice sends small to h7");
    const before = await parts(e);
    const taken = await e.client.allocateCareOf({ hostId: "h7", vmId: "big", homeAddress: "192.0.2.51" });
    t.is(taken.careOfIpv4, cbig.careOfIpv4, "the advised destination takes big's lease over, the same address");
    t.deepEqual(await parts(e), before, "and nothing else changes: big's binding at h6 keeps pointing at it until h7 registers");
    t.deepEqual((await e.client.listLeases({ holder: "big" })).leases.map((l) => l.hostId), ["h7"]);
    t.true(e.logs.some((l) => l.msg === "care-of lease taken over" && l.vmId === "big" && l.why === "advice"));
    // h6, where big is bound and still runs, renewing meanwhile: the same lease, renewed for h7.
    const renewed = await e.client.allocateCareOf({ hostId: "h6", vmId: "big", homeAddress: "192.0.2.51" });
    t.like(renewed, { careOfIpv4: cbig.careOfIpv4, careOfIpv6: cbig.careOfIpv6 });
    t.deepEqual((await e.client.listLeases({ holder: "big" })).leases.map((l) => l.hostId), ["h7"]);
    t.deepEqual(await parts(e), before);
    // The move is cancelled: h7's abort gives the lease back to h6, where big stays bound; then h7 takes it over again.
    t.deepEqual((await e.client.abortMigration({ vmId: "big", hostId: "h7" })).releasedAddresses, []);
    t.deepEqual((await e.client.listLeases({ holder: "big" })).leases.map((l) => l.hostId), ["h6"]);
    t.deepEqual(await parts(e), before);
    await e.client.allocateCareOf({ hostId: "h7", vmId: "big", homeAddress: "192.0.2.51" });

    // h6 falls silent and is marked down: small's lease may go to h7 too.
    let h6State = 0;
    for (let i = 0; h6State !== HostState.HOST_STATE_DOWN && i < 300; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await e.client.heartbeat({ ...hostOn(6, "h7", 11), resources: cool });
      h6State = (await e.client.listHosts({ hostId: "h6" })).hosts[0].state;
    }
    await e.client.allocateCareOf({ hostId: "h7", vmId: "small", homeAddress: "192.0.2.50" });
    t.deepEqual((await e.client.listLeases({ holder: "small" })).leases.map((l) => l.hostId), ["h7"]);
    t.deepEqual(await parts(e), before);
    t.true(e.logs.some((l) => l.msg === "care-of lease taken over" && l.vmId === "small" && l.why === "host down"));
  });
}
