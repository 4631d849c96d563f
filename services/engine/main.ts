// mip46-engine: the cloud control engine.
import { parseArgs } from "node:util";
import { createLogger } from "../../lib/log.js";
import { loadConfig } from "../config/config.js";
import { ConfigError } from "../errors.js";
import { runEngine } from "./run.js";
import { CHECK_VERSION_HELP, checked, runMain, stopSignal } from "../../lib/process/main.js";
import { versionLine } from "../../lib/process/version.js";
import { routeGrpcLogs } from "../../lib/process/grpc-log.js";

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

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        config: { type: "string" }, listen: { type: "string" }, "metrics-listen": { type: "string" },
        store: { type: "string" }, check: { type: "boolean" }, version: { type: "boolean" }, help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  if (args.version) {
    process.stdout.write(versionLine("mip46-engine") + "\n");
    return 0;
  }
  if (!args.config) {
    process.stderr.write(`--config is required\n\n${HELP}\n`);
    return 2;
  }
  const log = createLogger({ component: "engine" });
  routeGrpcLogs(log);
  let config;
  try {
    config = loadConfig(args.config);
  } catch (e) {
    if (e instanceof ConfigError) {
      log.error("configuration refused", { error: e.message });
      return 1;
    }
    throw e;
  }
  if (args.check) return checked(args.config);
  if (args.listen) config.listen = args.listen;
  if (args["metrics-listen"]) config.metricsListen = args["metrics-listen"];
  if (args.store) config.store.path = args.store;
  let running;
  try {
    running = await runEngine(config, log);
  } catch (e) {
    log.error("engine could not start", { error: (e as Error).message });
    return 1;
  }
  await stopSignal(log);
  await running.stop();
  return 0;
}

runMain("engine", main);
