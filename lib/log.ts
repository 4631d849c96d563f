// Structured logs: one JSON object a line on stderr, so journald and log shippers can parse them.
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** Fields never written as they are, wherever they sit in what is logged: keys (home-agent and
 * TLS), secrets, tokens, passwords. Byte arrays are redacted too: keys are held as bytes. */
const SECRET_FIELD = /^(key|keys|secret|token|password|passphrase|privateKey)$/i;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** MIP46_LOG_LEVEL, or info when it is unset; any other value is refused, naming the choices. */
export function levelFromEnv(value = process.env.MIP46_LOG_LEVEL): Level {
  if (value === undefined || value === "") return "info";
  if (Object.hasOwn(RANK, value)) return value as Level;
  throw new Error(`MIP46_LOG_LEVEL: '${value}' is not a log level (debug, info, warn or error)`);
}

/** A root logger's level, shared with its children, changed while the process runs (SIGUSR2). */
export interface LevelControl {
  readonly level: Level;
  setLevel(level: Level): void;
}

export function createLogger(
  base: Record<string, unknown> = {},
  minLevel: Level = levelFromEnv(),
  write: (line: string) => void = (line) => process.stderr.write(line + "\n"),
): Logger & LevelControl {
  if (!Object.hasOwn(RANK, minLevel)) throw new Error(`log level '${String(minLevel)}' is not one of debug, info, warn, error`);
  const state = { level: minLevel };
  const root = logger(base, state, write);
  return {
    ...root,
    get level() { return state.level; },
    setLevel(level: Level) {
      if (!Object.hasOwn(RANK, level)) throw new Error(`log level '${String(level)}' is not one of debug, info, warn, error`);
      state.level = level;
    },
  };
}

function logger(base: Record<string, unknown>, state: { level: Level }, write: (line: string) => void): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < RANK[state.level]) return;
    // A regular function: `this[k]` is the value before toJSON (a Buffer turns into an object first).
    write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields }, function (this: Record<string, unknown>, k: string, v: unknown) {
      const original = this[k];
      if (SECRET_FIELD.test(k) || original instanceof Uint8Array) return "[redacted]";
      return typeof v === "bigint" ? v.toString() : v instanceof Error ? { name: v.name, message: v.message } : v;
    }));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => logger({ ...base, ...fields }, state, write),
  };
}

export const silentLogger: Logger = createLogger({}, "error", () => {});
