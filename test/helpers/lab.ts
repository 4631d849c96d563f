// Helpers for tests against the whole lab (deploy/lab): one running lab per test file with a
// prefix of its own, the session apps of deploy/lab/apps, metrics read through the management
// namespace, the processes' JSON logs, and waits that end with an error naming what never came.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { TestFn } from "ava";
import { REPO, labMetrics, labRpc, openLabRpc, startLab, type LabRpc, type RunningLab } from "../../deploy/lab/lab.js";
import { LAB_ENDPOINTS } from "../../deploy/lab/configs.js";
import { destroyLab, exec, spawnIn } from "../../deploy/lab/netns.js";
import { GUEST_DIR } from "../../deploy/lab/qemu.js";
import type { HostRole, LabNamespace } from "../../deploy/lab/topology.js";
import { netnsAvailable } from "../../harness/netns.js";

export { labRpc, LAB_ENDPOINTS };

/** Why the lab cannot run here, or undefined when it can (root, network namespaces, iproute2, the workers built, the guest image). */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root";
  if (!netnsAvailable()) return "needs network namespaces and iproute2";
  if (!existsSync(join(REPO, "dist/mip46-dataplane.mjs"))) return "the workers are not built: run bash scripts/build.sh";
  // Every lab boots its VMs as QEMU guests.
  if (!existsSync(join(GUEST_DIR, "initrd.gz"))) return `no guest image in ${GUEST_DIR}: run bash scripts/setup.sh`;
  return undefined;
}

/** A prefix no other lab uses: "m46t" (or MIP46_LAB_PREFIX, for runs side by side with others) and 4 hex digits. */
export function uniqueLabPrefix(): string {
  return `${process.env.MIP46_LAB_PREFIX || "m46t"}${randomBytes(2).toString("hex")}`;
}

export interface LabHandle {
  readonly prefix: string;
  /** The running lab; throws before `test.before` has started it. */
  readonly lab: RunningLab;
  /** Processes started through the handle, ended in `test.after.always` before the lab. */
  track(child: ChildProcess): void;
  /** Runs `fn` in `test.after.always`, after the tracked processes end and before the lab stops. */
  onStop(fn: () => Promise<void> | void): void;
  /**
   * An engine RPC, as labRpc, through one helper kept open in the management namespace
   * (openLabRpc): labRpc starts node and tsx for every call, seconds on a loaded machine.
   */
  rpc<T = Record<string, unknown>>(method: string, request?: Record<string, unknown>): Promise<T>;
}

/**
 * Starts one lab for the test file in `test.before` and always stops it in `test.after.always`,
 * pass or fail. Call at the top of the file, only when `labUnavailable()` is undefined.
 * `thirdHost`: the lab has the third host h6b (startLab's option).
 */
export function useLab(test: TestFn<any>, options: { thirdHost?: boolean } = {}): LabHandle {
  const prefix = uniqueLabPrefix();
  let running: RunningLab | undefined;
  const children = new Set<ChildProcess>();
  const cleanups: (() => Promise<void> | void)[] = [];
  let rpc: LabRpc | undefined;
  test.before(async () => {
    running = await startLab({ prefix, thirdHost: options.thirdHost });
  });
  test.after.always(async () => {
    rpc?.close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch(() => undefined);
    // MIP46_LAB_LOGS=<dir> keeps the processes' logs, which go with the lab otherwise.
    const keep = process.env.MIP46_LAB_LOGS;
    if (running && keep) {
      mkdirSync(keep, { recursive: true });
      for (const f of readdirSync(running.dir)) if (f.endsWith(".log")) copyFileSync(join(running.dir, f), join(keep, `${prefix}-${f}`));
    }
    if (running) await running.stop();
    else await destroyLab(prefix).catch(() => undefined);
  });
  return {
    prefix,
    get lab() {
      if (running === undefined) throw new Error(`lab ${prefix} is not running`);
      return running;
    },
    rpc<T>(method: string, request: Record<string, unknown> = {}) {
      rpc ??= openLabRpc(prefix);
      return rpc.call<T>(method, request);
    },
    onStop(fn) {
      cleanups.push(fn);
    },
    track(child) {
      children.add(child);
      child.once("exit", () => children.delete(child));
    },
  };
}

// ------------------------------------------------------------------------------------ waiting

export class WaitTimeout extends Error {
  override name = "WaitTimeout";
}

/** Calls `probe` every `intervalMs` until it returns something other than undefined/false. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) throw new WaitTimeout(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ""}`);
    await sleep(intervalMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------ logs

export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

/** A lab process's log (`<lab dir>/<name>.log`), read from `from` (a byte offset) on. */
export function logPath(lab: RunningLab, name: string): string {
  return join(lab.dir, `${name}.log`);
}

export function logSize(path: string): number {
  return existsSync(path) ? readFileSync(path).length : 0;
}

/** The JSON records of a log after byte `from`; lines that are not JSON are skipped. */
export function readLog(path: string, from = 0): LogRecord[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path).subarray(from).toString("utf8");
  const out: LogRecord[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as LogRecord);
    } catch { /* a line being written */ }
  }
  return out;
}

/** Waits for the first record after `from` that `match` accepts. */
export function waitForLog(path: string, what: string, match: (r: LogRecord) => boolean, from = 0, timeoutMs = 10_000): Promise<LogRecord> {
  return waitFor(`${what} in ${path}`, () => readLog(path, from).find(match), timeoutMs);
}

/** The agent's "handover" record for `vmId` after `from` (ok or not: the caller checks `ok`). */
export function waitForHandover(lab: RunningLab, host: HostRole, vmId: string, from: number, timeoutMs = 10_000): Promise<LogRecord> {
  return waitForLog(logPath(lab, `agent-${host}`), `the handover of ${vmId}`, (r) => r.msg === "handover" && r.vmId === vmId, from, timeoutMs);
}

// ------------------------------------------------------------------------------------ metrics

/** Prometheus text exposition: one sample per `name{labels}` exactly as printed. */
export type Samples = Map<string, number>;

/** Scrapes `endpoint` (a LAB_ENDPOINTS value) from the management namespace (deploy/lab's labMetrics). */
export function readMetrics(prefix: string, endpoint: string): Promise<Samples> {
  return labMetrics(prefix, endpoint);
}

/** One sample, e.g. metric(s, "mip46_home_agent_bindings", { protocol: "mip4" }); 0 when absent. */
export function metric(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  for (const [key, value] of samples) {
    const brace = key.indexOf("{");
    if ((brace < 0 ? key : key.slice(0, brace)) !== name) continue;
    const got = new Map([...key.slice(brace + 1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (want.every(([k, v]) => got.get(k) === v)) return value;
  }
  return 0;
}

// ------------------------------------------------------------------------------------ sessions

const SESSION_APP = join(REPO, "deploy/lab/apps/session.mjs");

/** A process whose stdout is JSON lines, with every line kept. */
class JsonLines {
  readonly lines: Record<string, unknown>[] = [];
  readonly stderr: string[] = [];
  private readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess, readonly label: string) {
    createInterface({ input: child.stdout! }).on("line", (l) => {
      try {
        this.lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        this.stderr.push(l);
      }
    });
    createInterface({ input: child.stderr! }).on("line", (l) => this.stderr.push(l));
    this.exited = new Promise((r) => child.once("exit", (code) => r(code)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first line from index `from` on that `match` accepts. */
  waitForLine(what: string, match: (l: Record<string, unknown>) => boolean, timeoutMs: number, from = 0): Promise<Record<string, unknown>> {
    return waitFor(`${this.label}: ${what}`, () => {
      const l = this.lines.slice(from).find(match);
      if (l) return l;
      if (!this.running) throw new Error(`${this.label} exited (${this.child.exitCode ?? this.child.signalCode}); stderr: ${this.stderr.join(" | ").slice(-500)}`);
      return undefined;
    }, timeoutMs, 20);
  }

  async end(): Promise<number | null> {
    if (this.running) this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 3_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** The echo service of session.mjs in a VM. */
export class SessionServer extends JsonLines {
  static async start(handle: LabHandle, ns: LabNamespace, port: number): Promise<SessionServer> {
    const child = spawnIn(handle.prefix, ns, [process.execPath, SESSION_APP, "server", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
    handle.track(child);
    const s = new SessionServer(child, `server in ${ns}:${port}`);
    await s.waitForLine("its listening line", (l) => l.listening === port, 10_000);
    return s;
  }
}

/** What session.mjs prints every second (and once more as the summary). */
export interface SessionStatus {
  connected: boolean;
  sent: number;
  echoed: number;
  outstanding: number;
  mismatches: number;
  /** The longest wait between echoes since the start. */
  maxGapMs: number;
  /** The longest wait between echoes since the previous status line (about 1 s). */
  gapMs: number;
  local: string;
  remote: string;
  error: string;
  summary?: boolean;
}

/** The checking client of session.mjs in a client namespace. */
export class SessionClient extends JsonLines {
  /** The local and remote address:port of the connection when it opened. */
  local = "";
  remote = "";

  static async start(handle: LabHandle, ns: LabNamespace, host: string, port: number, intervalMs = 20): Promise<SessionClient> {
    const child = spawnIn(handle.prefix, ns, [process.execPath, SESSION_APP, "client", host, String(port), String(intervalMs)], { stdio: ["ignore", "pipe", "pipe"] });
    handle.track(child);
    const c = new SessionClient(child, `client in ${ns} to ${host}:${port}`);
    // A bound for a loaded machine: TCP retries a lost SYN after 1, 3 and 7 s.
    const l = await c.waitForLine("its connected line", (x) => x.connected === true && x.sent === undefined, 20_000);
    c.local = String(l.local);
    c.remote = String(l.remote);
    return c;
  }

  /** The newest status line, or undefined before the first. */
  latest(): SessionStatus | undefined {
    for (let i = this.lines.length - 1; i >= 0; i--) if (typeof this.lines[i].sent === "number") return this.lines[i] as unknown as SessionStatus;
    return undefined;
  }

  /** Waits for a status line printed after this call, so its counts are from now or later. */
  async fresh(timeoutMs = 3_000): Promise<SessionStatus> {
    const l = await this.waitForLine("a status line", (x) => typeof x.sent === "number", timeoutMs, this.lines.length);
    return l as unknown as SessionStatus;
  }

  /** The longest wait between echoes in the status lines from index `from` (this.lines.length at the time) on. */
  gapSince(from: number): number {
    return Math.max(0, ...this.lines.slice(from).map((l) => (typeof l.gapMs === "number" ? l.gapMs : 0)));
  }

  /** Ends the client (SIGTERM) and returns its summary line and exit code. */
  async stop(): Promise<{ summary?: SessionStatus; code: number | null }> {
    const code = await this.end();
    const summary = this.lines.find((l) => l.summary === true) as SessionStatus | undefined;
    return { summary, code };
  }
}

// ------------------------------------------------------------------------------------ checks

/**
 * Checks that do not stop the test: ava 6 ends a test at its first failed assertion, but a lab
 * run is long and one broken step should not hide the state of the others. Each failure is
 * logged as it happens; `done()` fails the test with all of them.
 */
export class SoftChecks {
  readonly failures: string[] = [];

  constructor(private readonly t: { log(...values: unknown[]): void; deepEqual(a: unknown, b: unknown, message?: string): void }) {}

  true(ok: boolean, message: string): boolean {
    if (!ok) {
      this.failures.push(message);
      this.t.log(`FAILED: ${message}`);
    }
    return ok;
  }

  is(actual: unknown, wanted: unknown, message: string): boolean {
    return this.true(Object.is(actual, wanted), `${message}: got ${JSON.stringify(actual)}, wanted ${JSON.stringify(wanted)}`);
  }

  deepEqual(actual: unknown, wanted: unknown, message: string): boolean {
    return this.true(JSON.stringify(actual) === JSON.stringify(wanted), `${message}: got ${JSON.stringify(actual)}, wanted ${JSON.stringify(wanted)}`);
  }

  /** Runs a wait; a timeout becomes a failure instead of an exception. */
  async wait(promise: Promise<unknown>): Promise<boolean> {
    try {
      await promise;
      return true;
    } catch (e) {
      return this.true(false, (e as Error).message);
    }
  }

  done(): void {
    this.t.deepEqual(this.failures, [], `${this.failures.length} check(s) failed`);
  }
}

// ------------------------------------------------------------------------------------ session checks

/** A session seen at `earlier` and `now`: still the same connection, every echo right, still echoing. */
export function checkSession(t: SoftChecks, label: string, client: SessionClient, earlier: SessionStatus, now: SessionStatus): void {
  t.true(now.connected, `${label}: still connected (${JSON.stringify(now)})`);
  t.is(now.local, client.local, `${label}: the same connection (local end)`);
  t.is(now.remote, client.remote, `${label}: the same connection (remote end)`);
  t.is(now.mismatches, 0, `${label}: every echo came back whole and in order`);
  t.true(now.echoed > earlier.echoed, `${label}: echoes keep coming (${earlier.echoed} then ${now.echoed})`);
}

/** Stops the clients; each must print its summary: one connection from start to end, no wrong echo, exit 0. */
export async function endSessions(t: SoftChecks, clients: readonly { label: string; client: SessionClient }[]): Promise<void> {
  for (const x of clients) {
    const { summary, code } = await x.client.stop();
    t.true(summary !== undefined, `${x.label}: printed its summary`);
    if (summary) {
      t.true(summary.connected && summary.mismatches === 0, `${x.label}: summary ${JSON.stringify(summary)}`);
      t.is(`${summary.local} ${summary.remote}`, `${x.client.local} ${x.client.remote}`, `${x.label}: one connection from start to end`);
    }
    t.is(code, 0, `${x.label}: exits 0`);
  }
}
