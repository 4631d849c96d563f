// The embedded store on SQLite (better-sqlite3). Every change is a closure queued on one
// serialised path, drained in one transaction per turn of the event loop (group commit,
// sqlite/base.ts): a call resolves only after COMMIT. WAL mode with synchronous=FULL makes a
// committed transaction survive kill -9 and power loss.
//
// The parts, in sqlite/: schema.ts (tables, statements), base.ts (the write path),
// leases.ts (pools and leases), rules.ts (rule table, bindings, migrations), hosts.ts (hosts,
// advice), each a class on the one before. This class opens the file and is the Store.
import Database from "better-sqlite3";
import { randomUUID } from "node:crypto";
import { SCHEMA } from "./sqlite/schema.js";
import { SqliteHosts } from "./sqlite/hosts.js";
import type { Store } from "./store.js";

export interface SqliteStoreOptions {
  /**
   * "full" (default): a commit survives power loss. "normal": in WAL mode a commit survives a
   * crashed or killed process, but the last commits may be lost on power loss (SQLite docs,
   * "PRAGMA synchronous").
   */
  sync?: "full" | "normal";
}

export class SqliteStore extends SqliteHosts implements Store {
  /** Made once, when the file was created (Store.epoch). */
  private readonly epochValue: string;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    super(open(path, options));
    this.epochValue = (this.db.prepare("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: string }).value;
  }

  /**
   * What this store has written since it opened: operations queued on the write path, and rows
   * inserted, updated or deleted (SQLite's total_changes()). For tests and benchmarks.
   */
  writeStats(): { operations: number; rowsChanged: number } {
    return { operations: this.operations, rowsChanged: this.q.totalChanges.get()!.n };
  }

  async epoch(): Promise<string> {
    return this.epochValue;
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

/**
 * Opens `path`, one engine per file: exclusive locking (set before WAL, so no shared-memory index
 * is used) and a first write transaction take the file's lock for as long as this connection
 * lives. A second engine on the same file fails here, naming it, instead of both writing.
 */
function open(path: string, options: SqliteStoreOptions): Database.Database {
  const db = new Database(path);
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    db.pragma("journal_mode = WAL");
    db.exec("BEGIN IMMEDIATE; COMMIT");
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === "SQLITE_BUSY") throw new Error(`store.path: ${path} is in use by another engine (SQLite's lock is held); one engine per store file`);
    throw e;
  }
  db.pragma(`synchronous = ${options.sync === "normal" ? "NORMAL" : "FULL"}`);
  db.pragma("foreign_keys = ON");
  db.exec(SCHEMA);
  db.prepare("INSERT OR IGNORE INTO meta(key, value) VALUES ('rule_revision', '0')").run();
  db.prepare("INSERT OR IGNORE INTO meta(key, value) VALUES ('epoch', ?)").run(randomUUID());
  return db;
}
