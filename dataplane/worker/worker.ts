// Wires a worker together: one frame port per interface, the forwarding pipeline, the rule sync
// client and the metrics endpoint. Used by the executable (main.ts) and by tests.
import { existsSync } from "node:fs";
import type { Server } from "node:http";
import type { Server as NetServer } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "../../lib/log.js";
import type { RuleTable } from "../../lib/rules/rules.js";
import { registerBuildInfo, serveMetrics } from "../../lib/metrics/http.js";
import { Forwarder, parseForwarderConfig, type Emit, type ForwarderConfig, type Intercept, type StationSeen } from "../forward/index.js";
import { CapIo, interfaceMac } from "../io/cap.js";
import { formatMac } from "../packet/ethernet.js";
import { forwardingScheduling, loadRingAddon, ringLoadError, RingIo } from "../io/ring.js";
import type { FrameIo, FramePort } from "../io/frames.js";
import { RuleSyncClient, type RuleSyncOptions } from "../sync/client.js";
import { forwardOnPorts, neighbourCounts } from "./ports.js";
import { WorkerConfigError, type WorkerConfig } from "./config.js";
import { checkHost } from "./hostcheck.js";
import { workerMetrics } from "./metrics.js";
import {
  answering, bindingsToAdopt, connectTakeover, TakeoverError, firstSnapshot, handedBindings, handedNeighbours, neighboursToLearn, serveTakeover, writePidFile,
  type HandedBinding, type HandedNeighbour, type TakeoverPeer,
} from "./takeover.js";
import type { CorrespondentChange } from "../forward/correspondent.js";

export interface RunningWorker {
  forwarder: Forwarder;
  /** Sends a frame the forwarder produced (for Forwarder.inject / announce called from outside a capture callback). */
  emit: Emit;
  /** The worker's Prometheus registry: a control plane sharing the worker adds its metrics here. */
  registry: Registry;
  metricsPort: number;
  ports: FramePort[];
  /** --takeover: the pid of the worker this one replaced. */
  tookOverFrom?: number;
  stop(): Promise<void>;
}

export interface WorkerOptions {
  io?: FrameIo;
  /** A table applied before any engine answers (the --table option, or `table` in the config). */
  table?: RuleTable;
  /** Skip the host check (tests of the wiring without namespaces). */
  skipHostCheck?: boolean;
  /** A control plane sharing the worker: see ForwarderOptions.intercept (home agents, the privileged-VM agent). */
  intercept?: Intercept;
  /** See ForwarderOptions.stationSeen (the privileged-VM agent's activation signal). */
  stationSeen?: StationSeen;
  /** --takeover: replace the worker answering on takeover.socket (dataplane/worker/takeover.ts). */
  takeover?: boolean;
}

export async function runWorker(config: WorkerConfig, log: Logger, options: WorkerOptions = {}): Promise<RunningWorker> {
  if (config.workers > 1) {
    throw new WorkerConfigError(`workers: ${config.workers} runs the pipeline in threads of mip46-dataplane alone; a control plane sharing the worker (a home agent, the agent) needs workers: 1`, "workers");
  }
  if (config.takeover.socket && (options.intercept || options.stationSeen)) {
    throw new WorkerConfigError("takeover.socket: a takeover hands over mip46-dataplane's state alone; a control plane sharing the worker (a home agent, the agent) restarts by stop and start", "takeover.socket");
  }
  const io = options.io ?? chooseIo(config.capture.backend, log);
  const forwarder = new Forwarder(checkedForwarderConfig(config, log, options.skipHostCheck), Date.now(), { intercept: options.intercept, stationSeen: options.stationSeen });
  if (options.table) {
    forwarder.replaceRules(options.table);
    log.info("rule table applied", { source: "file", revision: options.table.revision, rules: options.table.rules.length });
  }
  const names = config.interfaces.map((i) => i.name);
  const peer = options.takeover ? await findPeer(config, log) : await refuseBeside(config);

  // The table first, then the rings: a new process forwards with the engine's table from its first frame.
  // A table the forwarder refuses (it throws, changing nothing) is not acknowledged: the sync
  // client drops the stream and the reconnect brings a full snapshot.
  const synced = firstSnapshot();
  const sync = startSync(config, log, {
    onSnapshot: (table) => {
      forwarder.replaceRules(table);
      synced.applied();
    },
    onDelta: (revision, updates, removes) => forwarder.applyDelta(revision, updates, removes),
  });
  if (peer) {
    try {
      if (sync) await synced.wait(config.takeover.syncTimeoutMs);
    } catch (e) {
      sync?.stop();
      peer.close();
      throw e;
    }
    const learn = neighboursToLearn(peer.neighbours, names);
    const now = Date.now();
    for (const l of learn) forwarder.learnShared(l, () => undefined, now);
    log.info("neighbours taken over", { from: peer.pid, handed: peer.neighbours.length, learned: learn.length });
  }

  // Made before the rings open: once they are open, this process forwards, and only the metrics
  // endpoint (its address the old worker's until it leaves) is left to start.
  const ports: FramePort[] = [];
  const registry = workerMetrics({
    interfaces: () => ports.map((port, index) => {
      const c = forwarder.counters.interfaces.get(index);
      return { name: port.name, rxPackets: c?.rxPackets ?? 0, txPackets: c?.txPackets ?? 0, rxBytes: c?.rxBytes ?? 0, txBytes: c?.txBytes ?? 0, port: port.stats() };
    }),
    actions: () => forwarder.counters.actions,
    drops: () => forwarder.counters.drops,
    revision: () => forwarder.revision,
    rules: () => forwarder.ruleCount,
    neighbours: () => neighbourCounts(forwarder),
    engineConnected: () => sync?.connected ?? false,
    refresh: () => io.refreshStats?.() ?? Promise.resolve(),
  });
  // Serving takeover.socket: the rings join the fanout group, so that the next process can share
  // them while it takes over. On cap (no fanout) the old process leaves before the new one opens.
  const fanout = config.takeover.socket !== undefined && io.backend === "ring";
  const openPorts = () => {
    try {
      config.interfaces.forEach((i) => ports.push(io.open(i.name, { ...config.capture, mtu: i.mtu, fanout })));
    } catch (e) {
      for (const p of ports) p.close();
      throw e;
    }
  };
  let emit: Emit = () => undefined;
  let ticker: NodeJS.Timeout | undefined;
  let scheduling: ReturnType<typeof schedulingForForwarding> | undefined;
  try {
    if (peer && !fanout) await leave(peer, log, (c) => forwarder.adoptCorrespondent(c));
    openPorts();
    scheduling = schedulingForForwarding();
    // Forwarding from the first frame the rings hold, before the old worker goes.
    emit = forwardOnPorts(forwarder, ports);
    ticker = setInterval(() => forwarder.tick(Date.now(), emit), config.tickMs);
    if (peer && fanout) await leave(peer, log, (c) => forwarder.adoptCorrespondent(c));
  } catch (e) {
    clearInterval(ticker);
    sync?.stop();
    peer?.close();
    for (const p of ports) p.close();
    throw e;
  }

  const served = await serveRunning(config, registry, log, {
    shut() {
      clearInterval(ticker);
      sync?.stop();
      for (const p of ports) p.close();
    },
    revision: () => forwarder.revision,
    neighbours: () => handedNeighbours(forwarder.neighbours.entries(), names),
    bindings: () => handedBindings(forwarder.correspondentBindings()),
  });
  log.info("dataplane started", {
    workerId: config.workerId, metricsPort: served.metricsPort, interfaces: names, engines: config.engines, backend: io.backend, workers: 1, scheduling,
    ...(peer ? { tookOverFrom: peer.pid } : {}),
  });
  return {
    forwarder, emit, registry, metricsPort: served.metricsPort, ports, tookOverFrom: peer?.pid,
    async stop() {
      await served.close();
      log.info("dataplane stopped", {
        revision: forwarder.revision,
        interfaces: Object.fromEntries(ports.map((p) => [p.name, p.stats()])),
      });
    },
  };
}

/**
 * What a worker that forwards serves: its metrics (on the address the old worker left, after a
 * takeover), takeover.socket for the next one, and the pid file. close() (once: a takeover's
 * leave, then the daemon's stop) runs `shut`, which stops the forwarding, and closes the rest.
 */
export async function serveRunning(config: WorkerConfig, registry: Registry, log: Logger, o: {
  shut(): void | Promise<void>;
  revision(): bigint;
  neighbours(): HandedNeighbour[] | Promise<HandedNeighbour[]>;
  /** The correspondent bindings held, handed to the next worker as it takes over. */
  bindings(): HandedBinding[] | Promise<HandedBinding[]>;
  /** Before a takeover's leave shuts it (the threads' last counters). */
  beforeLeave?(): Promise<void>;
}): Promise<{ metricsPort: number; close(): Promise<void> }> {
  let closed = false;
  let http: { server: Server; port: number } | undefined;
  let takeover: NetServer | undefined;
  const close = async () => {
    if (closed) return;
    closed = true;
    await o.shut();
    takeover?.close();
    if (http) await new Promise<void>((r) => http!.server.close(() => r()));
  };
  http = await serveWorkerMetrics(registry, config, close);
  try {
    takeover = config.takeover.socket ? await serveTakeover(config.takeover.socket, {
      workerId: config.workerId, revision: o.revision, neighbours: o.neighbours, bindings: o.bindings,
      leave: async () => {
        await o.beforeLeave?.();
        await close();
      },
    }, log) : undefined;
  } catch (e) {
    await close();
    throw e;
  }
  writePidFile(config.takeover.pidFile);
  return { metricsPort: http.port, close };
}

/** --takeover: the worker answering on takeover.socket, or undefined (logged) when none does. */
export async function findPeer(config: WorkerConfig, log: Logger): Promise<TakeoverPeer | undefined> {
  const path = config.takeover.socket;
  if (!path) throw new WorkerConfigError("--takeover needs takeover.socket in the configuration (where the running worker answers)", "takeover.socket");
  const peer = await connectTakeover(path);
  if (!peer) log.warn("--takeover: no worker answers on takeover.socket; starting as usual", { socket: path });
  else log.info("taking over", { from: peer.pid, workerId: peer.workerId, revision: peer.revision, neighbours: peer.neighbours.length });
  return peer;
}

/** Without --takeover: refuses to start while a worker answers on takeover.socket (both would forward every frame). */
export async function refuseBeside(config: WorkerConfig): Promise<undefined> {
  const path = config.takeover.socket;
  if (path && (await answering(path))) throw new TakeoverError(`another worker answers on takeover.socket ${path}: start with --takeover to replace it, or stop it first`);
  return undefined;
}

/** Tells the old worker to go and waits until it closed its rings; its correspondent bindings go to `adopt`. */
export async function leave(peer: TakeoverPeer, log: Logger, adopt: (c: CorrespondentChange) => void): Promise<void> {
  const handed = await peer.leave();
  peer.close();
  const bindings = bindingsToAdopt(handed, Date.now());
  for (const c of bindings) adopt(c);
  log.info("the old worker left", { pid: peer.pid, correspondentBindings: bindings.length });
}

/** The interfaces checked (they exist; the host leaves them to us, else a warning each), and the forwarder's configuration with their MACs. */
export function checkedForwarderConfig(config: WorkerConfig, log: Logger, skipHostCheck = false): ForwarderConfig {
  const names = config.interfaces.map((i) => i.name);
  names.forEach((name, n) => {
    if (!existsSync(`/sys/class/net/${name}`)) throw new WorkerConfigError(`interfaces[${n}].name: no interface '${name}' in this network namespace`);
  });
  if (!skipHostCheck) {
    for (const p of checkHost(names)) {
      log.warn("host set-up lets the kernel handle the worker's packets", { ...p });
    }
  }
  return parseForwarderConfig({
    ...config.forwarder,
    interfaces: config.interfaces.map((i, index) => ({
      ...i, index, mac: i.mac ?? formatMac(interfaceMac(i.name)),
    })),
  });
}

/** The rule-sync client when engines are configured, started; each applied table is logged. */
export function startSync(config: WorkerConfig, log: Logger, apply: Pick<RuleSyncOptions, "onSnapshot" | "onDelta" | "onAck">): RuleSyncClient | undefined {
  if (config.engines.length === 0) return undefined;
  const sync = new RuleSyncClient({
    workerId: config.workerId,
    engines: config.engines,
    tls: config.tls,
    log,
    onAck: apply.onAck,
    onSnapshot(table) {
      return logged(apply.onSnapshot(table), () => log.info("rule table applied", { source: "engine", revision: table.revision, rules: table.rules.length }));
    },
    onDelta(revision, updates, removes) {
      return logged(apply.onDelta(revision, updates, removes), () => log.debug("rule delta applied", { revision, updates: updates.length, removes: removes.length }));
    },
  });
  sync.start();
  return sync;
}

/** Runs `say` once `result` is done: at once, or when the promise resolves. */
function logged(result: void | Promise<void>, say: () => void): void | Promise<void> {
  if (result === undefined) return say();
  return result.then(say);
}

/** Serves the registry on metricsListen; on failure runs `undo` (what was started) and throws. */
export async function serveWorkerMetrics(registry: Registry, config: WorkerConfig, undo: () => Promise<void>): Promise<{ server: Server; port: number }> {
  try {
    registerBuildInfo(registry);
    return await serveMetrics(registry, config.metricsListen);
  } catch (e) {
    await undo();
    throw e;
  }
}

/**
 * This thread forwards: its helpers stop preempting it (ring.ts forwardingScheduling), on either
 * backend (the addon is loaded for it alone on cap). MIP46_DATAPLANE_SCHEDULING=default leaves the
 * kernel's defaults, to measure against (bench/latency.ts). What was done goes in the start log line.
 */
export function schedulingForForwarding(env = process.env): { helpersBatched: number } | "default" | "no addon" {
  if (env.MIP46_DATAPLANE_SCHEDULING === "default") return "default";
  return forwardingScheduling() ?? "no addon";
}

/** The configured backend; `ring` falls back to `cap` (one log line) when its addon did not build. */
export function chooseIo(backend: "ring" | "cap", log: Logger, load = loadRingAddon): FrameIo {
  if (backend === "ring") {
    const lib = load();
    if (lib) return new RingIo(lib);
    log.warn("capture backend ring unavailable, using cap", { reason: ringLoadError() ?? "addon did not load" });
  }
  return new CapIo();
}
