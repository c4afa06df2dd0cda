// `lifeboat reconcile` over files, as an operator runs it away from any target: a books file
// or a SQLite database against a snapshot file. The built command, so the SQLite integrity
// check runs on its worker thread as deployed.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SQLITE_TARGET_SCHEMA } from '@lifeboat/domain';
import { lifeboat, SIDES_AT, agreeingSides as sides } from '@lifeboat/testkit';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const earlier = (min: number) => new Date(Date.parse(SIDES_AT) - min * 60_000).toISOString();

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-reconcile-files-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const write = (name: string, value: unknown): string => {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
};

describe('lifeboat reconcile over files', () => {
  it('passes agreeing files, exit 0, and stores nothing without a target', async () => {
    const { books, snapshot } = sides();
    const run = await lifeboat([
      'reconcile',
      '--internal',
      write('books.json', books),
      '--exchange',
      write('snapshot.json', snapshot),
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.report).toMatchObject({ verdict: 'PASS', ready_to_trade: true });
    expect(result.reportKey).toBeNull();
  });

  it('backfills a lost order and its fill into <name>.corrected.json under --apply, leaving the file given alone', async () => {
    const { books, snapshot } = sides();
    const lost = {
      ...books,
      orders: books.orders.slice(0, 2),
      fills: books.fills.slice(0, 2),
      positions: [{ ...books.positions[0], quantity: '0.2', realized_pnl: '-0.02' }],
    };
    const file = write('lost.json', lost);
    const before = readFileSync(file, 'utf8');
    const exchange = write('snapshot-lost.json', snapshot);
    const failed = await lifeboat(['reconcile', '--internal', file, '--exchange', exchange, '--json']);
    expect(failed.code).toBe(1);
    const kinds = JSON.parse(failed.stdout).report.discrepancies.map((d: { kind: string }) => d.kind);
    expect(kinds).toEqual(expect.arrayContaining(['missing_fill', 'filled_quantity_mismatch', 'position_mismatch']));

    const applied = await lifeboat([
      'reconcile',
      '--internal',
      file,
      '--exchange',
      exchange,
      '--apply',
      '--sign-off',
      'ops',
      '--json',
    ]);
    expect(applied.code, applied.stderr).toBe(0);
    const result = JSON.parse(applied.stdout);
    expect(result.report.verdict).toBe('PASS_WITH_CORRECTIONS');
    expect(result.report.actions_taken.map((a: { kind: string; key: string }) => `${a.kind} ${a.key}`)).toEqual([
      'backfill_order c2',
      'backfill_fill t2',
      'rebuild_position main:BTC/USDT',
    ]);
    expect(result.correctedFile).toBe(join(dir, 'lost.corrected.json'));
    expect(readFileSync(file, 'utf8')).toBe(before);
    const corrected = await lifeboat(['reconcile', '--internal', result.correctedFile, '--exchange', exchange]);
    expect(corrected.code, corrected.stdout).toBe(0);
  });

  it('refuses a malformed snapshot with exit 2, naming the file, the record and the field', async () => {
    const { books, snapshot } = sides();
    const bad = { ...snapshot, trades: snapshot.trades.map((t, i) => (i === 1 ? { ...t, quantity: '-0.1' } : t)) };
    const file = write('bad-snapshot.json', bad);
    const run = await lifeboat(['reconcile', '--internal', write('books-ok.json', books), '--exchange', file]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(file);
    expect(run.stderr).toMatch(/trades\[1\]\.quantity/);
    expect(run.stdout).toBe('');
  });

  it('fails the integrity check of a damaged SQLite database, and still judges what it could read', async () => {
    const file = join(dir, 'damaged.db');
    const db = new Database(file);
    db.exec(SQLITE_TARGET_SCHEMA);
    const insert = db.prepare(
      `INSERT INTO orders (id, client_order_id, account, strategy, symbol, side, type, quantity, price, status,
        filled_quantity, mode, created_at, updated_at)
       VALUES (?, ?, 'main', 'T', 'BTC/USDT', 'buy', 'limit', '1', '100', 'CANCELED', '0', 'shadow', ?, ?)`,
    );
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) insert.run(`o${i}`, `shadow-${i}`, earlier(90), earlier(90));
    })();
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const root = (
      db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'orders_client_order_id'").get() as {
        rootpage: number;
      }
    ).rootpage;
    db.close();
    // The root page of an index scrambled: the table still reads (the books' queries never
    // use that index), and the engine's check sees the damage.
    const image = readFileSync(file);
    const at = (root - 1) * pageSize;
    for (let k = 12; k < pageSize; k++) image[at + k] = (image[at + k] as number) ^ 0x5a;
    writeFileSync(file, image);

    const { snapshot } = sides(0);
    const run = await lifeboat([
      'reconcile',
      '--internal',
      file,
      '--exchange',
      write('snapshot-empty.json', snapshot),
      '--json',
    ]);
    expect(existsSync(file)).toBe(true);
    expect(run.code, run.stderr).toBe(1);
    const report = JSON.parse(run.stdout).report;
    expect(report.checks.database_integrity).toBe('FAIL');
    expect(report.discrepancies[0]).toMatchObject({ kind: 'database_integrity_failed' });
    expect(report.ready_to_trade).toBe(false);
  });
});
