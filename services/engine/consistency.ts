// Heartbeats against bindings (issue 11 §6): a binding says where a VM is away at; the hosts'
// heartbeats say where it runs. When the bound host does not list the VM and another host
// does, the two contradict each other (a store restored from an older backup, a move the engine
// never heard of). The engine does not repair it on its own: which side is right is not known
// here, and a wrong repair moves a VM's traffic away from where it runs. It counts each such
// VM (mip46_bindings_contradicted, with an alert) and logs it once, saying how to repair it.
import type { Logger } from "../../lib/log.js";
import type { BindingRecord, HostRecord } from "../store/store.js";

export interface Contradiction {
  vmId: string;
  boundAt: string;
  reportedBy: string[];
}

/** The bindings whose VM the bound host does not report while another (up) host does. */
export function contradictions(bindings: readonly BindingRecord[], hosts: readonly HostRecord[]): Contradiction[] {
  const reporters = new Map<string, string[]>();
  for (const h of hosts) {
    if (h.state === "down") continue;
    for (const v of h.vms) {
      const list = reporters.get(v.vmId);
      if (list) list.push(h.hostId);
      else reporters.set(v.vmId, [h.hostId]);
    }
  }
  const found: Contradiction[] = [];
  for (const b of bindings) {
    const by = reporters.get(b.vmId);
    if (by && !by.includes(b.hostId)) found.push({ vmId: b.vmId, boundAt: b.hostId, reportedBy: [...by].sort() });
  }
  return found.sort((a, b) => a.vmId.localeCompare(b.vmId));
}

/** Looks every `everyMs`; logs each contradiction once (again only after it was resolved and came back). */
export class ConsistencyCheck {
  private timer?: NodeJS.Timeout;
  private logged = new Map<string, string>();
  private last: Contradiction[] = [];

  constructor(
    private readonly reads: { listBindings(): Promise<BindingRecord[]>; listHosts(): Promise<HostRecord[]> },
    private readonly log: Logger, private readonly everyMs = 30_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.check().catch((e) => this.log.error("binding check failed", { err: e })), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The contradictions found by the last check. */
  current(): readonly Contradiction[] {
    return this.last;
  }

  async check(): Promise<Contradiction[]> {
    const [bindings, hosts] = await Promise.all([this.reads.listBindings(), this.reads.listHosts()]);
    this.last = contradictions(bindings, hosts);
    const next = new Map<string, string>();
    for (const c of this.last) {
      const key = `${c.boundAt}>${c.reportedBy.join(",")}`;
      next.set(c.vmId, key);
      if (this.logged.get(c.vmId) === key) continue;
      this.log.warn("binding contradicted by heartbeats", {
        vmId: c.vmId, boundAt: c.boundAt, reportedBy: c.reportedBy,
        repair: `not repaired automatically: check with mipctl where ${c.vmId}; if it runs at ${c.reportedBy[0]}, that host's agent registers it again (a move, or home), or mipctl release --force its care-of lease`,
      });
    }
    this.logged = next;
    return this.last;
  }
}
