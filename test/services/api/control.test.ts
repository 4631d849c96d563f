// The ControlEngine API against a real engine on port 0, through the generated client.
import test from "ava";
import { status } from "@grpc/grpc-js";
import { failure, hostOn, startTestEngine, storedState, type TestEngine } from "../../../harness/engine.js";
import { LeasePurpose, NetworkFamily, HostState } from "../../../gen/mip46/v1/control.js";

const code = failure;

/** Everything the engine stores, as operators see it: a bad request must leave it unchanged. */
const snapshot = (e: TestEngine) => storedState(e.client);

test("flow 3.1 b-c: an IPv4 VM on an IPv6 host gets a pool address and prefix + home address", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const hb = await e.client.heartbeat(hostOn(6, "h6"));
  t.is(hb.networkFamily, NetworkFamily.NETWORK_FAMILY_IPV6);
  t.is(hb.network, "2001:db8:1::/64");
  const r = await e.client.allocateCareOf({ hostId: "h6", vmId: "vm-a", homeAddress: "192.0.2.1" });
  t.is(r.careOfIpv4, "198.51.100.2", "first pool address after the engine's own .1");
  t.is(r.careOfIpv6, "2001:db8:1::c000:201", "2001:db8:1::192.0.2.1 as in the paper");
  t.is(r.lifetimeSeconds, 600);
  t.is(r.pool, "engine");

  const again = await e.client.allocateCareOf({ hostId: "h6", vmId: "vm-a", homeAddress: "192.0.2.1" });
  t.is(again.careOfIpv4, r.careOfIpv4, "the same VM gets its lease back");
  t.true(again.expiresAtMs >= r.expiresAtMs, "with a renewed lifetime");
  const other = await e.client.allocateCareOf({ hostId: "h6", vmId: "vm-b", homeAddress: "192.0.2.7" });
  t.is(other.careOfIpv4, "198.51.100.3");
  const leases = await e.client.listLeases({});
  t.deepEqual(leases.leases.map((l) => [l.address, l.holder, l.purpose]), [
    ["198.51.100.2", "vm-a", LeasePurpose.LEASE_PURPOSE_CARE_OF],
    ["198.51.100.3", "vm-b", LeasePurpose.LEASE_PURPOSE_CARE_OF],
  ]);
});

test("flow 3.2 b-c: an IPv6 VM on an IPv4 host gets a segment address and the segment's RFC 6052 prefix + it", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(4, "h4"));
  const r = await e.client.allocateCareOf({ hostId: "h4", vmId: "vm6", homeAddress: "2001:db8:1::2" });
  t.is(r.careOfIpv4, "192.0.2.100");
  t.is(r.careOfIpv6, "2001:db8:3::c000:264", "2001:db8:3::192.0.2.100");
  t.is(r.pool, "ipv4-lab");
  const prefix = await e.client.requestPrefix({ hostId: "h4", ipv4Segment: "192.0.2.0/24" });
  t.is(prefix.ipv6Prefix, "2001:db8:3::/96");
});

test("AllocateCareOf refuses what it cannot serve, naming the reason, and changes nothing", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.heartbeat(hostOn(4, "h4"));
  await e.client.heartbeat({ ...hostOn(4, "elsewhere"), addresses: ["203.0.113.5/24"] });
  const before = await snapshot(e);
  const cases: [Record<string, string>, number, RegExp][] = [
    [{ hostId: "", vmId: "v", homeAddress: "192.0.2.1" }, status.INVALID_ARGUMENT, /^host_id: is required/],
    [{ hostId: "h6", vmId: "", homeAddress: "192.0.2.1" }, status.INVALID_ARGUMENT, /^vm_id: is required/],
    [{ hostId: "h6", vmId: "v", homeAddress: "" }, status.INVALID_ARGUMENT, /^home_address: is required/],
    [{ hostId: "h6", vmId: "v", homeAddress: "192.0.2.300" }, status.INVALID_ARGUMENT, /^home_address: .*not a valid IPv4/],
    [{ hostId: "h6", vmId: "v", homeAddress: "192.0.2.1/24" }, status.INVALID_ARGUMENT, /^home_address: .*not a prefix/],
    [{ hostId: "h6", vmId: "v", homeAddress: "2001:db8::zz" }, status.INVALID_ARGUMENT, /^home_address: .*not a valid IPv6/],
    [{ hostId: "h6", vmId: "bad id!", homeAddress: "192.0.2.1" }, status.INVALID_ARGUMENT, /^vm_id: /],
    [{ hostId: "nobody", vmId: "v", homeAddress: "192.0.2.1" }, status.FAILED_PRECONDITION, /Heartbeat/],
    [{ hostId: "elsewhere", vmId: "v", homeAddress: "192.0.2.1" }, status.FAILED_PRECONDITION, /no network/],
    [{ hostId: "h4", vmId: "v", homeAddress: "192.0.2.1" }, status.FAILED_PRECONDITION, /home network/],
    [{ hostId: "h6", vmId: "v", homeAddress: "2001:db8:1::2" }, status.FAILED_PRECONDITION, /RFC 6275/],
  ];
  for (const [req, want, details] of cases) {
    const got = await code(e.client.allocateCareOf({ hostId: req.hostId, vmId: req.vmId, homeAddress: req.homeAddress }));
    t.is(got.code, want, JSON.stringify(req));
    t.regex(got.details, details);
  }
  t.is(await snapshot(e), before, "no refused request changed the store");
});

test("the pool runs out cleanly, and a released address cools down before reuse", async (t) => {
  const e = await startTestEngine({ pool: { name: "engine", prefix: "198.51.100.0/29", exclude: ["198.51.100.1"] } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const got = [];
  for (let i = 0; i < 5; i++) got.push((await e.client.allocateCareOf({ hostId: "h6", vmId: `vm${i}`, homeAddress: `192.0.2.${i + 1}` })).careOfIpv4);
  t.deepEqual(got, ["198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5", "198.51.100.6"]);
  const before = await snapshot(e);
  const out = await code(e.client.allocateCareOf({ hostId: "h6", vmId: "vm-late", homeAddress: "192.0.2.50" }));
  t.is(out.code, status.RESOURCE_EXHAUSTED);
  t.regex(out.details, /pool engine has no free address \(5 leased, 0 cooling down, of 5\)/);
  t.is(await snapshot(e), before);

  const rel = await e.client.releaseCareOf({ address: "198.51.100.4", vmId: "" });
  t.is(rel.address, "198.51.100.4");
  t.true(rel.cooldownUntilMs > BigInt(Date.now()) + 50_000n);
  const still = await code(e.client.allocateCareOf({ hostId: "h6", vmId: "vm-late", homeAddress: "192.0.2.50" }));
  t.is(still.code, status.RESOURCE_EXHAUSTED, "a cooling address is not handed to another VM");
  t.regex(still.details, /4 leased, 1 cooling down/);
  // The VM that released it may have it back: nothing else can be confused by that.
  const back = await e.client.allocateCareOf({ hostId: "h6", vmId: "vm2", homeAddress: "192.0.2.3" });
  t.is(back.careOfIpv4, "198.51.100.4");

  t.is((await code(e.client.releaseCareOf({ address: "198.51.100.200", vmId: "" }))).code, status.NOT_FOUND);
  t.is((await code(e.client.releaseCareOf({ address: "", vmId: "" }))).code, status.INVALID_ARGUMENT);
  t.is((await code(e.client.releaseCareOf({ address: "198.51.100", vmId: "" }))).code, status.INVALID_ARGUMENT);
});

test("with no cool-down, a released address goes to the next VM", async (t) => {
  const e = await startTestEngine({
    pool: { name: "engine", prefix: "198.51.100.0/30", exclude: ["198.51.100.1"] },
    leases: { lifetimeSeconds: 600, cooldownSeconds: 0 },
  });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  t.is((await e.client.allocateCareOf({ hostId: "h6", vmId: "a", homeAddress: "192.0.2.1" })).careOfIpv4, "198.51.100.2");
  t.is((await code(e.client.allocateCareOf({ hostId: "h6", vmId: "b", homeAddress: "192.0.2.2" }))).code, status.RESOURCE_EXHAUSTED);
  await e.client.releaseCareOf({ address: "", vmId: "a" });
  t.is((await e.client.allocateCareOf({ hostId: "h6", vmId: "b", homeAddress: "192.0.2.2" })).careOfIpv4, "198.51.100.2");
});

test("leases that are not renewed expire, and their binding and rules go with them", async (t) => {
  const e = await startTestEngine({ leases: { lifetimeSeconds: 1, cooldownSeconds: 30 } });
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "vm-a", homeAddress: "192.0.2.1" });
  await e.client.registerMigration({
    vmId: "vm-a", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6,
  });
  t.is((await e.client.listBindings({})).bindings.length, 1);
  const deadline = Date.now() + 10_000;
  while ((await e.client.listLeases({})).leases.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.is((await e.client.listLeases({})).leases.length, 0, "the lease expired");
  t.is((await e.client.listBindings({})).bindings.length, 0, "its binding went with it");
  const rules = await e.client.getRuleTable({});
  t.false(rules.rules.some((r) => r.key.startsWith("vm/vm-a/")), "and so did its rules");
  const pools = await e.client.listPools({});
  t.is(pools.pools.find((p) => p.name === "engine")!.cooling, 1, "the address cools down");
});

test("RequestPrefix: the same segment always gets the same prefix; unknown and malformed segments are refused", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  for (let i = 0; i < 3; i++) t.is((await e.client.requestPrefix({ hostId: "h4", ipv4Segment: "192.0.2.0/24" })).ipv6Prefix, "2001:db8:3::/96");
  const unknown = await code(e.client.requestPrefix({ hostId: "h4", ipv4Segment: "203.0.113.0/24" }));
  t.is(unknown.code, status.NOT_FOUND);
  t.regex(unknown.details, /^ipv4_segment: 203\.0\.113\.0\/24 is not a segment attached to this engine \(known: 192\.0\.2\.0\/24\)/);
  for (const bad of ["192.0.2.1/24", "192.0.2.0", "2001:db8::/64", "192.0.2.0/33", ""]) {
    const r = await code(e.client.requestPrefix({ hostId: "h4", ipv4Segment: bad }));
    t.is(r.code, status.INVALID_ARGUMENT, bad);
    t.regex(r.details, /^ipv4_segment: /);
  }
  t.is((await code(e.client.requestPrefix({ hostId: "", ipv4Segment: "192.0.2.0/24" }))).code, status.INVALID_ARGUMENT);
});

test("RegisterMigration, flow 3.1: rules for re-encapsulation and decapsulation; a repeat is idempotent; home removes them", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.heartbeat(hostOn(4, "h4")); // the home host, which registers the VM home below
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "sv", homeAddress: "192.0.2.1" });
  const r0 = (await e.client.getRuleTable({})).revision;
  const req = { vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 };
  const m = await e.client.registerMigration(req);
  t.true(m.ruleRevision > r0, "the revision grows");
  t.is(m.translatedIpv6, "2001:db8:64::c000:201", "IPv6 clients reach it through the translation prefix");
  t.is(m.translatedIpv4, "");
  const table = await e.client.getRuleTable({});
  t.is(table.revision, m.ruleRevision);
  const mine = table.rules.filter((r) => r.key.startsWith("vm/sv/"));
  t.deepEqual(mine.map((r) => r.kind?.$case).sort(), ["reencap4in4To4in6", "tunnelPeer", "tunnelPeer"]);
  const reencap = mine.find((r) => r.kind?.$case === "reencap4in4To4in6")!.kind!.value as { poolIpv4: string; careOfIpv6: string };
  t.deepEqual([reencap.poolIpv4, reencap.careOfIpv6], ["198.51.100.2", "2001:db8:1::c000:201"]);
  t.true(table.rules.some((r) => r.kind?.$case === "translationPrefix"));

  const again = await e.client.registerMigration(req);
  t.is(again.migrationId, m.migrationId, "a repeat is idempotent");
  t.is(again.ruleRevision, m.ruleRevision, "and changes no rule");
  t.is((await e.client.listMigrations({})).migrations.length, 1);

  // The VM moves again, to another IPv6 host: the new registration replaces the old one. h6
  // beats without it first (a later millisecond than its binding), as its agent does when the VM
  // leaves: until then the engine takes the VM to run at h6 (VM_RUNS_AT_SOURCE).
  await new Promise((r) => setTimeout(r, 5));
  await e.client.heartbeat(hostOn(6, "h6"));
  await e.client.heartbeat(hostOn(6, "h6b", 11));
  const c2 = await e.client.allocateCareOf({ hostId: "h6b", vmId: "sv", homeAddress: "192.0.2.1" });
  const m2 = await e.client.registerMigration({ ...req, sourceHostId: "h6", destinationHostId: "h6b", careOfIpv4: c2.careOfIpv4, careOfIpv6: c2.careOfIpv6 });
  t.not(m2.migrationId, m.migrationId);
  const bindings = await e.client.listBindings({});
  t.is(bindings.bindings.length, 1);
  t.is(bindings.bindings[0].hostId, "h6b");

  const home = await e.client.registerMigration({ ...req, sourceHostId: "h6b", destinationHostId: "h4", careOfIpv4: "", careOfIpv6: "" });
  t.true(home.returnedHome);
  t.true(home.ruleRevision > m2.ruleRevision);
  const after = await e.client.getRuleTable({});
  t.false(after.rules.some((r) => r.key.startsWith("vm/sv/")), "a VM that returns home has its rules removed");
  t.is((await e.client.listBindings({})).bindings.length, 0);
  t.is((await e.client.listLeases({})).leases.length, 0, "and its care-of lease is released");
});

test("RegisterMigration, flow 3.2: an IPv6 VM gets a pool address for IPv4 correspondents (an address mapping)", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(4, "h4"));
  const c = await e.client.allocateCareOf({ hostId: "h4", vmId: "sv6", homeAddress: "2001:db8:1::2" });
  const m = await e.client.registerMigration({
    vmId: "sv6", homeAddress: "2001:db8:1::2", homeAgent: "2001:db8:1::1", sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6,
  });
  t.is(m.translatedIpv4, "198.51.100.2");
  const rules = (await e.client.getRuleTable({})).rules.filter((r) => r.key.startsWith("vm/sv6/"));
  const byCase = Object.fromEntries(rules.map((r) => [r.key, r.kind]));
  t.deepEqual(byCase["vm/sv6/reencap"], { $case: "reencap6in6To6in4", value: { careOfIpv6: "2001:db8:3::c000:264", careOfIpv4: "192.0.2.100", vmId: "sv6" } });
  t.deepEqual(byCase["vm/sv6/mapping"], { $case: "addressMapping", value: { ipv4: "198.51.100.2", ipv6: "2001:db8:1::2" } });
  const leases = await e.client.listLeases({});
  t.deepEqual(leases.leases.map((l) => [l.address, l.purpose]).sort(), [["192.0.2.100", LeasePurpose.LEASE_PURPOSE_CARE_OF], ["198.51.100.2", LeasePurpose.LEASE_PURPOSE_TRANSLATION]]);
});

test("RegisterMigration refuses bad requests, naming the field, and changes nothing", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "sv", homeAddress: "192.0.2.1" });
  const good = { vmId: "sv", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 };
  const before = await snapshot(e);
  const cases: [Partial<typeof good>, number, RegExp][] = [
    [{ vmId: "" }, status.INVALID_ARGUMENT, /^vm_id: /],
    [{ homeAddress: "192.0.2" }, status.INVALID_ARGUMENT, /^home_address: /],
    [{ homeAgent: "2001:db8:1::1" }, status.INVALID_ARGUMENT, /^home_agent: must be IPv4/],
    [{ homeAgent: "" }, status.INVALID_ARGUMENT, /^home_agent: is required/],
    [{ sourceHostId: "" }, status.INVALID_ARGUMENT, /^source_host_id: /],
    [{ destinationHostId: "" }, status.INVALID_ARGUMENT, /^destination_host_id: /],
    [{ careOfIpv4: "2001:db8::1" }, status.INVALID_ARGUMENT, /^care_of_ipv4: .*IPv6/],
    [{ careOfIpv6: "198.51.100.2" }, status.INVALID_ARGUMENT, /^care_of_ipv6: /],
    [{ careOfIpv6: "" }, status.INVALID_ARGUMENT, /^care_of_ipv6: is required/],
    [{ careOfIpv4: "198.51.100.77" }, status.FAILED_PRECONDITION, /^care_of_ipv4: 198\.51\.100\.77 is not leased to vm sv/],
  ];
  for (const [change, want, details] of cases) {
    const r = await code(e.client.registerMigration({ ...good, ...change }));
    t.is(r.code, want, JSON.stringify(change));
    t.regex(r.details, details);
  }
  t.is(await snapshot(e), before);
});

test("Heartbeat: hosts report their network; a hot host is advised to move a VM to one with headroom, across protocols too", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const gib = 1n << 30n;
  // The only host with headroom is on the IPv6 network: the advice crosses protocols.
  await e.client.heartbeat({ ...hostOn(6, "cool6"), resources: { cpuUsedCores: 1, cpuTotalCores: 16, memoryUsedBytes: 2n * gib, memoryTotalBytes: 64n * gib } });
  await e.client.heartbeat({ ...hostOn(4, "busy4", 11), resources: { cpuUsedCores: 7, cpuTotalCores: 8, memoryUsedBytes: 30n * gib, memoryTotalBytes: 32n * gib } });
  const hot = await e.client.heartbeat({
    ...hostOn(4, "hot4"),
    resources: { cpuUsedCores: 7.6, cpuTotalCores: 8, memoryUsedBytes: 8n * gib, memoryTotalBytes: 32n * gib },
    vms: [
      { vmId: "small", homeAddress: "192.0.2.50", cpuUsedCores: 0.2, memoryUsedBytes: gib },
      { vmId: "big", homeAddress: "192.0.2.51", cpuUsedCores: 3, memoryUsedBytes: 4n * gib },
    ],
  });
  t.is(hot.state, HostState.HOST_STATE_HOT);
  t.is(hot.advice.length, 1);
  t.like(hot.advice[0], { vmId: "big", sourceHostId: "hot4", destinationHostId: "cool6", crossProtocol: true },
    "moving 'small' would leave the host above the high watermark; 'big' brings it below");
  const again = await e.client.heartbeat({
    ...hostOn(4, "hot4"), resources: { cpuUsedCores: 7.6, cpuTotalCores: 8, memoryUsedBytes: 8n * gib, memoryTotalBytes: 32n * gib },
    vms: [{ vmId: "big", homeAddress: "192.0.2.51", cpuUsedCores: 3, memoryUsedBytes: 4n * gib }],
  });
  t.is(again.advice.length, 0, "the same VM is not advised again while it rests");
  const hosts = await e.client.listHosts({});
  t.deepEqual(hosts.hosts.map((h) => [h.hostId, h.state]), [
    ["busy4", HostState.HOST_STATE_HOT], ["cool6", HostState.HOST_STATE_UP], ["hot4", HostState.HOST_STATE_HOT],
  ]);
  const metrics = await (await fetch(`http://127.0.0.1:${e.running.metricsPort}/metrics`)).text();
  t.regex(metrics, /^mip46_migration_advice_total 1$/m);
});

test("Heartbeat refuses malformed reports, naming the field", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const base = hostOn(6, "h6");
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ hostId: "" }, /^host_id: /],
    [{ addresses: ["2001:db8:1::10"] }, /^addresses\[0\]: .*prefix length/],
    [{ addresses: ["2001:db8:1::10/64", "192.0.2.999/24"] }, /^addresses\[1\]: /],
    [{ resources: { ...base.resources, cpuUsedCores: -1 } }, /^resources\.cpu_used_cores: /],
    [{ resources: { ...base.resources, cpuTotalCores: Number.NaN } }, /^resources\.cpu_total_cores: /],
    [{ vms: [{ vmId: "", homeAddress: "", cpuUsedCores: 0, memoryUsedBytes: 0n }] }, /^vms\[0\]\.vm_id: /],
    [{ vms: [{ vmId: "v", homeAddress: "nope", cpuUsedCores: 0, memoryUsedBytes: 0n }] }, /^vms\[0\]\.home_address: /],
  ];
  for (const [change, details] of cases) {
    const r = await code(e.client.heartbeat({ ...base, ...change } as typeof base));
    t.is(r.code, status.INVALID_ARGUMENT, JSON.stringify(change, (_k, v) => (typeof v === "bigint" ? String(v) : v)));
    t.regex(r.details, details);
  }
  t.is((await e.client.listHosts({})).hosts.length, 0);
});

test("hosts that stop beating are marked down", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "quiet"));
  t.is((await e.client.listHosts({})).hosts[0].state, HostState.HOST_STATE_UP);
  const deadline = Date.now() + 15_000;
  while ((await e.client.listHosts({})).hosts[0].state !== HostState.HOST_STATE_DOWN && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  t.is((await e.client.listHosts({})).hosts[0].state, HostState.HOST_STATE_DOWN);
  const metrics = await (await fetch(`http://127.0.0.1:${e.running.metricsPort}/metrics`)).text();
  t.regex(metrics, /^mip46_hosts\{state="down"\} 1$/m);
  // Beating again brings it back.
  t.is((await e.client.heartbeat(hostOn(6, "quiet"))).state, HostState.HOST_STATE_UP);
});

test("MapCorrespondent gives an IPv6 correspondent a pool address and an address-mapping rule", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  const r = await e.client.mapCorrespondent({ ipv6Address: "2001:db8:c::10" });
  t.is(r.ipv4Address, "198.51.100.2");
  t.is((await e.client.mapCorrespondent({ ipv6Address: "2001:db8:c::10" })).ipv4Address, "198.51.100.2");
  const rule = (await e.client.getRuleTable({})).rules.find((x) => x.key === "correspondent/2001:db8:c::10");
  t.deepEqual(rule?.kind, { $case: "addressMapping", value: { ipv4: "198.51.100.2", ipv6: "2001:db8:c::10" } });
  t.is((await code(e.client.mapCorrespondent({ ipv6Address: "203.0.113.10" }))).code, status.INVALID_ARGUMENT);
});

test("addresses that are never a node's own are refused, naming the field, and change nothing (RFC 1122 §3.2.1.3, RFC 4291 §2.5.2, §2.5.5.2, §2.5.6, §2.7)", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const before = await snapshot(e);
  const homes: [string, RegExp][] = [
    ["0.0.0.0", /this network/], ["255.255.255.255", /limited broadcast/], ["224.0.0.1", /multicast/], ["127.0.0.1", /loopback/], ["240.0.0.1", /reserved/],
    ["::", /unspecified/], ["ff02::1", /multicast/], ["::1", /loopback/], ["::ffff:192.0.2.7", /IPv4-mapped/], ["fe80::1", /link-local/],
  ];
  for (const [home, why] of homes) {
    const got = await code(e.client.allocateCareOf({ hostId: "h6", vmId: "v", homeAddress: home }));
    t.is(got.code, status.INVALID_ARGUMENT, `AllocateCareOf ${home}`);
    t.regex(got.details, new RegExp(`^home_address: '.*' .*${why.source}`), home);
  }
  const correspondents: [string, RegExp][] = [["::", /unspecified/], ["ff02::1", /multicast/], ["::1", /loopback/], ["::ffff:192.0.2.7", /IPv4-mapped/], ["2001:db8:64::c000:201", /translation prefix/]];
  for (const [ipv6, why] of correspondents) {
    const got = await code(e.client.mapCorrespondent({ ipv6Address: ipv6 }));
    t.is(got.code, status.INVALID_ARGUMENT, `MapCorrespondent ${ipv6}`);
    t.regex(got.details, new RegExp(`^ipv6_address: .*${why.source}`), ipv6);
  }
  const same = await code(e.client.registerMigration({ vmId: "v", homeAddress: "192.0.2.1", homeAgent: "192.0.2.1", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: "198.51.100.2", careOfIpv6: "2001:db8:1::c000:201" }));
  t.is(same.code, status.INVALID_ARGUMENT);
  t.regex(same.details, /^home_agent: '192\.0\.2\.1' is the home address itself/);
  t.is(await snapshot(e), before, "no refused request changed the store");
});

test("a 128 KiB invalid address is quoted cut short, refused as INVALID_ARGUMENT, and the channel serves the next call", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const huge = "1".repeat(128 * 1024);
  const got = await code(e.client.allocateCareOf({ hostId: "h6", vmId: "v", homeAddress: huge }));
  t.is(got.code, status.INVALID_ARGUMENT);
  t.true(got.details.length < 300, `the message is short (${got.details.length} characters)`);
  t.regex(got.details, /^home_address: '1{64}…' \(131072 characters\)/);
  const ok = await e.client.allocateCareOf({ hostId: "h6", vmId: "v", homeAddress: "192.0.2.1" });
  t.is(ok.careOfIpv4, "198.51.100.2", "the same channel answers the next call");
});

test("ReleaseCareOf never leaves a binding behind: a bound care-of address is refused, naming the binding; an unbound one, prepared, takes its waiting rules with it", async (t) => {
  const e = await startTestEngine();
  t.teardown(() => e.stop());
  await e.client.heartbeat(hostOn(6, "h6"));
  const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "va", homeAddress: "192.0.2.1" });
  await e.client.registerMigration({ vmId: "va", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
  const before = await snapshot(e);
  for (const req of [{ address: c.careOfIpv4, vmId: "" }, { address: "", vmId: "va" }]) {
    const got = await code(e.client.releaseCareOf(req));
    t.is(got.code, status.FAILED_PRECONDITION, JSON.stringify(req));
    t.regex(got.details, new RegExp(`^address: ${c.careOfIpv4.replaceAll(".", "\\.")} is the care-of address of vm va's binding at h6 \\(migration `));
  }
  t.is(await snapshot(e), before, "the refused releases changed nothing");

  // A migration prepared, never activated: releasing its lease removes the rules that waited for it.
  const p = await e.client.allocateCareOf({ hostId: "h6", vmId: "vb", homeAddress: "192.0.2.5" });
  await e.client.prepareMigration({ vmId: "vb", homeAddress: "192.0.2.5", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: p.careOfIpv4, careOfIpv6: p.careOfIpv6 });
  t.true((await e.client.getRuleTable({})).rules.some((r) => r.key.startsWith("vm/vb/")), "vb's prepared rules wait");
  await e.client.releaseCareOf({ address: p.careOfIpv4, vmId: "" });
  const rules = (await e.client.getRuleTable({})).rules;
  t.false(rules.some((r) => r.key.startsWith("vm/vb/")), "vb's rules went with its lease");
  t.true(rules.some((r) => r.key.startsWith("vm/va/")), "va's binding and rules are untouched");
  t.deepEqual((await e.client.listBindings({})).bindings.map((b) => b.vmId), ["va"]);
  t.deepEqual((await e.client.listLeases({})).leases.map((l) => l.holder).sort(), ["va"]);
});
