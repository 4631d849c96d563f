// State that cannot contradict itself (issue 11): registrations checked against everything the
// engine knows, on the embedded store and on a real etcd cluster. Each refused call is made
// through the real gRPC API, and the whole stored state (pools, leases, bindings, hosts, rules,
// migrations) is compared before and after.
import test from "ava";
import { status } from "@grpc/grpc-js";
import { LeasePurpose } from "../../../gen/mip46/v1/control.js";
import { failure, hostOn, storedState } from "../../../harness/engine.js";
import { engineOn, engineOnWith, parts, STORES, useEtcd } from "./integrity-harness.js";

useEtcd(test);

for (const kind of STORES) {
  test(`${kind}: RegisterMigration and PrepareMigration refuse what contradicts the engine, naming the field, and change nothing`, async (t) => {
    const e = await engineOn(t, kind);
    await e.client.heartbeat(hostOn(6, "h6"));
    await e.client.heartbeat(hostOn(6, "h7", 11));
    await e.client.heartbeat(hostOn(4, "h4"));
    // vm b is bound at h6 with home 192.0.2.7; vm a and vm v6 hold care-of leases, not yet registered.
    const cb = await e.client.allocateCareOf({ hostId: "h6", vmId: "b", homeAddress: "192.0.2.7" });
    await e.client.registerMigration({ vmId: "b", homeAddress: "192.0.2.7", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: cb.careOfIpv4, careOfIpv6: cb.careOfIpv6 });
    const ca = await e.client.allocateCareOf({ hostId: "h6", vmId: "a", homeAddress: "192.0.2.1" });
    const c6 = await e.client.allocateCareOf({ hostId: "h4", vmId: "v6", homeAddress: "2001:db8:1::2" });
    t.not(c6.careOfIpv6, "2001:db8:3::c000:2c7", "the wrong care-of address below is another one");
    // vm c: its host reports it with another home address than the one it registers.
    const cc = await e.client.allocateCareOf({ hostId: "h7", vmId: "c", homeAddress: "192.0.2.9" });
    await e.client.heartbeat({ ...hostOn(6, "h7", 11), vms: [{ vmId: "c", homeAddress: "192.0.2.90", cpuUsedCores: 0, memoryUsedBytes: 0n }] });
    const a = { vmId: "a", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: ca.careOfIpv4, careOfIpv6: ca.careOfIpv6 };
    const v6 = { vmId: "v6", homeAddress: "2001:db8:1::2", homeAgent: "2001:db8:1::1", sourceHostId: "h6", destinationHostId: "h4", careOfIpv4: c6.careOfIpv4, careOfIpv6: c6.careOfIpv6 };
    const b = { vmId: "b", homeAddress: "192.0.2.7", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: cb.careOfIpv4, careOfIpv6: cb.careOfIpv6 };
    const c = { vmId: "c", homeAddress: "192.0.2.9", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h7", careOfIpv4: cc.careOfIpv4, careOfIpv6: cc.careOfIpv6 };
    const before = await storedState(e.client);
    const cases: [string, typeof a, RegExp][] = [
      ["an unknown destination", { ...a, destinationHostId: "nobody" }, /^destination_host_id: host nobody is unknown/],
      ["a destination that does not hold the care-of lease", { ...a, destinationHostId: "h7" }, /^destination_host_id: vm a's care-of address 198\.51\.100\.\d+ is leased for host h6, not h7/],
      ["an IPv6 care-of address the engine never gave out (flow 3.1)", { ...a, careOfIpv6: "2001:db8:1::99" }, /^care_of_ipv6: '2001:db8:1::99' is not the IPv6 care-of address the engine derived for vm a at host h6 \(2001:db8:1::c000:201\)/],
      ["an IPv6 care-of address the engine never gave out (flow 3.2)", { ...v6, careOfIpv6: "2001:db8:3::c000:2c7" }, new RegExp(`^care_of_ipv6: .* \\(${c6.careOfIpv6}\\)`)],
      ["another VM's home address", { ...a, homeAddress: "192.0.2.7" }, /^home_address: 192\.0\.2\.7 is the home address of vm b, bound at h6 \(migration [0-9a-f-]+\); two VMs cannot hold one home address/],
      ["a bound VM's home address changed", { ...b, homeAddress: "192.0.2.8" }, /^home_address: '192\.0\.2\.8' is not vm b's home address: its binding at h6 .* has 192\.0\.2\.7/],
      ["a home address the destination's heartbeat contradicts", c, /^home_address: '192\.0\.2\.9' is not vm c's home address: host h7 reports it with 192\.0\.2\.90/],
      ["a home agent off the home network (IPv4)", { ...a, homeAgent: "203.0.113.1" }, /^home_agent: '203\.0\.113\.1' is not on vm a's home network ipv4-lab \(192\.0\.2\.0\/24\)/],
      ["a home agent off the home network (IPv6)", { ...v6, homeAgent: "2001:db8:9::1" }, /^home_agent: '2001:db8:9::1' is not on vm v6's home network ipv6-lab \(2001:db8:1::\/64\)/],
    ];
    for (const [what, req, details] of cases) {
      for (const [rpc, call] of [["RegisterMigration", () => e.client.registerMigration(req)], ["PrepareMigration", () => e.client.prepareMigration(req)]] as const) {
        const got = await failure(call());
        t.is(got.code, status.FAILED_PRECONDITION, `${rpc}: ${what}`);
        t.regex(got.details, details, `${rpc}: ${what}`);
      }
    }
    const home = await failure(e.client.registerMigration({ ...a, destinationHostId: "nobody", careOfIpv4: "", careOfIpv6: "" }));
    t.is(home.code, status.FAILED_PRECONDITION, "a move home to an unknown host");
    t.regex(home.details, /^destination_host_id: host nobody is unknown/);
    const offHome = await failure(e.client.registerMigration({ ...b, destinationHostId: "h7", careOfIpv4: "", careOfIpv6: "" }));
    t.is(offHome.code, status.FAILED_PRECONDITION, "a move home declared by a host off the VM's home network");
    t.regex(offHome.details, /^destination_host_id: host h7 is on 2001:db8:1::\/64, not vm b's home network ipv4-lab \(192\.0\.2\.0\/24\): only a host there registers the VM home/);
    const abort = await failure(e.client.abortMigration({ vmId: "a", hostId: "h7" }));
    t.is(abort.code, status.FAILED_PRECONDITION, "an abort by a host the migration was not prepared for");
    t.regex(abort.details, /^host_id: vm a's care-of address 198\.51\.100\.\d+ is leased for host h6, not h7: only that host aborts its migration/);
    t.is(await storedState(e.client), before, "no refused call changed the stored state");

    // The same registrations with what the engine gave out are taken.
    t.false((await e.client.registerMigration(a)).returnedHome);
    t.false((await e.client.registerMigration(v6)).returnedHome);
    const bindings = (await e.client.listBindings({})).bindings.map((x) => `${x.vmId} ${x.homeAddress} ${x.hostId} ${x.careOfIpv6}`);
    t.deepEqual(bindings, ["a 192.0.2.1 h6 2001:db8:1::c000:201", "b 192.0.2.7 h6 2001:db8:1::c000:207", `v6 2001:db8:1::2 h4 ${c6.careOfIpv6}`]);
  });
}

for (const kind of STORES) {
  test(`${kind}: ReleaseCareOf refuses a lease a binding uses; with force the binding, its rules and its translation lease or mapping go with it; each release is audited`, async (t) => {
    const e = await engineOn(t, kind);
    await e.client.heartbeat(hostOn(6, "h6"));
    await e.client.heartbeat(hostOn(4, "h4"));
    const register = async (vmId: string, home: string, ha: string, hostId: string) => {
      const c = await e.client.allocateCareOf({ hostId, vmId, homeAddress: home });
      const r = await e.client.registerMigration({ vmId, homeAddress: home, homeAgent: ha, sourceHostId: "src", destinationHostId: hostId, careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 });
      return { careOf: c.careOfIpv4, translated: r.translatedIpv4 };
    };
    // vm a: flow 3.1. vm p6: flow 3.2 with a translation lease of its own. vm m6: flow 3.2 with
    // the pool address it was mapped to while home (MapCorrespondent), kept as its translated address.
    const a = await register("a", "192.0.2.1", "192.0.2.2", "h6");
    const p6 = await register("p6", "2001:db8:1::2", "2001:db8:1::1", "h4");
    const mapped = (await e.client.mapCorrespondent({ ipv6Address: "2001:db8:1::3" })).ipv4Address;
    const m6 = await register("m6", "2001:db8:1::3", "2001:db8:1::1", "h4");
    t.is(m6.translated, mapped);
    const start = await parts(e);
    t.deepEqual(start.bindings, [`a@h6 ${a.careOf} `, `m6@h4 ${m6.careOf} ${mapped}`, `p6@h4 ${p6.careOf} ${p6.translated}`]);

    const before = await storedState(e.client);
    const refusals: [string, Parameters<typeof e.client.releaseCareOf>[0], RegExp][] = [
      ["a care-of lease by VM", { address: "", vmId: "p6" }, new RegExp(`^address: ${p6.careOf} is the care-of address of vm p6's binding at h4 \\(migration [0-9a-f-]+\\)`)],
      ["a care-of lease by address", { address: a.careOf, vmId: "" }, /^address: .* is the care-of address of vm a's binding at h6/],
      ["a translation lease", { address: p6.translated, vmId: "" }, /^address: .* is the translated address of vm p6's binding at h4/],
      ["a correspondent mapping a binding uses", { address: mapped, vmId: "" }, /^address: .* is the translated address of vm m6's binding at h4/],
    ];
    for (const [what, req, details] of refusals) {
      const got = await failure(e.client.releaseCareOf(req));
      t.is(got.code, status.FAILED_PRECONDITION, what);
      t.regex(got.details, details, what);
    }
    t.is(await storedState(e.client), before, "no refused release changed the stored state");
    t.false(e.logs.some((l) => l.msg === "operator action" && l.what === "ReleaseCareOf"), "and none was audited as done");

    // Forced, by VM: p6's binding, its rules, its care-of and translation leases go; nothing else.
    const r1 = await e.client.releaseCareOf({ address: "", vmId: "p6", force: true });
    t.is(r1.address, p6.careOf);
    const after1 = await parts(e);
    t.deepEqual(after1.bindings, start.bindings.filter((b) => !b.startsWith("p6@")));
    t.deepEqual(after1.rules, start.rules.filter((k) => !k.startsWith("vm/p6/")));
    t.true(start.rules.some((k) => k.startsWith("vm/p6/")));
    t.deepEqual(after1.leases, start.leases.filter((l) => !l.startsWith(`${p6.careOf} `) && !l.startsWith(`${p6.translated} `)));
    t.deepEqual(after1.cooling, { ...start.cooling, engine: start.cooling.engine + 1, "ipv4-lab": start.cooling["ipv4-lab"] + 1 }, "both addresses cool down");

    // Forced, a correspondent mapping: m6's binding and rules go with the mapping and its lease; m6 keeps its care-of lease.
    await e.client.releaseCareOf({ address: mapped, vmId: "", force: true });
    const after2 = await parts(e);
    t.deepEqual(after2.bindings, [`a@h6 ${a.careOf} `]);
    t.deepEqual(after2.rules, after1.rules.filter((k) => !k.startsWith("vm/m6/") && k !== "correspondent/2001:db8:1::3"));
    t.true(after1.rules.includes("correspondent/2001:db8:1::3"));
    t.deepEqual(after2.leases, after1.leases.filter((l) => !l.startsWith(`${mapped} `)));
    t.true(after2.leases.includes(`${m6.careOf} m6 LEASE_PURPOSE_CARE_OF`));

    // A release no binding stops needs no force; a second one finds nothing.
    await e.client.releaseCareOf({ address: "", vmId: "m6" });
    t.is((await failure(e.client.releaseCareOf({ address: "", vmId: "m6", force: true }))).code, status.NOT_FOUND);

    const audit = e.logs.filter((l) => l.msg === "operator action");
    t.deepEqual(audit.map((l) => [l.who, l.what, (l.request as { force?: boolean }).force]), [
      ["plaintext", "MapCorrespondent", undefined],
      ["plaintext", "ReleaseCareOf", true],
      ["plaintext", "ReleaseCareOf", true],
      ["plaintext", "ReleaseCareOf", false],
    ]);
    const forced = audit[1] as { before: { lease: { address: string }; binding: { vmId: string } }; after: { cooling: { address: string }[]; binding: null } };
    t.is(forced.before.lease.address, p6.careOf, "before: the lease");
    t.is(forced.before.binding.vmId, "p6", "before: the binding it removed");
    t.deepEqual(forced.after.cooling.map((c) => c.address).sort(), [p6.careOf, p6.translated].sort(), "after: what cools down");
    t.is(forced.after.binding, null);
    const map = audit[0] as { before: { lease: null }; after: { lease: { address: string; holder: string } } };
    t.is(map.before.lease, null);
    t.like(map.after.lease, { address: mapped, holder: "2001:db8:1::3" });
  });
}

for (const kind of STORES) {
  test(`${kind}: one home agent per home network: learned and stored with the first registration, or configured; another one is refused, naming home_agent`, async (t) => {
    const e = await engineOn(t, kind);
    await e.client.heartbeat(hostOn(6, "h6"));
    await e.client.heartbeat(hostOn(4, "h4"));
    const move = async (vmId: string, home: string, ha: string, hostId: string) => {
      const c = await e.client.allocateCareOf({ hostId, vmId, homeAddress: home });
      return { vmId, homeAddress: home, homeAgent: ha, sourceHostId: "src", destinationHostId: hostId, careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 };
    };
    t.is(await e.running.store.getHomeAgent("192.0.2.0/24"), undefined, "nothing learned before the first registration");
    await e.client.registerMigration(await move("a", "192.0.2.1", "192.0.2.2", "h6"));
    await e.client.registerMigration(await move("v", "2001:db8:1::2", "2001:db8:1::1", "h4"));
    t.deepEqual(await e.running.store.getHomeAgent("192.0.2.0/24"), { network: "192.0.2.0/24", homeAgent: "192.0.2.2", vmId: "a" });
    t.deepEqual(await e.running.store.getHomeAgent("2001:db8:1::/64"), { network: "2001:db8:1::/64", homeAgent: "2001:db8:1::1", vmId: "v" });
    const d = await move("d", "192.0.2.3", "192.0.2.254", "h6");
    const w = await move("w", "2001:db8:1::3", "2001:db8:1::fe", "h4");
    const before = await storedState(e.client);
    for (const [req, details] of [
      [d, /^home_agent: '192\.0\.2\.254' is not the home agent of home network 192\.0\.2\.0\/24: 192\.0\.2\.2 is \(learned from vm a's registration\)/],
      [w, /^home_agent: '2001:db8:1::fe' is not the home agent of home network 2001:db8:1::\/64: 2001:db8:1::1 is \(learned from vm v's registration\)/],
    ] as const) {
      for (const call of [() => e.client.registerMigration(req), () => e.client.prepareMigration(req), () => e.client.registerMigration({ ...req, careOfIpv4: "", careOfIpv6: "", destinationHostId: req === d ? "h4" : "h6" })]) {
        const got = await failure(call());
        t.is(got.code, status.FAILED_PRECONDITION);
        t.regex(got.details, details);
      }
    }
    t.is(await storedState(e.client), before, "no refused registration changed the stored state");
    // The record outlives the bindings it was learned from.
    await e.client.registerMigration({ ...d, homeAgent: "192.0.2.2", careOfIpv4: "", careOfIpv6: "", destinationHostId: "h4" });
    await e.client.registerMigration({ vmId: "a", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "", destinationHostId: "h4", careOfIpv4: "", careOfIpv6: "" });
    t.deepEqual((await parts(e)).bindings, [`v@h4 ${(await e.client.listLeases({ holder: "v" })).leases.find((l) => l.purpose === LeasePurpose.LEASE_PURPOSE_CARE_OF)!.address} ${(await e.client.listBindings({ vmId: "v" })).bindings[0].translatedIpv4}`]);
    t.is((await failure(e.client.registerMigration(d))).code, status.FAILED_PRECONDITION);
    t.deepEqual(await e.running.store.getHomeAgent("192.0.2.0/24"), { network: "192.0.2.0/24", homeAgent: "192.0.2.2", vmId: "a" });
  });

  test(`${kind}: a configured homeAgent is the one: another is refused, and nothing is learned`, async (t) => {
    const e = await engineOnWith(t, kind, {
      segments: [{ name: "ipv4-lab", network: "192.0.2.0/24", prefix: "2001:db8:3::/96", careOfRange: "192.0.2.100-192.0.2.199", homeAgent: "192.0.2.1" }],
    });
    await e.client.heartbeat(hostOn(6, "h6"));
    const c = await e.client.allocateCareOf({ hostId: "h6", vmId: "a", homeAddress: "192.0.2.5" });
    const req = { vmId: "a", homeAddress: "192.0.2.5", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c.careOfIpv4, careOfIpv6: c.careOfIpv6 };
    const before = await storedState(e.client);
    const got = await failure(e.client.registerMigration(req));
    t.is(got.code, status.FAILED_PRECONDITION);
    t.regex(got.details, /^home_agent: '192\.0\.2\.2' is not the home agent of vm a's home network ipv4-lab \(192\.0\.2\.0\/24\): the configuration names 192\.0\.2\.1$/);
    t.is(await storedState(e.client), before);
    await e.client.registerMigration({ ...req, homeAgent: "192.0.2.1" });
    t.deepEqual((await e.client.listBindings({})).bindings.map((b) => `${b.vmId} ${b.homeAgent}`), ["a 192.0.2.1"]);
    t.is(await e.running.store.getHomeAgent("192.0.2.0/24"), undefined, "a configured agent is not learned");
  });

  test(`${kind}: one prepared migration per VM: a RegisterMigration or PrepareMigration with other care-of addresses than the prepared ones is refused until AbortMigration`, async (t) => {
    const e = await engineOnWith(t, kind, {
      ipv6Networks: [{ name: "ipv6-lab", network: "2001:db8:1::/64" }, { name: "ipv6-b", network: "2001:db8:2::/64" }],
    });
    await e.client.heartbeat(hostOn(6, "h6"));
    await e.client.heartbeat(hostOn(6, "h7", 11));
    const c1 = await e.client.allocateCareOf({ hostId: "h6", vmId: "a", homeAddress: "192.0.2.1" });
    const first = { vmId: "a", homeAddress: "192.0.2.1", homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: c1.careOfIpv4, careOfIpv6: c1.careOfIpv6 };
    t.true((await e.client.prepareMigration(first)).prepared);
    // h6 moves to another IPv6 network: its renewed lease keeps the address, the derived IPv6 care-of address changes.
    await e.client.heartbeat({ ...hostOn(6, "h6"), addresses: ["2001:db8:2::10/64"] });
    const c2 = await e.client.allocateCareOf({ hostId: "h6", vmId: "a", homeAddress: "192.0.2.1" });
    t.is(c2.careOfIpv4, c1.careOfIpv4);
    t.is(c2.careOfIpv6, "2001:db8:2::c000:201");
    const second = { ...first, careOfIpv6: c2.careOfIpv6 };
    const before = await storedState(e.client);
    for (const call of [() => e.client.registerMigration(second), () => e.client.prepareMigration(second)]) {
      const got = await failure(call());
      t.is(got.code, status.FAILED_PRECONDITION);
      t.regex(got.details, new RegExp(`^care_of_ipv6: vm a's migration to host h6 is prepared with care-of ${c1.careOfIpv4.replaceAll(".", "\\.")} and 2001:db8:1::c000:201 \\(home agent 192\\.0\\.2\\.2\\), not '${c1.careOfIpv4.replaceAll(".", "\\.")}' and '2001:db8:2::c000:201'`));
    }
    // The prepared one's addresses are not the engine's any more (derived on h6's network now).
    t.regex((await failure(e.client.registerMigration(first))).details, /^care_of_ipv6: '2001:db8:1::c000:201' is not the IPv6 care-of address the engine derived/);
    // Nor may another host prepare it: the lease is h6's.
    t.regex((await failure(e.client.prepareMigration({ ...first, destinationHostId: "h7" }))).details, /^destination_host_id: vm a's care-of address .* is leased for host h6, not h7/);
    t.is(await storedState(e.client), before, "nothing refused changed the stored state");

    await e.client.abortMigration({ vmId: "a", hostId: "h6" });
    t.deepEqual(await parts(e), { leases: [], bindings: [], rules: (await parts(e)).rules.filter((k) => !k.startsWith("vm/")), cooling: { engine: 1, "ipv4-lab": 0 } });
    const c3 = await e.client.allocateCareOf({ hostId: "h6", vmId: "a", homeAddress: "192.0.2.1" });
    const third = { ...first, careOfIpv4: c3.careOfIpv4, careOfIpv6: c3.careOfIpv6 };
    t.true((await e.client.prepareMigration(third)).prepared);
    await e.client.registerMigration(third);
    t.deepEqual((await parts(e)).bindings, [`a@h6 ${c3.careOfIpv4} `]);
  });
}
