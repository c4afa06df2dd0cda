// The job bus of embedded mode: jobs run in this process with the BullMQ adapter's semantics
// (deterministic ids, retries with backoff, progress, timeouts), so handlers cannot tell them apart.
import { randomUUID } from 'node:crypto';
import {
  type Consumer,
  type EnqueueOptions,
  type JobBus,
  type JobContext,
  type JobHandler,
  type JobProgress,
  type JobStatus,
  LifeboatError,
  type QueueCounts,
  type QueueName,
  type WaitOptions,
} from '@lifeboat/domain';

export interface InProcessJobBusOptions {
  /** Attempts when enqueue does not say (default 3). */
  defaultAttempts?: number;
  /** First retry delay; each later one doubles it (default 1000 ms). */
  backoffMs?: number;
  /** How long and how many finished jobs are kept, so duplicates and late waiters find them (24 h, 1000). */
  keepFinished?: { ageMs: number; count: number };
}

type JobState = 'waiting' | 'active' | 'delayed' | 'completed' | 'failed';

interface LocalJob {
  id: string;
  queue: QueueName;
  payload: unknown;
  attempts: number;
  attemptsMade: number;
  state: JobState;
  progress: JobProgress | undefined;
  outcome: Promise<unknown>;
  /** The result or the failure, once finished. */
  settled?: { value: unknown } | { error: unknown };
  resolve(value: unknown): void;
  reject(err: unknown): void;
  watchers: Set<(p: JobProgress) => void>;
  finishedAt: number;
}

interface LocalConsumer {
  handler: JobHandler;
  concurrency: number;
  running: Set<Promise<void>>;
  abort: AbortController;
  closed: boolean;
}

interface LocalQueue {
  waiting: LocalJob[];
  jobs: Map<string, LocalJob>;
  consumers: LocalConsumer[];
  scheduled: boolean;
}

/** Whether a failure may pass on another attempt: bad input (a permanent LifeboatError) never does. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof LifeboatError) return err.retryable;
  return !(err instanceof Error && err.name === 'UnrecoverableError');
}

/**
 * A plain-JSON copy of a payload or result: what crosses Redis in distributed mode, so
 * embedded mode cannot hand a handler anything a BullMQ worker would not receive.
 */
export function toJson(value: unknown, what: string): unknown {
  try {
    return JSON.parse(JSON.stringify(value ?? null));
  } catch (err) {
    throw new LifeboatError('INVALID_REQUEST', `${what} is not plain JSON: ${(err as Error).message}`, {
      hint: 'job payloads and results must be JSON values (no BigInt, no cycles)',
      cause: err,
    });
  }
}

/** The error a waiter gets when a job did not finish in time, naming the job and where it was. */
export function timeoutError(queue: QueueName, jobId: string, timeoutMs: number, state: string): LifeboatError {
  const idle = state === 'waiting' || state === 'prioritized' || state === 'delayed';
  return new LifeboatError('TIMEOUT', `job ${queue}/${jobId} did not finish within ${timeoutMs} ms (state: ${state})`, {
    hint: idle
      ? `no worker has taken it: is a consumer of the "${queue}" queue running?`
      : 'it is still running; wait longer or read the worker log',
  });
}

export function notFoundError(queue: QueueName, jobId: string): LifeboatError {
  return new LifeboatError('NOT_FOUND', `job ${queue}/${jobId} not found`, {
    hint: 'finished jobs are kept for 24 hours; was it enqueued on this job bus?',
  });
}

/** A failure as a status shows it: a code and a message, never a stack. */
export function failureOf(err: unknown): { code: string; message: string } {
  if (err instanceof LifeboatError) return { code: err.code, message: err.message };
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

export class InProcessJobBus implements JobBus {
  private readonly queues = new Map<QueueName, LocalQueue>();
  private readonly finished: LocalJob[] = [];
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly defaultAttempts: number;
  private readonly backoffMs: number;
  private readonly keep: { ageMs: number; count: number };
  private closing: Promise<void> | undefined;

  constructor(options: InProcessJobBusOptions = {}) {
    this.defaultAttempts = options.defaultAttempts ?? 3;
    this.backoffMs = options.backoffMs ?? 1000;
    this.keep = options.keepFinished ?? { ageMs: 24 * 3600_000, count: 1000 };
  }

  async enqueue(
    queue: QueueName,
    payload: unknown,
    options: EnqueueOptions = {},
  ): Promise<{ jobId: string; created: boolean }> {
    this.assertOpen();
    this.prune();
    const q = this.queue(queue);
    if (options.jobId !== undefined && q.jobs.has(options.jobId)) return { jobId: options.jobId, created: false };
    const data = toJson(payload, `job payload for queue ${queue}`);
    const id = options.jobId ?? randomUUID();
    let resolve!: (value: unknown) => void;
    let reject!: (err: unknown) => void;
    const outcome = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Nobody may ever wait for this job; its failure must not become an unhandled rejection.
    outcome.catch(() => {});
    const job: LocalJob = {
      id,
      queue,
      payload: data,
      attempts: Math.max(1, Math.floor(options.attempts ?? this.defaultAttempts)),
      attemptsMade: 0,
      state: 'waiting',
      progress: undefined,
      outcome,
      resolve,
      reject,
      watchers: new Set(),
      finishedAt: 0,
    };
    q.jobs.set(id, job);
    q.waiting.push(job);
    this.schedule(queue);
    return { jobId: id, created: true };
  }

  async result(queue: QueueName, jobId: string, options: WaitOptions = {}): Promise<unknown> {
    const job = this.queue(queue).jobs.get(jobId);
    if (!job) throw notFoundError(queue, jobId);
    const { onProgress, timeoutMs } = options;
    return new Promise<unknown>((resolve, reject) => {
      let last: string | undefined;
      const watcher = (p: JobProgress) => {
        const key = JSON.stringify(p);
        if (key === last || !onProgress) return;
        last = key;
        try {
          onProgress(p);
        } catch {
          // A waiter's display error must not fail the job it watches.
        }
      };
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              done();
              reject(timeoutError(queue, jobId, timeoutMs, job.state));
            }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        job.watchers.delete(watcher);
      };
      job.watchers.add(watcher);
      // A waiter that arrives mid-job first sees where the job is now.
      if (job.state === 'active' && job.progress) watcher(job.progress);
      job.outcome.then(
        (value) => {
          done();
          resolve(value);
        },
        (err: unknown) => {
          done();
          reject(err);
        },
      );
    });
  }

  async status(queue: QueueName, jobId: string): Promise<JobStatus> {
    this.prune();
    const job = this.queue(queue).jobs.get(jobId);
    const base = { queue, jobId, progress: null, result: null, error: null, attemptsMade: 0 };
    if (!job) return { ...base, state: 'unknown' };
    const settled = job.settled;
    return {
      ...base,
      state: job.state,
      progress: job.progress ?? null,
      attemptsMade: job.attemptsMade,
      result: settled && 'value' in settled ? settled.value : null,
      error: settled && 'error' in settled ? failureOf(settled.error) : null,
    };
  }

  async counts(queue: QueueName): Promise<QueueCounts> {
    this.prune();
    const counts: QueueCounts = { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 };
    for (const job of this.queue(queue).jobs.values()) counts[job.state] += 1;
    return counts;
  }

  async consume(queue: QueueName, handler: JobHandler, options: { concurrency?: number } = {}): Promise<Consumer> {
    this.assertOpen();
    const q = this.queue(queue);
    const consumer: LocalConsumer = {
      handler,
      concurrency: Math.max(1, Math.floor(options.concurrency ?? 1)),
      running: new Set(),
      abort: new AbortController(),
      closed: false,
    };
    q.consumers.push(consumer);
    this.schedule(queue);
    return {
      close: async () => {
        if (!consumer.closed) {
          consumer.closed = true;
          consumer.abort.abort(new LifeboatError('INTERNAL', `consumer of the "${queue}" queue is shutting down`));
          q.consumers = q.consumers.filter((c) => c !== consumer);
        }
        while (consumer.running.size > 0) await Promise.allSettled([...consumer.running]);
      },
    };
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const consumers = [...this.queues.values()].flatMap((q) => q.consumers);
    for (const c of consumers) {
      c.closed = true;
      c.abort.abort(new LifeboatError('INTERNAL', 'the job bus is shutting down'));
    }
    for (const q of this.queues.values()) q.consumers = [];
    while (consumers.some((c) => c.running.size > 0)) {
      await Promise.allSettled(consumers.flatMap((c) => [...c.running]));
    }
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    // Embedded jobs live in this process only: tell whoever waits instead of leaving them hanging.
    for (const q of this.queues.values()) {
      for (const job of q.jobs.values()) {
        if (job.state === 'completed' || job.state === 'failed') continue;
        job.state = 'failed';
        job.reject(
          new LifeboatError('INTERNAL', `job ${job.queue}/${job.id} did not finish: the job bus was closed`, {
            hint: 'embedded jobs do not outlive the process; enqueue it again',
          }),
        );
      }
      q.waiting = [];
    }
  }

  private assertOpen(): void {
    if (this.closing) throw new LifeboatError('INTERNAL', 'the job bus is closed', { retryable: false });
  }

  private queue(name: QueueName): LocalQueue {
    let q = this.queues.get(name);
    if (!q) {
      q = { waiting: [], jobs: new Map(), consumers: [], scheduled: false };
      this.queues.set(name, q);
    }
    return q;
  }

  /** Hands waiting jobs to consumers on a later turn of the event loop, never inside the caller's stack. */
  private schedule(name: QueueName): void {
    const q = this.queue(name);
    if (q.scheduled) return;
    q.scheduled = true;
    setImmediate(() => {
      q.scheduled = false;
      this.dispatch(q);
    });
  }

  private dispatch(q: LocalQueue): void {
    while (q.waiting.length > 0) {
      // The least busy consumer with a free slot, so work spreads like BullMQ workers.
      let pick: LocalConsumer | undefined;
      for (const c of q.consumers) {
        if (c.closed || c.running.size >= c.concurrency) continue;
        if (!pick || c.running.size < pick.running.size) pick = c;
      }
      if (!pick) return;
      const job = q.waiting.shift()!;
      this.run(q, job, pick);
    }
  }

  private run(q: LocalQueue, job: LocalJob, consumer: LocalConsumer): void {
    job.state = 'active';
    const ctx: JobContext = {
      jobId: job.id,
      attempt: job.attemptsMade + 1,
      signal: consumer.abort.signal,
      progress: (p) => {
        if (job.state !== 'active') return;
        const copy = toJson(p, 'job progress') as JobProgress;
        job.progress = copy;
        for (const w of job.watchers) w(copy);
      },
    };
    const running = this.attempt(q, job, consumer, ctx);
    consumer.running.add(running);
    void running.finally(() => {
      consumer.running.delete(running);
      this.schedule(job.queue);
    });
  }

  private async attempt(q: LocalQueue, job: LocalJob, consumer: LocalConsumer, ctx: JobContext): Promise<void> {
    try {
      const value = toJson(await consumer.handler(toJson(job.payload, 'job payload'), ctx), 'job result');
      this.finish(job, 'completed', value);
    } catch (err) {
      this.failed(q, job, consumer, err);
    }
  }

  private failed(q: LocalQueue, job: LocalJob, consumer: LocalConsumer, err: unknown): void {
    const retryable = isRetryable(err);
    if (retryable && consumer.abort.signal.aborted) {
      // Stopped by a shutdown, not by a fault: put it back for another consumer without spending an attempt.
      job.state = 'waiting';
      q.waiting.unshift(job);
      return;
    }
    job.attemptsMade += 1;
    if (!retryable || job.attemptsMade >= job.attempts) {
      this.finish(job, 'failed', err);
      return;
    }
    job.state = 'delayed';
    const timer = setTimeout(
      () => {
        this.retryTimers.delete(timer);
        job.state = 'waiting';
        q.waiting.push(job);
        this.schedule(job.queue);
      },
      this.backoffMs * 2 ** (job.attemptsMade - 1),
    );
    this.retryTimers.add(timer);
  }

  private finish(job: LocalJob, state: 'completed' | 'failed', value: unknown): void {
    job.state = state;
    job.finishedAt = Date.now();
    this.finished.push(job);
    job.settled = state === 'completed' ? { value } : { error: value };
    if (state === 'completed') job.resolve(value);
    else job.reject(value);
  }

  /** Forgets finished jobs past the retention window, as BullMQ's removeOnComplete/removeOnFail do. */
  private prune(): void {
    const oldest = Date.now() - this.keep.ageMs;
    while (this.finished.length > 0) {
      const first = this.finished[0]!;
      if (this.finished.length <= this.keep.count && first.finishedAt >= oldest) break;
      this.finished.shift();
      this.queues.get(first.queue)?.jobs.delete(first.id);
    }
  }
}
