// The drill-scheduler's process: a BullMQ worker on queue `drill` that runs each drill as
// jobs on the backup, restore and reconcile queues; the leader among its replicas keeps the
// drill schedule in BullMQ; an ops server (/health, /ready, /metrics).
import { hostname } from 'node:os';
import {
  alertSenderFromEnv,
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
import { listBackups } from '@lifeboat/backup';
import {
  type BackupResult,
  type DrillReport,
  layout,
  type ReconcileJobResult,
  type RestoreResult,
} from '@lifeboat/domain';
import { Counter, Gauge, Registry } from 'prom-client';
import type { DrillContext } from './context.js';
import { runDrill } from './handlers/drill.js';
import { DrillScheduler } from './scheduler.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const log = createLogger('drill-scheduler');
const VERSION = '0.1.0';
const JOB_TIMEOUT_MS = 6 * 3600_000;

async function main(): Promise<void> {
  const path = configPath();
  const loaded = await loadConfig(path);
  const runtime = createRuntime(loaded);
  // Distributed mode's PostgreSQL catalog, migrated at start (LIFEBOAT_CATALOG_URL).
  const catalog = await openCatalogFromEnv();
  const redisUrl = process.env.LIFEBOAT_REDIS_URL;
  if (!redisUrl) {
    log.error({}, 'the drill-scheduler needs LIFEBOAT_REDIS_URL');
    process.exit(2);
  }
  const prefix = process.env.LIFEBOAT_QUEUE_PREFIX ?? 'lifeboat';
  const registry = new Registry();
  const runs = new Counter({
    name: 'lifeboat_drill_runs_total',
    help: 'Drills run, by drill and verdict',
    labelNames: ['target', 'drill', 'verdict'],
    registers: [registry],
  });
  const rto = new Gauge({
    name: 'lifeboat_drill_rto_seconds',
    help: 'Measured RTO of the last run of each drill',
    labelNames: ['target', 'drill'],
    registers: [registry],
  });
  const rpo = new Gauge({
    name: 'lifeboat_drill_rpo_seconds',
    help: 'Measured order-history RPO of the last run of each drill',
    labelNames: ['target', 'drill'],
    registers: [registry],
  });
  const passed = new Gauge({
    name: 'lifeboat_drill_last_passed',
    help: '1 when the last run of the drill passed, 0 when it failed',
    labelNames: ['target', 'drill'],
    registers: [registry],
  });
  const record = (r: DrillReport) => {
    for (const d of [r, ...(r.drills ?? [])]) {
      runs.inc({ target: d.target, drill: d.drill, verdict: d.verdict });
      passed.set({ target: d.target, drill: d.drill }, d.verdict === 'PASS' ? 1 : 0);
      if (d.measured.rto_seconds !== null) rto.set({ target: d.target, drill: d.drill }, d.measured.rto_seconds);
      if (d.measured.rpo_seconds !== null) rpo.set({ target: d.target, drill: d.drill }, d.measured.rpo_seconds);
    }
  };

  const bus = new BullMqJobBus({
    url: redisUrl,
    prefix,
    onError: (err) => log.error({ err: { message: err.message } }, 'redis connection error'),
    lockMs: jobLockMs(),
  });
  const through = async <T>(queue: 'backup' | 'restore' | 'reconcile', payload: { target?: string }) => {
    const { jobId } = await bus.enqueue(queue, payload, { attempts: 1 });
    return (await bus.result(queue, jobId, { timeoutMs: JOB_TIMEOUT_MS })) as T;
  };
  // Every job it runs goes into the audit trail (completed or failed, with a small summary).
  const audit = await createAuditTrail(runtime, { log });
  const consumer = await bus.consume(
    'drill',
    auditedHandler(
      audit.trail,
      'drill',
      async (payload, job) => {
        // lifeboat.yaml as it is now: the schedule follows its edits, and so do the drills.
        const current = await loadConfig(path).then(createRuntime, (err: Error) => {
          log.warn(
            { err: { message: err.message } },
            'drill: lifeboat.yaml does not load; using the one read at start',
          );
          return runtime;
        });
        const ctx: DrillContext = {
          runtime: current,
          sharedSandboxRequired: true,
          log: log.child({ jobId: job.jobId }),
          jobs: {
            backup: (req) => through<BackupResult>('backup', req),
            restore: (req) => through<RestoreResult>('restore', req),
            reconcile: (req) => through<ReconcileJobResult>('reconcile', req),
          },
        };
        const report = await runDrill(payload, ctx);
        record(report);
        await ingestAll(
          catalog,
          current.store,
          [report, ...(report.drills ?? [])].map((r) => layout.drillReport(r.target, r.id)),
          log,
        );
        return report;
      },
      { actor: 'drill-scheduler-worker', log },
    ),
    { concurrency: 1 },
  );

  const locks = createLockProvider({ redisUrl, dir: '', prefix });
  const scheduler = new DrillScheduler({
    bus,
    locks,
    log,
    load: () => loadConfig(path),
    alerts: (l) => alertSenderFromEnv(l.config.drills.webhookUrlEnv),
    holder: `drill-scheduler ${hostname()} pid ${process.pid}`,
    tickMs: Number(process.env.LIFEBOAT_SCHEDULER_TICK_MS ?? 5000),
    newestBackupAt: async (l, target) => {
      const newest = (await listBackups(createRuntime(l), target)).at(-1);
      return newest ? { id: newest.backupId, at: newest.createdAt } : null;
    },
  });
  scheduler.start();

  await serveWorker({
    app: 'drill-scheduler',
    queue: 'drill',
    version: VERSION,
    registry,
    store: runtime.store.location,
    log,
    defaultPort: 9104,
    readiness: async () => {
      await runtime.store.check();
      return null;
    },
    close: [
      () => scheduler.stop(),
      () => consumer.close(),
      () => bus.close(),
      () => locks.close(),
      () => audit.close(),
    ],
  });
}

main().catch(exitOnStartupFailure(log));
