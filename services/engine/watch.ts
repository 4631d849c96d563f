// The change feed behind the Watch RPC (`mipctl watch`, as `gobgp monitor`): the current state
// first (the rule revision, every binding and lease), a marker, then each change as it happens.
//
// Rule revisions come from the store's change notice (on etcd it fires for every replica's
// changes), and bindings and migrations change only with a revision. Leases also change without
// one (an allocation, a release, an expiry), so the feed looks again every `pollMs` too. Each look
// diffs against what the watchers were last told, so a watcher sees every change once, and a
// burst of changes between two looks as their net effect.
//
// One feed serves every watcher of a replica (ChangeHub): a look costs the same for one watcher
// or many, and a watcher that joins is told the state the feed last told the others, then the
// same changes as they are.
import type { BindingRecord, LeaseRecord, MigrationRecord, RuleChange } from "../store/store.js";
import type { MigrationPage } from "./history.js";

export type ChangeEvent =
  | { kind: "revision"; revision: bigint; updated: string[]; removed: string[] }
  | { kind: "binding"; binding: BindingRecord; removed: boolean }
  | { kind: "lease"; lease: LeaseRecord; released: boolean }
  | { kind: "migration"; migration: MigrationRecord }
  | { kind: "current-end" };

/** What the feed reads: the engine's own reads. */
export interface WatchSource {
  ruleTable(): Promise<{ revision: bigint }>;
  ruleChangesSince(revision: bigint): Promise<RuleChange[] | undefined>;
  onRulesChanged(listener: (revision: bigint) => void): () => void;
  listBindings(): Promise<BindingRecord[]>;
  listLeases(): Promise<LeaseRecord[]>;
  listMigrations(pageSize: number): Promise<MigrationPage>;
}

/** How many of the newest migrations each look reads; more between two looks are not missed, only their order is by time. */
const MIGRATIONS_PER_LOOK = 100;

const bindingKey = (b: BindingRecord) => JSON.stringify(b);
/** A renewal moves only the expiry: not a change worth a line. */
const leaseKey = ({ expiresAtMs: _, ...l }: LeaseRecord) => JSON.stringify(l);

export class ChangeFeed {
  private revision = 0n;
  private bindings = new Map<string, BindingRecord>();
  private leases = new Map<string, LeaseRecord>();
  private migrations = new Set<string>();
  private looking: Promise<void> = Promise.resolve();
  private readonly pollMs: number;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;

  constructor(private readonly source: WatchSource, private readonly emit: (e: ChangeEvent) => void, pollMs = 1000) {
    this.pollMs = pollMs;
  }

  /** The state last told, as the events that tell it from nothing (the revision, bindings, leases, the end marker). */
  current(): ChangeEvent[] {
    return [
      { kind: "revision", revision: this.revision, updated: [], removed: [] },
      ...[...this.bindings.values()].map((binding): ChangeEvent => ({ kind: "binding", binding, removed: false })),
      ...[...this.leases.values()].map((lease): ChangeEvent => ({ kind: "lease", lease, released: false })),
      { kind: "current-end" },
    ];
  }

  /** Sends the current state (unless `changesOnly`), then changes until stop(). */
  async start(changesOnly = false): Promise<void> {
    this.unsubscribe = this.source.onRulesChanged(() => this.look());
    const [table, bindings, leases, migrations] = await Promise.all([
      this.source.ruleTable(), this.source.listBindings(), this.source.listLeases(), this.source.listMigrations(MIGRATIONS_PER_LOOK),
    ]);
    this.revision = table.revision;
    for (const b of bindings) this.bindings.set(b.vmId, b);
    for (const l of leases) this.leases.set(l.address, l);
    for (const m of migrations.migrations) this.migrations.add(m.migrationId);
    if (!changesOnly) for (const e of this.current()) this.emit(e);
    this.timer = setInterval(() => this.look(), this.pollMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
  }

  /** One look at a time, in order; an error ends nothing (the next look tries again). */
  private look(): Promise<void> {
    this.looking = this.looking.then(() => (this.stopped ? undefined : this.diff())).catch(() => undefined);
    return this.looking;
  }

  private async diff(): Promise<void> {
    const changes = await this.source.ruleChangesSince(this.revision);
    const table = changes === undefined || changes.length > 0 ? await this.source.ruleTable() : undefined;
    if (changes && changes.length > 0) {
      const byRevision = new Map<bigint, { updated: string[]; removed: string[] }>();
      for (const c of changes) {
        const r = byRevision.get(c.revision) ?? { updated: [], removed: [] };
        byRevision.set(c.revision, r);
        (c.rule ? r.updated : r.removed).push(c.key);
      }
      for (const [revision, r] of [...byRevision].sort((a, b) => (a[0] < b[0] ? -1 : 1))) this.emit({ kind: "revision", revision, ...r });
    } else if (changes === undefined && table) {
      // The change log no longer reaches back this far: the revision alone.
      this.emit({ kind: "revision", revision: table.revision, updated: [], removed: [] });
    }
    if (table) this.revision = table.revision;
    const [bindings, leases, migrations] = await Promise.all([this.source.listBindings(), this.source.listLeases(), this.source.listMigrations(MIGRATIONS_PER_LOOK)]);
    for (const m of [...migrations.migrations].reverse()) if (!this.migrations.has(m.migrationId)) this.emit({ kind: "migration", migration: m });
    // Only the newest page can hold a new one: what it holds is all there is to remember.
    this.migrations = new Set(migrations.migrations.map((m) => m.migrationId));
    this.bindings = this.changed(this.bindings, bindings, (b) => b.vmId, bindingKey, (binding, removed) => this.emit({ kind: "binding", binding, removed }));
    this.leases = this.changed(this.leases, leases, (l) => l.address, leaseKey, (lease, released) => this.emit({ kind: "lease", lease, released }));
  }

  /** Tells what appeared, changed or went between `before` and `now`; returns `now` by key. */
  private changed<T>(before: Map<string, T>, now: T[], id: (x: T) => string, same: (x: T) => string, tell: (x: T, gone: boolean) => void): Map<string, T> {
    const next = new Map(now.map((x) => [id(x), x]));
    for (const [k, x] of next) {
      const old = before.get(k);
      if (old === undefined || same(old) !== same(x)) tell(x, false);
    }
    for (const [k, x] of before) if (!next.has(k)) tell(x, true);
    return next;
  }
}

/**
 * The one change feed of a replica, shared by its watchers: it starts with the first watcher and
 * stops with the last, so an engine nobody watches reads nothing.
 */
export class ChangeHub {
  private feed?: ChangeFeed;
  private started?: Promise<void>;
  private readonly watchers = new Set<(e: ChangeEvent) => void>();

  constructor(private readonly source: WatchSource, private readonly pollMs = 1000) {}

  /** How many watch now. */
  get size(): number {
    return this.watchers.size;
  }

  /**
   * Tells `emit` the current state (unless `changesOnly`), then every change, until the returned
   * function is called. Rejects when the feed cannot read the state it starts from.
   */
  async watch(emit: (e: ChangeEvent) => void, changesOnly = false): Promise<() => void> {
    if (this.feed === undefined) {
      const feed = new ChangeFeed(this.source, (e) => { for (const w of this.watchers) w(e); }, this.pollMs);
      this.feed = feed;
      this.started = feed.start(true).catch((e: unknown) => {
        if (this.feed === feed) this.stopFeed();
        throw e;
      });
    }
    const feed = this.feed;
    await this.started;
    // Nothing runs between the state read here and the watcher's joining: it is told the state
    // the others were last told, and then the same changes.
    if (!changesOnly) for (const e of feed.current()) emit(e);
    this.watchers.add(emit);
    return () => {
      if (!this.watchers.delete(emit) || this.watchers.size > 0) return;
      if (this.feed === feed) this.stopFeed();
    };
  }

  private stopFeed(): void {
    this.feed?.stop();
    this.feed = undefined;
    this.started = undefined;
  }
}
