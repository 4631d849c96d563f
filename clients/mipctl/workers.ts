// mipctl workers, wait and cluster (issue 14 §3): the data-plane workers on the rule push, waiting
// until they applied a revision, and the engine replicas with their etcd.
import type { ControlClient } from "../control.js";
import { GetClusterResponse, ListWorkersResponse } from "../../gen/mip46/v1/control.js";
import { renderTable } from "./table.js";
import { type Output, time } from "./where.js";

const seconds = (ms: bigint) => `${(Number(ms) / 1000).toFixed(1)} s`;

/** The workers connected to the replica that answers, with what they applied and how far behind they are. */
export async function workers(client: ControlClient): Promise<Output> {
  const r = await client.listWorkers({});
  const table = renderTable(["WORKER", "APPLIED", "SENT", "LAG", "LAG TIME", "CONNECTED"],
    r.workers.map((w) => [w.workerId, String(w.appliedRevision), String(w.sentRevision), String(w.lagRevisions), seconds(w.lagMs), time(w.connectedAtMs)]));
  return { json: ListWorkersResponse.toJSON(r), table: `rule table revision ${r.revision}\n${table}` };
}

export class WaitTimeout extends Error {}

/**
 * Waits until every connected worker has applied `revision` (OVN's --wait=hv), polling; the rule
 * table's revision now when `revision` is undefined. WaitTimeout names the workers still behind.
 * With no worker connected there is nothing to wait for.
 */
export async function waitApplied(client: ControlClient, revision: bigint | undefined, timeoutMs: number): Promise<Output> {
  const deadline = Date.now() + timeoutMs;
  let target = revision;
  for (let pause = 50; ; pause = Math.min(pause * 2, 500)) {
    const r = await client.listWorkers({});
    const want = (target ??= r.revision);
    const behind = r.workers.filter((w) => w.appliedRevision < want);
    if (behind.length === 0) {
      return { json: { revision: want.toString(), workers: r.workers.map((w) => w.workerId) },
        table: r.workers.length === 0 ? `revision ${want}: no worker is connected to this engine\n` : `revision ${want} applied by ${r.workers.map((w) => w.workerId).join(", ")}\n` };
    }
    if (Date.now() + pause > deadline) {
      throw new WaitTimeout(`revision ${want} not applied within ${timeoutMs / 1000} s by ${behind.map((w) => `${w.workerId} (at ${w.appliedRevision})`).join(", ")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/** The replicas, which one leads, and each etcd member's health (as ovn-sbctl show / etcdctl endpoint status). */
export async function cluster(client: ControlClient): Promise<Output> {
  const r = await client.getCluster({});
  const head = `store ${r.store}; answered by ${r.replica}; leader ${r.leaderReplica || "(none now)"}\n`;
  const replicas = renderTable(["REPLICA", "LISTEN", "STARTED", "VERSION", "ROLE"],
    r.replicas.map((x) => [x.replica, x.listen, time(x.startedAtMs), x.version || "-", x.replica === r.leaderReplica ? "leader" : "follower"]));
  const etcd = r.etcd.length === 0 ? "" : renderTable(["ETCD ENDPOINT", "HEALTH", "RAFT LEADER", "VERSION", "DB SIZE", "RAFT INDEX", "ERROR"],
    r.etcd.map((m) => [m.endpoint, m.healthy ? "healthy" : "unhealthy", m.leader ? "yes" : "", m.version || "-", m.healthy ? `${(Number(m.dbSizeBytes) / 1048576).toFixed(1)} MiB` : "-", m.healthy ? String(m.raftIndex) : "-", m.error]));
  return { json: GetClusterResponse.toJSON(r), table: head + replicas + etcd };
}
