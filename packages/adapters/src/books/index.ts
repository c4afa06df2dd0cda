// Books stores behind the BooksStore port, and the one place that picks one: a books file,
// a SQLite file, or a PostgreSQL URL.
import { isAbsolute, resolve } from 'node:path';
import type { BooksStore, DatabaseConfig } from '@lifeboat/domain';
import { LifeboatError } from '@lifeboat/domain';
import { parseUrl } from '../database/postgres.js';
import { FileBooksStore } from './file.js';
import { PostgresBooksStore } from './postgres.js';
import type { BooksProfile } from './profile.js';
import { SqliteBooksStore } from './sqlite.js';

export { FileBooksStore, readJson } from './file.js';
export { PostgresBooksStore } from './postgres.js';
export { type BooksProfile, POSTGRES_BOOKS_PROFILE, SQLITE_BOOKS_PROFILE } from './profile.js';
export { SqliteBooksStore } from './sqlite.js';

/** `--internal`: a `.json` books file, a `postgres://` URL, or a SQLite database file. */
export function openBooksSource(spec: string, profile?: BooksProfile): BooksStore {
  if (/^postgres(ql)?:\/\//i.test(spec)) return new PostgresBooksStore(spec, profile);
  if (spec.toLowerCase().endsWith('.json')) return new FileBooksStore(spec);
  return new SqliteBooksStore(spec, profile);
}

/** The books of a configured target's own database. */
export function openTargetBooks(
  db: DatabaseConfig | null,
  targetRoot: string,
  profile?: BooksProfile,
  env: NodeJS.ProcessEnv = process.env,
): BooksStore {
  if (!db) {
    throw new LifeboatError('INVALID_CONFIG', 'the target has no database to reconcile', {
      hint: 'pass --internal <books file|database path|postgres url>',
    });
  }
  if (db.engine === 'sqlite') {
    return new SqliteBooksStore(isAbsolute(db.path) ? db.path : resolve(targetRoot, db.path), profile);
  }
  const url = db.url ?? env[db.urlEnv];
  if (!url) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `the PostgreSQL URL is not set: environment variable ${db.urlEnv} is empty`,
      {
        hint: `export ${db.urlEnv}=postgres://user:password@host:5432/dbname`,
      },
    );
  }
  return new PostgresBooksStore(url, profile);
}

/**
 * A PostgreSQL URL given without a password (job data never carries one) on the server of
 * the target's own database, as the same user: the target's password, from the environment.
 * Anything else is returned as it was given.
 */
export function withTargetCredentials(
  spec: string,
  db: DatabaseConfig | null | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (!/^postgres(ql)?:\/\//i.test(spec) || db?.engine !== 'postgres') return spec;
  const own = db.url ?? env[db.urlEnv];
  if (!own || !/^postgres(ql)?:\/\//i.test(own)) return spec;
  const given = new URL(spec);
  const target = new URL(own);
  const password = parseUrl(own).password;
  const sameServer =
    given.hostname === target.hostname &&
    (given.port || '5432') === (target.port || '5432') &&
    decodeURIComponent(given.username) === decodeURIComponent(target.username);
  if (given.password || given.searchParams.has('password') || !password || !sameServer) return spec;
  given.password = encodeURIComponent(password);
  return given.toString();
}
