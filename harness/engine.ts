// Starts real engines for tests: in this process on port 0, or as a child process (for kill -9).
import type { ChildProcess } from "node:child_process";
import { spawnUntilReady } from "../lib/process/spawn.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { connectControl, type ControlClient } from "../clients/control.js";
import { parseConfig } from "../services/config/config.js";
import { runEngine, type RunningEngine } from "../services/engine/run.js";
import { type Logger, silentLogger } from "../lib/log.js";

/** The lab plan of shared/paper.md, with settings tests may override. */
export function labConfig(dir: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: "127.0.0.1:0",
    metricsListen: "127.0.0.1:0",
    store: { kind: "sqlite", path: join(dir, "engine.db") },
    pool: { name: "engine", prefix: "198.51.100.0/24", exclude: ["198.51.100.1"] },
    segments: [{ name: "ipv4-lab", network: "192.0.2.0/24", prefix: "2001:db8:3::/96", careOfRange: "192.0.2.100-192.0.2.199" }],
    ipv6Networks: [{ name: "ipv6-lab", network: "2001:db8:1::/64" }],
    translation: { prefix: "2001:db8:64::/96", icmpErrorSource: "198.51.100.1" },
    leases: { lifetimeSeconds: 600, cooldownSeconds: 60 },
    hosts: { heartbeatIntervalSeconds: 1, downAfterSeconds: 3 },
    migration: { highWatermark: 0.85, lowWatermark: 0.7, windowSeconds: 0, vmCooldownSeconds: 300 },
    ...overrides,
  };
}

export interface TestEngine {
  dir: string;
  running: RunningEngine;
  client: ControlClient;
  address: string;
  stop(): Promise<void>;
}

export function tempDir(prefix = "mip46-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startTestEngine(overrides: Record<string, unknown> = {}, dir = tempDir(), log: Logger = silentLogger): Promise<TestEngine> {
  const config = parseConfig(labConfig(dir, overrides));
  const running = await runEngine(config, log);
  const address = `127.0.0.1:${running.grpcPort}`;
  const client = connectControl(address);
  return {
    dir, running, client, address,
    async stop() {
      client.close();
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ChildEngine {
  child: ChildProcess;
  address: string;
  metricsPort: number;
  client: ControlClient;
  /** The configuration file it was started with (a test may rewrite it and send SIGHUP). */
  configPath: string;
  /** Everything it wrote to stderr so far (its JSON log lines). */
  log(): string;
}

/** Runs bin/mip46-engine.js as its own process and waits for its "engine started" log line. */
export async function spawnEngine(dir: string, overrides: Record<string, unknown> = {}): Promise<ChildEngine> {
  const configPath = join(dir, "engine.yaml");
  writeFileSync(configPath, stringify(labConfig(dir, overrides)));
  const { child, ready, log } = await spawnUntilReady<{ grpcPort: number; metricsPort: number }>(
    process.execPath, ["bin/mip46-engine.js", "--config", configPath], "engine started");
  const address = `127.0.0.1:${ready.grpcPort}`;
  return { child, address, metricsPort: ready.metricsPort, client: connectControl(address), configPath, log };
}

/** A daemon's JSON log line, with the fields tests look at. */
export type LogLine = { level: string; msg: string; changed?: string[]; applied?: string[]; error?: string; logLevel?: string };

/** The JSON lines of a daemon's stderr. */
export function logLines(log: string): LogLine[] {
  return log.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine);
}

/** The first log line after the `from`th that `pred` accepts, as soon as it is written (at most `ms`). */
export async function waitForLogLine(log: () => string, from: number, pred: (l: LogLine) => boolean, ms = 10_000): Promise<LogLine> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const l = logLines(log()).slice(from).find(pred);
    if (l) return l;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no such log line; the log:\n${log()}`);
}

export function killHard(e: ChildEngine): Promise<void> {
  e.client.close();
  return new Promise((resolve) => {
    if (e.child.exitCode !== null || e.child.signalCode !== null) return resolve();
    e.child.once("exit", () => resolve());
    e.child.kill("SIGKILL");
  });
}

/** A heartbeat that puts a host on the IPv6 lab network (2001:db8:1::/64) or the IPv4 segment. */
export function hostOn(family: 4 | 6, hostId: string, n = 10) {
  return {
    hostId,
    addresses: family === 6 ? [`2001:db8:1::${n}/64`] : [`192.0.2.${n}/24`],
    resources: { cpuUsedCores: 1, cpuTotalCores: 8, memoryUsedBytes: 1n << 30n, memoryTotalBytes: 16n << 30n },
    vms: [],
  };
}

/**
 * Flow 3.1 in the engine alone: hosts h6 (IPv6) and h4 (IPv4, the home) beat, then VM `vmId` with
 * home address `home` gets its care-of addresses at h6 and registers its move there from h4.
 */
export async function awayFromHome(client: ControlClient, vmId = "sv", home = "192.0.2.1") {
  await client.heartbeat(hostOn(6, "h6"));
  await client.heartbeat(hostOn(4, "h4"));
  const careOf = await client.allocateCareOf({ hostId: "h6", vmId, homeAddress: home });
  const migration = await client.registerMigration({ vmId, homeAddress: home, homeAgent: "192.0.2.2", sourceHostId: "h4", destinationHostId: "h6", careOfIpv4: careOf.careOfIpv4, careOfIpv6: careOf.careOfIpv6 });
  return { careOf, migration };
}

/**
 * Everything the engine stores, as operators see it (the List RPCs and the rule table), as one
 * comparable text: a refused request must leave it unchanged. Heartbeat times are left out.
 */
export async function storedState(client: ControlClient): Promise<string> {
  const [pools, leases, bindings, hosts, rules, migrations] = await Promise.all([
    client.listPools({}), client.listLeases({}), client.listBindings({}), client.listHosts({}), client.getRuleTable({}), client.listMigrations({}),
  ]);
  return JSON.stringify({ pools, leases, bindings, hosts: hosts.hosts.map((h) => ({ ...h, lastSeenMs: 0 })), rules, migrations },
    (_k, v) => (typeof v === "bigint" ? v.toString() : v));
}

/** The gRPC status of a call that must fail. */
export async function failure(p: Promise<unknown>): Promise<{ code: number; details: string; reason?: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code: number; details: string; metadata?: { get(key: string): unknown[] } };
    const reason = err.metadata?.get("mip46-reason")[0];
    return { code: err.code, details: err.details, ...(typeof reason === "string" ? { reason } : {}) };
  }
  throw new Error("call succeeded, but an error was expected");
}
