// The job bus benchmark: how long an empty job takes from enqueue to its handler, and how many
// jobs a second get through, on BullMQ over the local Redis via the apps' own BullMqJobBus.
import { randomUUID } from 'node:crypto';
import { BullMqJobBus } from '@lifeboat/adapters';
import type { JobBus, QueueName } from '@lifeboat/domain';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { elapsedMs, median, percentile, sleep } from './stats.js';

export interface QueueBenchOptions {
  /** Jobs enqueued at once in the throughput part (the latency part sends its own, fewer). */
  jobs: number;
  runs: number;
}

/** Lifeboat's target for the job bus: enqueue to handler under this at p99. */
const TARGET_P99_MS = 20;
/** A real queue name (the port allows no other), under a prefix of its own so no worker of the apps sees it. */
const QUEUE: QueueName = 'backup';
/** Latency samples per run, one job at a time; the first WARMUP of them load BullMQ's scripts and are not counted. */
const LATENCY_JOBS = 1000;
const WARMUP = 50;
/** At most 200 jobs/s in the latency part, one outstanding, so the figure is the bus and not a queue building up. */
const PACE_MS = 5;
/** The apps' default (LIFEBOAT_CONCURRENCY=1), and a worker given room, for the throughput part. */
const CONCURRENCIES = [1, 16];
const JOB_TIMEOUT_MS = 10_000;

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '<unparsable url>';
  }
}

/** Rejects when p has not settled in time: a lost job must fail the bench, not hang it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Enqueue-to-handler times (ms) of jobs sent one at a time, each after the previous one ran. */
async function latencyPart(producer: JobBus, worker: JobBus, count: number): Promise<number[]> {
  const sent: bigint[] = [];
  const ms: number[] = [];
  let handled: (() => void) | undefined;
  const consumer = await worker.consume(
    QUEUE,
    async (payload) => {
      // Same process, same monotonic clock as the producer's stamp.
      const at = process.hrtime.bigint();
      const { i } = payload as { i: number };
      ms[i] = elapsedMs(sent[i] as bigint, at);
      handled?.();
      return null;
    },
    { concurrency: 1 },
  );
  try {
    const start = performance.now();
    for (let i = 0; i < WARMUP + count; i++) {
      const wait = start + i * PACE_MS - performance.now();
      if (wait > 0) await sleep(wait);
      const ran = new Promise<void>((resolve) => {
        handled = resolve;
      });
      sent[i] = process.hrtime.bigint();
      // As the apps enqueue: a fresh id, one attempt (the drill scheduler's way).
      await producer.enqueue(QUEUE, { i }, { attempts: 1 });
      await within(ran, JOB_TIMEOUT_MS, `latency job ${i}`);
    }
  } finally {
    await consumer.close();
  }
  return ms.slice(WARMUP);
}

interface Throughput {
  concurrency: number;
  /** Until every enqueue() had returned. */
  enqueuedS: number;
  /** Until the handler had run for every job. */
  handledS: number;
  jobsPerS: number;
}

/** N jobs enqueued as fast as the bus takes them, timed until the handler has seen every one. */
async function throughputPart(producer: JobBus, worker: JobBus, jobs: number, concurrency: number) {
  let handled = 0;
  let lastAt = 0n;
  let allRan!: () => void;
  const ran = new Promise<void>((resolve) => {
    allRan = resolve;
  });
  const consumer = await worker.consume(
    QUEUE,
    async () => {
      handled += 1;
      if (handled === jobs) {
        lastAt = process.hrtime.bigint();
        allRan();
      }
      return null;
    },
    { concurrency },
  );
  try {
    const t0 = process.hrtime.bigint();
    // The bus has no bulk add: concurrent enqueue() calls, which share one pipelined connection.
    await Promise.all(Array.from({ length: jobs }, (_, i) => producer.enqueue(QUEUE, { i }, { attempts: 1 })));
    const enqueuedAt = process.hrtime.bigint();
    await within(ran, JOB_TIMEOUT_MS + jobs * 10, `throughput at concurrency ${concurrency}`);
    const handledS = elapsedMs(t0, lastAt) / 1000;
    return { concurrency, enqueuedS: elapsedMs(t0, enqueuedAt) / 1000, handledS, jobsPerS: jobs / handledS };
  } finally {
    await consumer.close();
  }
}

/** Removes every key of a run: the queue by BullMQ's obliterate, then anything else under the prefix. */
async function obliterate(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  // A shared connection: BullMQ leaves it open on close, for the sweep after.
  const q = new Queue(QUEUE, { connection: redis, prefix });
  try {
    await q.obliterate({ force: true });
    await q.close();
    let left = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) {
        left += keys.length;
        await redis.del(...keys);
      }
      cursor = next;
    } while (cursor !== '0');
    return left;
  } finally {
    await q.close();
    await redis.quit().catch(() => redis.disconnect());
  }
}

export async function benchQueue(options: QueueBenchOptions) {
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: no turbo task runs the bench; it only picks the Redis to measure
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const latencyJobs = Math.min(LATENCY_JOBS, options.jobs);
  const latencies: number[] = [];
  /** Keys still under a run's prefix after obliterate (swept too); expected 0. */
  let leftoverKeys = 0;
  const runs: Array<{ prefix: string; p50Ms: number; p99Ms: number; maxMs: number; throughput: Throughput[] }> = [];
  for (let r = 0; r < options.runs; r++) {
    const prefix = `lifeboat-bench-${randomUUID().slice(0, 8)}`;
    const errors: Error[] = [];
    // Two buses, two sets of connections, as a producing app and a worker app have.
    const make = () => new BullMqJobBus({ url, prefix, onError: (err) => errors.push(err) });
    const producer = make();
    const worker = make();
    try {
      const ms = await latencyPart(producer, worker, latencyJobs);
      const throughput: Throughput[] = [];
      for (const c of CONCURRENCIES) throughput.push(await throughputPart(producer, worker, options.jobs, c));
      if (errors.length > 0) throw new Error(`the job bus reported: ${errors[0]?.message}`);
      const sorted = [...ms].sort((a, b) => a - b);
      const run = {
        prefix,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        maxMs: sorted.at(-1) ?? Number.NaN,
        throughput,
      };
      runs.push(run);
      latencies.push(...ms);
      process.stderr.write(
        `run ${r + 1}/${options.runs}: p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, ${throughput
          .map((t) => `${t.jobsPerS.toFixed(0)} jobs/s at concurrency ${t.concurrency}`)
          .join(', ')}\n`,
      );
    } finally {
      await Promise.allSettled([producer.close(), worker.close()]);
      leftoverKeys += await obliterate(url, prefix);
    }
  }
  // Latencies pooled over the runs (a p99 of more samples); throughput as the median run.
  const sorted = [...latencies].sort((a, b) => a - b);
  const latency = {
    jobs: sorted.length,
    concurrency: 1,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.at(-1) ?? Number.NaN,
  };
  const throughput = CONCURRENCIES.map((concurrency) => {
    const of = runs.map((run) => run.throughput.find((t) => t.concurrency === concurrency) as Throughput);
    return {
      concurrency,
      jobsPerS: median(of.map((t) => t.jobsPerS)),
      enqueuedS: median(of.map((t) => t.enqueuedS)),
      handledS: median(of.map((t) => t.handledS)),
    };
  });
  const holds = latency.p99Ms < TARGET_P99_MS;
  const data = {
    bench: 'queue',
    redis: redact(url),
    queue: QUEUE,
    runs: options.runs,
    jobs: options.jobs,
    latency: { ...latency, pacedAtMs: PACE_MS, warmupPerRun: WARMUP, pooled: true },
    throughput: { jobs: options.jobs, medianOf: options.runs, byConcurrency: throughput },
    target: { p99Ms: TARGET_P99_MS, holds },
    leftoverKeys,
    perRun: runs,
  };
  const lines = [
    `queue: empty jobs through BullMqJobBus (BullMQ) on ${redact(url)}, a fresh key prefix per run, ${options.runs} runs`,
    `  enqueue → handler, one job at a time (≤${1000 / PACE_MS}/s), worker concurrency 1, ${latency.jobs} jobs pooled over the runs`,
    `    ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}`,
    `    ${latency.p50Ms.toFixed(2).padStart(8)} ${latency.p99Ms.toFixed(2).padStart(8)} ${latency.maxMs.toFixed(2).padStart(8)}`,
    `  throughput, ${options.jobs} jobs enqueued at once (concurrent enqueue(): the bus has no bulk add), median of ${options.runs} runs`,
    `    ${'worker concurrency'.padEnd(20)} ${'jobs/s'.padStart(8)} ${'enqueued s'.padStart(11)} ${'handled s'.padStart(10)}`,
    ...throughput.map(
      (t) =>
        `    ${String(t.concurrency).padEnd(20)} ${t.jobsPerS.toFixed(0).padStart(8)} ${t.enqueuedS.toFixed(2).padStart(11)} ${t.handledS.toFixed(2).padStart(10)}`,
    ),
    `  target: p99 enqueue → handler under ${TARGET_P99_MS} ms: ${holds ? 'holds' : 'MISSED'} (${latency.p99Ms.toFixed(2)} ms)`,
  ];
  return { bench: 'queue', lines, data };
}
