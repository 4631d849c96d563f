// Where a VM could go, without looking at every host: the hosts below a ceiling of utilisation
// (the advisor's low watermark: a host at or above it can take nothing), bucketed by their
// utilisation. Adding a VM never lowers a host's utilisation, so a destination search that walks
// the buckets from the emptiest may stop at the first bucket whose floor is above the best
// utilisation-after it has found: no host from there on can beat it.
import type { HostRecord, ResourcesRecord } from "../store/store.js";

/** The busier of CPU and memory, as a share of the host (0..1); 0 when the host reports no totals. */
export function utilisation(r: ResourcesRecord, extraCpu = 0, extraMemory = 0): number {
  const cpu = r.cpuTotalCores > 0 ? (r.cpuUsedCores + extraCpu) / r.cpuTotalCores : 0;
  const mem = r.memoryTotalBytes > 0 ? (r.memoryUsedBytes + extraMemory) / r.memoryTotalBytes : 0;
  return Math.max(cpu, mem);
}

/** A host that may take a VM, and a lower bound of its utilisation (0 when unknown). */
export interface Candidate {
  host: HostRecord;
  floor: number;
}

/** Hosts to consider as destinations, in ascending order of `floor`. */
export interface Destinations {
  candidates(): Iterable<Candidate>;
}

/** Any list of hosts, in its own order, with no bound: the search looks at each. */
export function everyHost(hosts: readonly HostRecord[]): Destinations {
  return { *candidates() { for (const host of hosts) yield { host, floor: 0 }; } };
}

export class HeadroomIndex implements Destinations {
  /** Bucket b holds the hosts whose utilisation is in [b / steps, (b + 1) / steps). */
  private readonly buckets: Map<string, HostRecord>[];
  private readonly bucketOf = new Map<string, number>();

  constructor(private readonly ceiling: number, private readonly steps = 100) {
    this.buckets = Array.from({ length: steps }, () => new Map());
  }

  get size(): number {
    return this.bucketOf.size;
  }

  /** Files the host's latest record by its utilisation; a host with no totals or no headroom leaves the index. */
  update(host: HostRecord): void {
    const r = host.resources;
    const u = utilisation(r);
    if ((r.cpuTotalCores <= 0 && r.memoryTotalBytes <= 0) || u >= this.ceiling) {
      this.remove(host.hostId);
      return;
    }
    const b = Math.min(this.steps - 1, Math.max(0, Math.floor(u * this.steps)));
    const old = this.bucketOf.get(host.hostId);
    if (old !== undefined && old !== b) this.buckets[old].delete(host.hostId);
    this.buckets[b].set(host.hostId, host);
    this.bucketOf.set(host.hostId, b);
  }

  remove(hostId: string): void {
    const b = this.bucketOf.get(hostId);
    if (b === undefined) return;
    this.buckets[b].delete(hostId);
    this.bucketOf.delete(hostId);
  }

  *candidates(): Iterable<Candidate> {
    for (let b = 0; b < this.steps; b++) {
      const floor = b / this.steps;
      for (const host of this.buckets[b].values()) yield { host, floor };
    }
  }
}
