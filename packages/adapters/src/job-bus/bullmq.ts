// The job bus of distributed mode: jobs travel through BullMQ queues on Redis between the
// separately deployed apps, with the in-process bus's semantics.
import { randomUUID } from 'node:crypto';
import {
  type Consumer,
  type EnqueueOptions,
  type JobBus,
  type JobContext,
  type JobHandler,
  type JobProgress,
  type JobState,
  type JobStatus,
  LifeboatError,
  type QueueCounts,
  type QueueName,
  type WaitOptions,
} from '@lifeboat/domain';
import { type Job, Queue, QueueEvents, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { failureOf, isRetryable, notFoundError, timeoutError, toJson } from './in-process.js';

export interface BullMqJobBusOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`. */
  url: string;
  /** Namespace of every Redis key (default `lifeboat`); tests use a unique one. */
  prefix?: string;
  /** Attempts when enqueue does not say (default 3). */
  defaultAttempts?: number;
  /** First retry delay; each later one doubles it (default 1000 ms). */
  backoffMs?: number;
  /** Errors BullMQ reports outside any job (a lost connection, a failed lock renewal); default: stderr. */
  onError?: (err: Error) => void;
  /**
   * How long a worker's lock on a running job lives without renewal (renewed every half of it),
   * which is also how often workers look for jobs whose worker died: such a job runs again
   * within about twice this (default 30000 ms).
   */
  lockMs?: number;
}

/** Finished jobs are kept this long, so a duplicate job id within the window is recognised. */
const KEEP = { age: 24 * 3600, count: 1000 };
/** How long a producer waits for Redis before saying it is unreachable. */
const CONNECT_TIMEOUT_MS = 3000;
/** BullMQ's own default job lock. */
const DEFAULT_LOCK_MS = 30_000;
/** Below this a worker whose event loop is briefly busy loses its job to another. */
const MIN_LOCK_MS = 1000;

/** The job lock of LIFEBOAT_JOB_LOCK_MS (default 30000 ms), checked: a bad value names the variable. */
export function jobLockMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.LIFEBOAT_JOB_LOCK_MS?.trim();
  if (!raw) return DEFAULT_LOCK_MS;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < MIN_LOCK_MS) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `LIFEBOAT_JOB_LOCK_MS is "${raw}": it must be a whole number of milliseconds, ${MIN_LOCK_MS} or more`,
      { hint: `unset it for BullMQ's default of ${DEFAULT_LOCK_MS}` },
    );
  }
  return ms;
}

/**
 * BullMQ refuses custom job ids that are integers or contain ':', and Lifeboat's ids do both
 * (`backup:prod:2025-11-25T02:00:00Z`). Escape them reversibly: '%' and ':' as in URLs, and a
 * '%N' prefix (which escaping never produces) on integers.
 */
export function toBullJobId(id: string): string {
  if (String(Number.parseInt(id, 10)) === id) return `%N${id}`;
  return id.replace(/%/g, '%25').replace(/:/g, '%3A');
}

export function fromBullJobId(id: string): string {
  if (id.startsWith('%N')) return id.slice(2);
  return id.replace(/%(25|3A)/g, (_, hex: string) => (hex === '25' ? '%' : ':'));
}

interface EncodedFailure {
  lifeboatError: { code: LifeboatError['code']; message: string; hint?: string; retryable: boolean };
}

/** A LifeboatError as a failure message BullMQ can store, so the waiter gets the same code and hint back. */
function encodeFailure(err: LifeboatError): string {
  const body: EncodedFailure = {
    lifeboatError: {
      code: err.code,
      message: err.message,
      ...(err.hint ? { hint: err.hint } : {}),
      retryable: err.retryable,
    },
  };
  return JSON.stringify(body);
}

function decodeFailure(reason: string | undefined, queue: QueueName, jobId: string): Error {
  if (reason?.startsWith('{"lifeboatError":')) {
    try {
      const { code, message, hint, retryable } = (JSON.parse(reason) as EncodedFailure).lifeboatError;
      return new LifeboatError(code, message, { ...(hint ? { hint } : {}), retryable });
    } catch {
      // Not ours after all: fall through to the plain message.
    }
  }
  return new Error(reason || `job ${queue}/${jobId} failed`);
}

/** What a handler's failure becomes inside the worker: BullMQ retries anything but an UnrecoverableError. */
function toWorkerError(err: unknown): Error {
  const retryable = isRetryable(err);
  const message = err instanceof LifeboatError ? encodeFailure(err) : err instanceof Error ? err.message : String(err);
  if (!retryable) return err instanceof UnrecoverableError ? err : new UnrecoverableError(message);
  if (err instanceof LifeboatError || !(err instanceof Error)) return new Error(message);
  return err;
}

/** The URL with its password left out, fit for a message or a log. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return '<unparsable url>';
  }
}

/** Progress as stored in BullMQ: the caller's report plus an order, so a late waiter never sees it go backwards. */
type StoredProgress = JobProgress & { _seq?: number };

export class BullMqJobBus implements JobBus {
  private readonly url: string;
  private readonly prefix: string;
  private readonly defaultAttempts: number;
  private readonly backoffMs: number;
  private readonly lockMs: number;
  private readonly onError: (err: Error) => void;
  /** One producer connection for every queue; it fails fast instead of queueing commands while Redis is down. */
  private readonly producer: Redis;
  private readonly queues = new Map<QueueName, Queue>();
  private readonly events = new Map<QueueName, Promise<QueueEvents>>();
  private readonly consumers = new Set<Consumer>();
  private readonly waiters = new Set<(err: Error) => void>();
  private connecting: Promise<void> | undefined;
  private lastError: Error | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: BullMqJobBusOptions) {
    if (!/^rediss?:\/\//.test(options.url)) {
      throw new LifeboatError('INVALID_CONFIG', `Redis URL ${redact(options.url)} is not a redis:// or rediss:// URL`, {
        hint: 'set LIFEBOAT_REDIS_URL like redis://127.0.0.1:6379',
      });
    }
    this.url = options.url;
    this.prefix = options.prefix ?? 'lifeboat';
    this.defaultAttempts = options.defaultAttempts ?? 3;
    this.backoffMs = options.backoffMs ?? 1000;
    this.lockMs = options.lockMs ?? DEFAULT_LOCK_MS;
    this.onError =
      options.onError ?? ((err) => console.error(`lifeboat job bus (${redact(this.url)}): ${err.message}`));
    this.producer = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: (times) => Math.min(times * 250, 2000),
    });
    // Connection errors reach callers through connected(); recording them avoids ioredis's unhandled-error noise.
    this.producer.on('error', (err: Error) => {
      this.lastError = err;
    });
  }

  async enqueue(
    queue: QueueName,
    payload: unknown,
    options: EnqueueOptions = {},
  ): Promise<{ jobId: string; created: boolean }> {
    const data = toJson(payload, `job payload for queue ${queue}`);
    const q = await this.queue(queue);
    // Every job gets a custom id (a UUID when the caller has none), so BullMQ's integer ids never mix with escaped ones.
    const jobId = options.jobId ?? randomUUID();
    const id = toBullJobId(jobId);
    return this.call(async () => {
      // BullMQ ignores an add with an existing id without saying so; ask first. Two producers
      // racing on one id still make one job, but both may be told created: true.
      if (await q.getJob(id)) return { jobId, created: false };
      await q.add(queue, data, this.jobOptions(options, id));
      return { jobId, created: true };
    });
  }

  /**
   * A cron schedule on a queue (a BullMQ job scheduler, UTC): created or replaced under its id,
   * so every process that upserts the same schedules leaves one of each.
   */
  async upsertSchedule(queue: QueueName, id: string, pattern: string, payload: unknown): Promise<void> {
    const data = toJson(payload, `scheduled payload for queue ${queue}`);
    const q = await this.queue(queue);
    await this.call(() =>
      q.upsertJobScheduler(id, { pattern, tz: 'UTC' }, { name: queue, data, opts: { attempts: 1 } }),
    );
  }

  /** The schedules of a queue, with their next firing (ms since the epoch). */
  async schedules(queue: QueueName): Promise<Array<{ id: string; pattern: string | null; next: number | null }>> {
    const q = await this.queue(queue);
    const list = await this.call(() => q.getJobSchedulers(0, -1, true));
    return list.map((j) => ({ id: j.key, pattern: j.pattern ?? null, next: j.next ?? null }));
  }

  async removeSchedule(queue: QueueName, id: string): Promise<void> {
    const q = await this.queue(queue);
    await this.call(() => q.removeJobScheduler(id));
  }

  async result(queue: QueueName, jobId: string, options: WaitOptions = {}): Promise<unknown> {
    const q = await this.queue(queue);
    const events = await this.call(() => this.queueEvents(queue));
    const id = toBullJobId(jobId);
    const { onProgress, timeoutMs } = options;

    return new Promise<unknown>((resolve, reject) => {
      let settled = false;
      let seen = -1;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        events.off('completed', completed);
        events.off('failed', failed);
        events.off('progress', progressed);
        this.waiters.delete(abandon);
        fn();
      };
      const deliver = (data: unknown) => {
        if (!onProgress || settled || typeof data !== 'object' || data === null) return;
        const { _seq, ...report } = data as StoredProgress;
        if (_seq !== undefined) {
          if (_seq <= seen) return;
          seen = _seq;
        }
        try {
          onProgress(report);
        } catch {
          // A waiter's display error must not break the event loop every waiter shares.
        }
      };
      const completed = (args: { jobId: string; returnvalue: unknown }) => {
        if (args.jobId === id) settle(() => resolve(args.returnvalue ?? null));
      };
      const failed = (args: { jobId: string; failedReason: string }) => {
        if (args.jobId === id) settle(() => reject(decodeFailure(args.failedReason, queue, jobId)));
      };
      const progressed = (args: { jobId: string; data: unknown }) => {
        if (args.jobId === id) deliver(args.data);
      };
      const abandon = (err: Error) => settle(() => reject(err));
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              void q
                .getJobState(id)
                .catch(() => 'unknown')
                .then((state) => abandon(timeoutError(queue, jobId, timeoutMs, state)));
            }, timeoutMs);

      events.on('completed', completed);
      events.on('failed', failed);
      events.on('progress', progressed);
      this.waiters.add(abandon);

      // Listening first, then looking: a job that finished before this call, or while it was
      // being set up, is found here; anything later arrives as an event.
      void this.call(async () => {
        const state = await q.getJobState(id);
        if (state === 'unknown') return abandon(notFoundError(queue, jobId));
        const job = await q.getJob(id);
        if (!job) return abandon(notFoundError(queue, jobId));
        if (state === 'completed') settle(() => resolve(job.returnvalue ?? null));
        else if (state === 'failed') settle(() => reject(decodeFailure(job.failedReason, queue, jobId)));
        else if (state === 'active') deliver(job.progress);
      }).catch(abandon);
    });
  }

  async status(queue: QueueName, jobId: string): Promise<JobStatus> {
    const q = await this.queue(queue);
    const id = toBullJobId(jobId);
    return this.call(async () => {
      const base = { queue, jobId, progress: null, result: null, error: null, attemptsMade: 0 };
      // The state first, then the job: a job read before it finished could otherwise be
      // reported completed without its result.
      const raw = await q.getJobState(id);
      const job = raw === 'unknown' ? undefined : await q.getJob(id);
      if (!job) return { ...base, state: 'unknown' as const };
      const state: JobState =
        raw === 'prioritized' || raw === 'waiting-children' || raw === 'waiting'
          ? 'waiting'
          : raw === 'active' || raw === 'delayed' || raw === 'completed' || raw === 'failed'
            ? raw
            : 'unknown';
      let progress: JobProgress | null = null;
      if (typeof job.progress === 'object' && job.progress !== null) {
        const { _seq, ...report } = job.progress as StoredProgress;
        progress = report;
      }
      return {
        ...base,
        state,
        progress,
        attemptsMade: job.attemptsMade,
        result: state === 'completed' ? (job.returnvalue ?? null) : null,
        error: state === 'failed' ? failureOf(decodeFailure(job.failedReason, queue, jobId)) : null,
      };
    });
  }

  async counts(queue: QueueName): Promise<QueueCounts> {
    const q = await this.queue(queue);
    const c = await this.call(() =>
      q.getJobCounts('waiting', 'prioritized', 'waiting-children', 'active', 'delayed', 'completed', 'failed'),
    );
    return {
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c['waiting-children'] ?? 0),
      active: c.active ?? 0,
      delayed: c.delayed ?? 0,
      completed: c.completed ?? 0,
      failed: c.failed ?? 0,
    };
  }

  async consume(queue: QueueName, handler: JobHandler, options: { concurrency?: number } = {}): Promise<Consumer> {
    // A worker would wait for Redis forever; check it the way producers do so a bad URL fails now.
    await this.connected();
    const shutdown = new AbortController();

    const processor = async (job: Job, token?: string, signal?: AbortSignal): Promise<unknown> => {
      const attempt = job.attemptsMade + 1;
      // Runs, not attempts, order progress: a run handed back at shutdown does not spend an attempt.
      const run = Math.max(job.attemptsStarted, attempt);
      let seq = 0;
      let reported: Promise<unknown> = Promise.resolve();
      const ctx: JobContext = {
        jobId: fromBullJobId(job.id!),
        attempt,
        signal: signal ? AbortSignal.any([shutdown.signal, signal]) : shutdown.signal,
        progress: (p) => {
          // Run first, then order within it: later reports always compare greater.
          const stored: StoredProgress = {
            ...(toJson(p, 'job progress') as JobProgress),
            _seq: run * 2 ** 20 + seq++,
          };
          reported = reported.then(() => job.updateProgress(stored)).catch((err: Error) => this.onError(err));
        },
      };
      try {
        const value = toJson(await handler(job.data, ctx), 'job result');
        await reported;
        return value;
      } catch (err) {
        await reported;
        if (shutdown.signal.aborted && isRetryable(err) && token) {
          // Stopped by a shutdown, not by a fault: hand it back without spending an attempt.
          await job.moveToWait(token);
          throw new WaitingError();
        }
        throw toWorkerError(err);
      }
    };

    const worker = new Worker(queue, processor, {
      connection: { url: this.url, maxRetriesPerRequest: null },
      prefix: this.prefix,
      concurrency: Math.max(1, Math.floor(options.concurrency ?? 1)),
      // A killed worker's job goes back to the queue once its lock has lapsed and a check has seen it.
      lockDuration: this.lockMs,
      stalledInterval: this.lockMs,
    });
    worker.on('error', this.onError);
    await worker.waitUntilReady();

    let closing: Promise<void> | undefined;
    const consumer: Consumer = {
      close: () => {
        closing ??= (async () => {
          shutdown.abort(new LifeboatError('INTERNAL', `consumer of the "${queue}" queue is shutting down`));
          // Without force, BullMQ waits for the running jobs to finish before it disconnects.
          await worker.close();
          this.consumers.delete(consumer);
        })();
        return closing;
      },
    };
    this.consumers.add(consumer);
    return consumer;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await Promise.allSettled([...this.consumers].map((c) => c.close()));
    for (const abandon of this.waiters) {
      abandon(new LifeboatError('INTERNAL', 'the job bus was closed while waiting for a job', { retryable: false }));
    }
    const events = await Promise.allSettled(this.events.values());
    await Promise.allSettled(events.map((e) => (e.status === 'fulfilled' ? e.value.close() : undefined)));
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    if (this.producer.status === 'ready') await this.producer.quit().catch(() => this.producer.disconnect());
    else this.producer.disconnect();
  }

  private jobOptions(options: EnqueueOptions, jobId: string) {
    return {
      jobId,
      attempts: Math.max(1, Math.floor(options.attempts ?? this.defaultAttempts)),
      backoff: { type: 'exponential', delay: this.backoffMs },
      removeOnComplete: KEEP,
      removeOnFail: KEEP,
    };
  }

  /** The producer connection, ready; rejects at once (not after endless retries) when Redis is down. */
  private async connected(): Promise<void> {
    if (this.closing) throw new LifeboatError('INTERNAL', 'the job bus is closed', { retryable: false });
    const c = this.producer;
    if (c.status === 'ready') return;
    this.connecting ??= (async () => {
      this.lastError = undefined;
      try {
        if (c.status === 'wait' || c.status === 'end') await c.connect();
        else await this.readyWithin(CONNECT_TIMEOUT_MS);
      } catch (err) {
        // ioredis rejects with a bare "Connection is closed."; the error event before it says why.
        throw this.unreachable(this.lastError ?? err);
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private readyWithin(ms: number): Promise<void> {
    const c = this.producer;
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        c.off('ready', onReady);
        c.off('error', onError);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const onError = (err: Error) => done(err);
      const timer = setTimeout(() => done(this.lastError ?? new Error(`no answer within ${ms} ms`)), ms);
      c.once('ready', onReady);
      c.once('error', onError);
    });
  }

  private unreachable(err: unknown): LifeboatError {
    const reason = err instanceof Error ? err.message : String(err);
    return new LifeboatError('INTERNAL', `Redis at ${redact(this.url)} unreachable: ${reason}`, {
      hint: 'is Redis running, and is LIFEBOAT_REDIS_URL right? (`redis-cli -u <url> ping` answers PONG)',
      cause: err,
    });
  }

  /** Runs a Redis operation, turning a dropped connection into the same clear error as a refused one. */
  private async call<T>(op: () => Promise<T>): Promise<T> {
    await this.connected();
    try {
      return await op();
    } catch (err) {
      if (this.producer.status !== 'ready') throw this.unreachable(err);
      throw err;
    }
  }

  private async queue(name: QueueName): Promise<Queue> {
    await this.connected();
    let q = this.queues.get(name);
    if (!q) {
      // Sharing the producer connection keeps its fail-fast settings; BullMQ leaves a shared connection open on close.
      q = new Queue(name, { connection: this.producer, prefix: this.prefix });
      q.on('error', this.onError);
      this.queues.set(name, q);
    }
    return q;
  }

  /**
   * One QueueEvents per queue, reading from the stream's tip as it was before any waiter
   * looked at a job's state, so no event between that look and the first read is lost.
   */
  private queueEvents(name: QueueName): Promise<QueueEvents> {
    let events = this.events.get(name);
    if (!events) {
      events = (async () => {
        const q = await this.queue(name);
        const tip = await this.producer.xrevrange(q.keys.events!, '+', '-', 'COUNT', 1);
        const ev = new QueueEvents(name, {
          connection: { url: this.url, maxRetriesPerRequest: null },
          prefix: this.prefix,
          lastEventId: tip[0]?.[0] ?? '0-0',
        });
        ev.on('error', this.onError);
        // Every waiter of the queue listens here; the default limit of 10 would warn at the 11th.
        ev.setMaxListeners(0);
        await ev.waitUntilReady();
        return ev;
      })();
      this.events.set(name, events);
      events.catch(() => this.events.delete(name));
    }
    return events;
  }
}
