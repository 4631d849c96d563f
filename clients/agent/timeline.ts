// What a handover records: its timeline (the steps in ms since the VM's port was seen, which the
// lab prints), the metrics, and the listeners (onHandover).
import { Counter, Histogram } from "prom-client";
import type { Logger } from "../../lib/log.js";

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
  /**
   * A move between two visited hosts: AllocateCareOf was refused at the port's appearance (the
   * source host still listed the VM), so the prepare waited for the activation; the care-of lease
   * was then taken over at this many ms (after activatedMs), once the source no longer listed it.
   */
  leaseTakenOverMs?: number;
  /** The port went away before the VM ran here: the prepare was undone (AbortMigration). */
  aborted?: boolean;
  careOfIPv4?: string;
  careOfIPv6?: string;
  translatedIPv4?: string;
  registrationAttempts?: number;
  ok: boolean;
  error?: string;
}

export function agentMetrics() {
  return {
    handover: new Histogram({ name: "mip46_agent_handover_seconds", help: "Time from a VM's port appearing to each step of its handover being done.", labelNames: ["direction", "step"] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [] }),
    registrations: new Counter({ name: "mip46_agent_registrations_total", help: "Registrations with home agents sent on VMs' behalf, by result.", labelNames: ["protocol", "result"] as const, registers: [] }),
  };
}

export type AgentMetrics = ReturnType<typeof agentMetrics>;

/** The last thousand handovers, their metrics, and who listens. */
export class HandoverRecord {
  readonly timelines: HandoverTimeline[] = [];
  private readonly listeners = new Set<(t: HandoverTimeline) => void>();

  constructor(private readonly metrics: AgentMetrics, private readonly log: Logger) {}

  listen(listener: (t: HandoverTimeline) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  record(t: HandoverTimeline): void {
    this.timelines.push(t);
    if (this.timelines.length > 1000) this.timelines.shift();
    for (const [step, ms] of [["allocated", t.allocatedMs], ["host-rules", t.hostRulesMs], ["engine-rules", t.engineRulesMs], ["registered", t.registeredMs]] as const) {
      if (ms !== undefined && t.ok) this.metrics.handover.observe({ direction: t.direction, step }, ms / 1000);
    }
    this.log.info("handover", { ...t });
    for (const l of this.listeners) l(t);
  }
}
