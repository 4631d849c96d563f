// The cloud control engine: what the gRPC adapter calls once a request has been checked, and the
// reads behind the List RPCs (the adapter reaches the store only through these). Each operation
// either completes durably or changes nothing. This class wires the parts and hands each call to
// one: leases.ts (AllocateCareOf, MapCorrespondent, expiry), release.ts (ReleaseCareOf),
// migrations.ts, heartbeats.ts (Heartbeat, cordons, the hosts), reads.ts, rules.ts; what they
// share is core.ts.
import type { Cidr4, IPAddress, IPv4, IPv6 } from "../../lib/net/address.js";
import type { Logger } from "../../lib/log.js";
import { silentLogger } from "../../lib/log.js";
import type { Rule } from "../../lib/rules/rules.js";
import type { EngineConfig } from "../config/config.js";
import { MigrationAdvisor } from "../migration/advisor.js";
import { poolAddresses } from "../pool/pool.js";
import { PrefixPlan } from "../prefix/plan.js";
import type { BindingRecord, HostRecord, LeaseRecord, MigrationCursor, PoolUsage, RuleChange, Store } from "../store/store.js";
import { type EngineCore, type EngineEvents, noEvents } from "./core.js";
import { Heartbeats, type HeartbeatInput, type HeartbeatResult } from "./heartbeats.js";
import { type AdviceEntry, History, type MigrationPage, type VmPlace } from "./history.js";
import { soleLeader, type Leadership } from "./leader.js";
import { type CareOf, Leases } from "./leases.js";
import { type AbortResult, type MigrationInput, type MigrationResult, Migrations, type PrepareResult } from "./migrations.js";
import { EngineReads } from "./reads.js";
import { type Released, Releases } from "./release.js";
import { EngineRules } from "./rules.js";

export type { EngineEvents } from "./core.js";
export type { HeartbeatInput, HeartbeatResult } from "./heartbeats.js";
export type { CareOf } from "./leases.js";
export type { AbortResult, MigrationInput, MigrationResult, PrepareResult } from "./migrations.js";
export type { Released } from "./release.js";

export { MIGRATIONS_LISTED } from "./history.js";
export type { AdviceEntry, MigrationPage, VmPlace } from "./history.js";

/**
 * The configuration keys a reload applies (Engine.reload): each use reads them afresh. Leases
 * given before keep their lifetime until renewed; the sweep's period (at most 1 s) stays.
 */
export const RELOADABLE: ReadonlySet<string> = new Set([
  "leases.lifetimeSeconds", "leases.cooldownSeconds", "leases.correspondentLifetimeSeconds",
  "hosts.heartbeatIntervalSeconds", "hosts.downAfterSeconds",
  "migration.highWatermark", "migration.windowSeconds", "migration.vmCooldownSeconds",
]);

export class Engine {
  readonly plan: PrefixPlan;
  private readonly advisor: MigrationAdvisor;
  private readonly timers: NodeJS.Timeout[] = [];
  /**
   * Composite operations that guard an invariant run one at a time, in arrival order: a VM's
   * migration (binding, rules and leases together) and the lease sweep. Allocation is atomic in
   * the store; heartbeats touch only their own host and take no turn here.
   */
  private serial: Promise<unknown> = Promise.resolve();
  private readonly heartbeats: Heartbeats;
  private readonly leases: Leases;
  private readonly migrations: Migrations;
  private readonly releases: Releases;
  private readonly reads: EngineReads;
  private readonly rules: EngineRules;

  constructor(
    readonly config: EngineConfig,
    private readonly store: Store,
    private readonly log: Logger = silentLogger,
    events: EngineEvents = noEvents,
    now: () => number = Date.now,
    /** Who runs the singleton duties; with replicas on etcd, only the elected leader. */
    private readonly leadership: Leadership = soleLeader(store),
  ) {
    this.plan = new PrefixPlan(config);
    this.advisor = new MigrationAdvisor({
      highWatermark: config.migration.highWatermark,
      lowWatermark: config.migration.lowWatermark,
      windowMs: config.migration.windowSeconds * 1000,
      vmCooldownMs: config.migration.vmCooldownSeconds * 1000,
    });
    const history = new History(store, () => this.listHosts(), config.migration.windowSeconds * 1000, now);
    const core: EngineCore = {
      config, store, plan: this.plan, advisor: this.advisor, log, now, history,
      // Read at each use: a configuration reload may change it.
      get cooldownMs() { return config.leases.cooldownSeconds * 1000; },
      exclusive: <T>(fn: () => Promise<T>) => this.exclusive(fn), host: (hostId: string) => this.heartbeats.host(hostId),
    };
    this.heartbeats = new Heartbeats(core, leadership, events);
    this.leases = new Leases(core, events);
    this.migrations = new Migrations(core);
    this.releases = new Releases(core);
    this.reads = new EngineReads(core);
    this.rules = new EngineRules(core, leadership);
  }

  async start(): Promise<void> {
    const pools = [this.config.pool, ...this.config.segments.flatMap((s) => (s.careOfPool ? [s.careOfPool] : []))];
    await this.store.syncPools(pools.map(poolAddresses));
    await this.heartbeats.start();
    await this.rules.start();
    const sweepMs = Math.min(1000, this.config.hosts.heartbeatIntervalSeconds * 1000);
    this.timers.push(setInterval(() => void this.sweep().catch((e) => this.log.error("sweep failed", { err: e })), sweepMs));
    if (this.heartbeats.replicated) {
      const batchMs = (this.config.hosts.downAfterSeconds * 1000) / 3;
      this.timers.push(setInterval(() => void this.publishLiveness().catch((e) => this.log.error("liveness batch not written", { err: e })), batchMs));
    }
  }

  /**
   * SIGHUP (issue 11 §7): of the keys that changed in the reread file, applies those every use
   * reads afresh (RELOADABLE), and answers the rest, which take effect at the next restart. On etcd
   * hosts.downAfterSeconds sets the liveness batches' period, so it waits for a restart there; a
   * new migration.highWatermark is applied only above the running lowWatermark, which the
   * advisor's headroom index is built on.
   */
  reload(fresh: EngineConfig, changed: string[]): { applied: string[]; restart: string[] } {
    const c = this.config;
    const reloadable = (key: string) => RELOADABLE.has(key)
      && !(key === "hosts.downAfterSeconds" && this.heartbeats.replicated)
      && !(key === "migration.highWatermark" && (changed.includes("migration.lowWatermark") || fresh.migration.highWatermark <= c.migration.lowWatermark));
    const applied = changed.filter(reloadable);
    for (const key of applied) {
      const [section, field] = key.split(".") as ["leases" | "hosts" | "migration", string];
      (c[section] as Record<string, number>)[field] = (fresh[section] as Record<string, number>)[field];
    }
    if (applied.some((k) => k.startsWith("migration."))) {
      const m = c.migration;
      this.advisor.retune({ highWatermark: m.highWatermark, windowMs: m.windowSeconds * 1000, vmCooldownMs: m.vmCooldownSeconds * 1000 });
      this.heartbeats.retune(m.highWatermark);
    }
    return { applied, restart: changed.filter((k) => !applied.includes(k)) };
  }

  /** Stops the timers (the sweep, the liveness batches); tests then call them by hand. */
  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
  }

  /** Ends this replica's liveness lease on etcd, so its batches go with it. */
  async close(): Promise<void> {
    this.stop();
    await this.heartbeats.close();
  }

  /** Resolves once the advice decided so far for hosts at other replicas is written (on etcd). */
  remoteAdviceWritten(): Promise<void> {
    return this.heartbeats.remoteAdviceWritten();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn, fn);
    this.serial = run.catch(() => undefined);
    return run;
  }

  // --- leases (leases.ts, release.ts) ------------------------------------------------------------

  allocateCareOf(hostId: string, vmId: string, home: IPAddress): Promise<CareOf> {
    return this.leases.allocateCareOf(hostId, vmId, home);
  }

  releaseCareOf(sel: { address: IPv4 } | { vmId: string }, force = false): Promise<Released> {
    return this.releases.release(sel, force);
  }

  /** Answers the mapping's lease, and the lease before (undefined for a new mapping), for the audit log. */
  mapCorrespondent(ipv6: IPv6): Promise<{ lease: LeaseRecord; before?: LeaseRecord }> {
    return this.leases.mapCorrespondent(ipv6);
  }

  // --- RegisterMigration, PrepareMigration, AbortMigration (migrations.ts) ----------------------

  registerMigration(m: MigrationInput): Promise<MigrationResult> {
    return this.migrations.register(m);
  }

  prepareMigration(m: MigrationInput): Promise<PrepareResult> {
    return this.migrations.prepare(m);
  }

  abortMigration(vmId: string, hostId: string): Promise<AbortResult> {
    return this.migrations.abort(vmId, hostId);
  }

  // --- hosts (heartbeats.ts) ---------------------------------------------------------------------

  heartbeat(h: HeartbeatInput): Promise<HeartbeatResult> {
    return this.heartbeats.heartbeat(h);
  }

  /** Cordons (or uncordons, or drains) a known host; answers the record before and after, for the audit log. */
  cordonHost(hostId: string, cordoned: boolean, draining = false): Promise<{ before: HostRecord; after: HostRecord }> {
    return this.heartbeats.cordonHost(hostId, cordoned, draining);
  }

  /** Every known host, by id, those of one host or VM when given. */
  listHosts(f: { hostId?: string; vmId?: string } = {}): Promise<HostRecord[]> {
    return this.heartbeats.listHosts(f);
  }

  /** One host by its id (the Get RPCs); NotFoundError for a host that never sent a Heartbeat. */
  getHost(hostId: string): Promise<HostRecord> {
    return this.heartbeats.getHost(hostId);
  }

  /** On etcd: writes this replica's liveness batch now; resolves its etcd revision (0 when there was nothing to write). */
  publishLiveness(): Promise<bigint> {
    return this.heartbeats.publishLiveness();
  }

  /** On etcd: the revision of the newest liveness batch of `replica` that this replica has taken. */
  batchSeen(replica: string): bigint {
    return this.heartbeats.batchSeen(replica);
  }

  // --- reads: the List RPCs and the authorisation of ReleaseCareOf (reads.ts) ---------------------

  requestPrefix(segment: Cidr4): string {
    return this.reads.requestPrefix(segment);
  }

  getLease(address: IPv4): Promise<LeaseRecord> {
    return this.reads.getLease(address);
  }

  getBinding(vmId: string): Promise<BindingRecord> {
    return this.reads.getBinding(vmId);
  }

  poolUsage(): Promise<PoolUsage[]> {
    return this.reads.poolUsage();
  }

  listLeases(f: { hostId?: string; holder?: string } = {}): Promise<LeaseRecord[]> {
    return this.reads.listLeases(f);
  }

  listBindings(f: { hostId?: string; vmId?: string } = {}): Promise<BindingRecord[]> {
    return this.reads.listBindings(f);
  }

  listMigrations(pageSize = 0, after?: MigrationCursor): Promise<MigrationPage> {
    return this.reads.listMigrations(pageSize, after);
  }

  getVm(vmId: string): Promise<VmPlace> {
    return this.reads.getVm(vmId);
  }

  listAdvice(vmId?: string): Promise<AdviceEntry[]> {
    return this.reads.listAdvice(vmId);
  }

  backup(path: string): Promise<{ revision: bigint }> {
    return this.reads.backup(path);
  }

  leaseToRelease(sel: { address: string } | { vmId: string }): Promise<LeaseRecord | undefined> {
    return this.reads.leaseToRelease(sel);
  }

  // --- the rule table (rules.ts) -------------------------------------------------------------------

  ruleTable(): Promise<{ revision: bigint; rules: Rule[] }> {
    return this.rules.table();
  }

  ruleChangesSince(revision: bigint): Promise<RuleChange[] | undefined> {
    return this.rules.changesSince(revision);
  }

  onRulesChanged(listener: (revision: bigint) => void): () => void {
    return this.rules.onChanged(listener);
  }

  // --- housekeeping ----------------------------------------------------------------------------

  /**
   * Ends leases that were not renewed and marks silent hosts down: leader duties, written through
   * the leader's guarded store, so a deposed leader's sweep fails instead of writing.
   */
  async sweep(): Promise<void> {
    const store = this.leadership.leaderStore();
    if (!store) return;
    await this.exclusive(() => this.leases.expire(store));
    await this.heartbeats.markSilentDown(store);
  }
}
