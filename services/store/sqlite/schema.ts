// The embedded store's tables, and the statements its parts (base.ts, leases.ts, rules.ts,
// hosts.ts) run on them, prepared once. An address is its 32-bit value, the addresses table's
// primary key: a lookup by address (a release, its authorisation) is one index read.
import type Database from "better-sqlite3";
import type { LeasePurpose } from "../store.js";

/** An address's state: 0 free, LEASED, 2 cooling. */
export const LEASED = 1;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS addresses (
  value INTEGER PRIMARY KEY,
  pool TEXT NOT NULL,
  kind TEXT NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  holder TEXT,
  purpose TEXT,
  host_id TEXT,
  expires_at INTEGER,
  cooldown_until INTEGER
);
CREATE INDEX IF NOT EXISTS addresses_free ON addresses(pool, state, value);
CREATE INDEX IF NOT EXISTS addresses_cooling ON addresses(pool, state, cooldown_until);
CREATE INDEX IF NOT EXISTS addresses_holder ON addresses(holder, purpose, state);
CREATE INDEX IF NOT EXISTS addresses_expiry ON addresses(state, expires_at);
CREATE TABLE IF NOT EXISTS bindings (vm_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS bindings_home ON bindings(json_extract(body, '$.homeAddress'));
CREATE TABLE IF NOT EXISTS migrations (migration_id TEXT PRIMARY KEY, vm_id TEXT NOT NULL, at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS migrations_at ON migrations(at);
CREATE TABLE IF NOT EXISTS rules (key TEXT PRIMARY KEY, owner TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rules_owner ON rules(owner);
CREATE TABLE IF NOT EXISTS rule_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, revision INTEGER NOT NULL, key TEXT NOT NULL, body TEXT);
CREATE INDEX IF NOT EXISTS rule_log_revision ON rule_log(revision);
CREATE TABLE IF NOT EXISTS hosts (host_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS advice (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS advice_at ON advice(at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export interface AddressRow {
  value: number;
  pool: string;
  kind: "engine" | "segment";
  state: number;
  holder: string | null;
  purpose: LeasePurpose | null;
  host_id: string | null;
  expires_at: number | null;
  cooldown_until: number | null;
}

/** Every statement the store runs more than once. */
export function statements(db: Database.Database) {
  return {
    savepoint: db.prepare("SAVEPOINT op"),
    release: db.prepare("RELEASE op"),
    rollbackTo: db.prepare("ROLLBACK TO op"),
    begin: db.prepare("BEGIN IMMEDIATE"),
    commit: db.prepare("COMMIT"),
    rollback: db.prepare("ROLLBACK"),
    leaseByHolder: db.prepare<[string, string], AddressRow>("SELECT * FROM addresses WHERE holder = ? AND purpose = ? AND state = 1"),
    coolingByHolder: db.prepare<[string, string, string], AddressRow>(
      "SELECT * FROM addresses WHERE pool = ? AND state = 2 AND holder = ? AND purpose = ? AND cooldown_until IS NOT NULL ORDER BY cooldown_until DESC LIMIT 1"),
    firstFree: db.prepare<[string], AddressRow>("SELECT * FROM addresses WHERE pool = ? AND state = 0 ORDER BY value LIMIT 1"),
    firstCooled: db.prepare<[string, number], AddressRow>(
      "SELECT * FROM addresses WHERE pool = ? AND state = 2 AND cooldown_until <= ? ORDER BY cooldown_until, value LIMIT 1"),
    take: db.prepare("UPDATE addresses SET state = 1, holder = ?, purpose = ?, host_id = ?, expires_at = ?, cooldown_until = NULL WHERE value = ?"),
    renew: db.prepare("UPDATE addresses SET host_id = ?, expires_at = ? WHERE value = ?"),
    cool: db.prepare("UPDATE addresses SET state = 2, cooldown_until = ?, expires_at = NULL WHERE value = ?"),
    byValue: db.prepare<[number], AddressRow>("SELECT * FROM addresses WHERE value = ?"),
    expired: db.prepare<[number], AddressRow>("SELECT * FROM addresses WHERE state = 1 AND expires_at IS NOT NULL AND expires_at <= ?"),
    leases: db.prepare<[], AddressRow>("SELECT * FROM addresses WHERE state = 1 ORDER BY pool, value"),
    usage: db.prepare<[number], { pool: string; kind: "engine" | "segment"; first: number; last: number; size: number; leased: number; cooling: number }>(
      `SELECT pool, kind, MIN(value) AS first, MAX(value) AS last, COUNT(*) AS size,
              SUM(state = 1) AS leased, SUM(state = 2 AND cooldown_until > ?) AS cooling
         FROM addresses GROUP BY pool, kind ORDER BY pool`),
    revision: db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'rule_revision'"),
    setRevision: db.prepare("UPDATE meta SET value = ? WHERE key = 'rule_revision'"),
    rulesByOwner: db.prepare<[string], { key: string; body: string }>("SELECT key, body FROM rules WHERE owner = ?"),
    putRule: db.prepare("INSERT INTO rules(key, owner, body) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, body = excluded.body"),
    deleteRule: db.prepare("DELETE FROM rules WHERE key = ?"),
    allRules: db.prepare<[], { body: string }>("SELECT body FROM rules ORDER BY key"),
    logRule: db.prepare("INSERT INTO rule_log(revision, key, body) VALUES (?, ?, ?)"),
    logSince: db.prepare<[number], { revision: number; key: string; body: string | null }>("SELECT revision, key, body FROM rule_log WHERE revision > ? ORDER BY seq"),
    logOldest: db.prepare<[], { revision: number | null }>("SELECT MIN(revision) AS revision FROM rule_log"),
    logPrune: db.prepare("DELETE FROM rule_log WHERE seq <= (SELECT MAX(seq) FROM rule_log) - ?"),
    putBinding: db.prepare("INSERT INTO bindings(vm_id, body) VALUES (?, ?) ON CONFLICT(vm_id) DO UPDATE SET body = excluded.body"),
    getBinding: db.prepare<[string], { body: string }>("SELECT body FROM bindings WHERE vm_id = ?"),
    deleteBinding: db.prepare("DELETE FROM bindings WHERE vm_id = ?"),
    bindings: db.prepare<[], { body: string }>("SELECT body FROM bindings ORDER BY vm_id"),
    bindingsWithHome: db.prepare<[string], { body: string }>("SELECT body FROM bindings WHERE json_extract(body, '$.homeAddress') = ? ORDER BY vm_id"),
    putMigration: db.prepare("INSERT OR REPLACE INTO migrations(migration_id, vm_id, at, body) VALUES (?, ?, ?, ?)"),
    migrations: db.prepare<[number], { body: string }>("SELECT body FROM migrations ORDER BY at DESC, migration_id DESC LIMIT ?"),
    migrationsAfter: db.prepare<[number, number, string, number], { body: string }>(
      "SELECT body FROM migrations WHERE at < ? OR (at = ? AND migration_id < ?) ORDER BY at DESC, migration_id DESC LIMIT ?"),
    putHost: db.prepare("INSERT INTO hosts(host_id, body) VALUES (?, ?) ON CONFLICT(host_id) DO UPDATE SET body = excluded.body"),
    getHost: db.prepare<[string], { body: string }>("SELECT body FROM hosts WHERE host_id = ?"),
    hosts: db.prepare<[], { body: string }>("SELECT body FROM hosts ORDER BY host_id"),
    putAdvice: db.prepare("INSERT INTO advice(at, body) VALUES (?, ?)"),
    adviceSince: db.prepare<[number, number], { body: string }>("SELECT body FROM advice WHERE at >= ? ORDER BY at DESC, seq DESC LIMIT ?"),
    getMeta: db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE key = ?"),
    putMeta: db.prepare("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
    totalChanges: db.prepare<[], { n: number }>("SELECT total_changes() AS n"),
  };
}

export type Statements = ReturnType<typeof statements>;
