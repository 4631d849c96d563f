// mip46-dataplane: the data-plane worker.
import type { Logger } from "../../lib/log.js";
import { loadWorkerConfig, WorkerConfigError, type WorkerConfig } from "./config.js";
import type { RuleTable } from "../../lib/rules/rules.js";
import { loadRuleTableFile, RuleTableFileError } from "./table.js";
import { isMainThread } from "node:worker_threads";
import { chooseIo, runWorker } from "./worker.js";
import { runThreadedWorker } from "./threads.js";
// In the bundle, this same file is each forwarding thread's script (threads.ts): thread.ts runs the thread.
import "./thread.js";
import { CHECK_VERSION_HELP, runDaemon, stringFlag, type DaemonArgs } from "../../lib/process/main.js";
import { detached, tellParent } from "./detach.js";

const HELP = `mip46-dataplane: the mip46 data-plane worker (tunnels, re-encapsulation, SIIT)

Usage: mip46-dataplane --config FILE [--table FILE] [--metrics-listen HOST:PORT] [--takeover [--detach]]
       mip46-dataplane --offline --in FILE --table FILE --out FILE [--ingress IF]

  --config FILE            worker configuration (YAML); see deploy/examples/dataplane.yaml
  --table FILE             live: a rule table (JSON: {"revision", "rules"}; an offline table file
                           works, its "worker" part is ignored) applied at start; the engine's
                           snapshot replaces it when engines are configured and one answers.
                           offline: the offline table (worker settings and rules, see
                           dataplane/forward/README.md)
  --metrics-listen H:P     Prometheus /metrics listen address (overrides 'metricsListen')
  --detach                 start the worker as a process of its own and return once it forwards
                           (with --takeover: once the old worker has exited); for systemd's
                           ExecReload (deploy/systemd/mip46-dataplane.service)
  --takeover               replace the worker answering on 'takeover.socket' without a traffic gap:
                           sync the table from the engine, take its neighbours, share its rings
                           (PACKET_FANOUT), then tell it to go (dataplane/worker/takeover.ts);
                           with nobody answering there, start as usual
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
SIGTERM or SIGINT stops it cleanly. With 'takeover.socket' set, a second worker started without
--takeover refuses to start while the first answers there.`;

/** --offline: frames from a pcap file through the forwarder, what it would send to another (dataplane/offline/). */
async function offline(args: DaemonArgs, log: Logger): Promise<number | undefined> {
  if (!args.offline) return undefined;
  const [input, table, output] = [stringFlag(args, "in"), stringFlag(args, "table"), stringFlag(args, "out")];
  if (!input || !output || !table) {
    process.stderr.write(`--offline needs --in, --table and --out\n\n${HELP}\n`);
    return 2;
  }
  const { runOffline } = await import("../offline/index.js");
  try {
    const summary = runOffline({ input, table, output, ingress: stringFlag(args, "ingress") });
    const drops = Object.fromEntries(Object.entries(summary.counters.drops).filter(([, n]) => n > 0));
    const actions = Object.fromEntries(Object.entries(summary.counters.actions).filter(([, n]) => n > 0));
    log.info("offline run done", { framesIn: summary.framesIn, framesOut: summary.framesOut, actions, drops, output });
    return 0;
  } catch (e) {
    log.error("offline run failed", { error: (e as Error).message });
    return 1;
  }
}

if (isMainThread) runDaemon({
  component: "dataplane",
  role: "worker",
  help: HELP,
  flags: { table: { type: "string" }, takeover: { type: "boolean" }, detach: { type: "boolean" }, offline: { type: "boolean" }, in: { type: "string" }, out: { type: "string" }, ingress: { type: "string" } },
  instead: async (args, log) => (await offline(args, log)) ?? (args.detach ? detached(process.argv.slice(2), log) : undefined),
  load: (path, args) => {
    const worker = loadWorkerConfig(path);
    const tablePath = stringFlag(args, "table") ?? worker.table;
    return { worker, table: tablePath ? loadRuleTableFile(tablePath) : undefined, takeover: args.takeover === true };
  },
  isConfigError: (e) => e instanceof WorkerConfigError || e instanceof RuleTableFileError,
  metricsOf: (config) => config.worker,
  start: ({ worker, table, takeover }, log) => tellParent(start(worker, table, takeover, log)),
});

function start(worker: WorkerConfig, table: RuleTable | undefined, takeover: boolean, log: Logger): Promise<{ tookOverFrom?: number; stop(): Promise<void> }> {
  const child = log.child({ workerId: worker.workerId });
  if (worker.workers === 1) return runWorker(worker, child, { table, takeover });
  // The threads need the ring (PACKET_FANOUT); without it, one thread on cap (chooseIo logs why).
  const io = chooseIo(worker.capture.backend, child);
  if (io.backend === "ring") return runThreadedWorker(worker, child, { table, takeover });
  child.warn("workers: N needs the ring capture backend; running one thread", { workers: worker.workers, backend: io.backend });
  return runWorker({ ...worker, workers: 1 }, child, { table, io, takeover });
}
