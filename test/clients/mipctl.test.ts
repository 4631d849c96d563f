// mipctl as an operator runs it: a separate process against a real engine.
import test from "ava";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { hostOn, startTestEngine, awayFromHome } from "../../harness/engine.js";
import { Binding, GetVmResponse, Host, Lease, LeasePurpose, ListMigrationsResponse } from "../../gen/mip46/v1/control.js";
import { ruleFromMessage } from "../../lib/rules/wire.js";
import { parseOfflineTable } from "../../dataplane/offline/index.js";
import { readFileSync } from "node:fs";
import { credentials } from "@grpc/grpc-js";
import { DataPlaneSyncClient, type EngineMessage } from "../../gen/mip46/v1/dataplane.js";
import { RuleSyncClient } from "../../dataplane/sync/client.js";

const run = promisify(execFile);
const mipctl = (address: string, ...args: string[]) => run(process.execPath, ["bin/mipctl.js", "--engine", address, ...args], { encoding: "utf8" });

test("mipctl lists leases, bindings and rules as tables and JSON, and releases a lease", async (t) => {
  // The calls below take seconds (one process each): the host must not be marked down meanwhile.
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.heartbeat(hostOn(4, "h4")); // sv's home host, which registers it home below
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "sv", homeAddress: "192.0.2.1" });
  await e.client.registerMigration({ vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });

  const leases = (await mipctl(e.address, "leases")).stdout;
  t.regex(leases, /^ADDRESS\s+POOL\s+HOLDER\s+PURPOSE\s+HOST\s+EXPIRES$/m);
  t.regex(leases, /^198\.51\.100\.2\s+engine\s+sv\s+care-of\s+h6\s+\d{4}-/m);
  const json = JSON.parse((await mipctl(e.address, "--json", "bindings")).stdout);
  t.like(json[0], { vmId: "sv", careOfIpv4: "198.51.100.2", careOfIpv6: "2001:db8:1::c000:201" });
  t.regex((await mipctl(e.address, "rules")).stdout, /vm\/sv\/reencap\s+reencap 4in4->4in6\s+198\.51\.100\.2 -> 2001:db8:1::c000:201/);
  t.regex((await mipctl(e.address, "hosts")).stdout, /^h6\s+up\s+ipv6\s+2001:db8:1::\/64/m);
  t.regex((await mipctl(e.address, "prefixes")).stdout, /^192\.0\.2\.0\/24\s+2001:db8:3::\/96\s+192\.0\.2\.100-192\.0\.2\.199$/m);
  t.regex((await mipctl(e.address, "pools")).stdout, /^engine\s+engine\s+198\.51\.100\.2\s+198\.51\.100\.254\s+253\s+1\s+0\s+252$/m);

  // sv's binding points at 198.51.100.2: its lease is not released while it does.
  const inUse = await t.throwsAsync(mipctl(e.address, "release", "198.51.100.2")) as Error & { code: number; stderr: string };
  t.is(inUse.code, 1);
  t.regex(inUse.stderr, /198\.51\.100\.2 is the care-of address of vm sv's binding at h6/);
  t.is((await e.client.listLeases({})).leases.length, 1, "the lease is still held");
  await e.client.registerMigration({ vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: "", careOfIpv6: "" });
  await e.client.allocateCareOf({ hostId: "h6", vmId: "sv2", homeAddress: "192.0.2.3" });
  t.regex((await mipctl(e.address, "release", "198.51.100.3")).stdout, /^released 198\.51\.100\.3; it cools down until /);
  t.is((await e.client.listLeases({})).leases.length, 0);
  const err = await t.throwsAsync(mipctl(e.address, "release", "198.51.100.2")) as Error & { code: number; stderr: string };
  t.is(err.code, 1);
  t.regex(err.stderr, /no lease holds 198\.51\.100\.2/);
  const usage = await t.throwsAsync(mipctl(e.address, "frobnicate")) as Error & { code: number; stderr: string };
  t.is(usage.code, 2);
  t.regex(usage.stderr, /unknown command 'frobnicate'/);
});

test("mipctl release --force removes the binding that uses the lease, with its rules, in one change; --force goes with release only", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "sv", homeAddress: "192.0.2.1" });
  await e.client.registerMigration({ vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
  const rulesBefore = (await e.client.getRuleTable({})).rules.map((r) => r.key);
  t.true(rulesBefore.some((k) => k.startsWith("vm/sv/")));
  const usage = await t.throwsAsync(mipctl(e.address, "--force", "pools")) as Error & { code: number; stderr: string };
  t.is(usage.code, 2);
  t.regex(usage.stderr, /--force goes with release only/);
  t.regex((await mipctl(e.address, "release", "--force", c.careOfIpv4)).stdout, /^released 198\.51\.100\.2 \(and any binding that used it\); it cools down until /);
  t.deepEqual(JSON.parse((await mipctl(e.address, "--json", "bindings")).stdout), [], "the binding is gone");
  t.deepEqual(JSON.parse((await mipctl(e.address, "--json", "leases")).stdout), [], "so is the lease");
  const rules = JSON.parse((await mipctl(e.address, "--json", "rules")).stdout) as { rules: { key: string }[] };
  t.deepEqual(rules.rules.map((r) => r.key), rulesBefore.filter((k) => !k.startsWith("vm/sv/")), "and the VM's rules; the rest are kept");
});

test("mipctl map, eam and unmap: a correspondent's mapping made, shown as jool_siit's eamt shows it, and given back; the whole lease and rule state after each", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const mapped = (await mipctl(e.address, "map", "2001:db8:c::10")).stdout;
  const ipv4 = /is mapped to (\S+);/.exec(mapped)?.[1];
  t.truthy(ipv4, mapped);
  const leases = (await e.client.listLeases({})).leases;
  t.deepEqual(leases.map((l) => [l.address, l.holder]), [[ipv4, "2001:db8:c::10"]], "one correspondent lease");
  const rules = (await e.client.getRuleTable({})).rules.filter((r) => r.kind?.$case === "addressMapping");
  t.is(rules.length, 1);
  t.regex((await mipctl(e.address, "eam")).stdout, new RegExp(`^2001:db8:c::10/128\\s+${ipv4!.replaceAll(".", "\\.")}/32$`, "m"));
  t.is((await mipctl(e.address, "eam", "--csv")).stdout, `IPv6 Prefix,IPv4 Prefix\n2001:db8:c::10/128,${ipv4}/32\n`);
  t.deepEqual(JSON.parse((await mipctl(e.address, "--json", "eam")).stdout), [{ ipv6: "2001:db8:c::10/128", ipv4: `${ipv4}/32` }]);

  t.regex((await mipctl(e.address, "unmap", "2001:db8:c::10")).stdout, new RegExp(`its mapping to ${ipv4!.replaceAll(".", "\\.")} is given back`));
  t.deepEqual((await e.client.listLeases({})).leases, [], "no lease left");
  t.false((await e.client.getRuleTable({})).rules.some((r) => r.kind?.$case === "addressMapping"), "no mapping rule left");
  t.is((await mipctl(e.address, "eam", "--csv")).stdout, "IPv6 Prefix,IPv4 Prefix\n");
  const again = await t.throwsAsync(mipctl(e.address, "unmap", "2001:db8:c::10")) as Error & { code: number; stderr: string };
  t.is(again.code, 1);
  t.regex(again.stderr, /2001:db8:c::10: no correspondent mapping/);
  const bad = await t.throwsAsync(mipctl(e.address, "map", "192.0.2.1")) as Error & { code: number; stderr: string };
  t.is(bad.code, 1);
  t.regex(bad.stderr, /^mipctl: ipv6_address: /m);
  t.deepEqual((await e.client.listLeases({})).leases, [], "a refused map changes nothing");
});

test("mipctl --engine A,B takes every replica: with the first one down, the call goes to the next", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  // 127.0.0.1:9 (discard) has nothing listening: refused at once, then the next replica answers.
  const out = (await mipctl(`127.0.0.1:9,${e.address}`, "pools")).stdout;
  t.regex(out, /^engine\s+engine\s/m);
  // Nothing listens at all: the error says so, and is not taken for an engine that wants TLS.
  const down = await t.throwsAsync(mipctl("127.0.0.1:9", "pools")) as Error & { code: number; stderr: string };
  t.is(down.code, 1);
  t.notRegex(down.stderr, /wants TLS/);
  t.regex(down.stderr, /^mipctl: /);
});

test("mipctl where, hosts, migrations, advice, cordon, drain and uncordon: a home VM found from its host's heartbeat, a moved one with its cause; --json parsed back", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  const gib = 1n << 30n;
  await e.client.heartbeat({ ...hostOn(6, "cool6"), resources: { cpuUsedCores: 1, cpuTotalCores: 16, memoryUsedBytes: 2n * gib, memoryTotalBytes: 64n * gib } });
  const hot = await e.client.heartbeat({
    ...hostOn(4, "hot4"), resources: { cpuUsedCores: 7.6, cpuTotalCores: 8, memoryUsedBytes: 8n * gib, memoryTotalBytes: 32n * gib },
    vms: [{ vmId: "big", homeAddress: "192.0.2.51", cpuUsedCores: 3, memoryUsedBytes: gib }],
  });
  t.is(hot.advice.length, 1);
  const home = (await mipctl(e.address, "where", "big")).stdout;
  t.regex(home, /^vm big on hot4, at home$/m);
  t.regex(home, /^home address: 192\.0\.2\.51$/m);
  t.regex(home, /^last migration: -$/m);
  t.regex((await mipctl(e.address, "hosts")).stdout, /^hot4\s+hot\s+ipv4\s+192\.0\.2\.0\/24\s+7\.6\/8\s+25%\s+big\s/m);
  t.regex((await mipctl(e.address, "advice")).stdout, /^\S+\s+big\s+hot4\s+cool6\s+pending\s+-\s+host hot4 at 95%/m);

  const c = await e.client.allocateCareOf({ hostId: "cool6", vmId: "big", homeAddress: "192.0.2.51" });
  const r = await e.client.registerMigration({ vmId: "big", homeAddress: "192.0.2.51", homeAgent: "192.0.2.2", sourceHostId: "hot4", destinationHostId: "cool6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
  await e.client.heartbeat({ ...hostOn(6, "cool6"), vms: [{ vmId: "big", homeAddress: "192.0.2.51", cpuUsedCores: 3, memoryUsedBytes: gib }] });
  const away = (await mipctl(e.address, "where", "big")).stdout;
  t.regex(away, /^vm big on cool6, away \(reported by cool6, hot4\)$/m, "hot4 still lists it, as during a live migration: the bound host is where it runs");
  t.regex(away, /^home agent: 192\.0\.2\.2$/m);
  t.regex(away, new RegExp(`^last migration: ${r.migrationId} hot4 -> cool6 at \\S+, cause advice \\(host hot4 at 95%`, "m"));
  const where = JSON.parse((await mipctl(e.address, "--json", "where", "big")).stdout);
  t.false("atHome" in where, "away: proto3 JSON leaves a false flag out");
  t.like(where, { vmId: "big", hostId: "cool6", careOfIpv4: c.careOfIpv4, lastMigration: { migrationId: r.migrationId, cause: "MIGRATION_CAUSE_ADVICE" } });
  t.regex((await mipctl(e.address, "migrations")).stdout, new RegExp(`^${r.migrationId}\\s+big\\s+hot4\\s+cool6\\s.*\\sadvice \\(host hot4 at 95%`, "m"));
  const migrations = JSON.parse((await mipctl(e.address, "--json", "migrations", "--page-size", "1")).stdout);
  t.is(migrations.migrations.length, 1);
  t.is(migrations.nextPageToken, undefined, "the last page: proto3 JSON leaves an empty token out");
  const advice = JSON.parse((await mipctl(e.address, "--json", "advice", "big")).stdout);
  t.like(advice[0], { outcome: "ADVICE_OUTCOME_FOLLOWED", migrationId: r.migrationId, advice: { vmId: "big", destinationHostId: "cool6" } });

  t.deepEqual(JSON.parse((await mipctl(e.address, "--json", "hosts", "--vm", "big")).stdout).map((h: { hostId: string }) => h.hostId), ["cool6", "hot4"], "both list big (a live migration's two ends)");
  t.deepEqual(JSON.parse((await mipctl(e.address, "--json", "bindings", "--host", "hot4")).stdout), []);
  t.deepEqual(JSON.parse((await mipctl(e.address, "--json", "leases", "--vm", "big")).stdout).map((l: { holder: string }) => l.holder), ["big"]);
  const unknown = await t.throwsAsync(mipctl(e.address, "where", "nobody")) as Error & { code: number; stderr: string };
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no host reports vm nobody/);
  const usage = await t.throwsAsync(mipctl(e.address, "where")) as Error & { code: number; stderr: string };
  t.is(usage.code, 2);
  t.regex(usage.stderr, /where takes one VM_ID/);
  const size = await t.throwsAsync(mipctl(e.address, "migrations", "--page-size", "x")) as Error & { code: number; stderr: string };
  t.is(size.code, 2);

  t.regex((await mipctl(e.address, "cordon", "cool6")).stdout, /^host cool6 cordoned: no VM will be advised to move to it$/m);
  t.regex((await mipctl(e.address, "hosts")).stdout, /^cool6\s.*\scordoned$/m);
  t.true((await e.client.listHosts({})).hosts.find((h) => h.hostId === "cool6")!.cordoned);
  const uncordoned = JSON.parse((await mipctl(e.address, "--json", "uncordon", "cool6")).stdout);
  t.like(uncordoned, { hostId: "cool6" });
  t.false("cordoned" in uncordoned, "proto3 JSON leaves a false flag out");
  t.false((await e.client.listHosts({})).hosts.find((h) => h.hostId === "cool6")!.cordoned);
  t.regex((await mipctl(e.address, "drain", "cool6")).stdout, /^host cool6 draining: each of its VMs \(1 now\) is advised to move away; see mipctl hosts$/m);
  t.regex((await mipctl(e.address, "hosts")).stdout, /^cool6\s.*\sdraining \(1 left\)$/m);
  t.like((await e.client.listHosts({})).hosts.find((h) => h.hostId === "cool6"), { cordoned: true, draining: true });
  await mipctl(e.address, "uncordon", "cool6");
  t.like((await e.client.listHosts({})).hosts.find((h) => h.hostId === "cool6"), { cordoned: false, draining: false });
});

test("mipctl --json prints canonical proto3 JSON (enum names, 64-bit integers as strings), which the generated fromJSON reads back to the RPC's answer; rules --json is an offline table's rules", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await awayFromHome(e.client);
  await e.client.mapCorrespondent({ ipv6Address: "2001:db8:c::10" });

  const leases = JSON.parse((await mipctl(e.address, "--json", "leases")).stdout) as Record<string, unknown>[];
  const careOf = leases.find((l) => l.holder === "sv")!;
  t.is(careOf.purpose, "LEASE_PURPOSE_CARE_OF", "an enum by its name");
  t.regex(String(careOf.expiresAtMs), /^\d+$/, "an int64 as a string of digits");
  t.is(typeof careOf.expiresAtMs, "string");
  const rpc = await e.client.listLeases({});
  t.deepEqual(leases.map((l) => Lease.fromJSON(l)), rpc.leases, "read back, the leases are the RPC's");
  t.is(leases.filter((l) => l.purpose === "LEASE_PURPOSE_CORRESPONDENT").length, rpc.leases.filter((l) => l.purpose === LeasePurpose.LEASE_PURPOSE_CORRESPONDENT).length);

  const bindings = JSON.parse((await mipctl(e.address, "--json", "bindings")).stdout) as unknown[];
  t.deepEqual(bindings.map((b) => Binding.fromJSON(b)), (await e.client.listBindings({})).bindings);
  const hosts = JSON.parse((await mipctl(e.address, "--json", "hosts")).stdout) as Record<string, unknown>[];
  t.deepEqual(hosts.map((h) => h.networkFamily).sort(), ["NETWORK_FAMILY_IPV4", "NETWORK_FAMILY_IPV6"]);
  t.deepEqual(hosts.map((h) => Host.fromJSON(h).hostId).sort(), ["h4", "h6"]);
  const where = JSON.parse((await mipctl(e.address, "--json", "where", "sv")).stdout);
  t.deepEqual(GetVmResponse.fromJSON(where), await e.client.getVm({ vmId: "sv" }));
  const migrations = JSON.parse((await mipctl(e.address, "--json", "migrations")).stdout);
  t.is(migrations.migrations[0].cause, "MIGRATION_CAUSE_HYPERVISOR");
  t.deepEqual(ListMigrationsResponse.fromJSON(migrations), await e.client.listMigrations({ pageSize: 0, pageToken: "" }));

  // The rules as the offline table file holds them: a table made of them and a worker's
  // settings is accepted whole, rule for rule the engine's.
  const table = JSON.parse((await mipctl(e.address, "--json", "rules")).stdout) as { revision: string; rules: unknown[] };
  const live = await e.client.getRuleTable({});
  t.is(table.revision, live.revision.toString());
  t.true(table.rules.some((r) => (r as { kind: string }).kind === "address-mapping") && table.rules.some((r) => (r as { kind: string }).kind === "reencap-4in4-to-4in6"));
  const worker = (JSON.parse(readFileSync("dataplane/offline/example-table.json", "utf8")) as { worker: unknown }).worker;
  const parsed = parseOfflineTable({ revision: table.revision, worker, rules: table.rules });
  t.is(parsed.revision, live.revision);
  t.deepEqual(parsed.rules, live.rules.map((m) => ruleFromMessage(m)));
});

test("mipctl workers and wait: each connected worker with its applied revision and lag; wait and --wait return once every worker applied the revision, and time out naming the one behind", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  // w1 is the worker's own sync client; w2 acknowledges only what the test tells it to.
  const sync = new RuleSyncClient({ workerId: "w1", engines: [e.address], onSnapshot: () => undefined, onDelta: () => undefined });
  sync.start();
  t.teardown(() => sync.stop());
  const raw = new DataPlaneSyncClient(e.address, credentials.createInsecure());
  const stream = raw.syncRules();
  t.teardown(() => { stream.cancel(); raw.close(); });
  const sent: bigint[] = [];
  stream.on("data", (d: EngineMessage) => {
    if (d.message?.$case === "inSync" || d.message?.$case === "delta") sent.push(d.message.value.revision);
  });
  stream.on("error", () => undefined);
  stream.write({ message: { $case: "hello", value: { workerId: "w2", appliedRevision: 0n, appliedEpoch: "" } } });
  const ack = (revision: bigint) => stream.write({ message: { $case: "ack", value: { revision } } });
  const until = async (cond: () => boolean | Promise<boolean>) => {
    for (const end = Date.now() + 10_000; !(await cond());) {
      if (Date.now() > end) throw new Error("condition not met in time");
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until(() => sent.length === 1 && sync.connected);
  ack(sent[0]);
  const start = (await e.client.getRuleTable({})).revision;
  await until(async () => (await e.client.listWorkers({})).workers.every((w) => w.appliedRevision === start));
  t.regex((await mipctl(e.address, "wait")).stdout, new RegExp(`^revision ${start} applied by w1, w2$`, "m"), "nothing pending: at once");

  // A change w1 applies and w2 does not acknowledge.
  const mapped = await e.client.mapCorrespondent({ ipv6Address: "2001:db8:c::10" });
  const next = (await e.client.getRuleTable({})).revision;
  t.is(next, start + 1n);
  await until(() => sent.includes(next) && sync.appliedRevision === next);
  const table = (await mipctl(e.address, "workers")).stdout;
  t.regex(table, new RegExp(`^rule table revision ${next}$`, "m"));
  t.regex(table, /^WORKER\s+APPLIED\s+SENT\s+LAG\s+LAG TIME\s+CONNECTED$/m);
  t.regex(table, new RegExp(`^w1\\s+${next}\\s+${next}\\s+0\\s+0\\.0 s\\s+\\d{4}-`, "m"), "w1 caught up");
  t.regex(table, new RegExp(`^w2\\s+${start}\\s+${next}\\s+1\\s+\\d+\\.\\d s\\s+\\d{4}-`, "m"), "w2 one revision behind");
  const json = JSON.parse((await mipctl(e.address, "--json", "workers")).stdout);
  t.is(json.revision, next.toString());
  t.like(json.workers[1], { workerId: "w2", appliedRevision: start.toString(), sentRevision: next.toString(), lagRevisions: "1" });
  t.true(Number(json.workers[1].lagMs) >= 0);
  t.false("lagRevisions" in json.workers[0], "w1 has no lag: proto3 JSON leaves the zero out");

  const late = await t.throwsAsync(mipctl(e.address, "wait", String(next), "--timeout", "0.5")) as Error & { code: number; stderr: string };
  t.is(late.code, 1);
  t.regex(late.stderr, new RegExp(`revision ${next} not applied within 0\\.5 s by w2 \\(at ${start}\\)`));
  // --wait on a change: returns once w2 acknowledges (acknowledged while mipctl waits).
  const unmapping = mipctl(e.address, "unmap", "2001:db8:c::10", "--wait", "--timeout", "20");
  await until(() => sent.includes(next + 1n));
  ack(next + 1n);
  const out = (await unmapping).stdout;
  t.regex(out, new RegExp(`its mapping to ${mapped.ipv4Address.replaceAll(".", "\\.")} is given back`));
  t.regex(out, new RegExp(`^revision ${next + 1n} applied by w1, w2$`, "m"));
  t.false((await e.client.getRuleTable({})).rules.some((r) => r.kind?.$case === "addressMapping"), "the change itself was made");

  const usage = await t.throwsAsync(mipctl(e.address, "pools", "--wait")) as Error & { code: number; stderr: string };
  t.is(usage.code, 2);
  t.regex(usage.stderr, /--wait goes with release, map, unmap, cordon, uncordon, drain/);
  const bad = await t.throwsAsync(mipctl(e.address, "wait", "soon")) as Error & { code: number; stderr: string };
  t.is(bad.code, 2);
  t.regex(bad.stderr, /wait takes at most one REVISION, a whole number/);
  const badTimeout = await t.throwsAsync(mipctl(e.address, "wait", "--timeout=0")) as Error & { code: number; stderr: string };
  t.is(badTimeout.code, 2);
  t.regex(badTimeout.stderr, /--timeout takes seconds, more than 0 and at most 3600, not "0"/);
});

test("mipctl call: any RPC by name (or full path) with a proto3 JSON request, the answer as proto3 JSON; the change is made; a misspelt field, bad JSON or an unknown method is refused and changes nothing", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const allocated = JSON.parse((await mipctl(e.address, "call", "AllocateCareOf", '{"host_id": "h6", "vmId": "sv", "homeAddress": "192.0.2.1"}')).stdout);
  t.like(allocated, { careOfIpv4: "198.51.100.2", careOfIpv6: "2001:db8:1::c000:201" });
  t.regex(String(allocated.expiresAtMs), /^\d+$/, "an int64 as a string");
  const leases = (await e.client.listLeases({})).leases;
  t.deepEqual(leases.map((l) => [l.address, l.holder, l.hostId, l.purpose]), [["198.51.100.2", "sv", "h6", LeasePurpose.LEASE_PURPOSE_CARE_OF]], "the lease was taken");
  const listed = JSON.parse((await mipctl(e.address, "call", "mip46.v1.ControlEngine/ListLeases")).stdout);
  t.deepEqual(listed.leases.map((l: unknown) => Lease.fromJSON(l)), leases, "the full path, and {} by default");

  const fails = async (pattern: RegExp, ...args: string[]) => {
    const err = await t.throwsAsync(mipctl(e.address, "call", ...args)) as Error & { code: number; stderr: string };
    t.is(err.code, 2, args.join(" "));
    t.regex(err.stderr, pattern, args.join(" "));
  };
  await fails(/"homeAdress": not a field of the request \(fields: hostId, vmId, homeAddress\)/, "AllocateCareOf", '{"hostId": "h6", "vmId": "sv2", "homeAdress": "192.0.2.3"}');
  await fails(/the request is not JSON/, "AllocateCareOf", "{hostId: h6}");
  await fails(/the request must be a JSON object/, "AllocateCareOf", "[]");
  await fails(/has no method "Frobnicate"; methods: AbortMigration, AllocateCareOf, /, "Frobnicate");
  await fails(/call takes a METHOD/);
  t.deepEqual((await e.client.listLeases({})).leases, leases, "a refused call changes nothing");
  const refused = await t.throwsAsync(mipctl(e.address, "call", "AllocateCareOf", '{"hostId": "nowhere", "vmId": "sv3", "homeAddress": "192.0.2.4"}')) as Error & { code: number; stderr: string };
  t.is(refused.code, 1, "the engine's own refusal is a failure, with its message");
  t.regex(refused.stderr, /^mipctl: host nowhere is unknown: its agent must send a Heartbeat/m);
});

test("mipctl get lease, binding and host: one record by its key, as its list shows it; an absent one is NOT_FOUND naming the key; bad keys are refused", async (t) => {
  const e = await startTestEngine({ hosts: { heartbeatIntervalSeconds: 5, downAfterSeconds: 120 } });
  t.teardown(() => e.stop());
  const { careOf: c } = await awayFromHome(e.client);
  const lease = JSON.parse((await mipctl(e.address, "--json", "get", "lease", c.careOfIpv4)).stdout);
  t.deepEqual(Lease.fromJSON(lease), (await e.client.listLeases({})).leases.find((l) => l.address === c.careOfIpv4));
  const binding = JSON.parse((await mipctl(e.address, "--json", "get", "binding", "sv")).stdout);
  t.deepEqual(Binding.fromJSON(binding), (await e.client.listBindings({})).bindings[0]);
  const host = JSON.parse((await mipctl(e.address, "--json", "get", "host", "h6")).stdout);
  t.deepEqual(Host.fromJSON(host), (await e.client.listHosts({ hostId: "h6" })).hosts[0]);
  t.regex((await mipctl(e.address, "get", "lease", c.careOfIpv4)).stdout, new RegExp(`^${c.careOfIpv4.replaceAll(".", "\\.")}\\s+engine\\s+sv\\s+care-of\\s+h6\\s`, "m"));
  t.regex((await mipctl(e.address, "get", "host", "h4")).stdout, /^h4\s+up\s+ipv4\s/m);

  const fails = async (code: number, pattern: RegExp, ...args: string[]) => {
    const err = await t.throwsAsync(mipctl(e.address, "get", ...args)) as Error & { code: number; stderr: string };
    t.is(err.code, code, args.join(" "));
    t.regex(err.stderr, pattern, args.join(" "));
  };
  await fails(1, /address: no lease holds 198\.51\.100\.99/, "lease", "198.51.100.99");
  await fails(1, /vm_id: vm nobody has no binding: it is at home, or unknown/, "binding", "nobody");
  await fails(1, /host_id: no host h9: it has sent no heartbeat/, "host", "h9");
  await fails(1, /^mipctl: address: /m, "lease", "2001:db8::1");
  await fails(2, /get takes lease ADDRESS, binding VM_ID or host HOST_ID/, "vm", "sv");
  const rpc = await t.throwsAsync(e.client.getLease({ address: "198.51.100.99" })) as Error & { code: number };
  t.is(rpc.code, 5, "NOT_FOUND on the API");
});
