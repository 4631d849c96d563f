// The cloud control engine's domain operations: what the gRPC adapter calls once a request has
// been checked. Each operation either completes durably or changes nothing.
import { randomUUID } from "node:crypto";
import type { Cidr4, IPAddress, IPv4, IPv6 } from "../../lib/net/address.js";
import { cidrText, parseIPv4, prefixContains } from "../../lib/net/address.js";
import type { Logger } from "../../lib/log.js";
import { silentLogger } from "../../lib/log.js";
import type { EngineConfig } from "../config/config.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { MigrationAdvisor } from "../migration/advisor.js";
import { poolAddresses } from "../pool/pool.js";
import { networkText, PrefixPlan } from "../prefix/plan.js";
import { LeadershipLostError } from "../store/guard.js";
import { vmOwner } from "../store/store.js";
import type {
  AdviceRecord, BindingRecord, CoolingRecord, HostRecord, LeaseRecord, MigrationRecord, ResourcesRecord, Store, VmRecord,
} from "../store/store.js";
import { bindingRules, CONFIG_OWNER, configRules, correspondentOwner, correspondentRules } from "../tunnel/compile.js";
import { HostTable } from "./hosts.js";
import { soleLeader, type Leadership } from "./leader.js";

export interface CareOf {
  careOfIPv4: string;
  careOfIPv6: string;
  lifetimeSeconds: number;
  pool: string;
  expiresAtMs: number;
}

export interface MigrationInput {
  vmId: string;
  home: IPAddress;
  homeAgent: IPAddress;
  sourceHostId: string;
  destinationHostId: string;
  careOfIPv4?: IPv4;
  careOfIPv6?: IPv6;
}

export interface MigrationResult {
  migrationId: string;
  ruleRevision: bigint;
  translatedIPv4: string;
  translatedIPv6: string;
  returnedHome: boolean;
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
  /**
   * The hosts in memory, with the embedded store (this engine its one writer). On etcd a host
   * may beat at any replica, so its record and liveness live in etcd instead.
   */
  private readonly hosts = new HostTable();
  private readonly hostsInStore: boolean;

  constructor(
    readonly config: EngineConfig,
    readonly store: Store,
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
    this.hostsInStore = config.store.kind === "etcd";
  }

  async start(): Promise<void> {
    const pools = [this.config.pool, ...this.config.segments.flatMap((s) => (s.careOfPool ? [s.careOfPool] : []))];
    await this.store.syncPools(pools.map(poolAddresses));
    if (!this.hostsInStore) {
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
  }

  private async compileConfigRules(): Promise<void> {
    const store = this.leadership.leaderStore();
    if (store) await store.replaceRules(CONFIG_OWNER, configRules(this.config));
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
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
    const host = this.hostsInStore ? await this.store.getHost(hostId) : this.hosts.get(hostId);
    if (!host) throw new FailedPreconditionError(`host ${hostId} is unknown: its agent must send a Heartbeat with its addresses first`);
    // The network was worked out from the host's addresses when it last beat.
    const net = this.plan.networkByCidr(host.network);
    if (!net) throw new FailedPreconditionError(`host ${hostId} is on no network the engine serves (addresses ${host.addresses.join(", ") || "none"})`);
    const nowMs = this.now();
    const lifetimeSeconds = this.config.leases.lifetimeSeconds;
    const base = { holder: vmId, purpose: "care-of" as const, hostId, nowMs, expiresAtMs: nowMs + lifetimeSeconds * 1000, cooldownMs: this.cooldownMs };

    if (home.family === 4 && net.family === 6) {
      // Flow 3.1 b-c: an IPv4 VM in the IPv6 network gets a pool address, and an IPv6 care-of
      // address of the host network's prefix + its home address.
      const lease = await this.store.acquireLease({ ...base, pool: this.config.pool.name });
      const v6 = this.plan.careOfInIPv6Network(net.network, home);
      return { careOfIPv4: lease.address, careOfIPv6: v6.text, lifetimeSeconds, pool: lease.pool, expiresAtMs: lease.expiresAtMs! };
    }
    if (net.family === 4) {
      const seg = net.segment;
      if (home.family === 4 && prefixContains(seg.network.network.bytes, seg.network.length, home.bytes)) {
        throw new FailedPreconditionError(`vm ${vmId} is on its home network ${cidrText(seg.network)}: it needs no care-of address`);
      }
      if (!seg.careOfPool) throw new FailedPreconditionError(`segment ${seg.name} has no careOfRange configured`);
      if (home.family === 6 && !seg.prefix) throw new FailedPreconditionError(`segment ${seg.name} has no IPv6 prefix, so an IPv6 VM cannot have a care-of address there`);
      // Flow 3.2 b-c: the segment's range stands in for its DHCP; the IPv6 care-of address is the
      // segment's prefix + that address. An IPv4 VM on a foreign IPv4 segment gets a co-located
      // care-of address the same way (RFC 5944 §1.2).
      const lease = await this.store.acquireLease({ ...base, pool: seg.careOfPool.name });
      const v6 = seg.prefix ? this.plan.careOfInSegment(seg.prefix, parseIPv4(lease.address, "care_of_ipv4")).text : "";
      return { careOfIPv4: lease.address, careOfIPv6: v6, lifetimeSeconds, pool: lease.pool, expiresAtMs: lease.expiresAtMs! };
    }
    throw new FailedPreconditionError(
      `vm ${vmId} is an IPv6 VM on IPv6 network ${net.name}: it forms its care-of address itself (RFC 6275 §11.5); the engine serves cross-protocol moves`);
  }

  releaseCareOf(sel: { address: IPv4 } | { vmId: string }): Promise<CoolingRecord> {
    return this.exclusive(async () => {
      // A binding cannot outlive the address it points at (as on expiry): a lease that a binding
      // uses is not released; the VM must come home, or move, first.
      const lease = "address" in sel ? (await this.store.listLeases()).find((l) => l.address === sel.address.text) : await this.store.getLease(sel.vmId, "care-of");
      const b = lease && (lease.purpose === "care-of" || lease.purpose === "translation") ? await this.store.getBinding(lease.holder) : undefined;
      if (lease) {
        if (b && (b.careOfIPv4 === lease.address || b.translatedIPv4 === lease.address)) {
          const use = b.careOfIPv4 === lease.address ? "care-of address" : "translated address";
          throw new FailedPreconditionError(`address: ${lease.address} is the ${use} of vm ${b.vmId}'s binding at ${b.hostId} (migration ${b.migrationId}); it is released when the VM comes home or moves on`);
        }
      }
      const released = await this.store.releaseLease(
        "address" in sel ? { address: sel.address.text } : { holder: sel.vmId, purpose: "care-of" }, this.now(), this.cooldownMs);
      if (!released) throw new NotFoundError("address" in sel ? `no lease holds ${sel.address.text}` : `vm ${sel.vmId} holds no care-of lease`);
      // A correspondent's address mapping (RFC 7757) goes with its lease, as on expiry; so do
      // the rules of a migration prepared with a care-of address that never arrived.
      if (released.purpose === "correspondent") await this.store.replaceRules(correspondentOwner(released.holder), []);
      if (released.purpose === "care-of" && b === undefined) await this.store.replaceRules(vmOwner(released.holder), []);
      return released;
    });
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

  // --- RegisterMigration -----------------------------------------------------------------------

  registerMigration(m: MigrationInput): Promise<MigrationResult> {
    return this.exclusive(async () => {
      const nowMs = this.now();
      const migration: MigrationRecord = {
        migrationId: randomUUID(), vmId: m.vmId, sourceHostId: m.sourceHostId, destinationHostId: m.destinationHostId,
        careOfIPv4: m.careOfIPv4?.text ?? "", careOfIPv6: m.careOfIPv6?.text ?? "", registeredAtMs: nowMs,
      };
      if (!m.careOfIPv4 && !m.careOfIPv6) {
        // The VM is home again: its rules go, and its addresses cool down.
        if (migration.sourceHostId === "") migration.sourceHostId = (await this.store.getBinding(m.vmId))?.hostId ?? "";
        const { revision, binding } = await this.store.deleteBinding(m.vmId, migration);
        await this.store.releaseLease({ holder: m.vmId, purpose: "translation" }, nowMs, this.cooldownMs);
        await this.store.releaseLease({ holder: m.vmId, purpose: "care-of" }, nowMs, this.cooldownMs);
        this.advisor.noteMigration(m.vmId, nowMs);
        this.log.info("vm returned home", { vmId: m.vmId, hadBinding: binding !== undefined, revision });
        return { migrationId: migration.migrationId, ruleRevision: revision, translatedIPv4: "", translatedIPv6: "", returnedHome: true };
      }
      const { careOfIPv4, careOfIPv6 } = await this.checkCareOf(m);
      const existing = await this.store.getBinding(m.vmId);
      if (existing && sameBinding(existing, m, careOfIPv4, careOfIPv6)) {
        // A repeat: same binding, same rules; nothing to write.
        const { revision } = await this.store.ruleTable();
        return { migrationId: existing.migrationId, ruleRevision: revision, translatedIPv4: existing.translatedIPv4, translatedIPv6: existing.translatedIPv6, returnedHome: false };
      }
      const { binding, mappedElsewhere } = await this.newBinding(m, careOfIPv4, careOfIPv6, migration.migrationId, nowMs);
      const { translatedIPv4, translatedIPv6 } = binding;
      const revision = await this.store.putBinding(binding, migration, bindingRules(binding, { mappingOwnedElsewhere: mappedElsewhere }));
      this.advisor.noteMigration(m.vmId, nowMs);
      this.log.info("migration registered", { vmId: m.vmId, migrationId: migration.migrationId, careOfIPv4: binding.careOfIPv4, careOfIPv6: binding.careOfIPv6, revision });
      return { migrationId: migration.migrationId, ruleRevision: revision, translatedIPv4, translatedIPv6, returnedHome: false };
    });
  }

  /** The care-of addresses of a registration must be the VM's lease (RegisterMigration, PrepareMigration). */
  private async checkCareOf(m: MigrationInput): Promise<{ careOfIPv4: IPv4; careOfIPv6: IPv6 }> {
    if (!m.careOfIPv4) throw new InvalidArgumentError("care_of_ipv4", "is required unless both care-of addresses are empty (the VM came home)");
    if (!m.careOfIPv6) throw new InvalidArgumentError("care_of_ipv6", "is required unless both care-of addresses are empty (the VM came home)");
    const lease = await this.store.getLease(m.vmId, "care-of");
    if (!lease || lease.address !== m.careOfIPv4.text) {
      throw new FailedPreconditionError(`care_of_ipv4: ${m.careOfIPv4.text} is not leased to vm ${m.vmId}; call AllocateCareOf first`);
    }
    return { careOfIPv4: m.careOfIPv4, careOfIPv6: m.careOfIPv6 };
  }

  /** The binding a registration makes, with the translation address it needs (taken, or renewed: the same one again). */
  private async newBinding(m: MigrationInput, careOfIPv4: IPv4, careOfIPv6: IPv6, migrationId: string, nowMs: number): Promise<{ binding: BindingRecord; mappedElsewhere: boolean }> {
    let translatedIPv4 = "";
    let translatedIPv6 = "";
    let mappedElsewhere = false;
    if (m.home.family === 6) {
      // An IPv6 VM that IPv4 clients already reach at a pool address (MapCorrespondent while it
      // was home) keeps that address, or their open sessions would break with the migration.
      const mapped = await this.store.getLease(m.home.text, "correspondent");
      if (mapped) {
        translatedIPv4 = mapped.address;
        mappedElsewhere = true;
      } else {
        // Paper 3.2, last paragraph: IPv4 correspondents reach the VM at a pool address.
        const t = await this.store.acquireLease({
          pool: this.config.pool.name, holder: m.vmId, purpose: "translation", hostId: m.destinationHostId, nowMs, expiresAtMs: null, cooldownMs: this.cooldownMs,
        });
        translatedIPv4 = t.address;
      }
    } else {
      translatedIPv6 = this.plan.translated(m.home)?.text ?? "";
    }
    const binding: BindingRecord = {
      vmId: m.vmId, homeAddress: m.home.text, homeAgent: m.homeAgent.text, hostId: m.destinationHostId,
      careOfIPv4: careOfIPv4.text, careOfIPv6: careOfIPv6.text, translatedIPv4, translatedIPv6,
      migrationId, updatedAtMs: nowMs,
    };
    return { binding, mappedElsewhere };
  }

  // --- PrepareMigration / AbortMigration (live migration: before the VM runs at its destination) --

  /**
   * Writes the rules the VM will need at its destination under the VM's own keys, with no
   * binding yet: the rules only receive (re-wrap what the home agent tunnels to the new care-of
   * address, unwrap what comes from it), so nothing of the VM's traffic moves until its home
   * agent takes the registration. RegisterMigration at activation then compiles the same rules
   * and changes none of them (the store writes only differences), so no rule push lies on the
   * handover's path. A VM whose rules still serve a binding at another host is left alone.
   */
  prepareMigration(m: MigrationInput): Promise<{ ruleRevision: bigint; translatedIPv4: string; translatedIPv6: string; prepared: boolean; active: boolean }> {
    return this.exclusive(async () => {
      const { careOfIPv4, careOfIPv6 } = await this.checkCareOf(m);
      const existing = await this.store.getBinding(m.vmId);
      if (existing) {
        const { revision } = await this.store.ruleTable();
        const active = sameBinding(existing, m, careOfIPv4, careOfIPv6);
        return { ruleRevision: revision, translatedIPv4: existing.translatedIPv4, translatedIPv6: existing.translatedIPv6, prepared: active, active };
      }
      const { binding, mappedElsewhere } = await this.newBinding(m, careOfIPv4, careOfIPv6, "", this.now());
      const revision = await this.store.replaceRules(vmOwner(m.vmId), bindingRules(binding, { mappingOwnedElsewhere: mappedElsewhere }));
      this.log.info("migration prepared", { vmId: m.vmId, destinationHostId: m.destinationHostId, careOfIPv4: binding.careOfIPv4, careOfIPv6: binding.careOfIPv6, revision });
      return { ruleRevision: revision, translatedIPv4: binding.translatedIPv4, translatedIPv6: binding.translatedIPv6, prepared: true, active: false };
    });
  }

  /**
   * A prepared migration that will not arrive: its rules and the leases taken for it go. A VM
   * bound at this host has arrived (nothing to abort); a VM bound at another host keeps its
   * binding, rules and leases (the care-of lease serves that binding).
   */
  abortMigration(vmId: string, hostId: string): Promise<{ ruleRevision: bigint; released: string[] }> {
    return this.exclusive(async () => {
      const nowMs = this.now();
      const binding = await this.store.getBinding(vmId);
      if (binding?.hostId === hostId) {
        throw new FailedPreconditionError(`vm_id: vm ${vmId} is bound at host ${hostId} (migration ${binding.migrationId}): it arrived, so there is nothing to abort; register its next move instead`);
      }
      const released: string[] = [];
      if (binding) {
        // Bound at another host: nothing was prepared (prepareMigration left it alone).
        this.log.info("migration aborted", { vmId, hostId, released, boundAt: binding.hostId });
        return { ruleRevision: (await this.store.ruleTable()).revision, released };
      }
      const revision = await this.store.replaceRules(vmOwner(vmId), []);
      const careOf = await this.store.getLease(vmId, "care-of");
      if (careOf && careOf.hostId === hostId) {
        const r = await this.store.releaseLease({ holder: vmId, purpose: "care-of" }, nowMs, this.cooldownMs);
        if (r) released.push(r.address);
      }
      const t = await this.store.releaseLease({ holder: vmId, purpose: "translation" }, nowMs, this.cooldownMs);
      if (t) released.push(t.address);
      this.log.info("migration aborted", { vmId, hostId, released, revision });
      return { ruleRevision: revision, released };
    });
  }

  // --- MapCorrespondent ------------------------------------------------------------------------

  mapCorrespondent(ipv6: IPv6): Promise<LeaseRecord> {
    const xlat = this.config.translationPrefix;
    // An address inside our own translation prefix stands for an IPv4 node already (RFC 6052):
    // mapping it too would give one IPv4 node two IPv6 names, and loop the translator.
    if (xlat && prefixContains(xlat.network.bytes, xlat.length, ipv6.bytes)) {
      return Promise.reject(new InvalidArgumentError("ipv6_address", `'${ipv6.text}' is inside the engine's translation prefix ${cidrText(xlat)}: it already stands for an IPv4 address`));
    }
    return this.exclusive(async () => {
      const nowMs = this.now();
      const lease = await this.store.acquireLease({
        pool: this.config.pool.name, holder: ipv6.text, purpose: "correspondent", hostId: "", nowMs,
        expiresAtMs: nowMs + this.config.leases.correspondentLifetimeSeconds * 1000, cooldownMs: this.cooldownMs,
      });
      await this.store.replaceRules(correspondentOwner(ipv6.text), correspondentRules(ipv6.text, lease.address));
      return lease;
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
    host.state = this.advisor.observe(host, nowMs) ? "hot" : "up";
    if (this.hostsInStore) await this.store.putHost(host);
    else if (this.hosts.beat(host)) await this.writeHost(host);
    // Migration advice is a leader duty: one advisor decides, so two replicas never send the
    // same VM two ways. A replica that does not lead answers without advice. Only a hot host
    // needs a destination, and the advisor finds it in its headroom index (on etcd, in the
    // hosts every replica wrote).
    const leader = this.leadership.leaderStore();
    let advice: AdviceRecord[] = [];
    if (leader && host.state === "hot") {
      advice = this.advisor.advise(host, this.hostsInStore ? await this.store.listHosts() : this.advisor.headroom, nowMs);
    }
    if (advice.length > 0) {
      try {
        await leader!.recordAdvice(advice);
        this.events.adviceGiven(advice.length);
        this.log.info("migration advised", { ...advice[0] });
      } catch (e) {
        if (!(e instanceof LeadershipLostError)) throw e;
        advice = [];
      }
    }
    return { host, advice, heartbeatIntervalSeconds: this.config.hosts.heartbeatIntervalSeconds };
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

  /** Every known host, by id: this engine's memory with the embedded store, etcd's hosts otherwise. */
  async listHosts(): Promise<HostRecord[]> {
    return this.hostsInStore ? this.store.listHosts() : this.hosts.list();
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
      if (!this.hostsInStore) return;
      // On etcd the last beat of a host may have come to any replica: the store has it.
      const deadline = nowMs - this.config.hosts.downAfterSeconds * 1000;
      for (const host of await store.listHosts()) {
        if (host.state !== "down" && host.lastSeenMs < deadline) {
          this.advisor.forget(host.hostId);
          await store.putHost({ ...host, state: "down" });
          this.log.warn("host marked down", { hostId: host.hostId, lastSeenMs: host.lastSeenMs });
        }
      }
    });
    if (!this.hostsInStore) await this.markSilentHostsDown();
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

function sameBinding(b: BindingRecord, m: MigrationInput, careOfIPv4: IPv4, careOfIPv6: IPv6): boolean {
  return b.homeAddress === m.home.text && b.homeAgent === m.homeAgent.text && b.hostId === m.destinationHostId
    && b.careOfIPv4 === careOfIPv4.text && b.careOfIPv6 === careOfIPv6.text;
}
