// The worker's configuration file (YAML): who it is, where the engines are, and the forwarder's
// interfaces, routes, served prefixes and translator settings. See deploy/examples/dataplane.yaml.
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { parseTlsConfig, type TlsFiles } from "../../lib/tls/tls.js";

export class WorkerConfigError extends Error {
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
  interfaces: WorkerInterfaceConfig[];
  /** The rest of the forwarder's configuration (routes, served, translator, tunnels, neighbours, neighbourTimers), passed through. */
  forwarder: Record<string, unknown>;
}

const FORWARDER_KEYS = ["routes", "served", "translator", "tunnels", "neighbours", "neighbourTimers", "correspondentRouter"];
const TOP_KEYS = new Set(["workerId", "engines", "tls", "metricsListen", "table", "capture", "tickMs", "interfaces", ...FORWARDER_KEYS]);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function positiveInt(v: unknown, field: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new WorkerConfigError(`${field}: must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

export function parseWorkerConfig(value: unknown): WorkerConfig {
  if (!isObject(value)) throw new WorkerConfigError("the configuration must be a YAML mapping");
  for (const k of Object.keys(value)) if (!TOP_KEYS.has(k)) throw new WorkerConfigError(`${k}: unknown key`);
  const workerId = value.workerId;
  if (typeof workerId !== "string" || workerId === "") throw new WorkerConfigError("workerId: required, a non-empty string");
  const engines = value.engines ?? [];
  if (!Array.isArray(engines) || engines.some((e) => typeof e !== "string" || !/^((\[[^\]]+\]|[^:\s]+):\d+|unix:\S+)$/.test(e))) {
    throw new WorkerConfigError("engines: must be a list of HOST:PORT, [IPv6]:PORT or unix:PATH");
  }
  const metricsListen = value.metricsListen ?? "127.0.0.1:9047";
  if (typeof metricsListen !== "string") throw new WorkerConfigError("metricsListen: must be HOST:PORT");
  if (value.table !== undefined && typeof value.table !== "string") throw new WorkerConfigError("table: must be a file path");
  const capture = value.capture ?? {};
  if (!isObject(capture)) throw new WorkerConfigError("capture: must be a mapping");
  const interfaces = value.interfaces;
  if (!Array.isArray(interfaces) || interfaces.length === 0) throw new WorkerConfigError("interfaces: required, a non-empty list");
  const parsedInterfaces = interfaces.map((i, n): WorkerInterfaceConfig => {
    if (!isObject(i) || typeof i.name !== "string" || i.name === "") throw new WorkerConfigError(`interfaces[${n}].name: required`);
    if (i.mac !== undefined && typeof i.mac !== "string") throw new WorkerConfigError(`interfaces[${n}].mac: must be a MAC address`);
    return { ...i } as unknown as WorkerInterfaceConfig;
  });
  const forwarder: Record<string, unknown> = {};
  for (const k of FORWARDER_KEYS) if (value[k] !== undefined) forwarder[k] = value[k];
  return {
    workerId, engines: engines as string[], tls: parseTlsConfig(value.tls, "tls", (m) => new WorkerConfigError(m)), metricsListen, table: value.table as string | undefined,
    capture: {
      backend: captureBackend(capture.backend),
      bufferBytes: positiveInt(capture.bufferBytes, "capture.bufferBytes", 64 << 20),
      maxBatch: positiveInt(capture.maxBatch, "capture.maxBatch", 1024),
    },
    tickMs: positiveInt(value.tickMs, "tickMs", 200),
    interfaces: parsedInterfaces,
    forwarder,
  };
}

function captureBackend(v: unknown): "ring" | "cap" {
  if (v === undefined) return "ring";
  if (v !== "ring" && v !== "cap") throw new WorkerConfigError(`capture.backend: must be 'ring' or 'cap', got ${JSON.stringify(v)}`);
  return v;
}

export function loadWorkerConfig(path: string): WorkerConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new WorkerConfigError(`${path}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = parse(text);
  } catch (e) {
    throw new WorkerConfigError(`${path}: not YAML: ${(e as Error).message}`);
  }
  return parseWorkerConfig(value);
}
