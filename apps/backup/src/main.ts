// The backup app's process: a BullMQ worker on queue `backup` with an ops server (default),
// or `once` mode that runs one backup and exits non-zero on failure (a Kubernetes CronJob).
import { join } from 'node:path';
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
  type Runtime,
  serveWorker,
} from '@lifeboat/adapters';
import {
  type JobBus,
  type JobContext,
  LifeboatError,
  layout,
  parseCron,
  previousRun,
  type ReplicateRequestInput,
  replicateJobId,
} from '@lifeboat/domain';
import { type BackupContext, TOOL_VERSION } from './context.js';
import { backup } from './handlers/backup.js';
import { queueCopiesOn, replicate } from './handlers/replicate.js';
import { createBackupMetrics, createShipMetrics } from './metrics.js';
import { startShipping } from './ship/run.js';

// The lock file pins AWS SDK releases that support Node 20; its end-of-support notice is noise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const log = createLogger('backup');

async function main(): Promise<void> {
  const mode = process.argv[2] ?? 'worker';
  if (mode !== 'worker' && mode !== 'once' && mode !== 'ship') {
    console.error(`usage: main.js [worker|once|ship] (got "${mode}")`);
    process.exit(2);
  }
  const loaded = await loadConfig(configPath());
  const runtime = createRuntime(loaded);
  if (mode === 'ship') return ship(runtime);
  const metrics = createBackupMetrics();
  // Distributed mode's PostgreSQL catalog, migrated at start (LIFEBOAT_CATALOG_URL).
  const catalog = await openCatalogFromEnv();

  const redisUrl = process.env.LIFEBOAT_REDIS_URL;
  const bus = redisUrl
    ? new BullMqJobBus({
        url: redisUrl,
        prefix: process.env.LIFEBOAT_QUEUE_PREFIX ?? 'lifeboat',
        onError: (err) => log.error({ err: { message: err.message } }, 'redis connection error'),
        lockMs: jobLockMs(),
      })
    : null;
  // Every job it runs goes into the audit trail (completed or failed, with a small summary).
  const audit = await createAuditTrail(runtime, { log });
  // Two runs for one schedule slot take turns: on Redis when there is one (pods on many hosts),
  // else on a lock file beside the configuration (one host), as the audit trail does.
  const locks = createLockProvider({
    redisUrl: redisUrl ?? '',
    dir: join(loaded.baseDir, '.lifeboat', 'locks'),
    prefix: process.env.LIFEBOAT_QUEUE_PREFIX ?? 'lifeboat',
  });
  // Copies to other locations: queued for a replicate worker, or made here when there is no
  // Redis (a CronJob alone), each recorded as a worker would record it.
  const copies: Array<Promise<boolean>> = [];
  const copyHere = auditedHandler(
    audit.trail,
    'replicate',
    (payload, job) => replicate(payload, { runtime, log: log.child({ jobId: job.jobId }) }),
    { actor: 'backup-cronjob', log },
  );
  const queueCopy = (b: JobBus | null) => async (request: ReplicateRequestInput) => {
    if (b) return queueCopiesOn(b)(request);
    const jobId = replicateJobId(request.target, request.backupId, request.location);
    copies.push(
      copyHere(request, { jobId, attempt: 1, progress() {}, signal: new AbortController().signal }).then(
        () => true,
        (err: Error) => {
          log.error({ err: { message: err.message }, jobId }, 'copy failed');
          return false;
        },
      ),
    );
    return { jobId };
  };
  const copyMetrics = async (target: string) => {
    await metrics
      .refreshCopyLag(runtime, target)
      .catch((err: Error) => log.warn({ err: { message: err.message } }, 'copy lag not measured'));
  };

  // A metric label names a configured target: bad input must not add series (or throw making one).
  const configuredTarget = (payload: unknown) => {
    const name = (payload as { target?: unknown } | null)?.target;
    return typeof name === 'string' && Object.hasOwn(loaded.config.targets, name) ? name : 'unknown';
  };

  const run = async (payload: unknown, job?: JobContext) => {
    const started = Date.now();
    const target = configuredTarget(payload);
    try {
      const ctx: BackupContext = {
        runtime,
        log: log.child({ jobId: job?.jobId }),
        replicate: queueCopy(bus),
        locks,
        ...(job ? { jobId: job.jobId, progress: job.progress, signal: job.signal } : {}),
      };
      const result = await backup(payload, ctx);
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
    // Recorded in the audit trail as the worker records its jobs: the annual audit counts
    // backups retention has since removed from there.
    try {
      // Not the job's id: `once:<pid>` repeats from run to run (pid 1 in a container), so it names no one backup.
      const result = await auditedHandler(audit.trail, 'backup', (payload) => run(payload), {
        actor: 'backup-cronjob',
        log,
      })(request, { jobId: `once:${process.pid}`, attempt: 1, progress() {}, signal: new AbortController().signal });
      const copied = await Promise.all(copies);
      log.info({ result }, 'backup once: done');
      // The backup stands, but the CronJob's retry (the same slot: no second backup) makes the copies again.
      if (copied.includes(false)) {
        log.error({ failed: copied.filter((ok) => !ok).length }, 'backup once: a copy failed');
        process.exitCode = 1;
      }
    } finally {
      await bus?.close();
      await audit.close();
      await locks.close();
    }
    return;
  }

  if (!bus) {
    log.error({}, 'worker mode needs LIFEBOAT_REDIS_URL (or run `main.js once`)');
    process.exit(2);
  }
  const concurrency = Number(process.env.LIFEBOAT_CONCURRENCY ?? 1);
  const consumer = await bus.consume(
    'backup',
    auditedHandler(audit.trail, 'backup', (payload, job) => run(payload, job), { actor: 'backup-worker', log }),
    { concurrency },
  );
  // The same worker makes the copies: they need the same stores and credentials.
  const replicator = await bus.consume(
    'replicate',
    auditedHandler(
      audit.trail,
      'replicate',
      async (payload, job) => {
        const result = await replicate(payload, {
          runtime,
          log: log.child({ jobId: job.jobId }),
          progress: job.progress,
          signal: job.signal,
        });
        await copyMetrics(result.target);
        return result;
      },
      { actor: 'backup-worker', log },
    ),
    { concurrency },
  );
  // Copy lag grows while nothing happens: measured once a minute, not only after jobs.
  const lagTimer = setInterval(() => {
    for (const name of Object.keys(loaded.config.targets)) void copyMetrics(name);
  }, 60_000);
  lagTimer.unref();
  for (const name of Object.keys(loaded.config.targets)) void copyMetrics(name);
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
    close: [
      async () => clearInterval(lagTimer),
      () => consumer.close(),
      () => replicator.close(),
      () => bus.close(),
      () => audit.close(),
      () => locks.close(),
    ],
  });
}

/**
 * Ship mode: continuous protection of one target (LIFEBOAT_TARGET, or the only one) — its
 * SQLite log and append-only files shipped every interval — with its metrics on the ops
 * server. SIGTERM ships what is left, then exits 0.
 */
async function ship(runtime: Runtime): Promise<void> {
  const target = runtime.target(process.env.LIFEBOAT_TARGET);
  const metrics = createShipMetrics();
  const shipping = await startShipping({
    runtime,
    target,
    log,
    onRound: (s) => metrics.update(s),
  });
  await serveWorker({
    app: 'backup',
    queue: 'ship',
    version: TOOL_VERSION,
    registry: metrics.registry,
    store: runtime.store.location,
    log,
    defaultPort: 9104,
    readiness: async () => {
      const lag = Math.max(...Object.values(shipping.lagSeconds()));
      return lag > 60 ? `changes have waited ${Math.round(lag)} s to be shipped` : null;
    },
    close: [() => shipping.stop()],
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
