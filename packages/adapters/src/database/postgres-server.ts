// PostgreSQL servers Lifeboat runs itself (a scratch server for a point-in-time restore, a
// test's own cluster): finding the server binaries of the right major version, and running
// them as the cluster's owner — PostgreSQL refuses to run as root, so a root process runs
// them as user postgres through runuser.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LifeboatError } from '@lifeboat/domain/errors';

/** The user a root process runs PostgreSQL as. */
export const CLUSTER_OWNER = 'postgres';

export interface PgBinaries {
  /** Directory holding initdb, pg_ctl, postgres, pg_basebackup, ... */
  bindir: string;
  major: number;
  /** `postgres --version`, e.g. "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)". */
  version: string;
}

export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program, capturing its output; resolves with its exit code (never rejects for a non-zero one). */
export function runTool(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<ToolRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        new LifeboatError(
          'DATABASE_ERROR',
          e.code === 'ENOENT' ? `${command} not found` : `${command} could not start: ${e.message}`,
          { hint: 'install the PostgreSQL server package (initdb, pg_ctl, postgres)', retryable: false, cause: e },
        ),
      );
    });
    // 'exit', not 'close': pg_ctl start leaves a server behind, which must not keep us waiting.
    child.on('exit', (code, signal) => {
      setImmediate(() =>
        resolvePromise({
          code: code ?? (signal ? 128 : 1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        }),
      );
    });
  });
}

function versionOf(bindir: string): Promise<{ major: number; version: string } | null> {
  return new Promise((resolvePromise) => {
    execFile(join(bindir, 'postgres'), ['--version'], { timeout: 10_000 }, (err, stdout) => {
      const m = /\(PostgreSQL\)\s+(\d+)(?:\.\d+)?/.exec(stdout ?? '');
      resolvePromise(err || !m ? null : { major: Number(m[1]), version: stdout.trim() });
    });
  });
}

/** Directories that may hold PostgreSQL server binaries, most specific first. */
async function candidateBindirs(major: number | undefined, env: NodeJS.ProcessEnv): Promise<string[]> {
  const dirs: string[] = [];
  if (env.LIFEBOAT_PG_BINDIR) dirs.push(env.LIFEBOAT_PG_BINDIR);
  const versioned = async (root: string, pattern: (v: string) => string) => {
    const names = await readdir(root).catch(() => [] as string[]);
    return names
      .filter((n) => /^\d+$/.test(n.replace(/^pgsql-/, '')))
      .sort((a, b) => Number(b.replace(/^pgsql-/, '')) - Number(a.replace(/^pgsql-/, '')))
      .map(pattern);
  };
  // Debian and Ubuntu (GitHub's runners too) keep every installed version side by side.
  if (major !== undefined) dirs.push(`/usr/lib/postgresql/${major}/bin`, `/usr/pgsql-${major}/bin`);
  const bindir = await new Promise<string | null>((resolvePromise) => {
    execFile('pg_config', ['--bindir'], { timeout: 10_000 }, (err, stdout) =>
      resolvePromise(err ? null : stdout.trim() || null),
    );
  });
  if (bindir) dirs.push(bindir);
  for (const p of (env.PATH ?? '').split(':')) if (p) dirs.push(p);
  dirs.push(...(await versioned('/usr/lib/postgresql', (v) => `/usr/lib/postgresql/${v}/bin`)));
  dirs.push(...(await versioned('/usr', (v) => `/usr/${v}/bin`)).filter((d) => d.startsWith('/usr/pgsql-')));
  return [...new Set(dirs)];
}

/**
 * Finds the server binaries: of `major` when given (a base backup can only be replayed by its
 * own major version), else the newest found. Looks in LIFEBOAT_PG_BINDIR,
 * /usr/lib/postgresql/<major>/bin, `pg_config --bindir`, PATH, every /usr/lib/postgresql/*\/bin.
 */
export async function findPgBinaries(options: { major?: number; env?: NodeJS.ProcessEnv } = {}): Promise<PgBinaries> {
  const env = options.env ?? process.env;
  const found: PgBinaries[] = [];
  for (const dir of await candidateBindirs(options.major, env)) {
    if (!existsSync(join(dir, 'initdb')) || !existsSync(join(dir, 'pg_ctl')) || !existsSync(join(dir, 'postgres')))
      continue;
    const v = await versionOf(dir);
    if (!v) continue;
    if (options.major === undefined || v.major === options.major) return { bindir: dir, ...v };
    found.push({ bindir: dir, ...v });
  }
  const seen = found.length
    ? `found only ${[...new Set(found.map((f) => `PostgreSQL ${f.major} (${f.bindir})`))].join(', ')}`
    : 'found no initdb, pg_ctl and postgres together';
  throw new LifeboatError(
    'DATABASE_ERROR',
    `PostgreSQL ${options.major === undefined ? '' : `${options.major} `}server binaries not found: ${seen}`,
    {
      hint:
        options.major === undefined
          ? 'install the PostgreSQL server package (Debian/Ubuntu: postgresql), or set LIFEBOAT_PG_BINDIR'
          : `install PostgreSQL ${options.major}'s server package (Debian/Ubuntu: postgresql-${options.major}), or set LIFEBOAT_PG_BINDIR to its bin directory`,
      retryable: false,
    },
  );
}

/** Whether this process must hand PostgreSQL to another user (it runs as root). */
export function runsAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The command line that runs `argv` as the cluster's owner: user postgres for root, else this user. */
export function asClusterOwner(argv: readonly string[]): { command: string; args: string[] } {
  if (!runsAsRoot()) return { command: argv[0] as string, args: argv.slice(1) };
  return { command: 'runuser', args: ['-u', CLUSTER_OWNER, '--', ...argv] };
}

/** Runs a program as the cluster's owner. */
export function runAsClusterOwner(
  argv: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<ToolRun> {
  const { command, args } = asClusterOwner(argv);
  return runTool(command, args, options);
}

/** Gives a path (recursively) to the cluster's owner; nothing to do when this process is the owner. */
export async function chownToClusterOwner(path: string): Promise<void> {
  if (!runsAsRoot()) return;
  const r = await runTool('chown', ['-R', `${CLUSTER_OWNER}:`, path]);
  if (r.code !== 0) {
    throw new LifeboatError('DATABASE_ERROR', `cannot give ${path} to user ${CLUSTER_OWNER}: ${r.stderr.trim()}`, {
      hint: `PostgreSQL runs as user ${CLUSTER_OWNER} when Lifeboat runs as root: create that user (install the server package)`,
    });
  }
}

/** The uid and gid files must have for the cluster's owner; null when that is this process's own user. */
export async function clusterOwnerIds(): Promise<{ uid: number; gid: number } | null> {
  if (!runsAsRoot()) return null;
  const [uid, gid] = await Promise.all([runTool('id', ['-u', CLUSTER_OWNER]), runTool('id', ['-g', CLUSTER_OWNER])]);
  if (uid.code !== 0 || gid.code !== 0) {
    throw new LifeboatError('DATABASE_ERROR', `there is no user ${CLUSTER_OWNER} to run PostgreSQL as`, {
      hint: 'PostgreSQL refuses to run as root: install the server package, which creates the user',
    });
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Whether the cluster's owner can reach a path with `test <flag>` (-r read, -w write, -x enter). */
export async function clusterOwnerCan(flag: '-r' | '-w' | '-x', path: string): Promise<boolean> {
  if (!runsAsRoot()) return true;
  return (await runAsClusterOwner(['test', flag, path])).code === 0;
}

/** initdb as the cluster's owner: a new cluster in `dataDir` (which must not exist or be empty). */
export async function initCluster(
  bin: PgBinaries,
  dataDir: string,
  options: { superuser?: string; extraArgs?: string[] } = {},
): Promise<void> {
  const r = await runAsClusterOwner(
    [
      join(bin.bindir, 'initdb'),
      '-D',
      dataDir,
      '-U',
      options.superuser ?? 'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--no-instructions',
      ...(options.extraArgs ?? []),
    ],
    { env: { ...process.env, LC_ALL: 'C' }, timeoutMs: 120_000 },
  );
  if (r.code !== 0) {
    throw new LifeboatError('DATABASE_ERROR', `initdb of ${dataDir} failed: ${lastLines(r.stderr || r.stdout, 5)}`, {
      hint: `the directory must be new or empty, and user ${CLUSTER_OWNER} must be able to write to it`,
    });
  }
}

/** pg_ctl as the cluster's owner. */
export function pgCtl(
  bin: PgBinaries,
  args: readonly string[],
  options: { timeoutMs?: number } = {},
): Promise<ToolRun> {
  return runAsClusterOwner([join(bin.bindir, 'pg_ctl'), ...args], {
    env: { ...process.env, LC_ALL: 'C' },
    timeoutMs: options.timeoutMs ?? 120_000,
  });
}

/** Stops the server of a data directory (`fast`: sessions ended, a clean shutdown); a stopped one is no error. */
export async function stopCluster(
  bin: PgBinaries,
  dataDir: string,
  mode: 'smart' | 'fast' | 'immediate' = 'fast',
): Promise<void> {
  if (!existsSync(join(dataDir, 'postmaster.pid'))) return;
  const r = await pgCtl(bin, ['stop', '-D', dataDir, '-m', mode, '-w', '-t', '60']);
  if (r.code !== 0 && existsSync(join(dataDir, 'postmaster.pid'))) {
    throw new LifeboatError('DATABASE_ERROR', `pg_ctl stop of ${dataDir} failed: ${lastLines(r.stderr, 3)}`);
  }
}

/** The postmaster's pid from postmaster.pid, or null when the server is not running. */
export async function postmasterPid(dataDir: string): Promise<number | null> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = text ? Number(text.split('\n')[0]) : Number.NaN;
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    // EPERM: alive, only not ours to signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

/** The last `n` non-empty lines of a text, joined with " | " for a one-line message. */
export function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(-n)
    .join(' | ');
}

/** The last `bytes` of a server log, secrets removed: for an error message. */
export async function logTail(file: string, bytes = 4096, secrets: readonly string[] = []): Promise<string> {
  let text: string;
  try {
    const size = (await stat(file)).size;
    const handle = await open(file, 'r');
    try {
      const length = Math.min(bytes, size);
      const buf = Buffer.alloc(length);
      await handle.read(buf, 0, length, size - length);
      text = buf.toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return '(no server log)';
  }
  for (const s of secrets) if (s) text = text.split(s).join('***');
  // Statements in the log may carry passwords (ALTER ROLE … PASSWORD '…').
  return text.replace(/(password\s*[=:]?\s*)('[^']*'|\S+)/gi, '$1***');
}
