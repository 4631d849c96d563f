// Migration management (paper, "The parts" 1): finds hosts that stay hot for a window and advises
// which VM to move where. Hysteresis keeps VMs from ping-ponging: a host turns hot above the high
// watermark only after a whole window there, and cools only below the low watermark; a VM is only
// sent to a host that stays below the low watermark with it; a moved VM rests for a cool-down.
// Each report costs O(1): the advisor files the host in its headroom index as it observes it, and
// only a hot host's advice searches for a destination, in that index.
import type { AdviceRecord, HostRecord, VmRecord } from "../store/store.js";
import { everyHost, HeadroomIndex, utilisation, type Destinations } from "./headroom.js";

export { utilisation } from "./headroom.js";

export interface AdvisorSettings {
  highWatermark: number;
  lowWatermark: number;
  windowMs: number;
  vmCooldownMs: number;
}

export class MigrationAdvisor {
  private readonly aboveSince = new Map<string, number>();
  private readonly hot = new Set<string>();
  private readonly vmRestUntil = new Map<string, number>();
  private readonly hostAdvisedAt = new Map<string, number>();
  /** The hosts observed (or tracked) that have room below the low watermark. */
  readonly headroom: HeadroomIndex;

  constructor(private readonly s: AdvisorSettings) {
    this.headroom = new HeadroomIndex(s.lowWatermark);
  }

  /** New settings from a configuration reload; the low watermark stays (the headroom index is built on it). */
  retune(s: Omit<AdvisorSettings, "lowWatermark">): void {
    Object.assign(this.s, s);
  }

  /** Files a host known from before (the store, at start) as a destination, without a report. */
  track(host: HostRecord): void {
    this.headroom.update(host);
  }

  /** Updates the host's hot state from its latest report; returns whether it is hot now. */
  observe(host: HostRecord, nowMs: number): boolean {
    this.headroom.update(host);
    const u = utilisation(host.resources);
    if (u >= this.s.highWatermark) {
      const since = this.aboveSince.get(host.hostId) ?? nowMs;
      this.aboveSince.set(host.hostId, since);
      if (nowMs - since >= this.s.windowMs) this.hot.add(host.hostId);
    } else {
      this.aboveSince.delete(host.hostId);
      if (u < this.s.lowWatermark) this.hot.delete(host.hostId);
    }
    return this.hot.has(host.hostId);
  }

  isHot(hostId: string): boolean {
    return this.hot.has(hostId);
  }

  forget(hostId: string): void {
    this.aboveSince.delete(hostId);
    this.hot.delete(hostId);
    this.headroom.remove(hostId);
  }

  /** A VM that just moved rests before it may be advised again. */
  noteMigration(vmId: string, nowMs: number): void {
    this.vmRestUntil.set(vmId, nowMs + this.s.vmCooldownMs);
  }

  /**
   * Advice for a hot host: at most one VM per window, to the host with the most headroom.
   * `hosts`: where to look, the advisor's own index (`this.headroom`) or a list. Equal headroom
   * goes to a host of the source's family, then to the lower host id.
   */
  advise(source: HostRecord, hosts: readonly HostRecord[] | Destinations, nowMs: number): AdviceRecord[] {
    if (!this.hot.has(source.hostId)) return [];
    const last = this.hostAdvisedAt.get(source.hostId);
    if (last !== undefined && nowMs - last < this.s.windowMs) return [];
    const movable = source.vms
      .filter((vm) => (this.vmRestUntil.get(vm.vmId) ?? 0) <= nowMs)
      .sort((a, b) => load(source, a) - load(source, b));
    if (movable.length === 0) return [];
    // The smallest VM whose departure cools the source below the high watermark, else the largest.
    const vm = movable.find((v) => utilisation(source.resources, -v.cpuUsedCores, -v.memoryUsedBytes) < this.s.highWatermark)
      ?? movable[movable.length - 1];
    const best = this.destination(source, vm, "candidates" in hosts ? hosts : everyHost(hosts), new Map());
    if (!best) return [];
    this.hostAdvisedAt.set(source.hostId, nowMs);
    this.noteMigration(vm.vmId, nowMs);
    const u = utilisation(source.resources);
    return [advice(source, vm, best, nowMs, `host ${source.hostId} at ${(u * 100).toFixed(0)}% for ${(this.s.windowMs / 1000).toFixed(0)}s or more`)];
  }

  /**
   * Advice for a host an operator drains (issue 14 §2): every VM not resting is advised away, each
   * to the host with the most headroom once the VMs advised before it in this round are counted
   * there. A VM advised rests like a moved one, so it is advised again only if it did not leave.
   */
  adviseDrain(source: HostRecord, hosts: readonly HostRecord[] | Destinations, nowMs: number): AdviceRecord[] {
    const destinations = "candidates" in hosts ? hosts : everyHost(hosts);
    const added = new Map<string, { cpu: number; memory: number }>();
    const out: AdviceRecord[] = [];
    const movable = source.vms.filter((vm) => (this.vmRestUntil.get(vm.vmId) ?? 0) <= nowMs).sort((a, b) => load(source, b) - load(source, a));
    for (const vm of movable) {
      const best = this.destination(source, vm, destinations, added);
      if (!best) continue;
      const a = added.get(best.host.hostId) ?? { cpu: 0, memory: 0 };
      added.set(best.host.hostId, { cpu: a.cpu + vm.cpuUsedCores, memory: a.memory + vm.memoryUsedBytes });
      this.noteMigration(vm.vmId, nowMs);
      out.push({ ...advice(source, vm, best, nowMs, `host ${source.hostId} is drained by an operator`), drain: true });
    }
    return out;
  }

  /** The destination with the most headroom after taking `vm` (and what `added` puts there already), if any stays below the low watermark. */
  private destination(source: HostRecord, vm: VmRecord, destinations: Destinations, added: ReadonlyMap<string, { cpu: number; memory: number }>) {
    let best: { host: HostRecord; after: number } | undefined;
    for (const { host: h, floor } of destinations.candidates()) {
      // Adding the VM cannot bring a host below its floor: none from here on beats the best.
      if (best && floor > best.after + 1e-9) break;
      // A cordoned host is out for maintenance: it takes no VM (issue 14 §2).
      if (h.hostId === source.hostId || h.state !== "up" || h.cordoned || this.hot.has(h.hostId)) continue;
      if (h.resources.cpuTotalCores <= 0 && h.resources.memoryTotalBytes <= 0) continue;
      const more = added.get(h.hostId);
      const after = utilisation(h.resources, vm.cpuUsedCores + (more?.cpu ?? 0), vm.memoryUsedBytes + (more?.memory ?? 0));
      if (after >= this.s.lowWatermark) continue;
      if (!best || better(h, after, best, source.family)) best = { host: h, after };
    }
    return best;
  }
}

function advice(source: HostRecord, vm: VmRecord, best: { host: HostRecord; after: number }, nowMs: number, why: string): AdviceRecord {
  return {
    vmId: vm.vmId,
    sourceHostId: source.hostId,
    destinationHostId: best.host.hostId,
    crossProtocol: best.host.family !== 0 && source.family !== 0 && best.host.family !== source.family,
    reason: `${why}; ${best.host.hostId} would be at ${(best.after * 100).toFixed(0)}%`,
    givenAtMs: nowMs,
  };
}

function better(h: HostRecord, after: number, best: { host: HostRecord; after: number }, family: 0 | 4 | 6): boolean {
  if (after < best.after - 1e-9) return true;
  if (Math.abs(after - best.after) > 1e-9) return false;
  const same = h.family === family;
  const bestSame = best.host.family === family;
  return same !== bestSame ? same : h.hostId < best.host.hostId;
}

function load(host: HostRecord, vm: VmRecord): number {
  return utilisation({ ...host.resources, cpuUsedCores: vm.cpuUsedCores, memoryUsedBytes: vm.memoryUsedBytes });
}
