// The hypervisor side of the agent: which VM ports sit on which bridge (a VM arriving or leaving
// is a port joining or leaving a bridge, as libvirt and Open vSwitch report it), and the hook
// that carries out a migration. Behind small interfaces, so the agent's logic runs the same in
// tests.
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export type Bridge = "home" | "visitor";

export interface PortEvent {
  kind: "attached" | "detached";
  port: string;
  bridge: Bridge;
  /** The port's own MAC (lower case), when known: a VM configured without a port name is known by it. */
  mac?: string;
  /** Date.now() when the change was seen. */
  seenAtMs: number;
}

export interface PortState {
  port: string;
  bridge: Bridge;
  mac?: string;
}

export interface PortWatcher {
  /** The ports on each bridge now. */
  current(): PortState[];
  start(listener: (e: PortEvent) => void): void;
  stop(): void;
}

/**
 * Reads /sys/class/net/<bridge>/brif when the kernel says a link changed: `ip -o monitor link`
 * (iproute2) prints a line per RTM_NEWLINK / RTM_DELLINK, which a port joining or leaving a
 * bridge, or a tap coming or going, causes. Idle, it costs nothing; a rescan every second stays
 * as a safety net. Where the monitor cannot run, it polls every `pollMs` as before.
 */
export class SysfsPortWatcher implements PortWatcher {
  private timer?: NodeJS.Timeout;
  private monitor?: ChildProcess;
  private scanQueued = false;
  private stopped = false;
  private last = new Map<string, PortState>();

  constructor(private readonly bridges: { home: string; visitor: string }, private readonly pollMs: number, private readonly ignore: ReadonlySet<string>, private readonly useMonitor = true) {}

  private scan(): Map<string, PortState> {
    const now = new Map<string, PortState>();
    for (const bridge of ["home", "visitor"] as const) {
      let names: string[] = [];
      try {
        names = readdirSync(`/sys/class/net/${this.bridges[bridge]}/brif`);
      } catch {
        names = [];
      }
      for (const port of names) {
        if (this.ignore.has(port)) continue;
        let mac: string | undefined;
        try {
          mac = readFileSync(`/sys/class/net/${port}/address`, "utf8").trim().toLowerCase();
        } catch {
          mac = undefined;
        }
        now.set(port, { port, bridge, ...(mac ? { mac } : {}) });
      }
    }
    return now;
  }

  current(): PortState[] {
    return [...this.scan().values()];
  }

  start(listener: (e: PortEvent) => void): void {
    this.last = this.scan();
    const rescan = () => {
      this.scanQueued = false;
      if (this.stopped) return;
      const now = this.scan();
      const t = Date.now();
      for (const [port, p] of this.last) if (now.get(port)?.bridge !== p.bridge) listener({ kind: "detached", ...p, seenAtMs: t });
      for (const [port, p] of now) if (this.last.get(port)?.bridge !== p.bridge) listener({ kind: "attached", ...p, seenAtMs: t });
      this.last = now;
    };
    const poll = (ms: number) => {
      clearInterval(this.timer);
      this.timer = setInterval(rescan, ms);
    };
    if (!this.useMonitor) return poll(this.pollMs);
    poll(Math.max(this.pollMs, 1000));
    const monitor = spawn("ip", ["-o", "monitor", "link"], { stdio: ["ignore", "pipe", "ignore"] });
    this.monitor = monitor;
    monitor.stdout!.on("data", () => {
      if (this.scanQueued) return;
      this.scanQueued = true;
      setImmediate(rescan);
    });
    const fallBack = () => {
      if (this.stopped || this.monitor !== monitor) return;
      this.monitor = undefined;
      poll(this.pollMs);
    };
    monitor.on("error", fallBack);
    monitor.on("exit", fallBack);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    const m = this.monitor;
    this.monitor = undefined;
    m?.kill();
  }
}

export interface MigrationHook {
  /** Moves `vmId` to `hostId`; resolves when the hypervisor is done (or rejects with why not). */
  migrate(vmId: string, hostId: string): Promise<void>;
}

/** Runs the configured command with {vm} and {host} replaced (in the lab: the lab's migrate command). */
export class CommandMigrationHook implements MigrationHook {
  constructor(private readonly argv: string[]) {}

  migrate(vmId: string, hostId: string): Promise<void> {
    const argv = this.argv.map((a) => a.replaceAll("{vm}", vmId).replaceAll("{host}", hostId));
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.on("data", (d) => (err += String(d)));
      child.on("error", reject);
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(" ")} exited with ${code}: ${err.trim().slice(-500)}`))));
    });
  }
}
