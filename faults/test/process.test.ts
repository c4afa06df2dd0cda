// Process faults: the backup and restore workers killed (SIGKILL) or stopped (SIGTERM) at
// random points of a real job, on real Redis (BullMQ), a real S3 server and real files. After
// each fault a new worker takes over; the job must end well (completed, or failed cleanly),
// nothing half-made may be listed, nothing lost, production never left half restored.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, open, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { BullMqJobBus } from '@lifeboat/adapters';
import { BackupResult, type JobProgress, type Manifest, type RestoreResult } from '@lifeboat/domain';
import {
  checksums,
  type DemoTarget,
  generateTarget,
  getTestStack,
  initDemo,
  lifeboat,
  startWorker,
  type TestStack,
  uniqueName,
} from '@lifeboat/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exec, scratchDir, sleep, stop, track } from './harness.js';
import { FULL, Tally, trials } from './record.js';

// Real workers, real backups and restores, many trials: minutes, not seconds.
vi.setConfig({ testTimeout: 900_000, hookTimeout: 300_000 });

/** The job lock the workers run with (LIFEBOAT_JOB_LOCK_MS): a killed worker's job runs again within about twice this. */
const LOCK_MS = 2000;
/** The restore lease's life without renewal (apps/restore's LOCK_TTL_MS). */
const RESTORE_LEASE_MS = 30_000;

let stack: TestStack;

/** A worker process, once it has logged that it started. */
async function start(app: 'backup' | 'restore', env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  return track((await startWorker(app, env)).child);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A promise with its resolve, so one test can wait for another. */
function done(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Where a backup was when the fault came, by the progress it last reported. */
function backupPhase(p: JobProgress | null | undefined): string {
  if (!p || p.phase === 'cut' || p.phase === 'snapshot') return 'reading the target';
  if (p.phase === 'archive') return 'archiving and uploading';
  return p.phase.startsWith('verify') ? 'verifying the committed backup' : p.phase;
}

/** Where a restore was when the fault came, by the step it last reported. */
function restorePhase(step: string | undefined): string {
  switch (step) {
    case undefined:
      return 'before its first step';
    case 'activate-kill-switch':
    case 'stop-target':
      return 'while halting and stopping the target';
    case 'select-backup':
    case 'fetch-and-verify':
    case 'restore-database':
    case 'roll-forward':
      return 'while fetching and checking the backup';
    case 'swap-database':
    case 'restore-state':
      return 'while swapping it in';
    case 'start-shadow':
    case 'health-check':
      return 'while restarting the target';
    default:
      return 'after the target was back (reconcile, ready-to-trade)';
  }
}

/** The backup worker's world: a generated target of tens of MiB backed up to an S3 bucket. */
const backups = {
  dir: '',
  env: {} as NodeJS.ProcessEnv,
  bucket: '',
  /** The worker that takes the next job. */
  worker: undefined as unknown as ChildProcess,
  /** Wall time of one undisturbed backup through the worker, enqueue to result: faults are drawn from it. */
  durationMs: 0,
  /** The backup each job made. */
  made: new Map<string, string>(),
};

/** The steps that swap the restored database and state into production. */
const SWAP_STEPS = ['swap-database', 'restore-state'];

/** Waits until restore job jobId reports one of steps, or ends. */
async function reach(jobId: string, steps: string[]): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { state, progress } = await bus.restore.status('restore', jobId);
    if (state === 'completed' || state === 'failed') return;
    if (progress && steps.includes(progress.phase)) return;
    if (Date.now() > deadline) throw new Error(`restore job ${jobId} never reached ${steps.join(' or ')}`);
    await sleep(5);
  }
}

/** The shorter of a duration seen so far (0: none yet) and a new one. */
function shortest(seen: number, ms: number): number {
  return seen > 0 ? Math.min(seen, ms) : ms;
}

/** The restore worker's world: the demo target, its database damaged, and one backup of it. */
const restores = {
  dir: '',
  demo: undefined as unknown as DemoTarget,
  root: '',
  env: {} as NodeJS.ProcessEnv,
  prefix: '',
  worker: undefined as unknown as ChildProcess,
  /**
   * The shortest restore seen, enqueue to result (the SIGTERM trials let it run; a kill trial
   * whose restore finished before the kill also counts). 0 until one is seen.
   */
  durationMs: 0,
  /** Production before each trial: the damaged database and the rest of the target. */
  before: {} as Record<string, string>,
  backupDb: '',
  backupOrders: 0,
};

let bus: { backup: BullMqJobBus; restore: BullMqJobBus };
let s3: S3Client;
let redis: Redis;

async function setUpBackups(): Promise<void> {
  const b = backups;
  b.dir = await scratchDir('lifeboat-fault-backup-');
  // Tens of MiB of Sofia-shaped data: seconds of reading, archiving and uploading.
  const generated = generateTarget(join(b.dir, 'target'), { sizeBytes: (FULL ? 32 : 20) * 1024 * 1024, seed: 11 });
  b.bucket = await stack.s3.createBucket('faultproc');
  await writeFile(
    join(b.dir, 'lifeboat.yaml'),
    [
      'store:',
      '  type: s3',
      `  endpoint: ${stack.s3.endpoint}`,
      `  region: ${stack.s3.region}`,
      `  bucket: ${b.bucket}`,
      '  prefix: prod',
      '  partSizeMiB: 5',
      'targets:',
      '  demo:',
      '    root: target',
      // The fastest gzip: less CPU per trial, and an archive of more than one 5 MiB part.
      'backup:',
      '  compressionLevel: 1',
      '',
    ].join('\n'),
  );
  const prefix = uniqueName('lbfp');
  b.env = {
    ...process.env,
    LIFEBOAT_CONFIG: join(b.dir, 'lifeboat.yaml'),
    LIFEBOAT_REDIS_URL: stack.redis.url,
    LIFEBOAT_QUEUE_PREFIX: prefix,
    LIFEBOAT_JOB_LOCK_MS: String(LOCK_MS),
    LIFEBOAT_OPS_PORT: '0',
    LIFEBOAT_OPS_HOST: '127.0.0.1',
    AWS_ACCESS_KEY_ID: stack.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
  };
  bus.backup = new BullMqJobBus({ url: stack.redis.url, prefix });
  s3 = new S3Client({
    endpoint: stack.s3.endpoint,
    region: stack.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: stack.s3.accessKeyId, secretAccessKey: stack.s3.secretAccessKey },
  });
  [b.worker] = await Promise.all([start('backup', b.env), generated]);
  const t0 = Date.now();
  const { jobId } = await bus.backup.enqueue('backup', { target: 'demo', reason: 'baseline', requestedBy: 'faults' });
  const first = BackupResult.parse(await bus.backup.result('backup', jobId, { timeoutMs: 120_000 }));
  b.durationMs = Date.now() - t0;
  b.made.set(jobId, first.backupId);
  console.log(`backup baseline: ${b.durationMs} ms, ${first.sourceBytes} bytes read, ${first.bytes} archived`);
}

async function setUpRestores(): Promise<void> {
  const r = restores;
  r.dir = await scratchDir('lifeboat-fault-restore-');
  r.demo = await initDemo(join(r.dir, 'demo'));
  r.root = join(r.dir, 'demo', 'target');
  r.prefix = uniqueName('lbfr');
  r.env = {
    ...process.env,
    LIFEBOAT_CONFIG: r.demo.config,
    LIFEBOAT_REDIS_URL: stack.redis.url,
    LIFEBOAT_QUEUE_PREFIX: r.prefix,
    LIFEBOAT_JOB_LOCK_MS: String(LOCK_MS),
    LIFEBOAT_OPS_PORT: '0',
    LIFEBOAT_OPS_HOST: '127.0.0.1',
  };
  bus.restore = new BullMqJobBus({ url: stack.redis.url, prefix: r.prefix });
  redis = new Redis(stack.redis.url);
  // The venue runs throughout: the restarted trading system talks to it.
  const venue = ['demo', 'start', '--detach', '--only', 'exchange', '--exchange-port', String(r.demo.exchangePort)];
  const [started, made, worker] = await Promise.all([
    lifeboat([...venue, '--config', r.demo.config]),
    lifeboat(['backup', '--config', r.demo.config, '--json']),
    start('restore', r.env),
  ]);
  r.worker = worker;
  if (started.code !== 0) throw new Error(`the demo's exchange did not start: ${started.stderr}`);
  if (made.code !== 0) throw new Error(`the demo's backup failed: ${made.stderr}`);
  const backupId = (JSON.parse(made.stdout) as BackupResult).backupId;
  const manifest = JSON.parse(
    readFileSync(join(r.dir, 'demo', 'store', 'demo', 'backups', backupId, 'manifest.json'), 'utf8'),
  ) as Manifest;
  r.backupDb = manifest.entries.find((e) => e.role === 'database')?.sha256 as string;
  r.backupOrders = manifest.database?.tables.orders as number;
  // The trading system is down and its database damaged (the db-corruption scenario).
  const db = await open(join(r.root, 'trading.db'), 'r+');
  await db.write(Buffer.alloc(8192, 0x5a), 0, 8192, 16_384);
  await db.close();
  await cp(r.root, join(r.dir, 'damaged'), { recursive: true });
  r.before = checksums(r.root);
}

beforeAll(async () => {
  stack = await getTestStack();
  bus = {} as typeof bus;
  await Promise.all([setUpBackups(), setUpRestores()]);
});

afterAll(async () => {
  await bus?.backup?.close();
  await bus?.restore?.close();
  s3?.destroy();
  redis?.disconnect();
  // The paper-trader the last restore started, and the venue.
  await restores.demo?.stop();
});

/* ------------------------------------------------------------------------------------------ */
/* Backups                                                                                     */

/** Every object key in the bucket. */
async function keys(): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: backups.bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) out.push(o.Key as string);
    token = page.NextContinuationToken;
  } while (token);
  return out.sort();
}

/**
 * The store after a trial, as the catalog reads it: a manifest for every job's one backup and
 * for nothing else. What killed runs left (upload markers, an archive with no manifest) is
 * counted; `backups list` must not show it.
 */
async function checkStore(): Promise<{ problems: string[]; strays: string[] }> {
  const all = await keys();
  const committed = all
    .filter((k) => k.endsWith('/manifest.json'))
    .map((k) => k.split('/').at(-2) as string)
    .sort();
  const expected = [...new Set(backups.made.values())].sort();
  const problems =
    JSON.stringify(committed) === JSON.stringify(expected)
      ? []
      : [`manifests of [${committed.join(', ')}], the jobs made [${expected.join(', ')}]`];
  const strays = all.filter((k) => k.includes('/backups/') && !expected.some((id) => k.includes(`/backups/${id}/`)));
  return { problems, strays };
}

/**
 * `lifeboat backups list --json` shows each job's one backup once (by its job id too) and
 * nothing else, and `lifeboat verify` passes for each (those not verified before, two at a time).
 */
async function checkCatalog(verified: Set<string>): Promise<string[]> {
  const problems: string[] = [];
  const list = await lifeboat(['backups', 'list', '--json'], backups.env);
  if (list.code !== 0) return [`backups list failed: ${list.stderr}`];
  const listed = (JSON.parse(list.stdout) as { backups: Array<{ backupId: string; jobId?: string }> }).backups;
  const ids = listed.map((b) => b.backupId).sort();
  const expected = [...new Set(backups.made.values())].sort();
  if (JSON.stringify(ids) !== JSON.stringify(expected)) {
    problems.push(`listed [${ids.join(', ')}], the jobs made [${expected.join(', ')}]`);
  }
  for (const jobId of backups.made.keys()) {
    const n = listed.filter((b) => b.jobId === jobId).length;
    if (n !== 1) problems.push(`${n} listed backups of job ${jobId}`);
  }
  const todo = ids.filter((id) => !verified.has(id));
  for (let i = 0; i < todo.length; i += 2) {
    const pair = todo.slice(i, i + 2);
    const runs = await Promise.all(pair.map((id) => lifeboat(['verify', id, '--json'], backups.env)));
    runs.forEach((v, j) => {
      if (v.code === 0) verified.add(pair[j] as string);
      else problems.push(`backup ${pair[j]} does not verify: ${v.stdout || v.stderr}`);
    });
  }
  return problems;
}

/** What runs that never committed left in the store, by kind. */
function describeStrays(strays: string[]): string {
  const markers = strays.filter((k) => k.endsWith('.upload-in-progress.json')).length;
  const archives = strays.filter((k) => /\/archive\.tar\.gz(\.age)?$/.test(k)).length;
  const other = strays.length - markers - archives;
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? '' : 's'}`;
  return `${n(markers, 'upload marker')}, ${n(archives, 'archive')} with no manifest${other ? `, ${n(other, 'other object')}` : ''}`;
}

/**
 * One trial: a backup job, its worker signalled at a random point of it while the next worker
 * starts beside it; then how the job ended and what the store holds.
 */
async function backupTrial(
  signal: NodeJS.Signals,
  i: number,
  n: number,
): Promise<{ outcome: string; lost: boolean; strays: string[] }> {
  const b = backups;
  const jobId = `backup:demo:fault-${signal.toLowerCase()}-${i}`;
  const delay = Math.round(Math.random() * b.durationMs);
  await bus.backup.enqueue('backup', { target: 'demo', reason: `fault trial ${i}`, requestedBy: 'faults' }, { jobId });
  const finished = bus.backup.result('backup', jobId, { timeoutMs: 180_000 });
  finished.catch(() => {});
  // The next worker starts now: its start-up overlaps the job rather than following the fault.
  const next = start('backup', b.env);
  next.catch(() => {});
  await sleep(delay);
  const seen = await bus.backup.status('backup', jobId);
  const phase = seen.state === 'active' ? `while ${backupPhase(seen.progress)}` : `before it started (${seen.state})`;
  const code = await stop(b.worker, signal);
  const after = (await bus.backup.status('backup', jobId)).state;
  const t0 = Date.now();
  b.worker = await next;
  let outcome: string;
  let lost = false;
  let strays: string[] = [];
  try {
    const result = BackupResult.parse(await finished);
    const took = Date.now() - t0;
    b.made.set(jobId, result.backupId);
    const found = result.deduplicated ? ' (found the backup the killed run had committed)' : '';
    if (after === 'completed') outcome = 'finished before the signal';
    else if (signal === 'SIGKILL') outcome = `killed ${phase}; job retried and completed${found}`;
    else if (after === 'waiting') outcome = `stopped ${phase}; job handed back, a new worker completed it${found}`;
    else outcome = `stopped ${phase}; job ${after}, then completed${found}`;
    const checked = await checkStore();
    strays = checked.strays;
    if (signal === 'SIGTERM' && code !== 0) checked.problems.push(`the stopped worker exited with ${code}`);
    if (checked.problems.length) {
      lost = true;
      outcome = `${outcome}, but ${checked.problems.join('; ')}`;
    }
    console.log(
      `backup ${signal} trial ${i}/${n}: at ${delay} ms: ${outcome}; result ${took} ms after the signal; ` +
        `left by unfinished runs: ${describeStrays(strays)}`,
    );
  } catch (err) {
    lost = true;
    outcome = `job not completed: ${(err as Error).message}`;
    console.log(`backup ${signal} trial ${i}/${n}: at ${delay} ms (${phase}): ${outcome}`);
  }
  return { outcome, lost, strays };
}

/* ------------------------------------------------------------------------------------------ */
/* Restores                                                                                    */

const KILL_SWITCH = 'kill_switch_state.json';

function traderPid(): number | null {
  const file = join(restores.dir, 'demo', 'run', 'paper-trader.pid');
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
}

/** Stops the paper-trader a restore started (SIGTERM, as `demo stop` does), and waits for it. */
async function stopTrader(): Promise<void> {
  const pid = traderPid();
  if (pid === null) return;
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; alive(pid); waited += 50) {
    if (waited > 30_000) throw new Error(`the paper-trader (pid ${pid}) did not stop`);
    await sleep(50);
  }
}

/**
 * Waits for the control commands (`demo stop`, `demo start`) a killed worker had started: they
 * run on without it, and production is only judged once they are done.
 */
async function settle(): Promise<void> {
  const config = restores.demo.config;
  const running = () =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .some((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(config);
        } catch {
          return false;
        }
      });
  for (let waited = 0; running(); waited += 100) {
    if (waited > 60_000) throw new Error('control commands of a killed restore still run after 60 s');
    await sleep(100);
  }
}

/** Production damaged again, as before the first trial, with nothing running on it. */
async function reset(): Promise<void> {
  await stopTrader();
  await rm(restores.root, { recursive: true, force: true });
  await cp(join(restores.dir, 'damaged'), restores.root, { recursive: true });
}

function restoreRequest(reason: string) {
  return {
    target: 'demo',
    scenario: 'db-corruption',
    destination: 'production',
    reconcile: false,
    reason,
    requestedBy: 'faults',
  };
}

/** Restore staging directories beside production. */
function stagings(): string[] {
  const root = restores.root;
  return readdirSync(dirname(root)).filter((n) => n.startsWith(`.${basename(root)}.lifeboat-restore-`));
}

/** A temporary file of an atomic write (adapters' writeFileAtomic) that a killed process left. */
const LEFT_TEMP = /(^|\/)\.[^/]+\.[A-Za-z0-9_-]+\.\d+\.[0-9a-f]{8}\.tmp$/;

/**
 * Production's state, judged without the temporary files a killed writer left (the file it was
 * replacing is whole either way); `temps` lists those, which the next write removes.
 */
async function production(): Promise<{ state: string; killSwitch: string; note?: string; temps: string[] }> {
  const judged = await judgeProduction();
  return { ...judged, temps: Object.keys(checksums(restores.root)).filter((k) => LEFT_TEMP.test(k)) };
}

/**
 * What production is now: `untouched` (every file as before; the kill switch as before, or ON),
 * `restored` (the backup's database in place and the damaged one moved aside beside it, the
 * rest as before but for what the restarted trading system writes), or what is wrong.
 */
async function judgeProduction(): Promise<{ state: string; killSwitch: string; note?: string }> {
  const { root, before, backupDb, backupOrders } = restores;
  const now = checksums(root, (rel) => LEFT_TEMP.test(rel));
  const killSwitch = (JSON.parse(readFileSync(join(root, KILL_SWITCH), 'utf8')) as { state: string }).state;
  const damaged = before['trading.db'] as string;
  if (!Object.values(now).includes(damaged)) return { state: 'the damaged database is gone', killSwitch };
  const changed = Object.keys(before).filter((k) => k !== KILL_SWITCH && now[k] !== before[k]);
  const added = Object.keys(now).filter((k) => !(k in before));
  if (changed.length === 0 && added.length === 0) {
    const ks = now[KILL_SWITCH] === before[KILL_SWITCH] || killSwitch === 'ON';
    return { state: ks ? 'untouched' : 'untouched but the kill switch changed', killSwitch };
  }
  const aside = added.filter((k) => /^trading\.db\.corrupted-[0-9TZ]+$/.test(k));
  // Killed inside the swap after the damaged database got its second name, before the
  // restored one took the first: the same bytes under both names, production as it was.
  if (changed.length === 0 && aside.length === added.length && aside.every((k) => now[k] === damaged)) {
    return { state: 'untouched', killSwitch, note: 'the damaged database also linked aside' };
  }
  if (aside.length === 0) {
    return { state: `mixed: ${[...changed, ...added].join(', ')} changed, nothing moved aside`, killSwitch };
  }
  if (traderPid() === null) {
    const other = [...changed, ...added].filter((k) => k !== 'trading.db' && !aside.includes(k));
    if (now['trading.db'] !== backupDb || other.length) {
      const db = now['trading.db'] === backupDb ? 'the backup' : 'not the backup';
      return { state: `mixed: trading.db is ${db}; also changed: ${other.join(', ') || 'nothing'}`, killSwitch };
    }
    return { state: 'restored', killSwitch };
  }
  // Restarted in shadow mode, it records shadow orders on top of the backup's books.
  const writes = /^(trading\.db(-wal|-shm)?|shadow_orders\.jsonl|logs\/.*)$/;
  const other = [...changed, ...added].filter((k) => !writes.test(k) && !aside.includes(k));
  const { stdout } = await exec('sqlite3', [
    '-readonly',
    join(root, 'trading.db'),
    'PRAGMA quick_check; SELECT count(*) FROM orders;',
  ]);
  const [check, orders] = stdout.trim().split('\n');
  if (check !== 'ok' || Number(orders) < backupOrders || other.length) {
    return {
      state: `mixed: database ${check}, ${orders} orders (the backup has ${backupOrders}); also changed: ${other.join(', ') || 'nothing'}`,
      killSwitch,
    };
  }
  return { state: 'restored', killSwitch };
}

/* ------------------------------------------------------------------------------------------ */

// The backup trials and the restore trials run side by side (each part's trials one after
// another), which keeps the file's time down: each part mostly waits on its own processes.
const backupKills = done();
/** Backups `lifeboat verify` has passed. */
const verified = new Set<string>();
const restoreStops = done();

describe('process faults', () => {
  it.concurrent('backup worker killed (SIGKILL) at random points: a new worker retries the job to one committed backup', async () => {
    try {
      const tally = new Tally();
      const n = trials(20, 3);
      let strays: string[] = [];
      for (let i = 1; i <= n; i++) {
        const t = await backupTrial('SIGKILL', i, n);
        strays = t.strays;
        tally.add(t.outcome, t.lost);
      }
      const failed = await checkCatalog(verified);
      if (failed.length) tally.lost += 1;
      console.log(`backup SIGKILL: backups list and verify: ${failed.length ? failed.join('; ') : 'as expected'}`);
      tally.record(
        'process',
        'backup worker killed (SIGKILL) mid-backup',
        `a new worker completes the job (job lock ${LOCK_MS} ms); after each trial the store holds a manifest for each job's one backup and no other; then \`backups list\` shows each job's one backup once and nothing else, and each verifies; what killed runs left (${describeStrays(strays)}) is not listed`,
      );
      expect(failed).toEqual([]);
      expect(tally.lost).toBe(0);
    } finally {
      backupKills.resolve();
    }
  });

  it.concurrent('backup worker stopped (SIGTERM) mid-backup: the job finishes, or is handed back and a new worker completes it', async () => {
    await backupKills.promise;
    const tally = new Tally();
    const n = trials(5, 1);
    for (let i = 1; i <= n; i++) {
      const t = await backupTrial('SIGTERM', i, n);
      tally.add(t.outcome, t.lost);
    }
    const failed = await checkCatalog(verified);
    if (failed.length) tally.lost += 1;
    console.log(`backup SIGTERM: backups list and verify: ${failed.length ? failed.join('; ') : 'as expected'}`);
    tally.record(
      'process',
      'backup worker stopped (SIGTERM) mid-backup',
      'the worker exits 0; the job completes (on it, or handed back to the queue and taken by a new worker) with one backup, listed once, verifying',
    );
    expect(failed).toEqual([]);
    expect(tally.lost).toBe(0);
  });

  it.concurrent('restore worker stopped (SIGTERM) mid-restore: it finishes the restore, then exits', async () => {
    const r = restores;
    try {
      const tally = new Tally();
      const n = trials(5, 1);
      for (let i = 1; i <= n; i++) {
        await reset();
        const jobId = `restore:demo:fault-term-${i}`;
        // Until one restore has been timed, the first seconds: every restore takes longer.
        const delay = Math.round(Math.random() * (r.durationMs || 4000));
        const t0 = Date.now();
        await bus.restore.enqueue('restore', restoreRequest(`fault trial ${i}`), { jobId });
        const finished = bus.restore.result('restore', jobId, { timeoutMs: 180_000 });
        finished.catch(() => {});
        const next = start('restore', r.env);
        next.catch(() => {});
        await sleep(delay);
        const step = (await bus.restore.status('restore', jobId)).progress?.phase;
        const code = await stop(r.worker, 'SIGTERM');
        const stoppedAt = (await bus.restore.status('restore', jobId)).state;
        r.worker = await next;
        const problems: string[] = [];
        if (code !== 0) problems.push(`the worker exited with ${code}`);
        let outcome: string;
        try {
          const result = (await finished) as RestoreResult;
          if (stoppedAt === 'completed') r.durationMs = shortest(r.durationMs, Date.parse(result.endedAt) - t0);
          if (result.outcome !== 'COMPLETED') {
            problems.push(`the restore ended ${result.outcome} at ${result.failedStep}: ${result.error?.message}`);
          }
          outcome =
            stoppedAt === 'completed'
              ? `stopped ${restorePhase(step)}; the worker finished the restore, then exited`
              : `stopped before it took the job (${stoppedAt}); a new worker completed it`;
        } catch (err) {
          outcome = `the job failed: ${(err as Error).message}`;
          problems.push(outcome);
        }
        const after = await production();
        if (after.state !== 'restored') problems.push(`production ${after.state}`);
        if (after.killSwitch !== 'ON') problems.push(`kill switch ${after.killSwitch}`);
        console.log(
          `restore SIGTERM trial ${i}/${n}: at ${delay} ms (${step ?? 'queued'}): ${outcome}; production ${after.state}, kill switch ${after.killSwitch}` +
            (problems.length ? `; PROBLEMS: ${problems.join('; ')}` : ''),
        );
        tally.add(problems.length ? `${outcome}, but ${problems.join('; ')}` : outcome, problems.length > 0);
      }
      tally.record(
        'process',
        'restore worker stopped (SIGTERM) mid-restore',
        'the worker finishes the running restore (db-corruption) and exits 0; production fully restored, the damaged database kept aside, kill switch ON',
      );
      expect(tally.lost).toBe(0);
    } finally {
      restoreStops.resolve();
    }
  });

  it.concurrent('restore worker killed (SIGKILL) mid-restore: production untouched or fully restored, kill switch ON; the job then completes', async () => {
    await restoreStops.promise;
    const r = restores;
    const tally = new Tally();
    const n = trials(10, 2);
    for (let i = 1; i <= n; i++) {
      await reset();
      const jobId = `restore:demo:fault-kill-${i}`;
      // Over the shortest restore seen, so that a kill lands mid-restore rather than after it;
      // every third trial and the last aim at the swap instead, a step too short to hit by chance.
      const aimed = i % 3 === 0 || i === n;
      const delay = Math.round(Math.random() * (r.durationMs || 8000));
      const t0 = Date.now();
      // As the console queues it: a restore is never retried by itself after a failure.
      await bus.restore.enqueue('restore', restoreRequest(`fault trial ${i}`), { jobId, attempts: 1 });
      const finished = bus.restore.result('restore', jobId, { timeoutMs: 180_000 });
      finished.catch(() => {});
      const next = start('restore', r.env);
      next.catch(() => {});
      if (aimed) await reach(jobId, SWAP_STEPS);
      else await sleep(delay);
      const step = (await bus.restore.status('restore', jobId)).progress?.phase;
      await stop(r.worker, 'SIGKILL');
      const killedAt = (await bus.restore.status('restore', jobId)).state;
      await settle();
      const afterKill = await production();
      const problems: string[] = [];
      if (afterKill.state !== 'untouched' && afterKill.state !== 'restored')
        problems.push(`after the kill: ${afterKill.state}`);
      if (afterKill.state !== 'untouched' && afterKill.killSwitch !== 'ON')
        problems.push(`kill switch ${afterKill.killSwitch}`);
      // The killed run cleared what earlier killed runs left in staging: at most its own remains.
      if (stagings().length > 1) problems.push(`${stagings().length} staging directories left beside production`);
      r.worker = await next;
      let end: string;
      try {
        const result = (await finished) as RestoreResult;
        if (killedAt === 'completed') r.durationMs = shortest(r.durationMs, Date.parse(result.endedAt) - t0);
        const ran = killedAt === 'completed' ? 'the job had completed' : 'the job ran again and completed';
        end =
          result.outcome === 'COMPLETED'
            ? ran
            : `the job ended ${result.outcome} at ${result.failedStep}: ${result.error?.message}`;
      } catch (err) {
        // The job's next run waits out its own earlier run's lease: it never fails for it.
        end = `the job failed: ${(err as Error).message}`;
        problems.push(end);
      }
      await settle();
      const after = await production();
      if (after.state !== 'untouched' && after.state !== 'restored') problems.push(`after the job: ${after.state}`);
      if (after.state !== 'untouched' && after.killSwitch !== 'ON')
        problems.push(`kill switch ${after.killSwitch} after the job`);
      if (/completed$/.test(end) && after.state !== 'restored')
        problems.push(`completed, yet production ${after.state}`);
      if (after.temps.length) problems.push(`temporary files left after the job: ${after.temps.join(', ')}`);
      // The killed run's lease, if it took one, lapses on its own: a target is never locked for good.
      const lease = `${r.prefix}:lock:restore:demo`;
      const ttl = await redis.pttl(lease);
      if (ttl === -1 || ttl > RESTORE_LEASE_MS)
        problems.push(`the restore lease lives ${ttl === -1 ? 'forever' : `${ttl} ms`}`);
      const where = killedAt === 'completed' ? 'finished before the kill' : `killed ${restorePhase(step)}`;
      const outcome = `${where}: production ${afterKill.state}${afterKill.note ? ` (${afterKill.note})` : ''}; ${end}`;
      console.log(
        `restore SIGKILL trial ${i}/${n}: ${aimed ? 'aimed at the swap' : `at ${delay} ms`} (${step ?? 'queued'}), ${where}; production ${afterKill.state} (kill switch ${afterKill.killSwitch}); ${end}; ` +
          `then ${after.state} (kill switch ${after.killSwitch}); lease expires in ${ttl} ms; ${stagings().length} staging left` +
          (afterKill.temps.length ? `; the kill left ${afterKill.temps.join(', ')}, removed by the next run` : '') +
          (problems.length ? `; PROBLEMS: ${problems.join('; ')}` : ''),
      );
      tally.add(problems.length ? `${outcome}, but ${problems.join('; ')}` : outcome, problems.length > 0);
      // Stands in for the lease's own expiry (checked above), so the next trial need not wait up to 30 s.
      if (ttl > 0 && !(FULL && i === n)) await redis.del(lease);
    }
    if (FULL) {
      // Once more with no lease removed by hand: whatever the last trial left lapses by itself,
      // and a new restore runs to the end.
      const lease = `${r.prefix}:lock:restore:demo`;
      for (let waited = 0; (await redis.pttl(lease)) > 0; waited += 250) {
        if (waited > RESTORE_LEASE_MS + 5000) throw new Error('the killed run’s restore lease never lapsed');
        await sleep(250);
      }
      await settle();
      await reset();
      const { jobId } = await bus.restore.enqueue('restore', restoreRequest('after the faults'), { attempts: 1 });
      const result = (await bus.restore.result('restore', jobId, { timeoutMs: 180_000 })) as RestoreResult;
      const after = await production();
      console.log(
        `restore after the last kill's lease lapsed: ${result.outcome}; production ${after.state}, kill switch ${after.killSwitch}; ${stagings().length} staging left`,
      );
      expect(result.outcome).toBe('COMPLETED');
      expect(after).toEqual({ state: 'restored', killSwitch: 'ON', temps: [] });
      expect(stagings()).toEqual([]);
    }
    tally.record(
      'process',
      'restore worker killed (SIGKILL) mid-restore',
      `killed at random within the shortest restore seen, or as the swap begins; production (db-corruption) untouched or fully restored, never mixed, the damaged database kept; the kill switch ON once anything was touched; the job, run again by a new worker, waits out the killed run's lease (it expires within ${RESTORE_LEASE_MS / 1000} s) and completes${FULL ? ' (once waited out: the next restore then completes)' : ''}; its staging is removed by the next restore`,
    );
    expect(tally.lost).toBe(0);
  });
});
