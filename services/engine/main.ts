// mip46-engine: the cloud control engine.
import { loadConfig } from "../config/config.js";
import { runEngine } from "./run.js";
import { CHECK_VERSION_HELP, runDaemon, stringFlag } from "../../lib/process/main.js";

const HELP = `mip46-engine: the mip46 cloud control engine (gRPC control plane and rule compiler)

Usage: mip46-engine --config FILE [--listen HOST:PORT] [--metrics-listen HOST:PORT] [--store PATH]

  --config FILE            engine configuration (YAML); see deploy/examples/engine.yaml
  --listen HOST:PORT       gRPC listen address (overrides 'listen'), e.g. [::1]:50046 or 127.0.0.1:0
  --metrics-listen H:P     Prometheus /metrics listen address (overrides 'metricsListen')
  --store PATH             SQLite database file (overrides 'store.path')
${CHECK_VERSION_HELP}
  -h, --help               this text

Logs are JSON lines on stderr (MIP46_LOG_LEVEL=debug|info|warn|error). On start it logs
"engine started" with the bound ports. SIGTERM or SIGINT stops it cleanly.`;

runDaemon({
  component: "engine",
  help: HELP,
  flags: { listen: { type: "string" }, store: { type: "string" } },
  load: loadConfig,
  metricsOf: (config) => config,
  override: (config, args) => {
    config.listen = stringFlag(args, "listen") ?? config.listen;
    config.store.path = stringFlag(args, "store") ?? config.store.path;
  },
  start: runEngine,
});
