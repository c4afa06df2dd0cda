import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { timeMs } from './reconcile/context.js';
import { Dec } from './reconcile/decimal.js';
import { applyCorrections, reconcile } from './reconcile/index.js';
import type {
  BookFill,
  BookOrder,
  BookPosition,
  Books,
  DiscrepancyKind,
  ExchangeOrder,
  ExchangeSnapshot,
  ReconcileOutcome,
} from './schemas/reconcile.js';

const T0 = Date.parse('2025-06-01T11:00:00.000Z');
const COLLECTED = '2025-06-01T11:50:00.000Z';
const iso = (ms: number) => new Date(ms).toISOString();

/** Integer units of 10^-digits as decimal text, optionally padded to eight decimals as venues print. */
function units(n: number, digits: number, pad = false): string {
  const neg = n < 0;
  const s = String(Math.abs(n)).padStart(digits + 1, '0');
  let out = digits ? `${s.slice(0, -digits)}.${s.slice(-digits)}` : s;
  if (pad && digits < 8) out = `${out}${digits ? '' : '.'}${'0'.repeat(8 - digits)}`;
  return neg ? `-${out}` : out;
}

const plus = (a: string, b: string) => new Dec(a).plus(b).toFixed();

const SYMBOLS = ['BTC/USDT', 'ETH/USDT', 'SOL/USDC'] as const;
const TO_EXCHANGE: Record<BookOrder['status'], ExchangeOrder['status']> = {
  NEW: 'OPEN',
  PARTIAL: 'PARTIALLY_FILLED',
  FILLED: 'FILLED',
  CANCELED: 'CANCELED',
  REJECTED: 'REJECTED',
  EXPIRED: 'EXPIRED',
};

const orderSpec = fc.record({
  symbol: fc.constantFrom(...SYMBOLS),
  account: fc.constantFrom('main', 'main', 'alt'),
  side: fc.constantFrom<'buy' | 'sell'>('buy', 'sell'),
  /** In 1e-4 base units. */
  quantity: fc.integer({ min: 2, max: 5_000 }),
  /** In cents. */
  price: fc.integer({ min: 100, max: 200_000 }),
  status: fc.constantFrom<BookOrder['status']>('FILLED', 'FILLED', 'FILLED', 'PARTIAL', 'NEW', 'CANCELED'),
  splits: fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 3 }),
  jitter: fc.array(fc.integer({ min: -50, max: 50 }), { minLength: 3, maxLength: 3 }),
  fee: fc.constantFrom('quote', 'base', 'other', 'none'),
  feeUnits: fc.integer({ min: 0, max: 5_000 }),
});

const worldSpec = fc.record({
  orders: fc.array(orderSpec, { minLength: 1, maxLength: 12 }),
  /** How the books list their fills, and the venue its orders and trades (rotated: neither order). */
  bookFills: fc.constantFrom('in order', 'reversed', 'rotated', 'by symbol'),
  exchangeLists: fc.constantFrom('in order', 'reversed', 'rotated', 'by symbol'),
  /** The venue prints every amount with eight decimals. */
  padded: fc.boolean(),
});

interface World {
  books: Books;
  exchange: ExchangeSnapshot;
}

/** An independent average-cost model in decimal.js, the reference the books are written from. */
function referencePositions(orders: BookOrder[], fills: BookFill[]): BookPosition[] {
  const accountOf = new Map(orders.map((o) => [o.client_order_id, o.account]));
  const state = new Map<string, { account: string; symbol: string; q: Dec; avg: Dec; realized: Dec }>();
  const sorted = [...fills].sort(
    (a, b) =>
      Date.parse(a.timestamp) - Date.parse(b.timestamp) ||
      a.trade_id.length - b.trade_id.length ||
      (a.trade_id < b.trade_id ? -1 : 1),
  );
  for (const f of sorted) {
    const account = accountOf.get(f.client_order_id) ?? 'main';
    const key = `${account}:${f.symbol}`;
    let s = state.get(key);
    if (!s) {
      s = { account, symbol: f.symbol, q: new Dec(0), avg: new Dec(0), realized: new Dec(0) };
      state.set(key, s);
    }
    const qty = new Dec(f.quantity);
    const price = new Dec(f.price);
    const delta = f.side === 'buy' ? qty : qty.neg();
    if (s.q.isZero() || s.q.isPos() === delta.isPos()) {
      const total = s.q.plus(delta);
      s.avg = s.avg.times(s.q.abs()).plus(price.times(qty)).div(total.abs());
      s.q = total;
    } else {
      const closing = Dec.min(qty, s.q.abs());
      s.realized = s.realized.plus((s.q.isPos() ? price.minus(s.avg) : s.avg.minus(price)).times(closing));
      const after = s.q.plus(delta);
      if (after.isZero()) s.avg = new Dec(0);
      else if (after.isPos() !== s.q.isPos()) s.avg = price;
      s.q = after;
    }
    const [base, quote] = f.symbol.split('/');
    if (f.fee_asset === quote) s.realized = s.realized.minus(f.fee);
    else if (f.fee_asset === base) s.realized = s.realized.minus(new Dec(f.fee).times(price));
  }
  return [...state.values()].map((s) => ({
    account: s.account,
    symbol: s.symbol,
    quantity: s.q.toFixed(8),
    avg_entry_price: s.avg.toFixed(8),
    realized_pnl: s.realized.toFixed(8),
  }));
}

type WorldSpec = typeof worldSpec extends fc.Arbitrary<infer T> ? T : never;

function buildWorld(spec: WorldSpec): World {
  const orders: BookOrder[] = [];
  const fills: BookFill[] = [];
  spec.orders.forEach((o, k) => {
    const cid = `SOFIA-prop-${k}`;
    const created = T0 + k * 20_000;
    const wanted = o.status === 'FILLED' ? o.quantity : o.status === 'NEW' ? 0 : Math.floor(o.quantity / 2);
    // Split `wanted` in proportion to the splits, the last fill taking the rest.
    const total = o.splits.reduce((a, b) => a + b, 0);
    const parts: number[] = [];
    let left = wanted;
    o.splits.forEach((p, i) => {
      const part = i === o.splits.length - 1 ? left : Math.floor((wanted * p) / total);
      if (part > 0) parts.push(part);
      left -= part;
    });
    const [base, quote] = o.symbol.split('/') as [string, string];
    parts.forEach((part, i) => {
      const price = Math.max(1, o.price + o.jitter[i]!);
      fills.push({
        trade_id: String(1000 + k * 10 + i),
        client_order_id: cid,
        symbol: o.symbol,
        side: o.side,
        quantity: units(part, 4),
        price: units(price, 2),
        fee: o.fee === 'none' ? '0' : units(o.feeUnits, o.fee === 'base' ? 8 : 4),
        fee_asset: o.fee === 'quote' || o.fee === 'none' ? quote : o.fee === 'base' ? base : 'BNB',
        timestamp: iso(created + (i + 1) * 1000),
      });
    });
    const filled = parts.reduce((a, b) => a + b, 0);
    const status = o.status === 'PARTIAL' && filled === 0 ? 'NEW' : o.status;
    orders.push({
      client_order_id: cid,
      exchange_order_id: `E${k}`,
      account: o.account,
      symbol: o.symbol,
      side: o.side,
      type: 'limit',
      quantity: units(o.quantity, 4),
      price: units(o.price, 2),
      status,
      filled_quantity: units(filled, 4),
      created_at: iso(created),
      updated_at: iso(created + (parts.length + 1) * 1000),
    });
  });

  const positions = referencePositions(orders, fills);
  const pad = (s: string) => (spec.padded ? new Dec(s).toFixed(Math.max(8, s.split('.')[1]?.length ?? 0)) : s);
  return {
    books: {
      format: 'lifeboat.books/v1',
      collected_at: COLLECTED,
      orders,
      fills: layout(fills, spec.bookFills),
      positions,
      balances: [],
    },
    exchange: {
      format: 'lifeboat.exchange-snapshot/v1',
      venue: 'prop',
      collected_at: COLLECTED,
      complete: { orders: true, trades: true, positions: true, balances: true },
      orders: layout(orders, spec.exchangeLists).map((o) => ({
        exchange_order_id: o.exchange_order_id!,
        client_order_id: o.client_order_id,
        symbol: o.symbol,
        side: o.side,
        type: o.type,
        quantity: pad(o.quantity),
        price: o.price === null ? null : pad(o.price),
        status: TO_EXCHANGE[o.status],
        filled_quantity: pad(o.filled_quantity),
        updated_at: o.updated_at,
      })),
      trades: layout(fills, spec.exchangeLists).map((f) => ({
        ...f,
        quantity: pad(f.quantity),
        price: pad(f.price),
        fee: pad(f.fee),
        exchange_order_id: `E${f.client_order_id.split('-').at(-1)}`,
      })),
      positions: positions.map((p) => ({ account: p.account, symbol: p.symbol, quantity: p.quantity })),
      balances: [],
    },
  };
}

const clone = <T>(x: T): T => structuredClone(x);

function layout<T extends { symbol: string }>(rows: T[], how: string): T[] {
  if (how === 'reversed') return [...rows].reverse();
  if (how === 'by symbol') return [...rows].sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0));
  if (how === 'rotated') return [...rows.slice(rows.length >> 1), ...rows.slice(0, rows.length >> 1)];
  return rows;
}

function check(world: World): ReconcileOutcome {
  const out = reconcile({ ...world, integrity: 'not-applicable' });
  const { BREAK, UNRESOLVED } = out.stats.items_by_status;
  // Every BREAK or UNRESOLVED item carries a discrepancy, and nothing else does.
  expect(out.discrepancies.length >= BREAK + UNRESOLVED).toBe(true);
  expect(out.discrepancies.length > 0).toBe(BREAK + UNRESOLVED > 0);
  return out;
}

const RUNS = { numRuns: 150 };

describe('reconciliation properties', () => {
  it('passes every check on books and a snapshot that tell the same story', () => {
    fc.assert(
      fc.property(worldSpec, (spec) => {
        const out = check(buildWorld(spec));
        expect(out.discrepancies).toEqual([]);
        expect(Object.values(out.checks)).toEqual(['PASS', 'PASS', 'PASS', 'PASS']);
        expect(out.corrections).toEqual({
          backfillOrders: [],
          backfillFills: [],
          orderUpdates: [],
          positions: [],
          unmatched: [],
        });
        // The fixed-point replay agrees with the decimal.js model to far better than the tolerance.
        for (const item of out.items.filter((i) => i.check === 'pnl_accuracy')) {
          expect(new Dec(item.difference!).abs().lte('0.00000001')).toBe(true);
        }
      }),
      RUNS,
    );
  });

  type Injection = (w: World, pick: number) => boolean;
  const nth = <T>(list: T[], pick: number): T | undefined => list[pick % Math.max(1, list.length)];
  const isOpen = (o: BookOrder) => o.status === 'NEW' || o.status === 'PARTIAL';

  const injections: Array<[string, DiscrepancyKind, Injection]> = [
    [
      'drop an internal fill',
      'missing_fill',
      (w, pick) => {
        if (!w.books.fills.length) return false;
        w.books.fills.splice(pick % w.books.fills.length, 1);
        return true;
      },
    ],
    [
      'add an internal fill the exchange never made',
      'unknown_fill',
      (w, pick) => {
        const o = nth(w.books.orders, pick)!;
        w.books.fills.push({
          trade_id: '999999',
          client_order_id: o.client_order_id,
          symbol: o.symbol,
          side: o.side,
          quantity: '0.0001',
          price: o.price!,
          fee: '0',
          fee_asset: 'USDT',
          timestamp: o.updated_at,
        });
        return true;
      },
    ],
    [
      'move a position beyond the tolerance',
      'position_mismatch',
      (w, pick) => {
        const p = nth(w.books.positions, pick);
        if (!p) return false;
        p.quantity = plus(p.quantity, '0.00000002');
        return true;
      },
    ],
    [
      'remove a non-zero exchange position',
      'position_missing_exchange',
      (w, pick) => {
        const open = w.exchange.positions.filter((p) => !new Dec(p.quantity).isZero());
        const p = nth(open, pick);
        if (!p) return false;
        w.exchange.positions.splice(w.exchange.positions.indexOf(p), 1);
        return true;
      },
    ],
    [
      'add an open exchange order unknown internally',
      'orphan_exchange_order',
      (w) => {
        w.exchange.orders.push({
          exchange_order_id: 'E-ghost',
          client_order_id: 'manual-1',
          symbol: 'BTC/USDT',
          side: 'buy',
          type: 'limit',
          quantity: '1',
          price: '10',
          status: 'OPEN',
          filled_quantity: '0',
          updated_at: w.books.orders[0]!.updated_at,
        });
        return true;
      },
    ],
    [
      'use a client id twice internally',
      'duplicate_client_order_id',
      (w, pick) => {
        const o = nth(w.books.orders, pick)!;
        w.books.orders.push({ ...o, exchange_order_id: 'E-copy' });
        return true;
      },
    ],
    [
      'record a realized P&L beyond the tolerance',
      'pnl_mismatch',
      (w, pick) => {
        const p = nth(w.books.positions, pick);
        if (!p) return false;
        p.realized_pnl = plus(p.realized_pnl, '0.01000001');
        return true;
      },
    ],
    [
      'finish on the exchange an order open internally',
      'open_internal_not_on_exchange',
      (w, pick) => {
        const o = nth(w.books.orders.filter(isOpen), pick);
        if (!o) return false;
        w.exchange.orders.find((e) => e.client_order_id === o.client_order_id)!.status = 'CANCELED';
        return true;
      },
    ],
    [
      'leave an open order untouched for two hours',
      'stale_open_order',
      (w, pick) => {
        const o = nth(w.books.orders.filter(isOpen), pick);
        if (!o) return false;
        o.updated_at = iso(Date.parse(COLLECTED) - 2 * 3_600_000);
        w.exchange.orders.find((e) => e.client_order_id === o.client_order_id)!.updated_at = o.updated_at;
        return true;
      },
    ],
    [
      'record a trade with another quantity',
      'filled_quantity_mismatch',
      (w, pick) => {
        const t = nth(w.exchange.trades, pick);
        if (!t) return false;
        t.quantity = plus(t.quantity, '0.00000002');
        return true;
      },
    ],
    [
      'mark a snapshot part incomplete',
      'snapshot_incomplete',
      (w, pick) => {
        w.exchange.complete[(['orders', 'trades', 'positions'] as const)[pick % 3]!] = false;
        return true;
      },
    ],
  ];

  it.each(injections)('fails when we %s, reporting %s', (_, kind, inject) => {
    fc.assert(
      fc.property(worldSpec, fc.nat(), (spec, pick) => {
        const world = clone(buildWorld(spec));
        fc.pre(inject(world, pick));
        const out = check(world);
        expect(Object.values(out.checks)).toContain('FAIL');
        expect(out.discrepancies.map((d) => d.kind)).toContain(kind);
      }),
      { numRuns: 60 },
    );
  });

  it('reads ISO-8601 times to the same millisecond as Date.parse', () => {
    const when = fc.date({
      min: new Date('1970-01-01T00:00:00Z'),
      max: new Date('2199-12-31T23:59:59Z'),
      noInvalidDate: true,
    });
    const zone = fc.oneof(
      fc.constant('Z'),
      fc
        .tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 14 }), fc.constantFrom(0, 30, 45))
        .map(([sign, h, m]) => `${sign}${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`),
    );
    const fraction = fc.constantFrom('', '.5', '.123', '.123456', '.999999999');
    fc.assert(
      fc.property(when, fraction, zone, (d, frac, z) => {
        const text = `${d.toISOString().slice(0, 19)}${frac}${z}`;
        expect(timeMs(text)).toBe(Date.parse(text));
      }),
      { numRuns: 300 },
    );
  });

  it('restores a passing reconciliation from books that lost their latest fills, and a second correction adds nothing', () => {
    fc.assert(
      fc.property(worldSpec, fc.integer({ min: 1, max: 5 }), (spec, lost) => {
        const world = buildWorld(spec);
        // The books as a backup taken before the last `lost` fills would have them.
        const byTime = [...world.books.fills].sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
        const kept = new Set(byTime.slice(0, Math.max(0, byTime.length - lost)).map((f) => f.trade_id));
        const fills = world.books.fills.filter((f) => kept.has(f.trade_id));
        const orders = world.books.orders.map((o) => {
          const filled = fills
            .filter((f) => f.client_order_id === o.client_order_id)
            .reduce((sum, f) => sum.plus(f.quantity), new Dec(0));
          if (filled.eq(o.filled_quantity)) return o;
          const status: BookOrder['status'] = filled.isZero() ? 'NEW' : 'PARTIAL';
          return { ...o, status, filled_quantity: filled.toFixed() };
        });
        const books: Books = { ...world.books, orders, fills, positions: referencePositions(orders, fills) };

        const first = check({ books, exchange: world.exchange });
        expect(first.corrections.unmatched).toEqual([]);
        const corrected = applyCorrections(books, first.corrections);
        const second = check({ books: corrected.books, exchange: world.exchange });
        expect(second.discrepancies).toEqual([]);
        expect(second.corrections.backfillFills).toEqual([]);
        expect(applyCorrections(corrected.books, first.corrections).actions).toEqual([]);
      }),
      RUNS,
    );
  });
});
