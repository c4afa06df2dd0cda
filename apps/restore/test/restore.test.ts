import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { RestoreResult } from '@lifeboat/domain';
import { type CliRun, checksums, freePort, getTestStack, lifeboat, type TestStack } from '@lifeboat/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Whole recoveries with real processes: minutes on a loaded 2-core machine, not seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function resultOf(run: CliRun): RestoreResult {
  try {
    return JSON.parse(run.stdout) as RestoreResult;
  } catch {
    throw new Error(`not a JSON result (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(0, 2000)}`);
  }
}

/** Samples the venue's order counter while a restore runs: [time, orders received]. */
function watchVenue(exchangePort: number): { stop: () => Promise<Array<[number, number]>> } {
  const samples: Array<[number, number]> = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const res = await fetch(`http://127.0.0.1:${exchangePort}/_lifeboat/stats`).catch(() => null);
      if (res?.ok) samples.push([Date.now(), ((await res.json()) as { ordersReceived: number }).ordersReceived]);
      await sleep(100);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** After the kill switch went ON, the venue's counter never moved. */
function expectNoOrdersAfterActivation(result: RestoreResult, samples: Array<[number, number]>) {
  const activation = result.steps.find((s) => s.name === 'activate-kill-switch');
  const after = Date.parse(activation?.endedAt as string);
  const counts = samples.filter(([t]) => t >= after).map(([, n]) => n);
  expect(counts.length).toBeGreaterThan(3);
  expect(new Set(counts).size).toBe(1);
}

let stack: TestStack;
const dirs: string[] = [];
beforeAll(async () => {
  stack = await getTestStack();
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe.each(['sqlite', 'postgres'] as const)('lifeboat restore over %s', (engine) => {
  let dir: string;
  let demo: string;
  let config: string;
  let databaseUrl: string | undefined;
  let port: number;
  let exchangePort: number;
  let backupId: string;
  const env = () => (databaseUrl ? { DATABASE_URL: databaseUrl } : {});
  const target = () => join(demo, 'target');
  const killSwitchState = () => JSON.parse(readFileSync(join(target(), 'kill_switch_state.json'), 'utf8')).state;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `lifeboat-restore-${engine}-`));
    dirs.push(dir);
    demo = join(dir, 'demo');
    port = await freePort();
    exchangePort = await freePort();
    databaseUrl = engine === 'postgres' ? await stack.postgres.createDatabase('restore') : undefined;
    const init = await lifeboat([
      'demo',
      'init',
      demo,
      '--size',
      '256KiB',
      '--db',
      engine,
      '--port',
      String(port),
      '--exchange-port',
      String(exchangePort),
      ...(databaseUrl ? ['--database-url', databaseUrl] : []),
      '--json',
    ]);
    expect(init.code, init.stderr).toBe(0);
    config = JSON.parse(init.stdout).config;
    const start = await lifeboat(
      ['demo', 'start', '--config', config, '--detach', '--rate', '40', '--exchange-port', String(exchangePort)],
      env(),
    );
    expect(start.code, start.stderr).toBe(0);
    await sleep(1000);
    const backup = await lifeboat(['backup', '--config', config, '--json'], env());
    expect(backup.code, backup.stderr).toBe(0);
    backupId = JSON.parse(backup.stdout).backupId;
    // Trading goes on after the backup: the restore has fills to recover from the venue.
    await sleep(1500);
  });

  afterAll(async () => {
    await lifeboat(['demo', 'stop', '--config', config]);
    if (databaseUrl) {
      // The damaged databases renamed aside by the restores go with the test's own.
      const client = new pg.Client({ connectionString: databaseUrl.replace(/\/[^/]+$/, '/postgres') });
      await client.connect();
      const name = new URL(databaseUrl).pathname.slice(1);
      const { rows } = await client.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE datname LIKE $1',
        [`${name}%`],
      );
      for (const r of rows) {
        await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [r.datname]);
        await client.query(`DROP DATABASE IF EXISTS "${r.datname}"`);
      }
      await client.end();
    }
  });

  it('app-crash: restarts the killed process in shadow mode; books agree, ready to trade, kill switch ON', async () => {
    const pid = Number(readFileSync(join(demo, 'run', 'paper-trader.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    const venue = watchVenue(exchangePort);
    const run = await lifeboat(
      ['restore', '--config', config, '--scenario', 'app-crash', '--yes', '--json', '--sign-off', 'test'],
      env(),
    );
    const result = resultOf(run);
    expectNoOrdersAfterActivation(result, await venue.stop());
    expect(result.outcome, JSON.stringify(result.steps.filter((s) => s.status === 'FAILED'))).toBe('COMPLETED');
    expect(result.steps.map((s) => s.status).every((s) => s === 'COMPLETED')).toBe(true);
    expect(result.killSwitch).toBe('ON');
    expect(killSwitchState()).toBe('ON');
    const reportFile = join(demo, 'store', result.reconciliation?.reportKey ?? 'missing');
    const why = existsSync(reportFile)
      ? JSON.stringify(JSON.parse(readFileSync(reportFile, 'utf8')).discrepancies.slice(0, 5))
      : 'no report';
    expect(result.reconciliation?.verdict, why).toMatch(/^PASS/);
    expect(result.readyToTrade).toBe(true);
    expect(result.rto.toHealthyShadowMs).toBeGreaterThan(0);
    expect(result.rto.toReadyMs).toBeGreaterThanOrEqual(result.rto.toHealthyShadowMs as number);
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as {
      mode: string;
      kill_switch: string;
    };
    expect(health).toMatchObject({ mode: 'shadow', kill_switch: 'ON' });
    expect(run.code).toBe(0);
  });

  it('refuses a restore from an archive with one flipped byte, leaving the target untouched', async () => {
    await lifeboat(['demo', 'stop', '--only', 'paper-trader', '--config', config]);
    const archive = readdirSync(join(demo, 'store', 'demo', 'backups', backupId)).find((f) => f.startsWith('archive'));
    const file = join(demo, 'store', 'demo', 'backups', backupId, archive as string);
    const fh = await open(file, 'r+');
    const at = Math.floor(statSync(file).size / 2);
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, at);
    await fh.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
    await fh.close();
    try {
      // The kill switch going ON is the one change a failed restore makes, by design.
      const before = checksums(target(), (rel) => rel === 'kill_switch_state.json');
      const dbBefore = databaseUrl ? await rowCounts(databaseUrl) : null;
      const run = await lifeboat(
        ['restore', '--config', config, '--scenario', 'db-corruption', '--backup', backupId, '--yes', '--json'],
        env(),
      );
      const result = resultOf(run);
      expect(run.code).toBe(1);
      expect(result.outcome).toBe('FAILED');
      expect(result.failedStep).toBe('fetch-and-verify');
      expect(result.error?.message).toMatch(/sha256|damaged|does not match/i);
      expect(checksums(target(), (rel) => rel === 'kill_switch_state.json')).toEqual(before);
      if (databaseUrl) expect(await rowCounts(databaseUrl)).toEqual(dbBefore);
      expect(killSwitchState()).toBe('ON');
      expect(result.movedAside).toEqual([]);
    } finally {
      const fh2 = await open(file, 'r+');
      const b = Buffer.alloc(1);
      await fh2.read(b, 0, 1, at);
      await fh2.write(Buffer.from([b[0]! ^ 0xff]), 0, 1, at);
      await fh2.close();
    }
    const start = await lifeboat(
      [
        'demo',
        'start',
        '--config',
        config,
        '--detach',
        '--only',
        'paper-trader',
        '--rate',
        '40',
        '--exchange-port',
        String(exchangePort),
      ],
      env(),
    );
    expect(start.code, start.stderr).toBe(0);
    // Trading resumes for the next scenario.
    await lifeboat(['kill-switch', 'activate', '--config', config, '--reason', 'test: reset'], env());
    await fetch(`http://127.0.0.1:${port}/kill-switch/deactivate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'test: trade again' }),
    });
    await sleep(1500);
  });

  it('db-corruption: damaged database kept aside, the backup restored and checked, fills recovered from the venue', async () => {
    await damageDatabase(engine, join(target(), 'trading.db'), databaseUrl);
    const venue = watchVenue(exchangePort);
    const run = await lifeboat(
      ['restore', '--config', config, '--scenario', 'db-corruption', '--yes', '--json', '--sign-off', 'test'],
      env(),
    );
    const result = resultOf(run);
    expectNoOrdersAfterActivation(result, await venue.stop());
    expect(result.outcome, JSON.stringify(result.steps.filter((s) => s.status === 'FAILED'))).toBe('COMPLETED');
    expect(result.killSwitch).toBe('ON');
    expect(killSwitchState()).toBe('ON');
    expect(result.movedAside.length).toBeGreaterThan(0);
    if (engine === 'sqlite') for (const p of result.movedAside) expect(existsSync(p)).toBe(true);
    const manifest = JSON.parse(
      readFileSync(join(demo, 'store', 'demo', 'backups', result.backupId as string, 'manifest.json'), 'utf8'),
    );
    const restoredStep = result.steps.find((s) => s.name === 'restore-database');
    expect(restoredStep?.evidence.tables).toEqual(manifest.database.tables);
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as {
      mode: string;
      kill_switch: string;
    };
    expect(health).toMatchObject({ mode: 'shadow', kill_switch: 'ON' });
    // The backup predates the last trades: the venue's orders and trades come back into the
    // books, and with the sign-off given the recovery is ready to trade.
    const why = JSON.stringify(result.steps.find((s) => s.name === 'reconcile')?.evidence);
    expect(result.reconciliation?.verdict, why).toBe('PASS_WITH_CORRECTIONS');
  });

  it('server-loss: an empty host gets config, database and state back, the kill switch ON', async () => {
    await lifeboat(['demo', 'stop', '--only', 'paper-trader', '--config', config]);
    const envFile = readFileSync(join(target(), '.env'), 'utf8');
    rmSync(target(), { recursive: true, force: true });
    if (databaseUrl) await dropDatabase(databaseUrl);
    const run = await lifeboat(
      ['restore', '--config', config, '--scenario', 'server-loss', '--yes', '--json', '--sign-off', 'test'],
      env(),
    );
    const result = resultOf(run);
    expect(result.outcome, JSON.stringify(result.steps.filter((s) => s.status === 'FAILED'))).toBe('COMPLETED');
    expect(readFileSync(join(target(), '.env'), 'utf8')).toBe(envFile);
    expect(killSwitchState()).toBe('ON');
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as {
      mode: string;
      kill_switch: string;
    };
    expect(health).toMatchObject({ mode: 'shadow', kill_switch: 'ON' });
    const restoredStep = result.steps.find((s) => s.name === 'restore-database');
    const manifest = JSON.parse(
      readFileSync(join(demo, 'store', 'demo', 'backups', result.backupId as string, 'manifest.json'), 'utf8'),
    );
    expect(restoredStep?.evidence.tables).toEqual(manifest.database.tables);
    expect(result.rto.toHealthyShadowMs).toBeGreaterThan(0);
  });

  it('refuses a second restore of the same target while one runs, naming the holder', async () => {
    const first = lifeboat(['restore', '--config', config, '--scenario', 'app-crash', '--yes', '--json'], env());
    // Start the second once the first holds the lock: a fixed pause lost the race on a loaded
    // machine, where the first process took longer than the pause to start.
    const locks = join(dirname(config), '.lifeboat', 'locks');
    await vi.waitFor(
      () => {
        if (!existsSync(locks) || !readdirSync(locks).some((f) => f.endsWith('.lock'))) {
          throw new Error(`the first restore holds no lock in ${locks} yet`);
        }
      },
      { timeout: 60_000, interval: 50 },
    );
    const second = await lifeboat(['restore', '--config', config, '--scenario', 'app-crash', '--yes'], env());
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/already running.*held by lifeboat restore/);
    await first;
  });
});

async function rowCounts(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, number> = {};
    for (const t of ['orders', 'fills', 'positions', 'balances']) {
      out[t] = Number((await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${t}`)).rows[0]?.n);
    }
    return out;
  } finally {
    await client.end();
  }
}

/**
 * SQLite: pages in the middle of the file overwritten with garbage. PostgreSQL: its data files
 * belong to the server (overwriting them under a running server is not reliably seen through
 * its buffer cache), so the damage is logical: the fills table truncated.
 */
async function damageDatabase(engine: 'sqlite' | 'postgres', file: string, url: string | undefined): Promise<void> {
  if (engine === 'sqlite') {
    const size = statSync(file).size;
    const fh = await open(file, 'r+');
    await fh.write(Buffer.alloc(8192, 0xa5), 0, 8192, Math.floor(size / 4096 / 2) * 4096);
    await fh.close();
    return;
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('TRUNCATE fills');
  await client.end();
}

async function dropDatabase(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url.replace(/\/[^/]+$/, '/postgres') });
  await client.connect();
  const name = new URL(url).pathname.slice(1);
  await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
  await client.query(`DROP DATABASE "${name}"`);
  await client.end();
}
