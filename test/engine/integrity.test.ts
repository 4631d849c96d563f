// State that cannot contradict itself (issue 11): registrations checked against everything the
// engine knows, on the embedded store and on a real etcd cluster. Each refused call is made
// through the real gRPC API, and the whole stored state (pools, leases, bindings, hosts, rules,
// migrations) is compared before and after.
import test, { type ExecutionContext } from "ava";
import { status } from "@grpc/grpc-js";
import { failure, hostOn, startTestEngine, storedState, type TestEngine } from "../../harness/engine.js";
import { startEtcdCluster, type EtcdCluster } from "../../harness/etcd.js";

let cluster: EtcdCluster | undefined;
let prefixes = 0;

test.before(async () => {
  cluster = await startEtcdCluster(1);
});
test.after.always(async () => {
  await cluster?.stop();
});

const STORES = ["sqlite", "etcd"] as const;

/** An engine on the given store; hosts are not marked down while a test runs. */
async function engineOn(t: ExecutionContext, kind: (typeof STORES)[number]): Promise<TestEngine> {
  const store = kind === "sqlite" ? {} : {
    replica: "r0",
    store: { kind: "etcd", etcd: { endpoints: cluster!.endpoints, prefix: `/mip46-integrity-${process.pid}-${++prefixes}`, leaderTtlSeconds: 1 } },
  };
  const e = await startTestEngine({ ...store, hosts: { heartbeatIntervalSeconds: 1, downAfterSeconds: 600 } });
  t.teardown(() => e.stop());
  return e;
}

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
    t.is(await storedState(e.client), before, "no refused call changed the stored state");

    // The same registrations with what the engine gave out are taken.
    t.false((await e.client.registerMigration(a)).returnedHome);
    t.false((await e.client.registerMigration(v6)).returnedHome);
    const bindings = (await e.client.listBindings({})).bindings.map((x) => `${x.vmId} ${x.homeAddress} ${x.hostId} ${x.careOfIpv6}`);
    t.deepEqual(bindings, ["a 192.0.2.1 h6 2001:db8:1::c000:201", "b 192.0.2.7 h6 2001:db8:1::c000:207", `v6 2001:db8:1::2 h4 ${c6.careOfIpv6}`]);
  });
}
