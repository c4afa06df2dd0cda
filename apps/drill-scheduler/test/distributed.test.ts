// Distributed mode for real: the backup, restore, reconciler and drill-scheduler workers as
// separate processes on the local Redis, an S3 store and a PostgreSQL target trading live.
// The scheduler's leader keeps the schedule in BullMQ; each drill, queued by the CLI, runs
// as jobs through the other workers and reports measured numbers.
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BullMqJobBus, PostgresCatalog } from '@lifeboat/adapters';
import { type DrillReport, drillSchedules, nextRun } from '@lifeboat/domain';
import { freePort, getTestStack, lifeboat, startWorker, type TestStack, uniqueName } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';

vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const APPS = ['backup', 'restore', 'reconciler', 'drill-scheduler'] as const;

async function until<T>(what: string, fn: () => Promise<T | null>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await fn();
    if (got !== null) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

let stack: TestStack;
let dir: string;
let config: string;
let databaseUrl: string;
let catalogUrl: string;
let env: NodeJS.ProcessEnv;
let bus: BullMqJobBus;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  stack = await getTestStack();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-drills-distributed-'));
  const port = await freePort();
  const exchangePort = await freePort();
  databaseUrl = await stack.postgres.createDatabase('drilld');
  catalogUrl = await stack.postgres.createDatabase('catalog');
  const init = await lifeboat([
    'demo',
    'init',
    join(dir, 'demo'),
    '--size',
    '256KiB',
    '--db',
    'postgres',
    '--database-url',
    databaseUrl,
    '--port',
    String(port),
    '--exchange-port',
    String(exchangePort),
    '--json',
  ]);
  expect(init.code, init.stderr).toBe(0);
  config = JSON.parse(init.stdout).config;
  // The store becomes a bucket on the S3 server.
  const doc = YAML.parse(readFileSync(config, 'utf8'));
  // Every worker runs on this host: the shared sandbox directory is a local one.
  doc.drills = { sandboxDir: join(dir, 'sandboxes') };
  doc.store = {
    type: 's3',
    endpoint: stack.s3.endpoint,
    region: stack.s3.region,
    bucket: await stack.s3.createBucket('drills'),
    prefix: 'prod',
  };
  writeFileSync(config, YAML.stringify(doc));
  const prefix = uniqueName('lbd');
  env = {
    ...process.env,
    LIFEBOAT_CONFIG: config,
    LIFEBOAT_REDIS_URL: stack.redis.url,
    LIFEBOAT_QUEUE_PREFIX: prefix,
    LIFEBOAT_OPS_PORT: '0',
    LIFEBOAT_OPS_HOST: '127.0.0.1',
    LIFEBOAT_SCHEDULER_TICK_MS: '300',
    AWS_ACCESS_KEY_ID: stack.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
    DATABASE_URL: databaseUrl,
    LIFEBOAT_CATALOG_URL: catalogUrl,
  };
  const start = await lifeboat(
    ['demo', 'start', '--config', config, '--detach', '--exchange-port', String(exchangePort)],
    { DATABASE_URL: databaseUrl },
  );
  expect(start.code, start.stderr).toBe(0);
  for (const app of APPS) workers.push((await startWorker(app, env)).child);
  bus = new BullMqJobBus({ url: stack.redis.url, prefix });
  // The first backup, through the backup worker.
  const backup = await lifeboat(['backup', '--json'], env);
  expect(backup.code, backup.stderr).toBe(0);
});

afterAll(async () => {
  await bus?.close();
  for (const w of workers) if (w.exitCode === null) w.kill('SIGTERM');
  await lifeboat(['demo', 'stop', '--config', config]);
  if (databaseUrl) await stack.postgres.dropDatabase(databaseUrl);
  if (catalogUrl) await stack.postgres.dropDatabase(catalogUrl);
  await rm(dir, { recursive: true, force: true });
});

describe('the drill-scheduler with the other workers', () => {
  it('keeps one BullMQ job scheduler per drill, firing when the listing says, and follows lifeboat.yaml', async () => {
    const schedules = await until('the job schedulers', async () => {
      const s = await bus.schedules('drill');
      return s.length === drillSchedules().length ? s : null;
    });
    const now = new Date();
    for (const expected of drillSchedules()) {
      const s = schedules.find((x) => x.id === `drill:demo:${expected.drill}`);
      expect(s?.pattern, expected.drill).toBe(expected.cron.source);
      // BullMQ computes its own next firing: it must be ours.
      expect(new Date(s?.next as number).toISOString(), expected.drill).toBe(
        nextRun(expected.cron, new Date(now.getTime() - 2000))?.toISOString(),
      );
    }

    const doc = YAML.parse(readFileSync(config, 'utf8'));
    doc.drills = { ...doc.drills, schedule: { reconciliation: 'off', 'kill-switch': '15 9 * * TUE' } };
    writeFileSync(config, YAML.stringify(doc));
    const changed = await until('the edited schedule', async () => {
      const s = await bus.schedules('drill');
      return s.length === drillSchedules().length - 1 &&
        s.find((x) => x.id === 'drill:demo:kill-switch')?.pattern === '15 9 * * TUE'
        ? s
        : null;
    });
    expect(changed.map((s) => s.id)).not.toContain('drill:demo:reconciliation');
  });

  it('runs each drill of the catalog through the queues, with measured numbers', async () => {
    for (const drill of [
      'backup-verify',
      'database-restore',
      'cold-restore',
      'reconciliation',
      'kill-switch',
      'shadow-failover',
      'vendor-connectivity-loss',
    ]) {
      const run = await lifeboat(['drill', 'run', drill, '--json'], env);
      let report: DrillReport;
      try {
        report = JSON.parse(run.stdout) as DrillReport;
      } catch {
        throw new Error(
          `${drill}: no report (exit ${run.code}): ${run.stdout.slice(0, 300)} ${run.stderr.slice(-2000)}`,
        );
      }
      expect(
        report.verdict,
        `${drill}: ${report.failure} ${JSON.stringify(report.evidence.reconciliation ?? {})}`,
      ).toBe('PASS');
      expect(report.steps.length, drill).toBeGreaterThan(0);
      for (const s of report.steps) expect(s.duration_ms, `${drill}/${s.name}`).toBeGreaterThanOrEqual(0);
      if (report.targets.rto_seconds !== null) expect(report.measured.rto_seconds, drill).toBeGreaterThan(0);
      if (report.targets.rpo_seconds !== null) expect(report.measured.rpo_seconds, drill).toBeGreaterThanOrEqual(0);
    }
    // Every sandbox was removed from the shared directory.
    expect(readdirSync(join(dir, 'sandboxes')).filter((f) => !f.startsWith('.'))).toEqual([]);
    // The reports are in the S3 store, listed by the CLI.
    const list = await lifeboat(['drill', 'list', '--json'], env);
    expect(JSON.parse(list.stdout).drills.length).toBeGreaterThanOrEqual(7);

    // …and each worker put its records in the PostgreSQL catalog as it went.
    const catalog = new PostgresCatalog(catalogUrl);
    const live = await catalog.counts('demo');
    expect(live.lifeboat_drills).toBeGreaterThanOrEqual(7);
    expect(live.lifeboat_backups).toBeGreaterThanOrEqual(1);
    expect(live.lifeboat_restores).toBeGreaterThanOrEqual(5);
    expect(live.lifeboat_reconciliations).toBeGreaterThanOrEqual(3);
    // A sync from the store (the source of truth) finds nothing to add or remove.
    const sync = await lifeboat(['catalog', 'sync', '--json'], env);
    expect(sync.code, sync.stderr).toBe(0);
    const synced = JSON.parse(sync.stdout);
    expect(synced.removed).toBe(0);
    expect(synced.rows.drill).toBe(live.lifeboat_drills);
    expect(await catalog.counts('demo')).toEqual(live);
  });
});
