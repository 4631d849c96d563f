// The privileged VM of the paper ("The parts" 2), one per hypervisor host. It
//  (a) tells which protocol the host's network speaks (from its uplink's addresses; Heartbeat
//      confirms it with the engine);
//  (b) builds the care-of addresses of a VM that arrived from the other protocol (AllocateCareOf,
//      RequestPrefix: flows 3.1 b–d, 3.2 b–c);
//  (c) does the VM's tunnelling on the data-plane worker it runs, and registers the VM with its
//      home agent on the VM's behalf, through the engine in the tunnel (3.1 e–g, 3.2 d–f): guests
//      run no Mobile IP stack; then RegisterMigration gives the engine the VM's rules;
//  (d) reports the host's and its VMs' resource use (Heartbeat) and carries out migration advice
//      through the hypervisor's hook.
// When a VM comes home, it deregisters it and announces the VM's home address on the home link.
import { Counter, Histogram } from "prom-client";
import type { ControlClient } from "../control.js";
import type { Logger } from "../../lib/log.js";
import { ipv6FromBytes, parseCidr, parseIPv4, parseIPv6 } from "../../lib/net/address.js";
import type { Rule } from "../../lib/rules/rules.js";
import type { Emit, Forwarder } from "../../dataplane/forward/index.js";
import { IPPROTO } from "../../dataplane/packet/ipv4.js";
import { newIPv6Chain, walkIPv6Extensions } from "../../dataplane/packet/ipv6.js";
import { buildUdp4 } from "../../dataplane/packet/udp.js";
import { BA_STATUS, isNewerSequence } from "../../dataplane/packet/mip6.js";
import { ETHERTYPE, parseMac } from "../../dataplane/packet/ethernet.js";
import { LocalRules } from "../../dataplane/worker/local.js";
import { buildAuthenticatedRequest, checkReply } from "../../homeagent/mip4/client.js";
import { buildBindingUpdatePacket, checkAcknowledgement } from "../../homeagent/mip6/client.js";
import type { HomeAgentKey } from "../../homeagent/config.js";
import type { AgentConfig, VmInventoryEntry } from "./config.js";
import type { HypervisorEvent } from "./events.js";
import type { Bridge, MigrationHook, PortEvent, PortWatcher } from "./hypervisor.js";
import type { ResourceSampler } from "./resources.js";

const MIP4_PORT = 434;

export interface AgentWorker {
  forwarder: Forwarder;
  emit: Emit;
}

export interface AgentDeps {
  config: AgentConfig;
  control: ControlClient;
  worker: AgentWorker;
  ports: PortWatcher;
  hook?: MigrationHook;
  sampler?: ResourceSampler;
  log: Logger;
  now?: () => number;
}

/**
 * What says a live-migrated VM runs here now: QEMU's RARP self-announce from the VM's MAC (what
 * OVN's activation-strategy=rarp waits for), any other first frame from that MAC on the port's
 * link, or the engine already holding the VM's binding at this host (the agent restarted after
 * the activation, or the care-of addresses changed on renewal).
 */
export type ActivationSignal = "rarp" | "frame" | "running";

/**
 * The handover of one arrival, in ms since the port was seen (the timeline the lab prints). Up to
 * engineRulesMs is the prepare (the VM still runs at its source); from activatedMs on, the switch.
 */
export interface HandoverTimeline {
  vmId: string;
  direction: "4to6" | "6to4" | "home";
  seenAtMs: number;
  allocatedMs?: number;
  hostRulesMs?: number;
  /** The engine's rules in place (PrepareMigration; RegisterMigration when nothing could be prepared). */
  engineRulesMs?: number;
  /** The activation signal seen. */
  activatedMs?: number;
  activation?: ActivationSignal;
  /** RegisterMigration answered (at activation). */
  migrationRegisteredMs?: number;
  registeredMs?: number;
  /** The port went away before the VM ran here: the prepare was undone (AbortMigration). */
  aborted?: boolean;
  careOfIPv4?: string;
  careOfIPv6?: string;
  translatedIPv4?: string;
  registrationAttempts?: number;
  ok: boolean;
  error?: string;
}

interface Visit {
  vm: VmInventoryEntry;
  /** prepared: the VM still runs at its source and nothing of its traffic comes here; active: it runs here. */
  phase: "prepared" | "active";
  /** The engine holds the VM's rules for this host already (PrepareMigration). */
  enginePrepared: boolean;
  timeline: HandoverTimeline;
  careOfIPv4: string;
  careOfIPv6: string;
  /** The last binding-update sequence number used for the VM (IPv6 VMs); undefined before the first. */
  sequence: number | undefined;
  /** The care-of lease's lifetime (AllocateCareOf); the lease is renewed with the registration. */
  leaseLifetimeS: number;
  refresh?: NodeJS.Timeout;
  gone: boolean;
  /** IPv6 VMs: the home address's bytes, to spot correspondents in what arrives for it. */
  home6?: Uint8Array;
  /** The source of the last packet looked at for route optimisation (a cheap check per packet). */
  lastCorrespondent: Uint8Array;
  /** Correspondents sent a binding update (route optimisation, flow 3.2 k), by address. */
  correspondents: Map<string, { sequence: number; refresh?: NodeJS.Timeout }>;
}

/** A VM whose port is here and whose activation signal the agent waits for. */
interface Watch {
  vm: VmInventoryEntry;
  bridge: Bridge;
  /** The worker interface the signal must come in on (the visitor link, or the uplink for a VM coming home). */
  ingressIf: number;
}

interface Waiter {
  match(pkt: Uint8Array): boolean;
  resolve(pkt: Uint8Array): void;
  cancel(): void;
}

export class PrivilegedVmAgent {
  readonly family: 4 | 6;
  readonly timelines: HandoverTimeline[] = [];
  private readonly cfg: AgentConfig;
  private readonly rules: LocalRules;
  private readonly visits = new Map<string, Visit>();
  private readonly byPort: Map<string, VmInventoryEntry>;
  private readonly byMac: Map<string, VmInventoryEntry>;
  /** Where each VM's port is on this host now, by VM id. */
  private readonly where = new Map<string, { bridge: Bridge; port: string; seenAtMs: number }>();
  /** Activation signals awaited, by the VM's MAC as a 48-bit number. */
  private readonly watching = new Map<number, Watch>();
  private readonly unknownPorts = new Set<string>();
  /** VMs aborted on the hypervisor's release, before their port went: its going is then nothing new. */
  private readonly released = new Set<string>();
  private readonly uplinkIf: number;
  private readonly visitorIf: number;
  private readonly keys: Map<string, HomeAgentKey>;
  private readonly chains = new Map<string, Promise<void>>();
  private readonly waiters = new Set<Waiter>();
  private readonly advising = new Set<string>();
  private readonly chain6 = newIPv6Chain();
  /** Visiting IPv6 VMs, whose correspondents get binding updates. */
  private optimising: Visit[] = [];
  /** The last binding-update sequence number used per VM (RFC 6275 §11.7.1: kept across moves). */
  private readonly lastSequence = new Map<string, number>();
  private heartbeatTimer?: NodeJS.Timeout;
  private segmentPrefix?: string;
  private stopped = false;
  private readonly listeners = new Set<(t: HandoverTimeline) => void>();
  readonly metrics = {
    handover: new Histogram({ name: "mip46_agent_handover_seconds", help: "Time from a VM's port appearing to each step of its handover being done.", labelNames: ["direction", "step"] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [] }),
    registrations: new Counter({ name: "mip46_agent_registrations_total", help: "Registrations with home agents sent on VMs' behalf, by result.", labelNames: ["protocol", "result"] as const, registers: [] }),
  };

  constructor(private readonly deps: AgentDeps) {
    this.cfg = deps.config;
    const uplink = this.cfg.worker.interfaces.find((i) => i.name === this.cfg.network.uplink);
    const first = uplink?.addresses?.[0];
    if (first === undefined) throw new Error(`network.uplink: interface '${this.cfg.network.uplink}' has no address, so the host's protocol is unknown`);
    this.family = first.includes(":") ? 6 : 4;
    this.byPort = new Map(this.cfg.vms.filter((v) => v.port !== undefined).map((v) => [v.port!, v]));
    this.byMac = new Map(this.cfg.vms.map((v) => [v.mac, v]));
    this.uplinkIf = this.cfg.worker.interfaces.findIndex((i) => i.name === this.cfg.network.uplink);
    this.visitorIf = this.cfg.worker.interfaces.findIndex((i) => i.name === this.cfg.network.visitor);
    this.keys = new Map(this.cfg.keys.map((k) => [k.homeAddress, k]));
    this.rules = new LocalRules(deps.worker.forwarder);
  }

  private get now(): number {
    return (this.deps.now ?? Date.now)();
  }

  onHandover(listener: (t: HandoverTimeline) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Heartbeat, the segment's prefix, the engine's tunnel, then the ports already present. */
  async start(): Promise<void> {
    const { config: cfg, log } = { config: this.cfg, log: this.deps.log };
    // The engine's end of the host's tunnels (3.1 k, 3.2 j): it unwraps only from the engine.
    this.rules.apply([this.family === 6
      ? { key: "engine/4in6", kind: "tunnel-peer", tunnel: "4in6", peer: cfg.network.engineIPv6 }
      : { key: "engine/6in4", kind: "tunnel-peer", tunnel: "6in4", peer: cfg.network.engineIPv4 }]);
    const found = this.deps.ports.current();
    for (const p of found) {
      const vm = p.bridge === "home" ? this.identify(p.port, p.mac) : undefined;
      if (vm !== undefined) this.where.set(vm.id, { bridge: p.bridge, port: p.port, seenAtMs: this.now });
    }
    await this.heartbeat();
    if (this.family === 4) {
      // Flow 3.2 c: the IPv6 prefix the engine assigned to this IPv4 segment.
      const uplink = cfg.worker.interfaces.find((i) => i.name === cfg.network.uplink)!;
      const c = parseCidr(uplink.addresses![0], "uplink", false);
      const segment = `${c.network.text}/${c.length}`;
      this.segmentPrefix = (await this.deps.control.requestPrefix({ hostId: cfg.hostId, ipv4Segment: segment })).ipv6Prefix;
      log.info("segment prefix", { segment, prefix: this.segmentPrefix });
    }
    this.heartbeatTimer = setInterval(() => {
      this.heartbeat().catch((e) => log.warn("heartbeat failed", { error: (e as Error).message }));
    }, cfg.heartbeatIntervalMs);
    // Visiting VMs found at start are prepared again; the engine says whether they run here
    // already (PrepareMigration's `active`), else their first frame or RARP will. VMs at home stay.
    for (const p of found) if (p.bridge === "visitor") this.portEvent({ kind: "attached", ...p, seenAtMs: this.now });
    this.deps.ports.start((e) => this.portEvent(e));
    log.info("agent started", { hostId: cfg.hostId, family: this.family, vms: cfg.vms.map((v) => v.id) });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    this.deps.ports.stop();
    for (const v of this.visits.values()) {
      clearTimeout(v.refresh);
      for (const c of v.correspondents.values()) clearTimeout(c.refresh);
    }
    // Pending waits for replies end now (as timeouts), so the handovers in progress finish.
    for (const w of [...this.waiters]) w.cancel();
    await Promise.allSettled([...this.chains.values()]);
  }

  /**
   * The worker's intercept: registration replies and binding acknowledgements for our VMs; and,
   * for a visiting IPv6 VM, a look at who sends to it through the tunnel, to start route
   * optimisation with each new correspondent (flow 3.2 k: "dv sees that the packet came through
   * its HA"; everything for a visiting VM arrives through the tunnel, so a correspondent without
   * a binding is one whose packets went the long way).
   */
  intercept(pkt: Uint8Array, decapsulated: boolean): boolean {
    if (this.waiters.size > 0) {
      for (const w of this.waiters) {
        if (w.match(pkt)) {
          this.waiters.delete(w);
          w.resolve(pkt.slice());
          return true;
        }
      }
    }
    if (decapsulated && this.optimising.length > 0 && pkt[0] >> 4 === 6) this.noteCorrespondent(pkt);
    return false;
  }

  private noteCorrespondent(pkt: Uint8Array): void {
    for (const v of this.optimising) {
      if (!equalAt(pkt, 24, v.home6!)) continue;
      // The packet path's fast case: the same correspondent as the packet before.
      if (equalAt(pkt, 8, v.lastCorrespondent)) return;
      v.lastCorrespondent.set(pkt.subarray(8, 24));
      // Link-local and multicast sources are not correspondents.
      if (pkt[8] === 0xff || (pkt[8] === 0xfe && (pkt[9] & 0xc0) === 0x80)) return;
      const cn = ipv6FromBytes(pkt.subarray(8, 24)).text;
      if (v.correspondents.has(cn)) return;
      const entry = { sequence: nextSequence(undefined, this.now) };
      v.correspondents.set(cn, entry);
      setImmediate(() => this.optimise(v, cn, entry));
      return;
    }
  }

  /** Flow 3.2 k: a binding update to the correspondent (taken by the engine, its first hop: dataplane/forward/correspondent.ts). */
  private optimise(v: Visit, cn: string, entry: { sequence: number; refresh?: NodeJS.Timeout }): void {
    if (v.gone || this.stopped) return;
    const { forwarder, emit } = this.deps.worker;
    entry.sequence = nextSequence(entry.sequence, this.now);
    const lifetimeS = this.cfg.registration.lifetimeS;
    // RFC 6275 §11.7.2 would run return routability first; the engine, which assigned the care-of
    // addresses, checks the binding against its own instead (correspondent.ts).
    const bu = buildBindingUpdatePacket({ homeAddress: v.vm.homeAddress, careOfAddress: v.careOfIPv6, homeAgent: cn, sequence: entry.sequence, lifetimeS, nowMs: this.now, homeRegistration: false, acknowledge: true });
    const careOf = bu.subarray(8, 24).slice();
    const from = bu.subarray(24, 40).slice();
    const reply = this.expect((pkt) => pkt[0] >> 4 === 6 && equalAt(pkt, 24, careOf) && equalAt(pkt, 8, from) && walkIPv6Extensions(pkt, 0, pkt.length, this.chain6)?.upperProtocol === IPPROTO.MOBILITY, 1000);
    forwarder.inject(bu, emit, this.now);
    void reply.then((pkt) => {
      const r = pkt === undefined ? undefined : checkAcknowledgement(pkt);
      // RFC 6275 §11.7.3 (as for a home agent): status 135 carries the last sequence number
      // accepted; continue from there.
      if (r !== undefined && r.status === BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW && !v.gone && !this.stopped) {
        entry.sequence = r.sequence;
        return this.optimise(v, cn, entry);
      }
      const result = r === undefined ? "timeout" : r.ok ? "accepted" : (r.reason ?? `status-${r.status}`);
      this.metrics.registrations.inc({ protocol: "mip6-correspondent", result });
      this.deps.log.info("route optimisation", { vmId: v.vm.id, correspondent: cn, careOfIPv6: v.careOfIPv6, result });
      if (v.gone || this.stopped) return;
      // Refresh at two thirds of the lifetime; after a failure, try again in a while.
      entry.refresh = setTimeout(() => this.optimise(v, cn, entry), r?.ok ? (lifetimeS * 1000 * 2) / 3 : 5000);
    });
  }

  /** The VM a port belongs to: by its configured name, else by the port's MAC (the VM's, or libvirt's 0xfe form of it). */
  private identify(port: string, mac: string | undefined): VmInventoryEntry | undefined {
    const byName = this.byPort.get(port);
    if (byName !== undefined || mac === undefined) return byName;
    const exact = this.byMac.get(mac);
    if (exact !== undefined && exact.port === undefined) return exact;
    if (!mac.startsWith("fe:")) return undefined;
    for (const v of this.cfg.vms) if (v.port === undefined && v.mac.slice(2) === mac.slice(2)) return v;
    return undefined;
  }

  private portEvent(e: PortEvent): void {
    const vm = this.identify(e.port, e.mac);
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
      if (e.bridge === "visitor" && vm.family !== this.family) this.watch({ vm, bridge: "visitor", ingressIf: this.visitorIf });
      if (e.bridge === "home" && vm.family === this.family && vm.homeHost === this.cfg.hostId) this.watch({ vm, bridge: "home", ingressIf: this.uplinkIf });
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
      if (vm.family === this.family) {
        this.deps.log.warn("a VM of this network's own protocol is on the visitor bridge; not handled", { vmId: vm.id });
        return;
      }
      return this.prepare(vm, e.seenAtMs);
    }
    // A VM's port on the home bridge: coming home waits for its activation signal (watch).
  }

  /**
   * A phase the hypervisor's hook reported (deploy/libvirt: libvirt's migrate, prepare, started
   * and release): the ids of the VMs it concerns, known by the domain's MACs (the guest's own, as
   * the domain XML has them) or tap names. Only release acts: a VM prepared here that never ran
   * is aborted at once, without waiting for its tap to go. The others are logged: the prepare
   * still starts on the port, and the hook never activates a VM (that is the VM's RARP or first
   * frame, seen on the link).
   */
  async hypervisorPhase(e: HypervisorEvent): Promise<string[]> {
    const vms = new Map<string, VmInventoryEntry>();
    for (const i of e.interfaces) {
      const vm = (i.dev === undefined ? undefined : this.byPort.get(i.dev)) ?? this.byMac.get(i.mac);
      if (vm !== undefined) vms.set(vm.id, vm);
    }
    for (const vm of vms.values()) {
      this.deps.log.info("hypervisor phase", { vmId: vm.id, phase: e.phase, domain: e.domain });
      if (e.phase === "release" && this.visits.get(vm.id)?.phase === "prepared") {
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
    this.watching.set(macNumber(parseMac(w.vm.mac), 0), w);
    this.deps.worker.forwarder.watchingStations = true;
  }

  private unwatch(vm: VmInventoryEntry): void {
    this.watching.delete(macNumber(parseMac(vm.mac), 0));
    this.deps.worker.forwarder.watchingStations = this.watching.size > 0;
  }

  /**
   * The worker's station hook (ForwarderOptions.stationSeen), on the packet path: every RARP, and
   * while a VM is awaited, every frame. A frame from an awaited VM's MAC on its link activates it.
   * A hypervisor's incoming side sends nothing during the pre-copy, so the first frame is the
   * VM running here; QEMU's RARP self-announce (ethertype 0x8035) is usually that first frame.
   */
  stationSeen(frame: Uint8Array, ingressIf: number): void {
    if (frame.length < 14 || this.stopped) return;
    const w = this.watching.get(macNumber(frame, 6));
    if (w === undefined || w.ingressIf !== ingressIf) return;
    const signal: ActivationSignal = ((frame[12] << 8) | frame[13]) === ETHERTYPE.RARP ? "rarp" : "frame";
    const atMs = this.now;
    this.unwatch(w.vm);
    this.enqueue(w.vm, () => this.activate(w, signal, atMs));
  }

  /** Retries a call to the engine while the VM's port stays on `bridge`; undefined once it left. */
  private async retry<T>(vm: VmInventoryEntry, bridge: Bridge, what: string, call: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 1; ; attempt++) {
      if (this.stopped || this.where.get(vm.id)?.bridge !== bridge) return undefined;
      try {
        return await call();
      } catch (e) {
        const code = (e as { code?: number }).code;
        // Only the engine's absence is worth waiting out (UNAVAILABLE 14, DEADLINE_EXCEEDED 4).
        if (code !== undefined && code !== 14 && code !== 4) throw e;
        this.deps.log.warn(`${what} failed; trying again`, { vmId: vm.id, attempt, error: (e as Error).message });
        await this.sleep(Math.min(200 * 2 ** (attempt - 1), 5000));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // ---------------------------------------------------------------- arrival (3.1 b–g, 3.2 b–f)

  /**
   * Prepare, when the VM's port appears: a hypervisor's incoming side makes it before the
   * pre-copy, while the VM still runs, and answers, at its source. Everything that does not
   * divert the VM's traffic is done now: the care-of addresses (b–d), the host's rules (they only
   * wrap what the VM sends, and it sends nothing here yet), and the engine's rules
   * (PrepareMigration: they re-wrap only what the home agent tunnels to the new care-of address,
   * and it tunnels nothing there before the registration). The switch waits for activate().
   */
  private async prepare(vm: VmInventoryEntry, seenAtMs: number, runningHere = false): Promise<void> {
    const { control, log } = this.deps;
    const t: HandoverTimeline = { vmId: vm.id, direction: vm.family === 4 ? "4to6" : "6to4", seenAtMs, ok: false };
    const since = () => this.now - seenAtMs;
    // 3.1: a pool IPv4 address, and the host's IPv6 prefix with the home address in the low 32
    // bits; 3.2: an IPv4 address of this segment, and the segment's prefix with it (RFC 6052).
    const lease = await this.retry(vm, "visitor", "AllocateCareOf", () => control.allocateCareOf({ hostId: this.cfg.hostId, vmId: vm.id, homeAddress: vm.homeAddress }));
    // The port went away meanwhile: left() undoes whatever the engine did (AbortMigration).
    if (lease === undefined) return;
    t.allocatedMs = since();
    t.careOfIPv4 = lease.careOfIpv4;
    t.careOfIPv6 = lease.careOfIpv6;
    if (this.segmentPrefix !== undefined) {
      const expected = parseCidr(this.segmentPrefix, "prefix");
      if (!lease.careOfIpv6.startsWith(expected.network.text.replace(/::$/, ":"))) log.warn("care-of address outside the segment's prefix", { careOfIPv6: lease.careOfIpv6, prefix: this.segmentPrefix });
    }
    const old = this.visits.get(vm.id);
    const visit: Visit = {
      vm, phase: "prepared", enginePrepared: false, timeline: t,
      careOfIPv4: lease.careOfIpv4, careOfIPv6: lease.careOfIpv6, sequence: old?.sequence ?? this.lastSequence.get(vm.id), gone: false,
      leaseLifetimeS: lease.lifetimeSeconds,
      correspondents: new Map(), lastCorrespondent: new Uint8Array(16), ...(vm.family === 6 ? { home6: parseIPv6(vm.homeAddress, "homeAddress").bytes } : {}),
    };
    this.installHostSide(visit);
    t.hostRulesMs = since();
    const p = await this.retry(vm, "visitor", "PrepareMigration", () => control.prepareMigration(this.migrationRequest(visit)));
    if (p === undefined) return;
    visit.enginePrepared = p.prepared;
    if (p.prepared) t.engineRulesMs = since();
    if (p.translatedIpv4) t.translatedIPv4 = p.translatedIpv4;
    log.info("migration prepared", { vmId: vm.id, careOfIPv4: visit.careOfIPv4, careOfIPv6: visit.careOfIPv6, engineRules: p.prepared, running: p.active || runningHere });
    // The care-of lease is kept while the pre-copy lasts.
    this.scheduleRefresh(visit);
    if (p.active || runningHere) {
      this.unwatch(vm);
      return this.activate({ vm, bridge: "visitor", ingressIf: this.visitorIf }, "running", this.now);
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
    const { control, log } = this.deps;
    const vm = w.vm;
    if (this.stopped) return;
    const where = this.where.get(vm.id);
    if (where?.bridge !== w.bridge) return;
    if (w.bridge === "home") return this.cameHome(vm, where.seenAtMs, signal, atMs);
    const v = this.visits.get(vm.id);
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
      const migration = async () => {
        const reg = await this.retry(vm, "visitor", "RegisterMigration", () => control.registerMigration(this.migrationRequest(v)));
        if (reg === undefined) throw new Error("the VM left before RegisterMigration was answered");
        t.migrationRegisteredMs = since();
        if (reg.translatedIpv4) t.translatedIPv4 = reg.translatedIpv4;
      };
      if (v.enginePrepared) {
        [, t.registrationAttempts] = await Promise.all([migration(), this.register(v, this.cfg.registration.lifetimeS)]);
      } else {
        // Nothing was prepared (the VM's rules served its binding at another host): the engine's
        // rules first, so that it unwraps the registration and re-wraps the reply.
        await migration();
        t.engineRulesMs = since();
        t.registrationAttempts = await this.register(v, this.cfg.registration.lifetimeS);
      }
      t.registeredMs = since();
      t.ok = true;
      this.scheduleRefresh(v);
      if (v.home6 !== undefined && !v.gone) this.optimising = [...this.optimising.filter((o) => o.vm.id !== vm.id), v];
    } catch (e) {
      t.error = (e as Error).message;
      throw e;
    } finally {
      this.record(t);
    }
  }

  /**
   * The port left the visitor bridge. An active VM has moved on (departed); a VM that never ran
   * here was a cancelled or failed migration: its prepare is undone, and its traffic, which never
   * left its source, stays there.
   */
  private async left(vm: VmInventoryEntry): Promise<void> {
    const v = this.visits.get(vm.id);
    if (v?.phase === "active") return this.departed(vm);
    this.unwatch(vm);
    if (v !== undefined) {
      this.removeHostSide(v);
      this.visits.delete(vm.id);
    }
    const t: HandoverTimeline = v?.timeline ?? { vmId: vm.id, direction: vm.family === 4 ? "4to6" : "6to4", seenAtMs: this.now, ok: false };
    t.aborted = true;
    t.error = "the VM's port went away before the VM ran here (a cancelled or failed migration)";
    // The engine may have taken a lease or written rules even where its answer never came: the
    // abort is sent whatever the agent knows, a few times if the engine is away.
    for (let attempt = 1; attempt <= 6 && !this.stopped; attempt++) {
      try {
        const r = await this.deps.control.abortMigration({ vmId: vm.id, hostId: this.cfg.hostId });
        this.deps.log.info("migration aborted", { vmId: vm.id, released: r.releasedAddresses });
        break;
      } catch (e) {
        const code = (e as { code?: number }).code;
        if (code === 9) {
          // FAILED_PRECONDITION: the engine has the VM bound here (an activation it saw and we did not).
          this.deps.log.warn("abort refused: the engine has the VM bound at this host", { vmId: vm.id, error: (e as Error).message });
          break;
        }
        this.deps.log.warn("AbortMigration failed; trying again", { vmId: vm.id, attempt, error: (e as Error).message });
        await this.sleep(Math.min(500 * 2 ** (attempt - 1), 8000));
      }
    }
    this.record(t);
  }

  private installHostSide(v: Visit): void {
    const { forwarder } = this.deps.worker;
    const { engineIPv4, engineIPv6 } = this.cfg.network;
    const k = (what: string) => `vm/${v.vm.id}/${what}`;
    const rules: Rule[] = [];
    if (v.vm.family === 4) {
      // 3.1 f, l: what the VM sends goes IPv4-in-IPv6 from its IPv6 care-of address to the engine;
      // k: the engine's tunnel ends at that address.
      forwarder.setLocal(v.careOfIPv6, true);
      rules.push({ key: k("out"), kind: "encapsulate", tunnel: "4in6", remote: engineIPv6, local: v.careOfIPv6, innerSource: `${v.vm.homeAddress}/32` });
    } else {
      // 3.2 d, k: IPv6-in-IPv4 from the IPv4 care-of address; the binding updates come from the
      // IPv6 care-of address (RFC 6275 §11.7.1), the data from the home address (reverse tunnelling).
      forwarder.setLocal(v.careOfIPv4, true);
      rules.push({ key: k("out"), kind: "encapsulate", tunnel: "6in4", remote: engineIPv4, local: v.careOfIPv4, innerSource: `${v.vm.homeAddress}/128` });
      rules.push({ key: k("out-care-of"), kind: "encapsulate", tunnel: "6in4", remote: engineIPv4, local: v.careOfIPv4, innerSource: `${v.careOfIPv6}/128` });
    }
    const old = this.visits.get(v.vm.id);
    if (old && old !== v) this.removeHostSide(old, rules.map((r) => r.key));
    this.rules.apply(rules);
    this.visits.set(v.vm.id, v);
  }

  private removeHostSide(v: Visit, keep: string[] = []): void {
    const { forwarder } = this.deps.worker;
    clearTimeout(v.refresh);
    v.gone = true;
    for (const c of v.correspondents.values()) clearTimeout(c.refresh);
    this.optimising = this.optimising.filter((o) => o !== v);
    const keys = [`vm/${v.vm.id}/out`, `vm/${v.vm.id}/out-care-of`].filter((k) => !keep.includes(k));
    this.rules.apply([], keys);
    forwarder.setLocal(v.vm.family === 4 ? v.careOfIPv6 : v.careOfIPv4, false);
  }

  private departed(vm: VmInventoryEntry): void {
    const v = this.visits.get(vm.id);
    if (v === undefined) return;
    this.removeHostSide(v);
    this.visits.delete(vm.id);
    this.deps.log.info("vm left", { vmId: vm.id });
  }

  // ---------------------------------------------------------------- registration

  /** Registers (lifetime > 0) or deregisters through the tunnel; resolves with the attempts it took. */
  private async register(v: Visit, lifetimeS: number): Promise<number> {
    const key = this.keys.get(v.vm.homeAddress)!;
    const { forwarder, emit } = this.deps.worker;
    const { firstRetransmitMs, maxAttempts } = this.cfg.registration;
    const protocol = v.vm.family === 4 ? "mip4" : "mip6";
    let wait = firstRetransmitMs;
    let resyncs = 0;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (v.gone || this.stopped) throw new Error("the VM left before its registration was acknowledged");
      const now = this.now;
      let packet: Uint8Array;
      let check: (pkt: Uint8Array) => { ok: boolean; reason?: string; code?: number; status?: number; sequence?: number };
      let match: (pkt: Uint8Array) => boolean;
      if (v.vm.family === 4) {
        // 3.1 e: home address → r1, care-of address the pool address; the host's rule wraps it (f).
        const sa = { spi: key.spi, algorithm: key.algorithm, key: key.key };
        const rrq = buildAuthenticatedRequest({ homeAddress: v.vm.homeAddress, homeAgent: v.vm.homeAgent, careOfAddress: v.careOfIPv4, lifetimeS, sa, nowMs: now });
        const identification = readIdentification(rrq);
        packet = buildUdp4({ src: ipv4Bytes(v.vm.homeAddress), dst: ipv4Bytes(v.vm.homeAgent), srcPort: MIP4_PORT, dstPort: MIP4_PORT }, rrq);
        const home = packet.subarray(12, 16).slice();
        // RFC 5944 §5.7: the reply carries the request's low 32 identification bits, so a late
        // reply to an earlier attempt is not taken for this one's.
        const low = rrq.subarray(20, 24).slice();
        match = (pkt) => {
          if (pkt[0] >> 4 !== 4 || pkt[9] !== IPPROTO.UDP || !equalAt(pkt, 16, home) || udpSourcePort4(pkt) !== MIP4_PORT) return false;
          return equalAt(pkt, ((pkt[0] & 0x0f) << 2) + 8 + 16, low);
        };
        check = (pkt) => {
          const ihl = (pkt[0] & 0x0f) << 2;
          return checkReply(pkt.subarray(ihl + 8), sa, identification);
        };
      } else {
        // 3.2 d: from the IPv6 care-of address with the home address option; wrapped by the host (d).
        v.sequence = nextSequence(v.sequence, this.now);
        this.lastSequence.set(v.vm.id, v.sequence);
        const sa = { spi: key.spi, key: key.key };
        packet = buildBindingUpdatePacket({
          homeAddress: v.vm.homeAddress, careOfAddress: v.careOfIPv6, homeAgent: v.vm.homeAgent, sequence: v.sequence, lifetimeS, sa, nowMs: now,
          ...(v.careOfIPv4 ? { careOfIPv4: v.careOfIPv4 } : {}),
        });
        const dst = packet.subarray(8, 24).slice();
        const from = packet.subarray(24, 40).slice();
        match = (pkt) => pkt[0] >> 4 === 6 && equalAt(pkt, 24, dst) && equalAt(pkt, 8, from) && walkIPv6Extensions(pkt, 0, pkt.length, this.chain6)?.upperProtocol === IPPROTO.MOBILITY;
        check = (pkt) => checkAcknowledgement(pkt, sa);
      }
      const reply = this.expect(match, wait);
      forwarder.inject(packet, emit, now);
      const got = await reply;
      if (got !== undefined) {
        const r = check(got);
        // Only an acknowledgement that passed authentication may move the sequence number.
        if (!r.ok && r.status === BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW && r.sequence !== undefined && r.reason !== "bad-auth" && resyncs < 3) {
          // RFC 6275 §11.7.3: the home agent's last accepted sequence number comes back with
          // status 135 (another host's agent registered this VM with a later one); go on from it.
          this.metrics.registrations.inc({ protocol, result: "sequence-resync" });
          v.sequence = r.sequence;
          this.lastSequence.set(v.vm.id, r.sequence);
          // The home agent answered: the resend is not a retransmission.
          resyncs++;
          attempt--;
          continue;
        }
        this.metrics.registrations.inc({ protocol, result: r.ok ? "accepted" : (r.reason ?? "refused") });
        if (!r.ok) throw new Error(`home agent ${v.vm.homeAgent} refused the registration of ${v.vm.id}: ${r.reason ?? JSON.stringify(r)}`);
        return attempt;
      }
      this.metrics.registrations.inc({ protocol, result: "timeout" });
      wait = Math.min(wait * 2, 2000);
    }
    throw new Error(`no answer from home agent ${v.vm.homeAgent} after ${maxAttempts} attempts`);
  }

  private expect(match: (pkt: Uint8Array) => boolean, timeoutMs: number): Promise<Uint8Array | undefined> {
    return new Promise((resolve) => {
      const w: Waiter = {
        match,
        resolve: (pkt) => {
          clearTimeout(timer);
          resolve(pkt);
        },
        cancel: () => {
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve(undefined);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  /**
   * Renews the care-of lease with the engine and the registration with the home agent at two
   * thirds of the shorter lifetime (RFC 5944 §3.6 leaves the timing to the mobile node); a
   * failure is retried a few seconds later.
   */
  private scheduleRefresh(v: Visit, delayMs = (Math.min(v.leaseLifetimeS || Infinity, this.cfg.registration.lifetimeS) * 1000 * 2) / 3): void {
    clearTimeout(v.refresh);
    if (v.gone || this.stopped) return;
    v.refresh = setTimeout(() => {
      this.renew(v)
        .then(() => this.scheduleRefresh(v))
        .catch((e) => {
          this.deps.log.warn("renewal failed; trying again", { vmId: v.vm.id, error: (e as Error).message });
          if (!v.gone && !this.stopped) this.scheduleRefresh(v, 5000);
        });
    }, delayMs);
  }

  private async renew(v: Visit): Promise<void> {
    if (v.gone || this.stopped) return;
    const lease = await this.deps.control.allocateCareOf({ hostId: this.cfg.hostId, vmId: v.vm.id, homeAddress: v.vm.homeAddress });
    v.leaseLifetimeS = lease.lifetimeSeconds;
    if (lease.careOfIpv4 !== v.careOfIPv4 || lease.careOfIpv6 !== v.careOfIPv6) {
      // The lease had lapsed and the engine handed out new addresses: start over with them.
      this.deps.log.warn("care-of addresses changed on renewal", { vmId: v.vm.id, careOfIPv4: lease.careOfIpv4, careOfIPv6: lease.careOfIpv6 });
      const running = v.phase === "active";
      clearTimeout(v.refresh);
      return new Promise((resolve) => this.enqueue(v.vm, () => this.prepare(v.vm, this.now, running).finally(resolve)));
    }
    // A VM still being prepared keeps its lease; only one that runs here is registered.
    if (v.phase === "active") await this.register(v, this.cfg.registration.lifetimeS);
  }

  // ---------------------------------------------------------------- coming home

  /** Activation at home: the VM's port on the home bridge, and its RARP or first frame on the home link. */
  private async cameHome(vm: VmInventoryEntry, seenAtMs: number, signal: ActivationSignal, atMs: number): Promise<void> {
    const { control, log, worker } = this.deps;
    const t: HandoverTimeline = { vmId: vm.id, direction: "home", seenAtMs, ok: false, activation: signal, activatedMs: atMs - seenAtMs };
    try {
      // RFC 5944 §4.6 / RFC 6275 §11.5.4: the home address is the VM's again on the home link.
      worker.forwarder.announce(this.cfg.network.uplink, vm.homeAddress, worker.emit, parseMac(vm.mac));
      // Deregistration straight to the home agent on the home link (lifetime 0, care-of = home).
      // Its reply goes to the VM itself, which has no Mobile IP stack: it is sent, not awaited.
      const key = this.keys.get(vm.homeAddress)!;
      const now = this.now;
      if (vm.family === 4) {
        const rrq = buildAuthenticatedRequest({ homeAddress: vm.homeAddress, homeAgent: vm.homeAgent, careOfAddress: vm.homeAddress, lifetimeS: 0, sa: { spi: key.spi, algorithm: key.algorithm, key: key.key }, nowMs: now });
        worker.forwarder.inject(buildUdp4({ src: ipv4Bytes(vm.homeAddress), dst: ipv4Bytes(vm.homeAgent), srcPort: MIP4_PORT, dstPort: MIP4_PORT }, rrq), worker.emit, now);
      } else {
        const sequence = nextSequence(this.lastSequence.get(vm.id), this.now);
        this.lastSequence.set(vm.id, sequence);
        worker.forwarder.inject(buildBindingUpdatePacket({ homeAddress: vm.homeAddress, careOfAddress: vm.homeAddress, homeAgent: vm.homeAgent, sequence, lifetimeS: 0, sa: { spi: key.spi, key: key.key }, nowMs: now }), worker.emit, now);
      }
      this.metrics.registrations.inc({ protocol: vm.family === 4 ? "mip4" : "mip6", result: "deregistration-sent" });
      t.registeredMs = this.now - seenAtMs;
      const reg = await control.registerMigration({ vmId: vm.id, homeAddress: vm.homeAddress, homeAgent: vm.homeAgent, sourceHostId: "", destinationHostId: this.cfg.hostId, careOfIpv4: "", careOfIpv6: "" });
      t.engineRulesMs = this.now - seenAtMs;
      // Announce again once the home agent has stopped proxying.
      setTimeout(() => worker.forwarder.announce(this.cfg.network.uplink, vm.homeAddress, worker.emit, parseMac(vm.mac)), 50);
      t.ok = true;
      log.info("vm came home", { vmId: vm.id, hadBinding: reg.returnedHome });
    } catch (e) {
      t.error = (e as Error).message;
      throw e;
    } finally {
      this.record(t);
    }
  }

  // ---------------------------------------------------------------- heartbeat and advice

  private async heartbeat(): Promise<void> {
    const cfg = this.cfg;
    // The VMs that run here: at home, or visiting and active (a VM being prepared still runs at its source).
    const awaited = new Set([...this.watching.values()].map((w) => w.vm.id));
    const here = cfg.vms.filter((v) => this.where.has(v.id) && !awaited.has(v.id) && this.visits.get(v.id)?.phase !== "prepared");
    const sampler = this.deps.sampler;
    const resources = sampler?.host() ?? { cpuUsedCores: 0, cpuTotalCores: 0, memoryUsedBytes: 0, memoryTotalBytes: 0 };
    const usage = sampler?.vms(new Map(here.filter((v) => v.namespace).map((v) => [v.id, v.namespace!])), new Map(here.filter((v) => v.pidFile).map((v) => [v.id, v.pidFile!]))) ?? new Map();
    const uplink = cfg.worker.interfaces.find((i) => i.name === cfg.network.uplink)!;
    const res = await this.deps.control.heartbeat({
      hostId: cfg.hostId,
      addresses: uplink.addresses ?? [],
      resources: { cpuUsedCores: resources.cpuUsedCores, cpuTotalCores: resources.cpuTotalCores, memoryUsedBytes: BigInt(Math.round(resources.memoryUsedBytes)), memoryTotalBytes: BigInt(Math.round(resources.memoryTotalBytes)) },
      vms: here.map((v) => ({ vmId: v.id, homeAddress: v.homeAddress, cpuUsedCores: usage.get(v.id)?.cpuUsedCores ?? 0, memoryUsedBytes: BigInt(Math.round(usage.get(v.id)?.memoryUsedBytes ?? 0)) })),
    });
    for (const a of res.advice) {
      if (a.sourceHostId !== cfg.hostId || this.advising.has(a.vmId)) continue;
      if (this.deps.hook === undefined) {
        this.deps.log.info("migration advice (no hook configured)", { ...a });
        continue;
      }
      this.advising.add(a.vmId);
      this.deps.log.info("migration advice: migrating", { ...a });
      this.deps.hook.migrate(a.vmId, a.destinationHostId)
        .catch((e) => this.deps.log.warn("migration hook failed", { vmId: a.vmId, error: (e as Error).message }))
        .finally(() => this.advising.delete(a.vmId));
    }
  }

  private record(t: HandoverTimeline): void {
    this.timelines.push(t);
    if (this.timelines.length > 1000) this.timelines.shift();
    for (const [step, ms] of [["allocated", t.allocatedMs], ["host-rules", t.hostRulesMs], ["engine-rules", t.engineRulesMs], ["registered", t.registeredMs]] as const) {
      if (ms !== undefined && t.ok) this.metrics.handover.observe({ direction: t.direction, step }, ms / 1000);
    }
    this.deps.log.info("handover", { ...t });
    for (const l of this.listeners) l(t);
  }
}

/**
 * The next binding-update sequence number. The VM's "mobile node" is spread over the agents of
 * every host it visits, so the number follows the clock (one step per 64 ms, a wrap every 70
 * minutes, newer for 35 minutes by RFC 6275 §9.5.1's modulo comparison, far longer than a
 * refresh) and is never below the last one this agent used; a home agent that still knows a
 * later one says so with status 135, and the caller continues from there.
 */
function nextSequence(last: number | undefined, nowMs: number): number {
  const clock = Math.floor(nowMs / 64) & 0xffff;
  if (last === undefined) return clock;
  return isNewerSequence(clock, last) ? clock : (last + 1) & 0xffff;
}

/** A MAC (6 octets at `off`) as one number: 48 bits fit a double exactly. */
function macNumber(b: Uint8Array, off: number): number {
  return ((b[off] << 8) | b[off + 1]) * 0x1_0000_0000 + (((b[off + 2] << 24) | (b[off + 3] << 16) | (b[off + 4] << 8) | b[off + 5]) >>> 0);
}

function equalAt(buf: Uint8Array, off: number, want: Uint8Array): boolean {
  if (buf.length < off + want.length) return false;
  for (let i = 0; i < want.length; i++) if (buf[off + i] !== want[i]) return false;
  return true;
}

function udpSourcePort4(pkt: Uint8Array): number {
  const ihl = (pkt[0] & 0x0f) << 2;
  return pkt.length >= ihl + 8 ? (pkt[ihl] << 8) | pkt[ihl + 1] : -1;
}

/** The 64-bit identification of a registration request (RFC 5944 §3.3, octets 16–23). */
function readIdentification(rrq: Uint8Array): bigint {
  return new DataView(rrq.buffer, rrq.byteOffset, rrq.byteLength).getBigUint64(16);
}

function ipv4Bytes(text: string): Uint8Array {
  return parseIPv4(text, "address").bytes;
}
