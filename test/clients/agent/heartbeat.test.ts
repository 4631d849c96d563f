// The privileged-VM agent (clients/agent/agent.ts), with the harness of ./harness.ts (a real
// Forwarder as its worker; the engine, hypervisor and wire mocked).
// Heartbeat and migration advice.
import test from "ava";
import type { MigrationHook } from "../../../clients/agent/hypervisor.js";
import type { HeartbeatRequest, MigrationAdvice } from "../../../gen/mip46/v1/control.js";
import { VM_MAC, HOME6, harness, until, fakeTimers, prepared } from "./harness.js";

test.serial("migration advice for this host runs the hook once even while the advice repeats; advice for another source host is ignored; Heartbeat reports the uplink's addresses and the VMs present", async (t) => {
  const timers = fakeTimers(t);
  let advice: MigrationAdvice[] = [];
  const migrations: [string, string][] = [];
  let finish!: () => void;
  const hook: MigrationHook = {
    migrate(vmId, hostId) {
      migrations.push([vmId, hostId]);
      return new Promise<void>((resolve) => (finish = resolve));
    },
  };
  const h = await harness(t, {
    hook, present: [{ port: "tap-v6", bridge: "home" }],
    heartbeat: () => ({ state: 1, networkFamily: 2, network: "2001:db8:1::/64", advice: [...advice], heartbeatIntervalSeconds: 600 }),
  });
  const heartbeats = () => h.calls.filter((c) => c.method === "heartbeat").map((c) => c.request as unknown as HeartbeatRequest);
  t.is(heartbeats().length, 1);
  t.is(heartbeats()[0].hostId, "h6");
  t.deepEqual(heartbeats()[0].addresses, ["2001:db8:1::6/64"]);
  t.deepEqual(heartbeats()[0].vms, [{ vmId: "v6", homeAddress: HOME6, cpuUsedCores: 0, memoryUsedBytes: 0n }]);

  h.present.push({ port: "tap-v4", bridge: "visitor" });
  h.fire({ kind: "attached", port: "tap-v4", bridge: "visitor" });
  await until(() => h.calls.some((c) => c.method === "prepareMigration"), "the prepare");
  timers.tick(600_000);
  await until(() => heartbeats().length === 2, "a heartbeat");
  t.deepEqual(heartbeats()[1].vms.map((v) => v.vmId), ["v6"], "a VM being prepared still runs at its source");
  h.rarp(VM_MAC);
  await until(() => h.calls.some((c) => c.method === "registerMigration"), "the activation");
  advice = [
    { vmId: "v4", sourceHostId: "h6", destinationHostId: "h4", crossProtocol: true, reason: "load", givenAtMs: 0n },
    { vmId: "v6", sourceHostId: "h5", destinationHostId: "h4", crossProtocol: true, reason: "load", givenAtMs: 0n },
  ];
  timers.tick(600_000);
  await until(() => migrations.length === 1, "the hook");
  t.deepEqual(heartbeats()[2].vms.map((v) => v.vmId), ["v4", "v6"], "the VMs that run here, at home or visiting");
  timers.tick(600_000);
  timers.tick(600_000);
  await until(() => heartbeats().length === 5, "two more heartbeats");
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  t.deepEqual(migrations, [["v4", "h4"]], "once, while the hook runs; never for another source host's advice");
  finish();
});
