// The engine's host calls: Heartbeat and the migration advice it brings, the operator's cordon
// and drain, the hosts as reported, and the liveness duties (etcd's batches, marking silent hosts
// down). On the embedded store the hosts are in memory (hosts.ts), this engine their one writer;
// on etcd a host may beat at any replica (cluster.ts).
import { LeadershipLostError } from "../store/guard.js";
import { networkText } from "../prefix/plan.js";
import { EtcdStore } from "../store/etcd.js";
import { NotFoundError } from "../errors.js";
import type { AdviceRecord, HostRecord, ResourcesRecord, Store, VmRecord } from "../store/store.js";
import { ClusterHosts } from "./cluster.js";
import type { EngineCore, EngineEvents } from "./core.js";
import { HostTable } from "./hosts.js";
import type { Leadership } from "./leader.js";

export interface HeartbeatInput {
  hostId: string;
  addresses: string[];
  resources: ResourcesRecord;
  vms: VmRecord[];
}

export interface HeartbeatResult {
  host: HostRecord;
  advice: AdviceRecord[];
  heartbeatIntervalSeconds: number;
}

/** Hosts per liveness key on etcd: at 100 bytes an entry, about 100 KiB a key. */
const LIVENESS_SHARD = 1000;

export class Heartbeats {
  /** The hosts in memory, with the embedded store (this engine its one writer). */
  private readonly hosts = new HostTable();
  /**
   * On etcd a host may beat at any replica: the replicas' shared host keys, watched, with this
   * replica's liveness batches (cluster.ts).
   */
  private readonly cluster?: ClusterHosts;
  /** The writes of advice given for hosts at other replicas, from their batches (on etcd). */
  private remoteAdvice: Promise<unknown> = Promise.resolve();

  constructor(private readonly core: EngineCore, private readonly leadership: Leadership, private readonly events: EngineEvents) {
    const { config, store, log } = core;
    if (config.store.kind === "etcd") {
      if (!(store instanceof EtcdStore)) throw new Error("store.kind etcd needs an EtcdStore");
      const downAfterMs = config.hosts.downAfterSeconds * 1000;
      this.cluster = new ClusterHosts(store, core.advisor, {
        replica: config.replica, downAfterMs, batchMs: downAfterMs / 3, highWatermark: config.migration.highWatermark, shardSize: LIVENESS_SHARD,
      }, core.now, log, (host) => {
        const given = this.adviseRemote(host).catch((e) => log.error("advice for a host at another replica not given", { hostId: host.hostId, err: e }));
        this.remoteAdvice = this.remoteAdvice.then(() => given);
      });
    }
  }

  /** Whether the hosts are shared by replicas on etcd (not this engine's alone). */
  get replicated(): boolean {
    return this.cluster !== undefined;
  }

  /** Loads the hosts (SQLite), or starts watching the replicas' host keys (etcd). */
  async start(): Promise<void> {
    if (this.cluster) {
      await this.cluster.start();
      // A new leader gives every host a whole downAfterSeconds, as a restart does on SQLite.
      this.leadership.onElected(() => this.cluster!.elected());
    } else {
      const known = await this.core.store.listHosts();
      this.hosts.load(known, this.core.now());
      for (const h of known) if (h.state !== "down") this.core.advisor.track(h);
    }
  }

  /** A new migration.highWatermark, for etcd's liveness batches. */
  retune(highWatermark: number): void {
    this.cluster?.retune(highWatermark);
  }

  /** Waits for the advice being written, then ends this replica's liveness lease on etcd. */
  async close(): Promise<void> {
    await this.remoteAdviceWritten();
    await this.cluster?.stop();
  }

  /** Resolves once the advice decided so far for hosts at other replicas is written (on etcd). */
  async remoteAdviceWritten(): Promise<void> {
    await this.remoteAdvice;
  }

  /**
   * A known host's latest record, from memory. On etcd a host whose first beat came to another
   * replica moments ago may not have reached this replica's watch yet: etcd is asked then.
   */
  async host(hostId: string): Promise<HostRecord | undefined> {
    if (!this.cluster) return this.hosts.get(hostId);
    return this.cluster.get(hostId) ?? this.core.store.getHost(hostId);
  }

  async heartbeat(h: HeartbeatInput): Promise<HeartbeatResult> {
    const nowMs = this.core.now();
    const net = this.core.plan.networkOf(h.addresses);
    const host: HostRecord = {
      hostId: h.hostId, state: "up", family: net?.family ?? 0, network: net ? networkText(net) : "",
      addresses: h.addresses, resources: h.resources, vms: h.vms, lastSeenMs: nowMs,
    };
    // A beat keeps the operator's cordon (on etcd too it is in memory: every replica watches the
    // cordons).
    const known = this.cluster ? this.cluster.get(h.hostId) : this.hosts.get(h.hostId);
    if (known?.cordoned) host.cordoned = true;
    if (known?.draining) host.draining = true;
    host.state = this.core.advisor.observe(host, nowMs) ? "hot" : "up";
    if (this.cluster) await this.cluster.beat(host);
    else if (this.hosts.beat(host)) await this.writeHost(host);
    // Migration advice is a leader duty: one advisor decides, so two replicas never send the
    // same VM two ways. A replica that does not lead answers with the advice the leader left
    // for this host (from its batch entries), if any. Only a hot host needs a destination, and
    // the advisor finds it in its headroom index, which holds every host on etcd too.
    const leader = this.leadership.leaderStore();
    let advice: AdviceRecord[] = [];
    if (leader && (host.state === "hot" || host.draining)) {
      advice = this.advise(host, nowMs);
      advice = await this.recordAdvice(leader, advice);
    }
    if (this.cluster) advice = [...(await this.cluster.takeAdvice(h.hostId)), ...advice];
    return { host, advice, heartbeatIntervalSeconds: this.core.config.hosts.heartbeatIntervalSeconds };
  }

  /** The advisor's advice for a hot host, or for a draining one (adviseDrain). */
  private advise(host: HostRecord, nowMs: number): AdviceRecord[] {
    const { advisor } = this.core;
    return host.draining ? advisor.adviseDrain(host, advisor.headroom, nowMs) : advisor.advise(host, advisor.headroom, nowMs);
  }

  /** Writes advice to the history through the leader's store; none is given if this replica no longer leads. */
  private async recordAdvice(leader: Store, advice: AdviceRecord[]): Promise<AdviceRecord[]> {
    if (advice.length === 0) return advice;
    try {
      await leader.recordAdvice(advice);
    } catch (e) {
      if (!(e instanceof LeadershipLostError)) throw e;
      return [];
    }
    this.events.adviceGiven(advice.length);
    this.core.log.info("migration advised", { ...advice[0] });
    return advice;
  }

  /**
   * On etcd, the leader's advice for a hot (or draining) host that beats at another replica,
   * seen in that replica's batch: recorded, and left at pending/<host> for that replica to hand
   * over in its next Heartbeat answer.
   */
  private async adviseRemote(host: HostRecord): Promise<void> {
    const leader = this.leadership.leaderStore();
    if (!leader) return;
    const nowMs = this.core.now();
    const given = this.advise(host, nowMs);
    const advice = await this.recordAdvice(leader, given);
    if (advice.length > 0) await (leader as EtcdStore).cluster.addPending(host.hostId, advice);
  }

  /**
   * On etcd: writes this replica's liveness batch now (its timer does every downAfterSeconds / 3);
   * resolves the batch's etcd revision (0 when there was nothing to write).
   */
  publishLiveness(): Promise<bigint> {
    return this.cluster ? this.cluster.publish() : Promise.resolve(0n);
  }

  /** On etcd: the revision of the newest liveness batch of `replica` that this replica has taken. */
  batchSeen(replica: string): bigint {
    return this.cluster?.batchSeen(replica) ?? 0n;
  }

  private async writeHost(host: HostRecord): Promise<void> {
    this.hosts.writing(host);
    try {
      await this.core.store.putHost(host);
    } catch (e) {
      this.hosts.writeFailed(host);
      throw e;
    }
  }

  /**
   * Cordons (or uncordons) a known host: never a migration's destination while cordoned. Draining
   * cordons it too, and each of its beats then brings advice to move its VMs away (the same advice
   * path as a hot host's, which the hypervisor hook carries out). Kept in the store with the host,
   * so it survives a restart. Answers the record before and after, for the audit log.
   */
  async cordonHost(hostId: string, cordoned: boolean, draining = false): Promise<{ before: HostRecord; after: HostRecord }> {
    const unknown = () => new NotFoundError(`host_id: host ${hostId} is unknown: no heartbeat came from it`);
    const before = await this.host(hostId);
    if (!before) throw unknown();
    const { cordoned: _, draining: __, ...rest } = before;
    const after: HostRecord = cordoned ? { ...rest, cordoned, ...(draining ? { draining } : {}) } : rest;
    if (this.cluster) {
      if (!(await this.cluster.setCordon(hostId, { cordoned, draining: cordoned && draining }))) throw unknown();
    } else {
      this.hosts.replace(after);
      await this.writeHost(after);
      if (after.state !== "down") this.core.advisor.track(after);
    }
    this.core.log.info(draining ? "host draining" : cordoned ? "host cordoned" : "host uncordoned", { hostId });
    return { before, after };
  }

  /** Every known host, by id: this engine's memory with the embedded store, etcd's hosts otherwise. */
  async listHosts(f: { hostId?: string; vmId?: string } = {}): Promise<HostRecord[]> {
    const all = this.cluster ? this.cluster.list() : this.hosts.list();
    return all.filter((h) => (!f.hostId || h.hostId === f.hostId) && (!f.vmId || h.vms.some((v) => v.vmId === f.vmId)));
  }

  /** One host by its id (the Get RPCs); NotFoundError for a host that never sent a Heartbeat. */
  async getHost(hostId: string): Promise<HostRecord> {
    const h = await this.host(hostId);
    if (!h) throw new NotFoundError(`host_id: no host ${hostId}: it has sent no heartbeat`);
    return h;
  }

  /** Marks the hosts silent for downAfterSeconds down: a leader duty, through the leader's `store`. */
  async markSilentDown(store: Store): Promise<void> {
    if (this.cluster) {
      // On etcd the last beat of a host may have come to any replica: its batches tell.
      for (const host of await this.cluster.markSilentDown(store as EtcdStore)) {
        this.core.log.warn("host marked down", { hostId: host.hostId, lastSeenMs: this.cluster.get(host.hostId)?.lastSeenMs ?? host.lastSeenMs });
      }
    } else await this.markSilentHostsDown();
  }

  /** In memory, only the hosts past the deadline are looked at (the table keeps them oldest first). */
  private async markSilentHostsDown(): Promise<void> {
    const deadline = this.core.now() - this.core.config.hosts.downAfterSeconds * 1000;
    const down = this.hosts.markSilentDown(deadline);
    for (const host of down) {
      this.core.advisor.forget(host.hostId);
      this.core.log.warn("host marked down", { hostId: host.hostId, lastSeenMs: host.lastSeenMs });
    }
    await Promise.all(down.map((h) => this.writeHost(h)));
  }
}
