// A restore rolled forward from the continuous stream: the backup, then the log frames and
// the shadow-order lines shipped after it — to the newest point shipped, to a point in time,
// or not at all (--no-stream).
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RestoreResult } from '@lifeboat/domain';
import { type CliRun, lifeboat } from '@lifeboat/testkit';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let dir: string;
let config: string;
let target: string;
let backupCount: number;
let middle: { at: string; count: number };
let final: number;

function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(-2000)}`);
  }
}

const orders = (file: string) => {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM orders').get() as { n: number }).n;
  } finally {
    db.close();
  }
};

/** Orders a trading system would have placed: copies of the newest with new ids, one transaction each. */
function trade(n: number, tag: string): void {
  const db = new Database(join(target, 'trading.db'));
  try {
    db.pragma('journal_mode = WAL');
    const copy = db.prepare(
      `INSERT INTO orders (id, client_order_id, exchange_order_id, account, strategy, symbol, side, type, quantity, price, status, filled_quantity, mode, created_at, updated_at)
       SELECT ?, ?, NULL, account, strategy, symbol, side, type, quantity, price, 'NEW', '0', mode, ?, ? FROM orders ORDER BY created_at DESC LIMIT 1`,
    );
    for (let i = 0; i < n; i++) {
      const now = new Date().toISOString();
      copy.run(`${tag}-${i}`, `${tag}-c${i}`, now, now);
      appendFileSync(join(target, 'shadow_orders.jsonl'), `${JSON.stringify({ id: `${tag}-${i}`, at: now })}\n`);
    }
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-roll-forward-'));
  // Nothing listens on this port: reconciliation fails, which is not what is tested here.
  const init = await lifeboat(['demo', 'init', join(dir, 'demo'), '--size', '256KiB', '--port', '9', '--json']);
  expect(init.code, init.stderr).toBe(0);
  config = json<{ config: string }>(init).config;
  target = join(dir, 'demo', 'target');
  trade(1, 'wal'); // the target runs in WAL mode, as the paper-trader leaves it
  const backup = await lifeboat(['backup', '--config', config, '--json']);
  expect(backup.code, backup.stderr).toBe(0);
  backupCount = orders(join(target, 'trading.db'));

  // Two rounds of trading after the backup, each shipped.
  trade(40, 'first');
  let ship = await lifeboat(['ship', '--once', '--config', config, '--json']);
  expect(ship.code, ship.stderr).toBe(0);
  middle = { at: new Date().toISOString(), count: orders(join(target, 'trading.db')) };
  await new Promise((r) => setTimeout(r, 1100));
  trade(40, 'second');
  ship = await lifeboat(['ship', '--once', '--config', config, '--json']);
  expect(ship.code, ship.stderr).toBe(0);
  final = orders(join(target, 'trading.db'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function restoreTo(name: string, ...extra: string[]): Promise<RestoreResult & { sandbox: string }> {
  const sandbox = join(dir, name);
  const run = await lifeboat([
    'restore',
    '--config',
    config,
    '--scenario',
    'server-loss',
    '--to',
    `sandbox:${sandbox}`,
    '--json',
    ...extra,
  ]);
  const result = json<RestoreResult>(run);
  expect(result.outcome, JSON.stringify(result.steps.filter((s) => s.status === 'FAILED'))).toBe('COMPLETED');
  return { ...result, sandbox };
}

describe('restore rolled forward from the stream', () => {
  it('to the newest point shipped: every order and shadow line written after the backup', async () => {
    const r = await restoreTo('latest');
    expect(final).toBe(backupCount + 80);
    const step = r.steps.find((s) => s.name === 'roll-forward');
    expect(orders(join(r.sandbox, 'trading.db')), JSON.stringify(step)).toBe(final);
    expect(step?.status).toBe('COMPLETED');
    expect(step?.outcome).toMatch(/^rolled forward: database to .*; 1 append-only file/);
    const lines = (await import('node:fs')).readFileSync(join(r.sandbox, 'shadow_orders.jsonl'), 'utf8');
    expect(lines).toBe((await import('node:fs')).readFileSync(join(target, 'shadow_orders.jsonl'), 'utf8'));
  });

  it('to a point in time between the two rounds: the first round only', async () => {
    const r = await restoreTo('middle', '--point-in-time', middle.at);
    expect(orders(join(r.sandbox, 'trading.db'))).toBe(middle.count);
  });

  it('--no-stream: the backup alone', async () => {
    const r = await restoreTo('backup-only', '--no-stream');
    expect(orders(join(r.sandbox, 'trading.db'))).toBe(backupCount);
    expect(r.steps.find((s) => s.name === 'roll-forward')?.status).toBe('SKIPPED');
  });
});
