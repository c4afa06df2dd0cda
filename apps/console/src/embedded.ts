// Embedded mode's workers: the backup, replicate, restore, reconcile and drill handlers consuming the
// in-process bus inside the console's own process, as the four worker apps do on BullMQ.
// A newcomer gets a working console with nothing else running.
import { join } from 'node:path';
import { createLockProvider, type Runtime } from '@lifeboat/adapters';
import { backup, queueCopiesOn, replicate } from '@lifeboat/backup';
import type {
  BackupResult,
  Consumer,
  JobBus,
  JobHandler,
  QueueName,
  ReconcileJobResult,
  RestoreResult,
} from '@lifeboat/domain';
import { runDrill } from '@lifeboat/drill-scheduler';
import { reconcile } from '@lifeboat/reconciler';
import { restore, timelineProgress } from '@lifeboat/restore';
import type { Logger } from './server.js';

const JOB_TIMEOUT_MS = 6 * 3600_000;

export async function consumeEmbedded(
  bus: JobBus,
  runtime: Runtime,
  log: Logger,
  audited: (queue: QueueName, handler: JobHandler) => JobHandler = (_q, h) => h,
): Promise<Consumer[]> {
  const locks = createLockProvider({ dir: join(runtime.loaded.baseDir, '.lifeboat', 'locks') });
  const through = async <T>(queue: QueueName, payload: unknown): Promise<T> => {
    const { jobId } = await bus.enqueue(queue, payload, { attempts: 1 });
    return (await bus.result(queue, jobId, { timeoutMs: JOB_TIMEOUT_MS })) as T;
  };
  return Promise.all([
    bus.consume(
      'backup',
      audited('backup', (payload, job) =>
        backup(payload, {
          runtime,
          log,
          progress: job.progress,
          signal: job.signal,
          replicate: queueCopiesOn(bus),
        }),
      ),
    ),
    bus.consume(
      'replicate',
      audited('replicate', (payload, job) =>
        replicate(payload, { runtime, log, progress: job.progress, signal: job.signal }),
      ),
    ),
    bus.consume(
      'reconcile',
      audited('reconcile', (payload) => reconcile(payload, { runtime, log })),
    ),
    bus.consume(
      'restore',
      audited('restore', (payload, job) =>
        restore(payload, {
          runtime,
          log,
          locks,
          holder: `lifeboat console (embedded, pid ${process.pid}) job ${job.jobId}`,
          onStep: timelineProgress(job.progress),
          reconcile: (req) => through<ReconcileJobResult>('reconcile', req),
        }),
      ),
    ),
    bus.consume(
      'drill',
      audited('drill', (payload) =>
        runDrill(payload, {
          runtime,
          log,
          jobs: {
            backup: (req) => through<BackupResult>('backup', req),
            restore: (req) => through<RestoreResult>('restore', req),
            reconcile: (req) => through<ReconcileJobResult>('reconcile', req),
          },
        }),
      ),
    ),
  ]);
}
