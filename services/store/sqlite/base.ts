// What the parts of the SQLite store (leases.ts, rules.ts, hosts.ts, each a class on the one
// before) build on: the connection, its statements (schema.ts), and the serialised write path.
// Every change is a closure queued on that path; the queue is drained in one transaction per turn
// of the event loop (group commit), so many concurrent calls share one fsync, and a call resolves
// only after COMMIT. Each closure runs in a savepoint of its own: one that throws is undone alone.
import type Database from "better-sqlite3";
import { ipv4FromValue } from "../../../lib/net/address.js";
import type { CoolingRecord, LeaseRecord } from "../store.js";
import { type AddressRow, type Statements, statements } from "./schema.js";

interface QueuedWrite {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class SqliteBase {
  private queue: QueuedWrite[] = [];
  private flushScheduled = false;
  protected readonly ruleListeners = new Set<(revision: bigint) => void>();
  /** Set by a write that changed the rule table: its listeners are called after the COMMIT. */
  protected revisionChanged = false;
  protected closed = false;
  protected operations = 0;
  protected readonly q: Statements;

  /** `db` is open, its schema made (sqlite.ts). */
  constructor(protected readonly db: Database.Database) {
    this.q = statements(db);
  }

  // --- the serialised write path --------------------------------------------------------------

  protected write<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error("store is closed"));
    this.operations++;
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const outcomes: { ok: boolean; value: unknown }[] = [];
    this.revisionChanged = false;
    try {
      this.q.begin.run();
      for (const op of batch) {
        this.q.savepoint.run();
        try {
          outcomes.push({ ok: true, value: op.run() });
          this.q.release.run();
        } catch (e) {
          // Only this operation is undone; the others in the batch still commit.
          this.q.rollbackTo.run();
          this.q.release.run();
          outcomes.push({ ok: false, value: e });
        }
      }
      this.q.commit.run();
    } catch (e) {
      if (this.db.inTransaction) this.q.rollback.run();
      for (const op of batch) op.reject(e);
      return;
    }
    batch.forEach((op, i) => (outcomes[i].ok ? op.resolve(outcomes[i].value) : op.reject(outcomes[i].value)));
    if (this.revisionChanged) {
      const revision = this.currentRevision();
      for (const l of this.ruleListeners) l(revision);
    }
  }

  protected currentRevision(): bigint {
    return BigInt(this.q.revision.get()!.value);
  }

  onRulesChanged(listener: (revision: bigint) => void): () => void {
    this.ruleListeners.add(listener);
    return () => this.ruleListeners.delete(listener);
  }

  /** Resolves once the write queue is empty: every write acknowledged so far is committed. */
  protected async writesDone(): Promise<void> {
    while (this.queue.length > 0 || this.flushScheduled) await new Promise((r) => setImmediate(r));
  }
}

export function toLease(r: AddressRow): LeaseRecord {
  return {
    address: ipv4FromValue(r.value).text, pool: r.pool, holder: r.holder ?? "", purpose: r.purpose ?? "care-of",
    hostId: r.host_id ?? "", expiresAtMs: r.expires_at,
  };
}

export function toCooling(r: AddressRow, until: number): CoolingRecord {
  return { address: ipv4FromValue(r.value).text, pool: r.pool, holder: r.holder ?? "", purpose: r.purpose ?? "care-of", cooldownUntilMs: until };
}
