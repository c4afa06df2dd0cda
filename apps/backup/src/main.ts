// The backup app's process: a BullMQ worker on queue `backup` with an ops server (default),
// or `once` mode that runs one backup and exits non-zero on failure (a Kubernetes CronJob).
import {
  auditedHandler,
  BullMqJobBus,
  configPath,
  createAuditTrail,
  createLogger,
  createRuntime,
  exitOnStartupFailure,
  ingestAll,
  loadConfig,
  openCatalogFromEnv,
  serveWorker,
} from '@lifeboat/adapters';
import { type JobContext, LifeboatError, layout, parseCron, previousRun } from '@lifeboat/domain';
import { TOOL_VERSION } from './context.js';
import { backup } from './handlers/backup.js';
import { createBackupMetrics } from './metrics.js';

// The lock file pins AWS SDK releases that support Node 20; its end-of-support notice is noise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const log = createLogger('backup');

async function main(): Promise<void> {
  const mode = process.argv[2] ?? 'worker';
  if (mode !== 'worker' && mode !== 'once') {
    console.error(`usage: main.js [worker|once] (got "${mode}")`);
    process.exit(2);
  }
  const loaded = await loadConfig(configPath());
  const runtime = createRuntime(loaded);
  const metrics = createBackupMetrics();
  // Distributed mode's PostgreSQL catalog, migrated at start (LIFEBOAT_CATALOG_URL).
  const catalog = await openCatalogFromEnv();

  const run = async (payload: unknown, job?: JobContext) => {
    const started = Date.now();
    const target = (payload as { target?: string } | null)?.target ?? 'unknown';
    try {
      const result = await backup(payload, {
        runtime,
        log: log.child({ jobId: job?.jobId }),
        ...(job ? { progress: job.progress, signal: job.signal } : {}),
      });
      metrics.lastSuccess.set({ target: result.target }, Date.now() / 1000);
      metrics.bytes.set({ target: result.target }, result.bytes);
      metrics.duration.observe({ target: result.target, outcome: 'success' }, (Date.now() - started) / 1000);
      metrics.jobs.inc({ target: result.target, outcome: 'success' });
      const verifications: string[] = [];
      if (catalog) {
        for await (const o of runtime.store.list(layout.verificationsPrefix(result.target, result.backupId))) {
          verifications.push(o.key);
        }
      }
      await ingestAll(catalog, runtime.store, [result.manifestKey, ...verifications], log);
      return result;
    } catch (err) {
      metrics.duration.observe({ target, outcome: 'failure' }, (Date.now() - started) / 1000);
      metrics.jobs.inc({ target, outcome: 'failure' });
      throw err;
    }
  };

  if (mode === 'once') {
    const request = {
      target: process.env.LIFEBOAT_TARGET ?? runtime.target().name,
      kind: process.env.LIFEBOAT_BACKUP_KIND ?? 'full',
      reason: process.env.LIFEBOAT_BACKUP_REASON ?? 'scheduled',
      requestedBy: 'cronjob',
      ...(scheduledAt() ? { scheduledAt: scheduledAt() } : {}),
    };
    const result = await run(request);
    log.info({ result }, 'backup once: done');
    return;
  }

  const redisUrl = process.env.LIFEBOAT_REDIS_URL;
  if (!redisUrl) {
    log.error({}, 'worker mode needs LIFEBOAT_REDIS_URL (or run `main.js once`)');
    process.exit(2);
  }
  const bus = new BullMqJobBus({
    url: redisUrl,
    prefix: process.env.LIFEBOAT_QUEUE_PREFIX ?? 'lifeboat',
    onError: (err) => log.error({ err: { message: err.message } }, 'redis connection error'),
  });
  // Every job it runs goes into the audit trail (completed or failed, with a small summary).
  const audit = await createAuditTrail(runtime, { log });
  const consumer = await bus.consume(
    'backup',
    auditedHandler(audit.trail, 'backup', (payload, job) => run(payload, job), { actor: 'backup-worker', log }),
    {
      concurrency: Number(process.env.LIFEBOAT_CONCURRENCY ?? 1),
    },
  );
  await serveWorker({
    app: 'backup',
    queue: 'backup',
    version: TOOL_VERSION,
    registry: metrics.registry,
    store: runtime.store.location,
    log,
    defaultPort: 9101,
    readiness: async () => {
      await runtime.store.check();
      return null;
    },
    close: [() => consumer.close(), () => bus.close(), () => audit.close()],
  });
}

main().catch(exitOnStartupFailure(log));

/**
 * The schedule slot a `once` run is for: LIFEBOAT_SCHEDULED_AT, or the newest firing of
 * LIFEBOAT_SCHEDULE (the CronJob's own cron, UTC) at or before now. A slot started twice (a
 * CronJob retried or fired twice) then makes one backup.
 */
function scheduledAt(): string | undefined {
  if (process.env.LIFEBOAT_SCHEDULED_AT) return process.env.LIFEBOAT_SCHEDULED_AT;
  const schedule = process.env.LIFEBOAT_SCHEDULE?.trim();
  if (!schedule) return undefined;
  const slot = previousRun(parseCron(schedule), new Date());
  if (!slot)
    throw new LifeboatError('INVALID_CONFIG', `LIFEBOAT_SCHEDULE "${schedule}" has no firing in the last 35 days`);
  return slot.toISOString();
}
