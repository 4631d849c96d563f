// A VM's handover at this host, in phases (flows 3.1 b–g, 3.2 b–f, and coming home):
//  - prepare, when the VM's port appears (the hypervisor's incoming side makes it before the
//    pre-copy, while the VM still runs at its source): care-of addresses, the host's rules, the
//    engine's rules; nothing that diverts the VM's traffic;
//  - activate, on the VM's RARP or first frame on its link (or the engine saying it runs here):
//    the registration with the home agent and RegisterMigration;
//  - abort, when the port goes before the VM ran here (a cancelled or failed migration).
// A move between two visited hosts (e.g. an IPv4 VM from one IPv6 host to another) cannot be
// prepared: the engine keeps the VM's care-of lease at the host it is bound at while that host's
// heartbeat lists it (services/engine/leases.ts, takeOver; the refusal's reason VM_RUNS_AT_SOURCE). The prepare then waits for the
// activation and asks again, until the source, which has stopped the VM, no longer lists it (its
// agent beats at once when the VM's port leaves: departed()).
// One VM's events are handled in order, different VMs' in parallel.
import type { Cidr } from "../../lib/net/address.js";
import { ETHERTYPE, parseMac } from "../../dataplane/packet/ethernet.js";
import { retry as withBackoff, RetryAbortedError } from "../../lib/retry.js";
import { abortMigration, childController } from "./abort.js";
import { ActivationWatch, type Watch } from "./activation.js";
import { refusedWhileSourceLists, SOURCE_RELEASE_WAIT_MS } from "./source.js";
import { cameHome, type HomeDeps } from "./home.js";
import type { AgentConfig, VmInventoryEntry } from "./config.js";
import type { HypervisorEvent } from "./events.js";
import type { Bridge, PortEvent } from "./hypervisor.js";
import type { RouteOptimiser } from "./route-optimisation.js";
import type { ActivationSignal, HandoverTimeline } from "./timeline.js";
import { inPrefix, type HostSide, type Inventory, type Visit } from "./visit.js";

export interface HandoverDeps extends HomeDeps {
  /** The host's protocol. */
  family: 4 | 6;
  inventory: Inventory;
  hostSide: HostSide;
  optimiser: RouteOptimiser;
  /** The agent's life: aborted by stop(). */
  signal: AbortSignal;
  /** An active visitor's port left (the VM departed): the agent tells the engine at once (a Heartbeat). */
  departed(vm: VmInventoryEntry): void;
}

interface RetryOptions {
  /** Also retried (the engine's absence always is). */
  alsoRetry?: (e: unknown) => boolean;
  /** No attempt after this time (ms, on the agent's clock). */
  deadlineMs?: number;
  baseMs?: number;
  capMs?: number;
}

export class Handover {
  private readonly cfg: AgentConfig;
  private readonly visits = new Map<string, Visit>();
  /** Where each VM's port is on this host now, by VM id. */
  private readonly where = new Map<string, { bridge: Bridge; port: string; seenAtMs: number }>();
  private readonly stations: ActivationWatch;
  private readonly unknownPorts = new Set<string>();
  /**
   * VMs whose prepare was refused because their source host still lists them (refusedWhileSourceLists),
   * by id: the port's seenAtMs. Their activation prepares them again.
   */
  private readonly deferred = new Map<string, number>();
  /** VMs aborted on the hypervisor's release, before their port went: its going is then nothing new. */
  private readonly released = new Set<string>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly uplinkIf: number;
  private readonly visitorIf: number;
  /** An IPv4 host's segment prefix (RequestPrefix, flow 3.2 c): the IPv6 care-of addresses lie in it. */
  segmentPrefix?: Cidr;

  constructor(private readonly deps: HandoverDeps) {
    this.cfg = deps.config;
    this.stations = new ActivationWatch(deps.worker.forwarder);
    this.uplinkIf = this.cfg.worker.interfaces.findIndex((i) => i.name === this.cfg.network.uplink);
    this.visitorIf = this.cfg.worker.interfaces.findIndex((i) => i.name === this.cfg.network.visitor);
  }

  private get now(): number {
    return this.deps.now();
  }

  private get stopped(): boolean {
    return this.deps.signal.aborted;
  }

  /** The agent starts: where the VMs at home are (they stay as they are). */
  found(ports: readonly Omit<PortEvent, "kind" | "seenAtMs">[]): void {
    for (const p of ports) {
      const vm = p.bridge === "home" ? this.deps.inventory.identify(p.port, p.mac) : undefined;
      if (vm !== undefined) this.where.set(vm.id, { bridge: p.bridge, port: p.port, seenAtMs: this.now });
    }
  }

  /** The VMs that run here: at home, or visiting and active (a VM being prepared still runs at its source). */
  runningHere(): VmInventoryEntry[] {
    const awaited = this.stations.awaited();
    return this.cfg.vms.filter((v) => this.where.has(v.id) && !awaited.has(v.id) && this.visits.get(v.id)?.phase !== "prepared");
  }

  /** The handovers in progress, settled (after stop()). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
  }

  portEvent(e: PortEvent): void {
    const vm = this.deps.inventory.identify(e.port, e.mac);
    if (vm === undefined) {
      if (!this.unknownPorts.has(e.port)) {
        this.unknownPorts.add(e.port);
        this.deps.log.info("a port that no VM of the configuration has (by name or MAC); ignored", { port: e.port, mac: e.mac, bridge: e.bridge });
      }
      return;
    }
    if (e.kind === "attached") {
      this.where.set(vm.id, { bridge: e.bridge, port: e.port, seenAtMs: e.seenAtMs });
      // The signal is watched for from the port's first moment, so that a migration that ends
      // before the prepare does is not missed.
      if (e.bridge === "visitor" && vm.family !== this.deps.family) this.watch({ vm, bridge: "visitor", ingressIf: this.visitorIf });
      if (e.bridge === "home" && vm.family === this.deps.family && vm.homeHost === this.cfg.hostId) this.watch({ vm, bridge: "home", ingressIf: this.uplinkIf });
    } else {
      const w = this.where.get(vm.id);
      if (w?.bridge === e.bridge && w.port === e.port) this.where.delete(vm.id);
      if (w?.bridge === e.bridge) this.unwatch(vm);
    }
    this.enqueue(vm, () => this.handle(vm, e));
  }

  /** One VM's events are handled in order; different VMs' in parallel. */
  private enqueue(vm: VmInventoryEntry, step: () => Promise<void>): void {
    const prev = this.chains.get(vm.id) ?? Promise.resolve();
    const next = prev.then(step).catch((err) => this.deps.log.error("handover failed", { vmId: vm.id, error: (err as Error).message }));
    this.chains.set(vm.id, next);
  }

  private async handle(vm: VmInventoryEntry, e: PortEvent): Promise<void> {
    if (this.stopped) return;
    if (e.kind === "detached") {
      // Aborted already, when the hypervisor released the VM (hypervisorPhase).
      if (e.bridge === "visitor" && !this.released.delete(vm.id)) return this.left(vm);
      return;
    }
    this.released.delete(vm.id);
    if (e.bridge === "visitor") {
      if (vm.family === this.deps.family) {
        this.deps.log.warn("a VM of this network's own protocol is on the visitor bridge; not handled", { vmId: vm.id });
        return;
      }
      return this.prepare(vm, e.seenAtMs);
    }
    // A VM's port on the home bridge: coming home waits for its activation signal (watch).
  }

  /** See PrivilegedVmAgent.hypervisorPhase: only release acts, on a VM prepared here that never ran. */
  hypervisorPhase(e: HypervisorEvent): string[] {
    const vms = new Map<string, VmInventoryEntry>();
    for (const i of e.interfaces) {
      const vm = this.deps.inventory.ofInterface(i.dev, i.mac);
      if (vm !== undefined) vms.set(vm.id, vm);
    }
    for (const vm of vms.values()) {
      this.deps.log.info("hypervisor phase", { vmId: vm.id, phase: e.phase, domain: e.domain });
      if (e.phase === "release" && (this.visits.get(vm.id)?.phase === "prepared" || this.deferred.has(vm.id))) {
        this.unwatch(vm);
        this.where.delete(vm.id);
        this.released.add(vm.id);
        this.enqueue(vm, () => this.left(vm));
      }
    }
    return [...vms.keys()];
  }

  // ---------------------------------------------------------------- the activation signal

  private watch(w: Watch): void {
    this.stations.add(w);
  }

  private unwatch(vm: VmInventoryEntry): void {
    this.stations.remove(vm);
  }

  /** See PrivilegedVmAgent.stationSeen: a frame from an awaited VM's MAC on its link activates it. */
  stationSeen(frame: Uint8Array, ingressIf: number): void {
    if (this.stopped) return;
    const seen = this.stations.take(frame, ingressIf);
    if (seen === undefined) return;
    const atMs = this.now;
    this.enqueue(seen.watch.vm, () => this.activate(seen.watch, seen.signal, atMs));
  }

  /** Retries a call to the engine while the VM's port stays on `bridge`; undefined once it left. */
  private async retry<T>(vm: VmInventoryEntry, bridge: Bridge, what: string, call: () => Promise<T>, o: RetryOptions = {}): Promise<T | undefined> {
    const left = new Error("the VM's port left");
    try {
      return await withBackoff(async () => {
        if (this.where.get(vm.id)?.bridge !== bridge) throw left;
        return call();
      }, {
        // Jittered (lib/retry.ts), so that the agents of many hosts do not all come back in the same instant.
        baseMs: o.baseMs ?? 200, capMs: o.capMs ?? 5000, signal: this.deps.signal, now: this.deps.now,
        ...(o.deadlineMs === undefined ? {} : { deadline: o.deadlineMs }),
        // Only the engine's absence is worth waiting out (UNAVAILABLE 14, DEADLINE_EXCEEDED 4), and what the caller says.
        retryable: (e) => e !== left && ([undefined, 14, 4].includes((e as { code?: number }).code) || (o.alsoRetry?.(e) ?? false)),
        onRetry: (e, attempt) => this.deps.log.warn(`${what} failed; trying again`, { vmId: vm.id, attempt, error: (e as Error).message }),
      });
    } catch (e) {
      if (e === left || e instanceof RetryAbortedError) return undefined;
      throw e;
    }
  }

  // ---------------------------------------------------------------- arrival (3.1 b–g, 3.2 b–f)

  /**
   * Prepare, when the VM's port appears: a hypervisor's incoming side makes it before the
   * pre-copy, while the VM still runs, and answers, at its source. Everything that does not
   * divert the VM's traffic is done now: the care-of addresses (b–d), the host's rules (they only
   * wrap what the VM sends, and it sends nothing here yet), and the engine's rules
   * (PrepareMigration: they re-wrap only what the home agent tunnels to the new care-of address,
   * and it tunnels nothing there before the registration). The switch waits for activate().
   *
   * With `running` the VM runs here already: it is activated once prepared. That is the case when
   * the first prepare was refused while the VM's source host listed it (a move between two
   * visited hosts): AllocateCareOf is then asked again, with a short backoff, for up to
   * SOURCE_RELEASE_WAIT_MS while the port stays, until the source no longer lists the VM.
   */
  private async prepare(vm: VmInventoryEntry, seenAtMs: number, running?: { signal: ActivationSignal; atMs: number; afterRefusal?: boolean }): Promise<void> {
    const { control, log } = this.deps;
    this.deferred.delete(vm.id);
    const t: HandoverTimeline = { vmId: vm.id, direction: vm.family === 4 ? "4to6" : "6to4", seenAtMs, ok: false };
    const since = () => this.now - seenAtMs;
    // 3.1: a pool IPv4 address, and the host's IPv6 prefix with the home address in the low 32
    // bits; 3.2: an IPv4 address of this segment, and the segment's prefix with it (RFC 6052).
    const allocate = () => control.allocateCareOf({ hostId: this.cfg.hostId, vmId: vm.id, homeAddress: vm.homeAddress });
    let lease: Awaited<ReturnType<typeof allocate>> | undefined;
    // Granted now after a refusal: the lease was taken over from the source (it no longer lists the VM).
    let waited = running?.afterRefusal === true;
    try {
      lease = await this.retry(vm, "visitor", "AllocateCareOf", allocate, running === undefined ? {} : {
        alsoRetry: (e) => {
          const r = refusedWhileSourceLists(e);
          waited ||= r;
          return r;
        }, deadlineMs: this.now + SOURCE_RELEASE_WAIT_MS, baseMs: 20, capMs: 500,
      });
    } catch (e) {
      if (running !== undefined || !refusedWhileSourceLists(e)) throw e;
      // The VM still runs at the host it is bound at (its pre-copy to here has begun): nothing can
      // be prepared without taking its lease from under it. Its activation here asks again.
      log.info("prepare waits for the activation: the VM's source host still lists it (a move between visited hosts)", { vmId: vm.id, error: (e as Error).message });
      if (this.where.get(vm.id)?.bridge === "visitor") this.deferred.set(vm.id, seenAtMs);
      return;
    }
    // The port went away meanwhile: left() undoes whatever the engine did (AbortMigration).
    if (lease === undefined) return;
    t.allocatedMs = since();
    if (waited) {
      t.leaseTakenOverMs = t.allocatedMs;
      log.info("care-of lease granted: the source host no longer lists the VM", { vmId: vm.id, waitedMs: this.now - running!.atMs });
    }
    t.careOfIPv4 = lease.careOfIpv4;
    t.careOfIPv6 = lease.careOfIpv6;
    const prefix = this.segmentPrefix;
    if (prefix !== undefined && !inPrefix(lease.careOfIpv6, prefix)) log.warn("care-of address outside the segment's prefix", { careOfIPv6: lease.careOfIpv6, prefix: `${prefix.network.text}/${prefix.length}` });
    const visit: Visit = {
      vm, phase: "prepared", enginePrepared: false, timeline: t, careOfIPv4: lease.careOfIpv4, careOfIPv6: lease.careOfIpv6,
      leaseLifetimeS: lease.lifetimeSeconds, ended: childController(this.deps.signal),
    };
    visit.ended.signal.addEventListener("abort", () => clearTimeout(visit.refresh), { once: true });
    this.deps.hostSide.install(visit, this.visits.get(vm.id));
    this.visits.set(vm.id, visit);
    t.hostRulesMs = since();
    const p = await this.retry(vm, "visitor", "PrepareMigration", () => control.prepareMigration(this.migrationRequest(visit)));
    if (p === undefined) return;
    visit.enginePrepared = p.prepared;
    if (p.prepared) t.engineRulesMs = since();
    if (p.translatedIpv4) t.translatedIPv4 = p.translatedIpv4;
    log.info("migration prepared", { vmId: vm.id, careOfIPv4: visit.careOfIPv4, careOfIPv6: visit.careOfIPv6, engineRules: p.prepared, running: p.active || running !== undefined });
    // The care-of lease is kept while the pre-copy lasts.
    this.scheduleRefresh(visit);
    if (p.active || running !== undefined) {
      this.unwatch(vm);
      return this.activate({ vm, bridge: "visitor", ingressIf: this.visitorIf }, running?.signal ?? "running", running?.atMs ?? this.now);
    }
  }

  private migrationRequest(v: Visit) {
    return {
      vmId: v.vm.id, homeAddress: v.vm.homeAddress, homeAgent: v.vm.homeAgent, sourceHostId: v.vm.homeHost, destinationHostId: this.cfg.hostId,
      careOfIpv4: v.careOfIPv4, careOfIpv6: v.careOfIPv6,
    };
  }

  /**
   * Activate, when the VM runs here: the switch (3.1 e–g, 3.2 d–f). With the engine's rules
   * prepared, the registration with the home agent and RegisterMigration go at once: the
   * registration travels the prepared tunnel, and RegisterMigration only records the binding
   * (its rules are the prepared ones, so no rule push lies on the path). Make-before-break as far
   * as these moves allow: the new path is complete before the home agent is asked to use it
   * (RFC 5944 §3.6 / RFC 6275 §11.7.1: the mobile node registers once it is attached).
   */
  private async activate(w: Watch, signal: ActivationSignal, atMs: number): Promise<void> {
    const { control, log, registrar } = this.deps;
    const vm = w.vm;
    if (this.stopped) return;
    const where = this.where.get(vm.id);
    if (where?.bridge !== w.bridge) return;
    if (w.bridge === "home") return cameHome(this.deps, vm, where.seenAtMs, signal, atMs, (what, call) => this.retry(vm, "home", what, call));
    const v = this.visits.get(vm.id);
    const deferredSeenAtMs = this.deferred.get(vm.id);
    if (v === undefined && deferredSeenAtMs !== undefined) {
      log.info("the VM runs here: asking for its care-of lease again until its source host no longer lists it", { vmId: vm.id, signal });
      return this.prepare(vm, deferredSeenAtMs, { signal, atMs, afterRefusal: true });
    }
    if (v === undefined) {
      log.warn("the VM runs here but its prepare did not complete; it stays unreachable here until its port comes again", { vmId: vm.id, signal });
      return;
    }
    // A second signal for an active VM changes nothing.
    if (v.phase === "active") return;
    v.phase = "active";
    const t = v.timeline;
    t.activatedMs = atMs - t.seenAtMs;
    t.activation = signal;
    const since = () => this.now - t.seenAtMs;
    try {
      this.deps.hostSide.announce(v, this.deps.worker.emit);
      const migration = async () => {
        const reg = await this.retry(vm, "visitor", "RegisterMigration", () => control.registerMigration(this.migrationRequest(v)));
        if (reg === undefined) throw new Error("the VM left before RegisterMigration was answered");
        t.migrationRegisteredMs = since();
        if (reg.translatedIpv4) t.translatedIPv4 = reg.translatedIpv4;
      };
      if (v.enginePrepared) {
        [, t.registrationAttempts] = await Promise.all([migration(), registrar.register(v, this.cfg.registration.lifetimeS)]);
      } else {
        // Nothing was prepared (the VM's rules served its binding at another host): the engine's
        // rules first, so that it unwraps the registration and re-wraps the reply.
        await migration();
        t.engineRulesMs = since();
        t.registrationAttempts = await registrar.register(v, this.cfg.registration.lifetimeS);
      }
      t.registeredMs = since();
      t.ok = true;
      this.scheduleRefresh(v);
      if (vm.family === 6) this.deps.optimiser.add(v);
    } catch (e) {
      t.error = (e as Error).message;
      throw e;
    } finally {
      this.deps.record.record(t);
    }
  }

  /**
   * The port left the visitor bridge. An active VM has moved on (departed); a VM that never ran
   * here was a cancelled or failed migration: its prepare is undone, and its traffic, which never
   * left its source, stays there.
   */
  private async left(vm: VmInventoryEntry): Promise<void> {
    const v = this.visits.get(vm.id);
    this.deferred.delete(vm.id);
    if (v !== undefined) {
      // The care-of address stops being ours: this host no longer answers ARP/NDP for it.
      this.deps.hostSide.remove(v);
      this.visits.delete(vm.id);
    }
    if (v?.phase === "active") {
      this.deps.log.info("vm left", { vmId: vm.id });
      // The engine learns at once that the VM no longer runs here, not a heartbeat interval
      // later: the VM's next host may be waiting for its lease (refusedWhileSourceLists).
      this.deps.departed(vm);
      return;
    }
    this.unwatch(vm);
    const t: HandoverTimeline = v?.timeline ?? { vmId: vm.id, direction: vm.family === 4 ? "4to6" : "6to4", seenAtMs: this.now, ok: false };
    t.aborted = true;
    t.error = "the VM's port went away before the VM ran here (a cancelled or failed migration)";
    await abortMigration(this.deps.control, this.deps.log, this.deps.signal, this.cfg.hostId, vm.id);
    this.deps.record.record(t);
  }

  // ---------------------------------------------------------------- renewal

  /**
   * Renews the care-of lease with the engine and the registration with the home agent at two
   * thirds of the shorter lifetime (RFC 5944 §3.6 leaves the timing to the mobile node); a
   * failure is retried a few seconds later.
   */
  private scheduleRefresh(v: Visit, delayMs = (Math.min(v.leaseLifetimeS || Infinity, this.cfg.registration.lifetimeS) * 1000 * 2) / 3): void {
    clearTimeout(v.refresh);
    if (v.ended.signal.aborted) return;
    v.refresh = setTimeout(() => {
      this.renew(v)
        .then(() => this.scheduleRefresh(v))
        .catch((e) => {
          this.deps.log.warn("renewal failed; trying again", { vmId: v.vm.id, error: (e as Error).message });
          if (!v.ended.signal.aborted) this.scheduleRefresh(v, 5000);
        });
    }, delayMs);
  }

  private async renew(v: Visit): Promise<void> {
    if (v.ended.signal.aborted) return;
    const lease = await this.deps.control.allocateCareOf({ hostId: this.cfg.hostId, vmId: v.vm.id, homeAddress: v.vm.homeAddress });
    v.leaseLifetimeS = lease.lifetimeSeconds;
    if (lease.careOfIpv4 !== v.careOfIPv4 || lease.careOfIpv6 !== v.careOfIPv6) {
      // The lease had lapsed and the engine handed out new addresses: start over with them.
      this.deps.log.warn("care-of addresses changed on renewal", { vmId: v.vm.id, careOfIPv4: lease.careOfIpv4, careOfIPv6: lease.careOfIpv6 });
      const running = v.phase === "active";
      clearTimeout(v.refresh);
      return new Promise((resolve) => this.enqueue(v.vm, () => this.prepare(v.vm, this.now, running ? { signal: "running", atMs: this.now } : undefined).finally(resolve)));
    }
    // A VM still being prepared keeps its lease; only one that runs here is registered.
    if (v.phase === "active") await this.deps.registrar.register(v, this.cfg.registration.lifetimeS);
  }
}
