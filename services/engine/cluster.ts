// The hypervisor hosts as an engine replica on etcd knows them. A host may beat at any replica,
// so every replica keeps the same watched copy of what the replicas share (etcd/hosts.ts):
// - each host's durable record (hosts/<id>: network, addresses, VM list, state) and cordon;
// - each host's liveness: the newest of its last beat here and the entries of the other
//   replicas' batches (liveness/<replica>/<shard>), with its load then;
// - the advice pending for a host, until the replica it beats at hands it over.
// A beat writes the host's record only when its network, addresses, VM list or state changed
// (as on SQLite, hosts.ts), under a compare on the key's mod revision; its liveness goes out in
// this replica's next batch, one key per 1,000 hosts every downAfterSeconds / 3. Every replica's
// advisor observes every host (its own beats as they come, the others' at batch granularity), so
// the leader advises for all hosts, and a new leader starts with warm hot windows and headroom.
import type { Lease } from "etcd3";
import type { Logger } from "../../lib/log.js";
import type { MigrationAdvisor } from "../migration/advisor.js";
import { utilisation } from "../migration/headroom.js";
import type { EtcdStore } from "../store/etcd.js";
import type { Cordon, Liveness, LivenessBatch } from "../store/etcd/hosts.js";
import type { AdviceRecord, HostRecord } from "../store/store.js";
import { durablyDiffers } from "./hosts.js";

export interface ClusterSettings {
  /** This replica's name: its batches are liveness/<replica>/<shard>. */
  replica: string;
  downAfterMs: number;
  /** How often this replica writes its batch: downAfterSeconds / 3. */
  batchMs: number;
  /** A host at or above it (or draining) carries its VMs' load in the batch, for the leader's advice. */
  highWatermark: number;
  /** Hosts per liveness key. */
  shardSize: number;
}

/** Writes a host's record that lost its compare, read again and retried, before the beat gives up. */
const WRITE_ATTEMPTS = 4;

interface Stored {
  record: HostRecord;
  mod: bigint;
}

export class ClusterHosts {
  private readonly stored = new Map<string, Stored>();
  private readonly cordons = new Map<string, { cordon: Cordon; mod: bigint }>();
  /** The newest liveness of each host, from any replica. */
  private readonly live = new Map<string, Liveness>();
  /** The hosts that beat here since the last batch. */
  private heard = new Map<string, Liveness>();
  private readonly pending = new Map<string, { advice: AdviceRecord[]; mod: bigint }>();
  /** Shards this replica wrote in its last batch (those beyond the next batch's are deleted). */
  private shards = 0;
  private lease?: Lease;
  /** Every host counts as heard at this time: the start, or the election as leader. */
  private graceFromMs: number;
  /** The revision of the newest batch taken from each key of another replica (a batch read again is no news). */
  private readonly batchMod = new Map<string, bigint>();
  /** The revision of the newest batch taken from each other replica. */
  private readonly replicaMod = new Map<string, bigint>();

  constructor(
    private readonly store: EtcdStore,
    private readonly advisor: MigrationAdvisor,
    private readonly s: ClusterSettings,
    private readonly now: () => number,
    private readonly log: Logger,
    /** A host that beats at another replica was observed hot or draining: the leader may advise it. */
    private readonly onRemoteNeedsAdvice: (host: HostRecord) => void,
  ) {
    this.graceFromMs = now();
  }

  /** A reloaded migration.highWatermark: which hosts' batch entries carry their VMs. */
  retune(highWatermark: number): void {
    this.s.highWatermark = highWatermark;
  }

  get size(): number {
    return this.stored.size;
  }

  /** Loads the shared keys and keeps them watched. */
  async start(): Promise<void> {
    this.graceFromMs = this.now();
    await this.store.cluster.watch({
      host: (id, record, mod) => this.storedChanged(id, record, mod),
      cordon: (id, cordon, mod) => this.cordonChanged(id, cordon, mod),
      liveness: (replica, shard, batch, mod) => this.batchArrived(replica, shard, batch, mod),
      pending: (id, advice, mod) => {
        const known = this.pending.get(id);
        if (known && known.mod >= mod) return;
        if (advice) this.pending.set(id, { advice, mod });
        else this.pending.delete(id);
      },
      migration: (m) => this.advisor.noteMigration(m.vmId, m.registeredAtMs),
    });
  }

  /** This replica now leads: every host gets a whole downAfterSeconds from now to be heard. */
  elected(): void {
    this.graceFromMs = this.now();
  }

  /** A host's latest record: its stored record, with its cordon and its newest load and last beat. */
  get(hostId: string): HostRecord | undefined {
    const st = this.stored.get(hostId);
    if (!st) return undefined;
    const l = this.live.get(hostId);
    const c = this.cordons.get(hostId)?.cordon;
    let host = st.record;
    if (l && l.lastSeenMs >= host.lastSeenMs) host = { ...host, lastSeenMs: l.lastSeenMs, resources: l.resources, ...(l.vms ? { vms: l.vms } : {}) };
    if (c?.cordoned) host = { ...host, cordoned: true, ...(c.draining ? { draining: true } : {}) };
    return host;
  }

  list(): HostRecord[] {
    return [...this.stored.keys()].sort().map((id) => this.get(id)!);
  }

  /**
   * A beat at this replica (`host` as the engine made it, its cordon included): its liveness goes
   * in the next batch; its record is written if it changed durably.
   */
  async beat(host: HostRecord): Promise<void> {
    const l: Liveness = { lastSeenMs: host.lastSeenMs, resources: host.resources };
    this.live.set(host.hostId, { ...l, vms: host.vms });
    this.heard.set(host.hostId, carriesVms(host, this.s.highWatermark) ? { ...l, vms: host.vms } : l);
    const { cordoned: _, draining: __, ...bare } = host;
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const st = this.stored.get(host.hostId);
      if (!durablyDiffers(st?.record, bare)) return;
      const r = await this.store.cluster.putHostAt(bare, st?.mod ?? 0n);
      if ("lost" in r) {
        // Another replica, or the leader marking it down, wrote it since we last saw it: compare again.
        this.storedChanged(host.hostId, r.lost, r.mod);
        continue;
      }
      this.storedChanged(host.hostId, bare, r.mod);
      return;
    }
    throw new Error(`host ${host.hostId}: its record changed under ${WRITE_ATTEMPTS} writes in a row`);
  }

  /** Sets a host's cordon; false for a host with no record. */
  async setCordon(hostId: string, cordon: Cordon): Promise<boolean> {
    const mod = await this.store.cluster.putCordon(hostId, cordon);
    if (mod === undefined) return false;
    this.cordonChanged(hostId, cordon, mod);
    return true;
  }

  /** The advice the leader left for a host that beats here, taken from etcd (none if the leader added to it meanwhile). */
  async takeAdvice(hostId: string): Promise<AdviceRecord[]> {
    const p = this.pending.get(hostId);
    if (!p) return [];
    if (!(await this.store.cluster.takePending(hostId, p.mod))) return [];
    if (this.pending.get(hostId) === p) this.pending.delete(hostId);
    return p.advice;
  }

  /**
   * Writes this replica's batch: the hosts heard since the last one, `shardSize` to a key, on this
   * replica's etcd lease (a replica that dies takes its batches with it); keys of the last batch
   * beyond this one's are deleted.
   */
  async publish(): Promise<bigint> {
    const heard = this.heard;
    this.heard = new Map();
    try {
      const leaseId = await this.leaseId();
      const entries = [...heard];
      const shards = Math.ceil(entries.length / this.s.shardSize);
      const writes: Promise<bigint>[] = [];
      for (let i = 0; i < shards; i++) {
        const batch: LivenessBatch = Object.fromEntries(entries.slice(i * this.s.shardSize, (i + 1) * this.s.shardSize));
        writes.push(this.store.cluster.putLiveness(this.s.replica, i, batch, leaseId));
      }
      for (let i = shards; i < this.shards; i++) writes.push(this.store.cluster.deleteLiveness(this.s.replica, i).then(() => 0n));
      const revisions = await Promise.all(writes);
      this.shards = shards;
      return revisions.reduce((a, b) => (a > b ? a : b), 0n);
    } catch (e) {
      // Heard again in the next batch, unless a newer beat took their place.
      for (const [id, l] of heard) if (!this.heard.has(id)) this.heard.set(id, l);
      throw e;
    }
  }

  private async leaseId(): Promise<string> {
    if (!this.lease || this.lease.revoked()) {
      const lease = this.store.client.lease(Math.max(2, Math.ceil((3 * this.s.batchMs) / 1000)), { autoKeepAlive: true });
      lease.on("lost", (err) => {
        if (this.lease === lease) this.lease = undefined;
        this.log.warn("liveness lease lost", { replica: this.s.replica, err: err.message });
      });
      this.lease = lease;
    }
    return this.lease.grant();
  }

  /**
   * Leader duty: marks down, through the leader's guarded store, each host not heard at any
   * replica for downAfterSeconds plus one batch period (its last beat may be in a batch not yet
   * written), counting from the election at the earliest. A host whose record changed meanwhile
   * (it beat, and a replica wrote it) is left for the next sweep. Answers the hosts marked down.
   */
  async markSilentDown(leader: EtcdStore): Promise<HostRecord[]> {
    const deadline = this.now() - this.s.downAfterMs - this.s.batchMs;
    if (this.graceFromMs >= deadline) return [];
    const down: HostRecord[] = [];
    for (const [id, st] of this.stored) {
      if (st.record.state === "down") continue;
      const last = Math.max(st.record.lastSeenMs, this.live.get(id)?.lastSeenMs ?? 0);
      if (last >= deadline) continue;
      const record: HostRecord = { ...st.record, state: "down" };
      const r = await leader.cluster.putHostAt(record, st.mod);
      if ("lost" in r) {
        this.storedChanged(id, r.lost, r.mod);
        continue;
      }
      this.storedChanged(id, record, r.mod);
      down.push(record);
    }
    return down;
  }

  /** The revision of the newest batch of `replica` taken (0 if none). */
  batchSeen(replica: string): bigint {
    return this.replicaMod.get(replica) ?? 0n;
  }

  /** Stops the batches' lease; the keys on it go at once. */
  async stop(): Promise<void> {
    await this.lease?.revoke().catch(() => undefined);
    this.lease = undefined;
  }

  // --- what the watch reports -------------------------------------------------------------------

  private storedChanged(hostId: string, record: HostRecord | undefined, mod: bigint): void {
    const known = this.stored.get(hostId);
    if (known && known.mod >= mod) return;
    if (!record) {
      this.stored.delete(hostId);
      this.advisor.forget(hostId);
      return;
    }
    this.stored.set(hostId, { record, mod });
    const l = this.live.get(hostId);
    if (record.state === "down") this.advisor.forget(hostId);
    // The watches of hosts/ and liveness/ are apart: a new host's batch entry may come first.
    else if (!known && l) this.advisor.observe(this.get(hostId)!, l.lastSeenMs);
    else this.advisor.track(this.get(hostId)!);
  }

  private cordonChanged(hostId: string, cordon: Cordon | undefined, mod: bigint): void {
    const known = this.cordons.get(hostId);
    if (known && known.mod >= mod) return;
    if (cordon) this.cordons.set(hostId, { cordon, mod });
    else this.cordons.delete(hostId);
    const host = this.get(hostId);
    if (host && host.state !== "down") this.advisor.track(host);
  }

  private batchArrived(replica: string, shard: number, batch: LivenessBatch | undefined, mod: bigint): void {
    // This replica's own beats were taken as they came.
    if (replica === this.s.replica || !batch) return;
    const key = `${replica}/${shard}`;
    if ((this.batchMod.get(key) ?? -1n) >= mod) return;
    this.batchMod.set(key, mod);
    if ((this.replicaMod.get(replica) ?? 0n) < mod) this.replicaMod.set(replica, mod);
    for (const [id, l] of Object.entries(batch)) {
      const known = this.live.get(id);
      if (known && known.lastSeenMs >= l.lastSeenMs) continue;
      this.live.set(id, l);
      const host = this.get(id);
      // A host whose record has not come yet is observed when it comes (storedChanged).
      if (!host || host.state === "down") continue;
      // Hot windows at batch granularity: the host's load at its last beat of the period.
      const hot = this.advisor.observe(host, l.lastSeenMs);
      if (hot || host.draining) this.onRemoteNeedsAdvice(host);
    }
  }
}

/** Whether a host's batch entry carries its VMs' load: the leader may need to pick one to move. */
function carriesVms(host: HostRecord, highWatermark: number): boolean {
  return host.draining === true || host.state === "hot" || utilisation(host.resources) >= highWatermark;
}
