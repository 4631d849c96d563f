// The worker's configuration file (YAML): who it is, where the engines are, and the forwarder's
// interfaces, routes, served prefixes and translator settings. See deploy/examples/dataplane.yaml.
import { TLS_FILES, type TlsFiles } from "../../lib/tls/tls.js";
import { ConfigFieldError, integer, list, oneOf, parseShape, readYamlFile, say, strict, text, z } from "../../lib/config/schema.js";
import { FORWARDER_SETTINGS, WORKER_INTERFACE } from "../forward/config.js";

export class WorkerConfigError extends ConfigFieldError {
  override name = "WorkerConfigError";
}

export interface WorkerInterfaceConfig {
  name: string;
  /** Read from the interface when absent. */
  mac?: string;
  mtu?: number;
  addresses?: string[];
}

export interface WorkerConfig {
  workerId: string;
  /** host:port (or unix:PATH) of each engine replica, its gRPC listen address; empty: static table only. */
  engines: string[];
  /** Mutual TLS to the engines: the CA, and this worker's certificate (saying worker:<workerId>) and key. */
  tls?: TlsFiles;
  metricsListen: string;
  /** A rule table (JSON, the offline-mode format) applied at start, before any engine answers. */
  table?: string;
  /** backend: `ring` (our PACKET_MMAP addon, the default) or `cap` (libpcap, the fallback). */
  capture: { backend: "ring" | "cap"; bufferBytes: number; maxBatch: number };
  /** Milliseconds between neighbour-cache ticks. */
  tickMs: number;
  /**
   * Forwarding threads. 1: the pipeline runs on the main thread (no fanout). N > 1: N worker
   * threads, each with its own ring per interface in the interface's PACKET_FANOUT group
   * (dataplane/worker/threads.ts); the ring backend only.
   */
  workers: number;
  interfaces: WorkerInterfaceConfig[];
  /**
   * Restart without a gap (dataplane/worker/takeover.ts): the running worker answers on `socket`
   * (and its rings join the PACKET_FANOUT group, so that a new process can share them), a new one
   * started with --takeover syncs its table (waiting up to syncTimeoutMs), takes its neighbours and
   * tells it to go. `pidFile`: written with the pid of the process that forwards (systemd's PIDFile=).
   */
  takeover: { socket?: string; pidFile?: string; syncTimeoutMs: number };
  /** The rest of the forwarder's configuration (routes, served, translator, tunnels, neighbours, neighbourTimers), passed through. */
  forwarder: Record<string, unknown>;
}

/** Threads per worker process; a fanout group takes up to 256 sockets (packet(7)), far more than this. */
export const MAX_WORKERS = 64;

const ENGINE_ADDRESS = /^((\[[^\]]+\]|[^:\s]+):\d+|unix:\S+)$/;

/** A list of engine replicas' gRPC addresses; `words` says what it must be. */
export function engineList(words: string) {
  return z.custom<string[]>((v) => Array.isArray(v) && v.every((e) => typeof e === "string" && ENGINE_ADDRESS.test(e)), { error: words });
}

const positive = (dflt: number) => {
  const words = say((v) => `must be a positive integer, got ${JSON.stringify(v)}`);
  return z.number(words).int(words).positive(words).default(dflt);
};

/** The worker's own keys; the home agent's and the agent's files add theirs to these. */
export const WORKER_KEYS = {
  workerId: text(),
  engines: engineList("must be a list of HOST:PORT, [IPv6]:PORT or unix:PATH").default([]),
  tls: TLS_FILES.optional(),
  metricsListen: text("HOST:PORT").default("127.0.0.1:9047"),
  table: text("a file path").optional(),
  capture: strict({
    backend: oneOf(["ring", "cap"], (v) => `must be 'ring' or 'cap', got ${JSON.stringify(v)}`).default("ring"),
    bufferBytes: positive(64 << 20),
    maxBatch: positive(1024),
  }).prefault({}),
  tickMs: positive(200),
  workers: integer(1, MAX_WORKERS).default(1),
  takeover: strict({
    socket: text("a file path").optional(),
    pidFile: text("a file path").optional(),
    syncTimeoutMs: positive(10_000),
  }).prefault({}),
  interfaces: list(WORKER_INTERFACE).min(1, "required, a non-empty list"),
  ...FORWARDER_SETTINGS,
};

const WORKER_FILE = strict(WORKER_KEYS);

/** Splits a checked worker file into the worker's settings and the forwarder's, which runWorker checks for meaning. */
export function workerConfig(file: z.output<typeof WORKER_FILE>): WorkerConfig {
  const { workerId, engines, tls, metricsListen, table, capture, tickMs, workers, takeover, interfaces, ...settings } = file;
  const forwarder = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined));
  return { workerId, engines, tls, metricsListen, table, capture, tickMs, workers, takeover, interfaces, forwarder };
}

export function parseWorkerConfig(value: unknown): WorkerConfig {
  return workerConfig(parseShape(WORKER_FILE, value, (m, f) => new WorkerConfigError(m, f)));
}

export function loadWorkerConfig(path: string): WorkerConfig {
  return parseWorkerConfig(readYamlFile(path, (m) => new WorkerConfigError(m)));
}
