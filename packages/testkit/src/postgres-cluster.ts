// A PostgreSQL cluster of a test's own: one that may be stopped and restarted (the catalog's
// faults), or with continuous archiving on (WAL archiving and point-in-time restores). It runs
// as user postgres (initdb + pg_ctl) on a free port of 127.0.0.1; the shared server on :5432
// is never reconfigured or restarted.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  chownToClusterOwner,
  findPgBinaries,
  initCluster,
  type PgBinaries,
  pgCtl,
  stopCluster,
} from '@lifeboat/adapters';
import pg from 'pg';
import { freePort } from './cli.js';

export interface PrivateCluster {
  bin: PgBinaries;
  pgdata: string;
  port: number;
  /** The superuser `postgres` (trusted), database `postgres`. */
  adminUrl: string;
  sql(url: string, text: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  /** `pg_ctl stop -m <mode>`, `downMs` with no server, then `pg_ctl start`. */
  restart(mode: 'fast' | 'immediate', downMs: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a cluster in `<dir>/pgdata`. With `archiveCommand`, continuous archiving is on
 * (wal_level replica, archive_timeout 1 s unless told otherwise). `dir` is given to user
 * postgres (archive_command and restore_command run as that user): whatever a test puts there
 * must be readable by it. Fails, saying what is missing, when PostgreSQL's server binaries
 * cannot be found.
 */
export async function startPrivateCluster(options: {
  dir: string;
  archiveCommand?: string;
  /** WAL segment size (initdb --wal-segsize), MiB: 1 makes a switch a second cheap. */
  walSegmentMiB?: number;
  /** archive_timeout in seconds (default 1; 0: off, a segment is archived only once full). */
  archiveTimeoutSeconds?: number;
}): Promise<PrivateCluster> {
  const bin = await findPgBinaries();
  await chmod(options.dir, 0o755);
  await chownToClusterOwner(options.dir);
  const pgdata = join(options.dir, 'pgdata');
  await initCluster(
    bin,
    pgdata,
    options.walSegmentMiB ? { extraArgs: [`--wal-segsize=${options.walSegmentMiB}`] } : {},
  );
  const port = await freePort();
  await writeFile(
    join(pgdata, 'postgresql.conf'),
    [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${options.dir}'`,
      ...(options.archiveCommand === undefined
        ? []
        : [
            'wal_level = replica',
            'archive_mode = on',
            `archive_command = '${options.archiveCommand.replaceAll("'", "''")}'`,
            `archive_timeout = ${options.archiveTimeoutSeconds ?? 1}s`,
          ]),
      "lc_messages = 'C'",
      '',
    ].join('\n'),
    { flag: 'a' },
  );
  const start = ['start', '-D', pgdata, '-l', join(options.dir, 'pg.log'), '-w', '-t', '60'];
  const started = await pgCtl(bin, start);
  if (started.code !== 0) throw new Error(`test cluster did not start: ${started.stderr}`);
  const sql = async (url: string, text: string, params: unknown[] = []) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query(text, params)).rows as Array<Record<string, unknown>>;
    } finally {
      await client.end();
    }
  };
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  // The checkpointer, started during the startup recovery, sleeps a whole checkpoint_timeout
  // before it first looks at archive_timeout; a reload wakes it.
  await sql(adminUrl, 'SELECT pg_reload_conf()');
  return {
    bin,
    pgdata,
    port,
    adminUrl,
    sql,
    async restart(mode, downMs) {
      await stopCluster(bin, pgdata, mode);
      await new Promise((r) => setTimeout(r, downMs));
      const again = await pgCtl(bin, start);
      if (again.code !== 0) throw new Error(`pg_ctl start after a stop -m ${mode} failed: ${again.stderr}`);
    },
    stop: () => stopCluster(bin, pgdata, 'immediate').catch(() => undefined),
  };
}

/** A cluster with continuous archiving on through `archiveCommand`. */
export const startArchivingCluster = (
  options: Parameters<typeof startPrivateCluster>[0] & { archiveCommand: string },
) => startPrivateCluster(options);
