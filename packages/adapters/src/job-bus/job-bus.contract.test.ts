// One contract for every JobBus adapter: the in-process bus and BullMQ on a real Redis pass the same cases.
import { randomUUID } from 'node:crypto';
import { type JobBus, type JobContext, type JobProgress, LifeboatError } from '@lifeboat/domain';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BullMqJobBus, fromBullJobId, toBullJobId } from './bullmq.js';
import { createJobBus, InProcessJobBus } from './index.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const RUN_PREFIX = `lifeboat-test-${randomUUID().slice(0, 8)}`;
const BACKOFF_MS = 50;

let redisCheck: Promise<void> | undefined;

/** Fails (never skips) when Redis is missing, saying how to get one. */
function requireRedis(): Promise<void> {
  redisCheck ??= (async () => {
    const r = new Redis(REDIS_URL, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      retryStrategy: () => null,
    });
    let cause: Error | undefined;
    r.on('error', (err: Error) => {
      cause ??= err;
    });
    try {
      await r.connect();
      await r.ping();
    } catch (err) {
      throw new Error(
        `Redis is not reachable at ${REDIS_URL} (${(cause ?? (err as Error)).message}); the BullMQ job bus tests need a real Redis. ` +
          'Start one with `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no`, ' +
          'or point TEST_REDIS_URL at one.',
      );
    } finally {
      r.disconnect();
    }
  })();
  return redisCheck;
}

/** A producer and a worker side; the same bus in process, two separate connections on Redis. */
interface Sides {
  producer: JobBus;
  worker: JobBus;
}

let opened: JobBus[] = [];

const adapters: { name: string; setup(): Promise<Sides> }[] = [
  {
    name: 'InProcessJobBus',
    async setup() {
      const bus = new InProcessJobBus({ backoffMs: BACKOFF_MS });
      opened.push(bus);
      return { producer: bus, worker: bus };
    },
  },
  {
    name: 'BullMqJobBus',
    async setup() {
      await requireRedis();
      // A prefix per test keeps tests apart although queue names are fixed.
      const prefix = `${RUN_PREFIX}-${randomUUID().slice(0, 8)}`;
      const make = () => new BullMqJobBus({ url: REDIS_URL, prefix, backoffMs: BACKOFF_MS });
      const sides = { producer: make(), worker: make() };
      opened.push(sides.producer, sides.worker);
      return sides;
    },
  },
];

afterEach(async () => {
  await Promise.all(opened.map((b) => b.close()));
  opened = [];
});

afterAll(async () => {
  if (!redisCheck || (await redisCheck.then(() => false).catch(() => true))) return;
  const r = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${RUN_PREFIX}*`, 'COUNT', 1000);
      if (keys.length > 0) await r.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(10);
}

async function failureOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (value) => {
      throw new Error(`expected a failure, got ${JSON.stringify(value)}`);
    },
    (err: unknown) => err,
  );
}

describe.each(adapters)('JobBus contract: $name', ({ setup }) => {
  it("a job's payload reaches the handler and its result reaches the waiter", async () => {
    const { producer, worker } = await setup();
    const seen: { payload: unknown; ctx: Pick<JobContext, 'jobId' | 'attempt'> }[] = [];
    await worker.consume('backup', async (payload, ctx) => {
      seen.push({ payload, ctx: { jobId: ctx.jobId, attempt: ctx.attempt } });
      return { backupId: '20251125T020000Z-full-3f9a', bytes: 1234 };
    });
    const payload = { target: 'prod', kind: 'full', reason: 'nightly', requestedBy: 'cron', tags: ['a', 1, null] };

    const { jobId, created } = await producer.enqueue('backup', payload);

    expect(created).toBe(true);
    await expect(producer.result('backup', jobId, { timeoutMs: 10_000 })).resolves.toEqual({
      backupId: '20251125T020000Z-full-3f9a',
      bytes: 1234,
    });
    expect(seen).toEqual([{ payload, ctx: { jobId, attempt: 1 } }]);
  });

  it('progress reports reach the waiter', async () => {
    const { producer, worker } = await setup();
    const reports: JobProgress[] = [];
    const { jobId } = await producer.enqueue('backup', { target: 'prod' });
    const waiting = producer.result('backup', jobId, { timeoutMs: 10_000, onProgress: (p) => reports.push(p) });
    await worker.consume('backup', async (_payload, ctx) => {
      ctx.progress({ phase: 'dump', bytes: 10 });
      // Holding here until the waiter has the first report keeps the case free of timing luck.
      await until(() => reports.length > 0);
      ctx.progress({ phase: 'upload', bytes: 20, totalBytes: 20 });
      return 'done';
    });

    await expect(waiting).resolves.toBe('done');
    expect(reports).toEqual([
      { phase: 'dump', bytes: 10 },
      { phase: 'upload', bytes: 20, totalBytes: 20 },
    ]);
  });

  it('a duplicate job id makes one run and both waiters get one result', async () => {
    const { producer, worker } = await setup();
    // The design's deterministic id shape, colons and all.
    const id = 'backup:prod:2025-11-25T02:00:00Z';
    let runs = 0;

    const first = await producer.enqueue('backup', { target: 'prod' }, { jobId: id });
    const second = await producer.enqueue('backup', { target: 'prod' }, { jobId: id });
    const waiters = [producer.result('backup', id, { timeoutMs: 10_000 }), producer.result('backup', id)];
    await worker.consume('backup', async (_payload, ctx) => {
      runs += 1;
      return { ranAs: ctx.jobId };
    });

    expect(first).toEqual({ jobId: id, created: true });
    expect(second).toEqual({ jobId: id, created: false });
    expect(await Promise.all(waiters)).toEqual([{ ranAs: id }, { ranAs: id }]);
    // Once finished, the id still makes no new job and its result stays available.
    await expect(producer.enqueue('backup', { target: 'prod' }, { jobId: id })).resolves.toEqual({
      jobId: id,
      created: false,
    });
    await expect(producer.result('backup', id, { timeoutMs: 10_000 })).resolves.toEqual({ ranAs: id });
    await sleep(BACKOFF_MS * 2);
    expect(runs).toBe(1);
  });

  it('a retryable failure is retried and then succeeds', async () => {
    const { producer, worker } = await setup();
    const attempts: number[] = [];
    await worker.consume('reconcile', async (_payload, ctx) => {
      attempts.push(ctx.attempt);
      if (ctx.attempt === 1) throw new LifeboatError('TARGET_ERROR', 'exchange API timed out');
      return { attempt: ctx.attempt };
    });

    const { jobId } = await producer.enqueue('reconcile', { target: 'prod' }, { attempts: 3 });

    await expect(producer.result('reconcile', jobId, { timeoutMs: 10_000 })).resolves.toEqual({ attempt: 2 });
    expect(attempts).toEqual([1, 2]);
  });

  it('a non-retryable LifeboatError fails at once, and the waiter gets its code, message and hint', async () => {
    const { producer, worker } = await setup();
    let runs = 0;
    await worker.consume('restore', async () => {
      runs += 1;
      throw new LifeboatError('INVALID_REQUEST', 'restore request: scenario "flood" is unknown', {
        hint: 'use app-crash, db-corruption or server-loss',
      });
    });

    const { jobId } = await producer.enqueue('restore', { scenario: 'flood' }, { attempts: 5 });
    const err = await failureOf(producer.result('restore', jobId, { timeoutMs: 10_000 }));

    expect(err).toBeInstanceOf(LifeboatError);
    expect(err).toMatchObject({
      code: 'INVALID_REQUEST',
      message: 'restore request: scenario "flood" is unknown',
      hint: 'use app-crash, db-corruption or server-loss',
      retryable: false,
    });
    await sleep(BACKOFF_MS * 4);
    expect(runs).toBe(1);
  });

  it('a job enqueued before the consumer starts runs once it does', async () => {
    const { producer, worker } = await setup();
    const { jobId } = await producer.enqueue('drill', { drill: 'kill-switch', target: 'prod' });
    await sleep(100);

    await worker.consume('drill', async (payload) => ({ ran: payload }));

    await expect(producer.result('drill', jobId, { timeoutMs: 10_000 })).resolves.toEqual({
      ran: { drill: 'kill-switch', target: 'prod' },
    });
  });

  it('result() times out with TIMEOUT, naming the job, when no consumer exists', async () => {
    const { producer } = await setup();
    const { jobId } = await producer.enqueue('drill', { drill: 'cold-restore' });
    const started = Date.now();

    const err = await failureOf(producer.result('drill', jobId, { timeoutMs: 300 }));

    expect(err).toBeInstanceOf(LifeboatError);
    expect((err as LifeboatError).code).toBe('TIMEOUT');
    expect((err as LifeboatError).message).toContain(`drill/${jobId}`);
    expect((err as LifeboatError).hint).toMatch(/consumer/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('result() of an unknown job fails with NOT_FOUND', async () => {
    const { producer } = await setup();
    const err = await failureOf(producer.result('backup', 'backup:nowhere:never', { timeoutMs: 5000 }));
    expect(err).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('status() follows a job from waiting through active (with its progress) to completed, and counts() agrees', async () => {
    const { producer, worker } = await setup();
    expect((await producer.status('backup', 'backup:nowhere:never')).state).toBe('unknown');
    const { jobId } = await producer.enqueue('backup', { target: 'prod' });
    expect(await producer.status('backup', jobId)).toMatchObject({ state: 'waiting', progress: null, result: null });
    expect(await producer.counts('backup')).toMatchObject({ waiting: 1, active: 0, completed: 0 });

    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reported = false;
    await worker.consume('backup', async (_payload, ctx) => {
      ctx.progress({ phase: 'upload', bytes: 10, totalBytes: 20 });
      reported = true;
      await gate;
      return { backupId: 'b1' };
    });
    await until(() => reported);
    let active = await producer.status('backup', jobId);
    for (let i = 0; i < 50 && active.progress === null; i += 1) {
      await sleep(20);
      active = await producer.status('backup', jobId);
    }
    expect(active).toMatchObject({ state: 'active', progress: { phase: 'upload', bytes: 10, totalBytes: 20 } });
    expect((await producer.counts('backup')).active).toBe(1);

    release();
    await producer.result('backup', jobId, { timeoutMs: 10_000 });
    expect(await producer.status('backup', jobId)).toMatchObject({
      state: 'completed',
      result: { backupId: 'b1' },
      error: null,
      attemptsMade: expect.any(Number),
    });
    expect(await producer.counts('backup')).toMatchObject({ waiting: 0, active: 0, completed: 1, failed: 0 });
  });

  it('status() of a failed job gives its code and message', async () => {
    const { producer, worker } = await setup();
    await worker.consume('reconcile', async () => {
      throw new LifeboatError('INVALID_REQUEST', 'reconcile request: target "x" is not configured');
    });
    const { jobId } = await producer.enqueue('reconcile', { target: 'x' });
    await failureOf(producer.result('reconcile', jobId, { timeoutMs: 10_000 }));
    expect(await producer.status('reconcile', jobId)).toMatchObject({
      state: 'failed',
      result: null,
      error: { code: 'INVALID_REQUEST', message: 'reconcile request: target "x" is not configured' },
    });
    expect((await producer.counts('reconcile')).failed).toBe(1);
  });

  it('a consumer runs at most its concurrency of jobs at once', async () => {
    const { producer, worker } = await setup();
    let running = 0;
    let peak = 0;
    await worker.consume(
      'backup',
      async () => {
        running += 1;
        peak = Math.max(peak, running);
        await sleep(150);
        running -= 1;
        return peak;
      },
      { concurrency: 2 },
    );

    const ids = await Promise.all([1, 2, 3, 4].map((n) => producer.enqueue('backup', { n })));
    await Promise.all(ids.map(({ jobId }) => producer.result('backup', jobId, { timeoutMs: 10_000 })));

    expect(peak).toBe(2);
  });

  it('close() waits for a running job to finish, and tells it to stop', async () => {
    const { producer, worker } = await setup();
    let started = false;
    let finished = false;
    let abortedWhileRunning = false;
    const consumer = await worker.consume('backup', async (_payload, ctx) => {
      started = true;
      await sleep(300);
      abortedWhileRunning = ctx.signal.aborted;
      finished = true;
      return 'finished';
    });
    const { jobId } = await producer.enqueue('backup', { target: 'prod' });
    await until(() => started);

    await consumer.close();

    expect(finished).toBe(true);
    expect(abortedWhileRunning).toBe(true);
    await expect(producer.result('backup', jobId, { timeoutMs: 5000 })).resolves.toBe('finished');
  });

  it('a job that stops because its consumer shuts down goes back to the queue without spending an attempt', async () => {
    const { producer, worker } = await setup();
    let started = false;
    const first = await worker.consume('restore', async (_payload, ctx) => {
      started = true;
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      throw new LifeboatError('TARGET_ERROR', 'interrupted by shutdown');
    });
    // One attempt only: had the interruption counted as a failure, the job would be lost.
    const { jobId } = await producer.enqueue('restore', { scenario: 'app-crash' }, { attempts: 1 });
    await until(() => started);

    await first.close();
    await worker.consume('restore', async (_payload, ctx) => ({ attempt: ctx.attempt }));

    await expect(producer.result('restore', jobId, { timeoutMs: 10_000 })).resolves.toEqual({ attempt: 1 });
  });
});

describe('BullMqJobBus', () => {
  it('fails at once with a clear error, and no password, when Redis is unreachable', async () => {
    const bus = new BullMqJobBus({ url: 'redis://:s3cret@127.0.0.1:1' });
    opened.push(bus);
    const started = Date.now();

    const err = await failureOf(bus.enqueue('backup', {}));

    expect(err).toBeInstanceOf(LifeboatError);
    expect((err as LifeboatError).code).toBe('INTERNAL');
    expect((err as LifeboatError).message).toMatch(/^Redis at redis:\/\/127\.0\.0\.1:1 unreachable: .*ECONNREFUSED/);
    expect((err as LifeboatError).message).not.toContain('s3cret');
    expect((err as LifeboatError).hint).toBeTruthy();
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('escapes job ids BullMQ would refuse, reversibly', () => {
    for (const id of ['backup:prod:2025-11-25T02:00:00Z', '42', '-7', '%N42', '100%:done', 'plain']) {
      const escaped = toBullJobId(id);
      expect(escaped).not.toContain(':');
      expect(String(Number.parseInt(escaped, 10))).not.toBe(escaped);
      expect(fromBullJobId(escaped)).toBe(id);
    }
    expect(toBullJobId('42')).not.toBe(toBullJobId('%N42'));
  });
});

describe('createJobBus', () => {
  it('uses BullMQ when LIFEBOAT_REDIS_URL is set, and the in-process bus otherwise', async () => {
    const distributed = createJobBus({ LIFEBOAT_REDIS_URL: REDIS_URL });
    const embedded = createJobBus({});
    opened.push(distributed, embedded);
    expect(distributed).toBeInstanceOf(BullMqJobBus);
    expect(embedded).toBeInstanceOf(InProcessJobBus);
  });
});
