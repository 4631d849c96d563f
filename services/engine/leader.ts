// Which replica runs the singleton duties (lease expiry, host-down marking, migration advice, the
// configuration's rules). With the embedded store there is one engine, always the leader. With
// etcd the replicas race to create one key, `<prefix>/leader`, attached to an etcd lease that the
// winner keeps alive: if the leader dies, etcd deletes the key when the lease's TTL runs out and
// another replica creates it. The leader writes its duties through a store view that compares
// the key's create revision in every transaction (services/store/guard.ts), so a deposed leader
// that still believes it leads cannot write.
import type { Etcd3, Lease, Watcher } from "etcd3";
import type { Logger } from "../../lib/log.js";
import type { EtcdStore } from "../store/etcd.js";
import type { Store } from "../store/store.js";

export interface Leadership {
  /** The store to write singleton duties through while this replica leads; undefined otherwise. */
  leaderStore(): Store | undefined;
  /** Called each time this replica becomes the leader. */
  onElected(listener: () => void): void;
}

/** The single engine of the embedded store. */
export function soleLeader(store: Store): Leadership {
  return { leaderStore: () => store, onElected: () => undefined };
}

export interface LeaderStatus {
  replica: string;
  leader: boolean;
  /** Who holds the key now, as far as this replica last saw. */
  leaderReplica: string;
}

export class EtcdLeaderElection implements Leadership {
  private readonly client: Etcd3;
  private readonly key: string;
  private lease?: Lease;
  private view?: Store;
  private leaderReplica = "";
  private stopped = false;
  private watcher?: Watcher;
  private wake?: () => void;
  private readonly electedListeners: (() => void)[] = [];
  private loop?: Promise<void>;
  /** The last time etcd confirmed our lease; a leader that cannot renew it steps down on its own. */
  private lastKeepAliveMs = 0;

  constructor(private readonly store: EtcdStore, readonly replica: string, private readonly ttlSeconds: number, private readonly log: Logger) {
    this.client = store.client;
    this.key = store.k("leader");
  }

  leaderStore(): Store | undefined {
    if (this.view && Date.now() - this.lastKeepAliveMs > this.ttlSeconds * 1000) {
      // etcd may already have let the key go: stop acting before the guard has to refuse us.
      this.stepDown("lease not renewed within its TTL");
    }
    return this.view;
  }

  onElected(listener: () => void): void {
    this.electedListeners.push(listener);
  }

  status(): LeaderStatus {
    return { replica: this.replica, leader: this.view !== undefined, leaderReplica: this.leaderReplica };
  }

  /** Starts campaigning; resolves at once, whether or not this replica wins. */
  async start(): Promise<void> {
    this.watcher = await this.client.watch().key(this.key).create();
    this.watcher.on("delete", () => this.wake?.());
    this.watcher.on("put", (kv) => { this.leaderReplica = kv.value.toString(); });
    this.loop = this.campaign();
  }

  private async campaign(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.lease || this.lease.revoked()) await this.newLease();
        const leaseId = await this.lease!.grant();
        const r = await this.client.if(this.key, "Create", "==", 0)
          .then(this.client.put(this.key).value(this.replica).lease(leaseId))
          .else(this.client.get(this.key))
          .commit();
        const held = r.responses[0]?.response_range?.kvs[0];
        // Still our key (we stepped down while our lease lived on): take it up again.
        const ours = !r.succeeded && held !== undefined && held.lease === leaseId && Date.now() - this.lastKeepAliveMs <= this.ttlSeconds * 1000;
        if (r.succeeded || ours) {
          const createRevision = r.succeeded ? r.header.revision : held!.create_revision;
          if (r.succeeded) this.lastKeepAliveMs = Date.now();
          this.leaderReplica = this.replica;
          this.view = this.store.guarded({ key: this.key, createRevision });
          this.log.info("elected leader", { replica: this.replica, createRevision });
          for (const l of this.electedListeners) l();
          // Lead until the lease is lost or we stop; then campaign again.
          while (this.view && !this.stopped) await this.sleep(1000);
        } else {
          this.leaderReplica = held?.value.toString() ?? "";
          // Wait for the key to go (the watch wakes us), or look again after a while.
          await this.sleep(500);
        }
      } catch (e) {
        this.stepDown(`campaign failed: ${(e as Error).message}`);
        await this.sleep(250);
      }
    }
  }

  private async newLease(): Promise<void> {
    const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    lease.on("keepaliveSucceeded", () => { if (this.lease === lease) this.lastKeepAliveMs = Date.now(); });
    lease.on("lost", (err) => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      this.stepDown(`etcd lease lost: ${err.message}`);
    });
  }

  private stepDown(reason: string): void {
    if (this.view) this.log.warn("no longer leader", { replica: this.replica, reason });
    this.view = undefined;
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() { clearTimeout(t); resolve(); }
      this.wake = done;
    });
  }

  /** Resigns: revoking the lease deletes the key, so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.view = undefined;
    this.wake?.();
    await this.loop;
    await this.watcher?.cancel().catch(() => undefined);
    await this.lease?.revoke().catch(() => undefined);
  }
}
