// A PostgreSQL cluster of a test's own: one that may be stopped and restarted (the catalog's
// faults), or with continuous archiving on (WAL archiving and point-in-time restores). It runs
// as user postgres (initdb + pg_ctl) on a free port of 127.0.0.1; the shared server on :5432
// is never reconfigured or restarted.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  chownToClusterOwner,
  createRuntime,
  findPgBinaries,
  generateAgeKeyPair,
  initCluster,
  type PgBinaries,
  parseConfig,
  pgCtl,
  type Runtime,
  stopCluster,
} from '@lifeboat/adapters';
import pg from 'pg';
import { freePort, LIFEBOAT_BIN } from './cli.js';

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

/** A PostgreSQL target `trading` of a test's own, its WAL archived and streamed (startStreamedTarget). */
export interface StreamedTarget {
  cluster: PrivateCluster;
  configFile: string;
  runtime: Runtime;
  /** The target's URL: user trader (REPLICATION), database trading with a table orders (id, note). */
  appUrl: string;
  /** This process's environment with TRADING_DB_URL. */
  env: NodeJS.ProcessEnv;
}

/**
 * Target `trading` in `dir`: an age-encrypted filesystem store (`dir/store`), a spool for
 * `lifeboat ship` (`spoolDir`, relative to `dir` or absolute), and a private cluster with
 * 1 MiB segments whose archive_command is the real `lifeboat wal push` and whose
 * archive_timeout is off, so the segment being written reaches the archive only when full and
 * only the stream holds the newest commits. Returns once the first segment is archived (by
 * archive_command, as the cluster's owner, so the store's directories are that user's).
 */
export async function startStreamedTarget(options: {
  dir: string;
  spoolDir: string;
  password: string;
}): Promise<StreamedTarget> {
  const { dir } = options;
  await mkdir(join(dir, 'store'), { recursive: true });
  await mkdir(join(dir, 'target'), { recursive: true });
  const keys = await generateAgeKeyPair();
  await writeFile(join(dir, 'identity.txt'), keys.file, { mode: 0o600 });
  const configFile = join(dir, 'lifeboat.yaml');
  const document = {
    store: { type: 'fs', path: 'store' },
    encryption: { recipients: [keys.recipient], identityFile: 'identity.txt' },
    targets: {
      trading: {
        root: 'target',
        database: { engine: 'postgres', urlEnv: 'TRADING_DB_URL' },
        ship: { intervalMs: 200, postgres: { spoolDir: options.spoolDir } },
      },
    },
  };
  await writeFile(configFile, JSON.stringify(document, null, 2));
  // No silent skip: without PostgreSQL's server binaries this fails, saying what is missing.
  const cluster = await startArchivingCluster({
    dir,
    archiveCommand: `${process.execPath} ${LIFEBOAT_BIN} wal push %p --config ${configFile} --target trading`,
    walSegmentMiB: 1,
    archiveTimeoutSeconds: 0,
  });
  const password = options.password.replaceAll("'", "''");
  await cluster.sql(cluster.adminUrl, `CREATE ROLE trader LOGIN REPLICATION PASSWORD '${password}'`);
  await cluster.sql(cluster.adminUrl, 'CREATE DATABASE trading OWNER trader');
  const appUrl = `postgres://trader:${encodeURIComponent(options.password)}@127.0.0.1:${cluster.port}/trading`;
  await cluster.sql(appUrl, 'CREATE TABLE orders (id int PRIMARY KEY, note text)');
  const env = { ...process.env, TRADING_DB_URL: appUrl };
  const [first] = await cluster.sql(cluster.adminUrl, 'SELECT pg_walfile_name(pg_switch_wal()) AS name');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [archiver] = await cluster.sql(cluster.adminUrl, 'SELECT last_archived_wal FROM pg_stat_archiver');
    if (archiver?.last_archived_wal && String(archiver.last_archived_wal) >= String(first?.name)) break;
    if (Date.now() > deadline) throw new Error(`${first?.name} was not archived in 60 s (see ${dir}/pg.log)`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { cluster, configFile, runtime: createRuntime(parseConfig(document, configFile, dir), env), appUrl, env };
}
