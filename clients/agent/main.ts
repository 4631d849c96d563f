// mip46-agent: the privileged-VM agent of one hypervisor host, with its data-plane worker.
import { CHECK_VERSION_HELP, runDaemon } from "../../lib/process/main.js";
import { loadAgentConfig } from "./config.js";
import { runAgent } from "./run.js";

const HELP = `mip46-agent: the privileged-VM agent of a hypervisor host (paper, "The parts" 2)

Usage: mip46-agent --config FILE [--metrics-listen HOST:PORT]

  --config FILE         configuration (YAML): hostId, engines (every replica), hypervisor
                        (homeBridge, visitorBridge, migrateCommand), network (uplink, visitor,
                        engineIPv4, engineIPv6), registration, vms (the inventory), keysFile, and the
                        data-plane worker's keys (workerId, interfaces, routes, metricsListen, ...);
                        see deploy/lab (the lab writes one per host)
  --metrics-listen H:P  Prometheus /metrics listen address (overrides 'metricsListen')
${CHECK_VERSION_HELP}
  -h, --help            this text

Logs are JSON lines on stderr: "agent started" when ready, one "handover" line per VM arrival
or return home with its timeline. SIGTERM stops it cleanly.`;

runDaemon({
  component: "agent", help: HELP, load: loadAgentConfig, metricsOf: (config) => config.worker,
  start: (config, log) => runAgent(config, log.child({ hostId: config.hostId })),
});
