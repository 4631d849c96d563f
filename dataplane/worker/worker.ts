// Wires a worker together: one frame port per interface, the forwarding pipeline, the rule sync
// client and the metrics endpoint. Used by the executable (main.ts) and by tests.
import { existsSync } from "node:fs";
import type { Server } from "node:http";
import type { Registry } from "prom-client";
import type { Logger } from "../../lib/log.js";
import type { RuleTable } from "../../lib/rules/rules.js";
import { registerBuildInfo, serveMetrics } from "../../lib/metrics/http.js";
import { Forwarder, parseForwarderConfig, type Emit, type Intercept, type StationSeen } from "../forward/index.js";
import { CapIo, interfaceMac } from "../io/cap.js";
import { formatMac } from "../packet/ethernet.js";
import { loadRingAddon, ringLoadError, RingIo } from "../io/ring.js";
import type { FrameIo, FramePort } from "../io/frames.js";
import { RuleSyncClient } from "../sync/client.js";
import { WorkerConfigError, type WorkerConfig } from "./config.js";
import { checkHost } from "./hostcheck.js";
import { workerMetrics } from "./metrics.js";

export interface RunningWorker {
  forwarder: Forwarder;
  /** Sends a frame the forwarder produced (for Forwarder.inject / announce called from outside a capture callback). */
  emit: Emit;
  /** The worker's Prometheus registry: a control plane sharing the worker adds its metrics here. */
  registry: Registry;
  metricsPort: number;
  ports: FramePort[];
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
}

export async function runWorker(config: WorkerConfig, log: Logger, options: WorkerOptions = {}): Promise<RunningWorker> {
  const io = options.io ?? chooseIo(config.capture.backend, log);
  const names = config.interfaces.map((i) => i.name);
  names.forEach((name, n) => {
    if (!existsSync(`/sys/class/net/${name}`)) throw new WorkerConfigError(`interfaces[${n}].name: no interface '${name}' in this network namespace`);
  });
  if (!options.skipHostCheck) {
    for (const p of checkHost(names)) {
      log.warn("host set-up lets the kernel handle the worker's packets", { ...p });
    }
  }
  const forwarder = new Forwarder(parseForwarderConfig({
    ...config.forwarder,
    interfaces: config.interfaces.map((i, index) => ({
      ...i, index, mac: i.mac ?? formatMac(interfaceMac(i.name)),
    })),
  }), Date.now(), { intercept: options.intercept, stationSeen: options.stationSeen });
  if (options.table) {
    forwarder.replaceRules(options.table);
    log.info("rule table applied", { source: "file", revision: options.table.revision, rules: options.table.rules.length });
  }

  const ports: FramePort[] = [];
  try {
    config.interfaces.forEach((i) => ports.push(io.open(i.name, { ...config.capture, mtu: i.mtu })));
  } catch (e) {
    for (const p of ports) p.close();
    throw e;
  }
  const emit = (egressIf: number, frame: Uint8Array) => {
    ports[egressIf]?.send(frame);
  };
  // The batch form: what a batch produced leaves on every port in one system call per port.
  const flushing = ports.filter((p) => p.flushSends);
  ports.forEach((port, index) => {
    port.start((frames) => {
      forwarder.processBatch(index, frames as Uint8Array[], frames.length, emit, Date.now());
      for (const p of flushing) p.flushSends!();
    });
  });
  const ticker = setInterval(() => forwarder.tick(Date.now(), emit), config.tickMs);

  let sync: RuleSyncClient | undefined;
  if (config.engines.length > 0) {
    // A table the forwarder refuses (it throws, changing nothing) is not acknowledged: the sync
    // client drops the stream and the reconnect brings a full snapshot.
    sync = new RuleSyncClient({
      workerId: config.workerId,
      engines: config.engines,
      tls: config.tls,
      log,
      onSnapshot(table) {
        forwarder.replaceRules(table);
        log.info("rule table applied", { source: "engine", revision: table.revision, rules: table.rules.length });
      },
      onDelta(revision, updates, removes) {
        forwarder.applyDelta(revision, updates, removes);
        log.debug("rule delta applied", { revision, updates: updates.length, removes: removes.length });
      },
    });
    sync.start();
  }

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
  let http: { server: Server; port: number };
  try {
    registerBuildInfo(registry);
    http = await serveMetrics(registry, config.metricsListen);
  } catch (e) {
    clearInterval(ticker);
    sync?.stop();
    for (const p of ports) p.close();
    throw e;
  }
  log.info("dataplane started", {
    workerId: config.workerId, metricsPort: http.port, interfaces: names, engines: config.engines, backend: io.backend,
  });
  return {
    forwarder, emit, registry, metricsPort: http.port, ports,
    async stop() {
      clearInterval(ticker);
      sync?.stop();
      for (const p of ports) p.close();
      await new Promise<void>((r) => http.server.close(() => r()));
      log.info("dataplane stopped", {
        revision: forwarder.revision,
        interfaces: Object.fromEntries(ports.map((p) => [p.name, p.stats()])),
      });
    },
  };
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

function neighbourCounts(forwarder: Forwarder): { family: string; state: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const family of ["ipv4", "ipv6"]) {
    for (const state of ["incomplete", "reachable", "stale", "permanent"]) counts.set(`${family} ${state}`, 0);
  }
  for (const e of forwarder.neighbours.entries()) {
    const key = `ipv${e.family} ${e.state}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, count]) => {
    const [family, state] = key.split(" ");
    return { family, state, count };
  });
}
