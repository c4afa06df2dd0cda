// What the backup app's handlers need from the outside world; main.ts and the CLI build it
// from real adapters, tests from test ones.
import { hostname } from 'node:os';
import type { Runtime } from '@lifeboat/adapters';
import type { JobProgress, LockProvider, ReplicateRequestInput } from '@lifeboat/domain';

/** The subset of a pino logger the handlers use. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface BackupContext {
  runtime: Runtime;
  log: Logger;
  progress?: (p: JobProgress) => void;
  signal?: AbortSignal;
  /** The queued job this run is for, recorded in the manifest: a second run of the job finds its backup. */
  jobId?: string;
  now?: () => Date;
  /** Directory for the database snapshot while it is archived (default: the OS temp dir). */
  stagingDir?: string;
  host?: string;
  version?: string;
  /** Queues a copy of a committed backup to another location (queue `replicate`); returns its job id. */
  replicate?: (request: ReplicateRequestInput) => Promise<{ jobId: string }>;
  /** Where two runs for one schedule slot take turns (Redis, or a lock file beside the configuration). */
  locks?: LockProvider;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

export const TOOL_VERSION = '0.1.0';

export function contextDefaults(ctx: BackupContext) {
  return {
    now: ctx.now ?? (() => new Date()),
    host: ctx.host ?? hostname(),
    version: ctx.version ?? TOOL_VERSION,
  };
}

/** Calls `report` at most every `ms` milliseconds, plus once more when `flush` is called. */
export function throttled<T>(report: ((p: T) => void) | undefined, ms = 250) {
  let last = 0;
  let pending: T | undefined;
  return {
    push(p: T) {
      pending = p;
      const now = Date.now();
      if (report && now - last >= ms) {
        last = now;
        report(p);
        pending = undefined;
      }
    },
    flush() {
      if (report && pending !== undefined) report(pending);
      pending = undefined;
    },
  };
}
