// mip46-home-agent: r1 (Mobile IPv4) or r2 (Mobile IPv6) on the data-plane worker.
import { CHECK_VERSION_HELP, runDaemon } from "../lib/process/main.js";
import { loadHomeAgentConfig } from "./config.js";
import { runHomeAgent } from "./run.js";

const HELP = `mip46-home-agent: a Mobile IPv4 (RFC 5944) or Mobile IPv6 (RFC 6275) home agent on the
mip46 data-plane worker

Usage: mip46-home-agent --config FILE [--metrics-listen HOST:PORT]

  --config FILE         configuration (YAML): a 'homeAgent' section (protocol mip4|mip6, address,
                        homeNetwork, interface, maxLifetimeS, keysFile) and the worker's keys
                        (workerId, interfaces, routes, metricsListen, ...); see
                        deploy/examples/home-agent-r1.yaml and home-agent-r2.yaml
  --metrics-listen H:P  Prometheus /metrics listen address (overrides 'metricsListen')
${CHECK_VERSION_HELP}
  -h, --help            this text

The keys file (homeAgent.keysFile) must be mode 0600; keys are never logged.
Logs are JSON lines on stderr; "home agent started" when ready. SIGTERM stops it cleanly.`;

runDaemon({
  component: "home-agent", help: HELP, load: loadHomeAgentConfig, metricsOf: (config) => config.worker,
  start: (config, log) => runHomeAgent(config, log.child({ workerId: config.worker.workerId })),
});
