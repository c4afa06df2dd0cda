// Shared set-up for commands: the configuration, the wired adapters, and the job bus —
// in-process by default, BullMQ when LIFEBOAT_REDIS_URL is set.
import { join } from 'node:path';
import {
  type AuditTrailHandle,
  auditedHandler,
  configPath,
  createAuditTrail,
  createJobBus,
  createLockProvider,
  createLogger,
  createRuntime,
  loadConfig,
  type Runtime,
} from '@lifeboat/adapters';
import type { Logger } from '@lifeboat/backup';
import type { JobBus, QueueName } from '@lifeboat/domain';

export interface GlobalOptions {
  config?: string;
  target?: string;
}

export async function openRuntime(opts: GlobalOptions): Promise<Runtime> {
  return createRuntime(await loadConfig(configPath(opts.config)));
}

/** Logs go to stderr as JSON only when asked (LIFEBOAT_LOG_LEVEL); the CLI prints its own lines. */
export function cliLogger(): Logger {
  return createLogger('cli', { level: process.env.LIFEBOAT_LOG_LEVEL ?? 'silent', destination: process.stderr });
}

export function distributed(): boolean {
  return Boolean(process.env.LIFEBOAT_REDIS_URL);
}

/**
 * The bus a command enqueues on. Embedded mode also consumes the queue in this process with
 * the same handler the backup worker runs, so both modes take one code path.
 */
export async function openBus(runtime: Runtime): Promise<JobBus> {
  const bus = createJobBus();
  if (!distributed()) {
    // Loaded here, not at the top: a command that never runs a job never loads the apps.
    const [{ backup, queueCopiesOn, replicate }, { reconcile }] = await Promise.all([
      import('@lifeboat/backup'),
      import('@lifeboat/reconciler'),
    ]);
    const log = cliLogger();
    const { trail } = await auditTrail(runtime);
    const actor = cliActor();
    await bus.consume(
      'backup',
      auditedHandler(
        trail,
        'backup',
        (payload, job) =>
          backup(payload, {
            runtime,
            log,
            progress: job.progress,
            signal: job.signal,
            replicate: queueCopiesOn(bus),
            // Two commands for one schedule slot (--scheduled-at) at once make one backup.
            locks: createLockProvider({ dir: join(runtime.loaded.baseDir, '.lifeboat', 'locks') }),
          }),
        { actor, log },
      ),
    );
    await bus.consume(
      'replicate',
      auditedHandler(
        trail,
        'replicate',
        (payload, job) => replicate(payload, { runtime, log, progress: job.progress, signal: job.signal }),
        { actor, log },
      ),
    );
    await bus.consume(
      'reconcile',
      auditedHandler(trail, 'reconcile', (payload) => reconcile(payload, { runtime, log }), { actor, log }),
    );
  }
  return bus;
}

/** Who the CLI acts as in the audit trail. */
export function cliActor(): string {
  return `cli:${process.env.USER ?? 'unknown'}`;
}

let trailHandle: Promise<AuditTrailHandle> | undefined;

/** The audit trail of this process (one per run); closeAuditTrail() releases its lock's connection. */
export function auditTrail(runtime: Runtime): Promise<AuditTrailHandle> {
  trailHandle ??= createAuditTrail(runtime, { log: cliLogger() });
  return trailHandle;
}

export async function closeAuditTrail(): Promise<void> {
  const handle = trailHandle;
  trailHandle = undefined;
  if (handle) await (await handle).close();
}

/**
 * Runs work the CLI does itself in embedded mode (a restore, a drill) and records it in the
 * audit trail as the worker of its queue would: `<queue>.completed` or `<queue>.failed`.
 */
export async function audited<T>(
  runtime: Runtime,
  queue: QueueName,
  payload: unknown,
  work: () => Promise<T>,
): Promise<T> {
  const { trail } = await auditTrail(runtime);
  const handler = auditedHandler(trail, queue, async () => work(), { actor: cliActor(), log: cliLogger() });
  return (await handler(payload, {
    jobId: `cli:${process.pid}`,
    attempt: 1,
    progress() {},
    signal: new AbortController().signal,
  })) as T;
}
