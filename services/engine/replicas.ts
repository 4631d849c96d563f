// What `mipctl cluster` shows (issue 14 §3), and the etcd connectivity metric: the engine
// replicas, which one leads, and the health of each etcd member.
//
// Each replica on etcd keeps a key `replicas/<replica>` (its gRPC address, start time, version)
// on an etcd lease of its own, so a replica that dies drops out of the list when its lease runs
// out. Every `probeMs` it asks each etcd endpoint for its status (Maintenance.Status, one client
// per endpoint, so that one member's answer is that member's), which the metric reports.
import { Etcd3, type Lease } from "etcd3";
import type { Logger } from "../../lib/log.js";
import type { EtcdStore } from "../store/etcd.js";

export interface EtcdMemberHealth {
  endpoint: string;
  healthy: boolean;
  /** This member's view: whether it is the raft leader, its etcd version, database size, raft index. */
  leader: boolean;
  version: string;
  dbSizeBytes: number;
  raftIndex: bigint;
  /** Why it is not healthy ("" when it is). */
  error: string;
  checkedAtMs: number;
}

export interface ReplicaRecord {
  replica: string;
  listen: string;
  startedAtMs: number;
  version: string;
}

export interface ClusterStatus {
  store: "sqlite" | "etcd";
  /** The replica that answers. */
  replica: string;
  leaderReplica: string;
  replicas: ReplicaRecord[];
  etcd: EtcdMemberHealth[];
}

/** What the API reads: the status now (probing etcd afresh), and the last probe's for the metric. */
export interface ClusterView {
  status(): Promise<ClusterStatus>;
  lastProbe(): EtcdMemberHealth[];
}

/** The embedded store: one engine, its own leader, no etcd. */
export function soleEngine(self: ReplicaRecord): ClusterView {
  return {
    status: async () => ({ store: "sqlite", replica: self.replica, leaderReplica: self.replica, replicas: [self], etcd: [] }),
    lastProbe: () => [],
  };
}

const PROBE_TIMEOUT_MS = 2000;

export class EtcdReplicas implements ClusterView {
  private lease?: Lease;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private last: EtcdMemberHealth[] = [];
  private readonly probes: { endpoint: string; client: Etcd3 }[];

  constructor(
    private readonly store: EtcdStore, private readonly self: ReplicaRecord, endpoints: string[],
    private readonly leader: () => string, private readonly log: Logger, private readonly ttlSeconds = 10, private readonly probeMs = 10_000,
  ) {
    this.probes = endpoints.map((endpoint) => ({
      endpoint, client: new Etcd3({ hosts: [endpoint.includes("://") ? endpoint : `http://${endpoint}`], dialTimeout: PROBE_TIMEOUT_MS }),
    }));
  }

  /** Puts this replica's key on its lease, and starts the periodic probe. */
  async start(): Promise<void> {
    await this.register();
    await this.probe();
    this.timer = setInterval(() => void this.probe(), this.probeMs);
    this.timer.unref();
  }

  /** This replica's key on a fresh lease; a lease etcd lets go (an outage longer than its TTL) is made again. */
  private async register(): Promise<void> {
    if (this.stopped) return;
    const lease = (this.lease = this.store.client.lease(this.ttlSeconds, { autoKeepAlive: true }));
    lease.on("lost", (e: Error) => {
      if (this.stopped) return;
      this.log.warn("replica key lost with its etcd lease; putting it again", { err: e.message });
      setTimeout(() => void this.register().catch(() => undefined), 1000).unref();
    });
    await lease.put(this.store.k(`replicas/${this.self.replica}`)).value(JSON.stringify(this.self)).exec();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.lease?.revoke().catch(() => undefined);
    for (const p of this.probes) p.client.close();
  }

  lastProbe(): EtcdMemberHealth[] {
    return this.last;
  }

  async status(): Promise<ClusterStatus> {
    const [etcd, kv] = await Promise.all([this.probe(), this.store.client.getAll().prefix(this.store.k("replicas/")).strings()]);
    const replicas = Object.values(kv).map((v) => JSON.parse(v) as ReplicaRecord).sort((a, b) => a.replica.localeCompare(b.replica));
    return { store: "etcd", replica: this.self.replica, leaderReplica: this.leader(), replicas, etcd };
  }

  /** Each endpoint's status, each within PROBE_TIMEOUT_MS. */
  private async probe(): Promise<EtcdMemberHealth[]> {
    const now = Date.now();
    this.last = await Promise.all(this.probes.map(async ({ endpoint, client }) => {
      try {
        const s = await client.maintenance.status({ deadline: new Date(Date.now() + PROBE_TIMEOUT_MS) });
        return {
          endpoint, healthy: true, leader: s.leader === s.header.member_id, version: s.version, dbSizeBytes: Number(s.dbSize),
          raftIndex: BigInt(s.raftIndex), error: "", checkedAtMs: now,
        };
      } catch (e) {
        return { endpoint, healthy: false, leader: false, version: "", dbSizeBytes: 0, raftIndex: 0n, error: (e as Error).message.slice(0, 200), checkedAtMs: now };
      }
    }));
    return this.last;
  }
}
