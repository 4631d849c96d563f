// The engine's reads of where VMs are and why they moved (issue 14 §1): a VM's place, from the
// hosts' heartbeats and the bindings; the migration history a page at a time; the advice given
// and what became of it. Also the rule that names a migration's cause, which the registration
// path applies.
import { NotFoundError } from "../errors.js";
import type { AdviceRecord, BindingRecord, HostRecord, MigrationCause, MigrationCursor, MigrationRecord, Store } from "../store/store.js";

/** The largest page of ListMigrations, and the default; also how far back GetVm and ListAdvice look. */
export const MIGRATIONS_LISTED = 1000;
/** ListAdvice answers at most this many, the newest first. */
export const ADVICE_LISTED = 1000;
/**
 * The shortest life of an advice: a live migration of a large VM takes minutes, so a move that
 * comes this long after its advice still followed it. An advice lives at least one advisor window
 * (a hot host gets at most one per window), and at least this.
 */
export const ADVICE_LIFE_MS = 10 * 60_000;

export interface VmPlace {
  vmId: string;
  hostId: string;
  atHome: boolean;
  homeAddress: string;
  binding?: BindingRecord;
  sinceMs: number;
  lastMigration?: MigrationRecord;
  reportedBy: string[];
}

export type AdviceOutcome = "pending" | "followed" | "moved-elsewhere" | "not-followed";

export interface AdviceEntry {
  advice: AdviceRecord;
  outcome: AdviceOutcome;
  migrationId: string;
}

export interface MigrationPage {
  migrations: MigrationRecord[];
  /** Where the next page starts; undefined on the last page. */
  next?: MigrationCursor;
}

export class History {
  /** How long an advice waits to be followed (ADVICE_LIFE_MS). */
  private readonly lifeMs: number;

  constructor(
    private readonly store: Store,
    private readonly hosts: () => Promise<HostRecord[]>,
    /** The advisor's window. */
    windowMs: number,
    private readonly now: () => number,
  ) {
    this.lifeMs = Math.max(windowMs, ADVICE_LIFE_MS);
  }

  /**
   * A registration's cause: it follows an advice when the engine advised moving this VM to this
   * destination within an advice's life before; otherwise the hypervisor moved it on its own.
   * The agent acts on advice only when started with --advice, and the engine cannot see why a
   * hypervisor moved a VM, so this is the one sign it has.
   */
  async causeOf(vmId: string, destinationHostId: string, nowMs: number): Promise<{ cause: MigrationCause; advice?: AdviceRecord }> {
    const recent = await this.store.listAdvice(ADVICE_LISTED, nowMs - this.lifeMs);
    const advice = recent.find((a) => a.vmId === vmId && a.destinationHostId === destinationHostId);
    if (!advice) return { cause: "hypervisor" };
    // Advice given because an operator drains the host carries out the operator's decision.
    return { cause: advice.drain ? "operator" : "advice", advice };
  }

  async migrations(pageSize: number, after?: MigrationCursor): Promise<MigrationPage> {
    const size = Math.min(pageSize || MIGRATIONS_LISTED, MIGRATIONS_LISTED);
    const found = await this.store.listMigrations(size + 1, after);
    if (found.length <= size) return { migrations: found };
    const migrations = found.slice(0, size);
    const last = migrations[size - 1];
    return { migrations, next: { registeredAtMs: last.registeredAtMs, migrationId: last.migrationId } };
  }

  /** Where a VM is: the hosts whose heartbeat lists it, its binding, and its newest migration (among the newest MIGRATIONS_LISTED). */
  async vm(vmId: string): Promise<VmPlace> {
    const [hosts, binding, migrations] = await Promise.all([this.hosts(), this.store.getBinding(vmId), this.store.listMigrations(MIGRATIONS_LISTED)]);
    const reporting = hosts.filter((h) => h.state !== "down" && h.vms.some((v) => v.vmId === vmId));
    const lastMigration = migrations.find((m) => m.vmId === vmId);
    if (!binding && reporting.length === 0 && !lastMigration) {
      throw new NotFoundError(`vm_id: no host reports vm ${vmId} in its heartbeat, and no binding or migration names it`);
    }
    // During a live migration both hosts list the VM: the one it is bound at (or came home to) is where it runs.
    const boundAt = binding?.hostId ?? lastMigration?.destinationHostId;
    const host = reporting.find((h) => h.hostId === boundAt) ?? reporting[0];
    const reported = host?.vms.find((v) => v.vmId === vmId);
    return {
      vmId, hostId: host?.hostId ?? binding?.hostId ?? "", atHome: !binding,
      homeAddress: binding?.homeAddress || reported?.homeAddress || "", binding,
      sinceMs: binding?.updatedAtMs ?? lastMigration?.registeredAtMs ?? 0, lastMigration,
      reportedBy: reporting.map((h) => h.hostId),
    };
  }

  /** The advice given (newest first), each with the first migration of its VM registered at or after it. */
  async advice(vmId?: string): Promise<AdviceEntry[]> {
    const nowMs = this.now();
    const [given, migrations] = await Promise.all([this.store.listAdvice(ADVICE_LISTED, 0), this.store.listMigrations(MIGRATIONS_LISTED)]);
    const oldestFirst = [...migrations].reverse();
    return given.filter((a) => vmId === undefined || a.vmId === vmId).map((a) => {
      const m = oldestFirst.find((x) => x.vmId === a.vmId && x.registeredAtMs >= a.givenAtMs);
      if (m) return { advice: a, outcome: m.destinationHostId === a.destinationHostId ? "followed" : "moved-elsewhere", migrationId: m.migrationId };
      return { advice: a, outcome: nowMs - a.givenAtMs < this.lifeMs ? "pending" : "not-followed", migrationId: "" };
    });
  }
}
