// Base backups of a PostgreSQL server for point-in-time recovery: the server's facts that
// decide whether continuous archiving works, and `pg_basebackup -Ft -D -` as a byte stream
// whose backup_label and backup_manifest are read as they pass, so the WAL range a restore
// needs is known without a second look at the archive.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { LifeboatError } from '@lifeboat/domain/errors';
import pg from 'pg';
import { Header } from 'tar';
import { parseUrl } from './postgres.js';
import { lastLines } from './postgres-server.js';

const CONNECT_TIMEOUT_MS = 10_000;

export interface ServerFacts {
  /** server_version, e.g. "15.20 (Debian 15.20-0+deb12u1)". */
  version: string;
  versionNum: number;
  major: number;
  /** pg_control_system().system_identifier, when this user may read it. */
  systemIdentifier: string | null;
  walSegmentSize: number;
  walLevel: string;
  archiveMode: string;
  /** null when this user may not read it. */
  archiveCommand: string | null;
  inRecovery: boolean;
  /** pg_stat_archiver: the newest file archived and the newest failure. */
  archiver: {
    lastArchivedWal: string | null;
    lastArchivedAt: Date | null;
    lastFailedWal: string | null;
    lastFailedAt: Date | null;
  };
}

/** Reads what a base backup and continuous archiving depend on. */
export async function readServerFacts(url: string): Promise<ServerFacts> {
  const { safe } = parseUrl(url);
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'lifeboat-basebackup',
  });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    throw new LifeboatError(
      'DATABASE_ERROR',
      `PostgreSQL at ${safe} unreachable: ${redact((err as Error).message, url)}`,
      {
        hint: 'is the server running, and is the URL (or the environment variable holding it) right?',
        retryable: true,
        cause: err,
      },
    );
  }
  try {
    const { rows } = await client.query<{
      version: string;
      num: string;
      seg: string;
      wal_level: string;
      archive_mode: string;
      in_recovery: boolean;
    }>(
      `SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num,
              (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg,
              current_setting('wal_level') AS wal_level, current_setting('archive_mode') AS archive_mode,
              pg_is_in_recovery() AS in_recovery`,
    );
    const row = rows[0]!;
    // Each of these may be refused to a user without the right role: unknown is not fatal.
    const optional = async <T>(sql: string): Promise<T | null> => {
      try {
        return ((await client.query(sql)).rows[0] as T | undefined) ?? null;
      } catch {
        return null;
      }
    };
    const sysid = await optional<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    const command = await optional<{ c: string }>("SELECT current_setting('archive_command') AS c");
    const archiver = await optional<{
      last_archived_wal: string | null;
      last_archived_time: Date | null;
      last_failed_wal: string | null;
      last_failed_time: Date | null;
    }>('SELECT last_archived_wal, last_archived_time, last_failed_wal, last_failed_time FROM pg_stat_archiver');
    const versionNum = Number(row.num);
    return {
      version: row.version,
      versionNum,
      major: Math.floor(versionNum / 10_000),
      systemIdentifier: sysid?.id ?? null,
      walSegmentSize: Number(row.seg),
      walLevel: row.wal_level,
      archiveMode: row.archive_mode,
      archiveCommand: command?.c ?? null,
      inRecovery: row.in_recovery,
      archiver: {
        lastArchivedWal: archiver?.last_archived_wal ?? null,
        lastArchivedAt: archiver?.last_archived_time ?? null,
        lastFailedWal: archiver?.last_failed_wal ?? null,
        lastFailedAt: archiver?.last_failed_time ?? null,
      },
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/** What the base backup itself says about the WAL it needs. */
export interface BaseBackupFacts {
  /** From backup_label. */
  startLsn: string;
  checkpointLsn: string;
  startTime: string;
  label: string;
  /** From backup_manifest's WAL-Ranges: the timeline replay starts on, and where the copy becomes consistent. */
  timeline: number;
  endLsn: string;
  /** The tar stream as pg_basebackup wrote it. */
  tarSize: number;
  tarSha256: string;
}

export interface BaseBackupStream {
  /** The tar stream; it throws when pg_basebackup fails, after the bytes it wrote. */
  stream: AsyncGenerator<Buffer>;
  /** Available once `stream` has been read to its end. */
  facts(): BaseBackupFacts;
}

/** The pg_basebackup of the server's major version where it is installed side by side, else the one on PATH. */
export function pgBasebackupFor(major: number): string {
  for (const dir of [`/usr/lib/postgresql/${major}/bin`, `/usr/pgsql-${major}/bin`]) {
    if (existsSync(`${dir}/pg_basebackup`)) return `${dir}/pg_basebackup`;
  }
  return 'pg_basebackup';
}

/**
 * `pg_basebackup -D - -Ft -X none --checkpoint=fast`: the data directory as one tar stream,
 * without WAL. With -X none the server waits, before it ends the backup, until the last WAL
 * segment the backup needs has been archived: a base backup that returns is restorable from
 * the archive. If archiving stalls, the server says so after a minute; that ends the backup
 * with an error instead of a wait without end.
 */
export function streamBaseBackup(url: string, options: { label: string; command?: string }): BaseBackupStream {
  const { safe, password } = parseUrl(url);
  const command = options.command ?? 'pg_basebackup';
  const child = spawn(
    command,
    [
      `--dbname=${safe}`,
      '--pgdata=-',
      '--format=tar',
      '--wal-method=none',
      // An immediate checkpoint: the backup starts now, not at the next scheduled checkpoint.
      '--checkpoint=fast',
      `--label=${options.label}`,
      '--no-password',
    ],
    {
      // The password travels in the environment, never on the command line; messages in English
      // so the ones below are recognised.
      env: { ...process.env, LC_ALL: 'C', LANG: 'C', ...(password === undefined ? {} : { PGPASSWORD: password }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  let stalled = false;
  let stallTimer: NodeJS.Timeout | undefined;
  child.stderr.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString('utf8')).slice(-16_384);
    // The server's own count of "seconds" runs fast on a busy server (its wait wakes on every
    // signal), so its warning starts a wall-clock minute rather than ending the backup.
    if (!stallTimer && /still waiting for all required WAL segments to be archived/.test(stderr)) {
      stallTimer = setTimeout(() => {
        stalled = true;
        child.kill('SIGTERM');
      }, 60_000);
      stallTimer.unref();
    }
  });
  child.on('close', () => clearTimeout(stallTimer));
  const exited = new Promise<{ code: number | null; spawnError?: NodeJS.ErrnoException }>((resolvePromise) => {
    child.on('error', (e: NodeJS.ErrnoException) => resolvePromise({ code: null, spawnError: e }));
    child.on('close', (code) => resolvePromise({ code }));
  });
  const tap = new TarTap(['backup_label', 'backup_manifest']);
  const hash = createHash('sha256');
  let size = 0;
  let facts: BaseBackupFacts | undefined;

  async function* stream(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
        tap.push(chunk);
        yield chunk;
      }
    } finally {
      // A consumer that stops early (a failed upload) must not leave pg_basebackup running.
      if (child.exitCode === null) child.kill('SIGTERM');
    }
    const { code, spawnError } = await exited;
    if (spawnError) {
      throw new LifeboatError(
        'DATABASE_ERROR',
        spawnError.code === 'ENOENT' ? `${command} not found` : `${command} could not start: ${spawnError.message}`,
        { hint: "install PostgreSQL's client tools of the server's major version", retryable: false },
      );
    }
    if (stalled) {
      throw new LifeboatError(
        'DATABASE_ERROR',
        `base backup of ${safe} stopped: the server has waited over a minute for WAL to be archived`,
        {
          hint: "archive_command is failing: see the server log and pg_stat_archiver, and run the archive_command's `lifeboat wal push` by hand",
          retryable: false,
        },
      );
    }
    if (code !== 0) {
      throw new LifeboatError(
        'DATABASE_ERROR',
        `pg_basebackup of ${safe} failed: ${redact(lastLines(stderr, 3), url) || `exit code ${code}`}`,
        {
          hint: 'the user needs the REPLICATION attribute and a "replication" line in pg_hba.conf; the server needs max_wal_senders > 0',
          retryable: false,
        },
      );
    }
    facts = { ...tap.facts(safe), tarSize: size, tarSha256: hash.digest('hex') };
  }

  return {
    stream: stream(),
    facts: () => {
      if (!facts) throw new Error('the base backup stream has not been read to its end');
      return facts;
    },
  };
}

/** The URL's password, wherever it appears in `text`, as ***. */
export function redact(text: string, url: string): string {
  const pw = parseUrl(url).password;
  return pw ? text.split(pw).join('***') : text;
}

/** Entries of backup_manifest beyond this are kept only at their end, where WAL-Ranges is. */
const MANIFEST_KEEP = 1 << 20;

/**
 * Reads ustar headers out of a tar stream passing by, keeping the bodies of a few named
 * top-level entries. It never holds more than one header block and those bodies.
 */
class TarTap {
  readonly #wanted: ReadonlySet<string>;
  readonly #bodies = new Map<string, Buffer>();
  #header = Buffer.alloc(0);
  /** Bytes of the current entry's body (and padding) still to pass. */
  #skip = 0;
  #body = 0;
  #keeping: string | undefined;
  #ended = false;

  constructor(wanted: readonly string[]) {
    this.#wanted = new Set(wanted);
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.#ended) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - at);
        if (this.#keeping && this.#body > 0) this.#keep(chunk.subarray(at, at + Math.min(n, this.#body)));
        this.#body = Math.max(0, this.#body - n);
        this.#skip -= n;
        at += n;
        if (this.#skip === 0) this.#keeping = undefined;
        continue;
      }
      const need = 512 - this.#header.length;
      const piece = chunk.subarray(at, at + need);
      this.#header = Buffer.concat([this.#header, piece]);
      at += piece.length;
      if (this.#header.length < 512) return;
      const block = this.#header;
      this.#header = Buffer.alloc(0);
      if (block.every((b) => b === 0)) {
        this.#ended = true;
        return;
      }
      const h = new Header(block);
      const size = h.size ?? 0;
      const name = (h.path ?? '').replace(/^\.\//, '');
      this.#keeping = h.type === 'File' && this.#wanted.has(name) ? name : undefined;
      if (this.#keeping) this.#bodies.set(name, Buffer.alloc(0));
      this.#body = size;
      this.#skip = size + ((512 - (size % 512)) % 512);
    }
  }

  #keep(bytes: Buffer): void {
    const name = this.#keeping as string;
    let kept = Buffer.concat([this.#bodies.get(name) ?? Buffer.alloc(0), bytes]);
    if (kept.length > MANIFEST_KEEP) kept = kept.subarray(kept.length - MANIFEST_KEEP);
    this.#bodies.set(name, kept);
  }

  facts(source: string): Omit<BaseBackupFacts, 'tarSize' | 'tarSha256'> {
    const label = this.#bodies.get('backup_label')?.toString('utf8');
    const manifest = this.#bodies.get('backup_manifest')?.toString('utf8');
    const missing = (what: string) =>
      new LifeboatError('DATABASE_ERROR', `the base backup of ${source} holds no ${what}`, {
        hint: 'pg_basebackup of PostgreSQL 13 or later writes it; use the server major version pg_basebackup',
      });
    if (!label) throw missing('backup_label');
    if (!manifest) throw missing('backup_manifest');
    const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(label)?.[1]?.trim();
    const startLsn = /^([0-9A-F]+\/[0-9A-F]+)/.exec(field('START WAL LOCATION') ?? '')?.[1];
    const checkpointLsn = field('CHECKPOINT LOCATION');
    if (!startLsn || !checkpointLsn) throw missing('readable START WAL LOCATION in its backup_label');
    const ranges = [
      ...manifest.matchAll(
        /"Timeline":\s*(\d+),\s*"Start-LSN":\s*"([0-9A-F]+\/[0-9A-F]+)",\s*"End-LSN":\s*"([0-9A-F]+\/[0-9A-F]+)"/g,
      ),
    ];
    const first = ranges[0];
    const last = ranges.at(-1);
    if (!first || !last) throw missing('WAL-Ranges in its backup_manifest');
    return {
      startLsn,
      checkpointLsn,
      startTime: field('START TIME') ?? '',
      label: field('LABEL') ?? '',
      timeline: Number(first[1]),
      endLsn: last[3] as string,
    };
  }
}
