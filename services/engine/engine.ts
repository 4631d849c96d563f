// The cloud control engine's domain operations: what the gRPC adapter calls once a request has
// been checked, and the reads behind the List RPCs (the adapter reaches the store only through
// these). Each operation either completes durably or changes nothing. The migration operations
// are in migrations.ts, releases in release.ts, the where-and-why reads in history.ts. Over 400
// lines: it is the one surface the adapter calls, each method short.
import type { Cidr4, IPAddress, IPv4, IPv6 } from "../../lib/net/address.js";
import { AddressError, cidrText, parseIPv4, prefixContains } from "../../lib/net/address.js";
import type { Logger } from "../../lib/log.js";
import { silentLogger } from "../../lib/log.js";
import type { EngineConfig } from "../config/config.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import type { Rule } from "../../lib/rules/rules.js";
import { MigrationAdvisor } from "../migration/advisor.js";
import { poolAddresses } from "../pool/pool.js";
import { type HostNetwork, networkText, PrefixPlan } from "../prefix/plan.js";
import { EtcdStore } from "../store/etcd.js";
import { LeadershipLostError } from "../store/guard.js";
import { BackupUnsupportedError, vmOwner } from "../store/store.js";
import type {
  AdviceRecord, BindingRecord, HostRecord, LeaseRecord, MigrationCursor, PoolUsage, ResourcesRecord, RuleChange, Store, VmRecord,
} from "../store/store.js";
import { CONFIG_OWNER, configRules, correspondentOwner, correspondentRules } from "../rules/compile.js";
import { type AdviceEntry, History, type MigrationPage, type VmPlace } from "./history.js";
import { ClusterHosts } from "./cluster.js";
import { HostTable } from "./hosts.js";
import { soleLeader, type Leadership } from "./leader.js";
import { type AbortResult, type MigrationInput, type MigrationResult, Migrations, type PrepareResult } from "./migrations.js";
import { type Released, Releases } from "./release.js";

export type { AbortResult, MigrationInput, MigrationResult, PrepareResult } from "./migrations.js";
export type { Released } from "./release.js";

export { MIGRATIONS_LISTED } from "./history.js";
export type { AdviceEntry, MigrationPage, VmPlace } from "./history.js";

export interface CareOf {
  careOfIPv4: string;
  careOfIPv6: string;
  lifetimeSeconds: number;
  pool: string;
  expiresAtMs: number;
}

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

/** What the engine reports to its metrics as things happen. */
export interface EngineEvents {
  adviceGiven(n: number): void;
  leasesExpired(n: number): void;
}

const noEvents: EngineEvents = { adviceGiven() {}, leasesExpired() {} };

/**
 * The configuration keys a reload applies (Engine.reload): each use reads them afresh. Leases
 * given before keep their lifetime until renewed; the sweep's period (at most 1 s) stays.
 */
export const RELOADABLE: ReadonlySet<string> = new Set([
  "leases.lifetimeSeconds", "leases.cooldownSeconds", "leases.correspondentLifetimeSeconds",
  "hosts.heartbeatIntervalSeconds", "hosts.downAfterSeconds",
  "migration.highWatermark", "migration.windowSeconds", "migration.vmCooldownSeconds",
]);

/** Hosts per liveness key on etcd: at 100 bytes an entry, about 100 KiB a key. */
const LIVENESS_SHARD = 1000;

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
  /** The hosts in memory, with the embedded store (this engine its one writer). */
  private readonly hosts = new HostTable();
  /**
   * On etcd a host may beat at any replica: the replicas' shared host keys, watched, with this
   * replica's liveness batches (cluster.ts).
   */
  private readonly cluster?: ClusterHosts;
  /** The writes of advice given for hosts at other replicas, from their batches (on etcd). */
  private remoteAdvice: Promise<unknown> = Promise.resolve();
  private readonly migrations: Migrations;
  private readonly releases: Releases;
  private readonly history: History;

  constructor(
    readonly config: EngineConfig,
    private readonly store: Store,
    private readonly log: Logger = silentLogger,
    private readonly events: EngineEvents = noEvents,
    private readonly now: () => number = Date.now,
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
    if (config.store.kind === "etcd") {
      if (!(store instanceof EtcdStore)) throw new Error("store.kind etcd needs an EtcdStore");
      const downAfterMs = config.hosts.downAfterSeconds * 1000;
      this.cluster = new ClusterHosts(store, this.advisor, {
        replica: config.replica, downAfterMs, batchMs: downAfterMs / 3, highWatermark: config.migration.highWatermark, shardSize: LIVENESS_SHARD,
      }, now, log, (host) => {
        const given = this.adviseRemote(host).catch((e) => this.log.error("advice for a host at another replica not given", { hostId: host.hostId, err: e }));
        this.remoteAdvice = this.remoteAdvice.then(() => given);
      });
    }
    this.history = new History(store, () => this.listHosts(), config.migration.windowSeconds * 1000, now);
    const core = {
      config, store, plan: this.plan, advisor: this.advisor, log, now, history: this.history,
      // Read at each use: a configuration reload may change it.
      get cooldownMs() { return config.leases.cooldownSeconds * 1000; },
      exclusive: <T>(fn: () => Promise<T>) => this.exclusive(fn), host: (hostId: string) => this.host(hostId),
    };
    this.migrations = new Migrations(core);
    this.releases = new Releases(core);
  }

  async start(): Promise<void> {
    const pools = [this.config.pool, ...this.config.segments.flatMap((s) => (s.careOfPool ? [s.careOfPool] : []))];
    await this.store.syncPools(pools.map(poolAddresses));
    if (this.cluster) {
      await this.cluster.start();
      // A new leader gives every host a whole downAfterSeconds, as a restart does on SQLite.
      this.leadership.onElected(() => this.cluster!.elected());
    } else {
      const known = await this.store.listHosts();
      this.hosts.load(known, this.now());
      for (const h of known) if (h.state !== "down") this.advisor.track(h);
    }
    // The configuration's rules are compiled by the leader, so replicas with different
    // configurations (during a rolling change) do not take turns rewriting them.
    this.leadership.onElected(() => void this.compileConfigRules().catch((e) => this.log.error("configuration rules not written", { err: e })));
    await this.compileConfigRules();
    const sweepMs = Math.min(1000, this.config.hosts.heartbeatIntervalSeconds * 1000);
    this.timers.push(setInterval(() => void this.sweep().catch((e) => this.log.error("sweep failed", { err: e })), sweepMs));
    if (this.cluster) {
      const batchMs = (this.config.hosts.downAfterSeconds * 1000) / 3;
      this.timers.push(setInterval(() => void this.publishLiveness().catch((e) => this.log.error("liveness batch not written", { err: e })), batchMs));
    }
  }

  private async compileConfigRules(): Promise<void> {
    const store = this.leadership.leaderStore();
    if (store) await store.replaceRules(CONFIG_OWNER, configRules(this.config));
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
      && !(key === "hosts.downAfterSeconds" && this.cluster)
      && !(key === "migration.highWatermark" && (changed.includes("migration.lowWatermark") || fresh.migration.highWatermark <= c.migration.lowWatermark));
    const applied = changed.filter(reloadable);
    for (const key of applied) {
      const [section, field] = key.split(".") as ["leases" | "hosts" | "migration", string];
      (c[section] as Record<string, number>)[field] = (fresh[section] as Record<string, number>)[field];
    }
    if (applied.some((k) => k.startsWith("migration."))) {
      const m = c.migration;
      this.advisor.retune({ highWatermark: m.highWatermark, windowMs: m.windowSeconds * 1000, vmCooldownMs: m.vmCooldownSeconds * 1000 });
      this.cluster?.retune(m.highWatermark);
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
  private async host(hostId: string): Promise<HostRecord | undefined> {
    if (!this.cluster) return this.hosts.get(hostId);
    return this.cluster.get(hostId) ?? this.store.getHost(hostId);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn, fn);
    this.serial = run.catch(() => undefined);
    return run;
  }

  private get cooldownMs(): number {
    return this.config.leases.cooldownSeconds * 1000;
  }

  // --- AllocateCareOf / ReleaseCareOf ----------------------------------------------------------

  async allocateCareOf(hostId: string, vmId: string, home: IPAddress): Promise<CareOf> {
    const host = await this.host(hostId);
    if (!host) throw new FailedPreconditionError(`host ${hostId} is unknown: its agent must send a Heartbeat with its addresses first`);
    // The network was worked out from the host's addresses when it last beat.
    const net = this.plan.networkByCidr(host.network);
    if (!net) throw new FailedPreconditionError(`host ${hostId} is on no network the engine serves (addresses ${host.addresses.join(", ") || "none"})`);
    const pool = this.careOfPool(net, vmId, home);
    const nowMs = this.now();
    const lifetimeSeconds = this.config.leases.lifetimeSeconds;
    const base = { holder: vmId, purpose: "care-of" as const, hostId, pool, nowMs, expiresAtMs: nowMs + lifetimeSeconds * 1000, cooldownMs: this.cooldownMs };
    // Flow 3.1 b-c: an IPv4 VM in the IPv6 network gets a pool address, and an IPv6 care-of
    // address of the host network's prefix + its home address. Flow 3.2 b-c: the segment's range
    // stands in for its DHCP; the IPv6 care-of address is the segment's prefix + that address. An
    // IPv4 VM on a foreign IPv4 segment gets a co-located care-of address the same way (RFC 5944 §1.2).
    const held = await this.store.getLease(vmId, "care-of");
    const lease = held && held.hostId !== hostId
      ? await this.exclusive(async () => this.store.acquireLease({ ...base, hostId: await this.takeOver(hostId, vmId, pool, nowMs) }))
      : await this.store.acquireLease(base);
    const v6 = this.plan.careOfIPv6(net, home, parseIPv4(lease.address, "care_of_ipv4"))?.text ?? "";
    return { careOfIPv4: lease.address, careOfIPv6: v6, lifetimeSeconds, pool: lease.pool, expiresAtMs: lease.expiresAtMs! };
  }

  /** The pool a VM's care-of address on `net` comes from; FailedPreconditionError where it needs none or can have none. */
  private careOfPool(net: HostNetwork, vmId: string, home: IPAddress): string {
    if (home.family === 4 && net.family === 6) return this.config.pool.name;
    if (net.family === 4) {
      const seg = net.segment;
      if (home.family === 4 && prefixContains(seg.network.network.bytes, seg.network.length, home.bytes)) {
        throw new FailedPreconditionError(`vm ${vmId} is on its home network ${cidrText(seg.network)}: it needs no care-of address`);
      }
      if (!seg.careOfPool) throw new FailedPreconditionError(`segment ${seg.name} has no careOfRange configured`);
      if (home.family === 6 && !seg.prefix) throw new FailedPreconditionError(`segment ${seg.name} has no IPv6 prefix, so an IPv6 VM cannot have a care-of address there`);
      return seg.careOfPool.name;
    }
    throw new FailedPreconditionError(
      `vm ${vmId} is an IPv6 VM on IPv6 network ${net.name}: it forms its care-of address itself (RFC 6275 §11.5); the engine serves cross-protocol moves`);
  }

  /**
   * A VM's care-of lease held for another host B, asked for by host H (issue 11 §1). The lease is
   * where the engine knows the VM is or is going: bound at B with it, or in a migration to B
   * prepared with it. H takes it over only when a migration to H is under way as far as the engine
   * can know: it advised the move to H, or B is down, or (for a VM bound at B) B's heartbeat no
   * longer lists the VM. Anything else is FAILED_PRECONDITION naming B and the binding. A
   * migration prepared for B is superseded (its rules go). Taken over into another pool, the
   * address cools down, so a binding that points at it goes too (as on expiry: a binding cannot
   * outlive its care-of address); refused while the VM still runs at the binding's host.
   *
   * The host the VM is bound at, renewing while the lease is already the destination's, renews it
   * for the destination (the same address): its agent goes on renewing the VM's registration
   * until the VM leaves. Resolves the host the lease is to be held for.
   */
  private async takeOver(hostId: string, vmId: string, pool: string, nowMs: number): Promise<string> {
    const lease = await this.store.getLease(vmId, "care-of");
    if (!lease || lease.hostId === hostId) return hostId;
    const b = await this.store.getBinding(vmId);
    const uses = b !== undefined && b.careOfIPv4 === lease.address;
    if (uses && b.hostId === hostId && lease.pool === pool) return lease.hostId;
    const boundThere = uses && b.hostId === lease.hostId;
    const holder = await this.host(lease.hostId);
    const down = !holder || holder.state === "down";
    const advised = (await this.history.causeOf(vmId, hostId, nowMs)).advice !== undefined;
    const runsAt = (h: HostRecord | undefined) => h !== undefined && h.state !== "down" && h.vms.some((v) => v.vmId === vmId);
    if (!advised && !down) {
      if (boundThere && runsAt(holder)) {
        throw new FailedPreconditionError(`vm_id: vm ${vmId} is bound at host ${b.hostId} (migration ${b.migrationId}) with care-of address ${lease.address}, and that host's heartbeat lists it: `
          + `host ${hostId} takes the lease over only for a migration to it the engine knows of (its advice), or once ${b.hostId} is down or no longer lists the VM`);
      }
      if (!boundThere) {
        throw new FailedPreconditionError(`vm_id: vm ${vmId}'s care-of address ${lease.address} is held for host ${lease.hostId}, where its migration is prepared${b ? ` (from its binding at ${b.hostId})` : ""}: `
          + `one migration per VM at a time; ${lease.hostId} aborts it (AbortMigration) or it lapses with the lease, unless the engine advised the move to ${hostId} or ${lease.hostId} is down`);
      }
    }
    const dropBinding = uses && lease.pool !== pool;
    if (dropBinding) {
      if (runsAt(await this.host(b.hostId))) {
        throw new FailedPreconditionError(`vm_id: vm ${vmId}'s binding at host ${b.hostId} (migration ${b.migrationId}) uses care-of address ${lease.address} of pool ${lease.pool}, and host ${hostId} takes from pool ${pool}: `
          + `the binding would point at an address cooling down while the VM runs at ${b.hostId}; the lease is taken over once ${b.hostId} no longer lists the VM`);
      }
      await this.store.deleteBinding(vmId);
      await this.store.releaseLease({ holder: vmId, purpose: "translation" }, nowMs, this.cooldownMs);
    }
    if (!b) await this.store.replaceRules(vmOwner(vmId), []);
    this.log.warn("care-of lease taken over", {
      vmId, from: lease.hostId, to: hostId, address: lease.address, why: advised ? "advice" : down ? "host down" : "no longer listed", bindingRemoved: dropBinding, preparedSuperseded: !b,
    });
    return hostId;
  }

  releaseCareOf(sel: { address: IPv4 } | { vmId: string }, force = false): Promise<Released> {
    return this.releases.release(sel, force);
  }

  // --- RequestPrefix ---------------------------------------------------------------------------

  requestPrefix(segment: Cidr4): string {
    const seg = this.plan.segmentFor(cidrText(segment));
    if (!seg) {
      const known = this.plan.segments.map((s) => cidrText(s.network)).join(", ") || "none";
      throw new NotFoundError(`ipv4_segment: ${cidrText(segment)} is not a segment attached to this engine (known: ${known})`);
    }
    if (!seg.prefix) throw new FailedPreconditionError(`ipv4_segment: ${cidrText(segment)} has no IPv6 prefix assigned`);
    return `${seg.prefix.network.text}/${seg.prefix.length}`;
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

  // --- MapCorrespondent ------------------------------------------------------------------------

  /** Answers the mapping's lease, and the lease before (undefined for a new mapping), for the audit log. */
  mapCorrespondent(ipv6: IPv6): Promise<{ lease: LeaseRecord; before?: LeaseRecord }> {
    const xlat = this.config.translationPrefix;
    // An address inside our own translation prefix stands for an IPv4 node already (RFC 6052):
    // mapping it too would give one IPv4 node two IPv6 names, and loop the translator.
    if (xlat && prefixContains(xlat.network.bytes, xlat.length, ipv6.bytes)) {
      return Promise.reject(new InvalidArgumentError("ipv6_address", `'${ipv6.text}' is inside the engine's translation prefix ${cidrText(xlat)}: it already stands for an IPv4 address`));
    }
    return this.exclusive(async () => {
      const nowMs = this.now();
      const before = await this.store.getLease(ipv6.text, "correspondent");
      const lease = await this.store.acquireLease({
        pool: this.config.pool.name, holder: ipv6.text, purpose: "correspondent", hostId: "", nowMs,
        expiresAtMs: nowMs + this.config.leases.correspondentLifetimeSeconds * 1000, cooldownMs: this.cooldownMs,
      });
      await this.store.replaceRules(correspondentOwner(ipv6.text), correspondentRules(ipv6.text, lease.address));
      return { lease, before };
    });
  }

  // --- Heartbeat -------------------------------------------------------------------------------

  async heartbeat(h: HeartbeatInput): Promise<HeartbeatResult> {
    const nowMs = this.now();
    const net = this.plan.networkOf(h.addresses);
    const host: HostRecord = {
      hostId: h.hostId, state: "up", family: net?.family ?? 0, network: net ? networkText(net) : "",
      addresses: h.addresses, resources: h.resources, vms: h.vms, lastSeenMs: nowMs,
    };
    // A beat keeps the operator's cordon (on etcd too it is in memory: every replica watches the
    // cordons).
    const known = this.cluster ? this.cluster.get(h.hostId) : this.hosts.get(h.hostId);
    if (known?.cordoned) host.cordoned = true;
    if (known?.draining) host.draining = true;
    host.state = this.advisor.observe(host, nowMs) ? "hot" : "up";
    if (this.cluster) await this.cluster.beat(host);
    else if (this.hosts.beat(host)) await this.writeHost(host);
    // Migration advice is a leader duty: one advisor decides, so two replicas never send the
    // same VM two ways. A replica that does not lead answers with the advice the leader left
    // for this host (from its batch entries), if any. Only a hot host needs a destination, and
    // the advisor finds it in its headroom index, which holds every host on etcd too.
    const leader = this.leadership.leaderStore();
    let advice: AdviceRecord[] = [];
    if (leader && (host.state === "hot" || host.draining)) {
      advice = host.draining ? this.advisor.adviseDrain(host, this.advisor.headroom, nowMs) : this.advisor.advise(host, this.advisor.headroom, nowMs);
      advice = await this.recordAdvice(leader, advice);
    }
    if (this.cluster) advice = [...(await this.cluster.takeAdvice(h.hostId)), ...advice];
    return { host, advice, heartbeatIntervalSeconds: this.config.hosts.heartbeatIntervalSeconds };
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
    this.log.info("migration advised", { ...advice[0] });
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
    const nowMs = this.now();
    const given = host.draining ? this.advisor.adviseDrain(host, this.advisor.headroom, nowMs) : this.advisor.advise(host, this.advisor.headroom, nowMs);
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
      await this.store.putHost(host);
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
      if (after.state !== "down") this.advisor.track(after);
    }
    this.log.info(draining ? "host draining" : cordoned ? "host cordoned" : "host uncordoned", { hostId });
    return { before, after };
  }

  /** Every known host, by id: this engine's memory with the embedded store, etcd's hosts otherwise. */
  async listHosts(f: { hostId?: string; vmId?: string } = {}): Promise<HostRecord[]> {
    const all = this.cluster ? this.cluster.list() : this.hosts.list();
    return all.filter((h) => (!f.hostId || h.hostId === f.hostId) && (!f.vmId || h.vms.some((v) => v.vmId === f.vmId)));
  }

  // --- reads: the List RPCs and the authorisation of ReleaseCareOf --------------------------------

  /** One host by its id (the Get RPCs); NotFoundError for a host that never sent a Heartbeat. */
  async getHost(hostId: string): Promise<HostRecord> {
    const h = await this.host(hostId);
    if (!h) throw new NotFoundError(`host_id: no host ${hostId}: it has sent no heartbeat`);
    return h;
  }

  /** The lease on one address; NotFoundError when none holds it. */
  async getLease(address: IPv4): Promise<LeaseRecord> {
    const l = await this.store.leaseByAddress(address.text);
    if (!l) throw new NotFoundError(`address: no lease holds ${address.text}`);
    return l;
  }

  /** A VM's binding; NotFoundError for a VM that is not away (at home, or unknown). */
  async getBinding(vmId: string): Promise<BindingRecord> {
    const b = await this.store.getBinding(vmId);
    if (!b) throw new NotFoundError(`vm_id: vm ${vmId} has no binding: it is at home, or unknown (mipctl where ${vmId})`);
    return b;
  }

  poolUsage(): Promise<PoolUsage[]> {
    return this.store.poolUsage(this.now());
  }

  /** The leases, those of one host or holder when given. */
  async listLeases(f: { hostId?: string; holder?: string } = {}): Promise<LeaseRecord[]> {
    return (await this.store.listLeases()).filter((l) => (!f.hostId || l.hostId === f.hostId) && (!f.holder || l.holder === f.holder));
  }

  /** The bindings, those of one host or VM when given. */
  async listBindings(f: { hostId?: string; vmId?: string } = {}): Promise<BindingRecord[]> {
    return (await this.store.listBindings()).filter((b) => (!f.hostId || b.hostId === f.hostId) && (!f.vmId || b.vmId === f.vmId));
  }

  /** A page of the migrations, newest first: `pageSize` of them (0: MIGRATIONS_LISTED; at most that), after `after`. */
  listMigrations(pageSize = 0, after?: MigrationCursor): Promise<MigrationPage> {
    return this.history.migrations(pageSize, after);
  }

  /** Where a VM is and how it got there; NotFoundError for a VM the engine knows nothing of. */
  getVm(vmId: string): Promise<VmPlace> {
    return this.history.vm(vmId);
  }

  /** The advice given, newest first, with what became of each. */
  listAdvice(vmId?: string): Promise<AdviceEntry[]> {
    return this.history.advice(vmId);
  }

  ruleTable(): Promise<{ revision: bigint; rules: Rule[] }> {
    return this.store.ruleTable();
  }

  /** The rule changes after `revision`, oldest first; undefined when the log no longer reaches back that far. */
  ruleChangesSince(revision: bigint): Promise<RuleChange[] | undefined> {
    return this.store.ruleChangesSince(revision);
  }

  /** An online backup of the store into a new file at `path`; FailedPreconditionError on a store that backs up on its own (etcd). */
  async backup(path: string): Promise<{ revision: bigint }> {
    try {
      return await this.store.backup(path);
    } catch (e) {
      if (e instanceof BackupUnsupportedError) throw new FailedPreconditionError(e.message);
      throw e;
    }
  }

  /** Calls `listener` after each change of the rule table (on etcd, any replica's); returns the unsubscribe. */
  onRulesChanged(listener: (revision: bigint) => void): () => void {
    return this.store.onRulesChanged(listener);
  }

  /**
   * The lease a ReleaseCareOf names: the lease on an address (one lookup by key, not a scan of
   * every lease), or a VM's care-of lease. Text that is no IPv4 address has no lease; the call
   * itself then answers INVALID_ARGUMENT.
   */
  async leaseToRelease(sel: { address: string } | { vmId: string }): Promise<LeaseRecord | undefined> {
    if ("vmId" in sel) return this.store.getLease(sel.vmId, "care-of");
    const address = tryParseIPv4(sel.address);
    return address ? this.store.leaseByAddress(address.text) : undefined;
  }

  // --- housekeeping ----------------------------------------------------------------------------

  /**
   * Ends leases that were not renewed and marks silent hosts down: leader duties, written through
   * the leader's guarded store, so a deposed leader's sweep fails instead of writing.
   */
  async sweep(): Promise<void> {
    const store = this.leadership.leaderStore();
    if (!store) return;
    await this.exclusive(async () => {
      const nowMs = this.now();
      const expired = await store.expireLeases(nowMs, this.cooldownMs);
      if (expired.length > 0) this.events.leasesExpired(expired.length);
      for (const lease of expired) {
        this.log.info("lease expired", { ...lease });
        if (lease.purpose === "care-of") {
          // A binding cannot outlive the care-of address it points at: the address may go to another VM.
          const b = await store.getBinding(lease.holder);
          if (b && b.careOfIPv4 === lease.address) {
            await store.deleteBinding(lease.holder);
            await store.releaseLease({ holder: lease.holder, purpose: "translation" }, nowMs, this.cooldownMs);
          } else if (!b) {
            // Nor do the rules of a migration prepared with it that never arrived.
            await store.replaceRules(vmOwner(lease.holder), []);
            await store.releaseLease({ holder: lease.holder, purpose: "translation" }, nowMs, this.cooldownMs);
          }
        } else if (lease.purpose === "correspondent") {
          await store.replaceRules(correspondentOwner(lease.holder), []);
        }
      }
    });
    if (this.cluster) {
      // On etcd the last beat of a host may have come to any replica: its batches tell.
      for (const host of await this.cluster.markSilentDown(store as EtcdStore)) {
        this.log.warn("host marked down", { hostId: host.hostId, lastSeenMs: this.cluster.get(host.hostId)?.lastSeenMs ?? host.lastSeenMs });
      }
    } else await this.markSilentHostsDown();
  }

  /** In memory, only the hosts past the deadline are looked at (the table keeps them oldest first). */
  private async markSilentHostsDown(): Promise<void> {
    const deadline = this.now() - this.config.hosts.downAfterSeconds * 1000;
    const down = this.hosts.markSilentDown(deadline);
    for (const host of down) {
      this.advisor.forget(host.hostId);
      this.log.warn("host marked down", { hostId: host.hostId, lastSeenMs: host.lastSeenMs });
    }
    await Promise.all(down.map((h) => this.writeHost(h)));
  }
}

function tryParseIPv4(text: string): IPv4 | undefined {
  try {
    return parseIPv4(text, "address");
  } catch (e) {
    if (e instanceof AddressError) return undefined;
    throw e;
  }
}
