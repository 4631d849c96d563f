// The hypervisor hosts as the engine on the embedded store knows them: the latest report of each
// and when it came, in memory (the engine is the store's one writer). A beat writes durably only
// what must survive a restart, and only when it changed: the host's addresses and network, its VM
// list (which VMs, not their load) and its state. Liveness is the time of the last beat, kept here
// without a write, as Kubernetes keeps node liveness in small Lease objects apart from the node.
import type { HostRecord, VmRecord } from "../store/store.js";

export class HostTable {
  /** Every known host's latest record (reports since the start, else as stored). */
  private readonly records = new Map<string, HostRecord>();
  /** Hosts not down, by the time they last beat (or the start), oldest first: a beat moves its host to the end. */
  private readonly alive = new Map<string, number>();
  /** The record last handed to the store for each host; what a beat is compared against. */
  private readonly persisted = new Map<string, HostRecord>();

  get size(): number {
    return this.records.size;
  }

  /**
   * The hosts in the store at start. Those not down get a whole down-after period from `nowMs`
   * to report again: the engine did not hear them while it was away, which says nothing of them.
   */
  load(hosts: readonly HostRecord[], nowMs: number): void {
    for (const h of hosts) {
      this.records.set(h.hostId, h);
      this.persisted.set(h.hostId, h);
      if (h.state !== "down") this.alive.set(h.hostId, nowMs);
    }
  }

  get(hostId: string): HostRecord | undefined {
    return this.records.get(hostId);
  }

  list(): HostRecord[] {
    return [...this.records.values()].sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0));
  }

  /** Takes a beat's record (`lastSeenMs` is its time); returns whether the store must be written. */
  beat(host: HostRecord): boolean {
    this.records.set(host.hostId, host);
    this.alive.delete(host.hostId);
    this.alive.set(host.hostId, host.lastSeenMs);
    return this.needsWrite(host);
  }

  /** An operator's change of the host's record (its cordon), which leaves its liveness alone. */
  replace(host: HostRecord): void {
    this.records.set(host.hostId, host);
  }

  /** Hosts silent since before `deadlineMs` are marked down (in memory) and returned, oldest first. */
  markSilentDown(deadlineMs: number): HostRecord[] {
    const down: HostRecord[] = [];
    for (const [hostId, at] of this.alive) {
      if (at >= deadlineMs) break;
      this.alive.delete(hostId);
      const record: HostRecord = { ...this.records.get(hostId)!, state: "down" };
      this.records.set(hostId, record);
      down.push(record);
    }
    return down;
  }

  /** The record is being written: later beats are compared against it. */
  writing(host: HostRecord): void {
    this.persisted.set(host.hostId, host);
  }

  /** Its write failed: the next beat writes again. */
  writeFailed(host: HostRecord): void {
    if (this.persisted.get(host.hostId) === host) this.persisted.delete(host.hostId);
  }

  private needsWrite(host: HostRecord): boolean {
    return durablyDiffers(this.persisted.get(host.hostId), host);
  }
}

/** Whether a beat's record differs from the stored one in what must survive a restart (not in load or time). */
export function durablyDiffers(p: HostRecord | undefined, host: HostRecord): boolean {
  return !p || p.state !== host.state || p.cordoned !== host.cordoned || p.family !== host.family || p.network !== host.network
    || !sameStrings(p.addresses, host.addresses) || !sameVmList(p.vms, host.vms);
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The same VMs with the same home addresses, in the same order; their load may differ. */
function sameVmList(a: readonly VmRecord[], b: readonly VmRecord[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i].vmId !== b[i].vmId || a[i].homeAddress !== b[i].homeAddress) return false;
  return true;
}
