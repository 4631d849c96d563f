// Real resource use for Heartbeat (paper, "The parts" 2d): the host's CPU and memory from /proc,
// and each VM's from its hypervisor process (QEMU's pid file: the lab's guests) or the processes
// of its network namespace (on a real hypervisor the VM's cgroup would serve as well).
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { cpus } from "node:os";

export interface HostResources { cpuUsedCores: number; cpuTotalCores: number; memoryUsedBytes: number; memoryTotalBytes: number }
export interface VmUsage { cpuUsedCores: number; memoryUsedBytes: number }

const TICKS_PER_SECOND = 100; // USER_HZ on Linux
const PAGE = 4096;

function cpuTicks(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export class ResourceSampler {
  private lastCpu = cpuTicks();
  private lastAt = Date.now();
  private lastVm = new Map<string, number>();

  host(): HostResources {
    const now = cpuTicks();
    const cores = cpus().length;
    const dTotal = now.total - this.lastCpu.total;
    const used = dTotal > 0 ? ((now.busy - this.lastCpu.busy) / dTotal) * cores : 0;
    this.lastCpu = now;
    const mem = Object.fromEntries(readFileSync("/proc/meminfo", "utf8").split("\n").filter(Boolean).map((l) => {
      const [k, v] = l.split(":");
      return [k, Number.parseInt(v, 10) * 1024];
    }));
    return { cpuUsedCores: Math.max(0, used), cpuTotalCores: cores, memoryUsedBytes: mem.MemTotal - mem.MemAvailable, memoryTotalBytes: mem.MemTotal };
  }

  /**
   * CPU (since the previous call) and resident memory of each VM: the processes in its network
   * namespace (`namespaces`, VM id → name), or its hypervisor process (`pidFiles`, VM id → the
   * file QEMU writes its pid to; /proc/PID/stat sums the process's threads).
   */
  vms(namespaces: Map<string, string>, pidFiles: Map<string, string> = new Map()): Map<string, VmUsage> {
    const pids = new Map<string, string>();
    if (namespaces.size > 0) {
      const inodes = new Map<string, string>();
      for (const [vmId, ns] of namespaces) {
        try {
          // A namespace's bind mount under /run/netns has the namespace's inode.
          inodes.set(String(statSync(`/run/netns/${ns}`, { bigint: true }).ino), vmId);
        } catch {
          // not on this host
        }
      }
      for (const pid of readdirSync("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          const vmId = inodes.get(readlinkSync(`/proc/${pid}/ns/net`).slice(5, -1)); // "net:[4026532]"
          if (vmId !== undefined) pids.set(pid, vmId);
        } catch {
          // the process ended while we looked
        }
      }
    }
    for (const [vmId, file] of pidFiles) {
      try {
        const pid = readFileSync(file, "utf8").trim();
        if (/^\d+$/.test(pid)) pids.set(pid, vmId);
      } catch {
        // the VM does not run on this host now
      }
    }
    const ticks = new Map<string, number>();
    const rss = new Map<string, number>();
    for (const [pid, vmId] of pids) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        ticks.set(vmId, (ticks.get(vmId) ?? 0) + Number(f[11]) + Number(f[12]));
        rss.set(vmId, (rss.get(vmId) ?? 0) + Number(f[21]) * PAGE);
      } catch {
        // the process ended while we looked
      }
    }
    const now = Date.now();
    const dt = Math.max(1, now - this.lastAt) / 1000;
    this.lastAt = now;
    const out = new Map<string, VmUsage>();
    for (const vmId of new Set([...namespaces.keys(), ...pidFiles.keys()])) {
      const t = ticks.get(vmId) ?? 0;
      const prev = this.lastVm.get(vmId) ?? t;
      this.lastVm.set(vmId, t);
      out.set(vmId, { cpuUsedCores: Math.max(0, (t - prev) / TICKS_PER_SECOND / dt), memoryUsedBytes: rss.get(vmId) ?? 0 });
    }
    return out;
  }
}

