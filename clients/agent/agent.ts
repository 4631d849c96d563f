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
// This file wires the parts: handover.ts (the phases of an arrival), registration.ts (with the
// home agent, through mobility/), route-optimisation.ts, heartbeat.ts.
import type { ControlClient } from "../control.js";
import type { Logger } from "../../lib/log.js";
import { parseCidr } from "../../lib/net/address.js";
import type { Emit, Forwarder } from "../../dataplane/forward/index.js";
import { LocalRules } from "../../dataplane/worker/local.js";
import type { AgentConfig } from "./config.js";
import type { HypervisorEvent } from "./events.js";
import { Handover } from "./handover.js";
import { Heartbeats } from "./heartbeat.js";
import type { MigrationHook, PortWatcher } from "./hypervisor.js";
import { Registrar } from "./registration.js";
import type { ResourceSampler } from "./resources.js";
import { RouteOptimiser } from "./route-optimisation.js";
import { agentMetrics, HandoverRecord, type HandoverTimeline } from "./timeline.js";
import { HostSide, Inventory } from "./visit.js";

export type { ActivationSignal, HandoverTimeline } from "./timeline.js";

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

export class PrivilegedVmAgent {
  readonly family: 4 | 6;
  readonly metrics = agentMetrics();
  private readonly cfg: AgentConfig;
  private readonly rules: LocalRules;
  /** The agent's life: stop() aborts it, and with it every visit's timers and waits. */
  private readonly life = new AbortController();
  private readonly record: HandoverRecord;
  private readonly registrar: Registrar;
  private readonly optimiser: RouteOptimiser;
  private readonly handover: Handover;
  private readonly heartbeats: Heartbeats;
  private readonly now = () => (this.deps.now ?? Date.now)();

  constructor(private readonly deps: AgentDeps) {
    const cfg = (this.cfg = deps.config);
    const uplink = cfg.worker.interfaces.find((i) => i.name === cfg.network.uplink);
    const first = uplink?.addresses?.[0];
    if (first === undefined) throw new Error(`network.uplink: interface '${cfg.network.uplink}' has no address, so the host's protocol is unknown`);
    this.family = first.includes(":") ? 6 : 4;
    const now = this.now;
    const { worker, log } = deps;
    this.rules = new LocalRules(worker.forwarder);
    this.record = new HandoverRecord(this.metrics, log);
    this.registrar = new Registrar(cfg, worker, this.metrics, now);
    this.optimiser = new RouteOptimiser(cfg, worker, this.registrar, this.metrics, log, now);
    this.handover = new Handover({
      config: cfg, control: deps.control, worker, log, now, family: this.family, signal: this.life.signal,
      inventory: new Inventory(cfg.vms), hostSide: new HostSide(cfg, worker.forwarder, this.rules),
      registrar: this.registrar, optimiser: this.optimiser, record: this.record,
      // A VM that departed: the engine hears it now (a Heartbeat without it), not an interval later.
      departed: (vm) => {
        if (this.life.signal.aborted) return;
        this.heartbeats.beat().catch((e) => log.warn("heartbeat on a departure failed", { vmId: vm.id, error: (e as Error).message }));
      },
    });
    this.heartbeats = new Heartbeats({ ...deps, runningHere: () => this.handover.runningHere() });
  }

  get timelines(): HandoverTimeline[] {
    return this.record.timelines;
  }

  onHandover(listener: (t: HandoverTimeline) => void): () => void {
    return this.record.listen(listener);
  }

  /** Heartbeat, the segment's prefix, the engine's tunnel, then the ports already present. */
  async start(): Promise<void> {
    const { cfg, deps: { log } } = this;
    // The engine's end of the host's tunnels (3.1 k, 3.2 j): it unwraps only from the engine.
    this.rules.apply([this.family === 6
      ? { key: "engine/4in6", kind: "tunnel-peer", tunnel: "4in6", peer: cfg.network.engineIPv6 }
      : { key: "engine/6in4", kind: "tunnel-peer", tunnel: "6in4", peer: cfg.network.engineIPv4 }]);
    const found = this.deps.ports.current();
    this.handover.found(found);
    await this.heartbeats.beat();
    if (this.family === 4) {
      // Flow 3.2 c: the IPv6 prefix the engine assigned to this IPv4 segment.
      const uplink = cfg.worker.interfaces.find((i) => i.name === cfg.network.uplink)!;
      const c = parseCidr(uplink.addresses![0], "uplink", false);
      const segment = `${c.network.text}/${c.length}`;
      const prefix = (await this.deps.control.requestPrefix({ hostId: cfg.hostId, ipv4Segment: segment })).ipv6Prefix;
      this.handover.segmentPrefix = parseCidr(prefix, "RequestPrefix.ipv6Prefix");
      log.info("segment prefix", { segment, prefix });
    }
    this.heartbeats.repeat(this.life.signal);
    // Visiting VMs found at start are prepared again; the engine says whether they run here
    // already (PrepareMigration's `active`), else their first frame or RARP will. VMs at home stay.
    for (const p of found) if (p.bridge === "visitor") this.handover.portEvent({ kind: "attached", ...p, seenAtMs: this.now() });
    this.deps.ports.start((e) => this.handover.portEvent(e));
    log.info("agent started", { hostId: cfg.hostId, family: this.family, vms: cfg.vms.map((v) => v.id) });
  }

  async stop(): Promise<void> {
    // Timers end, and pending waits for replies end now (as timeouts), so the handovers in progress finish.
    this.life.abort();
    this.deps.ports.stop();
    await this.handover.settled();
  }

  /**
   * The worker's intercept: registration replies and binding acknowledgements for our VMs; and,
   * for a visiting IPv6 VM, a look at who sends to it through the tunnel, to start route
   * optimisation with each new correspondent (flow 3.2 k).
   */
  intercept(pkt: Uint8Array, decapsulated: boolean): boolean {
    if (this.registrar.intercept(pkt)) return true;
    if (decapsulated && this.optimiser.active && pkt[0] >> 4 === 6) this.optimiser.note(pkt);
    return false;
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
    return this.handover.hypervisorPhase(e);
  }

  /**
   * The worker's station hook (ForwarderOptions.stationSeen), on the packet path: every RARP, and
   * while a VM is awaited, every frame. A frame from an awaited VM's MAC on its link activates it.
   * A hypervisor's incoming side sends nothing during the pre-copy, so the first frame is the
   * VM running here; QEMU's RARP self-announce (ethertype 0x8035) is usually that first frame.
   */
  stationSeen(frame: Uint8Array, ingressIf: number): void {
    this.handover.stationSeen(frame, ingressIf);
  }
}
