// The lab with every mip46 process running for real (issue 4, part 5): the namespaces of
// netns.ts, the QEMU guests vm4 and vm6 of qemu.ts, the configurations of configs.ts, then the engine with its embedded store, the
// engine's data-plane worker, the home agents r1 and r2, and the agents of h4 and h6 (and h6b,
// the optional third host), each in its namespace. Processes run detached with their logs in the lab's folder, so `mip46-lab up` can
// return and `mip46-lab down` (or destroyLab) ends them with their namespaces.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { writeLabConfigs, type LabConfigFiles } from "./configs.js";
import { createLab, destroyLab, exec, labNamespaces, spawnIn } from "./netns.js";
import { addVm, waitGuestReady } from "./qemu.js";
import { DEFAULT_PREFIX, DEFAULT_VMS, LAB_PLAN, THIRD_HOST, labDir, namespaceName, type HostRole, type LabNamespace } from "./topology.js";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export { labDir };

export interface LabProcess {
  name: string;
  namespace: LabNamespace;
  pid: number;
  log: string;
}

export interface RunningLab {
  prefix: string;
  dir: string;
  files: LabConfigFiles;
  /** The hosts whose agents run: h4 and h6, and h6b in a lab with the third host. */
  hosts: HostRole[];
  processes: LabProcess[];
  /** Ends every process and removes the namespaces and the lab's folder. */
  stop(): Promise<void>;
}

/** Starts `argv` in a lab namespace, detached, logging to `log`; resolves once it logs `readyMsg`. */
export async function startLabProcess(prefix: string, ns: LabNamespace, name: string, argv: string[], readyMsg: string, log: string, timeoutMs = 30_000): Promise<LabProcess> {
  const fd = openSync(log, "a");
  const child = spawn("ip", ["netns", "exec", namespaceName(prefix, ns), ...argv], { stdio: ["ignore", fd, fd], detached: true, cwd: REPO });
  closeSync(fd);
  child.unref();
  let exited: string | undefined;
  child.once("exit", (code, signal) => (exited = String(code ?? signal)));
  const deadline = Date.now() + timeoutMs;
  const needle = `"msg":"${readyMsg}"`;
  for (;;) {
    const text = existsSync(log) ? readFileSync(log, "utf8") : "";
    if (text.includes(needle)) break;
    if (exited !== undefined) throw new Error(`${name} exited (${exited}) before it was ready; its log (${log}):\n${text.slice(-3000)}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${name} did not log "${readyMsg}" within ${timeoutMs} ms; its log (${log}):\n${text.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { name, namespace: ns, pid: child.pid!, log };
}

/**
 * Brings the whole lab up. On any failure everything made so far is removed again. With
 * `advice`, the agents carry out the engine's migration advice (a hot host moves a VM with
 * `mip46-lab migrate`); without it they only log it, so that a loaded machine, whose hosts all
 * look hot, does not move VMs under a test or the demo. With `thirdHost`, the third host h6b
 * (a second IPv6 host on net6) and its agent too; without it, no cost.
 */
export async function startLab(options: { prefix?: string; say?: (line: string) => void; advice?: boolean; thirdHost?: boolean } = {}): Promise<RunningLab> {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const say = options.say ?? (() => {});
  const dir = labDir(prefix);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const processes: LabProcess[] = [];
  const stop = async () => {
    await destroyLab(prefix);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    say(`creating namespaces (prefix ${prefix})`);
    await createLab({ prefix, thirdHost: options.thirdHost });
    // The guests boot (in parallel, TCG is slow) while the processes start; their taps are on
    // the bridges from QEMU's start, before the agents look.
    say(`booting guests ${DEFAULT_VMS.map((v) => v.name).join(", ")}`);
    await Promise.all(DEFAULT_VMS.map((vm) => addVm(prefix, vm, { wait: false })));
    const booted = Promise.all(DEFAULT_VMS.map((vm) => waitGuestReady(prefix, vm.name)));
    booted.catch(() => undefined);
    const node = process.execPath;
    const lab = [node, join(REPO, "bin/mip46-lab.js")];
    const files = writeLabConfigs(dir, prefix, options.advice ? [...lab, "migrate", "--prefix", prefix, "{vm}", "{host}"] : undefined, options.thirdHost ?? false);
    const bin = (name: string) => join(REPO, "bin", name);
    const start = async (ns: LabNamespace, name: string, argv: string[], ready: string) => {
      const p = await startLabProcess(prefix, ns, name, argv, ready, join(dir, `${name}.log`));
      processes.push(p);
      say(`  ${name.padEnd(16)} up in ${ns} (pid ${p.pid})`);
    };
    say("starting mip46 processes");
    await start("eng", "engine", [node, bin("mip46-engine.js"), "--config", files.engine], "engine started");
    await Promise.all([
      start("eng", "engine-dataplane", [node, bin("mip46-dataplane.js"), "--config", files.engineWorker], "dataplane started"),
      start("r1", "home-agent-r1", [node, bin("mip46-home-agent.js"), "--config", files.r1], "home agent started"),
      start("r2", "home-agent-r2", [node, bin("mip46-home-agent.js"), "--config", files.r2], "home agent started"),
      start("h4", "agent-h4", [node, bin("mip46-agent.js"), "--config", files.h4], "agent started"),
      start("h6", "agent-h6", [node, bin("mip46-agent.js"), "--config", files.h6], "agent started"),
      ...(files.h6b ? [start(THIRD_HOST, `agent-${THIRD_HOST}`, [node, bin("mip46-agent.js"), "--config", files.h6b], "agent started")] : []),
    ]);
    await booted;
    say(`  guests ${DEFAULT_VMS.map((v) => v.name).join(", ")} booted`);
    writeFileSync(join(dir, "processes.json"), JSON.stringify(processes, null, 2));
    return { prefix, dir, files, hosts: files.h6b ? ["h4", "h6", THIRD_HOST] : ["h4", "h6"], processes, stop };
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
}

/** Runs an engine RPC from the management network (the engine listens there only); returns its JSON answer. */
export async function labRpc<T = Record<string, unknown>>(prefix: string, method: string, request: Record<string, unknown> = {}): Promise<T> {
  const { stdout } = await exec(prefix, "mgmt", [process.execPath, "--import", "tsx", join(REPO, "deploy/lab/rpc.ts"), method, JSON.stringify(request)], { timeoutMs: 30_000 });
  return JSON.parse(stdout) as T;
}

export interface LabRpc {
  call<T = Record<string, unknown>>(method: string, request?: Record<string, unknown>): Promise<T>;
  close(): void;
}

/** One long-lived RPC helper in the management network (rpc.ts --serve): calls cost a round trip, not a process. */
export function openLabRpc(prefix: string): LabRpc {
  const child = spawnIn(prefix, "mgmt", [process.execPath, "--import", "tsx", join(REPO, "deploy/lab/rpc.ts"), "--serve"], { stdio: ["pipe", "pipe", "inherit"] });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 1;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const msg = JSON.parse(line) as { id: number; response?: unknown; error?: string };
    const p = pending.get(msg.id);
    if (p === undefined) return;
    pending.delete(msg.id);
    if (msg.error !== undefined) p.reject(new Error(msg.error));
    else p.resolve(msg.response);
  });
  child.once("exit", (code) => {
    for (const p of pending.values()) p.reject(new Error(`the lab's RPC helper exited (${code})`));
    pending.clear();
  });
  return {
    call<T>(method: string, request: Record<string, unknown> = {}): Promise<T> {
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.stdin!.write(JSON.stringify({ id, method, request }) + "\n");
      });
    },
    close() {
      child.stdin!.end();
    },
  };
}

/** Whether a lab with this prefix has namespaces now. */
export async function labExists(prefix: string = DEFAULT_PREFIX): Promise<boolean> {
  return (await labNamespaces(prefix)).length > 0;
}

export { LAB_PLAN };

/** Reads a Prometheus endpoint on the management network: sample name with labels → value. */
export async function labMetrics(prefix: string, endpoint: string): Promise<Map<string, number>> {
  const script = `const r = await fetch(${JSON.stringify(`http://${endpoint}/metrics`)}); process.stdout.write(await r.text());`;
  const { stdout } = await exec(prefix, "mgmt", [process.execPath, "--input-type=module", "-e", script], { timeoutMs: 10_000 });
  const out = new Map<string, number>();
  for (const line of stdout.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** The agent's "handover" log lines (clients/agent/timeline.ts), newest last. */
export function handoverLines(dir: string, host: HostRole): Record<string, unknown>[] {
  const path = join(dir, `agent-${host}.log`);
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter((l) => l.includes(`"msg":"handover"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
}
