// The PostgreSQL database engine: pg_dump inside an exported snapshot, so the dump and the row counts describe one cut.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type DatabaseEngine, type DatabaseSnapshot, LifeboatError, type SnapshotInspection } from '@lifeboat/domain';
import pg from 'pg';

/** How long pg_dump waits for a table lock held by someone else before failing instead of hanging. */
const LOCK_WAIT_TIMEOUT = '2min';
const CONNECT_TIMEOUT_MS = 10_000;

/** A connection string split into what may be shown and what must stay secret. */
export interface ParsedUrl {
  /** The URL without its password: safe for messages and for a child's command line. */
  safe: string;
  password: string | undefined;
}

export class PostgresEngine implements DatabaseEngine {
  readonly engine = 'postgres' as const;
  readonly location: string;
  readonly #url: string;
  readonly #parsed: ParsedUrl;

  constructor(url: string) {
    this.#url = url;
    this.#parsed = parseUrl(url);
    this.location = this.#parsed.safe;
  }

  async snapshot(dir: string): Promise<DatabaseSnapshot> {
    const client = new pg.Client({
      connectionString: this.#url,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'lifeboat-snapshot',
    });
    // A connection dropped while pg_dump runs must fail the snapshot, not crash the process.
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (err) {
      throw this.#error(`PostgreSQL at ${this.location} unreachable`, err, {
        hint: 'is the server running, and is the URL (or the environment variable holding it) right?',
        retryable: true,
      });
    }

    try {
      // One repeatable-read transaction fixes the cut: the counts below and pg_dump (which
      // adopts the exported snapshot) see exactly the same committed rows, whatever
      // commits meanwhile. The transaction stays open until pg_dump is done with it.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const { rows: snap } = await client.query<{ id: string; db: string; version: string }>(
        "SELECT pg_export_snapshot() AS id, current_database() AS db, current_setting('server_version') AS version",
      );
      const { id, db, version } = snap[0]!;
      const position = await walPosition(client);
      const tables = await countRows(client);

      // The name comes from the server, so it is made safe for a file name.
      const name = `${db.replace(/[^A-Za-z0-9._-]/g, '_')}.dump`;
      const dumpFile = join(dir, name);
      const staging = `${dumpFile}.partial`;
      await rm(staging, { force: true });
      const dump = await runPgTool(
        'pg_dump',
        [
          '--format=custom',
          // Uncompressed: the archive compresses it on every core; compressing here too
          // would spend a core's time on bytes gzip then cannot shrink.
          '--compress=0',
          `--snapshot=${id}`,
          '--no-password',
          `--lock-wait-timeout=${LOCK_WAIT_TIMEOUT}`,
          `--file=${staging}`,
          // The password travels in the child's environment, never on its command line,
          // where any user of the machine could read it in the process list.
          `--dbname=${this.#parsed.safe}`,
        ],
        this.#parsed.password === undefined ? {} : { PGPASSWORD: this.#parsed.password },
      );
      if (dump.code !== 0) {
        await rm(staging, { force: true });
        throw new LifeboatError(
          'DATABASE_ERROR',
          `pg_dump of ${this.location} failed: ${this.#redact(firstLine(dump.stderr) || `exit code ${dump.code}`)}`,
          { hint: 'pg_dump must be at least as new as the server, and the user must be able to read every table' },
        );
      }
      await client.query('COMMIT');
      await rename(staging, dumpFile);

      const integrity = await listArchive(dumpFile);
      const { size } = await stat(dumpFile);
      return {
        file: dumpFile,
        name,
        size,
        facts: Promise.resolve({ engine: 'postgres' as const, version, format: 'pg_dump-custom', tables, integrity }),
        ...(position ? { position } : {}),
        method: 'pg_dump-snapshot',
      };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      if (err instanceof LifeboatError) throw err;
      throw this.#error(`snapshot of PostgreSQL at ${this.location} failed`, err);
    } finally {
      await client.end().catch(() => {});
    }
  }

  async inspect(file: string): Promise<SnapshotInspection> {
    // Row counts need a restore; a custom-format dump only lists its table of contents.
    return { integrity: await listArchive(resolve(file)) };
  }

  #redact(text: string): string {
    const pw = this.#parsed.password;
    return pw ? text.split(pw).join('***') : text;
  }

  #error(message: string, err: unknown, options: { hint?: string; retryable?: boolean } = {}): LifeboatError {
    const reason = err instanceof Error ? err.message : String(err);
    return new LifeboatError('DATABASE_ERROR', `${message}: ${this.#redact(reason)}`, { ...options, cause: err });
  }
}

/** The WAL position of the cut; a replica reports its replay position, and a refusal is no position. */
async function walPosition(client: pg.Client): Promise<string | undefined> {
  // A failed statement would abort the snapshot transaction, so it runs in a savepoint.
  await client.query('SAVEPOINT lifeboat_lsn');
  try {
    const { rows } = await client.query<{ lsn: string | null }>(
      'SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn',
    );
    await client.query('RELEASE SAVEPOINT lifeboat_lsn');
    return rows[0]?.lsn ?? undefined;
  } catch {
    await client.query('ROLLBACK TO SAVEPOINT lifeboat_lsn');
    return undefined;
  }
}

/** Rows of every user table, keyed `table` in the public schema and `schema.table` elsewhere. */
async function countRows(client: pg.Client): Promise<Record<string, number>> {
  const { rows } = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p')
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
      ORDER BY n.nspname, c.relname`,
  );
  const tables: Record<string, number> = {};
  for (const { schema, name } of rows) {
    const ident = `${quoteIdent(schema)}.${quoteIdent(name)}`;
    const { rows: counted } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${ident}`);
    tables[schema === 'public' ? name : `${schema}.${name}`] = Number(counted[0]!.n);
  }
  return tables;
}

/** `pg_restore --list`: proof that the dump's table of contents reads back, with its entry count. */
async function listArchive(file: string): Promise<{ ok: boolean; detail: string }> {
  if (!existsSync(file)) {
    throw new LifeboatError('DATABASE_ERROR', `PostgreSQL dump ${file} not found`, {
      hint: 'check the path of the extracted dump file',
      retryable: false,
    });
  }
  const listed = await runPgTool('pg_restore', ['--list', file], {});
  if (listed.code !== 0) {
    return { ok: false, detail: firstLine(listed.stderr) || `pg_restore --list exited with ${listed.code}` };
  }
  const entries = listed.stdout.split('\n').filter((line) => line.trim() !== '' && !line.startsWith(';')).length;
  return { ok: true, detail: `pg_restore --list: ${entries} TOC entries` };
}

export function parseUrl(url: string): ParsedUrl {
  if (/^postgres(ql)?:\/\//i.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new LifeboatError('INVALID_CONFIG', 'the PostgreSQL URL cannot be parsed', {
        hint: 'write it as postgres://user:password@host:5432/dbname (percent-encode special characters)',
      });
    }
    let password = parsed.password ? decodeURIComponent(parsed.password) : undefined;
    parsed.password = '';
    const fromQuery = parsed.searchParams.get('password');
    if (fromQuery !== null) {
      password ??= fromQuery;
      parsed.searchParams.delete('password');
    }
    return { safe: parsed.toString(), password };
  }
  // libpq's keyword form: host=… dbname=… password=…
  const match = /(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/.exec(url);
  if (!match) return { safe: url, password: undefined };
  const raw = match[1]!;
  const password = raw.startsWith("'") ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
  return { safe: url.replace(match[0], '').trim(), password };
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? ''
  );
}

/** Runs a PostgreSQL client tool, capturing its output; a missing tool is a configuration problem. */
export function runPgTool(
  command: string,
  args: string[],
  extraEnv: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        new LifeboatError(
          'DATABASE_ERROR',
          e.code === 'ENOENT' ? `${command} not found on PATH` : `${command} could not start: ${e.message}`,
          { hint: "install PostgreSQL's client tools, at least as new as the server", retryable: false, cause: e },
        ),
      );
    });
    child.on('close', (code, signal) => {
      resolvePromise({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}
