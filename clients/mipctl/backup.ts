// mipctl backup FILE (issue 11 §6): the engine's SQLite store, copied online and streamed here,
// then checked (SQLite's integrity_check) before it takes its name.
import Database from "better-sqlite3";
import { closeSync, existsSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import type { BackupResponse } from "../../gen/mip46/v1/control.js";
import type { ControlClient } from "../control.js";
import type { Output } from "./where.js";

export class BackupUsageError extends Error {}

export async function backup(client: ControlClient, file: string | undefined): Promise<Output> {
  if (file === undefined) throw new BackupUsageError("backup takes the FILE to write");
  if (existsSync(file)) throw new BackupUsageError(`backup: ${file} exists; give a new file (a backup never overwrites one)`);
  const partial = `${file}.partial`;
  const fd = openSync(partial, "wx", 0o600);
  let revision = 0n, total = 0n, written = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const stream = client.raw.backup({}, { deadline: Date.now() + 600_000 });
      stream.on("data", (c: BackupResponse) => {
        if (written === 0) ({ revision, totalBytes: total } = c);
        writeSync(fd, c.data);
        written += c.data.length;
      });
      stream.on("error", reject);
      stream.on("end", resolve);
    });
    closeSync(fd);
    if (BigInt(written) !== total) throw new Error(`backup: the engine sent ${written} of ${total} bytes`);
    const db = new Database(partial, { readonly: true });
    try {
      const check = db.pragma("integrity_check", { simple: true });
      if (check !== "ok") throw new Error(`backup: the copy fails SQLite's integrity_check: ${String(check)}`);
    } finally {
      db.close();
    }
    renameSync(partial, file);
  } catch (e) {
    try { closeSync(fd); } catch { /* closed */ }
    rmSync(partial, { force: true });
    throw e;
  }
  return {
    json: { file, revision: revision.toString(), bytes: String(written) },
    table: `backup of the store at rule revision ${revision} (${written} bytes) in ${file}; restore: stop the engine, put the file at its store.path (no -wal or -shm file beside it), start it\n`,
  };
}
