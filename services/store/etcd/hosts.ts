// Hosts and migration advice on etcd: with replicas, a host may beat at any of them, so its record
// lives here; advice is written by the leader, through its guarded view.
//
// What the replicas share about hosts (services/engine/cluster.ts keeps a watched copy of it):
//   hosts/<id>                  the host's durable record: network, addresses, VM list, state;
//                               written only when one of them changes, under a compare on its mod
//                               revision (a beat never overwrites the leader's down-marking unseen)
//   cordons/<id>                the operator's cordon and drain, apart from the beats
//   liveness/<replica>/<shard>  one replica's batch: the hosts heard since its last batch, with
//                               the time of their last beat and their load; on the replica's lease
//   pending/<id>                advice the leader gave for a host that beats at another replica,
//                               until that replica hands it over (not under advice/, whose keys
//                               sort by time for listAdvice)
import { randomUUID } from "node:crypto";
import type { IKeyValue } from "etcd3";
import { sleep } from "../../../lib/retry.js";
import { LeadershipLostError } from "../guard.js";
import type { AdviceRecord, HostRecord, MigrationRecord, ResourcesRecord, VmRecord } from "../store.js";
import { conflictBackoff, EtcdPart, MAX_CONFLICT_RETRIES, prefixEnd } from "./base.js";

/** A host's liveness in a batch: its last beat at the replica, and its load then. */
export interface Liveness {
  lastSeenMs: number;
  resources: ResourcesRecord;
  /** The VMs with their load, only for a host that may need advice (at the high watermark, or draining). */
  vms?: VmRecord[];
}

export type LivenessBatch = Record<string, Liveness>;

export interface Cordon {
  cordoned: boolean;
  draining: boolean;
}

/** What the watch of the shared host keys reports; `mod` is the key's mod revision (the deletion's for a delete). */
export interface HostEvents {
  host(hostId: string, record: HostRecord | undefined, mod: bigint): void;
  cordon(hostId: string, cordon: Cordon | undefined, mod: bigint): void;
  liveness(replica: string, shard: number, batch: LivenessBatch | undefined, mod: bigint): void;
  pending(hostId: string, advice: AdviceRecord[] | undefined, mod: bigint): void;
  migration(migration: MigrationRecord): void;
}

export class EtcdHosts extends EtcdPart {
  /** The cordon is kept under its own key (cordons/<id>), so a heartbeat at any replica leaves it alone. */
  async putHost(host: HostRecord): Promise<void> {
    const { cordoned: _, draining: __, ...beat } = host;
    const r = await this.txn([], [this.put(this.k(`hosts/${host.hostId}`), beat)]);
    if (!r.succeeded) throw new LeadershipLostError("host write refused");
  }

  async getHost(hostId: string): Promise<HostRecord | undefined> {
    const [host, m] = await Promise.all([this.getDoc<HostRecord>(`hosts/${hostId}`), this.getDoc<Cordon>(`cordons/${hostId}`)]);
    return host && withCordon(host, m);
  }

  async listHosts(): Promise<HostRecord[]> {
    const prefix = this.k("cordons/");
    const byHost = new Map<string, Cordon>();
    const [hosts] = await Promise.all([
      this.listDocs<HostRecord>("hosts/"),
      this.eachKv("cordons/", (kv) => byHost.set(kv.key.toString().slice(prefix.length), JSON.parse(kv.value.toString()) as Cordon)),
    ]);
    return hosts.map((h) => withCordon(h, byHost.get(h.hostId)));
  }

  async setCordon(hostId: string, cordoned: boolean, draining = false): Promise<boolean> {
    if (!(await this.getKv(this.k(`hosts/${hostId}`)))) return false;
    const r = await this.txn([], [this.put(this.k(`cordons/${hostId}`), { cordoned, draining } satisfies Cordon)]);
    if (!r.succeeded) throw new LeadershipLostError("cordon write refused");
    return true;
  }

  /** Keys sort by time, so the range from `sinceMs` on, read backwards, is the newest first. */
  async listAdvice(limit: number, sinceMs: number): Promise<AdviceRecord[]> {
    const prefix = this.k("advice/");
    const res = await this.s.client.getAll().inRange({ start: this.k(`advice/${adviceTime(sinceMs)}`), end: prefixEnd(prefix) })
      .sort("Key", "Descend").limit(limit).exec();
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as AdviceRecord);
  }

  async recordAdvice(advice: AdviceRecord[]): Promise<void> {
    if (advice.length === 0) return;
    const r = await this.txn([], advice.map((a) => this.put(this.k(`advice/${adviceTime(a.givenAtMs)}/${randomUUID()}`), a)));
    if (!r.succeeded) throw new LeadershipLostError("advice write refused");
  }
}

// --- the shared host keys of engine replicas (services/engine/cluster.ts) ----------------------

/** The host key parts the replicas share, with the watch that keeps a replica's copy. */
export class EtcdClusterHosts extends EtcdPart {
  /**
   * Reads every shared host key at one revision, reports each, then watches from the next
   * revision on, so no change falls between the load and the watch.
   */
  async watch(ev: HostEvents): Promise<void> {
    const parts: [string, (kv: IKeyValue, deleted: boolean) => void][] = [
      ["hosts/", (kv, d) => ev.host(this.idOf(kv, "hosts/"), d ? undefined : parse<HostRecord>(kv), BigInt(kv.mod_revision))],
      ["cordons/", (kv, d) => ev.cordon(this.idOf(kv, "cordons/"), d ? undefined : parse<Cordon>(kv), BigInt(kv.mod_revision))],
      ["liveness/", (kv, d) => {
        const [replica, shard] = this.idOf(kv, "liveness/").split("/");
        ev.liveness(replica, Number(shard), d ? undefined : parse<LivenessBatch>(kv), BigInt(kv.mod_revision));
      }],
      ["pending/", (kv, d) => ev.pending(this.idOf(kv, "pending/"), d ? undefined : parse<AdviceRecord[]>(kv), BigInt(kv.mod_revision))],
      ["migrations/", (kv, d) => { if (!d) ev.migration(parse<MigrationRecord>(kv)); }],
    ];
    const first = await this.s.client.get(this.k("rules/revision")).exec();
    const revision = BigInt(first.header.revision);
    for (const [path, apply] of parts) {
      // Migrations are history: only those from now on matter (a VM's cool-down after its move).
      if (path !== "migrations/") await this.eachKv(path, (kv) => apply(kv, false), revision);
      const w = await this.s.client.watch().prefix(this.k(path)).startRevision(String(revision + 1n)).create();
      w.on("put", (kv) => apply(kv, false));
      w.on("delete", (kv) => apply(kv, true));
      this.s.watchers.push(w);
    }
  }

  private idOf(kv: IKeyValue, path: string): string {
    return kv.key.toString().slice(this.k(path).length);
  }

  /**
   * Writes the host's record if its key's mod revision is still `mod` (0: the key must not
   * exist); resolves the new mod revision, or undefined when another replica (or the leader)
   * wrote it first, with what it wrote.
   */
  async putHostAt(host: HostRecord, mod: bigint): Promise<{ mod: bigint } | { lost: HostRecord | undefined; mod: bigint }> {
    const { cordoned: _, draining: __, ...record } = host;
    const key = this.k(`hosts/${host.hostId}`);
    const r = await this.txn([mod === 0n ? [key, "Create", "==", 0] : [key, "Mod", "==", String(mod)]], [this.put(key, record)], [this.s.client.get(key)]);
    if (r.succeeded) return { mod: BigInt(r.header.revision) };
    const kv = r.responses[0]?.response_range?.kvs[0];
    return { lost: kv ? parse<HostRecord>(kv) : undefined, mod: kv ? BigInt(kv.mod_revision) : 0n };
  }

  /** Sets the cordon of a host that has a record; resolves the key's mod revision, undefined for no such host. */
  async putCordon(hostId: string, cordon: Cordon): Promise<bigint | undefined> {
    const r = await this.txn([[this.k(`hosts/${hostId}`), "Create", "!=", 0]], [this.put(this.k(`cordons/${hostId}`), cordon)]);
    if (r.succeeded) return BigInt(r.header.revision);
    return undefined;
  }

  /** One shard of a replica's liveness batch, on the replica's etcd lease. */
  async putLiveness(replica: string, shard: number, batch: LivenessBatch, leaseId: string): Promise<bigint> {
    const r = await this.s.client.put(this.k(`liveness/${replica}/${shard}`)).value(JSON.stringify(batch)).lease(leaseId).exec();
    return BigInt(r.header.revision);
  }

  async deleteLiveness(replica: string, shard: number): Promise<void> {
    await this.s.client.delete().key(this.k(`liveness/${replica}/${shard}`)).exec();
  }

  /**
   * The leader's advice for a host that beats at another replica, added to what is pending for
   * it (a replica may take that meanwhile: the compare on the key's mod revision retries then).
   */
  async addPending(hostId: string, advice: AdviceRecord[]): Promise<void> {
    const key = this.k(`pending/${hostId}`);
    const backoff = conflictBackoff();
    for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
      const kv = await this.getKv(key);
      const before = kv ? parse<AdviceRecord[]>(kv) : [];
      const r = await this.txn([kv ? [key, "Mod", "==", kv.mod_revision] : [key, "Create", "==", 0]], [this.put(key, [...before, ...advice])]);
      if (r.succeeded) return;
      await sleep(backoff.next());
    }
    throw new Error(`pending advice for host ${hostId}: lost ${MAX_CONFLICT_RETRIES} races in a row`);
  }

  /** Takes the pending advice as it was at `mod`; false when the leader added to it since (it is handed over next time). */
  async takePending(hostId: string, mod: bigint): Promise<boolean> {
    const key = this.k(`pending/${hostId}`);
    const r = await this.txn([[key, "Mod", "==", String(mod)]], [this.del(key)]);
    return r.succeeded;
  }
}

function parse<T>(kv: IKeyValue): T {
  return JSON.parse(kv.value.toString()) as T;
}

const adviceTime = (ms: number) => String(Math.max(0, ms)).padStart(15, "0");


/** The beat's record with the operator's cordon; fields only when set, as the engine on SQLite keeps them. */
function withCordon(host: HostRecord, c: Cordon | undefined): HostRecord {
  if (!c?.cordoned) return host;
  return c.draining ? { ...host, cordoned: true, draining: true } : { ...host, cordoned: true };
}
