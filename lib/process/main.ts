// What every mip46 daemon does around its work: wait for SIGTERM/SIGINT, and turn the outcome
// of main() into an exit code with a JSON log line for an unexpected failure. While it runs:
// - SIGHUP reads the configuration file again and checks it. A daemon whose start() answers a
//   reload() applies the changed keys it can (the engine: services/engine/engine.ts RELOADABLE);
//   the daemon logs whether the file is refused, unchanged, which keys were applied, and which
//   changed and need a restart (before, SIGHUP's default action ended the process);
// - SIGUSR2 switches the log to debug and back (SIGUSR1 is Node's, it starts the inspector).
import { parseArgs } from "node:util";
import { createLogger, levelFromEnv, type Level, type LevelControl, type Logger } from "../log.js";
import { routeGrpcLogs } from "./grpc-log.js";
import { versionLine } from "./version.js";
import { ConfigFieldError } from "../config/schema.js";

/** Resolves with the signal's name when SIGTERM or SIGINT arrives (logged as "stopping"). */
export function stopSignal(log: Logger): Promise<string> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      log.info("stopping", { signal });
      resolve(signal);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

/** Runs main() and exits with its code; an exception is logged as `<name> failed` and exits 1. */
export function runMain(name: string, main: () => Promise<number>): void {
  try {
    levelFromEnv();
  } catch (e) {
    process.stderr.write(`mip46-${name}: ${(e as Error).message}\n`);
    process.exit(2);
  }
  main().then((code) => process.exit(code), (e) => {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: "error", msg: `${name} failed`, error: String(e?.stack ?? e) })}\n`);
    process.exit(1);
  });
}

/** The daemon's own flags beyond --config, --metrics-listen, --check, --version and --help. */
export type DaemonFlags = Record<string, { type: "string" | "boolean" }>;
/** The flags as parsed: a string or a boolean by the flag's type, absent when not given. */
export type DaemonArgs = Record<string, string | boolean | undefined>;

/** A string flag's value; undefined when it was not given. */
export function stringFlag(args: DaemonArgs, name: string): string | undefined {
  const v = args[name];
  return typeof v === "string" ? v : undefined;
}

export interface ConfiguredDaemon<C> {
  /** The log's component and the name in messages ("agent", "home-agent"). */
  component: string;
  /** The name in "<role> could not start"; `component` when absent. */
  role?: string;
  help: string;
  flags?: DaemonFlags;
  /**
   * A way of running without a configuration file (the worker's --offline): when it gives an
   * exit code, that is the daemon's; undefined goes on as usual.
   */
  instead?(args: DaemonArgs, log: Logger): Promise<number | undefined>;
  /** Reads the configuration file; throws an error `isConfigError` recognises when it is refused. */
  load(path: string, args: DaemonArgs): C;
  /** Default: a ConfigFieldError (lib/config/schema.ts). */
  isConfigError?(e: unknown): boolean;
  /** The settings whose `metricsListen` the `--metrics-listen` flag overrides. */
  metricsOf(config: C): { metricsListen: string };
  /** Applies the daemon's own flags that override the file. */
  override?(config: C, args: DaemonArgs): void;
  /** Starts the daemon; resolves once it is ready. */
  start(config: C, log: Logger): Promise<Running<C>>;
}

/** A started daemon: stop(), and reload() when it applies keys of a reread configuration in place. */
export interface Running<C> {
  stop(): Promise<void>;
  /** Applies what it can of `changed` (dotted keys of `fresh`); answers what it applied and what needs a restart. */
  reload?(fresh: C, changed: string[]): { applied: string[]; restart: string[] };
}

/**
 * The main() of a daemon that takes `--config FILE [--metrics-listen H:P]`: parses the flags,
 * loads the configuration (a refusal is logged as "configuration refused", exit 1), starts it,
 * and stops it on SIGTERM/SIGINT. Exit 2 for a usage error.
 */
export async function configuredDaemon<C>(d: ConfiguredDaemon<C>, argv = process.argv.slice(2)): Promise<number> {
  let args: DaemonArgs;
  try {
    args = parseArgs({
      args: argv, strict: true,
      options: {
        ...d.flags,
        config: { type: "string" }, "metrics-listen": { type: "string" }, check: { type: "boolean" }, version: { type: "boolean" }, help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${d.help}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(d.help + "\n");
    return 0;
  }
  if (args.version) {
    process.stdout.write(versionLine(`mip46-${d.component}`) + "\n");
    return 0;
  }
  const log = createLogger({ component: d.component });
  routeGrpcLogs(log);
  const code = await d.instead?.(args, log);
  if (code !== undefined) return code;
  const path = stringFlag(args, "config");
  if (path === undefined) {
    process.stderr.write(`--config is required\n\n${d.help}\n`);
    return 2;
  }
  let config: C;
  try {
    config = d.load(path, args);
  } catch (e) {
    if (d.isConfigError ? d.isConfigError(e) : e instanceof ConfigFieldError) {
      log.error("configuration refused", { error: (e as Error).message });
      return 1;
    }
    throw e;
  }
  if (args.check) return checked(path);
  const metricsListen = stringFlag(args, "metrics-listen");
  if (metricsListen !== undefined) d.metricsOf(config).metricsListen = metricsListen;
  d.override?.(config, args);
  // Before the start: a SIGHUP while the daemon starts must not end it (SIGHUP's default action);
  // one then is checked and nothing applied.
  let running: Running<C> | undefined;
  const reread = () => reloadCheck(d, path, args, config, log, running);
  const startLevel = log.level;
  const toggle = () => switchLogLevel(log, startLevel);
  process.on("SIGHUP", reread);
  process.on("SIGUSR2", toggle);
  try {
    running = await d.start(config, log);
  } catch (e) {
    log.error(`${d.role ?? d.component} could not start`, { error: (e as Error).message });
    return 1;
  }
  await stopSignal(log);
  process.off("SIGHUP", reread);
  process.off("SIGUSR2", toggle);
  await running.stop();
  return 0;
}

/** SIGHUP: the file read and checked again; what changed is named, and applied where `daemon` can (answers the keys left for a restart). */
export function reloadCheck<C>(d: ConfiguredDaemon<C>, path: string, args: DaemonArgs, running: C, log: Logger, daemon?: Running<C>): string[] {
  let fresh: C;
  try {
    fresh = d.load(path, args);
  } catch (e) {
    log.error("configuration reload refused; the running configuration stays", { path, error: (e as Error).message });
    return [];
  }
  const metricsListen = stringFlag(args, "metrics-listen");
  if (metricsListen !== undefined) d.metricsOf(fresh).metricsListen = metricsListen;
  d.override?.(fresh, args);
  let changed = changedKeys(running, fresh);
  if (changed.length === 0) {
    log.info("configuration reread: unchanged", { path });
    return changed;
  }
  if (daemon?.reload) {
    const { applied, restart } = daemon.reload(fresh, changed);
    if (applied.length > 0) log.info("configuration reloaded: changed keys applied", { path, applied });
    changed = restart;
  }
  if (changed.length > 0) log.warn("configuration reread: changed keys take effect at the next restart", { path, changed });
  return changed;
}

/** The dotted paths (objects descended, lists compared whole) where `a` and `b` differ. */
export function changedKeys(a: unknown, b: unknown, prefix = ""): string[] {
  const plain = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
  if (plain(a) && plain(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => changedKeys(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  const text = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x instanceof Uint8Array ? [...x] : x));
  return text(a) === text(b) ? [] : [prefix || "(the whole file)"];
}

/** SIGUSR2: debug on; again, back to the level the process started with (info if that was debug). */
export function switchLogLevel(log: Logger & LevelControl, startLevel: Level): void {
  log.setLevel(log.level !== "debug" ? "debug" : startLevel !== "debug" ? startLevel : "info");
  log.info("log level", { logLevel: log.level });
}

/** The whole main of a daemon: configuredDaemon, its exit code and its failure line (runMain). */
export function runDaemon<C>(d: ConfiguredDaemon<C>): void {
  runMain(d.component, () => configuredDaemon(d));
}

/** --check: the configuration was read and accepted; nothing is started (kea-dhcp4 -t, nginx -t). */
export function checked(path: string): number {
  process.stdout.write(`configuration OK: ${path}\n`);
  return 0;
}

/** The lines --help adds for --check and --version. */
export const CHECK_VERSION_HELP = `  --check                  read and check the configuration, then exit (0: accepted, 1: refused)
  --version                print the version and exit`;
