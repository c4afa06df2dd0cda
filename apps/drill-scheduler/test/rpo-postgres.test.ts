// rpo-under-load on a PostgreSQL target: a live demo whose database lives on a cluster of
// this test's own with continuous archiving on (archive_command is the real `lifeboat wal
// push`, archive_timeout 1 s). The shared server on :5432 is never reconfigured.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chownToClusterOwner,
  findPgBinaries,
  initCluster,
  type PgBinaries,
  pgCtl,
  stopCluster,
} from '@lifeboat/adapters';
import type { DrillReport } from '@lifeboat/domain';
import { type CliRun, freePort, LIFEBOAT_BIN, lifeboat } from '@lifeboat/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

let bin: PgBinaries;
let dir: string;
let pgdata: string;
let config: string;

function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(-3000)}`);
  }
}

async function sql(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  // No silent skip: without PostgreSQL's server binaries this fails, saying what is missing.
  bin = await findPgBinaries();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-rpo-pg-'));
  // archive_command and restore_command run as the cluster's owner: it must reach everything here.
  await chmod(dir, 0o755);
  pgdata = join(dir, 'pgdata');
  const demo = join(dir, 'demo');
  config = join(demo, 'lifeboat.yaml');
  await chownToClusterOwner(dir);
  // 1 MiB segments, as the docs advise with a short archive_timeout: a switch a second costs a
  // push of 1 MiB, not 16.
  await initCluster(bin, pgdata, { extraArgs: ['--wal-segsize=1'] });
  const port = await freePort();
  await writeFile(
    join(pgdata, 'postgresql.conf'),
    [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${dir}'`,
      'wal_level = replica',
      'archive_mode = on',
      `archive_command = '${process.execPath} ${LIFEBOAT_BIN} wal push %p --config ${config} --target demo'`,
      'archive_timeout = 1s',
      "lc_messages = 'C'",
      '',
    ].join('\n'),
    { flag: 'a' },
  );
  const started = await pgCtl(bin, ['start', '-D', pgdata, '-l', join(dir, 'pg.log'), '-w', '-t', '60']);
  if (started.code !== 0) throw new Error(`test cluster did not start: ${started.stderr}`);
  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await sql(admin, 'CREATE DATABASE trading');
  const exchangePort = await freePort();
  const init = await lifeboat([
    'demo',
    'init',
    demo,
    '--size',
    '256KiB',
    '--db',
    'postgres',
    '--database-url',
    `postgres://postgres@127.0.0.1:${port}/trading`,
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
  // The checkpointer sleeps a whole checkpoint_timeout before it first looks at archive_timeout; a reload wakes it.
  await sql(admin, 'SELECT pg_reload_conf()');
  await sql(admin, 'SELECT pg_switch_wal()');
  const start = await lifeboat([
    'demo',
    'start',
    '--config',
    config,
    '--detach',
    '--exchange-port',
    String(exchangePort),
  ]);
  expect(start.code, start.stderr).toBe(0);
  const backup = await lifeboat(['backup', '--config', config, '--json']);
  expect(backup.code, backup.stderr).toBe(0);
});

afterAll(async () => {
  if (config) await lifeboat(['demo', 'stop', '--config', config]);
  if (bin && pgdata) await stopCluster(bin, pgdata, 'immediate').catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('rpo-under-load on a PostgreSQL target', () => {
  it('replays only the WAL archived by the disaster: at most 5 s of orders lost, a prefix with no gap', async () => {
    const run = await lifeboat(['drill', 'run', 'rpo-under-load', '--config', config, '--json']);
    const report = json<DrillReport>(run);
    expect(report.verdict, report.failure ?? '').toBe('PASS');
    expect(run.code).toBe(0);
    expect(report.measured.rpo_seconds).not.toBeNull();
    expect(report.measured.rpo_seconds as number).toBeGreaterThanOrEqual(0);
    expect(report.measured.rpo_seconds as number).toBeLessThanOrEqual(5);
    const e = report.evidence as { ordersWrittenBeforeDisaster: number; ordersKept: number; ordersLost: number };
    expect(e.ordersWrittenBeforeDisaster).toBeGreaterThan(300);
    expect(e.ordersKept).toBeGreaterThan(0);
    expect(e.ordersKept + e.ordersLost).toBe(e.ordersWrittenBeforeDisaster);
    expect(report.steps.find((s) => s.name === 'restore-latest')?.detail).toMatch(/a prefix, no gap/);
    expect(report.steps.find((s) => s.name === 'disaster')?.detail).toMatch(/only the WAL archived by then counts/);
  });
});
