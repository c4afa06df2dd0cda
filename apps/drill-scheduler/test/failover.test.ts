// The multi-region failover drill on a live demo: backups copied to a secondary S3 bucket and
// a filesystem location, then the primary S3 server stopped for real. The drill, and a
// restore, must find the secondary on their own and recover from it.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DrillReport } from '@lifeboat/domain';
import {
  type CliRun,
  freePort,
  getTestStack,
  lifeboat,
  type PrivateS3,
  startPrivateS3,
  type TestStack,
} from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';

// A whole drill with real processes: minutes on a loaded 2-core machine, not seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(-3000)}`);
  }
}

let stack: TestStack;
let primary: PrivateS3;
let dir: string;
let config: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  stack = await getTestStack();
  primary = await startPrivateS3();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-failover-'));
  const port = await freePort();
  const exchangePort = await freePort();
  const init = await lifeboat([
    'demo',
    'init',
    join(dir, 'demo'),
    '--size',
    '256KiB',
    '--port',
    String(port),
    '--exchange-port',
    String(exchangePort),
    '--json',
  ]);
  expect(init.code, init.stderr).toBe(0);
  config = json<{ config: string }>(init).config;
  const doc = parse(await readFile(config, 'utf8'));
  doc.store = {
    type: 's3',
    endpoint: primary.endpoint,
    region: primary.region,
    bucket: await primary.createBucket('primary'),
    accessKeyIdEnv: 'PRIMARY_S3_KEY',
    secretAccessKeyEnv: 'PRIMARY_S3_SECRET',
  };
  doc.locations = {
    secondary: {
      type: 's3',
      endpoint: stack.s3.endpoint,
      region: stack.s3.region,
      bucket: await stack.s3.createBucket('secondary'),
      accessKeyIdEnv: 'SECONDARY_S3_KEY',
      secretAccessKeyEnv: 'SECONDARY_S3_SECRET',
    },
    tertiary: { type: 'fs', path: 'nas' },
  };
  await writeFile(config, stringify(doc));
  env = {
    PRIMARY_S3_KEY: primary.accessKeyId,
    PRIMARY_S3_SECRET: primary.secretAccessKey,
    SECONDARY_S3_KEY: stack.s3.accessKeyId,
    SECONDARY_S3_SECRET: stack.s3.secretAccessKey,
  };
  const start = await lifeboat(
    ['demo', 'start', '--config', config, '--detach', '--exchange-port', String(exchangePort)],
    env,
  );
  expect(start.code, start.stderr).toBe(0);
});

afterAll(async () => {
  if (config) await lifeboat(['demo', 'stop', '--config', config]);
  await primary?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('multi-region failover', () => {
  it('with the primary S3 server stopped, the drill restores from the secondary and reconciles within the RTO', async () => {
    const backup = await lifeboat(['backup', '--config', config, '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    const made = json<{ backupId: string; copies: Array<{ location: string; outcome: string }> }>(backup);
    expect(made.copies.map((c) => c.outcome)).toEqual(['copied', 'copied']);

    await primary.stop();
    const run = await lifeboat(['drill', 'run', 'multi-region-failover', '--config', config, '--json'], env);
    const report = json<DrillReport>(run);
    expect(report.verdict, report.failure ?? '').toBe('PASS');
    expect(run.code).toBe(0);
    expect(report.steps.map((s) => s.name)).toEqual([
      'make-primary-unavailable',
      'restore',
      'check-location',
      'measure-rpo',
      'reconcile',
    ]);
    expect(report.evidence.restore).toMatchObject({ backupId: made.backupId, location: 'secondary' });
    // The select step says the primary did not answer before the secondary was used.
    const restore = report.evidence.restore as { steps: Array<{ name: string; outcome: string | null }> };
    expect(restore.steps.find((s) => s.name === 'select-backup')?.outcome).toMatch(
      /from secondary after primary: skipped, unavailable by request/,
    );
    expect(report.measured.rto_seconds).toBeGreaterThan(0);
    expect(report.measured.rto_seconds).toBeLessThanOrEqual(report.targets.rto_seconds as number);
    expect(report.measured.rpo_seconds).not.toBeNull();
    // Its record could not go to the stopped primary: the report says so rather than failing the drill.
    expect(report.evidence.notStored).toMatch(/unreachable/);
  });

  it('with no location besides the primary, the drill fails saying there is nothing to fail over to', async () => {
    const plain = join(dir, 'plain.yaml');
    const doc = parse(await readFile(config, 'utf8'));
    doc.store = { type: 'fs', path: 'plain-store' };
    delete doc.locations;
    await writeFile(plain, stringify(doc));
    const run = await lifeboat(['drill', 'run', 'multi-region-failover', '--config', plain, '--json'], env);
    const report = json<DrillReport>(run);
    expect(report.verdict).toBe('FAIL');
    expect(run.code).not.toBe(0);
    expect(report.failure).toMatch(/^make-primary-unavailable: .*no backup location besides the primary store/);
  });
});
