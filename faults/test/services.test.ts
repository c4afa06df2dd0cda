// Service faults: Redis, the S3 server and the catalog's PostgreSQL going away while jobs run.
// Every service here is a private one started by this file (the shared Redis and PostgreSQL
// are never restarted); the workers are the built apps, as separate processes.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CreateBucketCommand, ListObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { BullMqJobBus } from '@lifeboat/adapters';
import { type BackupResult, LifeboatError, layout, scheduledBackupJobId } from '@lifeboat/domain';
import {
  agreeingSides,
  freePort,
  generateTarget,
  getTestStack,
  lifeboat,
  type PrivateCluster,
  REPO_ROOT,
  startPrivateCluster,
  startWorker,
  type TestStack,
  uniqueName,
} from '@lifeboat/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Tally, trials } from './record.js';

// Real services restarted under real workers: tens of seconds per trial on a loaded machine.
vi.setConfig({ testTimeout: 600_000, hookTimeout: 300_000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Each fault's services and workers, started side by side (together they take the time of the
// slowest) and stopped at the end whichever tests ran.
const setups: Array<() => Promise<void>> = [];
const cleanups: Array<() => Promise<void>> = [];
beforeAll(async () => {
  const failed = (await Promise.allSettled(setups.map((setup) => setup()))).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
});
afterAll(async () => {
  await Promise.allSettled(cleanups.map((cleanup) => cleanup()));
});

/** Polls until `check` is true (an error counts as not yet), or fails naming what never happened. */
async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await Promise.resolve(check()).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A sample of a worker's /metrics: the value of `name` whose labels include `labels`. */
async function metric(ops: string, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await (await fetch(`${ops}/metrics`)).text();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** The job's final state, asked again while Redis is away (the bus then throws). */
async function settle(bus: BullMqJobBus, queue: 'backup' | 'reconcile', jobId: string, timeoutMs: number) {
  let status: Awaited<ReturnType<BullMqJobBus['status']>> | undefined;
  await waitFor(
    async () => {
      status = await bus.status(queue, jobId);
      return status.state === 'completed' || status.state === 'failed';
    },
    timeoutMs,
    `job ${queue}/${jobId} to finish`,
  );
  return status as NonNullable<typeof status>;
}

/** The committed backups in a filesystem store: backup id → its manifest's scheduledAt. */
function manifestsIn(store: string, target: string): Array<{ backupId: string; scheduledAt?: string }> {
  const dir = join(store, target, 'backups');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((id) => existsSync(join(dir, id, 'manifest.json')))
    .map((backupId) => {
      const m = JSON.parse(readFileSync(join(dir, backupId, 'manifest.json'), 'utf8')) as { scheduledAt?: string };
      return { backupId, ...(m.scheduledAt ? { scheduledAt: m.scheduledAt } : {}) };
    });
}

/** The audit trail's entries in a filesystem store. */
function auditEntriesIn(store: string): Array<{ seq: number; action: string; details: { jobId?: string } }> {
  const dir = join(store, layout.auditPrefix);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /^\d{12}\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
}

// ---------------------------------------------------------------------------------------
// Redis

interface PrivateRedis {
  url: string;
  /** Stops the server with `signal`, leaves it down `downMs`, and starts it again on the same port and data. */
  restart(signal: 'SIGTERM' | 'SIGKILL', downMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Whether a Redis server answers PING on this port (not while it still loads its data). */
function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
    socket.once('connect', () => socket.write('PING\r\n'));
  });
}

/**
 * A redis-server of this file's own, with an append-only file fsynced at every write: a restart
 * keeps every write Redis acknowledged, as a production Redis with persistence does (the
 * compose file runs it with --appendonly yes). Without persistence (`--save "" --appendonly
 * no`) a restart empties the queues, and no client can bring back jobs the server forgot.
 */
async function startRedis(dir: string): Promise<PrivateRedis> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    '--logfile',
    join(dir, 'redis.log'),
  ];
  let child: ChildProcess;
  const launch = async () => {
    child = spawn('redis-server', args, { stdio: 'ignore' });
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (err) =>
        reject(new Error(`redis-server did not start (${err.message}): install redis-server`)),
      );
      child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code}: see ${dir}/redis.log`)));
    });
    failed.catch(() => {});
    await Promise.race([failed, waitFor(() => redisAnswers(port), 15_000, `redis-server on port ${port}`)]);
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    async restart(signal, downMs) {
      child.removeAllListeners('exit');
      child.kill(signal);
      await exited(child);
      await sleep(downMs);
      await launch();
    },
    async stop() {
      child.removeAllListeners('exit');
      child.kill('SIGKILL');
      await exited(child);
    },
  };
}

describe('Redis restarted while backup and reconcile jobs run', () => {
  let dir: string;
  let redis: PrivateRedis;
  let prefix: string;
  let books: string;
  let snapshot: string;
  const workers: Array<{ child: ChildProcess; ops: string }> = [];
  /** Jobs the workers ran but could not record in the audit trail, as they log them. */
  const unaudited: string[] = [];

  setups.push(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-fault-redis-'));
    await generateTarget(join(dir, 'target'), { sizeBytes: 256 * 1024, seed: 11 });
    await writeFile(
      join(dir, 'lifeboat.yaml'),
      ['store:', '  type: fs', '  path: store', 'targets:', '  demo:', '    root: target', ''].join('\n'),
    );
    const sides = agreeingSides();
    books = join(dir, 'books.json');
    snapshot = join(dir, 'snapshot.json');
    await writeFile(books, JSON.stringify(sides.books));
    await writeFile(snapshot, JSON.stringify(sides.snapshot));
    redis = await startRedis(join(dir, 'redis'));
    prefix = uniqueName('lbfr');
    const env = {
      ...process.env,
      LIFEBOAT_CONFIG: join(dir, 'lifeboat.yaml'),
      LIFEBOAT_REDIS_URL: redis.url,
      LIFEBOAT_QUEUE_PREFIX: prefix,
      LIFEBOAT_OPS_PORT: '0',
      LIFEBOAT_OPS_HOST: '127.0.0.1',
    };
    workers.push(...(await Promise.all([startWorker('backup', env), startWorker('reconciler', env)])));
    for (const w of workers) {
      createInterface({ input: w.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        if (line.includes('not recorded in the audit trail')) unaudited.push(line);
      });
    }
  });

  cleanups.push(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => exited(w.child)));
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('every job completes once: the workers reconnect, no job is lost, no backup made twice', async () => {
    const tally = new Tally();
    const n = trials(5, 1);
    for (let trial = 1; trial <= n; trial++) {
      const started = Date.now();
      // Alternately a clean restart and a crash; with appendfsync always neither loses a write.
      const signal = trial % 2 === 1 ? 'SIGKILL' : 'SIGTERM';
      const bus = new BullMqJobBus({ url: redis.url, prefix, onError: () => {} });
      try {
        const slots = Array.from({ length: 6 }, (_, i) => new Date(Date.UTC(2030, 0, trial, 0, i)).toISOString());
        const backupJobs = slots.map((s) => scheduledBackupJobId('demo', new Date(s)));
        for (const [i, scheduledAt] of slots.entries()) {
          await bus.enqueue(
            'backup',
            { target: 'demo', reason: 'fault: redis restart', requestedBy: 'faults', scheduledAt },
            { jobId: backupJobs[i] as string },
          );
        }
        const reconcileJobs = [1, 2, 3, 4].map((i) => `reconcile-fault-${trial}-${i}`);
        const enqueueReconcile = (jobId: string) =>
          bus.enqueue(
            'reconcile',
            { internal: books, exchange: snapshot, store: false, requestedBy: 'faults' },
            { jobId },
          );
        for (const jobId of reconcileJobs.slice(0, 2)) await enqueueReconcile(jobId);
        // Restarted once the first backup is done: the rest are running or waiting.
        await waitFor(
          async () => (await bus.status('backup', backupJobs[0] as string)).state === 'completed',
          60_000,
          'the first backup',
        );
        const before = await Promise.all(backupJobs.map((j) => bus.status('backup', j).then((s) => s.state)));
        // Down 3 s: the running backup finishes while Redis is away, and records itself after.
        await redis.restart(signal, 3000);
        // Producers reconnect too: half the reconcile jobs are queued once Redis is back.
        for (const jobId of reconcileJobs.slice(2)) await enqueueReconcile(jobId);

        const backups = await Promise.all(backupJobs.map((j) => settle(bus, 'backup', j, 180_000)));
        const reconciles = await Promise.all(reconcileJobs.map((j) => settle(bus, 'reconcile', j, 180_000)));
        const perSlot = slots.map(
          (s) => manifestsIn(join(dir, 'store'), 'demo').filter((m) => m.scheduledAt === s).length,
        );
        const audited = new Set(
          auditEntriesIn(join(dir, 'store'))
            .filter((e) => e.action === 'backup.completed')
            .map((e) => e.details.jobId),
        );
        const alive = workers.every((w) => w.child.exitCode === null);
        const healthy = await Promise.all(
          workers.map((w) =>
            fetch(`${w.ops}/health`).then(
              (r) => r.status === 200,
              () => false,
            ),
          ),
        );
        const reran = backups.filter((b) => b.attemptsMade > 1 || (b.result as BackupResult)?.deduplicated).length;
        const lost =
          backups.some((b) => b.state !== 'completed') ||
          reconciles.some((r) => r.state !== 'completed') ||
          perSlot.some((c) => c !== 1) ||
          unaudited.length > 0;
        const outcome = lost
          ? 'a job or its audit record lost, or a backup made twice'
          : `Redis ${signal === 'SIGKILL' ? 'killed (SIGKILL)' : 'stopped (SIGTERM)'} and restarted: all 10 jobs completed, one backup per job${reran ? ' (a job run again made no second backup)' : ''}`;
        tally.add(outcome, lost);
        console.log(
          `redis restart trial ${trial}/${n}: ${signal}, states at the restart ${before.join(',')}; ${outcome}; ` +
            `backups per slot ${perSlot.join(',')}; audited ${backupJobs.filter((j) => audited.has(j)).length}/6; ${Date.now() - started} ms`,
        );
        expect(backups.map((b) => b.state)).toEqual(backupJobs.map(() => 'completed'));
        expect(reconciles.map((r) => (r.result as { report: { verdict: string } } | null)?.report.verdict)).toEqual(
          reconcileJobs.map(() => 'PASS'),
        );
        expect(perSlot).toEqual(slots.map(() => 1));
        // Each job's completion is in the audit trail, whose lock lives in the Redis that restarted.
        expect(backupJobs.filter((j) => !audited.has(j))).toEqual([]);
        expect(unaudited).toEqual([]);
        expect(alive).toBe(true);
        expect(healthy).toEqual(workers.map(() => true));
      } finally {
        await bus.close();
      }
    }
    tally.record(
      'service',
      'Redis restarted while backup and reconcile jobs run',
      'every job completed (reconciles PASS); exactly one committed backup per job (scheduled slot) in the store; every job recorded in the audit trail (whose lock is in that Redis); both workers alive and healthy',
    );
    expect(tally.lost).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
// The S3 server

/** s3rver on a fixed port and directory, in a process of its own so it can be killed and started again. */
const S3RVER = `
const { default: S3rver } = await import('s3rver');
const server = new S3rver({ address: '127.0.0.1', port: Number(process.env.S3_PORT), directory: process.env.S3_DIR, silent: true });
await server.run();
process.stdout.write('ready\\n');
`;

interface ChildS3 {
  endpoint: string;
  /** Starts the server (again): same port, same buckets and objects. */
  start(): Promise<void>;
  /** Kills it (SIGKILL): connections reset, the port refuses. */
  kill(): Promise<void>;
}

async function childS3(dir: string): Promise<ChildS3> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  let child: ChildProcess | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async start() {
      const c = spawn(process.execPath, ['--input-type=module', '-e', S3RVER], {
        cwd: REPO_ROOT,
        env: { ...process.env, S3_PORT: String(port), S3_DIR: dir },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      child = c;
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: c.stdout as NodeJS.ReadableStream }).on('line', (l) => {
          if (l === 'ready') resolve();
        });
        c.once('error', reject);
        c.once('exit', (code) =>
          reject(new Error(`the S3 server (s3rver) exited with code ${code} before it answered`)),
        );
      });
    },
    async kill() {
      if (!child) return;
      child.kill('SIGKILL');
      await exited(child);
      child = undefined;
    },
  };
}

describe('the S3 server stopped during a backup upload', () => {
  let stack: TestStack;
  let dir: string;
  let s3: ChildS3;
  let client: S3Client;
  let bucket: string;
  let config: string;
  let env: NodeJS.ProcessEnv;
  let worker: { child: ChildProcess; ops: string };
  let bus: BullMqJobBus;

  const keys = async () =>
    ((await client.send(new ListObjectsCommand({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key as string);
  const listed = async () => {
    const run = await lifeboat(['backups', 'list', '--config', config, '--json'], env);
    if (run.code !== 0) throw new Error(`lifeboat backups list failed (${run.code}): ${run.stderr}`);
    return (JSON.parse(run.stdout) as { backups: Array<{ backupId: string }> }).backups.map((b) => b.backupId).sort();
  };
  const lastSuccess = () => metric(worker.ops, 'lifeboat_backup_last_success_timestamp_seconds', { target: 'demo' });
  const failures = async () =>
    (await metric(worker.ops, 'lifeboat_backup_jobs_total', { target: 'demo', outcome: 'failure' })) ?? 0;
  /** The committed backups, from the manifests in the bucket. */
  const committed = async () =>
    (await keys())
      .map((k) => /^demo\/backups\/([^/]+)\/manifest\.json$/.exec(k)?.[1])
      .filter((id): id is string => id !== undefined)
      .sort();
  /** Upload markers, and archives without their manifest: what a failed upload may leave until a clean-up. */
  const leftovers = (left: string[]) =>
    left.filter(
      (k) =>
        k.endsWith('.upload-in-progress.json') ||
        (/\/archive\.tar\.gz(\.age)?$/.test(k) &&
          !left.includes(k.replace(/archive\.tar\.gz(\.age)?$/, 'manifest.json'))),
    );
  /** Queues a backup and resolves once its multipart upload has started (its marker is in the bucket). */
  const backupUntilUploading = async (jobId: string) => {
    const known = new Set(await keys());
    await bus.enqueue('backup', { target: 'demo', reason: 'fault: s3 down', requestedBy: 'faults' }, { jobId });
    await waitFor(
      async () => (await keys()).some((k) => k.endsWith('.upload-in-progress.json') && !known.has(k)),
      120_000,
      'the backup to start its multipart upload',
      10,
    );
  };

  setups.push(async () => {
    stack = await getTestStack();
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-fault-s3-'));
    s3 = await childS3(join(dir, 's3'));
    await s3.start();
    client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      maxAttempts: 1,
    });
    bucket = uniqueName('faults');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    // A small target with 20 MiB of random bytes in its reports: an archive of four 5 MiB
    // parts, uploading for long enough to be caught at it, that gzip does not hold up.
    await generateTarget(join(dir, 'target'), { sizeBytes: 256 * 1024, seed: 5 });
    await writeFile(join(dir, 'target', 'reports', 'ticks.bin'), randomBytes(20 * 1024 * 1024));
    config = join(dir, 'lifeboat.yaml');
    await writeFile(
      config,
      [
        'store:',
        '  type: s3',
        `  endpoint: ${s3.endpoint}`,
        '  region: us-east-1',
        `  bucket: ${bucket}`,
        '  partSizeMiB: 5',
        'targets:',
        '  demo:',
        '    root: target',
        'backup:',
        '  abandonedUploadMinutes: 0',
        '  compressionLevel: 1',
        '',
      ].join('\n'),
    );
    env = {
      ...process.env,
      LIFEBOAT_CONFIG: config,
      LIFEBOAT_REDIS_URL: stack.redis.url,
      LIFEBOAT_QUEUE_PREFIX: uniqueName('lbfs'),
      LIFEBOAT_OPS_PORT: '0',
      LIFEBOAT_OPS_HOST: '127.0.0.1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    };
    worker = await startWorker('backup', env);
    bus = new BullMqJobBus({ url: stack.redis.url, prefix: env.LIFEBOAT_QUEUE_PREFIX });
  });

  cleanups.push(async () => {
    await bus?.close();
    if (worker && worker.child.exitCode === null) worker.child.kill('SIGKILL');
    if (worker) await exited(worker.child);
    await s3?.kill();
    client?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('restarted within the retry window: the backup completes', async () => {
    const tally = new Tally();
    const n = trials(5, 1);
    for (let trial = 1; trial <= n; trial++) {
      const before = await committed();
      const jobId = uniqueName('blip');
      await backupUntilUploading(jobId);
      await s3.kill();
      await s3.start();
      const outcome = await bus.result('backup', jobId, { timeoutMs: 180_000 }).then(
        (r) => r as BackupResult,
        (err: Error) => err,
      );
      const { attemptsMade } = await bus.status('backup', jobId);
      const left = await keys();
      const after = await committed();
      const lost = outcome instanceof Error || after.join() !== [...before, outcome.backupId].sort().join();
      const label = lost ? 'the backup failed or was not listed' : `backup completed on attempt ${attemptsMade}`;
      tally.add(label, lost);
      console.log(
        `s3 restarted trial ${trial}/${n}: ${label}${outcome instanceof Error ? `: ${outcome.message}` : ''}`,
      );
      expect(outcome).not.toBeInstanceOf(Error);
      expect((outcome as BackupResult).verification).toBe('quick');
      expect(after).toEqual([...before, (outcome as BackupResult).backupId].sort());
      expect(leftovers(left)).toEqual([]);
    }
    tally.record(
      'service',
      'S3 server restarted during a backup upload',
      'the job completes (the SDK retries each request, the queue retries the job 1 s then 2 s later); its manifest is committed and it passed its quick verification; no upload marker or archive without manifest left',
    );
    expect(tally.lost).toBe(0);
  });

  it('stopped: retries with backoff, then fails naming the store; nothing partial listed; the backup age grows until S3 is back', async () => {
    // The worker's last success is what its age is measured from: one backup first when this runs alone.
    if ((await lastSuccess()) === undefined) {
      const first = await bus.enqueue('backup', { target: 'demo', reason: 'first', requestedBy: 'faults' });
      await bus.result('backup', first.jobId, { timeoutMs: 180_000 });
    }
    const tally = new Tally();
    const n = trials(5, 1);
    for (let trial = 1; trial <= n; trial++) {
      const before = await committed();
      const lastBefore = (await lastSuccess()) as number;
      const failuresBefore = await failures();
      const jobId = uniqueName('down');
      await backupUntilUploading(jobId);
      const killedAt = Date.now();
      await s3.kill();
      const error = await bus.result('backup', jobId, { timeoutMs: 180_000 }).then(
        () => null,
        (err: unknown) => err,
      );
      const failedAt = Date.now();
      const { attemptsMade } = await bus.status('backup', jobId);
      // The stale-backup signal: the last success does not move, so its age (what an alert on
      // time() - lifeboat_backup_last_success_timestamp_seconds reads) grows through the outage.
      const lastDuring = (await lastSuccess()) as number;
      const ageBefore = killedAt / 1000 - lastBefore;
      const ageDuring = failedAt / 1000 - lastDuring;
      const failed = (await failures()) - failuresBefore;

      await s3.start();
      const next = await bus.enqueue('backup', { target: 'demo', reason: 'after the outage', requestedBy: 'faults' });
      const result = (await bus.result('backup', next.jobId, { timeoutMs: 180_000 })) as BackupResult;
      const lastAfter = (await lastSuccess()) as number;
      const ageAfter = Date.now() / 1000 - lastAfter;
      const left = await keys();
      // What an operator sees: the backups before the outage and the one after it, nothing of the failed one.
      const after = await listed();

      const message = error instanceof Error ? error.message : String(error);
      const lost = error === null || after.join() !== [...before, result.backupId].sort().join();
      const outcome = lost
        ? 'a partial backup listed, or a backup lost'
        : `failed after ${attemptsMade} attempts naming the store, nothing partial listed; the next backup committed`;
      tally.add(outcome, lost);
      console.log(
        `s3 stopped trial ${trial}/${n}: ${outcome}; ${failedAt - killedAt} ms from the kill to the failure; ` +
          `backup age ${ageBefore.toFixed(1)} s → ${ageDuring.toFixed(1)} s → ${ageAfter.toFixed(1)} s; error: ${message}`,
      );
      expect(error).toBeInstanceOf(LifeboatError);
      expect((error as LifeboatError).code).toBe('STORE_UNREACHABLE');
      expect(message).toContain(`S3 endpoint ${s3.endpoint} bucket ${bucket} unreachable`);
      // The queue's 3 attempts, 1 s then 2 s apart, each after the SDK's own retries of the request.
      expect(attemptsMade).toBe(3);
      expect(failedAt - killedAt).toBeGreaterThanOrEqual(2900);
      expect(failed).toBe(3);
      expect(lastDuring).toBe(lastBefore);
      expect(ageDuring).toBeGreaterThan(ageBefore);
      expect(result.verification).toBe('quick');
      expect(after).toEqual([...before, result.backupId].sort());
      expect(lastAfter).toBeGreaterThan(failedAt / 1000);
      expect(ageAfter).toBeLessThan(ageDuring);
      // The failed upload's leftovers went with the next backup's clean-up.
      expect(leftovers(left)).toEqual([]);
    }
    tally.record(
      'service',
      'S3 server stopped during a backup upload',
      '3 attempts with backoff, then STORE_UNREACHABLE naming endpoint and bucket; `lifeboat backups list` shows nothing of it; the last-success metric stays (backup age grows) and the failures are counted; once S3 is back the next backup commits and the metric moves; no upload marker or archive without manifest left',
    );
    expect(tally.lost).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
// The catalog's PostgreSQL

async function query<T>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as T[];
  } finally {
    await client.end();
  }
}

describe('PostgreSQL restarted while the catalog is written', () => {
  let stack: TestStack;
  let dir: string;
  let clusterDir: string;
  let cluster: PrivateCluster;
  let prefix: string;
  let env: NodeJS.ProcessEnv;
  let worker: { child: ChildProcess; ops: string };
  const warnings: string[] = [];

  setups.push(async () => {
    stack = await getTestStack();
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-fault-pg-'));
    // Not under dir: user postgres must reach it, and mkdtemp's directories are root's alone.
    clusterDir = await mkdtemp(join(tmpdir(), 'lifeboat-fault-pgdata-'));
    cluster = await startPrivateCluster({ dir: clusterDir });
    await generateTarget(join(dir, 'target'), { sizeBytes: 256 * 1024, seed: 13 });
    await writeFile(
      join(dir, 'lifeboat.yaml'),
      ['store:', '  type: fs', '  path: store', 'targets:', '  demo:', '    root: target', ''].join('\n'),
    );
    prefix = uniqueName('lbfp');
    env = {
      ...process.env,
      LIFEBOAT_CONFIG: join(dir, 'lifeboat.yaml'),
      LIFEBOAT_REDIS_URL: stack.redis.url,
      LIFEBOAT_QUEUE_PREFIX: prefix,
      LIFEBOAT_CATALOG_URL: cluster.adminUrl,
      LIFEBOAT_OPS_PORT: '0',
      LIFEBOAT_OPS_HOST: '127.0.0.1',
    };
    worker = await startWorker('backup', env);
    // The records the catalog missed, as the worker logs them.
    createInterface({ input: worker.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (line.includes('not ingested') || line.includes('not mirrored')) warnings.push(line);
    });
  });

  cleanups.push(async () => {
    if (worker && worker.child.exitCode === null) worker.child.kill('SIGKILL');
    if (worker) await exited(worker.child);
    await cluster?.stop();
    if (clusterDir) await rm(clusterDir, { recursive: true, force: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the worker keeps running; after `lifeboat catalog sync` the catalog equals the store, nothing lost or twice', async () => {
    const tally = new Tally();
    const n = trials(3, 1);
    const store = join(dir, 'store');
    for (let trial = 1; trial <= n; trial++) {
      const mode = trial % 2 === 1 ? 'immediate' : 'fast';
      const missedBefore = warnings.length;
      const bus = new BullMqJobBus({ url: stack.redis.url, prefix });
      try {
        const slots = Array.from({ length: 6 }, (_, i) => new Date(Date.UTC(2031, 0, trial, 0, i)).toISOString());
        const jobs = slots.map((s) => scheduledBackupJobId('demo', new Date(s)));
        for (const [i, scheduledAt] of slots.entries()) {
          await bus.enqueue(
            'backup',
            { target: 'demo', reason: 'fault: catalog restart', requestedBy: 'faults', scheduledAt },
            { jobId: jobs[i] as string },
          );
        }
        await waitFor(
          async () => (await bus.status('backup', jobs[0] as string)).state === 'completed',
          60_000,
          'the first backup',
        );
        // Down long enough (2 s) for a backup or two to finish while it is away.
        await cluster.restart(mode, 2000);
        const done = await Promise.all(jobs.map((j) => settle(bus, 'backup', j, 180_000)));
        const missed = warnings.length - missedBefore;
        const unsynced = (
          await query<{ backup_id: string }>(
            cluster.adminUrl,
            "SELECT backup_id FROM lifeboat_backups WHERE target = 'demo'",
          )
        ).map((r) => r.backup_id);

        const sync = await lifeboat(['catalog', 'sync', '--json'], env);
        const inStore = manifestsIn(store, 'demo')
          .map((m) => m.backupId)
          .sort();
        const rows = (
          await query<{ backup_id: string; verified_ok: boolean | null }>(
            cluster.adminUrl,
            "SELECT backup_id, verified_ok FROM lifeboat_backups WHERE target = 'demo' ORDER BY backup_id",
          )
        ).map((r) => r.backup_id);
        const unverified = await query<{ backup_id: string }>(
          cluster.adminUrl,
          "SELECT backup_id FROM lifeboat_backups WHERE target = 'demo' AND verified_ok IS NOT TRUE",
        );
        const auditSeqs = auditEntriesIn(store)
          .map((e) => e.seq)
          .sort((a, b) => a - b);
        const auditRows = (
          await query<{ seq: string }>(cluster.adminUrl, 'SELECT seq FROM lifeboat_audit_log ORDER BY seq')
        ).map((r) => Number(r.seq));
        const alive = worker.child.exitCode === null;
        const healthy = await fetch(`${worker.ops}/health`).then(
          (r) => r.status === 200,
          () => false,
        );
        const lost =
          done.some((d) => d.state !== 'completed') ||
          rows.join() !== inStore.join() ||
          auditRows.join() !== auditSeqs.join() ||
          !alive;
        const outcome = lost
          ? 'a record lost or duplicated, or the worker down'
          : missed > 0
            ? 'writes during the restart missed by the catalog, repaired by catalog sync; worker kept running'
            : 'no write hit the restart; catalog equal to the store; worker kept running';
        tally.add(outcome, lost);
        console.log(
          `postgres restart trial ${trial}/${n}: pg_ctl stop -m ${mode}, start 2 s later; ${outcome}; ${missed} catalog write(s) missed, ` +
            `${inStore.filter((id) => !unsynced.includes(id)).length} backup(s) missing from the catalog before the sync; ` +
            `store ${inStore.length} backups, catalog ${rows.length}; audit store ${auditSeqs.length}, catalog ${auditRows.length}`,
        );
        expect(done.map((d) => d.state)).toEqual(jobs.map(() => 'completed'));
        expect(sync.code, sync.stderr).toBe(0);
        expect(rows).toEqual(inStore);
        expect(unverified).toEqual([]);
        expect(auditRows).toEqual(auditSeqs);
        expect(alive).toBe(true);
        expect(healthy).toBe(true);
      } finally {
        await bus.close();
      }
    }
    tally.record(
      'service',
      'PostgreSQL (catalog) restarted during catalog writes',
      "every backup job completed; the worker stayed up and healthy; after `lifeboat catalog sync` the catalog holds exactly the store's backups (each once, each with its verification) and exactly its audit entries",
    );
    expect(tally.lost).toBe(0);
  });
});
