// mip46-home-agent: r1 (Mobile IPv4) or r2 (Mobile IPv6) on the data-plane worker.
import { parseArgs } from "node:util";
import { createLogger } from "../lib/log.js";
import { runMain, stopSignal } from "../lib/process/main.js";
import { HomeAgentConfigError, loadHomeAgentConfig } from "./config.js";
import { runHomeAgent } from "./run.js";

const HELP = `mip46-home-agent: a Mobile IPv4 (RFC 5944) or Mobile IPv6 (RFC 6275) home agent on the
mip46 data-plane worker

Usage: mip46-home-agent --config FILE [--metrics-listen HOST:PORT]

  --config FILE         configuration (YAML): a 'homeAgent' section (protocol mip4|mip6, address,
                        homeNetwork, interface, maxLifetimeS, keysFile) and the worker's keys
                        (workerId, interfaces, routes, metricsListen, ...); see
                        deploy/examples/home-agent-r1.yaml and home-agent-r2.yaml
  --metrics-listen H:P  Prometheus /metrics listen address (overrides 'metricsListen')
  -h, --help            this text

The keys file (homeAgent.keysFile) must be mode 0600; keys are never logged.
Logs are JSON lines on stderr; "home agent started" when ready. SIGTERM stops it cleanly.`;

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
  const log = createLogger({ component: "home-agent" });
  if (!args.config) {
    process.stderr.write(`--config is required\n\n${HELP}\n`);
    return 2;
  }
  let config;
  try {
    config = loadHomeAgentConfig(args.config);
  } catch (e) {
    if (e instanceof HomeAgentConfigError) {
      log.error("configuration refused", { error: e.message });
      return 1;
    }
    throw e;
  }
  if (args["metrics-listen"]) config.worker.metricsListen = args["metrics-listen"];
  let running;
  try {
    running = await runHomeAgent(config, log.child({ workerId: config.worker.workerId }));
  } catch (e) {
    log.error("home agent could not start", { error: (e as Error).message });
    return 1;
  }
  await stopSignal(log);
  await running.stop();
  return 0;
}

runMain("home-agent", main);
