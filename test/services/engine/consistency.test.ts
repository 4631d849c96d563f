// Heartbeats that contradict a binding (issue 11 §6): counted, logged once with how to repair,
// and not repaired by the engine; the stored state stays as it was.
import test from "ava";
import { hostOn, startTestEngine, storedState, awayFromHome } from "../../../harness/engine.js";
import { createLogger } from "../../../lib/log.js";
import { contradictions } from "../../../services/engine/consistency.js";
import type { BindingRecord, HostRecord } from "../../../services/store/store.js";

const host = (hostId: string, vms: string[], state: HostRecord["state"] = "up"): HostRecord => ({
  hostId, state, family: 4, network: "192.0.2.0/24", addresses: [], lastSeenMs: 0,
  resources: { cpuUsedCores: 0, cpuTotalCores: 1, memoryUsedBytes: 0, memoryTotalBytes: 1 },
  vms: vms.map((vmId) => ({ vmId, homeAddress: "", cpuUsedCores: 0, memoryUsedBytes: 0 })),
});
const binding = (vmId: string, hostId: string) => ({ vmId, hostId } as BindingRecord);

test("contradictions: only a VM that the bound host does not list while another up host does", (t) => {
  const bindings = [binding("a", "h6"), binding("b", "h6"), binding("c", "h6"), binding("d", "h6")];
  const hosts = [host("h6", ["a"]), host("h4", ["a", "b"]), host("h9", ["c"], "down")];
  // a: listed by its bound host (and h4, as during a live migration); b: only by h4; c: only by a
  // down host; d: by nobody (a host may be silent for a while).
  t.deepEqual(contradictions(bindings, hosts), [{ vmId: "b", boundAt: "h6", reportedBy: ["h4"] }]);
  t.deepEqual(contradictions([], hosts), []);
});

test("a binding the heartbeats contradict is counted and logged once, with the repair to make; the engine changes nothing; once the bound host reports the VM it is clear", async (t) => {
  const lines: Record<string, unknown>[] = [];
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } }, undefined, createLogger({}, "info", (l) => lines.push(JSON.parse(l))));
  t.teardown(() => e.stop());
  await awayFromHome(e.client);
  const metric = async () => Number(/^mip46_bindings_contradicted (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${e.running.metricsPort}/metrics`)).text())?.[1]);
  t.deepEqual(await e.running.consistency.check(), []);
  t.is(await metric(), 0);

  // The home host says sv runs there; the bound host does not list it.
  await e.client.heartbeat({ ...hostOn(4, "h4"), vms: [{ vmId: "sv", homeAddress: "192.0.2.1", cpuUsedCores: 0, memoryUsedBytes: 0n }] });
  const before = await storedState(e.client);
  t.deepEqual(await e.running.consistency.check(), [{ vmId: "sv", boundAt: "h6", reportedBy: ["h4"] }]);
  await e.running.consistency.check();
  t.is(await metric(), 1);
  const warned = lines.filter((l) => l.msg === "binding contradicted by heartbeats");
  t.is(warned.length, 1, "logged once while it lasts");
  t.like(warned[0], { level: "warn", vmId: "sv", boundAt: "h6", reportedBy: ["h4"] });
  t.regex(String(warned[0].repair), /^not repaired automatically: check with mipctl where sv; if it runs at h4, /);
  t.is(await storedState(e.client), before, "nothing repaired behind the operator's back");

  // The bound host lists it too (a live migration's two ends): no contradiction.
  await e.client.heartbeat({ ...hostOn(6, "h6"), vms: [{ vmId: "sv", homeAddress: "192.0.2.1", cpuUsedCores: 0, memoryUsedBytes: 0n }] });
  t.deepEqual(await e.running.consistency.check(), []);
  t.is(await metric(), 0);
});
