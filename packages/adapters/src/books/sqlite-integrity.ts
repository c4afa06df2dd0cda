// The integrity check of a target's SQLite books, in this thread or in a worker thread.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { hasSqliteHeaderSync, integrityCheck } from '../database/sqlite.js';

export interface IntegrityResult {
  ok: boolean;
  detail: string;
}

const BUSY_TIMEOUT_MS = 10_000;

/** `PRAGMA integrity_check` on a read-only connection; a file that will not open is its own answer. */
export function checkSqliteIntegrity(file: string): IntegrityResult {
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

/** The compiled worker; absent when sources run under a test runner, where the check runs in this thread. */
function workerModule(): URL | null {
  const compiled = new URL('./sqlite-integrity-worker.js', import.meta.url);
  return existsSync(fileURLToPath(compiled)) ? compiled : null;
}

/** The check off the main thread where a worker can run, so it overlaps the reconciler's other work. */
export function checkSqliteIntegrityAside(file: string): Promise<IntegrityResult> {
  const module = workerModule();
  if (!module) return Promise.resolve(checkSqliteIntegrity(file));
  return new Promise((resolve, reject) => {
    const worker = new Worker(module, { workerData: { file } });
    worker.once('message', (result: IntegrityResult) => {
      resolve(result);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`the integrity check's worker exited with code ${code}`));
    });
  });
}
