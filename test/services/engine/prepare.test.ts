// PrepareMigration / AbortMigration (live migration, issue 9): rules that wait during the
// hypervisor's pre-copy, the same rules at activation (no rule change), and an abort that leaves
// nothing behind. The whole stored state is checked after each call.
import test from "ava";
import { status, type ServiceError } from "@grpc/grpc-js";
import { hostOn, startTestEngine, type TestEngine } from "../../../harness/engine.js";

async function state(e: TestEngine) {
  const [leases, bindings, rules, migrations] = await Promise.all([e.client.listLeases({}), e.client.listBindings({}), e.client.getRuleTable({}), e.client.listMigrations({})]);
  return {
    leases: leases.leases.map((l) => `${l.address} ${l.holder}`).sort(),
    bindings: bindings.bindings.map((b) => `${b.vmId}@${b.hostId}`),
    vmRules: rules.rules.filter((r) => r.key.startsWith("vm/")).map((r) => r.key).sort(),
    revision: rules.revision,
    migrations: migrations.migrations.length,
  };
}

async function code(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as ServiceError).code, details: (e as ServiceError).details };
  }
  throw new Error("call succeeded, but an error was expected");
}

for (const flow of [
  { name: "3.1 (IPv4 VM to an IPv6 host)", host: hostOn(6, "h6"), hostId: "h6", vm: "pv4", home: "192.0.2.1", ha: "192.0.2.2", rules: ["vm/pv4/peer-home-agent", "vm/pv4/peer-vm", "vm/pv4/reencap"], leases: 1 },
  { name: "3.2 (IPv6 VM to an IPv4 host)", host: hostOn(4, "h4"), hostId: "h4", vm: "pv6", home: "2001:db8:1::2", ha: "2001:db8:1::1", rules: ["vm/pv6/mapping", "vm/pv6/peer-home-agent", "vm/pv6/peer-vm-care-of", "vm/pv6/peer-vm-home", "vm/pv6/reencap"], leases: 2 },
]) {
  test(`flow ${flow.name}: PrepareMigration writes the rules and no binding; RegisterMigration then changes no rule`, async (t) => {
    const e = await startTestEngine();
    t.teardown(() => e.stop());
    await e.client.heartbeat(flow.host);
    const c = await e.client.allocateCareOf({ hostId: flow.hostId, vmId: flow.vm, homeAddress: flow.home });
    const req = { vmId: flow.vm, homeAddress: flow.home, homeAgent: flow.ha, sourceHostId: "src", destinationHostId: flow.hostId, careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 };
    const p = await e.client.prepareMigration(req);
    t.true(p.prepared);
    t.false(p.active);
    const prepared = await state(e);
    t.deepEqual(prepared.vmRules, flow.rules, "the VM's rules are in the table");
    t.deepEqual(prepared.bindings, [], "but the VM is not recorded as moved");
    t.is(prepared.migrations, 0);
    t.is(prepared.leases.length, flow.leases);
    const again = await e.client.prepareMigration(req);
    t.is(again.ruleRevision, p.ruleRevision, "a repeated prepare changes nothing");
    t.is(again.translatedIpv4, p.translatedIpv4);

    const m = await e.client.registerMigration(req);
    t.is(m.ruleRevision, p.ruleRevision, "activation pushes no rule: the prepared ones are the binding's");
    t.is(m.translatedIpv4, p.translatedIpv4);
    const active = await state(e);
    t.deepEqual(active.vmRules, flow.rules);
    t.deepEqual(active.bindings, [`${flow.vm}@${flow.hostId}`]);
    t.is(active.migrations, 1);
    const restarted = await e.client.prepareMigration(req);
    t.true(restarted.active, "a prepare after activation (an agent restart) says the binding is this one");
    t.deepEqual(await state(e), active, "and changes nothing");
    const abort = await code(e.client.abortMigration({ vmId: flow.vm, hostId: flow.hostId }));
    t.is(abort.code, status.FAILED_PRECONDITION, "an arrived VM cannot be aborted");
    t.regex(abort.details, /^vm_id: /);
    t.deepEqual(await state(e), active);
  });

  test(`flow ${flow.name}: AbortMigration removes the prepared rules and gives back every lease taken for it`, async (t) => {
    const e = await startTestEngine();
    t.teardown(() => e.stop());
    await e.client.heartbeat(flow.host);
    const before = await state(e);
    const c = await e.client.allocateCareOf({ hostId: flow.hostId, vmId: flow.vm, homeAddress: flow.home });
    await e.client.prepareMigration({ vmId: flow.vm, homeAddress: flow.home, homeAgent: flow.ha, sourceHostId: "src", destinationHostId: flow.hostId, careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
    const a = await e.client.abortMigration({ vmId: flow.vm, hostId: flow.hostId });
    t.is(a.releasedAddresses.length, flow.leases);
    const after = await state(e);
    t.deepEqual({ ...after, revision: 0n }, { ...before, revision: 0n }, "leases, bindings, rules and migrations are as before the prepare");
    t.true(after.revision > before.revision);
    const twice = await e.client.abortMigration({ vmId: flow.vm, hostId: flow.hostId });
    t.deepEqual(twice.releasedAddresses, [], "a second abort is a no-op");
    t.deepEqual(await state(e), after);
  });
}

test("PrepareMigration refuses a care-of address not leased to the VM and a move home, naming the field, and changes nothing", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "pv4", homeAddress: "192.0.2.1" });
  const before = await state(e);
  const base = { vmId: "pv4", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 };
  const wrong = await code(e.client.prepareMigration({ ...base, careOfIpv4: "198.51.100.77" }));
  t.is(wrong.code, status.FAILED_PRECONDITION);
  t.regex(wrong.details, /^care_of_ipv4: /);
  const home = await code(e.client.prepareMigration({ ...base, careOfIpv4: "", careOfIpv6: "" }));
  t.is(home.code, status.INVALID_ARGUMENT);
  t.regex(home.details, /^care_of_ipv4: /);
  const bad = await code(e.client.abortMigration({ vmId: "", hostId: "h6" }));
  t.is(bad.code, status.INVALID_ARGUMENT);
  t.regex(bad.details, /^vm_id: /);
  t.deepEqual(await state(e), before);
});
