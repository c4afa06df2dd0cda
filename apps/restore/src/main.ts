// The restore app's process: a BullMQ worker on queue `restore` with an ops server. Plans
// reconcile through the job bus (queue `reconcile`), so a reconciler worker must run too.
import { hostname } from 'node:os';
import {
  auditedHandler,
  BullMqJobBus,
  configPath,
  createAuditTrail,
  createLockProvider,
  createLogger,
  createRuntime,
  exitOnStartupFailure,
  ingestAll,
  jobLockMs,
  loadConfig,
  openCatalogFromEnv,
  serveWorker,
} from '@lifeboat/adapters';
import { compactUtc, layout, type ReconcileJobResult } from '@lifeboat/domain';
import { Counter, Gauge, Registry } from 'prom-client';
import { restore } from './handlers/restore.js';
import { timelineProgress } from './plan.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const log = createLogger('restore');
const VERSION = '0.1.0';

async function main(): Promise<void> {
  const loaded = await loadConfig(configPath());
  const runtime = createRuntime(loaded);
  // Distributed mode's PostgreSQL catalog, migrated at start (LIFEBOAT_CATALOG_URL).
  const catalog = await openCatalogFromEnv();
  const redisUrl = process.env.LIFEBOAT_REDIS_URL;
  if (!redisUrl) {
    log.error({}, 'the restore worker needs LIFEBOAT_REDIS_URL');
    process.exit(2);
  }
  const prefix = process.env.LIFEBOAT_QUEUE_PREFIX ?? 'lifeboat';
  const registry = new Registry();
  const jobs = new Counter({
    name: 'lifeboat_restore_jobs_total',
    help: 'Restore jobs by scenario and outcome',
    labelNames: ['target', 'scenario', 'outcome'],
    registers: [registry],
  });
  const rto = new Gauge({
    name: 'lifeboat_restore_rto_seconds',
    help: 'Measured time from the start of the last restore to ready to trade',
    labelNames: ['target', 'scenario'],
    registers: [registry],
  });
  const bus = new BullMqJobBus({
    url: redisUrl,
    prefix,
    onError: (err) => log.error({ err: { message: err.message } }, 'redis connection error'),
    lockMs: jobLockMs(),
  });
  const locks = createLockProvider({ redisUrl, dir: loaded.baseDir, prefix });
  let seq = 0;
  // Every job it runs goes into the audit trail (completed or failed, with a small summary).
  const audit = await createAuditTrail(runtime, { log });
  const consumer = await bus.consume(
    'restore',
    auditedHandler(
      audit.trail,
      'restore',
      async (payload, job) => {
        const result = await restore(payload, {
          runtime,
          log: log.child({ jobId: job.jobId }),
          locks,
          holder: `restore worker ${hostname()}:${process.pid} job ${job.jobId}`,
          // BullMQ runs a job whose worker died again: that earlier run's lease is waited out.
          isEarlierRun: (holder) => holder.endsWith(` job ${job.jobId}`),
          onStep: timelineProgress(job.progress),
          reconcile: async (request) => {
            const jobId = `reconcile:${request.target}:restore:${job.jobId}:${++seq}`;
            await bus.enqueue('reconcile', request, { jobId });
            return (await bus.result('reconcile', jobId, { timeoutMs: 3600_000 })) as ReconcileJobResult;
          },
        });
        jobs.inc({ target: result.target, scenario: result.scenario, outcome: result.outcome });
        if (!result.dryRun) {
          const key = layout.restoreRecord(result.target, compactUtc(new Date(result.startedAt)), result.scenario);
          await ingestAll(catalog, runtime.store, [key], log);
        }
        if (result.rto.toReadyMs !== null)
          rto.set({ target: result.target, scenario: result.scenario }, result.rto.toReadyMs / 1000);
        return result;
      },
      { actor: 'restore-worker', log },
    ),
    { concurrency: Number(process.env.LIFEBOAT_CONCURRENCY ?? 1) },
  );
  await serveWorker({
    app: 'restore',
    queue: 'restore',
    version: VERSION,
    registry,
    store: runtime.store.location,
    log,
    defaultPort: 9102,
    readiness: async () => {
      await runtime.store.check();
      return null;
    },
    close: [() => consumer.close(), () => bus.close(), () => locks.close(), () => audit.close()],
  });
}

main().catch(exitOnStartupFailure(log));
