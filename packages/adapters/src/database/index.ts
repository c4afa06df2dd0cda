// Database engines behind the DatabaseEngine port, and the one place that picks one from a target's configuration.
import { isAbsolute, resolve } from 'node:path';
import { type DatabaseConfig, type DatabaseEngine, LifeboatError, type SnapshotInspection } from '@lifeboat/domain';
import { PostgresEngine } from './postgres.js';
import { SqliteEngine } from './sqlite.js';

export { PostgresEngine, parseUrl, runPgTool } from './postgres.js';
export * from './postgres-basebackup.js';
export * from './postgres-receivewal.js';
export * from './postgres-server.js';
export { SqliteEngine } from './sqlite.js';

/**
 * The engine for a target's database: a SQLite path is relative to the target's root; a
 * PostgreSQL URL comes from the configuration or, usually, from the environment variable it
 * names, so a password never sits in a configuration file.
 */
export function createDatabaseEngine(
  db: DatabaseConfig,
  targetRoot: string,
  env: NodeJS.ProcessEnv = process.env,
): DatabaseEngine {
  if (db.engine === 'sqlite') {
    return new SqliteEngine(isAbsolute(db.path) ? db.path : resolve(targetRoot, db.path));
  }
  const url = db.url ?? env[db.urlEnv];
  if (!url) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `the PostgreSQL URL is not set: environment variable ${db.urlEnv} is empty`,
      {
        hint: `export ${db.urlEnv}=postgres://user:password@host:5432/dbname, or set database.url for a passwordless setup`,
      },
    );
  }
  return new PostgresEngine(url);
}

/**
 * Checks a snapshot file made by either engine without a live database (verification of a
 * restored file): SQLite's integrity check and row counts, or pg_restore's table of contents.
 */
export function inspectDatabaseFile(engine: 'sqlite' | 'postgres', file: string): Promise<SnapshotInspection> {
  return engine === 'sqlite'
    ? new SqliteEngine(file).inspect(file)
    : new PostgresEngine('postgres://localhost/unused').inspect(file);
}
