// The embedded store on SQLite (better-sqlite3). Every change is a closure queued on one
// serialised path; the queue is drained in one transaction per turn of the event loop (group
// commit), so many concurrent calls share one fsync, and a call resolves only after COMMIT.
// WAL mode with synchronous=FULL makes a committed transaction survive kill -9 and power loss.
import Database from "better-sqlite3";
import { randomUUID } from "node:crypto";
import { ipv4FromValue, parseIPv4 } from "../../lib/net/address.js";
import type { Rule } from "../../lib/rules/rules.js";
import { FailedPreconditionError, ResourceExhaustedError } from "../errors.js";
import { type AddressRow, LEASED, SCHEMA, type Statements, statements } from "./sqlite/schema.js";
import { otherHomeAgent, vmOwner } from "./store.js";
import type {
  AcquireLease, AdviceRecord, BindingRecord, CoolingRecord, HomeAgentRecord, HostRecord, LeasePurpose, LeaseRecord, MigrationCursor, MigrationRecord,
  PoolAddressSet, PoolUsage, RuleChange, Store,
} from "./store.js";

/** How many rule changes the log keeps for workers that reconnect with an older revision. */
const RULE_LOG_KEEP = 100_000;

interface QueuedWrite {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export interface SqliteStoreOptions {
  /**
   * "full" (default): a commit survives power loss. "normal": in WAL mode a commit survives a
   * crashed or killed process, but the last commits may be lost on power loss (SQLite docs,
   * "PRAGMA synchronous").
   */
  sync?: "full" | "normal";
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private queue: QueuedWrite[] = [];
  private flushScheduled = false;
  private readonly ruleListeners = new Set<(revision: bigint) => void>();
  private revisionChanged = false;
  private closed = false;
  private operations = 0;
  private readonly q: Statements;
  /** Made once, when the file was created (Store.epoch). */
  private readonly epochValue: string;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.db = new Database(path);
    // One engine per file: exclusive locking (set before WAL, so no shared-memory index is used)
    // and a first write transaction take the file's lock for as long as this connection lives.
    // A second engine on the same file fails here, naming it, instead of both writing.
    try {
      this.db.pragma("locking_mode = EXCLUSIVE");
      this.db.pragma("journal_mode = WAL");
      this.db.exec("BEGIN IMMEDIATE; COMMIT");
    } catch (e) {
      this.db.close();
      if ((e as { code?: string }).code === "SQLITE_BUSY") throw new Error(`store.path: ${path} is in use by another engine (SQLite's lock is held); one engine per store file`);
      throw e;
    }
    this.db.pragma(`synchronous = ${options.sync === "normal" ? "NORMAL" : "FULL"}`);
    this.db.pragma("foreign_keys = ON");
    this.db.exec(SCHEMA);
    this.db.prepare("INSERT OR IGNORE INTO meta(key, value) VALUES ('rule_revision', '0')").run();
    this.db.prepare("INSERT OR IGNORE INTO meta(key, value) VALUES ('epoch', ?)").run(randomUUID());
    this.epochValue = (this.db.prepare("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: string }).value;
    const db = this.db;
    this.q = statements(db);
  }

  /**
   * What this store has written since it opened: operations queued on the write path, and rows
   * inserted, updated or deleted (SQLite's total_changes()). For tests and benchmarks.
   */
  writeStats(): { operations: number; rowsChanged: number } {
    return { operations: this.operations, rowsChanged: this.q.totalChanges.get()!.n };
  }

  // --- the serialised write path --------------------------------------------------------------

  private write<T>(run: () => T): Promise<T> {
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

  // --- pools and leases -----------------------------------------------------------------------

  syncPools(pools: PoolAddressSet[]): Promise<void> {
    return this.write(() => {
      // Only what differs is written: a restart with an unchanged plan touches no row.
      const existing = new Map(this.db.prepare<[], { value: number; pool: string; kind: string; state: number }>(
        "SELECT value, pool, kind, state FROM addresses").all().map((r) => [r.value, r]));
      const insert = this.db.prepare("INSERT INTO addresses(value, pool, kind) VALUES (?, ?, ?)");
      const move = this.db.prepare("UPDATE addresses SET pool = ?, kind = ? WHERE value = ?");
      const del = this.db.prepare("DELETE FROM addresses WHERE value = ?");
      const wanted = new Set<number>();
      for (const p of pools) {
        for (const v of p.addresses) {
          wanted.add(v);
          const row = existing.get(v);
          if (!row) insert.run(v, p.pool, p.kind);
          else if (row.pool !== p.pool || row.kind !== p.kind) move.run(p.pool, p.kind, v);
        }
      }
      // Addresses that left the configuration go, unless a VM still holds them.
      for (const [value, row] of existing) if (!wanted.has(value) && row.state !== LEASED) del.run(value);
    });
  }

  acquireLease(req: AcquireLease): Promise<LeaseRecord> {
    return this.write(() => {
      const held = this.q.leaseByHolder.get(req.holder, req.purpose);
      if (held && held.pool === req.pool) {
        this.q.renew.run(req.hostId, req.expiresAtMs, held.value);
        return toLease({ ...held, host_id: req.hostId, expires_at: req.expiresAtMs });
      }
      if (held) this.q.cool.run(req.nowMs + req.cooldownMs, held.value); // moved to another network
      // Prefer the address this holder had before, then one never used, then the longest cooled.
      const row = this.q.coolingByHolder.get(req.pool, req.holder, req.purpose)
        ?? this.q.firstFree.get(req.pool)
        ?? this.q.firstCooled.get(req.pool, req.nowMs);
      if (!row) {
        const u = this.q.usage.all(req.nowMs).find((p) => p.pool === req.pool);
        throw new ResourceExhaustedError(
          u ? `pool ${req.pool} has no free address (${u.leased} leased, ${u.cooling} cooling down, of ${u.size})` : `pool ${req.pool} has no addresses`);
      }
      this.q.take.run(req.holder, req.purpose, req.hostId, req.expiresAtMs, row.value);
      return toLease({ ...row, state: LEASED, holder: req.holder, purpose: req.purpose, host_id: req.hostId, expires_at: req.expiresAtMs });
    });
  }

  releaseLease(sel: { address: string } | { holder: string; purpose: LeasePurpose }, nowMs: number, cooldownMs: number): Promise<CoolingRecord | undefined> {
    return this.write(() => {
      const row = "address" in sel ? this.q.byValue.get(parseIPv4(sel.address, "address").value) : this.q.leaseByHolder.get(sel.holder, sel.purpose);
      if (!row || row.state !== LEASED) return undefined;
      const until = nowMs + cooldownMs;
      this.q.cool.run(until, row.value);
      return toCooling(row, until);
    });
  }

  expireLeases(nowMs: number, cooldownMs: number): Promise<CoolingRecord[]> {
    return this.write(() => {
      const rows = this.q.expired.all(nowMs);
      for (const r of rows) this.q.cool.run(r.expires_at! + cooldownMs, r.value);
      return rows.map((r) => toCooling(r, r.expires_at! + cooldownMs));
    });
  }

  async getLease(holder: string, purpose: LeasePurpose): Promise<LeaseRecord | undefined> {
    const row = this.q.leaseByHolder.get(holder, purpose);
    return row ? toLease(row) : undefined;
  }

  async leaseByAddress(address: string): Promise<LeaseRecord | undefined> {
    // The address is the table's primary key (its 32-bit value), so this is one index lookup.
    const row = this.q.byValue.get(parseIPv4(address, "address").value);
    return row && row.state === LEASED ? toLease(row) : undefined;
  }

  async listLeases(): Promise<LeaseRecord[]> {
    return this.q.leases.all().map(toLease);
  }

  async poolUsage(nowMs: number): Promise<PoolUsage[]> {
    return this.q.usage.all(nowMs).map((u) => ({
      pool: u.pool, kind: u.kind, first: ipv4FromValue(u.first).text, last: ipv4FromValue(u.last).text,
      size: u.size, leased: u.leased, cooling: u.cooling, free: u.size - u.leased - u.cooling,
    }));
  }

  // --- rules and bindings ---------------------------------------------------------------------

  private currentRevision(): bigint {
    return BigInt(this.q.revision.get()!.value);
  }

  /** Inside a write: makes the owner's rules exactly `rules`; bumps the revision once if anything changed. */
  private setRules(owner: string, rules: Rule[]): bigint {
    const before = new Map(this.q.rulesByOwner.all(owner).map((r) => [r.key, r.body]));
    const after = new Map(rules.map((r) => [r.key, JSON.stringify(r)]));
    const changes: [string, string | null][] = [];
    for (const [key, body] of after) if (before.get(key) !== body) changes.push([key, body]);
    for (const key of before.keys()) if (!after.has(key)) changes.push([key, null]);
    let revision = this.currentRevision();
    if (changes.length === 0) return revision;
    revision += 1n;
    for (const [key, body] of changes) {
      if (body === null) this.q.deleteRule.run(key);
      else this.q.putRule.run(key, owner, body);
      this.q.logRule.run(revision, key, body);
    }
    this.q.setRevision.run(revision.toString());
    this.q.logPrune.run(RULE_LOG_KEEP);
    this.revisionChanged = true;
    return revision;
  }

  replaceRules(owner: string, rules: Rule[]): Promise<bigint> {
    return this.write(() => this.setRules(owner, rules));
  }

  async rulesOf(owner: string): Promise<Rule[]> {
    return this.q.rulesByOwner.all(owner).map((r) => JSON.parse(r.body) as Rule).sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  putBinding(binding: BindingRecord, migration: MigrationRecord, rules: Rule[], homeAgent?: HomeAgentRecord): Promise<bigint> {
    return this.write(() => {
      // One binding per home address, checked in the write that makes it.
      const other = this.q.bindingsWithHome.all(binding.homeAddress).map((r) => JSON.parse(r.body) as BindingRecord).find((b) => b.vmId !== binding.vmId);
      if (other) throw new FailedPreconditionError(`home_address: ${binding.homeAddress} is the home address of vm ${other.vmId}'s binding; two VMs cannot hold one home address`);
      // One home agent per home network, claimed in the same write.
      if (homeAgent) {
        const key = homeAgentKey(homeAgent.network);
        const row = this.q.getMeta.get(key);
        const known = row ? (JSON.parse(row.value) as HomeAgentRecord) : undefined;
        if (known && known.homeAgent !== homeAgent.homeAgent) throw new FailedPreconditionError(otherHomeAgent(homeAgent, known));
        if (!known) this.q.putMeta.run(key, JSON.stringify(homeAgent));
      }
      this.q.putMigration.run(migration.migrationId, migration.vmId, migration.registeredAtMs, JSON.stringify(migration));
      this.q.putBinding.run(binding.vmId, JSON.stringify(binding));
      return this.setRules(vmOwner(binding.vmId), rules);
    });
  }

  async getHomeAgent(network: string): Promise<HomeAgentRecord | undefined> {
    const row = this.q.getMeta.get(homeAgentKey(network));
    return row ? (JSON.parse(row.value) as HomeAgentRecord) : undefined;
  }

  deleteBinding(vmId: string, migration?: MigrationRecord): Promise<{ revision: bigint; binding?: BindingRecord }> {
    return this.write(() => {
      const row = this.q.getBinding.get(vmId);
      if (migration) this.q.putMigration.run(migration.migrationId, migration.vmId, migration.registeredAtMs, JSON.stringify(migration));
      this.q.deleteBinding.run(vmId);
      const revision = this.setRules(vmOwner(vmId), []);
      return { revision, binding: row ? (JSON.parse(row.body) as BindingRecord) : undefined };
    });
  }

  forceRelease(vmId: string, owners: string[], addresses: string[], nowMs: number, cooldownMs: number): Promise<{ revision: bigint; released: CoolingRecord[] }> {
    return this.write(() => {
      const released: CoolingRecord[] = [];
      for (const address of addresses) {
        const row = this.q.byValue.get(parseIPv4(address, "address").value);
        if (!row || row.state !== LEASED) continue;
        this.q.cool.run(nowMs + cooldownMs, row.value);
        released.push(toCooling(row, nowMs + cooldownMs));
      }
      this.q.deleteBinding.run(vmId);
      let revision = this.currentRevision();
      for (const owner of owners) revision = this.setRules(owner, []);
      return { revision, released };
    });
  }

  async getBinding(vmId: string): Promise<BindingRecord | undefined> {
    const row = this.q.getBinding.get(vmId);
    return row ? (JSON.parse(row.body) as BindingRecord) : undefined;
  }

  async listBindings(): Promise<BindingRecord[]> {
    return this.q.bindings.all().map((r) => JSON.parse(r.body) as BindingRecord);
  }

  async bindingsWithHome(homeAddress: string): Promise<BindingRecord[]> {
    return this.q.bindingsWithHome.all(homeAddress).map((r) => JSON.parse(r.body) as BindingRecord);
  }

  async listMigrations(limit: number, after?: MigrationCursor): Promise<MigrationRecord[]> {
    const rows = after ? this.q.migrationsAfter.all(after.registeredAtMs, after.registeredAtMs, after.migrationId, limit) : this.q.migrations.all(limit);
    return rows.map((r) => JSON.parse(r.body) as MigrationRecord);
  }

  async ruleTable(): Promise<{ revision: bigint; rules: Rule[] }> {
    // Both reads happen in one synchronous turn, so no write can fall between them.
    return { revision: this.currentRevision(), rules: this.q.allRules.all().map((r) => JSON.parse(r.body) as Rule) };
  }

  async ruleChangesSince(revision: bigint): Promise<RuleChange[] | undefined> {
    const current = this.currentRevision();
    if (revision >= current) return [];
    const oldest = this.q.logOldest.get()?.revision;
    if (oldest === null || oldest === undefined || BigInt(oldest) > revision + 1n) return undefined;
    return this.q.logSince.all(Number(revision)).map((r) => ({
      revision: BigInt(r.revision), key: r.key, rule: r.body === null ? null : (JSON.parse(r.body) as Rule),
    }));
  }

  onRulesChanged(listener: (revision: bigint) => void): () => void {
    this.ruleListeners.add(listener);
    return () => this.ruleListeners.delete(listener);
  }

  // --- hosts and advice -----------------------------------------------------------------------

  putHost(host: HostRecord): Promise<void> {
    return this.write(() => void this.q.putHost.run(host.hostId, JSON.stringify(host)));
  }

  async getHost(hostId: string): Promise<HostRecord | undefined> {
    const row = this.q.getHost.get(hostId);
    return row ? (JSON.parse(row.body) as HostRecord) : undefined;
  }

  async listHosts(): Promise<HostRecord[]> {
    return this.q.hosts.all().map((r) => JSON.parse(r.body) as HostRecord);
  }

  /** The engine on SQLite is the one writer: its heartbeats carry the cordon it set (engine.ts). */
  setCordon(hostId: string, cordoned: boolean, draining = false): Promise<boolean> {
    return this.write(() => {
      const row = this.q.getHost.get(hostId);
      if (!row) return false;
      const { cordoned: _, draining: __, ...host } = JSON.parse(row.body) as HostRecord;
      const record: HostRecord = cordoned ? { ...host, cordoned, ...(draining ? { draining } : {}) } : host;
      this.q.putHost.run(hostId, JSON.stringify(record));
      return true;
    });
  }

  recordAdvice(advice: AdviceRecord[]): Promise<void> {
    return this.write(() => {
      for (const a of advice) this.q.putAdvice.run(a.givenAtMs, JSON.stringify(a));
    });
  }

  async listAdvice(limit: number, sinceMs: number): Promise<AdviceRecord[]> {
    return this.q.adviceSince.all(sinceMs, limit).map((r) => JSON.parse(r.body) as AdviceRecord);
  }

  async epoch(): Promise<string> {
    return this.epochValue;
  }

  /** Resolves once the write queue is empty: every write acknowledged so far is committed. */
  private async writesDone(): Promise<void> {
    while (this.queue.length > 0 || this.flushScheduled) await new Promise((r) => setImmediate(r));
  }

  async backup(path: string): Promise<{ revision: bigint }> {
    // Writes acknowledged before the call are in the copy: the queue is flushed first. Pages this
    // connection writes meanwhile reach the copy too (SQLite's backup follows its own source).
    await this.writesDone();
    await this.db.backup(path);
    // The copy is one file: out of WAL mode, so opening it makes no -wal or -shm file beside it.
    const copy = new Database(path);
    try {
      copy.pragma("journal_mode = DELETE");
      return { revision: BigInt((copy.prepare("SELECT value FROM meta WHERE key = 'rule_revision'").get() as { value: string }).value) };
    } finally {
      copy.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Let queued writes finish before the database goes away.
    await this.writesDone();
    this.closed = true;
    this.db.close();
  }
}


/** The meta key of a home network's learned home agent. */
function homeAgentKey(network: string): string {
  return `home_agent:${network}`;
}

function toLease(r: AddressRow): LeaseRecord {
  return {
    address: ipv4FromValue(r.value).text, pool: r.pool, holder: r.holder ?? "", purpose: r.purpose ?? "care-of",
    hostId: r.host_id ?? "", expiresAtMs: r.expires_at,
  };
}

function toCooling(r: AddressRow, until: number): CoolingRecord {
  return { address: ipv4FromValue(r.value).text, pool: r.pool, holder: r.holder ?? "", purpose: r.purpose ?? "care-of", cooldownUntilMs: until };
}
