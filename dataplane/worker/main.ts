// mip46-dataplane: the data-plane worker.
import { parseArgs } from "node:util";
import { createLogger } from "../../lib/log.js";
import { loadWorkerConfig, WorkerConfigError } from "./config.js";
import { loadRuleTableFile, RuleTableFileError } from "./table.js";
import { runWorker } from "./worker.js";
import { CHECK_VERSION_HELP, checked, runMain, stopSignal } from "../../lib/process/main.js";
import { versionLine } from "../../lib/process/version.js";
import { routeGrpcLogs } from "../../lib/process/grpc-log.js";

const HELP = `mip46-dataplane: the mip46 data-plane worker (tunnels, re-encapsulation, SIIT)

Usage: mip46-dataplane --config FILE [--table FILE] [--metrics-listen HOST:PORT]
       mip46-dataplane --offline --in FILE --table FILE --out FILE [--ingress IF]

  --config FILE            worker configuration (YAML); see deploy/examples/dataplane.yaml
  --table FILE             live: a rule table (JSON: {"revision", "rules"}; an offline table file
                           works, its "worker" part is ignored) applied at start; the engine's
                           snapshot replaces it when engines are configured and one answers.
                           offline: the offline table (worker settings and rules, see
                           dataplane/forward/README.md)
  --metrics-listen H:P     Prometheus /metrics listen address (overrides 'metricsListen')
  --offline                read frames from a pcap file instead of interfaces, write what would be sent
  --in FILE                offline: input pcap (Ethernet or raw-IP link type)
  --out FILE               offline: output pcap
  --ingress IF             offline: the interface the frames arrive on (default the first)
${CHECK_VERSION_HELP}
  -h, --help               this text

The host must leave the worker's interfaces to it: no IP addresses on them,
net.ipv6.conf.IF.disable_ipv6=1, net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=0; the
worker warns at start when it is not so. Logs are JSON lines on stderr
(MIP46_LOG_LEVEL=debug|info|warn|error); "dataplane started" (with metricsPort) when ready.
SIGTERM or SIGINT stops it cleanly.`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        config: { type: "string" }, table: { type: "string" }, "metrics-listen": { type: "string" },
        offline: { type: "boolean" }, in: { type: "string" }, out: { type: "string" }, ingress: { type: "string" },
        check: { type: "boolean" }, version: { type: "boolean" }, help: { type: "boolean", short: "h" },
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
    process.stdout.write(versionLine("mip46-dataplane") + "\n");
    return 0;
  }
  const log = createLogger({ component: "dataplane" });
  routeGrpcLogs(log);
  if (args.offline) {
    if (!args.in || !args.out || !args.table) {
      process.stderr.write(`--offline needs --in, --table and --out\n\n${HELP}\n`);
      return 2;
    }
    const { runOffline } = await import("../offline/index.js");
    try {
      const summary = runOffline({ input: args.in, table: args.table, output: args.out, ingress: args.ingress });
      const drops = Object.fromEntries(Object.entries(summary.counters.drops).filter(([, n]) => n > 0));
      const actions = Object.fromEntries(Object.entries(summary.counters.actions).filter(([, n]) => n > 0));
      log.info("offline run done", { framesIn: summary.framesIn, framesOut: summary.framesOut, actions, drops, output: args.out });
      return 0;
    } catch (e) {
      log.error("offline run failed", { error: (e as Error).message });
      return 1;
    }
  }
  if (!args.config) {
    process.stderr.write(`--config is required\n\n${HELP}\n`);
    return 2;
  }
  let config;
  let table;
  try {
    config = loadWorkerConfig(args.config);
    const tablePath = args.table ?? config.table;
    if (tablePath) table = loadRuleTableFile(tablePath);
  } catch (e) {
    if (e instanceof WorkerConfigError || e instanceof RuleTableFileError) {
      log.error("configuration refused", { error: (e as Error).message });
      return 1;
    }
    throw e;
  }
  if (args.check) return checked(args.config);
  if (args["metrics-listen"]) config.metricsListen = args["metrics-listen"];
  let running;
  try {
    running = await runWorker(config, log.child({ workerId: config.workerId }), { table });
  } catch (e) {
    log.error("worker could not start", { error: (e as Error).message });
    return 1;
  }
  await stopSignal(log);
  await running.stop();
  return 0;
}

runMain("dataplane", main);
