// The reconciler's process: a BullMQ worker on queue `reconcile` with an ops server
// (/health, /ready, /metrics). Restore plans and drills send it jobs through the job bus.
import {
  auditedHandler,
  BullMqJobBus,
  configPath,
  createAuditTrail,
  createLogger,
  createRuntime,
  exitOnStartupFailure,
  ingestAll,
  jobLockMs,
  loadConfig,
  openCatalogFromEnv,
  serveWorker,
} from '@lifeboat/adapters';
import { LifeboatError } from '@lifeboat/domain';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { reconcile } from './handlers/reconcile.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const log = createLogger('reconciler');
const VERSION = '0.1.0';

async function main(): Promise<void> {
  const loaded = await loadConfig(configPath());
  const runtime = createRuntime(loaded);
  // Distributed mode's PostgreSQL catalog, migrated at start (LIFEBOAT_CATALOG_URL).
  const catalog = await openCatalogFromEnv();
  const redisUrl = process.env.LIFEBOAT_REDIS_URL;
  if (!redisUrl) {
    log.error({}, 'the reconciler worker needs LIFEBOAT_REDIS_URL');
    process.exit(2);
  }
  const registry = new Registry();
  const duration = new Histogram({
    name: 'lifeboat_reconcile_duration_seconds',
    help: 'Wall time of reconcile jobs',
    labelNames: ['target', 'verdict'],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  const jobs = new Counter({
    name: 'lifeboat_reconcile_jobs_total',
    help: 'Reconcile jobs by verdict (FAIL, PASS, PASS_WITH_CORRECTIONS, or error)',
    labelNames: ['target', 'verdict'],
    registers: [registry],
  });
  const lastPass = new Gauge({
    name: 'lifeboat_reconcile_last_ready_timestamp_seconds',
    help: 'Unix time of the last reconciliation that found the target ready to trade',
    labelNames: ['target'],
    registers: [registry],
  });

  const bus = new BullMqJobBus({
    url: redisUrl,
    prefix: process.env.LIFEBOAT_QUEUE_PREFIX ?? 'lifeboat',
    onError: (err) => log.error({ err: { message: err.message } }, 'redis connection error'),
    lockMs: jobLockMs(),
  });
  // Every job it runs goes into the audit trail (completed or failed, with a small summary).
  const audit = await createAuditTrail(runtime, { log });
  const consumer = await bus.consume(
    'reconcile',
    auditedHandler(
      audit.trail,
      'reconcile',
      async (payload, job) => {
        // A metric label names a configured target: bad input must not add series (or throw making one).
        const named = (payload as { target?: unknown } | null)?.target;
        const target = typeof named === 'string' && Object.hasOwn(loaded.config.targets, named) ? named : 'unknown';
        // Job data lives in Redis: a database URL with a password must come from the config's urlEnv.
        const internal = (payload as { internal?: unknown } | null)?.internal;
        if (typeof internal === 'string' && /^postgres(ql)?:\/\/[^/@]*:[^/@]*@/i.test(internal)) {
          throw new LifeboatError(
            'INVALID_REQUEST',
            'reconcile request: internal carries a password; job data must not',
            {
              hint: "reconcile the target's configured database instead (its URL comes from the environment)",
            },
          );
        }
        const started = Date.now();
        try {
          const result = await reconcile(payload, { runtime, log: log.child({ jobId: job.jobId }) });
          const verdict = result.report.verdict;
          duration.observe({ target, verdict }, (Date.now() - started) / 1000);
          jobs.inc({ target, verdict });
          if (result.report.ready_to_trade) lastPass.set({ target }, Date.now() / 1000);
          await ingestAll(catalog, runtime.store, [result.reportKey], log);
          return result;
        } catch (err) {
          jobs.inc({ target, verdict: 'error' });
          throw err;
        }
      },
      { actor: 'reconciler-worker', log },
    ),
    { concurrency: Number(process.env.LIFEBOAT_CONCURRENCY ?? 1) },
  );
  await serveWorker({
    app: 'reconciler',
    queue: 'reconcile',
    version: VERSION,
    registry,
    store: runtime.store.location,
    log,
    defaultPort: 9103,
    readiness: async () => {
      await runtime.store.check();
      return null;
    },
    close: [() => consumer.close(), () => bus.close(), () => audit.close()],
  });
}

main().catch(exitOnStartupFailure(log));
