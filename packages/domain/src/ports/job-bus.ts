// Port: how apps hand each other work. Two adapters (in-process and BullMQ) pass one
// contract test suite; handlers never know which one carries them.

export const QUEUES = ['backup', 'replicate', 'restore', 'reconcile', 'drill'] as const;
export type QueueName = (typeof QUEUES)[number];

/** One step of a plan as a live timeline shows it. */
export interface TimelineStep {
  name: string;
  status: string;
  startedAt?: string;
  endedAt?: string;
  durationMs?: number;
  outcome?: string;
}

export interface JobProgress {
  phase: string;
  bytes?: number;
  totalBytes?: number;
  detail?: string;
  /** A plan's steps so far (restores), so a late watcher sees the whole timeline. */
  timeline?: TimelineStep[];
}

export interface JobContext {
  jobId: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** Reports progress to whoever waits for the job. */
  progress(p: JobProgress): void;
  /** Aborted when the worker shuts down; long handlers should stop at the next step. */
  signal: AbortSignal;
}

/** A job processor: parses its payload itself (it arrives as untrusted data). */
export type JobHandler = (payload: unknown, ctx: JobContext) => Promise<unknown>;

export interface EnqueueOptions {
  /** A job id already present makes no second job; the existing one is returned. */
  jobId?: string;
  /** Attempts for faults that may pass (default 3); bad input is never retried. */
  attempts?: number;
}

export interface WaitOptions {
  timeoutMs?: number;
  onProgress?: (p: JobProgress) => void;
}

export type JobState = 'waiting' | 'active' | 'delayed' | 'completed' | 'failed' | 'unknown';

/** Where a job is, for a status page: its latest progress, and its result or failure once finished. */
export interface JobStatus {
  queue: QueueName;
  jobId: string;
  /** `unknown`: never enqueued here, or finished longer ago than finished jobs are kept. */
  state: JobState;
  progress: JobProgress | null;
  result: unknown;
  error: { code: string; message: string } | null;
  attemptsMade: number;
}

/** How many jobs of a queue are in each state (queue health). */
export interface QueueCounts {
  waiting: number;
  active: number;
  delayed: number;
  completed: number;
  failed: number;
}

export interface Consumer {
  /** Stops taking jobs, waits for the running ones to finish, and closes. */
  close(): Promise<void>;
}

export interface JobBus {
  /** Adds a job to a queue; returns its id and whether it is new. */
  enqueue(queue: QueueName, payload: unknown, options?: EnqueueOptions): Promise<{ jobId: string; created: boolean }>;
  /** Waits for a job's result; rejects with its failure (a LifeboatError when the handler threw one). */
  result(queue: QueueName, jobId: string, options?: WaitOptions): Promise<unknown>;
  /** A job's state without waiting for it. */
  status(queue: QueueName, jobId: string): Promise<JobStatus>;
  /** Jobs of a queue by state. */
  counts(queue: QueueName): Promise<QueueCounts>;
  /** Runs the handler for jobs of a queue until the consumer is closed. */
  consume(queue: QueueName, handler: JobHandler, options?: { concurrency?: number }): Promise<Consumer>;
  /** Closes every connection and consumer. */
  close(): Promise<void>;
}
