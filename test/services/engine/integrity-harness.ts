// What the integrity tests (integrity.test.ts, takeover.test.ts) share: an engine on either store,
// with its log lines kept, a one-member etcd cluster for the etcd runs, and the stored state as
// comparable lists.
import type { ExecutionContext, TestFn } from "ava";
import { LeasePurpose } from "../../../gen/mip46/v1/control.js";
import { createLogger } from "../../../lib/log.js";
import { hostOn, startTestEngine, tempDir, type TestEngine } from "../../../harness/engine.js";
import { startEtcdCluster, type EtcdCluster } from "../../../harness/etcd.js";

let cluster: EtcdCluster | undefined;
let prefixes = 0;

/** Starts the etcd cluster before the file's tests and stops it after. */
export function useEtcd(test: TestFn): void {
  test.before(async () => {
    cluster = await startEtcdCluster(1);
  });
  test.after.always(async () => {
    await cluster?.stop();
  });
}

export const STORES = ["sqlite", "etcd"] as const;

/** An engine on the given store, with its log lines kept; hosts are not marked down while a test runs. */
export function engineOn(t: ExecutionContext, kind: (typeof STORES)[number]): Promise<TestEngine & { logs: Record<string, unknown>[] }> {
  return engineOnWith(t, kind, {});
}

/** engineOn with settings of the lab configuration overridden. */
export async function engineOnWith(t: ExecutionContext, kind: (typeof STORES)[number], overrides: Record<string, unknown>): Promise<TestEngine & { logs: Record<string, unknown>[] }> {
  const store = kind === "sqlite" ? {} : {
    replica: "r0",
    store: { kind: "etcd", etcd: { endpoints: cluster!.endpoints, prefix: `/mip46-integrity-${process.pid}-${++prefixes}`, leaderTtlSeconds: 1 } },
  };
  const logs: Record<string, unknown>[] = [];
  const log = createLogger({}, "info", (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
  const e = await startTestEngine({ ...store, hosts: { heartbeatIntervalSeconds: 1, downAfterSeconds: 600 }, ...overrides }, tempDir(), log);
  t.teardown(() => e.stop());
  return { ...e, logs };
}

/** The stored state as comparable lists: leases, bindings and rule keys (each sorted), and cooling addresses per pool. */
export async function parts(e: TestEngine) {
  const [leases, bindings, rules, pools] = await Promise.all([e.client.listLeases({}), e.client.listBindings({}), e.client.getRuleTable({}), e.client.listPools({})]);
  return {
    leases: leases.leases.map((l) => `${l.address} ${l.holder} ${LeasePurpose[l.purpose]}`).sort(),
    bindings: bindings.bindings.map((b) => `${b.vmId}@${b.hostId} ${b.careOfIpv4} ${b.translatedIpv4}`).sort(),
    rules: rules.rules.map((r) => r.key).sort(),
    cooling: Object.fromEntries(pools.pools.map((p) => [p.name, p.cooling])),
  };
}


/** A heartbeat of `host` that lists the VMs running there. */
export function beatListing(host: ReturnType<typeof hostOn>, vms: [string, string][]) {
  return { ...host, vms: vms.map(([vmId, homeAddress]) => ({ vmId, homeAddress, cpuUsedCores: 0, memoryUsedBytes: 0n })) };
}
