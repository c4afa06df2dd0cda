// Streaming a PostgreSQL server's WAL as it is flushed: `pg_receivewal` writes it into a spool
// directory (a segment being written is `<name>.partial`), and a connection of its own reads
// how far the server has flushed and how far the receiver has (pg_stat_replication), which is
// what the shipper may upload and how far behind it is.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { LifeboatError } from '@lifeboat/domain';
import { parseLsn } from '@lifeboat/domain/wal';
import pg from 'pg';
import { parseUrl } from './postgres.js';
import { redact } from './postgres-basebackup.js';

const CONNECT_TIMEOUT_MS = 10_000;

/** pg_receivewal of the server's major version when installed side by side (Debian, PGDG), else the one on PATH. */
export function pgReceivewalFor(major: number): string {
  for (const dir of [`/usr/lib/postgresql/${major}/bin`, `/usr/pgsql-${major}/bin`]) {
    if (existsSync(`${dir}/pg_receivewal`)) return `${dir}/pg_receivewal`;
  }
  return 'pg_receivewal';
}

/** The URL with an application_name, which names the receiver in pg_stat_replication. */
function withApplicationName(safeUrl: string, name: string): string {
  if (/^postgres(ql)?:\/\//i.test(safeUrl)) {
    const u = new URL(safeUrl);
    u.searchParams.set('application_name', name);
    return u.toString();
  }
  return `${safeUrl} application_name=${name}`;
}

export interface Receiver {
  child: ChildProcess;
  /** The last lines pg_receivewal wrote (its errors). */
  stderr(): string;
  /** Settles with the exit code (null: killed by a signal) when the process ends. */
  exited: Promise<number | null>;
}

/**
 * Starts `pg_receivewal --synchronous` into `dir`: it flushes what it receives and tells the
 * server at once, so the flush position the server reports is on disk in `dir`. `--no-loop`:
 * a lost connection ends it, and the caller decides when to start again (and says why).
 */
export function startReceiver(
  url: string,
  options: { dir: string; applicationName: string; command: string; slot?: string },
): Receiver {
  const { safe, password } = parseUrl(url);
  const child = spawn(
    options.command,
    [
      `--directory=${options.dir}`,
      `--dbname=${withApplicationName(safe, options.applicationName)}`,
      '--no-password',
      '--no-loop',
      '--synchronous',
      '--status-interval=1',
      ...(options.slot ? [`--slot=${options.slot}`] : []),
    ],
    {
      // The password travels in the environment, never on the command line.
      env: { ...process.env, LC_ALL: 'C', LANG: 'C', ...(password === undefined ? {} : { PGPASSWORD: password }) },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString('utf8')).slice(-8192);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (err) => {
      stderr += `\n${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `${options.command} is not installed (PostgreSQL's client programs)` : err.message}`;
      resolve(-1);
    });
    child.on('exit', (code) => resolve(code));
  });
  return { child, stderr: () => redact(stderr, url), exited };
}

/** `pg_receivewal --create-slot --if-not-exists`: the slot the receiver streams through. */
export async function createReceiverSlot(url: string, options: { slot: string; command: string }): Promise<void> {
  const { safe, password } = parseUrl(url);
  const child = spawn(
    options.command,
    [`--dbname=${safe}`, '--no-password', '--create-slot', '--if-not-exists', `--slot=${options.slot}`],
    {
      env: { ...process.env, LC_ALL: 'C', LANG: 'C', ...(password === undefined ? {} : { PGPASSWORD: password }) },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString('utf8');
  });
  const code = await new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(-1));
    child.on('exit', resolve);
  });
  if (code !== 0) {
    throw new LifeboatError(
      'TARGET_ERROR',
      `cannot create replication slot ${options.slot}: ${redact(stderr.trim(), url) || `exit code ${code}`}`,
      { hint: 'the user needs the REPLICATION attribute, and the server max_replication_slots > 0' },
    );
  }
}

export interface WalPositions {
  /** How far the server has flushed its WAL (a byte position). */
  server: number;
  /** How far the named receiver has flushed it, or null when none is connected. */
  received: number | null;
}

/** A connection that reads WAL positions; reconnects on the next read after an error. */
export class WalPositionProbe {
  #client: pg.Client | null = null;

  constructor(
    private readonly url: string,
    private readonly applicationName: string,
  ) {}

  async #connect(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: `${this.applicationName}-probe`,
    });
    client.on('error', () => {
      this.#client = null;
    });
    try {
      await client.connect();
    } catch (err) {
      throw new LifeboatError(
        'DATABASE_ERROR',
        `PostgreSQL at ${parseUrl(this.url).safe} unreachable: ${redact((err as Error).message, this.url)}`,
        { retryable: true, cause: err },
      );
    }
    this.#client = client;
    return client;
  }

  /** Facts read once: the major version and the segment size. */
  async facts(): Promise<{ major: number; segmentSize: number }> {
    const client = await this.#connect();
    const { rows } = await client.query<{ num: string; seg: string }>(
      `SELECT current_setting('server_version_num') AS num,
              (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg`,
    );
    const row = rows[0] as { num: string; seg: string };
    return { major: Math.floor(Number(row.num) / 10000), segmentSize: Number(row.seg) };
  }

  /**
   * The segment after the last one archive_command archived, when it is on the timeline the
   * server writes now (null otherwise: nothing archived yet, a standby, a new timeline). The
   * server keeps every segment not yet archived, so a receiver can start there.
   */
  async firstUnarchived(): Promise<{ lastArchived: string; current: string } | null> {
    const client = await this.#connect();
    const { rows } = await client.query<{ last: string | null; current: string | null }>(
      `SELECT last_archived_wal AS last,
              CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current
         FROM pg_stat_archiver`,
    );
    const row = rows[0];
    if (!row?.last || !row.current || !/^[0-9A-F]{24}$/.test(row.last)) return null;
    return { lastArchived: row.last, current: row.current };
  }

  async read(): Promise<WalPositions> {
    const client = await this.#connect();
    try {
      const { rows } = await client.query<{ server: string; received: string | null }>(
        `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END)::text AS server,
                (SELECT flush_lsn::text FROM pg_stat_replication WHERE application_name = $1
                  ORDER BY backend_start DESC LIMIT 1) AS received`,
        [this.applicationName],
      );
      const row = rows[0] as { server: string; received: string | null };
      return { server: parseLsn(row.server), received: row.received === null ? null : parseLsn(row.received) };
    } catch (err) {
      await this.close();
      throw new LifeboatError('DATABASE_ERROR', `reading WAL positions: ${redact((err as Error).message, this.url)}`, {
        retryable: true,
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    const c = this.#client;
    this.#client = null;
    await c?.end().catch(() => {});
  }
}
