// Maintenance (issue 14 §2): CordonHost, UncordonHost and DrainHost against a real engine on SQLite. A
// cordoned host is never advised as a destination; the cordon survives an engine restart; each
// change is audited; bad requests change nothing.
import test from "ava";
import { status } from "@grpc/grpc-js";
import { failure, hostOn, startTestEngine, storedState } from "../../../harness/engine.js";
import type { Logger } from "../../../lib/log.js";
import { MigrationCause } from "../../../gen/mip46/v1/control.js";

const gib = 1n << 30n;
const cool = (hostId: string, family: 4 | 6, n: number, cpuUsedCores: number) =>
  ({ ...hostOn(family, hostId, n), resources: { cpuUsedCores, cpuTotalCores: 16, memoryUsedBytes: 2n * gib, memoryTotalBytes: 64n * gib } });
const hot = (vmId: string) => ({
  ...hostOn(4, "hot4"), resources: { cpuUsedCores: 7.6, cpuTotalCores: 8, memoryUsedBytes: 8n * gib, memoryTotalBytes: 32n * gib },
  vms: [{ vmId, homeAddress: "192.0.2.51", cpuUsedCores: 3, memoryUsedBytes: gib }],
});

function recordingLog(lines: Record<string, unknown>[]): Logger {
  const log: Logger = {
    debug() {}, warn() {}, error() {},
    info(msg: string, fields?: Record<string, unknown>) { lines.push({ msg, ...fields }); },
    child: () => log,
  } as unknown as Logger;
  return log;
}

test("a cordoned host is never advised as a destination, even with the most headroom; the cordon survives a restart; uncordon puts it back", async (t) => {
  const lines: Record<string, unknown>[] = [];
  const e = await startTestEngine({}, undefined, recordingLog(lines));
  // The emptiest host is best6; cordoned, the advice goes to second6 instead.
  await e.client.heartbeat(cool("best6", 6, 20, 0.5));
  await e.client.heartbeat(cool("second6", 6, 21, 3));
  const before = JSON.parse(await storedState(e.client));
  const r = await e.client.cordonHost({ hostId: "best6" });
  t.like(r.host, { hostId: "best6", cordoned: true });
  const after = JSON.parse(await storedState(e.client));
  t.deepEqual(after, { ...before, hosts: before.hosts.map((h: { hostId: string }) => (h.hostId === "best6" ? { ...h, cordoned: true } : h)) },
    "only best6's cordon changed");
  t.like((await e.client.cordonHost({ hostId: "best6" })).host, { cordoned: true }, "again: idempotent");
  t.deepEqual(JSON.parse(await storedState(e.client)), after);
  // A beat of the cordoned host keeps its cordon.
  await e.client.heartbeat(cool("best6", 6, 20, 0.5));
  t.true((await e.client.listHosts({})).hosts.find((h) => h.hostId === "best6")!.cordoned);
  const advised = await e.client.heartbeat(hot("v1"));
  t.deepEqual(advised.advice.map((a) => a.destinationHostId), ["second6"]);
  t.true(lines.some((l) => l.msg === "operator action" && l.what === "CordonHost" && (l.after as { cordoned: boolean }).cordoned === true && l.who === "plaintext"));

  // The engine restarts on the same store: best6 is still cordoned, and still never advised.
  e.client.close();
  await e.running.stop();
  const e2 = await startTestEngine({}, e.dir);
  t.teardown(() => e2.stop());
  t.true((await e2.client.listHosts({})).hosts.find((h) => h.hostId === "best6")!.cordoned, "kept in the store");
  await e2.client.heartbeat(cool("second6", 6, 21, 3));
  await e2.client.heartbeat(cool("best6", 6, 20, 0.5));
  t.deepEqual((await e2.client.heartbeat(hot("v2"))).advice.map((a) => a.destinationHostId), ["second6"]);

  t.like((await e2.client.uncordonHost({ hostId: "best6" })).host, { hostId: "best6", cordoned: false });
  t.false((await e2.client.listHosts({})).hosts.find((h) => h.hostId === "best6")!.cordoned);
  await e2.client.heartbeat(cool("best6", 6, 20, 0.5));
  // The advisor window is 0 in the lab configuration: hot4 may be advised again at once.
  const again = await e2.client.heartbeat({ ...hot("v3"), vms: [{ vmId: "v3", homeAddress: "192.0.2.53", cpuUsedCores: 3, memoryUsedBytes: gib }] });
  t.deepEqual(again.advice.map((a) => a.destinationHostId), ["best6"], "uncordoned, the emptiest host is a destination again");
});

test("CordonHost refuses an unknown or malformed host, naming the field, and changes nothing", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const before = await storedState(e.client);
  const unknown = await failure(e.client.cordonHost({ hostId: "nobody" }));
  t.is(unknown.code, status.NOT_FOUND);
  t.regex(unknown.details, /^host_id: host nobody is unknown/);
  const bad = await failure(e.client.uncordonHost({ hostId: "" }));
  t.is(bad.code, status.INVALID_ARGUMENT);
  t.regex(bad.details, /host_id/);
  t.is(await storedState(e.client), before);
});

test("a drained host is advised to move each VM away, never to a cordoned host; a move that follows has cause operator; progress shows in ListHosts and GetVm", async (t) => {
  const lines: Record<string, unknown>[] = [];
  const e = await startTestEngine({}, undefined, recordingLog(lines));
  t.teardown(() => e.stop());
  await e.client.heartbeat(cool("a6", 6, 20, 0.5));
  await e.client.heartbeat(cool("b6", 6, 21, 2));
  await e.client.heartbeat(cool("c6", 6, 22, 0));
  await e.client.cordonHost({ hostId: "c6" });
  // A cool host, not hot: without the drain it would get no advice.
  const vms = [
    { vmId: "d1", homeAddress: "192.0.2.61", cpuUsedCores: 0.5, memoryUsedBytes: gib },
    { vmId: "d2", homeAddress: "192.0.2.62", cpuUsedCores: 0.5, memoryUsedBytes: gib },
  ];
  const beat = { ...cool("maint4", 4, 30, 1), vms };
  t.deepEqual((await e.client.heartbeat(beat)).advice, [], "no advice before the drain");
  const before = JSON.parse(await storedState(e.client));
  const r = await e.client.drainHost({ hostId: "maint4" });
  t.like(r.host, { hostId: "maint4", cordoned: true, draining: true });
  t.deepEqual(JSON.parse(await storedState(e.client)),
    { ...before, hosts: before.hosts.map((h: { hostId: string }) => (h.hostId === "maint4" ? { ...h, cordoned: true, draining: true } : h)) }, "only maint4's state changed");
  t.true(lines.some((l) => l.msg === "operator action" && l.what === "DrainHost"));

  const advised = await e.client.heartbeat(beat);
  t.deepEqual(advised.advice.map((a) => a.vmId).sort(), ["d1", "d2"], "each VM is advised away");
  t.true(advised.advice.every((a) => a.destinationHostId !== "c6" && a.destinationHostId !== "maint4"), "never to the cordoned host, nor back");
  t.regex(advised.advice[0].reason, /^host maint4 is drained by an operator; \S+ would be at \d+%$/);
  t.deepEqual((await e.client.heartbeat(beat)).advice, [], "not again while the VMs rest");

  // The hook carries out d1's advice: the move has cause operator.
  const d1 = advised.advice.find((a) => a.vmId === "d1")!;
  const c = await e.client.allocateCareOf({ hostId: d1.destinationHostId, vmId: "d1", homeAddress: "192.0.2.61" });
  await e.client.registerMigration({ vmId: "d1", homeAddress: "192.0.2.61", homeAgent: "192.0.2.2", sourceHostId: "maint4", destinationHostId: d1.destinationHostId, careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
  await e.client.heartbeat({ ...beat, vms: [vms[1]] });
  const where = await e.client.getVm({ vmId: "d1" });
  t.like(where, { atHome: false, lastMigration: { cause: MigrationCause.MIGRATION_CAUSE_OPERATOR, destinationHostId: d1.destinationHostId } });
  t.deepEqual((await e.client.listHosts({})).hosts.find((h) => h.hostId === "maint4")!.vms.map((v) => v.vmId), ["d2"], "one VM left");

  t.like((await e.client.uncordonHost({ hostId: "maint4" })).host, { cordoned: false, draining: false });
  t.like((await e.client.listHosts({})).hosts.find((h) => h.hostId === "maint4"), { cordoned: false, draining: false });
});
