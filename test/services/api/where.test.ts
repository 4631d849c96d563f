// Where a VM is and why (issue 14 §1), through the generated client against a real engine on
// SQLite: GetVm, ListHosts with each host's VMs, the cause of each migration, ListAdvice and the
// pages of ListMigrations.
import test from "ava";
import { status } from "@grpc/grpc-js";
import { failure, hostOn, startTestEngine, storedState, type TestEngine } from "../../../harness/engine.js";
import { AdviceOutcome, MigrationCause } from "../../../gen/mip46/v1/control.js";

const gib = 1n << 30n;
const vm = (vmId: string, homeAddress: string, cpuUsedCores = 0.5) => ({ vmId, homeAddress, cpuUsedCores, memoryUsedBytes: gib });

/** sv moves from its home host h4 to h6 and registers there, as the hypervisor hook does. */
async function moveSv(e: TestEngine): Promise<string> {
  await e.client.heartbeat({ ...hostOn(6, "h6"), vms: [vm("sv", "192.0.2.1")] });
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "sv", homeAddress: "192.0.2.1" });
  const r = await e.client.registerMigration({ vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
  return r.migrationId;
}

test("GetVm finds a home VM from its host's heartbeat and an away VM from its binding, with its last migration and cause; ListHosts lists each host's VMs", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat({ ...hostOn(4, "h4"), vms: [vm("sv", "192.0.2.1"), vm("other", "192.0.2.9")] });
  const home = await e.client.getVm({ vmId: "sv" });
  t.like(home, { vmId: "sv", hostId: "h4", atHome: true, homeAddress: "192.0.2.1", homeAgent: "", careOfIpv4: "", sinceMs: 0n, reportedBy: ["h4"] });
  t.is(home.lastMigration, undefined, "it never moved");
  t.deepEqual((await e.client.listHosts({})).hosts.map((h) => [h.hostId, h.vms.map((v) => [v.vmId, v.homeAddress])]),
    [["h4", [["sv", "192.0.2.1"], ["other", "192.0.2.9"]]]]);

  const migrationId = await moveSv(e);
  await e.client.heartbeat({ ...hostOn(4, "h4"), vms: [vm("other", "192.0.2.9")] });
  const away = await e.client.getVm({ vmId: "sv" });
  const m = (await e.client.listMigrations({})).migrations[0];
  t.like(away, {
    vmId: "sv", hostId: "h6", atHome: false, homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", careOfIpv4: "198.51.100.2", careOfIpv6: "2001:db8:1::c000:201",
    translatedIpv6: "2001:db8:64::c000:201", sinceMs: m.registeredAtMs, reportedBy: ["h6"],
  });
  t.like(away.lastMigration, { migrationId, sourceHostId: "h4", destinationHostId: "h6", cause: MigrationCause.MIGRATION_CAUSE_HYPERVISOR });
  t.is(away.lastMigration!.advice, undefined, "no advice came before it");
  t.deepEqual((await e.client.listHosts({})).hosts.map((h) => [h.hostId, h.vms.map((v) => v.vmId)]), [["h4", ["other"]], ["h6", ["sv"]]]);

  // Unknown and malformed VM ids are refused, and change nothing.
  const before = await storedState(e.client);
  const unknown = await failure(e.client.getVm({ vmId: "nobody" }));
  t.is(unknown.code, status.NOT_FOUND);
  t.regex(unknown.details, /vm_id: no host reports vm nobody in its heartbeat, and no binding or migration names it/);
  const bad = await failure(e.client.getVm({ vmId: "" }));
  t.is(bad.code, status.INVALID_ARGUMENT);
  t.regex(bad.details, /vm_id/);
  t.is(await storedState(e.client), before);
});

test("a move to the advised host has cause advice, with the hot host's figures; ListAdvice shows the advice pending, then followed", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat({ ...hostOn(6, "cool6"), resources: { cpuUsedCores: 1, cpuTotalCores: 16, memoryUsedBytes: 2n * gib, memoryTotalBytes: 64n * gib } });
  const hot = await e.client.heartbeat({
    ...hostOn(4, "hot4"), resources: { cpuUsedCores: 7.6, cpuTotalCores: 8, memoryUsedBytes: 8n * gib, memoryTotalBytes: 32n * gib },
    vms: [vm("big", "192.0.2.51", 3)],
  });
  t.like(hot.advice[0], { vmId: "big", destinationHostId: "cool6" });
  t.true(hot.advice[0].givenAtMs > 0n, "the advice says when it was given");
  const pending = await e.client.listAdvice({});
  t.deepEqual(pending.advice.map((a) => [a.advice!.vmId, a.outcome, a.migrationId]), [["big", AdviceOutcome.ADVICE_OUTCOME_PENDING, ""]]);

  const c = await e.client.allocateCareOf({ hostId: "cool6", vmId: "big", homeAddress: "192.0.2.51" });
  const r = await e.client.registerMigration({ vmId: "big", homeAddress: "192.0.2.51", homeAgent: "192.0.2.2", sourceHostId: "hot4", destinationHostId: "cool6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
  const m = (await e.client.listMigrations({})).migrations[0];
  t.like(m, { migrationId: r.migrationId, cause: MigrationCause.MIGRATION_CAUSE_ADVICE });
  t.like(m.advice, { vmId: "big", sourceHostId: "hot4", destinationHostId: "cool6", givenAtMs: hot.advice[0].givenAtMs });
  t.regex(m.advice!.reason, /^host hot4 at 95% for 0s or more; cool6 would be at \d+%$/, "with the hot host's figures");
  t.like((await e.client.getVm({ vmId: "big" })).lastMigration, { migrationId: r.migrationId, cause: MigrationCause.MIGRATION_CAUSE_ADVICE });
  const followed = await e.client.listAdvice({ vmId: "big" });
  t.deepEqual(followed.advice.map((a) => [a.advice!.vmId, a.outcome, a.migrationId]), [["big", AdviceOutcome.ADVICE_OUTCOME_FOLLOWED, r.migrationId]]);
  t.deepEqual((await e.client.listAdvice({ vmId: "nobody" })).advice, []);
  t.is((await failure(e.client.listAdvice({ vmId: "bad id" }))).code, status.INVALID_ARGUMENT);

  // Coming home again is the hypervisor's doing: no advice named hot4 for it.
  await e.client.registerMigration({ vmId: "big", homeAddress: "192.0.2.51", homeAgent: "192.0.2.2", sourceHostId: "cool6", destinationHostId: "hot4", careOfIpv4: "", careOfIpv6: "" });
  t.is((await e.client.listMigrations({})).migrations[0].cause, MigrationCause.MIGRATION_CAUSE_HYPERVISOR);
});

test("ListMigrations pages newest first with page tokens (AIP-158); a bad token or size is refused and changes nothing", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(4, "h4"));
  await moveSv(e);
  for (let i = 0; i < 2; i++) {
    await e.client.registerMigration({ vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: "", careOfIpv6: "" });
    await moveSv(e);
  }
  const all = (await e.client.listMigrations({})).migrations;
  t.is(all.length, 5);
  t.is((await e.client.listMigrations({})).nextPageToken, "", "one page holds them all");
  const seen: string[] = [];
  let token = "";
  let pages = 0;
  do {
    const page = await e.client.listMigrations({ pageSize: 2, pageToken: token });
    t.true(page.migrations.length <= 2);
    seen.push(...page.migrations.map((m) => m.migrationId));
    token = page.nextPageToken;
    pages++;
  } while (token !== "");
  t.is(pages, 3);
  t.deepEqual(seen, all.map((m) => m.migrationId), "every migration once, in the same order");
  const before = await storedState(e.client);
  const badToken = await failure(e.client.listMigrations({ pageToken: "not-a-token" }));
  t.is(badToken.code, status.INVALID_ARGUMENT);
  t.regex(badToken.details, /page_token: is not a token this engine gave/);
  const badSize = await failure(e.client.listMigrations({ pageSize: -1 }));
  t.is(badSize.code, status.INVALID_ARGUMENT);
  t.regex(badSize.details, /page_size: must be zero or more, not -1/);
  t.is(await storedState(e.client), before);
});

test("ListLeases, ListBindings and ListHosts filter by host and VM; an empty filter matches all", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat({ ...hostOn(4, "h4"), vms: [vm("other", "192.0.2.9")] });
  await moveSv(e);
  await e.client.allocateCareOf({ hostId: "h6", vmId: "v2", homeAddress: "192.0.2.20" });
  t.deepEqual((await e.client.listLeases({})).leases.map((l) => l.holder), ["sv", "v2"]);
  t.deepEqual((await e.client.listLeases({ holder: "v2" })).leases.map((l) => l.holder), ["v2"]);
  t.deepEqual((await e.client.listLeases({ hostId: "h4" })).leases, []);
  t.deepEqual((await e.client.listBindings({ vmId: "sv" })).bindings.map((b) => b.vmId), ["sv"]);
  t.deepEqual((await e.client.listBindings({ hostId: "h4" })).bindings, []);
  t.deepEqual((await e.client.listHosts({ vmId: "other" })).hosts.map((h) => h.hostId), ["h4"]);
  t.deepEqual((await e.client.listHosts({ hostId: "h6" })).hosts.map((h) => h.hostId), ["h6"]);
  t.deepEqual((await e.client.listHosts({})).hosts.map((h) => h.hostId), ["h4", "h6"]);
});
