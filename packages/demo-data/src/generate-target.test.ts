// Behaviour of the Sofia-shaped target generator: deterministic per seed, sized as asked, and a book whose positions and balances follow from its fills.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { GENERATED_INITIAL_BALANCES, generateTarget } from './generate-target.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const scratch = mkdtempSync(join(tmpdir(), 'lb-generate-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let counter = 0;
const freshDir = (): string => join(scratch, `t${++counter}`);

const ORDER_BY: Record<string, string> = {
  orders: 'id',
  // Trade ids are numeric strings, as the venue's: order them as numbers.
  fills: 'CAST(trade_id AS INTEGER)',
  positions: 'account, symbol',
  balances: 'account, asset',
};

function readRows(file: string): Record<string, unknown[]> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return Object.fromEntries(
      Object.entries(ORDER_BY).map(([table, key]) => [
        table,
        db.prepare(`SELECT * FROM ${table} ORDER BY ${key}`).all(),
      ]),
    );
  } finally {
    db.close();
  }
}

/** A decimal string with exactly 8 decimals as a bigint of 1e-8 units. */
function units(text: string): bigint {
  expect(text).toMatch(/^-?\d+\.\d{8}$/);
  return BigInt(text.replace('.', ''));
}

/** Rounds a / b half away from zero: the rounding the book promises (written here independently). */
function roundDiv(a: bigint, b: bigint): bigint {
  const neg = a < 0n !== b < 0n;
  const absA = a < 0n ? -a : a;
  const absB = b < 0n ? -b : b;
  const q = (absA + absB / 2n) / absB;
  return neg ? -q : q;
}

describe('generateTarget', () => {
  it('writes the same bytes and the same rows twice for one seed', async () => {
    const a = await generateTarget(freshDir(), { sizeBytes: 512 * KIB, seed: 7 });
    const b = await generateTarget(freshDir(), { sizeBytes: 512 * KIB, seed: 7 });
    expect(b.files).toEqual(a.files);
    expect(b.rowCounts).toEqual(a.rowCounts);
    expect(b.secrets).toEqual(a.secrets);
    for (const file of a.files.filter((f) => f !== 'trading.db')) {
      expect(readFileSync(join(b.dir, file)).equals(readFileSync(join(a.dir, file))), file).toBe(true);
    }
    expect(readRows(join(b.dir, 'trading.db'))).toEqual(readRows(join(a.dir, 'trading.db')));
  });

  it('writes different content for different seeds', async () => {
    const a = await generateTarget(freshDir(), { sizeBytes: 256 * KIB, seed: 1 });
    const b = await generateTarget(freshDir(), { sizeBytes: 256 * KIB, seed: 2 });
    for (const file of ['.env', '.env.testnet', 'kill_switch_state.json', 'shadow_orders.jsonl', 'logs/audit.jsonl']) {
      expect(readFileSync(join(b.dir, file)).equals(readFileSync(join(a.dir, file))), file).toBe(false);
    }
    expect(Object.values(b.secrets)).not.toEqual(Object.values(a.secrets));
    const rowsA = readRows(join(a.dir, 'trading.db'));
    const rowsB = readRows(join(b.dir, 'trading.db'));
    expect(rowsB.orders).not.toEqual(rowsA.orders);
  });

  it.each([64 * KIB, 1 * MIB, 8 * MIB])(
    'comes within 25%% of sizeBytes=%i, the database taking most of it',
    async (size) => {
      const t = await generateTarget(freshDir(), { sizeBytes: size });
      const onDisk = t.files.reduce((sum, f) => sum + statSync(join(t.dir, f)).size, 0);
      expect(t.bytes).toBe(onDisk);
      expect(t.bytes).toBeGreaterThanOrEqual(size * 0.75);
      expect(t.bytes).toBeLessThanOrEqual(size * 1.25);
      const db = statSync(join(t.dir, 'trading.db')).size;
      expect(db / t.bytes).toBeGreaterThan(0.7);
      expect(db / t.bytes).toBeLessThan(0.95);
    },
  );

  it('leaves a self-contained SQLite file that passes its integrity check', async () => {
    const t = await generateTarget(freshDir(), { sizeBytes: 256 * KIB });
    const file = join(t.dir, 'trading.db');
    expect(existsSync(`${file}-wal`)).toBe(false);
    expect(existsSync(`${file}-shm`)).toBe(false);
    expect(existsSync(`${file}-journal`)).toBe(false);
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.pragma('journal_mode', { simple: true })).toBe('delete');
      for (const [table, n] of Object.entries(t.rowCounts)) {
        expect((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n, table).toBe(n);
      }
    } finally {
      db.close();
    }
  });

  it('keeps orders, positions and balances consistent with the fills', async () => {
    const t = await generateTarget(freshDir(), { sizeBytes: 512 * KIB, seed: 3 });
    const rows = readRows(join(t.dir, 'trading.db')) as {
      orders: Record<string, string | null>[];
      fills: Record<string, string>[];
      positions: Record<string, string>[];
      balances: Record<string, string>[];
    };
    expect(rows.orders.length).toBeGreaterThan(100);
    const statuses = new Set(rows.orders.map((o) => o.status));
    for (const s of ['FILLED', 'CANCELED', 'NEW']) expect(statuses).toContain(s);

    // Orders: the filled quantity is the sum of the order's fills, and the status agrees.
    const filledByOrder = new Map<string, bigint>();
    for (const f of rows.fills)
      filledByOrder.set(f.order_id!, (filledByOrder.get(f.order_id!) ?? 0n) + units(f.quantity!));
    for (const o of rows.orders) {
      expect(o.client_order_id).toMatch(/^SOFIA-[A-Z]+-\d{13}-[0-9a-f]{6}$/);
      const filled = filledByOrder.get(o.id!) ?? 0n;
      expect(units(o.filled_quantity!), o.id!).toBe(filled);
      if (o.status === 'FILLED') expect(filled).toBe(units(o.quantity!));
      if (o.status === 'NEW' || o.status === 'REJECTED' || o.status === 'EXPIRED') expect(filled).toBe(0n);
      if (o.status === 'PARTIAL') {
        expect(filled).toBeGreaterThan(0n);
        expect(filled).toBeLessThan(units(o.quantity!));
      }
    }

    // Positions by average cost, balances by cash flow, replayed from the fills in trade order.
    const pos = new Map<string, { qty: bigint; avg: bigint; pnl: bigint }>();
    const bal = new Map<string, bigint>(Object.entries(GENERATED_INITIAL_BALANCES).map(([a, v]) => [a, units(v)]));
    for (const f of rows.fills) {
      const qty = units(f.quantity!);
      const price = units(f.price!);
      const fee = units(f.fee!);
      const notional = (qty * price) / 100_000_000n;
      expect((qty * price) % 100_000_000n).toBe(0n);
      expect(fee).toBe(roundDiv(notional, 1000n));
      const p = pos.get(f.symbol!) ?? { qty: 0n, avg: 0n, pnl: 0n };
      const base = f.symbol!.split('/')[0]!;
      p.pnl -= fee; // realized P&L is net of fees
      if (f.side === 'buy') {
        p.avg = roundDiv(p.qty * p.avg + qty * price, p.qty + qty);
        p.qty += qty;
        bal.set('USDT', bal.get('USDT')! - notional - fee);
        bal.set(base, (bal.get(base) ?? 0n) + qty);
      } else {
        p.pnl += roundDiv((price - p.avg) * qty, 100_000_000n);
        p.qty -= qty;
        if (p.qty === 0n) p.avg = 0n;
        bal.set('USDT', bal.get('USDT')! + notional - fee);
        bal.set(base, (bal.get(base) ?? 0n) - qty);
      }
      expect(p.qty).toBeGreaterThanOrEqual(0n);
      expect(bal.get('USDT')!).toBeGreaterThanOrEqual(0n);
      pos.set(f.symbol!, p);
    }
    expect(rows.positions.map((r) => r.symbol).sort()).toEqual([...pos.keys()].sort());
    for (const r of rows.positions) {
      const p = pos.get(r.symbol!)!;
      expect({
        symbol: r.symbol,
        qty: units(r.quantity!),
        avg: units(r.avg_entry_price!),
        pnl: units(r.realized_pnl!),
      }).toEqual({ symbol: r.symbol, qty: p.qty, avg: p.avg, pnl: p.pnl });
    }
    expect(rows.balances.map((r) => r.asset).sort()).toEqual([...bal.keys()].sort());
    for (const r of rows.balances) expect([r.asset, units(r.total!)]).toEqual([r.asset, bal.get(r.asset!)]);
  });

  it("writes Sofia's state, reports, config and audit files, with the secrets it reports", async () => {
    const t = await generateTarget(freshDir(), { sizeBytes: 256 * KIB });
    expect(t.files).toEqual(
      expect.arrayContaining([
        '.env',
        '.env.testnet',
        'kill_switch_state.json',
        'shadow_orders.jsonl',
        'logs/audit.jsonl',
        'reports/daily/2025-08-28.json',
        'reports/eod/2025-08-28.json',
        'trading.db',
      ]),
    );
    const kill = JSON.parse(readFileSync(join(t.dir, 'kill_switch_state.json'), 'utf8'));
    expect(kill.state).toBe('OFF');
    expect(kill.events.length).toBeGreaterThanOrEqual(4);
    for (const e of kill.events) {
      expect(Object.keys(e).sort()).toEqual(['activated', 'metadata', 'reason', 'timestamp', 'trigger']);
    }
    expect(kill.last_updated).toBe(kill.events.at(-1).timestamp);

    const shadow = readFileSync(join(t.dir, 'shadow_orders.jsonl'), 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    for (const s of shadow) {
      expect(s).toMatchObject({ mode: 'shadow', executed: expect.any(Boolean), metadata: expect.any(Object) });
      expect(Object.keys(s)).toEqual(
        expect.arrayContaining(['order_id', 'symbol', 'side', 'type', 'quantity', 'price', 'timestamp']),
      );
    }
    for (const line of readFileSync(join(t.dir, 'logs/audit.jsonl'), 'utf8').trimEnd().split('\n')) {
      expect(JSON.parse(line)).toMatchObject({ timestamp: expect.any(String), event: expect.any(String) });
    }
    const daily = JSON.parse(readFileSync(join(t.dir, 'reports/daily/2025-08-28.json'), 'utf8'));
    expect(daily.date).toBe('2025-08-28');

    const env = readFileSync(join(t.dir, '.env'), 'utf8') + readFileSync(join(t.dir, '.env.testnet'), 'utf8');
    expect(Object.keys(t.secrets)).toEqual(
      expect.arrayContaining(['.env:EXCHANGE_API_KEY', '.env:EXCHANGE_API_SECRET']),
    );
    for (const value of Object.values(t.secrets)) {
      expect(value.length).toBeGreaterThanOrEqual(32);
      expect(env).toContain(value);
    }
  });

  it('derives every timestamp from now', async () => {
    const now = new Date('2026-01-15T12:00:00Z');
    const t = await generateTarget(freshDir(), { sizeBytes: 128 * KIB, now });
    const rows = readRows(join(t.dir, 'trading.db')) as { orders: { created_at: string; updated_at: string }[] };
    for (const o of rows.orders) {
      expect(o.updated_at <= now.toISOString()).toBe(true);
      expect(o.created_at >= '2025-12-16T12:00:00.000Z').toBe(true);
    }
    expect(t.files).toContain('reports/daily/2026-01-14.json');
  });

  it('refuses postgres without a URL', async () => {
    await expect(generateTarget(freshDir(), { db: 'postgres' })).rejects.toThrow(/postgresUrl/);
  });
});
