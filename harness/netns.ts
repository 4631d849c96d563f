// Network namespaces and veth pairs for live tests and benchmarks. Every name carries a short
// random id (prefix "m46-"), so parallel runs never collide; namespaces get only documentation
// addresses and are linked to each other only, never to the root namespace, so no packet can leave
// them. Everything created is removed by destroy(), which tests register with t.teardown (ava
// runs teardowns after failures too).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { spawnUntilReady, type Started } from "../lib/process/spawn.js";

export interface ExecResult { stdout: string; stderr: string }

/** Runs a command and resolves with its output; rejects with the output when it fails. */
export function run(argv: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0], argv.slice(1), { timeout: options.timeoutMs ?? 30_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${argv.join(" ")} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** True when this process may create namespaces (root, iproute2 present). */
export function netnsAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  return existsSync("/proc/self/ns/net") && ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].some((p) => existsSync(p));
}

export interface Teardown { teardown(fn: () => void | Promise<void>): void }

export class NetnsLab {
  readonly id = randomBytes(3).toString("hex");
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  /** A lab whose destroy() is registered with the test's teardown. */
  static create(t?: Teardown): NetnsLab {
    const lab = new NetnsLab();
    t?.teardown(() => lab.destroy());
    return lab;
  }

  /** Creates namespace "m46-<id>-<role>" with loopback up; returns its name. */
  async addNamespace(role: string): Promise<string> {
    const name = `m46-${this.id}-${role}`;
    await run(["ip", "netns", "add", name]);
    this.namespaces.push(name);
    await this.exec(name, ["ip", "link", "set", "lo", "up"]);
    return name;
  }

  /** A veth pair with one end in each namespace, both up. */
  async addVethPair(nsA: string, ifA: string, nsB: string, ifB: string, mtu = 1500): Promise<void> {
    await run(["ip", "link", "add", ifA, "netns", nsA, "mtu", String(mtu), "type", "veth", "peer", "name", ifB, "netns", nsB, "mtu", String(mtu)]);
    await this.exec(nsA, ["ip", "link", "set", ifA, "up"]);
    await this.exec(nsB, ["ip", "link", "set", ifB, "up"]);
  }

  exec(ns: string, argv: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return run(["ip", "netns", "exec", ns, ...argv], options);
  }

  /** Writes a sysctl inside a namespace (e.g. "net.ipv4.ip_forward", "0"). */
  sysctl(ns: string, key: string, value: string): Promise<ExecResult> {
    return this.exec(ns, ["sysctl", "-q", "-w", `${key}=${value}`]);
  }

  async mac(ns: string, ifName: string): Promise<string> {
    return (await this.exec(ns, ["cat", `/sys/class/net/${ifName}/address`])).stdout.trim();
  }

  /** Interface counters (rx/tx packets and drops) from sysfs inside the namespace. */
  async counters(ns: string, ifName: string): Promise<{ rxPackets: number; txPackets: number; rxDropped: number }> {
    const { stdout } = await this.exec(ns, ["sh", "-c",
      `cd /sys/class/net/${ifName}/statistics && cat rx_packets tx_packets rx_dropped`]);
    const [rxPackets, txPackets, rxDropped] = stdout.trim().split(/\s+/).map(Number);
    return { rxPackets, txPackets, rxDropped };
  }

  /** Starts a process in a namespace; it is killed by destroy() if still running. */
  spawn(ns: string, argv: string[], stdio: "ignore" | "pipe" = "pipe"): ChildProcess {
    const child = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", stdio, stdio] });
    this.track(child);
    return child;
  }

  /** Starts a mip46 executable in a namespace and waits for its ready log line. */
  async spawnUntilReady<T = Record<string, unknown>>(ns: string, argv: string[], readyMsg: string, timeoutMs = 30_000): Promise<Started<T>> {
    const started = await spawnUntilReady<T>("ip", ["netns", "exec", ns, ...argv], readyMsg, timeoutMs);
    this.track(started.child);
    return started;
  }

  /** Kills `child` in destroy() if it is still running. */
  track(child: ChildProcess): void {
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
  }

  /** Stops a child: SIGTERM, then SIGKILL after graceMs. */
  static stop(child: ChildProcess, graceMs = 5_000): Promise<void> {
    return new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill("SIGTERM");
    });
  }

  /** Kills what it started and deletes its namespaces (their veths go with them). Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all([...this.children].map((c) => NetnsLab.stop(c, 2_000)));
    // A process still inside a namespace would keep it alive after `ip netns del`; kill stragglers.
    for (const ns of this.namespaces) {
      try {
        const { stdout } = await run(["ip", "netns", "pids", ns]);
        for (const pid of stdout.split(/\s+/).filter(Boolean)) {
          try { process.kill(Number(pid), "SIGKILL"); } catch { /* already gone */ }
        }
      } catch { /* namespace already gone */ }
    }
    for (const ns of this.namespaces.reverse()) {
      await run(["ip", "netns", "del", ns]).catch(() => undefined);
    }
  }
}

/** Namespaces left over by a crashed run (for a cleanup script): names starting "m46-". */
export async function strayNamespaces(): Promise<string[]> {
  const { stdout } = await run(["ip", "netns", "list"]);
  return stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith("m46-"));
}
