// Wires an agent together: its data-plane worker (with the agent on the packet path for
// registration replies), the engine client, the hypervisor's bridges and hook, the sampler.
import type { Logger } from "../../lib/log.js";
import { connectControl } from "../control.js";
import { connectControlAny } from "../failover.js";
import { runWorker, type RunningWorker, type WorkerOptions } from "../../dataplane/worker/worker.js";
import { PrivilegedVmAgent } from "./agent.js";
import type { AgentConfig } from "./config.js";
import { HypervisorEventServer } from "./events.js";
import { CommandMigrationHook, SysfsPortWatcher } from "./hypervisor.js";
import { ResourceSampler } from "./resources.js";

export interface RunningAgent {
  agent: PrivilegedVmAgent;
  worker: RunningWorker;
  stop(): Promise<void>;
}

export async function runAgent(config: AgentConfig, log: Logger, options: Pick<WorkerOptions, "io" | "skipHostCheck"> = {}): Promise<RunningAgent> {
  let agent: PrivilegedVmAgent | undefined;
  let events: HypervisorEventServer | undefined;
  const worker = await runWorker(config.worker, log, {
    ...options,
    intercept: (pkt, _ingress, decapsulated) => agent?.intercept(pkt, decapsulated) ?? false,
    stationSeen: (frame, ingress) => agent?.stationSeen(frame, ingress),
  });
  // Every replica: a call that finds one down moves on to the next (clients/failover.ts).
  const control = connectControlAny(config.engines, {
    deadlineMs: 10_000, attemptMs: 3000,
    connect: (address) => connectControl(address, 3000, config.worker.tls),
    onFailover: (from, to, err) => log.warn("engine replica failed; using the next", { from, to, error: err.message }),
  });
  const ignore = new Set([config.network.uplink, config.network.visitor, ...config.hypervisor.ignorePorts]);
  try {
    agent = new PrivilegedVmAgent({
      config, control, worker, log,
      ports: new SysfsPortWatcher({ home: config.hypervisor.homeBridge, visitor: config.hypervisor.visitorBridge }, config.hypervisor.pollMs, ignore),
      hook: config.hypervisor.migrateCommand ? new CommandMigrationHook(config.hypervisor.migrateCommand) : undefined,
      sampler: new ResourceSampler(),
    });
    worker.registry.registerMetric(agent.metrics.handover);
    worker.registry.registerMetric(agent.metrics.registrations);
    await agent.start();
    const a = agent;
    if (config.hypervisor.eventSocket !== undefined) {
      events = new HypervisorEventServer(config.hypervisor.eventSocket, (e) => a.hypervisorPhase(e), log);
      await events.start();
    }
  } catch (e) {
    await events?.stop();
    await agent?.stop();
    control.close();
    await worker.stop();
    throw e;
  }
  const a = agent;
  return {
    agent: a, worker,
    async stop() {
      await events?.stop();
      await a.stop();
      control.close();
      await worker.stop();
    },
  };
}
