// Putting a backed-up database back: into a staging place first (a file beside the live
// one, or a new PostgreSQL database), checked there (integrity, row counts against the
// manifest), then swapped in by rename, the damaged one kept aside under a dated name.
import { existsSync } from 'node:fs';
import { link, rename } from 'node:fs/promises';
import { inspectDatabaseFile, parseUrl, runPgTool } from '@lifeboat/adapters';
import { LifeboatError } from '@lifeboat/domain';
import pg from 'pg';

export interface CheckedDatabase {
  integrity: { ok: boolean; detail: string };
  tables: Record<string, number>;
}

/**
 * Throws VERIFY_FAILED unless the database passes its check and holds the expected row
 * counts: the manifest's, or (`against`) those of the server a dump was taken from.
 */
export function assertMatchesManifest(
  checked: { integrity: { ok: boolean; detail: string }; tables?: Record<string, number> },
  expected: Record<string, number>,
  where: string,
  against = 'the manifest',
): CheckedDatabase {
  if (!checked.integrity.ok) {
    throw new LifeboatError('VERIFY_FAILED', `${where} fails its integrity check: ${checked.integrity.detail}`, {
      hint: 'use another backup (--backup <id>)',
    });
  }
  const tables = checked.tables ?? {};
  const diffs = Object.entries(expected)
    .filter(([t, n]) => tables[t] !== n)
    .map(([t, n]) => `${t} ${tables[t] ?? 'missing'} (expected ${n})`);
  if (diffs.length) {
    throw new LifeboatError('VERIFY_FAILED', `${where}: row counts differ from ${against}: ${diffs.join(', ')}`);
  }
  return { integrity: checked.integrity, tables };
}

export async function checkSqliteFile(file: string, expected: Record<string, number>): Promise<CheckedDatabase> {
  // The engine checks on a thread of its own, so the restore's lock keeps renewing meanwhile.
  return assertMatchesManifest(await inspectDatabaseFile('sqlite', file), expected, file);
}

const SIDE_FILES = ['', '-wal', '-shm', '-journal'];

/**
 * Moves the live SQLite database (and its -wal/-shm) aside as `<name>.corrupted-<stamp>`
 * and renames the staged file into its place. Returns the paths kept aside.
 */
export async function swapSqlite(staged: string, live: string, stamp: string): Promise<string[]> {
  const aside: string[] = [];
  const asideBase = `${live}.corrupted-${stamp}`;
  for (const suffix of SIDE_FILES) {
    if (!existsSync(live + suffix)) continue;
    // The live file keeps its name until the restored one takes it (a second name first, then
    // a rename over it): a crash in between leaves one database or the other there, never none.
    if (suffix === '') await link(live, asideBase).catch(() => rename(live, asideBase));
    else await rename(live + suffix, asideBase + suffix);
    aside.push(asideBase + suffix);
  }
  await rename(staged, live);
  return aside;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!name) throw new LifeboatError('INVALID_CONFIG', 'the PostgreSQL URL names no database');
  return name;
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The maintenance database of the target's server, to create, rename and drop databases from. */
function maintenanceUrl(url: string): string {
  return withDatabase(url, 'postgres');
}

export interface StagedPostgres {
  /** The new database the dump was restored into. */
  name: string;
  checked: CheckedDatabase;
}

/** The staging database a restore started at `stamp` makes beside the target's: `<db>_restore_<stamp>`. */
export function stagingDatabaseName(targetUrl: string, stamp: string): string {
  return `${databaseName(targetUrl)}_restore_${stamp}`.slice(0, 63);
}

/** Restores a pg_dump custom-format file into a new database `<db>_restore_<stamp>` and checks it. */
export async function restorePostgresStaging(
  targetUrl: string,
  dumpFile: string,
  stamp: string,
  expected: Record<string, number>,
): Promise<StagedPostgres> {
  const name = stagingDatabaseName(targetUrl, stamp);
  await withClient(maintenanceUrl(targetUrl), (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`));
  await pgRestore(targetUrl, name, dumpFile);
  const tables = await countRows(withDatabase(targetUrl, name));
  return {
    name,
    checked: assertMatchesManifest(
      { integrity: { ok: true, detail: 'pg_restore --exit-on-error completed' }, tables },
      expected,
      `database ${name}`,
    ),
  };
}

/**
 * Puts another dump in the place of the one restored into this restore's staging database
 * (the roll-forward's, replayed from the WAL archive): the staging database is dropped and
 * made again, so nothing of the first dump stays, then the dump is restored and its row
 * counts checked against `expected`, those of the server it was taken from. Only the staging
 * database of the restore started at `stamp` is ever dropped: never the target's own.
 */
export async function replacePostgresStaging(
  targetUrl: string,
  stagedName: string,
  stamp: string,
  dumpFile: string,
  expected: Record<string, number>,
  against: string,
): Promise<StagedPostgres> {
  if (stagedName !== stagingDatabaseName(targetUrl, stamp) || stagedName === databaseName(targetUrl)) {
    throw new LifeboatError('INTERNAL', `${stagedName} is not the staging database of this restore: it is not dropped`);
  }
  await withClient(maintenanceUrl(targetUrl), async (c) => {
    await c.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [stagedName],
    );
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(stagedName)}`);
    await c.query(`CREATE DATABASE ${quoteIdent(stagedName)}`);
  });
  await pgRestore(targetUrl, stagedName, dumpFile);
  const tables = await countRows(withDatabase(targetUrl, stagedName));
  return {
    name: stagedName,
    checked: assertMatchesManifest(
      { integrity: { ok: true, detail: 'pg_restore --exit-on-error completed' }, tables },
      expected,
      `database ${stagedName}`,
      against,
    ),
  };
}

/** pg_restore of a custom-format dump into an existing database of the target's server, as the target's user. */
async function pgRestore(targetUrl: string, name: string, dumpFile: string): Promise<void> {
  const parsed = parseUrl(targetUrl);
  const restored = await runPgTool(
    'pg_restore',
    [
      '--no-owner',
      '--no-privileges',
      '--exit-on-error',
      '--no-password',
      `--dbname=${parseUrl(withDatabase(targetUrl, name)).safe}`,
      dumpFile,
    ],
    parsed.password === undefined ? {} : { PGPASSWORD: parsed.password },
  );
  if (restored.code !== 0) {
    const line = restored.stderr.split('\n').find((l) => l.trim()) ?? `exit code ${restored.code}`;
    throw new LifeboatError(
      'DATABASE_ERROR',
      `pg_restore into ${name} failed: ${parsed.password ? line.split(parsed.password).join('***') : line}`,
      {
        hint: `the staging database ${name} is left for inspection; drop it when done`,
      },
    );
  }
}

/** Rows of every user table, keyed as a backup's manifest keys them: `table` in public, `schema.table` elsewhere. */
async function countRows(url: string): Promise<Record<string, number>> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, c.relname AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
        ORDER BY n.nspname, c.relname`,
    );
    const out: Record<string, number> = {};
    for (const { schema, name } of rows) {
      const counted = await c.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM ${quoteIdent(schema)}.${quoteIdent(name)}`,
      );
      out[schema === 'public' ? name : `${schema}.${name}`] = Number(counted.rows[0]?.n);
    }
    return out;
  });
}

/**
 * Swaps the staged database in by renaming: connections to the live one are terminated,
 * it is renamed `<db>_corrupted_<stamp>` (kept, never dropped), and the staged one takes its
 * name. Returns the aside name, or null when there was no live database (a new server).
 */
export async function swapPostgres(targetUrl: string, stagedName: string, stamp: string): Promise<string | null> {
  const target = databaseName(targetUrl);
  const aside = `${target}_corrupted_${stamp}`.slice(0, 63);
  return withClient(maintenanceUrl(targetUrl), async (c) => {
    const exists = (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [target])).rowCount;
    const terminate = (db: string) =>
      c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [
        db,
      ]);
    if (exists) {
      await terminate(target);
      await c.query(`ALTER DATABASE ${quoteIdent(target)} RENAME TO ${quoteIdent(aside)}`);
    }
    await terminate(stagedName);
    await c.query(`ALTER DATABASE ${quoteIdent(stagedName)} RENAME TO ${quoteIdent(target)}`);
    return exists ? aside : null;
  });
}

/** Drops a staging database left by a failed restore (only names this module makes). */
export async function dropStagingDatabase(targetUrl: string, name: string): Promise<void> {
  if (!/_restore_\d{8}T\d{6}/.test(name)) return;
  await withClient(maintenanceUrl(targetUrl), (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`)).catch(
    () => {},
  );
}

export { databaseName };
