// Mutual TLS and identities: a real engine on port 0 with certificates made by
// scripts/lab-certs.sh, called by agents, a worker and an operator holding their own certificates.
import test from "ava";
import { ChannelCredentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { execFile } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { connectControl, type ControlClient } from "../../../clients/control.js";
import { RuleSyncClient } from "../../../dataplane/sync/client.js";
import { DataPlaneSyncClient, type EngineMessage } from "../../../gen/mip46/v1/dataplane.js";
import { ControlEngineClient } from "../../../gen/mip46/v1/control.js";
import { identityFromAltNames, IdentityError, subjectAltNames } from "../../../lib/tls/identity.js";
import type { TlsFiles } from "../../../lib/tls/tls.js";
import { hostOn, startTestEngine, storedState, tempDir, type TestEngine } from "../../../harness/engine.js";
import { parseConfig } from "../../../services/config/config.js";
import { labConfig } from "../../../harness/engine.js";
import { parseWorkerConfig } from "../../../dataplane/worker/config.js";
import { runEngine } from "../../../services/engine/run.js";
import { createLogger } from "../../../lib/log.js";

const run = promisify(execFile);

let certs: string;
let rogue: string;
let e: TestEngine;
/** The engine's log lines. */
const logs: Record<string, unknown>[] = [];
const clients: { close(): void }[] = [];

const files = (dir: string, name: string): TlsFiles => ({ ca: join(dir, "ca.pem"), cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) });
function client(name: string, dir = certs): ControlClient {
  const c = connectControl(e.address, 5000, files(dir, name));
  clients.push(c);
  return c;
}
async function code(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    return { code: (err as ServiceError).code, details: (err as ServiceError).details };
  }
  throw new Error("the call succeeded");
}

test.before(async () => {
  certs = tempDir("mip46-tls-");
  rogue = tempDir("mip46-tls-rogue-");
  await run("bash", ["scripts/lab-certs.sh", certs, "engine:e1", "host:h4", "host:h6", "worker:dp-1", "operator:admin"]);
  // The same identity, signed by a CA the engine does not trust.
  await run("bash", ["scripts/lab-certs.sh", rogue, "host:h4"]);
  e = await startTestEngine({ tls: files(certs, "engine-e1") }, tempDir(), createLogger({}, "info", (line) => logs.push(JSON.parse(line) as Record<string, unknown>)));
});

test.after.always(async () => {
  for (const c of clients) c.close();
  await e?.stop();
  rmSync(certs, { recursive: true, force: true });
  rmSync(rogue, { recursive: true, force: true });
});

test.serial("an agent acts for its own host and is refused, changing nothing, for another", async (t) => {
  const h4 = client("host-h4");
  const admin = client("operator-admin");
  await h4.heartbeat(hostOn(6, "h4"));
  const c = await h4.allocateCareOf({ hostId: "h4", vmId: "v1", homeAddress: "192.0.2.1" });
  t.is(c.careOfIpv4, "198.51.100.2");

  const before = { hosts: await admin.listHosts({}), leases: await admin.listLeases({}), rules: await admin.getRuleTable({}) };
  const hb = await code(h4.heartbeat(hostOn(6, "h6", 11)));
  t.is(hb.code, status.PERMISSION_DENIED);
  t.regex(hb.details, /^host_id: 'h6' is not this agent's host \(its certificate says host:h4\)/);
  const alloc = await code(h4.allocateCareOf({ hostId: "h6", vmId: "v2", homeAddress: "192.0.2.2" }));
  t.is(alloc.code, status.PERMISSION_DENIED);
  t.regex(alloc.details, /^host_id: /);
  const reg = await code(h4.registerMigration({
    vmId: "v1", homeAddress: "192.0.2.1", homeAgent: "192.0.2.254", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6,
  }));
  t.is(reg.code, status.PERMISSION_DENIED);
  t.regex(reg.details, /^destination_host_id: 'h6'/);
  t.is((await code(h4.requestPrefix({ hostId: "h6", ipv4Segment: "192.0.2.0/24" }))).code, status.PERMISSION_DENIED);
  // Another host's agent may not release h4's lease, by VM or by address.
  const h6 = client("host-h6");
  const rel = await code(h6.releaseCareOf({ address: "", vmId: "v1" }));
  t.is(rel.code, status.PERMISSION_DENIED);
  t.regex(rel.details, /^vm_id: the lease is held for host 'h4'/);
  t.is((await code(h6.releaseCareOf({ address: c.careOfIpv4, vmId: "" }))).code, status.PERMISSION_DENIED);
  // Agents do not read the engine's tables.
  t.regex((await code(h4.listLeases({}))).details, /host:h4 may not call this method/);

  t.deepEqual(await admin.listHosts({}), before.hosts);
  t.deepEqual(await admin.listLeases({}), before.leases);
  t.deepEqual(await admin.getRuleTable({}), before.rules);

  // What the agent may do, it can: register the VM's arrival on its own host.
  const ok = await h4.registerMigration({
    vmId: "v1", homeAddress: "192.0.2.1", homeAgent: "192.0.2.254", sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6,
  });
  t.true(ok.ruleRevision > before.rules.revision);
  t.is((await h4.requestPrefix({ hostId: "h4", ipv4Segment: "192.0.2.0/24" })).ipv6Prefix, "2001:db8:3::/96");

  // Refusals are counted like other outcomes.
  const metrics = await e.running.metrics.registry.getSingleMetricAsString("grpc_server_handled_total");
  t.regex(metrics, /grpc_method="Heartbeat",grpc_code="PERMISSION_DENIED"} 1/);
});

test.serial("where and why (GetVm, ListAdvice) are an operator's reads: an agent is refused", async (t) => {
  const admin = client("operator-admin");
  const h4 = client("host-h4");
  await h4.heartbeat({ ...hostOn(6, "h4"), vms: [{ vmId: "w1", homeAddress: "192.0.2.41", cpuUsedCores: 0.1, memoryUsedBytes: 1n }] });
  t.like(await admin.getVm({ vmId: "w1" }), { hostId: "h4", atHome: true });
  t.true(Array.isArray((await admin.listAdvice({})).advice));
  const where = await code(h4.getVm({ vmId: "w1" }));
  t.is(where.code, status.PERMISSION_DENIED);
  t.regex(where.details, /GetVm: host:h4 may not call this method \(allowed: operator, engine\)/);
  t.is((await code(h4.listAdvice({}))).code, status.PERMISSION_DENIED);
});

test.serial("cordon, drain and uncordon are an operator's, audited with its identity; an agent is refused and changes nothing", async (t) => {
  const admin = client("operator-admin");
  const h4 = client("host-h4");
  await h4.heartbeat(hostOn(6, "h4"));
  const before = await admin.listHosts({});
  const refused = await code(h4.cordonHost({ hostId: "h4" }));
  t.is(refused.code, status.PERMISSION_DENIED);
  t.regex(refused.details, /CordonHost: host:h4 may not call this method \(allowed: operator\)/);
  t.is((await code(h4.drainHost({ hostId: "h4" }))).code, status.PERMISSION_DENIED);
  t.deepEqual(await admin.listHosts({}), before);
  t.like((await admin.cordonHost({ hostId: "h4" })).host, { cordoned: true });
  t.like((await admin.uncordonHost({ hostId: "h4" })).host, { cordoned: false });
  t.deepEqual(logs.filter((l) => l.msg === "operator action" && ["CordonHost", "UncordonHost"].includes(String(l.what))).map((l) => [l.who, l.what]),
    [["operator:admin", "CordonHost"], ["operator:admin", "UncordonHost"]]);
});

test.serial("an operator lists and releases, and may not act as an agent", async (t) => {
  const admin = client("operator-admin");
  t.true((await admin.listPools({})).pools.length > 0);
  t.true((await admin.listLeases({})).leases.some((l) => l.holder === "v1"));
  t.is((await code(admin.heartbeat(hostOn(6, "h4")))).code, status.PERMISSION_DENIED);
  const h4 = client("host-h4");
  await h4.allocateCareOf({ hostId: "h4", vmId: "v3", homeAddress: "192.0.2.3" });
  t.is((await admin.releaseCareOf({ address: "", vmId: "v3" })).address !== "", true);
  // And h4's agent releases a lease of its own host.
  await h4.allocateCareOf({ hostId: "h4", vmId: "v4", homeAddress: "192.0.2.4" });
  t.truthy((await h4.releaseCareOf({ address: "", vmId: "v4" })).address);
  // Each release is in the audit log, with the certificate's identity of who made it.
  const audit = logs.filter((l) => l.msg === "operator action" && l.what === "ReleaseCareOf");
  t.deepEqual(audit.map((l) => [l.who, (l.request as { vmId: string }).vmId, (l.before as { lease: { holder: string } }).lease.holder]), [["operator:admin", "v3", "v3"], ["host:h4", "v4", "v4"]]);
});

test.serial("a host acts only on VMs on it or coming to it, and MapCorrespondent is an operator's; each refusal changes nothing", async (t) => {
  const h4 = client("host-h4");
  const h6 = client("host-h6");
  const admin = client("operator-admin");
  await h6.heartbeat(hostOn(6, "h6", 11));
  await h4.heartbeat(hostOn(6, "h4"));
  // vm w6 arrived at h6: its care-of lease is held for h6.
  const c = await h6.allocateCareOf({ hostId: "h6", vmId: "w6", homeAddress: "192.0.2.60" });
  const before = await storedState(admin);
  const move = { vmId: "w6", homeAddress: "192.0.2.60", homeAgent: "192.0.2.254", sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 };
  for (const [what, call] of [
    ["RegisterMigration", () => h4.registerMigration(move)],
    ["PrepareMigration", () => h4.prepareMigration(move)],
    ["AbortMigration", () => h4.abortMigration({ vmId: "w6", hostId: "h4" })],
  ] as const) {
    const got = await code(call());
    t.is(got.code, status.PERMISSION_DENIED, what);
    t.is(got.details, "vm_id: vm w6's care-of lease is held for host 'h6', not this agent's host (its certificate says host:h4)", what);
  }
  const map = await code(h4.mapCorrespondent({ ipv6Address: "2001:db8:c::44" }));
  t.is(map.code, status.PERMISSION_DENIED);
  t.regex(map.details, /MapCorrespondent: host:h4 may not call this method \(allowed: operator\)/);
  t.is(await storedState(admin), before, "no refused call changed the stored state");
  // The host that holds the lease registers; an operator maps, and is audited for it.
  t.false((await h6.registerMigration({ ...move, destinationHostId: "h6" })).returnedHome);
  t.truthy((await admin.mapCorrespondent({ ipv6Address: "2001:db8:c::44" })).ipv4Address);
  t.true(logs.some((l) => l.msg === "operator action" && l.what === "MapCorrespondent" && l.who === "operator:admin"));
});

test.serial("mipctl lists with --ca --cert --key; without them it says the engine wants TLS", async (t) => {
  const f = files(certs, "operator-admin");
  const out = await run(process.execPath, ["bin/mipctl.js", "--engine", e.address, "--ca", f.ca, "--cert", f.cert, "--key", f.key, "pools"], { encoding: "utf8" });
  t.regex(out.stdout, /^engine\s+engine\s+198\.51\.100\.2/m);
  const plain = await t.throwsAsync(run(process.execPath, ["bin/mipctl.js", "--engine", e.address, "pools"], { encoding: "utf8" })) as Error & { code: number; stderr: string };
  t.is(plain.code, 1);
  t.is(plain.stderr, `mipctl: ${e.address}: this engine wants TLS: give --ca, --cert and --key (or $MIP46_TLS_CA, $MIP46_TLS_CERT, $MIP46_TLS_KEY)\n`, "a plaintext call to a TLS engine says so");
});

test.serial("a client without a certificate, with one from another CA, or in plaintext fails the handshake", async (t) => {
  const ca = readFileSync(join(certs, "ca.pem"));
  const noCert = new ControlEngineClient(e.address, ChannelCredentials.createSsl(ca), {});
  clients.push(noCert);
  const call = (c: ControlEngineClient) => new Promise((resolve, reject) =>
    c.listPools({}, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res))));
  t.is((await code(call(noCert))).code, status.UNAVAILABLE);
  // The rogue certificate says host:h4 too; only the signature differs. Our CA still verifies the
  // engine, so the refusal comes from the engine's side of the handshake.
  const other = connectControl(e.address, 5000, { ca: join(certs, "ca.pem"), cert: join(rogue, "host-h4.pem"), key: join(rogue, "host-h4.key") });
  clients.push(other);
  t.is((await code(other.heartbeat(hostOn(6, "h4")))).code, status.UNAVAILABLE);
  t.is((await code(e.client.listPools({}))).code, status.UNAVAILABLE);
});

test.serial("a worker with a worker certificate syncs the rules over TLS; others may not", async (t) => {
  const admin = client("operator-admin");
  const revision = (await admin.getRuleTable({})).revision;
  const table = await new Promise<{ revision: bigint; rules: number }>((resolve) => {
    const sync = new RuleSyncClient({
      workerId: "dp-1", engines: [e.address], tls: files(certs, "worker-dp-1"),
      onSnapshot(tbl) { sync.stop(); resolve({ revision: tbl.revision, rules: tbl.rules.length }); },
      onDelta() {},
    });
    sync.start();
  });
  t.is(table.revision, revision);
  t.true(table.rules > 0);

  // A worker certificate used under another worker's id, and an agent's certificate, are refused.
  const refused = (name: string, workerId: string) => new Promise<ServiceError>((resolve, reject) => {
    const f = files(certs, name);
    const c = new DataPlaneSyncClient(e.address, ChannelCredentials.createSsl(readFileSync(f.ca), readFileSync(f.key), readFileSync(f.cert)), {});
    clients.push(c);
    const stream = c.syncRules();
    stream.on("data", (m: EngineMessage) => reject(new Error(`got ${m.message?.$case}`)));
    stream.on("error", (err: ServiceError) => resolve(err));
    stream.write({ message: { $case: "hello", value: { workerId, appliedRevision: 0n, appliedEpoch: "" } } });
  });
  const other = await refused("worker-dp-1", "dp-2");
  t.is(other.code, status.PERMISSION_DENIED);
  t.regex(other.details, /^hello\.worker_id: 'dp-2' is not this worker/);
  t.is((await refused("host-h4", "h4")).code, status.PERMISSION_DENIED);
  // Every hello is checked, not only a first message: an acknowledgement first, then a hello as another worker.
  const late = await new Promise<ServiceError>((resolve, reject) => {
    const f = files(certs, "worker-dp-1");
    const c = new DataPlaneSyncClient(e.address, ChannelCredentials.createSsl(readFileSync(f.ca), readFileSync(f.key), readFileSync(f.cert)), {});
    clients.push(c);
    const stream = c.syncRules();
    stream.on("data", (m: EngineMessage) => reject(new Error(`got ${m.message?.$case}`)));
    stream.on("error", (err: ServiceError) => resolve(err));
    stream.write({ message: { $case: "ack", value: { revision: 0n } } });
    stream.write({ message: { $case: "hello", value: { workerId: "dp-2", appliedRevision: 0n, appliedEpoch: "" } } });
  });
  t.is(late.code, status.PERMISSION_DENIED);
  t.regex(late.details, /^hello\.worker_id: 'dp-2' is not this worker \(its certificate says worker:dp-1\)/);
  t.is((await code(client("worker-dp-1").listPools({}))).code, status.PERMISSION_DENIED);
});

test("the identity is the one spiffe://mip46/ URI in the subjectAltName", (t) => {
  t.deepEqual(identityFromAltNames("URI:spiffe://mip46/host/rack1/h4, IP Address:127.0.0.1"), { role: "host", id: "rack1/h4" });
  t.deepEqual(identityFromAltNames("DNS:x, URI:spiffe://mip46/operator/admin@ops"), { role: "operator", id: "admin@ops" });
  // Node quotes a value with a comma, so it cannot pose as a second entry.
  t.deepEqual(subjectAltNames('URI:"spiffe://x/, URI:spiffe://mip46/host/h6", DNS:a'), [
    { type: "URI", value: "spiffe://x/, URI:spiffe://mip46/host/h6" }, { type: "DNS", value: "a" },
  ]);
  t.throws(() => identityFromAltNames('URI:"spiffe://x/, URI:spiffe://mip46/host/h6"'), { instanceOf: IdentityError });
  t.throws(() => identityFromAltNames("URI:spiffe://mip46/host/h4, URI:spiffe://mip46/operator/a"), { message: /2 spiffe:\/\/mip46\/ URIs/ });
  t.throws(() => identityFromAltNames("URI:spiffe://mip46/root/x"), { instanceOf: IdentityError });
  t.throws(() => identityFromAltNames("URI:spiffe://other/host/h4"), { message: /no subjectAltName URI/ });
  t.throws(() => identityFromAltNames(undefined), { instanceOf: IdentityError });
});

test("the tls key of the engine and the worker needs ca, cert and key", (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.is(parseConfig(labConfig(dir)).tls, undefined);
  t.throws(() => parseConfig(labConfig(dir, { tls: { ca: "/x/ca.pem", cert: "/x/c.pem" } })), { message: /^tls\.key: required/ });
  t.throws(() => parseConfig(labConfig(dir, { tls: { ca: "a", cert: "b", key: "c", pass: "d" } })), { message: /^tls\.pass: unknown key/ });
  const worker = { workerId: "dp-1", engines: ["[::1]:50046"], interfaces: [{ name: "eth1" }] };
  t.deepEqual(parseWorkerConfig({ ...worker, tls: { ca: "ca.pem", cert: "w.pem", key: "w.key" } }).tls, { ca: "ca.pem", cert: "w.pem", key: "w.key" });
  t.is(parseWorkerConfig(worker).tls, undefined);
  t.throws(() => parseWorkerConfig({ ...worker, tls: { ca: "ca.pem", cert: "w.pem" } }), { message: /^tls\.key: required/ });
});

test("an engine without tls warns that nothing is checked; one with an unreadable key does not start", async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  const plain = await runEngine(parseConfig(labConfig(dir)), createLogger({}, "warn", (l) => lines.push(l)));
  await plain.stop();
  t.true(lines.some((l) => /"level":"warn","msg":"gRPC without TLS: callers are not authenticated and every call is allowed/.test(l)), lines.join("\n"));
  const missing = { ...files(certs, "engine-e1"), key: join(dir, "nothing.key") };
  await t.throwsAsync(runEngine(parseConfig(labConfig(dir, { tls: missing })), createLogger({}, "error", () => {})), { message: /^tls\.key: cannot read .*nothing\.key: ENOENT$/ });
});
