// Heartbeat (the paper's "The parts" 2 d): the host's and its VMs' resource use to the engine,
// which confirms the host's protocol and answers with migration advice, carried out through the
// hypervisor's hook. One beat per interval, and one at once when a visiting VM departs (handover.ts
// left(): the engine then sees it gone within a round trip, and its next host gets its lease).
import type { Logger } from "../../lib/log.js";
import type { ControlClient } from "../control.js";
import type { AgentConfig, VmInventoryEntry } from "./config.js";
import type { MigrationHook } from "./hypervisor.js";
import type { ResourceSampler } from "./resources.js";

export interface HeartbeatDeps {
  config: AgentConfig;
  control: ControlClient;
  hook?: MigrationHook;
  sampler?: ResourceSampler;
  log: Logger;
  /** The VMs that run here: at home, or visiting and active (a VM being prepared still runs at its source). */
  runningHere(): VmInventoryEntry[];
}

export class Heartbeats {
  /** VMs whose migration the hook carries out now. */
  private readonly advising = new Set<string>();

  constructor(private readonly deps: HeartbeatDeps) {}

  /** One heartbeat per heartbeatIntervalMs until `signal` aborts. */
  repeat(signal: AbortSignal): void {
    const timer = setInterval(() => {
      this.beat().catch((e) => this.deps.log.warn("heartbeat failed", { error: (e as Error).message }));
    }, this.deps.config.heartbeatIntervalMs);
    signal.addEventListener("abort", () => clearInterval(timer), { once: true });
  }

  async beat(): Promise<void> {
    const { config: cfg, sampler, log, hook } = this.deps;
    const here = this.deps.runningHere();
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
      if (hook === undefined) {
        log.info("migration advice (no hook configured)", { ...a });
        continue;
      }
      this.advising.add(a.vmId);
      log.info("migration advice: migrating", { ...a });
      hook.migrate(a.vmId, a.destinationHostId)
        .catch((e) => log.warn("migration hook failed", { vmId: a.vmId, error: (e as Error).message }))
        .finally(() => this.advising.delete(a.vmId));
    }
  }
}
