// Point-in-time restore of a PostgreSQL target into a scratch server: the newest base backup
// that ends before the point, extracted into a new data directory, replayed from the WAL
// archive through `lifeboat wal fetch` up to the point (or to the end of the archive), then
// promoted. The server is left running on a free port on 127.0.0.1 for whoever asked (a
// drill, an operator); production is never touched.
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import {
  chownToClusterOwner,
  clusterOwnerCan,
  clusterOwnerIds,
  findPgBinaries,
  logTail,
  type PgBinaries,
  parseUrl,
  pgCtl,
  postmasterPid,
  type Runtime,
  readTar,
  runAsClusterOwner,
  stopCluster,
} from '@lifeboat/adapters';
import {
  baseBackupSegments,
  fetchWal,
  listBaseBackups,
  listStreamedPieces,
  postgresUrl,
  readBaseBackup,
  readWalArchive,
  type WalArchive,
} from '@lifeboat/backup';
import {
  type BaseBackupManifest,
  followChain,
  LifeboatError,
  parseWalFileName,
  segmentNumber,
  type WalChain,
  walSegmentName,
} from '@lifeboat/domain';
import pg from 'pg';
import { type Logger, silentLogger } from './context.js';

export interface PitrOptions {
  /** An ISO time (with offset), or `latest` (the default): the end of the archived WAL. */
  at?: string;
  /** The data directory to create (new or empty); default: a new one under the OS temp dir. */
  dir?: string;
  log?: Logger;
  /** Where the target's database URL variable is read (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Longest the replay may take before the restore fails (default 30 min). */
  timeoutMs?: number;
  /** The command line of `lifeboat` that restore_command runs (default: this node and apps/cli/bin/lifeboat.js). */
  lifeboatCommand?: readonly string[];
  /** Port to listen on (default: a free one). */
  port?: number;
  /**
   * Only WAL archived by this time (ISO) counts: what a server that died then would have left
   * in the archive. The rpo-under-load drill measures its RPO this way.
   */
  archivedBy?: string;
}

export interface ScratchServer {
  /** To connect: the target's own user, password and database, on 127.0.0.1:<port>. */
  url: string;
  /** The same without the password, for messages. */
  safeUrl: string;
  port: number;
  dataDir: string;
  logFile: string;
  /** The commit time of the last transaction replayed (ISO), or null when the replay met none. */
  recoveredTo: string | null;
  baseBackupId: string;
  /** The last WAL segment the replay read from the archive. */
  lastSegment: string | null;
  /** Where the replay was asked to stop (ISO), or `latest`. */
  target: string;
  bindir: string;
  durationMs: number;
  /** Stops the server (`pg_ctl stop -m fast`); `remove` also deletes its data directory. */
  stop(options?: { remove?: boolean }): Promise<void>;
}

/** `pg_ctl stop`, as printed for an operator who leaves the server running. */
export function stopCommand(server: Pick<ScratchServer, 'bindir' | 'dataDir'>): string {
  const ctl = `${server.bindir}/pg_ctl stop -D ${shellQuote(server.dataDir)} -m fast`;
  return typeof process.getuid === 'function' && process.getuid() === 0 ? `runuser -u postgres -- ${ctl}` : ctl;
}

const POLL_MS = 200;
/** Where segments fetched ahead of the replay wait, inside the data directory. */
const SPOOL_DIR = 'lifeboat-spool';
/** Segments fetched ahead of the one the replay reads, and fetched at once. */
const SPOOL_AHEAD = 8;
const SPOOL_FETCHES = 2;
const RESTORED = /restored log file "([0-9A-F]{24})" from archive/g;
const NOT_REACHED = /FATAL:\s+recovery ended before configured recovery target was reached/;

/** The CLI beside this app in the repository or image: apps/cli/bin/lifeboat.js. */
function defaultLifeboatCommand(): string[] {
  const bin = resolve(import.meta.dirname, '..', '..', 'cli', 'bin', 'lifeboat.js');
  if (!existsSync(bin)) {
    throw new LifeboatError('INVALID_CONFIG', `the lifeboat command is not at ${bin}: restore_command needs it`, {
      hint: 'run from the repository or an image that holds apps/cli, or pass lifeboatCommand',
    });
  }
  return [process.execPath, bin];
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A value for postgresql.conf: single-quoted, quotes doubled. */
function confString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePromise(port));
    });
  });
}

interface Plan {
  base: BaseBackupManifest;
  archive: WalArchive;
  chain: WalChain;
  /** recovery_target_time, or null for the end of the archive. */
  targetTime: string | null;
}

/** Chooses the base backup and checks the WAL chain from it, before anything is written. */
async function plan(
  runtime: Runtime,
  target: string,
  at: Date | null,
  log: Logger,
  archivedBy: Date | null = null,
): Promise<Plan> {
  const bases = await listBaseBackups(runtime, target);
  for (const p of bases.problems) log.warn({ problem: p }, 'a base backup manifest does not read');
  // The copy is consistent only once replay passes the backup's end: a point before that
  // cannot be reached from it, so the backup must have completed by then.
  const usable = bases.manifests.filter((m) => at === null || new Date(m.completedAt) <= at);
  const base = usable.at(-1);
  if (!base) {
    const oldest = bases.manifests[0];
    throw new LifeboatError(
      'NOT_FOUND',
      at === null
        ? `target ${target} has no base backup`
        : `target ${target} has no base backup completed before ${at.toISOString()}${oldest ? ` (the oldest completed at ${oldest.completedAt})` : ''}`,
      { hint: `take one with \`lifeboat wal basebackup --target ${target}\`` },
    );
  }
  const archive = await readWalArchive(runtime, target, [base]);
  let index = archive.index;
  if (archivedBy) {
    // PostgreSQL archives segments in order: the newest of each timeline are the ones archived late.
    const segments = new Map<number, Set<number>>();
    for (const [timeline, segnos] of archive.index.segments) {
      const kept = new Set(segnos);
      for (const segno of [...segnos].sort((a, b) => b - a)) {
        const name = walSegmentName(timeline, segno, archive.index.segmentSize);
        if (Date.parse((await archive.record(name)).pushedAt) <= archivedBy.getTime()) break;
        kept.delete(segno);
      }
      segments.set(timeline, kept);
    }
    index = { ...archive.index, segments };
  }
  // Segments the archive does not hold yet but the shipper streamed (`lifeboat ship`): the
  // newest WAL, a second behind the server. `wal fetch` serves them from the stream.
  const streamedAt = new Map<string, Date>();
  const streamed = await listStreamedPieces(runtime, target, archivedBy ? { shippedBy: archivedBy } : {});
  if (streamed.size > 0) {
    const segments = new Map([...index.segments].map(([t, set]) => [t, new Set(set)]));
    for (const [name, pieces] of streamed) {
      const file = parseWalFileName(name);
      if (!file || pieces[0]?.offset !== 0) continue;
      const segno = segmentNumber(file, index.segmentSize);
      const set = segments.get(file.timeline) ?? new Set<number>();
      segments.set(file.timeline, set);
      if (set.has(segno)) continue;
      set.add(segno);
      streamedAt.set(name, new Date(Math.max(...pieces.map((p) => p.shippedAt.getTime()))));
    }
    index = { ...index, segments };
  }
  const { start, end } = baseBackupSegments(base, index.segmentSize);
  const chain = followChain(index, base.wal.timeline, start);
  if ((chain.last?.segno ?? -1) < end) {
    throw new LifeboatError(
      'VERIFY_FAILED',
      `base backup ${base.id} cannot be restored: WAL segment ${chain.firstMissing.name}, which it needs to become consistent (through ${base.wal.endSegment}), is not archived`,
      { hint: 'use an older base backup, or take a new one: `lifeboat wal basebackup`' },
    );
  }
  const pushedAt = async (name: string) => streamedAt.get(name) ?? new Date((await archive.record(name)).pushedAt);
  const last = chain.last as NonNullable<WalChain['last']>;
  const gap = () =>
    `a gap in the WAL chain: ${chain.firstMissing.name} is not archived, and ${chain.unreachable} newer segment(s) from ${chain.nextArchived?.name} on cannot be reached`;
  if (at === null) {
    if (chain.unreachable > 0) {
      throw new LifeboatError('VERIFY_FAILED', `cannot restore target ${target} to the latest point: ${gap()}`, {
        hint: `restore to a point before the gap, --point-in-time ${(await pushedAt(last.name)).toISOString()} at the latest (when ${last.name}, the last reachable segment, was archived); \`lifeboat wal verify\` lists the gaps`,
      });
    }
    return { base, archive, chain, targetTime: null };
  }
  if (chain.unreachable > 0 && chain.nextArchived && (await pushedAt(chain.nextArchived.name)) <= at) {
    throw new LifeboatError(
      'VERIFY_FAILED',
      `cannot restore target ${target} to ${at.toISOString()}: ${gap()}, before that point`,
      {
        hint: `the newest point reachable is ${(await pushedAt(last.name)).toISOString()} (when ${last.name} was archived); \`lifeboat wal verify\` lists the gaps`,
      },
    );
  }
  // A point after the newest archived segment is the end of the archive: every archived
  // commit precedes it. Asked as a time, PostgreSQL would fail for want of a later commit.
  if (chain.unreachable === 0 && at >= (await pushedAt(last.name))) {
    log.info(
      { at: at.toISOString(), last: last.name },
      'the point is after the newest archived WAL: restoring to its end',
    );
    return { base, archive, chain, targetTime: null };
  }
  return { base, archive, chain, targetTime: at.toISOString() };
}

/** Extracts the base backup's tar stream into the data directory, directories included. */
async function extractBaseBackup(runtime: Runtime, base: BaseBackupManifest, dataDir: string): Promise<number> {
  let files = 0;
  const entries = readTar(readBaseBackup(runtime, base), { totalBytes: base.archive.tarSize });
  for await (const entry of entries) {
    const path = join(dataDir, ...entry.path.split('/'));
    if (entry.type === 'Directory') {
      await mkdir(path, { recursive: true, mode: 0o700 });
      continue;
    }
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const handle = await open(path, 'wx', (entry.mode & 0o777) | 0o600);
    try {
      for await (const chunk of entry.body) {
        let offset = 0;
        while (offset < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
          offset += bytesWritten;
        }
      }
    } finally {
      await handle.close();
    }
    files++;
  }
  return files;
}

/** The parameters the source ran with (pg_controldata): a replay needs at least as many. */
async function sourceLimits(bin: PgBinaries, dataDir: string): Promise<Record<string, number>> {
  const r = await runAsClusterOwner([join(bin.bindir, 'pg_controldata'), dataDir], {
    env: { ...process.env, LC_ALL: 'C' },
  });
  const limits: Record<string, number> = {};
  const map: Record<string, string> = {
    max_connections: 'max_connections',
    max_worker_processes: 'max_worker_processes',
    max_wal_senders: 'max_wal_senders',
    max_prepared_xacts: 'max_prepared_transactions',
    max_locks_per_xact: 'max_locks_per_transaction',
  };
  for (const [label, name] of Object.entries(map)) {
    const m = new RegExp(`^${label} setting:\\s+(\\d+)`, 'm').exec(r.stdout);
    if (m) limits[name] = Number(m[1]);
  }
  return limits;
}

function serverConf(options: {
  target: string;
  base: BaseBackupManifest;
  port: number;
  restoreCommand: string;
  targetTime: string | null;
  limits: Record<string, number>;
}): string {
  const lines = [
    `# Written by Lifeboat for a point-in-time restore of target ${options.target} from base backup ${options.base.id}.`,
    "# The source server's own files are kept beside this one as postgresql.conf.source and",
    '# postgresql.auto.conf.source; this scratch server runs with these settings only.',
    "listen_addresses = '127.0.0.1'",
    `port = ${options.port}`,
    "unix_socket_directories = ''",
    'ssl = off',
    "lc_messages = 'C'",
    'logging_collector = off',
    "log_destination = 'stderr'",
    // A scratch server must never add to the archive it is restored from.
    'archive_mode = off',
    ...Object.entries(options.limits).map(([k, v]) => `${k} = ${v}`),
    // No connections until the replay is over: the copy is read only once it is complete.
    'hot_standby = off',
    `restore_command = ${confString(options.restoreCommand)}`,
    "recovery_target_timeline = 'latest'",
  ];
  if (options.targetTime) {
    lines.push(
      // A numeric offset: the server checks this value before it can read time zone abbreviations like Z.
      `recovery_target_time = ${confString(options.targetTime.replace('T', ' ').replace(/Z$/, '+00'))}`,
      // Commits at the point itself are kept: "the rows committed by then".
      'recovery_target_inclusive = on',
      "recovery_target_action = 'promote'",
    );
  }
  return `${lines.join('\n')}\n`;
}

/** pg_hba.conf of the scratch server: TCP on 127.0.0.1 only, with the source's passwords. */
function hbaConf(user: string, hasPassword: boolean): string {
  const lines = ['# Written by Lifeboat: a scratch restore listens on 127.0.0.1 only.'];
  // Without a password in the target's URL the source let that user in without one too.
  if (!hasPassword) lines.push(`host all ${JSON.stringify(user)} 127.0.0.1/32 trust`);
  // md5 also accepts SCRAM-stored passwords (as SCRAM): every source role logs in as before.
  lines.push('host all all 127.0.0.1/32 md5');
  return `${lines.join('\n')}\n`;
}

/** Moves a file aside as `<name>.source` when the base backup brought one. */
async function keepAside(dataDir: string, name: string): Promise<void> {
  const path = join(dataDir, name);
  if (existsSync(path)) await rename(path, `${path}.source`);
}

/**
 * Restores a PostgreSQL target to a point in time (or to the end of its WAL archive) in a new
 * scratch server, and leaves it running. Fails, before anything is written, when no base
 * backup completed before the point or the WAL chain has a gap before it; and with the tail
 * of its log when PostgreSQL does not come up.
 */
export async function restorePostgresToPoint(
  runtime: Runtime,
  target: string,
  options: PitrOptions = {},
): Promise<ScratchServer> {
  const started = Date.now();
  const log = options.log ?? silentLogger;
  const env = options.env ?? process.env;
  const t = runtime.target(target);
  const latest = options.at === undefined || options.at === 'latest';
  const at = latest ? null : new Date(options.at as string);
  if (at && Number.isNaN(at.getTime())) {
    throw new LifeboatError('INVALID_REQUEST', `"${options.at}" is not a point in time`, {
      hint: 'an ISO time such as 2025-11-25T14:03:00Z, or latest',
    });
  }
  // The scratch server accepts the target's own user and password, and serves its database.
  let user = 'postgres';
  let database = 'postgres';
  let password: string | undefined;
  try {
    const parsed = new URL(postgresUrl(runtime, t, env));
    user = decodeURIComponent(parsed.username) || user;
    database = decodeURIComponent(parsed.pathname.slice(1)) || database;
    password = parseUrl(parsed.toString()).password;
  } catch (err) {
    if (!(err instanceof LifeboatError && err.code === 'INVALID_CONFIG')) throw err;
    log.warn({ target: t.name }, 'the target has no database URL here: the scratch server serves postgres as postgres');
  }

  const archivedBy = options.archivedBy ? new Date(options.archivedBy) : null;
  if (archivedBy && Number.isNaN(archivedBy.getTime())) {
    throw new LifeboatError('INVALID_REQUEST', `archivedBy "${options.archivedBy}" is not a point in time`);
  }
  const { base, chain, targetTime } = await plan(runtime, t.name, at, log, archivedBy);
  const bin = await findPgBinaries({ major: base.postgres.major, env });
  const lifeboat = [...(options.lifeboatCommand ?? defaultLifeboatCommand())];

  // The data directory: new, or empty; the cluster's owner must be able to reach it.
  let dataDir: string;
  let madeParent: string | undefined;
  if (options.dir) {
    dataDir = resolve(options.dir);
    const existing = await readdir(dataDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (existing && existing.length > 0) {
      throw new LifeboatError('INVALID_REQUEST', `cannot restore: ${dataDir} exists and is not empty`, {
        hint: 'name a new directory; a restore never writes over one',
      });
    }
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
  } else {
    madeParent = await mkdtemp(join(tmpdir(), 'lifeboat-pitr-'));
    // Entered, not listed, by the cluster's owner.
    await chmod(madeParent, 0o711);
    dataDir = join(madeParent, 'data');
    await mkdir(dataDir, { mode: 0o700 });
  }
  await chmod(dataDir, 0o700);
  const logFile = join(dataDir, 'lifeboat-restore.log');
  const port = options.port ?? (await freePort());
  const secrets = password ? [password] : [];
  let running = false;
  const cleanup = async () => {
    if (running) await stopCluster(bin, dataDir, 'immediate').catch(() => undefined);
    running = false;
  };
  try {
    if (!(await clusterOwnerCan('-x', dirname(dataDir)))) {
      throw new LifeboatError('INVALID_REQUEST', `user postgres cannot reach ${dataDir}`, {
        hint: `PostgreSQL runs as user postgres: let it enter every directory above (chmod o+x), or restore under /var/tmp`,
      });
    }

    // 1. The base backup, checked as it is extracted (a damaged one fails at its end).
    log.info({ baseBackup: base.id, dataDir }, 'extracting base backup');
    const files = await extractBaseBackup(runtime, base, dataDir).catch((err) => {
      throw err instanceof LifeboatError
        ? err
        : new LifeboatError('STORE_ERROR', `extract base backup ${base.id}: ${(err as Error).message}`);
    });
    log.info({ baseBackup: base.id, files }, 'base backup extracted');

    // 2. This server's settings, and the signal to recover from the archive.
    for (const name of ['postgresql.conf', 'postgresql.auto.conf', 'pg_hba.conf', 'pg_ident.conf']) {
      await keepAside(dataDir, name);
    }
    // Files a running server leaves (pg_basebackup skips them, a copy made otherwise may not).
    await rm(join(dataDir, 'postmaster.pid'), { force: true });
    await writeFile(join(dataDir, 'pg_hba.conf'), hbaConf(user, password !== undefined), { mode: 0o600 });
    await writeFile(join(dataDir, 'pg_ident.conf'), '', { mode: 0o600 });
    await writeFile(join(dataDir, 'recovery.signal'), '', { mode: 0o600 });
    await writeFile(logFile, '', { mode: 0o600 });
    await chownToClusterOwner(dataDir);
    const limits = await sourceLimits(bin, dataDir);
    // restore_command takes a segment the spool fetched ahead when it is there (a rename),
    // else runs `lifeboat wal fetch`. Any % of our own is doubled: only %f and %p are PostgreSQL's.
    const spoolDir = join(dataDir, SPOOL_DIR);
    await mkdir(spoolDir, { mode: 0o700 });
    await chownToClusterOwner(spoolDir);
    const pct = (x: string) => x.replaceAll('%', '%%');
    const fetchCommand = [
      ...lifeboat.map((a) => pct(shellQuote(a))),
      'wal fetch %f %p --config',
      pct(shellQuote(runtime.loaded.path)),
      '--target',
      pct(shellQuote(t.name)),
      ...(archivedBy ? ['--archived-by', pct(shellQuote(archivedBy.toISOString()))] : []),
    ].join(' ');
    const restoreCommand = `f=${pct(shellQuote(spoolDir))}/%f; if [ -f "$f" ]; then exec mv "$f" "%p"; fi; exec ${fetchCommand}`;
    const writeConf = (time: string | null) =>
      writeFile(
        join(dataDir, 'postgresql.conf'),
        serverConf({ target: t.name, base, port, restoreCommand, targetTime: time, limits }),
        { mode: 0o600 },
      ).then(() => chownToClusterOwner(join(dataDir, 'postgresql.conf')));
    await writeConf(targetTime);

    // 3. restore_command tried once as PostgreSQL will run it: a configuration, identity
    // file or store the cluster's owner cannot read fails here, in one clear line.
    const probe = join(dataDir, 'pg_wal', 'lifeboat-probe');
    const expanded = restoreCommand.replace(/%([fp%])/g, (_m, c: string) =>
      c === 'f' ? base.wal.startSegment : c === 'p' ? probe : '%',
    );
    const tried = await runAsClusterOwner(['sh', '-c', expanded], { cwd: dataDir, timeoutMs: 120_000 });
    await rm(probe, { force: true });
    if (tried.code !== 0) {
      throw new LifeboatError(
        'INVALID_CONFIG',
        `restore_command fails as PostgreSQL would run it (fetching ${base.wal.startSegment}): ${tried.stderr.trim().split('\n').slice(-2).join(' | ') || `exit code ${tried.code}`}`,
        {
          hint: `it runs as user postgres: it must be able to read ${runtime.loaded.path}, the age identity file and the store`,
        },
      );
    }

    // 4. Replay. A point PostgreSQL finds no commit after, with the archive complete, is
    // the end of the archive: the replay is restarted without a target once.
    log.info({ port, target: targetTime ?? 'latest' }, 'starting the scratch server');
    let asked = targetTime;
    let logFrom = 0;
    for (;;) {
      const start = await pgCtl(bin, ['start', '-D', dataDir, '-l', logFile, '-W']);
      if (start.code !== 0) {
        throw new LifeboatError(
          'DATABASE_ERROR',
          `pg_ctl start failed: ${start.stderr.trim() || start.stdout.trim()}`,
          {
            hint: `server log ${logFile}: ${await logTail(logFile, 1500, secrets)}`,
          },
        );
      }
      running = true;
      const spool = startSpool({
        runtime,
        target: t.name,
        names: chain.reachable.map((r) => r.name),
        dir: spoolDir,
        logFile,
        logFrom,
        owner: await clusterOwnerIds(),
        log,
        archivedBy,
      });
      const outcome = await waitForPromotion(dataDir, logFile, logFrom, options.timeoutMs ?? 30 * 60_000).finally(() =>
        spool.stop(),
      );
      if (outcome.kind === 'ready') break;
      running = (await postmasterPid(dataDir)) !== null;
      if (outcome.kind === 'target-not-reached' && asked !== null && chain.unreachable === 0) {
        log.info({ at: asked }, 'no commit after the point in the archive: replaying to its end');
        await cleanup();
        asked = null;
        logFrom = (await stat(logFile)).size;
        await writeConf(null);
        continue;
      }
      const tail = await logTail(logFile, 3000, secrets);
      if (outcome.kind === 'target-not-reached') {
        throw new LifeboatError(
          'VERIFY_FAILED',
          `cannot restore target ${t.name} to ${asked}: the archived WAL ends before it${chain.unreachable > 0 ? ` (a gap: ${chain.firstMissing.name} is not archived)` : ''}`,
          {
            hint: `the newest point reachable is the end of ${chain.last?.name}; \`lifeboat wal verify\` lists the gaps. Server log: ${tail}`,
          },
        );
      }
      throw new LifeboatError(
        outcome.kind === 'timeout' ? 'TIMEOUT' : 'DATABASE_ERROR',
        outcome.kind === 'timeout'
          ? `the scratch server of target ${t.name} did not finish its replay in ${Math.round((options.timeoutMs ?? 1_800_000) / 1000)} s`
          : `the scratch server of target ${t.name} stopped during its replay`,
        { hint: `server log ${logFile}: ${tail}` },
      );
    }

    await rm(spoolDir, { recursive: true, force: true });

    // 5. What the replay reached: the last transaction's commit time.
    const url = new URL(`postgres://127.0.0.1:${port}/`);
    url.username = encodeURIComponent(user);
    if (password !== undefined) url.password = encodeURIComponent(password);
    url.pathname = `/${encodeURIComponent(database)}`;
    const logText = (await readFile(logFile, 'utf8')).slice(logFrom);
    const recoveredTo = (await replayTimestamp(url.toString())) ?? lastTransactionFromLog(logText);
    const restored = [...logText.matchAll(/restored log file "([0-9A-F]{24})" from archive/g)];
    const safe = new URL(url);
    safe.password = '';
    const server: ScratchServer = {
      url: url.toString(),
      safeUrl: safe.toString(),
      port,
      dataDir,
      logFile,
      recoveredTo,
      baseBackupId: base.id,
      lastSegment: restored.at(-1)?.[1] ?? null,
      target: asked ?? 'latest',
      bindir: bin.bindir,
      durationMs: Date.now() - started,
      stop: async (stopOptions = {}) => {
        await stopCluster(bin, dataDir, 'fast');
        if (stopOptions.remove) await rm(madeParent ?? dataDir, { recursive: true, force: true });
      },
    };
    log.info(
      { baseBackup: base.id, recoveredTo, lastSegment: server.lastSegment, port, durationMs: server.durationMs },
      'scratch server promoted',
    );
    return server;
  } catch (err) {
    await cleanup();
    // No half-made server keeps running. A directory the caller named stays, with the server
    // log in it, for a look; one of our own in the temp dir goes.
    if (madeParent) await rm(madeParent, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

type Outcome = { kind: 'ready' } | { kind: 'target-not-reached' } | { kind: 'stopped' } | { kind: 'timeout' };

/** Watches the server log (from `from`) and the postmaster until the server is promoted, or is not. */
async function waitForPromotion(dataDir: string, logFile: string, from: number, timeoutMs: number): Promise<Outcome> {
  const deadline = Date.now() + timeoutMs;
  let pidSeen = false;
  for (;;) {
    const text = (await readFile(logFile, 'utf8').catch(() => '')).slice(from);
    if (NOT_REACHED.test(text)) return { kind: 'target-not-reached' };
    if (/database system is ready to accept connections/.test(text)) return { kind: 'ready' };
    const pid = await postmasterPid(dataDir);
    if (pid !== null) pidSeen = true;
    // Before its pid file exists the postmaster may still be starting; after, its absence means it is gone.
    else if (pidSeen || /(FATAL|PANIC):/.test(text)) {
      return NOT_REACHED.test(text) ? { kind: 'target-not-reached' } : { kind: 'stopped' };
    }
    if (Date.now() > deadline) return { kind: 'timeout' };
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** pg_last_xact_replay_timestamp(): after promotion it stays at the last transaction replayed. */
async function replayTimestamp(url: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ at: Date | null }>('SELECT pg_last_xact_replay_timestamp() AS at');
    return rows[0]?.at ? rows[0].at.toISOString() : null;
  } catch {
    return null;
  } finally {
    await client.end().catch(() => {});
  }
}

/** "last completed transaction was at log time 2025-11-25 14:03:00.123+00", logged at the end of a replay. */
function lastTransactionFromLog(text: string): string | null {
  const m = [...text.matchAll(/last completed transaction was at log time (\S+ \S+)/g)].at(-1);
  if (!m) return null;
  const d = new Date((m[1] as string).replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/**
 * Fetches the segments a replay will ask for ahead of it, checked, into the spool, so
 * restore_command mostly renames a file instead of starting a process per segment. It keeps
 * SPOOL_AHEAD past the newest segment the server log says was restored, drops what the
 * replay has passed, and gives up quietly on any error: restore_command then fetches itself.
 */
function startSpool(options: {
  runtime: Runtime;
  target: string;
  names: readonly string[];
  dir: string;
  logFile: string;
  logFrom: number;
  owner: { uid: number; gid: number } | null;
  log: Logger;
  /** As restore_command fetches: only what was archived or streamed by then. */
  archivedBy: Date | null;
}): { stop(): Promise<void> } {
  const { names, dir } = options;
  const order = new Map(names.map((n, i) => [n, i]));
  let stopped = false;
  let next = 0;
  const inFlight = new Set<Promise<void>>();
  const position = async () => {
    const text = (await readFile(options.logFile, 'utf8').catch(() => '')).slice(options.logFrom);
    let p = -1;
    for (const m of text.matchAll(RESTORED)) p = Math.max(p, order.get(m[1] as string) ?? -1);
    return p;
  };
  // Made whole and given to the cluster's owner out of restore_command's sight, then renamed in.
  const incoming = join(dir, '.incoming');
  let made: Promise<unknown> | undefined;
  const fetchOne = async (name: string) => {
    // The cluster's owner must be able to open it: the server walks its data directory at start.
    made ??= mkdir(incoming, { recursive: true, mode: 0o700 }).then(() =>
      options.owner ? chown(incoming, options.owner.uid, options.owner.gid) : undefined,
    );
    await made;
    // Fetched ahead exactly as restore_command would fetch it: a segment the replay reads twice
    // (the replay, then the end of recovery) must be the same both times.
    await fetchWal(
      options.runtime,
      options.target,
      name,
      join(incoming, name),
      options.archivedBy ? { archivedBy: options.archivedBy } : {},
    );
    if (options.owner) await chown(join(incoming, name), options.owner.uid, options.owner.gid);
    await rename(join(incoming, name), join(dir, name));
  };
  const loop = (async () => {
    while (!stopped && next < names.length) {
      const p = await position();
      // Whatever the replay has passed (it fetched it itself, or took it) is of no more use.
      for (const f of await readdir(dir).catch(() => [] as string[])) {
        if ((order.get(f) ?? Number.POSITIVE_INFINITY) <= p) await rm(join(dir, f), { force: true });
      }
      next = Math.max(next, p + 1);
      if (next <= p + SPOOL_AHEAD && inFlight.size < SPOOL_FETCHES) {
        const task = fetchOne(names[next++] as string).catch((err: unknown) => {
          options.log.warn({ err: { message: (err as Error).message } }, 'fetching WAL ahead stopped');
          stopped = true;
        });
        inFlight.add(task);
        void task.finally(() => inFlight.delete(task));
        continue;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      await Promise.all(inFlight);
    },
  };
}
