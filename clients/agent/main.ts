// mip46-agent: the privileged-VM agent of one hypervisor host, with its data-plane worker.
import { parseArgs } from "node:util";
import { createLogger } from "../../lib/log.js";
import { runMain, stopSignal } from "../../lib/process/main.js";
import { AgentConfigError, loadAgentConfig } from "./config.js";
import { runAgent } from "./run.js";

const HELP = `mip46-agent: the privileged-VM agent of a hypervisor host (paper, "The parts" 2)

Usage: mip46-agent --config FILE [--metrics-listen HOST:PORT]

  --config FILE         configuration (YAML): hostId, engines (every replica), hypervisor
                        (homeBridge, visitorBridge, migrateCommand), network (uplink, visitor,
                        engineIPv4, engineIPv6), registration, vms (the inventory), keysFile, and the
                        data-plane worker's keys (workerId, interfaces, routes, metricsListen, ...);
                        see deploy/lab (the lab writes one per host)
  --metrics-listen H:P  Prometheus /metrics listen address (overrides 'metricsListen')
  -h, --help            this text

Logs are JSON lines on stderr: "agent started" when ready, one "handover" line per VM arrival
or return home with its timeline. SIGTERM stops it cleanly.`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { config: { type: "string" }, "metrics-listen": { type: "string" }, help: { type: "boolean", short: "h" } }, strict: true }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  const log = createLogger({ component: "agent" });
  if (!args.config) {
    process.stderr.write(`--config is required\n\n${HELP}\n`);
    return 2;
  }
  let config;
  try {
    config = loadAgentConfig(args.config);
  } catch (e) {
    if (e instanceof AgentConfigError) {
      log.error("configuration refused", { error: e.message });
      return 1;
    }
    throw e;
  }
  if (args["metrics-listen"]) config.worker.metricsListen = args["metrics-listen"];
  let running;
  try {
    running = await runAgent(config, log.child({ hostId: config.hostId }));
  } catch (e) {
    log.error("agent could not start", { error: (e as Error).message });
    return 1;
  }
  await stopSignal(log);
  await running.stop();
  return 0;
}

runMain("agent", main);
