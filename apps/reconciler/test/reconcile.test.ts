import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliRun, freePort, getTestStack, lifeboat, type TestStack } from '@lifeboat/testkit';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Whole recoveries with real processes: minutes on a loaded 2-core machine, not seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Report {
  verdict: string;
  ready_to_trade: boolean;
  checks: Record<string, string>;
  discrepancies: Array<{ kind: string; trade_id?: string }>;
  actions_taken: Array<{ kind: string; key: string }>;
  stats: { internal_fills: number; exchange_trades: number };
}

function reportOf(run: CliRun): Report {
  try {
    return (JSON.parse(run.stdout) as { report: Report }).report;
  } catch {
    throw new Error(`not a JSON result (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(0, 2000)}`);
  }
}

let stack: TestStack;
const dirs: string[] = [];
beforeAll(async () => {
  stack = await getTestStack();
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe.each(['sqlite', 'postgres'] as const)('lifeboat reconcile after live trading, over %s', (engine) => {
  let dir: string;
  let config: string;
  let databaseUrl: string | undefined;
  let port: number;
  let exchangePort: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `lifeboat-reconcile-${engine}-`));
    dirs.push(dir);
    port = await freePort();
    exchangePort = await freePort();
    databaseUrl = engine === 'postgres' ? await stack.postgres.createDatabase('reconcile') : undefined;
    const init = await lifeboat([
      'demo',
      'init',
      join(dir, 'demo'),
      '--size',
      '256KiB',
      '--db',
      engine,
      '--port',
      String(port),
      ...(databaseUrl ? ['--database-url', databaseUrl] : []),
      '--json',
    ]);
    expect(init.code, init.stderr).toBe(0);
    config = JSON.parse(init.stdout).config;
    // The fills this test deletes were made just before trading halted; a short in-flight
    // threshold lets the run judge them without waiting out the default 5 s.
    const yaml = readFileSync(config, 'utf8').replace(
      '    exchange: { type: http }',
      engine === 'postgres'
        ? // Asked directly: ccxt's binance client pointed at the simulated venue.
          `    exchange: { type: ccxt, exchange: binance, urls: { default: "http://127.0.0.1:${exchangePort}/api/v3" } }\n    reconcile: { settings: { inFlightThresholdMs: 200 } }`
        : '    exchange: { type: http }\n    reconcile: { settings: { inFlightThresholdMs: 200 } }',
    );
    writeFileSync(config, yaml);
    const start = await lifeboat([
      'demo',
      'start',
      '--config',
      config,
      '--detach',
      '--rate',
      '60',
      '--exchange-port',
      String(exchangePort),
    ]);
    expect(start.code, start.stderr).toBe(0);
  });

  afterAll(async () => {
    await lifeboat(['demo', 'stop', '--config', config]);
    if (databaseUrl) await stack.postgres.dropDatabase(databaseUrl);
  });

  const env = () => {
    const dotenv = readFileSync(join(dir, 'demo', 'target', '.env'), 'utf8');
    const get = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(dotenv)?.[1] ?? '';
    return {
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
      EXCHANGE_API_KEY: get('EXCHANGE_API_KEY'),
      EXCHANGE_API_SECRET: get('EXCHANGE_API_SECRET'),
    };
  };

  it('passes after live trading, fails naming deleted fills as missing_fill, and --apply backfills them', async () => {
    // Live flow for a while, then the runbook's first step: halt trading.
    await sleep(2500);
    const halt = await fetch(`http://127.0.0.1:${port}/kill-switch/activate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'reconciliation test' }),
    });
    expect(halt.status).toBe(200);
    await sleep(700);

    const first = await lifeboat(['reconcile', '--config', config, '--json'], env());
    const passed = reportOf(first);
    expect(passed.discrepancies).toEqual([]);
    expect(passed.verdict).toBe('PASS');
    expect(first.code).toBe(0);
    expect(passed.stats.internal_fills).toBeGreaterThan(20);

    // Lose the newest fills, and the newest order with all of its fills, as a restore from
    // an older backup would.
    const lost = await loseNewest(engine, join(dir, 'demo', 'target', 'trading.db'), databaseUrl, 5);
    const deleted = lost.tradeIds;
    expect(deleted.length).toBeGreaterThanOrEqual(5);
    const second = await lifeboat(['reconcile', '--config', config, '--json'], env());
    const failed = reportOf(second);
    expect(second.code).toBe(1);
    expect(failed.verdict).toBe('FAIL');
    expect(failed.ready_to_trade).toBe(false);
    const missing = failed.discrepancies.filter((d) => d.kind === 'missing_fill').map((d) => d.trade_id);
    expect(missing.sort()).toEqual([...deleted].sort());

    // Without a sign-off a corrected run is not ready to trade; with one it is.
    const applied = await lifeboat(['reconcile', '--config', config, '--apply', '--json'], env());
    const corrected = reportOf(applied);
    expect(corrected.verdict).toBe('PASS_WITH_CORRECTIONS');
    expect(corrected.ready_to_trade).toBe(false);
    expect(applied.code).toBe(1);
    expect(
      corrected.actions_taken
        .filter((a) => a.kind === 'backfill_fill')
        .map((a) => a.key)
        .sort(),
    ).toEqual([...deleted].sort());
    expect(corrected.actions_taken.filter((a) => a.kind === 'backfill_order').map((a) => a.key)).toEqual([
      lost.clientOrderId,
    ]);

    const after = await lifeboat(['reconcile', '--config', config, '--json', '--sign-off', 'alice'], env());
    const clean = reportOf(after);
    expect(clean.verdict).toBe('PASS');
    expect(clean.ready_to_trade).toBe(true);
    expect(after.code).toBe(0);

    // A passing reconciliation newer than the halt lets the kill switch go OFF, through the API.
    const resumed = await lifeboat(
      ['kill-switch', 'deactivate', '--config', config, '--reason', 'reconciled', '--json'],
      env(),
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ state: 'OFF', via: 'api' });
    // …and a new halt makes that reconciliation too old to resume on.
    await lifeboat(['kill-switch', 'activate', '--config', config, '--reason', 'halt again'], env());
    const stale = await lifeboat(['kill-switch', 'deactivate', '--config', config, '--reason', 'again'], env());
    expect(stale.code).toBe(2);
    expect(stale.stderr).toContain('older than the activation');

    // Every run's report is in the store, and every correction in the target's audit log.
    const stored = readdirSync(join(dir, 'demo', 'store', 'demo', 'reports', 'reconciliation'));
    expect(stored.filter((f) => f.endsWith('.json')).map((f) => f.replace(/^.*-(\w+)\.json$/, '$1'))).toEqual([
      'PASS',
      'FAIL',
      'PASS_WITH_CORRECTIONS',
      'PASS',
    ]);
    const audit = readFileSync(join(dir, 'demo', 'target', 'logs', 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; key?: string });
    expect(
      audit
        .filter((e) => e.event === 'reconciliation_correction')
        .map((e) => e.key)
        .filter((k) => deleted.includes(k as string))
        .sort(),
    ).toEqual([...deleted].sort());
  });
});

/** Deletes the newest order with its fills, and the newest `n` fills besides. */
async function loseNewest(
  engine: 'sqlite' | 'postgres',
  file: string,
  url: string | undefined,
  n: number,
): Promise<{ tradeIds: string[]; clientOrderId: string }> {
  const newestOrder = 'SELECT order_id, client_order_id FROM fills ORDER BY timestamp DESC, trade_id DESC LIMIT 1';
  const fillsToLose = `SELECT trade_id FROM fills WHERE order_id = $1
    UNION SELECT trade_id FROM (SELECT trade_id FROM fills ORDER BY timestamp DESC, trade_id DESC LIMIT ${n}) newest`;
  if (engine === 'sqlite') {
    const db = new Database(file);
    try {
      db.pragma('busy_timeout = 5000');
      return db.transaction(() => {
        const order = db.prepare(newestOrder).get() as { order_id: string; client_order_id: string };
        const ids = (db.prepare(fillsToLose.replace('$1', '?')).all(order.order_id) as Array<{ trade_id: string }>).map(
          (r) => r.trade_id,
        );
        const del = db.prepare('DELETE FROM fills WHERE trade_id = ?');
        for (const id of ids) del.run(id);
        db.prepare('DELETE FROM orders WHERE id = ?').run(order.order_id);
        return { tradeIds: ids, clientOrderId: order.client_order_id };
      })();
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    const order = (await client.query<{ order_id: string; client_order_id: string }>(newestOrder)).rows[0]!;
    const ids = (await client.query<{ trade_id: string }>(fillsToLose, [order.order_id])).rows.map((r) => r.trade_id);
    await client.query('DELETE FROM fills WHERE trade_id = ANY($1)', [ids]);
    await client.query('DELETE FROM orders WHERE id = $1', [order.order_id]);
    await client.query('COMMIT');
    return { tradeIds: ids, clientOrderId: order.client_order_id };
  } finally {
    await client.end();
  }
}
