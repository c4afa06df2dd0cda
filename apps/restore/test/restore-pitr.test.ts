// `lifeboat restore` of a PostgreSQL target rolled forward through point-in-time recovery: a
// demo whose database lives on a cluster of this test's own, archived by the real
// `lifeboat wal push` (1 MiB segments, archive_timeout 1 s), with a backup and then a base
// backup, and orders written after both. Restored to the end of the archive, to a point
// between two batches of orders, and from the backup alone. The shared server on :5432 is
// never touched.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chownToClusterOwner } from '@lifeboat/adapters';
import type { RestoreResult, StepRecord, WalVerifyReport } from '@lifeboat/domain';
import {
  type CliRun,
  freePort,
  LIFEBOAT_BIN,
  lifeboat,
  type PrivateCluster,
  startArchivingCluster,
} from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let cluster: PrivateCluster | undefined;
let dir: string;
let demo: string;
let config: string;
let exchangePort: number;
let appUrl: string;
let backup: { backupId: string };
let baseBackupId: string;
/** A point between the two batches of orders written after both backups. */
let pointBetween: string;
const firstBatch = ['pitr-a-1', 'pitr-a-2', 'pitr-a-3', 'pitr-a-4', 'pitr-a-5'];
const secondBatch = ['pitr-b-1', 'pitr-b-2', 'pitr-b-3', 'pitr-b-4', 'pitr-b-5'];

function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(-3000)}`);
  }
}

/** Orders as the trading system records them, each in a transaction of its own: copies of the newest. */
async function placeOrders(ids: string[]): Promise<void> {
  for (const id of ids) {
    await cluster?.sql(
      appUrl,
      `INSERT INTO orders (id, client_order_id, exchange_order_id, account, strategy, symbol, side, type, quantity, price, status, filled_quantity, mode, created_at, updated_at)
       SELECT $1, $1, NULL, account, strategy, symbol, side, type, quantity, price, 'REJECTED', 0, mode, clock_timestamp(), clock_timestamp()
         FROM orders ORDER BY created_at DESC LIMIT 1`,
      [id],
    );
  }
}

/** The orders this test placed that production holds now. */
async function placedOrders(): Promise<string[]> {
  const rows = await cluster?.sql(appUrl, "SELECT id FROM orders WHERE id LIKE 'pitr-%' ORDER BY id");
  return (rows ?? []).map((r) => r.id as string);
}

/** Switches to a new segment and waits until `lifeboat wal verify` shows the one just finished archived. */
async function switchAndWaitArchived(): Promise<string> {
  const [row] = (await cluster?.sql(cluster.adminUrl, 'SELECT pg_walfile_name(pg_switch_wal()) AS name')) ?? [];
  const name = row?.name as string;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const report = json<WalVerifyReport>(await lifeboat(['wal', 'verify', '--config', config, '--json']));
    if (report.timelines.some((t) => t.last >= name)) return name;
    if (Date.now() > deadline) throw new Error(`${name} was not archived in 60 s: ${JSON.stringify(report)}`);
    await sleep(250);
  }
}

async function restore(...extra: string[]): Promise<RestoreResult & { ms: number }> {
  const started = Date.now();
  const run = await lifeboat([
    'restore',
    '--config',
    config,
    '--scenario',
    'db-corruption',
    '--yes',
    '--json',
    ...extra,
  ]);
  const ms = Date.now() - started;
  const result = json<RestoreResult>(run);
  expect(result.outcome, JSON.stringify(result.steps.filter((s) => s.status === 'FAILED'))).toBe('COMPLETED');
  expect(run.code).toBe(0);
  return { ...result, ms };
}

const stepOf = (r: RestoreResult, name: string) => r.steps.find((s) => s.name === name) as StepRecord;

/** The roll-forward step's evidence of a replay. */
interface Replayed {
  recoveredTo: string;
  archivedBy: string;
  lastSegment: string;
  replayMs: number;
  tables: Record<string, number>;
}

/** The kill switch stays ON after the restore: the result, and the state the target reads. */
function expectHalted(r: RestoreResult): void {
  expect(r.killSwitch).toBe('ON');
  expect(JSON.parse(readFileSync(join(demo, 'target', 'kill_switch_state.json'), 'utf8')).state).toBe('ON');
  expect(stepOf(r, 'reconcile').status).toBe('COMPLETED');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-restore-pitr-'));
  demo = join(dir, 'demo');
  config = join(demo, 'lifeboat.yaml');
  // No silent skip: without PostgreSQL's server binaries this fails, saying what is missing.
  cluster = await startArchivingCluster({
    dir,
    archiveCommand: `${process.execPath} ${LIFEBOAT_BIN} wal push %p --config ${config} --target demo`,
    walSegmentMiB: 1,
  });
  await cluster.sql(cluster.adminUrl, 'CREATE DATABASE trading');
  appUrl = `postgres://postgres@127.0.0.1:${cluster.port}/trading`;
  exchangePort = await freePort();
  const init = await lifeboat([
    'demo',
    'init',
    demo,
    '--size',
    '256KiB',
    '--db',
    'postgres',
    '--database-url',
    appUrl,
    '--port',
    String(await freePort()),
    '--exchange-port',
    String(exchangePort),
    '--json',
  ]);
  expect(init.code, init.stderr).toBe(0);
  // The archiver (user postgres) writes the WAL records; the CLI (this user) writes the rest.
  await mkdir(join(demo, 'store', '.incomplete'), { recursive: true });
  await mkdir(join(demo, 'store', 'demo', 'wal'), { recursive: true });
  await chownToClusterOwner(demo);
  // The venue only: the trading system is started by the restores, in shadow mode, and no
  // order but this test's is written.
  const venue = await lifeboat([
    'demo',
    'start',
    '--config',
    config,
    '--detach',
    '--only',
    'exchange',
    '--exchange-port',
    String(exchangePort),
  ]);
  expect(venue.code, venue.stderr).toBe(0);

  const taken = await lifeboat(['backup', '--config', config, '--json']);
  expect(taken.code, taken.stderr).toBe(0);
  backup = json(taken);
  const base = await lifeboat(['wal', 'basebackup', '--config', config, '--json']);
  expect(base.code, base.stderr).toBe(0);
  baseBackupId = json<{ id: string }>(base).id;

  await placeOrders(firstBatch);
  await sleep(1000);
  pointBetween = new Date().toISOString();
  await sleep(1000);
  await placeOrders(secondBatch);
  await switchAndWaitArchived();
});

afterAll(async () => {
  if (config) await lifeboat(['demo', 'stop', '--config', config]);
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('lifeboat restore of a PostgreSQL target with continuous archiving', () => {
  it('to the end of the archive: the backup rolled forward through the WAL holds every order', async () => {
    const r = await restore();
    expect(r.backupId).toBe(backup.backupId);
    expect(await placedOrders()).toEqual([...firstBatch, ...secondBatch]);
    const step = stepOf(r, 'roll-forward');
    expect(step.status, step.outcome).toBe('COMPLETED');
    expect(step.outcome).toMatch(
      new RegExp(`^rolled forward: database to \\S+ \\(base backup ${baseBackupId} \\+ WAL`),
    );
    expect(step.evidence.database).toMatchObject({
      source: 'base backup + WAL',
      baseBackupId,
      replayedTo: 'latest',
      lastSegment: expect.stringMatching(/^[0-9A-F]{24}$/),
    });
    const e = step.evidence.database as Replayed;
    expect(Date.parse(e.recoveredTo)).toBeGreaterThan(Date.parse(pointBetween));
    // To the archive as it was when the step started, not wherever it has grown to since.
    expect(Date.parse(e.archivedBy)).toBeGreaterThanOrEqual(Date.parse(step.startedAt as string));
    expect(Date.parse(e.recoveredTo)).toBeLessThanOrEqual(Date.parse(e.archivedBy));
    expect(e.tables.orders).toBeGreaterThan(0);
    // The timeline says what production now holds.
    expect(stepOf(r, 'swap-database').outcome).toMatch(
      new RegExp(`now holds base backup ${baseBackupId} \\+ WAL to ${e.recoveredTo.replaceAll('.', '\\.')}`),
    );
    expectHalted(r);
    console.log(
      `restore rolled forward to latest: ${r.ms} ms (roll-forward step ${step.durationMs} ms, of which the scratch server's replay ${e.replayMs} ms, through ${e.lastSegment})`,
    );
  });

  it('to a point in time between two batches: only the orders placed before it', async () => {
    const r = await restore('--point-in-time', pointBetween);
    expect(await placedOrders()).toEqual(firstBatch);
    const step = stepOf(r, 'roll-forward');
    expect(step.status, step.outcome).toBe('COMPLETED');
    expect(step.evidence.database).toMatchObject({ baseBackupId, replayedTo: pointBetween });
    const e = step.evidence.database as Replayed;
    expect(Date.parse(e.recoveredTo)).toBeLessThanOrEqual(Date.parse(pointBetween));
    expect(stepOf(r, 'swap-database').outcome).toContain(`now holds base backup ${baseBackupId} + WAL to`);
    expectHalted(r);
    console.log(
      `restore rolled forward to a point in time: ${r.ms} ms (roll-forward step ${step.durationMs} ms, of which the scratch server's replay ${e.replayMs} ms, through ${e.lastSegment})`,
    );
  });

  it('--no-stream: the backup alone, none of the orders placed after it', async () => {
    const r = await restore('--no-stream');
    expect(await placedOrders()).toEqual([]);
    const step = stepOf(r, 'roll-forward');
    expect(step.status).toBe('SKIPPED');
    expect(step.outcome).toMatch(/--no-stream/);
    expect(stepOf(r, 'swap-database').outcome).toContain(`now holds backup ${backup.backupId}'s dump alone`);
    expectHalted(r);
    console.log(`restore of the backup alone (--no-stream): ${r.ms} ms`);
  });
});
