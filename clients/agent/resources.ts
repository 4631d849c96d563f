// Real resource use for Heartbeat (paper, "The parts" 2d): the host's CPU and memory from /proc,
// and each VM's as the sum over the processes in the VM's network namespace (a lab VM is a
// namespace; on a real hypervisor this would be the VM's cgroup).
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

  /** CPU (since the previous call) and resident memory of the processes in each named network namespace. */
  vms(namespaces: Map<string, string>): Map<string, VmUsage> {
    const inodes = new Map<string, string>();
    for (const [vmId, ns] of namespaces) {
      try {
        // A namespace's bind mount under /run/netns has the namespace's inode.
        inodes.set(String(statSync(`/run/netns/${ns}`, { bigint: true }).ino), vmId);
      } catch {
        // not on this host
      }
    }
    const ticks = new Map<string, number>();
    const rss = new Map<string, number>();
    for (const pid of readdirSync("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const link = readlinkSync(`/proc/${pid}/ns/net`); // "net:[4026532]"
        const vmId = inodes.get(link.slice(5, -1));
        if (vmId === undefined) continue;
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
    for (const vmId of namespaces.keys()) {
      const t = ticks.get(vmId) ?? 0;
      const prev = this.lastVm.get(vmId) ?? t;
      this.lastVm.set(vmId, t);
      out.set(vmId, { cpuUsedCores: Math.max(0, (t - prev) / TICKS_PER_SECOND / dt), memoryUsedBytes: rss.get(vmId) ?? 0 });
    }
    return out;
  }
}

