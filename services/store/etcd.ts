// The replicated store on etcd (npm etcd3). Several engine replicas share one key prefix; every
// change is one etcd transaction whose compares make it safe against the other replicas, and a
// call resolves only after etcd answered the transaction, i.e. after a quorum committed it.
//
// Keys under `<prefix>/`:
//   addresses/<a.b.c.d>        one key per leasable address (never a bitmap): its pool, state, holder;
//                              keyed by address alone, as pools never overlap and ReleaseCareOf
//                              names only the address
//   holders/<purpose>/<holder> the address a holder leases; claimed in the same transaction
//   rules/revision             the rule table's revision counter; every rule change compares it
//   rules/key/<rule key>       {owner, rule}
//   rules/owner/<owner>        the owner's rules, for the diff of replaceRules
//   rules/log/<revision>       the changes of one revision, for workers that reconnect
//   bindings/<vm>, migrations/<at>/<id>, advice/<at>/<id>
//   hosts/<id>, cordons/<id>, liveness/<replica>/<shard>, pending/<id>: see etcd/hosts.ts
//   homes/<home address>       the VM whose binding holds it; claimed with the binding
//   home-agents/<network>      the home agent learned for a home network; claimed with the first binding
// A replica keeps a watched copy of the addresses only to choose a candidate; the transaction's
// compare on the address's mod revision is what decides, so a stale copy costs a retry, never a
// double lease.
//
// The parts, in etcd/: base.ts (documents, the watched copy, transactions), leases.ts (pools and
// leases), rules.ts (rule table, bindings, migrations), hosts.ts (hosts, advice). This class is
// the Store: it opens the client and hands each call to its part.
import { Etcd3, type IOptions } from "etcd3";
import type { Rule } from "../../lib/rules/rules.js";
import type { LeaderGuard } from "./guard.js";
import type {
  AcquireLease, AdviceRecord, BindingRecord, CoolingRecord, HomeAgentRecord, HostRecord, LeasePurpose, LeaseRecord, MigrationCursor, MigrationRecord,
  PoolAddressSet, PoolUsage, RuleChange, Store,
} from "./store.js";
import { BackupUnsupportedError } from "./store.js";
import { EtcdPart, Shared } from "./etcd/base.js";
import { EtcdClusterHosts, EtcdHosts } from "./etcd/hosts.js";
import { EtcdLeases } from "./etcd/leases.js";
import { EtcdRules } from "./etcd/rules.js";

export { LeadershipLostError, type LeaderGuard } from "./guard.js";
export { MAX_CONFLICT_RETRIES } from "./etcd/base.js";

export interface EtcdStoreOptions {
  endpoints: string[];
  /** Key prefix shared by the replicas of one cluster, e.g. "/mip46". */
  prefix: string;
  dialTimeoutMs?: number;
  etcdOptions?: Partial<IOptions>;
}

export class EtcdStore extends EtcdPart implements Store {
  private readonly leases: EtcdLeases;
  private readonly rules: EtcdRules;
  private readonly hosts: EtcdHosts;
  /** The host keys replicas share (liveness batches, pending advice), for services/engine/cluster.ts. */
  readonly cluster: EtcdClusterHosts;

  private constructor(s: Shared, guard?: LeaderGuard) {
    super(s, guard);
    this.leases = new EtcdLeases(s, guard);
    this.rules = new EtcdRules(s, guard);
    this.hosts = new EtcdHosts(s, guard);
    this.cluster = new EtcdClusterHosts(s, guard);
  }

  /** Connects, loads the address table and starts the watches. */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const client = new Etcd3({
      hosts: options.endpoints.map((e) => (e.includes("://") ? e : `http://${e}`)),
      dialTimeout: options.dialTimeoutMs ?? 5000,
      ...options.etcdOptions,
    });
    const prefix = options.prefix.replace(/\/+$/, "");
    const store = new EtcdStore(new Shared(client, prefix));
    try {
      await store.leases.loadAddresses();
      await store.rules.watchRevision();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  /** A view whose writes all compare the leader key: they fail with LeadershipLostError once it is gone. */
  guarded(guard: LeaderGuard): EtcdStore {
    return new EtcdStore(this.s, guard);
  }

  get client(): Etcd3 {
    return this.s.client;
  }

  // --- pools and leases (etcd/leases.ts) -----------------------------------------------------

  syncPools(pools: PoolAddressSet[]): Promise<void> { return this.leases.syncPools(pools); }
  acquireLease(req: AcquireLease): Promise<LeaseRecord> { return this.leases.acquireLease(req); }
  releaseLease(sel: { address: string } | { holder: string; purpose: LeasePurpose }, nowMs: number, cooldownMs: number): Promise<CoolingRecord | undefined> {
    return this.leases.releaseLease(sel, nowMs, cooldownMs);
  }
  expireLeases(nowMs: number, cooldownMs: number): Promise<CoolingRecord[]> { return this.leases.expireLeases(nowMs, cooldownMs); }
  getLease(holder: string, purpose: LeasePurpose): Promise<LeaseRecord | undefined> { return this.leases.getLease(holder, purpose); }
  leaseByAddress(address: string): Promise<LeaseRecord | undefined> { return this.leases.leaseByAddress(address); }
  listLeases(): Promise<LeaseRecord[]> { return this.leases.listLeases(); }
  poolUsage(nowMs: number): Promise<PoolUsage[]> { return this.leases.poolUsage(nowMs); }

  // --- rules, bindings, migrations (etcd/rules.ts) ---------------------------------------------

  replaceRules(owner: string, rules: Rule[]): Promise<bigint> { return this.rules.replaceRules(owner, rules); }
  rulesOf(owner: string): Promise<Rule[]> { return this.rules.rulesOf(owner); }
  putBinding(binding: BindingRecord, migration: MigrationRecord, rules: Rule[], homeAgent?: HomeAgentRecord): Promise<bigint> {
    return this.rules.putBinding(binding, migration, rules, homeAgent);
  }
  getHomeAgent(network: string): Promise<HomeAgentRecord | undefined> { return this.rules.getHomeAgent(network); }
  deleteBinding(vmId: string, migration?: MigrationRecord): Promise<{ revision: bigint; binding?: BindingRecord }> { return this.rules.deleteBinding(vmId, migration); }
  forceRelease(vmId: string, owners: string[], addresses: string[], nowMs: number, cooldownMs: number): Promise<{ revision: bigint; released: CoolingRecord[] }> {
    return this.rules.forceRelease(vmId, owners, addresses, nowMs, cooldownMs);
  }
  getBinding(vmId: string): Promise<BindingRecord | undefined> { return this.rules.getBinding(vmId); }
  listBindings(): Promise<BindingRecord[]> { return this.rules.listBindings(); }
  bindingsWithHome(homeAddress: string): Promise<BindingRecord[]> { return this.rules.bindingsWithHome(homeAddress); }
  listMigrations(limit: number, after?: MigrationCursor): Promise<MigrationRecord[]> { return this.rules.listMigrations(limit, after); }
  ruleTable(): Promise<{ revision: bigint; rules: Rule[] }> { return this.rules.ruleTable(); }
  ruleChangesSince(revision: bigint): Promise<RuleChange[] | undefined> { return this.rules.ruleChangesSince(revision); }
  onRulesChanged(listener: (revision: bigint) => void): () => void { return this.rules.onRulesChanged(listener); }

  // --- hosts and advice (etcd/hosts.ts) --------------------------------------------------------

  putHost(host: HostRecord): Promise<void> { return this.hosts.putHost(host); }
  getHost(hostId: string): Promise<HostRecord | undefined> { return this.hosts.getHost(hostId); }
  listHosts(): Promise<HostRecord[]> { return this.hosts.listHosts(); }
  recordAdvice(advice: AdviceRecord[]): Promise<void> { return this.hosts.recordAdvice(advice); }
  setCordon(hostId: string, cordoned: boolean, draining?: boolean): Promise<boolean> { return this.hosts.setCordon(hostId, cordoned, draining); }
  listAdvice(limit: number, sinceMs: number): Promise<AdviceRecord[]> { return this.hosts.listAdvice(limit, sinceMs); }

  epoch(): Promise<string> { return this.rules.epoch(); }

  backup(): Promise<{ revision: bigint }> {
    return Promise.reject(new BackupUnsupportedError("the store is etcd: back it up with etcd's own snapshot (etcdctl snapshot save FILE), and restore with etcdutl snapshot restore"));
  }

  async close(): Promise<void> {
    if (this.s.closed) return;
    this.s.closed = true;
    await Promise.allSettled(this.s.watchers.map((w) => w.cancel()));
    this.s.client.close();
  }
}
