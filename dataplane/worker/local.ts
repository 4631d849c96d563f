// Rules that a control plane in the worker's own process owns (a home agent's bindings, the
// privileged-VM agent's tunnels), applied as deltas with a local revision. Such a worker takes no
// table from the engine, so these are the only rules it has.
import type { Rule } from "../../lib/rules/rules.js";
import type { Forwarder } from "../forward/index.js";

export class LocalRules {
  private revision: bigint;
  private readonly keys = new Set<string>();

  constructor(private readonly forwarder: Forwarder) {
    this.revision = forwarder.revision < 0n ? 0n : forwarder.revision;
  }

  /** Adds or replaces rules (by key) and removes `removes`, in one step the packet path sees whole. */
  apply(updates: readonly Rule[], removes: readonly string[] = []): void {
    const gone = removes.filter((k) => this.keys.has(k));
    if (updates.length === 0 && gone.length === 0) return;
    this.revision++;
    if (this.forwarder.revision < 0n) this.forwarder.replaceRules({ revision: this.revision, rules: [...updates] });
    else this.forwarder.applyDelta(this.revision, updates, gone);
    for (const k of gone) this.keys.delete(k);
    for (const r of updates) this.keys.add(r.key);
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }
}
