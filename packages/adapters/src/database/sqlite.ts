// The SQLite database engine: a one-step online backup of a live database file, and the checks of such a snapshot.
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type DatabaseEngine, type DatabaseSnapshot, LifeboatError, type SnapshotInspection } from '@lifeboat/domain';
import Database from 'better-sqlite3';

/** Pages per backup step: big enough that any database is copied in one step. */
const ALL_PAGES = 0x7fffffff;
/** How long a connection waits on a writer's lock before giving up. */
const BUSY_TIMEOUT_MS = 10_000;
/** Lines of a failed integrity check kept in the detail. */
const INTEGRITY_LINES = 5;

export class SqliteEngine implements DatabaseEngine {
  readonly engine = 'sqlite' as const;
  readonly location: string;

  constructor(file: string) {
    this.location = resolve(file);
  }

  async snapshot(dir: string): Promise<DatabaseSnapshot> {
    // Opened here first, so a missing or foreign file fails with its own message at once.
    this.openSource().close();
    const name = basename(this.location);
    const file = join(dir, name);
    // Built beside the final name and renamed, so a crash never leaves a half-copied file
    // under the name a reader trusts.
    const staging = `${file}.partial`;
    await removeDatabaseFiles(staging);
    let copied: { version: string };
    try {
      copied = await aside<{ version: string }>({ task: 'copy', source: this.location, dest: staging });
    } catch (err) {
      await removeDatabaseFiles(staging);
      throw databaseError(
        `SQLite backup of ${this.location} failed`,
        err,
        'does the snapshot directory exist, with room for a copy of the database?',
      );
    }
    await Promise.all(['-wal', '-shm', '-journal'].map((suffix) => rm(file + suffix, { force: true })));
    await rename(staging, file);
    const { size } = await stat(file);
    // The checks read the finished copy on their own thread while the caller archives it.
    const facts = aside<{ integrity: { ok: boolean; detail: string }; tables: Record<string, number> }>({
      task: 'measure',
      file,
    }).then(
      (m) => ({ engine: 'sqlite' as const, version: copied.version, format: 'sqlite' as const, ...m }),
      (err: unknown) => {
        throw databaseError(`SQLite snapshot of ${this.location} could not be checked`, err);
      },
    );
    // The caller awaits it; one that fails before then must not leave an unhandled rejection.
    facts.catch(() => {});
    return {
      file,
      name,
      size,
      facts,
      // No position: PRAGMA data_version only means something to the connection that read
      // it (it changes when *other* connections commit), so its value is not comparable
      // across connections or processes, and a WAL database's header change counter stays
      // still. A number that looks like a log position but is not one would mislead.
      method: 'sqlite-backup-api',
    };
  }

  /** On a thread of its own: a large database takes seconds to check, and the caller's lock must keep renewing. */
  inspect(file: string): Promise<SnapshotInspection> {
    return aside<SnapshotInspection>({ task: 'inspect', file: resolve(file) });
  }

  private openSource(): Database.Database {
    if (!existsSync(this.location)) {
      throw new LifeboatError('DATABASE_ERROR', `SQLite database ${this.location} not found`, {
        hint: "check the target's database path (relative to the target's root) and that the trading system has created it",
        retryable: false,
      });
    }
    let db: Database.Database;
    try {
      // Read-only: the backup only reads, and a read-only connection never checkpoints or
      // removes the live database's -wal file when it closes. It still shares the -shm
      // index, so it reads alongside a writer in another process in WAL mode.
      db = new Database(this.location, { readonly: true, fileMustExist: true });
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.prepare('SELECT count(*) FROM sqlite_master').get();
    } catch (err) {
      throw databaseError(
        `SQLite database ${this.location} could not be opened`,
        err,
        'is it a SQLite database?',
        false,
      );
    }
    return db;
  }
}

export type SqliteTask =
  | { task: 'copy'; source: string; dest: string }
  | { task: 'measure'; file: string }
  | { task: 'inspect'; file: string }
  | { task: 'integrity'; file: string };

/** Runs one of SQLite's long steps in this thread; `aside` runs it on a worker thread. */
export async function runSqliteTask(t: SqliteTask): Promise<unknown> {
  if (t.task === 'copy') return copyDatabase(t.source, t.dest);
  if (t.task === 'measure') return measureSnapshot(t.file);
  if (t.task === 'integrity') return checkSqliteIntegrity(t.file);
  return inspectSnapshot(t.file);
}

/** `PRAGMA integrity_check` of a live database on a read-only connection; a file that will not open is its own answer. */
export function checkSqliteIntegrity(file: string): { ok: boolean; detail: string } {
  if (!hasSqliteHeaderSync(file)) {
    return { ok: false, detail: `${file} has no SQLite header (not a database, or its first page is damaged)` };
  }
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
  try {
    return integrityCheck(db);
  } finally {
    db.close();
  }
}

/**
 * The same on a thread of its own, at a lower priority (see sqlite-worker.ts): the
 * reconciler reads the books meanwhile. The worker starts before this returns.
 */
export function checkSqliteIntegrityAside(file: string): Promise<{ ok: boolean; detail: string }> {
  return aside({ task: 'integrity', file });
}

/** Checks a snapshot file that may be anything: a missing file, a foreign one, a damaged database. */
async function inspectSnapshot(path: string): Promise<SnapshotInspection> {
  if (!existsSync(path)) {
    throw new LifeboatError('DATABASE_ERROR', `SQLite snapshot ${path} not found`, {
      hint: 'check the path of the extracted database file',
      retryable: false,
    });
  }
  // SQLite would open an empty or foreign file as a new, empty database and call it
  // healthy; the header's magic string says whether this is a database at all.
  if (!(await hasSqliteHeader(path))) {
    throw new LifeboatError('DATABASE_ERROR', `${path} is not a SQLite database (no SQLite header)`, {
      hint: 'is this the right file, and was it extracted completely?',
      retryable: false,
    });
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw databaseError(`SQLite snapshot ${path} could not be opened`, err);
  }
  try {
    let names: string[];
    try {
      names = userTables(db);
    } catch (err) {
      // The header or the schema page is unreadable: not a database at all (or one too
      // damaged to say which tables it had).
      throw databaseError(`${path} is not a SQLite database`, err, 'is this the right file?', false);
    }
    const integrity = integrityCheck(db);
    let tables: Record<string, number> | undefined;
    try {
      tables = countRows(db, names);
    } catch {
      // A damaged table cannot be counted; the integrity result already says why.
      tables = undefined;
    }
    return tables ? { integrity, tables } : { integrity };
  } finally {
    db.close();
  }
}

/**
 * Copies a live database into `dest` and makes the copy self-contained: a copy of a WAL
 * database is itself marked WAL, so it is switched to a rollback journal (no -wal or -shm
 * beside it, readable from a read-only medium).
 */
async function copyDatabase(source: string, dest: string): Promise<{ version: string }> {
  // Read-only: the backup only reads, and a read-only connection never checkpoints or
  // removes the live database's -wal file when it closes. It still shares the -shm index,
  // so it reads alongside a writer in another process in WAL mode.
  const src = new Database(source, { readonly: true, fileMustExist: true });
  try {
    src.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // SQLite restarts a backup whenever another connection writes between steps, so a
    // backup in small steps may never end under steady writes. better-sqlite3's first step
    // copies no pages; the progress callback then asks for every page, and that one step
    // reads the source inside a single read transaction: a consistent cut, however busy the
    // writers are.
    await src.backup(dest, { progress: () => ALL_PAGES });
  } finally {
    src.close();
  }
  const db = new Database(dest, { fileMustExist: true });
  try {
    db.pragma('journal_mode = DELETE');
    return { version: (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v };
  } finally {
    db.close();
  }
}

/** The snapshot's integrity check and the row count of every table. */
function measureSnapshot(file: string): {
  integrity: { ok: boolean; detail: string };
  tables: Record<string, number>;
} {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const integrity = integrityCheck(db);
    return { integrity, tables: countRows(db, userTables(db)) };
  } finally {
    db.close();
  }
}

/** The compiled worker; absent when sources run under a test runner, where tasks run in this thread. */
function workerModule(): URL | null {
  const compiled = new URL('./sqlite-worker.js', import.meta.url);
  return existsSync(fileURLToPath(compiled)) ? compiled : null;
}

/** An error as it crosses from the worker: a LifeboatError keeps its code, hint and retryability. */
export interface TaskError {
  message: string;
  code?: string;
  hint?: string;
  retryable?: boolean;
}

export function taskError(err: unknown): TaskError {
  if (err instanceof LifeboatError) {
    return { message: err.message, code: err.code, ...(err.hint ? { hint: err.hint } : {}), retryable: err.retryable };
  }
  return { message: err instanceof Error ? err.message : String(err) };
}

function aside<T>(t: SqliteTask): Promise<T> {
  const module = workerModule();
  if (!module) return runSqliteTask(t) as Promise<T>;
  return new Promise<T>((resolve, reject) => {
    const worker = new Worker(module, { workerData: t });
    worker.once('message', (m: { result?: T; error?: TaskError }) => {
      if (m.error === undefined) resolve(m.result as T);
      else if (m.error.code)
        reject(
          new LifeboatError(m.error.code as LifeboatError['code'], m.error.message, {
            ...(m.error.hint ? { hint: m.error.hint } : {}),
            ...(m.error.retryable === undefined ? {} : { retryable: m.error.retryable }),
          }),
        );
      else reject(new Error(m.error.message));
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`SQLite's worker thread exited with code ${code}`));
    });
  });
}

function userTables(db: Database.Database): string[] {
  const rows = db
    .prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .all() as { name: string }[];
  return rows.map((r) => r.name);
}

function countRows(db: Database.Database, names: string[]): Record<string, number> {
  const tables: Record<string, number> = {};
  for (const name of names) {
    const row = db.prepare(`SELECT count(*) AS n FROM "${name.replaceAll('"', '""')}"`).get() as { n: number };
    tables[name] = row.n;
  }
  return tables;
}

export function integrityCheck(db: Database.Database): { ok: boolean; detail: string } {
  try {
    const lines = (db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[]).map(
      (r) => r.integrity_check,
    );
    if (lines.length === 1 && lines[0] === 'ok') return { ok: true, detail: 'ok' };
    const more = lines.length > INTEGRITY_LINES ? `; … ${lines.length - INTEGRITY_LINES} more` : '';
    return { ok: false, detail: lines.slice(0, INTEGRITY_LINES).join('; ') + more };
  } catch (err) {
    // SQLITE_CORRUPT may stop the check itself; that is its answer.
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

export async function hasSqliteHeader(file: string): Promise<boolean> {
  const fd = await open(file, 'r');
  try {
    const head = Buffer.alloc(SQLITE_MAGIC.length);
    const { bytesRead } = await fd.read(head, 0, head.length, 0);
    return bytesRead === head.length && head.equals(SQLITE_MAGIC);
  } finally {
    await fd.close();
  }
}

/** The same, blocking: for a caller that must not yield before its next step. */
export function hasSqliteHeaderSync(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(SQLITE_MAGIC.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(SQLITE_MAGIC);
  } finally {
    closeSync(fd);
  }
}

async function removeDatabaseFiles(file: string): Promise<void> {
  await Promise.all(['', '-wal', '-shm', '-journal'].map((suffix) => rm(file + suffix, { force: true })));
}

function databaseError(message: string, err: unknown, hint?: string, retryable?: boolean): LifeboatError {
  const reason = err instanceof Error ? err.message : String(err);
  return new LifeboatError('DATABASE_ERROR', `${message}: ${reason}`, {
    ...(hint ? { hint } : {}),
    cause: err,
    ...(retryable === undefined ? {} : { retryable }),
  });
}
