import { describe, expect, it } from 'vitest';
import { LifeboatError } from './errors.js';
import { timeMs } from './reconcile/context.js';
import {
  applyCorrections,
  buildReport,
  formatReportSummary,
  type ReconcileInput,
  reconcile,
} from './reconcile/index.js';
import { pairById } from './reconcile/pairing.js';
import { strictlyMonotonic } from './reconcile/string-index.js';
import {
  type BookFill,
  type BookOrder,
  type BookPosition,
  Books,
  type Discrepancy,
  type ExchangeOrder,
  type ExchangePosition,
  ExchangeSnapshot,
  type ExchangeTrade,
  formatIssuePath,
  parseBooks,
  parseExchangeSnapshot,
  type ReconcileOutcome,
} from './schemas/reconcile.js';

// biome-ignore lint/suspicious/noExplicitAny: the cases spoil parsed JSON in every way a file can be wrong
type RawJson = Record<string, any>;

const COLLECTED = '2025-06-01T12:00:00.000Z';
const COLLECTED_MS = Date.parse(COLLECTED);
/** An ISO time `ms` before the snapshot. */
const before = (ms: number): string => new Date(COLLECTED_MS - ms).toISOString();
const MIN = 60_000;

function order(o: Partial<BookOrder> & Pick<BookOrder, 'client_order_id'>): BookOrder {
  return {
    exchange_order_id: `x-${o.client_order_id}`,
    account: 'main',
    symbol: 'BTC/USDT',
    side: 'buy',
    type: 'limit',
    quantity: '1',
    price: '100',
    status: 'FILLED',
    filled_quantity: o.quantity ?? '1',
    created_at: before(30 * MIN),
    updated_at: before(20 * MIN),
    ...o,
  };
}

function fill(f: Partial<BookFill> & Pick<BookFill, 'trade_id' | 'client_order_id'>): BookFill {
  return {
    symbol: 'BTC/USDT',
    side: 'buy',
    quantity: '1',
    price: '100',
    fee: '0',
    fee_asset: 'USDT',
    timestamp: before(20 * MIN),
    ...f,
  };
}

const EXCHANGE_STATUS: Record<BookOrder['status'], ExchangeOrder['status']> = {
  NEW: 'OPEN',
  PARTIAL: 'PARTIALLY_FILLED',
  FILLED: 'FILLED',
  CANCELED: 'CANCELED',
  REJECTED: 'REJECTED',
  EXPIRED: 'EXPIRED',
};

/** The exchange's view of an internal order, the same in every respect. */
function onExchange(o: BookOrder, over: Partial<ExchangeOrder> = {}): ExchangeOrder {
  return {
    exchange_order_id: o.exchange_order_id ?? `x-${o.client_order_id}`,
    client_order_id: o.client_order_id,
    symbol: o.symbol,
    side: o.side,
    type: o.type,
    quantity: o.quantity,
    price: o.price,
    status: EXCHANGE_STATUS[o.status],
    filled_quantity: o.filled_quantity,
    updated_at: o.updated_at,
    ...over,
  };
}

function asTrade(f: BookFill, over: Partial<ExchangeTrade> = {}): ExchangeTrade {
  return {
    trade_id: f.trade_id,
    exchange_order_id: `x-${f.client_order_id}`,
    client_order_id: f.client_order_id,
    symbol: f.symbol,
    side: f.side,
    quantity: f.quantity,
    price: f.price,
    fee: f.fee,
    fee_asset: f.fee_asset,
    timestamp: f.timestamp,
    ...over,
  };
}

function position(p: Partial<BookPosition> & Pick<BookPosition, 'quantity'>): BookPosition {
  return { account: 'main', symbol: 'BTC/USDT', avg_entry_price: '0', realized_pnl: '0', ...p };
}

interface World {
  orders?: BookOrder[];
  fills?: BookFill[];
  positions?: BookPosition[];
  exchangeOrders?: ExchangeOrder[];
  trades?: ExchangeTrade[];
  exchangePositions?: ExchangePosition[];
  complete?: Partial<ExchangeSnapshot['complete']>;
  windowStart?: string;
}

/** Books and snapshot; the exchange side defaults to a faithful copy of the books. */
function world(w: World): { books: Books; exchange: ExchangeSnapshot } {
  const orders = w.orders ?? [];
  const fills = w.fills ?? [];
  const positions = w.positions ?? [];
  return {
    books: { format: 'lifeboat.books/v1', collected_at: COLLECTED, orders, fills, positions, balances: [] },
    exchange: {
      format: 'lifeboat.exchange-snapshot/v1',
      venue: 'test',
      collected_at: COLLECTED,
      complete: { orders: true, trades: true, positions: true, balances: true, ...w.complete },
      ...(w.windowStart ? { window_start: w.windowStart } : {}),
      orders: w.exchangeOrders ?? orders.map((o) => onExchange(o)),
      trades: w.trades ?? fills.map((f) => asTrade(f)),
      positions:
        w.exchangePositions ?? positions.map((p) => ({ account: p.account, symbol: p.symbol, quantity: p.quantity })),
      balances: [],
    },
  };
}

function run(w: World, extra: Partial<ReconcileInput> = {}): ReconcileOutcome {
  const outcome = reconcile({ ...world(w), integrity: 'not-applicable', ...extra });
  expectEveryBreakExplained(outcome);
  return outcome;
}

function expectEveryBreakExplained(outcome: ReconcileOutcome): void {
  const { BREAK, UNRESOLVED } = outcome.stats.items_by_status;
  expect(outcome.discrepancies.length >= BREAK + UNRESOLVED).toBe(true);
  expect(outcome.discrepancies.length > 0).toBe(BREAK + UNRESOLVED > 0);
  for (const check of Object.keys(outcome.checks) as Array<keyof typeof outcome.checks>) {
    const c = outcome.stats.items_by_check[check];
    expect(outcome.checks[check]).toBe(c.BREAK + c.UNRESOLVED === 0 ? 'PASS' : 'FAIL');
  }
}

const kinds = (o: ReconcileOutcome): string[] => o.discrepancies.map((d) => d.kind);
const find = (o: ReconcileOutcome, kind: Discrepancy['kind']): Discrepancy | undefined =>
  o.discrepancies.find((d) => d.kind === kind);
const allPass = { database_integrity: 'PASS', position_match: 'PASS', order_consistency: 'PASS', pnl_accuracy: 'PASS' };

/** One order bought in two fills (0.1 at 100, 0.2 at 110), flat fees, and the position it makes. */
function twoFills(): World {
  const o = order({ client_order_id: 'o1', quantity: '0.3', filled_quantity: '0.3' });
  return {
    orders: [o],
    fills: [
      fill({ trade_id: 't1', client_order_id: 'o1', quantity: '0.1', price: '100', timestamp: before(25 * MIN) }),
      fill({ trade_id: 't2', client_order_id: 'o1', quantity: '0.2', price: '110', timestamp: before(21 * MIN) }),
    ],
    positions: [position({ quantity: '0.30000000', avg_entry_price: '106.66666667' })],
  };
}

describe('parsing the books and the exchange snapshot', () => {
  const goodBooks = () => JSON.parse(JSON.stringify(world(twoFills()).books));
  const goodSnapshot = () => JSON.parse(JSON.stringify(world(twoFills()).exchange));

  it('accepts a books file and fills in the default account', () => {
    const raw = goodBooks();
    delete raw.orders[0].account;
    const books = parseBooks(raw, 'books.json');
    expect(books.orders[0]?.account).toBe('main');
    expect(raw.orders[0].account).toBeUndefined();
    expect(parseExchangeSnapshot(goodSnapshot(), 'exchange.json').trades).toHaveLength(2);
  });

  it('accepts negative position quantities and realized P&L', () => {
    const raw = goodBooks();
    raw.positions[0].quantity = '-0.5';
    raw.positions[0].realized_pnl = '-12.25';
    expect(parseBooks(raw, 'books.json').positions[0]?.quantity).toBe('-0.5');
  });

  const bookCases: Array<[string, (b: RawJson) => void, string]> = [
    ['wrong format tag', (b) => (b.format = 'lifeboat.books/v2'), 'books.json: format: must be "lifeboat.books/v1"'],
    [
      'negative quantity',
      (b) => (b.orders[0].quantity = '-1'),
      'books.json: orders[0].quantity: must be a non-negative decimal string',
    ],
    [
      'unknown status',
      (b) => (b.orders[0].status = 'OPEN'),
      'books.json: orders[0].status: must be one of NEW, PARTIAL, FILLED, CANCELED, REJECTED, EXPIRED',
    ],
    ['missing field', (b) => delete b.fills[1].price, 'books.json: fills[1].price: is required'],
    ['missing field in the first fill', (b) => delete b.fills[0].symbol, 'books.json: fills[0].symbol: is required'],
    [
      'malformed decimal',
      (b) => (b.fills[1].quantity = '1e-8'),
      'books.json: fills[1].quantity: must be a non-negative decimal string',
    ],
    [
      'number for a decimal',
      (b) => (b.fills[0].fee = 0.1),
      'books.json: fills[0].fee: must be a non-negative decimal string',
    ],
    [
      'bad time',
      (b) => (b.orders[0].updated_at = '2025-06-01 12:00:00'),
      'books.json: orders[0].updated_at: must be an ISO-8601 time with a zone, e.g. 2025-01-01T00:00:00Z',
    ],
    [
      'bad symbol',
      (b) => (b.fills[0].symbol = 'BTCUSDT'),
      'books.json: fills[0].symbol: must be a symbol BASE/QUOTE, e.g. BTC/USDT',
    ],
    [
      'malformed P&L',
      (b) => (b.positions[0].realized_pnl = '1.2.3'),
      'books.json: positions[0].realized_pnl: must be a decimal string',
    ],
    ['list not an array', (b) => (b.fills = {}), 'books.json: fills: must be an array'],
    ['record not an object', (b) => (b.orders[0] = 'o1'), 'books.json: orders[0]: must be an object'],
    [
      'duplicate position',
      (b) => b.positions.push({ ...b.positions[0] }),
      'books.json: positions[1]: duplicate of positions[0] (main:BTC/USDT)',
    ],
  ];

  it.each(bookCases)('rejects a books file with a %s, naming file, record and field', (_, spoil, message) => {
    const raw = goodBooks();
    spoil(raw);
    let error: unknown;
    try {
      parseBooks(raw, 'books.json');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(LifeboatError);
    expect((error as LifeboatError).code).toBe('INVALID_REQUEST');
    expect((error as LifeboatError).message).toBe(message);
  });

  const snapshotCases: Array<[string, (s: RawJson) => void, string]> = [
    [
      'wrong format tag',
      (s) => (s.format = 'lifeboat.books/v1'),
      'exchange.json: format: must be "lifeboat.exchange-snapshot/v1"',
    ],
    [
      'completeness not a boolean',
      (s) => (s.complete.trades = 'yes'),
      'exchange.json: complete.trades: must be true or false',
    ],
    [
      'internal status word',
      (s) => (s.orders[0].status = 'NEW'),
      'exchange.json: orders[0].status: must be one of OPEN, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED',
    ],
    ['missing trade price', (s) => delete s.trades[1].price, 'exchange.json: trades[1].price: is required'],
    [
      'missing time of the first trade',
      (s) => delete s.trades[0].timestamp,
      'exchange.json: trades[0].timestamp: is required',
    ],
    [
      'missing exchange order id',
      (s) => delete s.trades[0].exchange_order_id,
      'exchange.json: trades[0].exchange_order_id: is required',
    ],
    [
      'bad window start',
      (s) => (s.window_start = 'yesterday'),
      'exchange.json: window_start: must be an ISO-8601 time with a zone, e.g. 2025-01-01T00:00:00Z',
    ],
    [
      'malformed position',
      (s) => (s.positions[0].quantity = '--1'),
      'exchange.json: positions[0].quantity: must be a decimal string',
    ],
  ];

  it.each(snapshotCases)('rejects a snapshot with a %s, naming file, record and field', (_, spoil, message) => {
    const raw = goodSnapshot();
    spoil(raw);
    expect(() => parseExchangeSnapshot(raw, 'exchange.json')).toThrow(message);
  });

  it('gives the same message as the zod schemas, which stay the documented types', () => {
    const first = (schema: typeof Books | typeof ExchangeSnapshot, value: unknown, source: string) => {
      const result = schema.safeParse(value);
      if (result.success) return 'accepted';
      const issue = result.error.issues[0]!;
      return `${source}: ${formatIssuePath(issue.path)}: ${issue.message}`;
    };
    for (const [, spoil, message] of bookCases) {
      const raw = goodBooks();
      spoil(raw);
      expect(first(Books, raw, 'books.json')).toBe(message);
    }
    for (const [, spoil, message] of snapshotCases) {
      const raw = goodSnapshot();
      spoil(raw);
      expect(first(ExchangeSnapshot, raw, 'exchange.json')).toBe(message);
    }
    expect(first(Books, goodBooks(), 'books.json')).toBe('accepted');
  });
});

describe('reconciling', () => {
  it('passes every check on consistent books, listing only positions and P&L among matched items', () => {
    const out = run(twoFills());
    expect(out.checks).toEqual(allPass);
    expect(out.discrepancies).toEqual([]);
    expect(out.items.map((i) => `${i.check} ${i.key} ${i.status}`)).toEqual([
      'database_integrity database MATCHED',
      'position_match main:BTC/USDT MATCHED',
      'pnl_accuracy BTC/USDT MATCHED',
    ]);
    expect(out.stats.items_by_check.order_consistency.MATCHED).toBe(3);
    expect(out.stats).toMatchObject({
      orders_compared: 1,
      fills_compared: 2,
      trades_compared: 2,
      positions_compared: 1,
    });
    expect(out.corrections).toEqual({
      backfillOrders: [],
      backfillFills: [],
      orderUpdates: [],
      positions: [],
      unmatched: [],
    });
  });

  it('lists matched orders and fills too when asked for all items', () => {
    const out = run(twoFills(), { settings: { items: 'all' } });
    expect(out.items.filter((i) => i.check === 'order_consistency').map((i) => i.key)).toEqual(['o1', 't1', 't2']);
  });

  it('adds 0.1 and 0.2 exactly: fills of 0.1 and 0.2 against a position of 0.3 match', () => {
    const w = twoFills();
    const out = run({ ...w, exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity: '0.3' }] });
    expect(out.checks).toEqual(allPass);
    const item = out.items.find((i) => i.check === 'position_match');
    expect(item).toMatchObject({ status: 'MATCHED', internal: '0.30000000', exchange: '0.3', difference: '0' });
  });

  describe('database integrity', () => {
    it('is MATCHED with no database', () => {
      expect(run(twoFills()).items[0]).toEqual({
        check: 'database_integrity',
        key: 'database',
        status: 'MATCHED',
        rule: 'no database',
      });
    });

    it('is UNRESOLVED when the check could not run', () => {
      const out = run(twoFills(), { integrity: null });
      expect(out.checks.database_integrity).toBe('FAIL');
      expect(out.items[0]?.status).toBe('UNRESOLVED');
      expect(kinds(out)).toEqual(['database_integrity_failed']);
    });

    it('breaks when the engine reports corruption', () => {
      const out = run(twoFills(), { integrity: { ok: false, detail: 'page 12: btree corrupt' } });
      expect(out.items[0]?.status).toBe('BREAK');
      expect(find(out, 'database_integrity_failed')?.detail).toContain('btree corrupt');
      expect(run(twoFills(), { integrity: { ok: true, detail: 'ok' } }).checks.database_integrity).toBe('PASS');
    });
  });

  describe('positions', () => {
    const withExchange = (quantity: string, settings = {}) =>
      run(
        {
          positions: [position({ quantity: '1.00000000' })],
          exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity }],
        },
        { settings },
      );

    it('passes exactly at the tolerance and breaks one unit beyond it', () => {
      expect(withExchange('1.00000001').items[1]).toMatchObject({
        status: 'WITHIN_TOLERANCE',
        difference: '-0.00000001',
      });
      expect(withExchange('0.99999999').checks.position_match).toBe('PASS');
      const beyond = withExchange('1.00000002');
      expect(beyond.checks.position_match).toBe('FAIL');
      expect(find(beyond, 'position_mismatch')).toMatchObject({
        symbol: 'BTC/USDT',
        internal: '1.00000000',
        exchange: '1.00000002',
        difference: '-0.00000002',
      });
    });

    it('uses a per-symbol tolerance in place of the default', () => {
      const settings = { quantityTolerance: { perSymbol: { 'BTC/USDT': '0.001' } } };
      expect(withExchange('1.001', settings).items[1]?.status).toBe('WITHIN_TOLERANCE');
      expect(withExchange('1.0010001', settings).items[1]?.status).toBe('BREAK');
    });

    it('does not take a missing exchange position for a flat one', () => {
      const out = run({ positions: [position({ quantity: '0.5' })], exchangePositions: [] });
      expect(kinds(out)).toContain('position_missing_exchange');
      const flat = run({ positions: [position({ quantity: '0.00000000' })], exchangePositions: [] });
      expect(flat.items[1]).toMatchObject({ status: 'MATCHED', rule: 'flat internally, none on the exchange' });
    });

    it('breaks on an exchange position the books do not have, unless it is flat', () => {
      const out = run({ exchangePositions: [{ account: 'main', symbol: 'ETH/USDT', quantity: '-2' }] });
      expect(find(out, 'position_missing_internal')).toMatchObject({ symbol: 'ETH/USDT', exchange: '-2' });
      expect(run({ exchangePositions: [{ account: 'main', symbol: 'ETH/USDT', quantity: '0' }] }).checks).toEqual(
        allPass,
      );
    });

    describe('while trading goes on', () => {
      // An order filled 2 s before the snapshot on both sides, and one the books recorded
      // after the venue gave its positions (1 s after collected_at).
      const o1 = order({ client_order_id: 'o1', quantity: '0.5', updated_at: before(2000) });
      const f1 = fill({ trade_id: 't1', client_order_id: 'o1', quantity: '0.5', timestamp: before(2000) });
      const o2 = order({ client_order_id: 'o2', quantity: '0.25', updated_at: before(-1000) });
      const f2 = fill({ trade_id: 't2', client_order_id: 'o2', quantity: '0.25', timestamp: before(-1000) });
      const old = order({ client_order_id: 'o0', quantity: '1', updated_at: before(30 * MIN) });
      const f0 = fill({ trade_id: 't0', client_order_id: 'o0', quantity: '1', timestamp: before(30 * MIN) });

      it('compares positions as of one instant, taking the fills since out of both sides', () => {
        const out = run({
          orders: [old, o1, o2],
          fills: [f0, f1, f2],
          // The books hold all three; the venue's position and trades stop at the snapshot.
          positions: [position({ quantity: '1.75' })],
          exchangeOrders: [onExchange(old), onExchange(o1)],
          trades: [asTrade(f0), asTrade(f1)],
          exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity: '1.5' }],
        });
        expect(out.checks.position_match).toBe('PASS');
        const item = out.items.find((i) => i.check === 'position_match');
        expect(item).toMatchObject({ status: 'MATCHED', internal: '1', exchange: '1' });
        expect(item?.rule).toContain(`as of ${before(5000)}`);
      });

      it('takes a venue that leaves out a position just closed as flat, not as missing', () => {
        const sell = order({ client_order_id: 'os', side: 'sell', quantity: '1', updated_at: before(2000) });
        const fs = fill({
          trade_id: 'ts',
          client_order_id: 'os',
          side: 'sell',
          quantity: '1',
          timestamp: before(2000),
        });
        const out = run({
          orders: [old, sell],
          fills: [f0, fs],
          positions: [position({ quantity: '0' })],
          exchangeOrders: [onExchange(old), onExchange(sell)],
          trades: [asTrade(f0), asTrade(fs)],
          exchangePositions: [],
        });
        expect(out.checks.position_match).toBe('PASS');
      });

      it('still breaks on a difference older than the instant', () => {
        const out = run({
          orders: [old, o1],
          fills: [f0, f1],
          positions: [position({ quantity: '1.5' })],
          exchangeOrders: [onExchange(old), onExchange(o1)],
          trades: [asTrade(f0), asTrade(f1)],
          exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity: '1.6' }],
        });
        expect(find(out, 'position_mismatch')).toMatchObject({ internal: '1', exchange: '1.1' });
      });

      it('takes a trade made while the positions were read as in them or not, whichever agrees', () => {
        // Asked for at +1 s, answered at +1.1 s; a sell of 0.25 at +1.05 s.
        const during = fill({
          trade_id: 'tw',
          client_order_id: 'ow',
          side: 'sell',
          quantity: '0.25',
          timestamp: before(-1050),
        });
        const ow = order({ client_order_id: 'ow', side: 'sell', quantity: '0.25', updated_at: before(-1050) });
        const venue = (quantity: string) => {
          const { books, exchange } = world({
            orders: [old],
            fills: [f0],
            positions: [position({ quantity: '1' })],
            exchangeOrders: [onExchange(old), onExchange(ow)],
            trades: [asTrade(f0), asTrade(during)],
            exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity }],
          });
          return reconcile({
            books,
            exchange: { ...exchange, positions_from: before(-1000), positions_at: before(-1100) },
            integrity: 'not-applicable',
          }).checks.position_match;
        };
        expect(venue('1')).toBe('PASS'); // read before the sell landed
        expect(venue('0.75')).toBe('PASS'); // read after it
        expect(venue('0.7')).toBe('FAIL'); // neither
      });

      it('takes out only the venue trades made before it gave its positions (positions_at)', () => {
        const { books, exchange } = world({
          orders: [old, o1],
          fills: [f0, f1],
          positions: [position({ quantity: '1.5' })],
          exchangeOrders: [onExchange(old), onExchange(o1)],
          trades: [asTrade(f0), asTrade(f1)],
          // The positions were read 3 s before collected_at: t1 (2 s before) is not in them.
          exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity: '1' }],
        });
        const at = reconcile({
          books,
          exchange: { ...exchange, positions_at: before(3000) },
          integrity: 'not-applicable',
        });
        expect(at.checks.position_match).toBe('PASS');
        expect(reconcile({ books, exchange, integrity: 'not-applicable' }).checks.position_match).toBe('FAIL');
      });
    });

    it('compares each account separately', () => {
      const out = run({
        positions: [position({ quantity: '1' }), position({ account: 'alt', quantity: '2' })],
        exchangePositions: [
          { account: 'main', symbol: 'BTC/USDT', quantity: '2' },
          { account: 'alt', symbol: 'BTC/USDT', quantity: '1' },
        ],
      });
      expect(out.items.filter((i) => i.check === 'position_match').map((i) => `${i.key} ${i.status}`)).toEqual([
        'alt:BTC/USDT BREAK',
        'main:BTC/USDT BREAK',
      ]);
    });
  });

  describe('orders', () => {
    it('matches a partially filled order by client id, mapping PARTIALLY_FILLED to PARTIAL', () => {
      const o = order({
        client_order_id: 'p1',
        status: 'PARTIAL',
        filled_quantity: '0.4',
        updated_at: before(10 * MIN),
      });
      const f = fill({ trade_id: 'pt1', client_order_id: 'p1', quantity: '0.4' });
      const out = run({ orders: [o], fills: [f], positions: [position({ quantity: '0.4', avg_entry_price: '100' })] });
      expect(out.checks).toEqual(allPass);
    });

    it('finds a partial fill the books missed and plans to backfill it and take the filled quantity', () => {
      const o = order({
        client_order_id: 'p1',
        status: 'PARTIAL',
        filled_quantity: '0.4',
        updated_at: before(10 * MIN),
      });
      const f1 = fill({ trade_id: 'pt1', client_order_id: 'p1', quantity: '0.4', timestamp: before(12 * MIN) });
      const f2 = fill({ trade_id: 'pt2', client_order_id: 'p1', quantity: '0.2', timestamp: before(9 * MIN) });
      const out = run({
        orders: [o],
        fills: [f1],
        positions: [position({ quantity: '0.4', avg_entry_price: '100' })],
        exchangeOrders: [onExchange(o, { filled_quantity: '0.6', updated_at: before(9 * MIN) })],
        trades: [asTrade(f1), asTrade(f2)],
        exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity: '0.6' }],
      });
      expect(kinds(out).sort()).toEqual(['filled_quantity_mismatch', 'missing_fill', 'position_mismatch']);
      expect(find(out, 'missing_fill')).toMatchObject({ trade_id: 'pt2', exchange_order_id: 'x-p1' });
      expect(out.corrections.backfillFills).toEqual([f2]);
      expect(out.corrections.orderUpdates).toEqual([
        {
          client_order_id: 'p1',
          status: 'PARTIAL',
          filled_quantity: '0.6',
          exchange_order_id: 'x-p1',
          reason: 'filled 0.6 on the exchange',
        },
      ]);
      expect(out.corrections.positions).toEqual([
        {
          account: 'main',
          symbol: 'BTC/USDT',
          quantity: '0.60000000',
          avg_entry_price: '100.00000000',
          realized_pnl: '0.00000000',
        },
      ]);
      expect(out.corrections.unmatched).toEqual([]);
    });

    it('reports duplicate client order ids on either side', () => {
      const a = order({ client_order_id: 'dup', exchange_order_id: 'x1', filled_quantity: '0', status: 'CANCELED' });
      const b = order({ client_order_id: 'dup', exchange_order_id: 'x2', filled_quantity: '0', status: 'CANCELED' });
      const internal = run({ orders: [a, b] });
      expect(find(internal, 'duplicate_client_order_id')?.detail).toBe(
        'client_order_id dup is used by 2 internal orders (orders[0], orders[1])',
      );
      const c = order({ client_order_id: 'c1', filled_quantity: '0', status: 'CANCELED' });
      const onVenue = run({
        orders: [c],
        exchangeOrders: [onExchange(c), onExchange(c, { exchange_order_id: 'x-other' })],
      });
      expect(find(onVenue, 'duplicate_client_order_id')?.detail).toContain('2 exchange orders (x-c1, x-other)');
    });

    it('flags an order open and untouched for longer than the stale age, and not one touched recently', () => {
      const stale = order({ client_order_id: 's1', status: 'NEW', filled_quantity: '0', updated_at: before(61 * MIN) });
      const out = run({ orders: [stale] });
      expect(kinds(out)).toEqual(['stale_open_order']);
      expect(find(out, 'stale_open_order')?.detail).toContain('open on both sides');
      const fresh = order({ client_order_id: 's2', status: 'NEW', filled_quantity: '0', updated_at: before(59 * MIN) });
      expect(run({ orders: [fresh] }).checks).toEqual(allPass);
    });

    it('reports an order open on the exchange and unknown internally, and never plans to cancel it', () => {
      const lone = onExchange(order({ client_order_id: 'ghost', status: 'NEW', filled_quantity: '0' }));
      const out = run({ exchangeOrders: [lone] });
      expect(find(out, 'orphan_exchange_order')).toMatchObject({
        client_order_id: 'ghost',
        exchange_order_id: 'x-ghost',
      });
      expect(out.corrections.orderUpdates).toEqual([]);
      expect(out.corrections.unmatched.map((d) => d.kind)).toEqual(['orphan_exchange_order']);
    });

    it('reports an order open on the exchange but finished internally as an orphan, saying so', () => {
      const o = order({ client_order_id: 'o1', status: 'CANCELED', filled_quantity: '0' });
      const out = run({ orders: [o], exchangeOrders: [onExchange(o, { status: 'OPEN' })] });
      expect(find(out, 'orphan_exchange_order')?.detail).toBe('open on the exchange (OPEN), CANCELED internally');
    });

    it('reports an order open internally but unknown on the exchange', () => {
      const o = order({ client_order_id: 'o1', status: 'NEW', filled_quantity: '0' });
      const out = run({ orders: [o], exchangeOrders: [] });
      expect(find(out, 'open_internal_not_on_exchange')?.detail).toBe('open internally (NEW), unknown on the exchange');
      expect(out.corrections.unmatched).toHaveLength(1);
    });

    it('takes the exchange state for an order open internally but finished on the exchange', () => {
      const o = order({ client_order_id: 'o1', status: 'NEW', filled_quantity: '0' });
      const out = run({ orders: [o], exchangeOrders: [onExchange(o, { status: 'CANCELED' })] });
      expect(find(out, 'open_internal_not_on_exchange')?.detail).toBe(
        'open internally (NEW), CANCELED on the exchange',
      );
      expect(out.corrections.orderUpdates).toEqual([
        expect.objectContaining({ client_order_id: 'o1', status: 'CANCELED', reason: 'CANCELED on the exchange' }),
      ]);
      expect(out.corrections.unmatched).toEqual([]);
    });

    it('reports finished orders that disagree (FILLED against CANCELED) as a filled quantity mismatch', () => {
      const o = order({ client_order_id: 'o1' });
      const out = run({ orders: [o], exchangeOrders: [onExchange(o, { status: 'CANCELED' })] });
      expect(find(out, 'filled_quantity_mismatch')?.detail).toBe('FILLED internally, CANCELED on the exchange');
    });

    it('judges limit prices with the relative tolerance', () => {
      const o = order({ client_order_id: 'o1', price: '100.01' });
      const within = run({ orders: [o], exchangeOrders: [onExchange(o, { price: '100' })] });
      expect(within.items.find((i) => i.key === 'o1')?.status).toBe('WITHIN_TOLERANCE');
      // 0.01 off 100 is exactly the relative tolerance; 0.02 off 100.03 is twice it.
      const beyond = run({ orders: [o], exchangeOrders: [onExchange(o, { price: '100.03' })] });
      expect(find(beyond, 'filled_quantity_mismatch')?.detail).toContain(
        'limit price 100.01 internally, 100.03 on the exchange',
      );
    });

    it('treats a rejected order that never reached the venue as matched', () => {
      const o = order({ client_order_id: 'r1', exchange_order_id: null, status: 'REJECTED', filled_quantity: '0' });
      const out = run({ orders: [o], exchangeOrders: [] }, { settings: { items: 'all' } });
      expect(out.items.find((i) => i.key === 'r1')).toMatchObject({
        status: 'MATCHED',
        rule: 'rejected before reaching the venue',
      });
    });

    it('matches by exchange order id when the venue lost the client id', () => {
      const o = order({ client_order_id: 'o1', exchange_order_id: 'E-9' });
      const out = run({ orders: [o], exchangeOrders: [onExchange(o, { client_order_id: '' })] });
      expect(out.checks).toEqual(allPass);
      expect(out.stats.orders_compared).toBe(1);
    });

    it('skips an order updated 4.9 s before the snapshot and judges one updated 5.1 s before', () => {
      const at = (ms: number) => {
        const o = order({ client_order_id: 'o1', status: 'NEW', filled_quantity: '0', updated_at: before(ms) });
        return run({ orders: [o], exchangeOrders: [onExchange(o, { status: 'FILLED', filled_quantity: '1' })] });
      };
      const inFlight = at(4_900);
      expect(inFlight.checks.order_consistency).toBe('PASS');
      expect(inFlight.stats.in_flight_skipped).toBe(1);
      const judged = at(5_100);
      expect(judged.stats.in_flight_skipped).toBe(0);
      expect(kinds(judged)).toContain('open_internal_not_on_exchange');
      expect(at(5_000).stats.in_flight_skipped).toBe(0);
    });
  });

  describe('fills', () => {
    it('reports an exchange trade missing from the books and a fill the exchange never made', () => {
      const w = twoFills();
      const extra = fill({ trade_id: 't9', client_order_id: 'o1', quantity: '0.05' });
      const out = run({ ...w, fills: [w.fills![0]!, extra], trades: w.fills!.map((f) => asTrade(f)) });
      expect(find(out, 'missing_fill')).toMatchObject({ trade_id: 't2', check: 'order_consistency' });
      expect(find(out, 'unknown_fill')).toMatchObject({ trade_id: 't9', client_order_id: 'o1' });
      expect(out.corrections.unmatched.map((d) => d.kind)).toContain('unknown_fill');
    });

    it('reports a trade recorded with another quantity as a filled quantity mismatch', () => {
      const w = twoFills();
      const out = run({ ...w, trades: [asTrade(w.fills![0]!), asTrade(w.fills![1]!, { quantity: '0.21' })] });
      expect(find(out, 'filled_quantity_mismatch')).toMatchObject({ trade_id: 't2', difference: '-0.01' });
    });

    it('does not look on the exchange for fills older than its window', () => {
      const w = twoFills();
      const out = run({ ...w, trades: [asTrade(w.fills![1]!)], windowStart: before(22 * MIN) });
      expect(out.checks.order_consistency).toBe('PASS');
      expect(out.stats.outside_window).toBe(1);
      const inside = run({ ...w, trades: [asTrade(w.fills![1]!)], windowStart: before(26 * MIN) });
      expect(kinds(inside)).toEqual(['unknown_fill']);
    });

    it('skips a trade made 4.9 s before the snapshot', () => {
      const w = twoFills();
      const late = asTrade(fill({ trade_id: 't3', client_order_id: 'o1', timestamp: before(4_900) }));
      const out = run({ ...w, trades: [...w.fills!.map((f) => asTrade(f)), late] });
      expect(out.checks.order_consistency).toBe('PASS');
      expect(out.stats.in_flight_skipped).toBe(1);
    });

    it('counts a trade the exchange lists twice once', () => {
      const w = twoFills();
      const out = run({ ...w, trades: [...w.fills!.map((f) => asTrade(f)), asTrade(w.fills![0]!)] });
      expect(out.checks).toEqual(allPass);
      expect(out.stats.exchange_duplicate_trades).toBe(1);
    });
  });

  describe('an incomplete snapshot', () => {
    it('never passes the checks that need the missing part', () => {
      const orders = run(twoFills(), {}).checks;
      expect(orders).toEqual(allPass);
      const noOrders = run({ ...twoFills(), complete: { orders: false } });
      expect(noOrders.checks).toEqual({ ...allPass, order_consistency: 'FAIL' });
      expect(find(noOrders, 'snapshot_incomplete')?.detail).toContain('orders are incomplete');
      expect(noOrders.items.find((i) => i.key === 'snapshot.orders')?.status).toBe('UNRESOLVED');
      const noTrades = run({ ...twoFills(), complete: { trades: false } });
      expect(noTrades.checks).toEqual({ ...allPass, order_consistency: 'FAIL' });
      const noPositions = run({ ...twoFills(), complete: { positions: false } });
      expect(noPositions.checks).toEqual({ ...allPass, position_match: 'FAIL' });
      expect(run({ ...twoFills(), complete: { balances: false } }).checks).toEqual(allPass);
    });

    it('does not judge what is absent from an incomplete part', () => {
      const o = order({ client_order_id: 'o1', status: 'NEW', filled_quantity: '0' });
      const out = run({ orders: [o], exchangeOrders: [], complete: { orders: false } });
      expect(kinds(out)).toEqual(['snapshot_incomplete']);
      expect(out.stats.not_judged_incomplete).toBe(1);
    });
  });

  describe('realized P&L', () => {
    /** Buy 1 at 100, sell 3 at 110 (long to short), buy 2 at 105 (flat). */
    const flip = (realized: string, fees: Partial<BookFill> = {}): World => {
      const o = (id: string, side: 'buy' | 'sell', qty: string, price: string, mins: number) =>
        order({
          client_order_id: id,
          side,
          quantity: qty,
          filled_quantity: qty,
          price,
          updated_at: before(mins * MIN),
        });
      const orders = [o('a', 'buy', '1', '100', 30), o('b', 'sell', '3', '110', 25), o('c', 'buy', '2', '105', 20)];
      const fills = orders.map((x, i) =>
        fill({
          trade_id: `t${i}`,
          client_order_id: x.client_order_id,
          side: x.side,
          quantity: x.quantity,
          price: x.price!,
          timestamp: x.updated_at,
          ...fees,
        }),
      );
      return { orders, fills, positions: [position({ quantity: '0', realized_pnl: realized })] };
    };

    it('splits the lifecycle when a position flips from long to short', () => {
      // 10 realized closing the long at 110, 10 closing the short opened at 110 with a buy at 105.
      expect(run(flip('20.00000000')).checks).toEqual(allPass);
      const wrong = run(flip('30'));
      expect(find(wrong, 'pnl_mismatch')).toMatchObject({
        internal: '30',
        exchange: '20.00000000',
        difference: '10.00000000',
      });
    });

    it('rebuilds the short position at the fill price after the flip', () => {
      const w = flip('0');
      const twoFillsOnly = { ...w, orders: w.orders!.slice(0, 2), fills: w.fills!.slice(0, 2) };
      const out = run({
        ...twoFillsOnly,
        positions: [position({ quantity: '-2', realized_pnl: '0' })],
        exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity: '-2' }],
      });
      expect(kinds(out)).toEqual(['pnl_mismatch']);
      expect(out.corrections.positions).toEqual([
        {
          account: 'main',
          symbol: 'BTC/USDT',
          quantity: '-2.00000000',
          avg_entry_price: '110.00000000',
          realized_pnl: '10.00000000',
        },
      ]);
    });

    it('subtracts quote fees, so books off by exactly the fee break beyond the tolerance', () => {
      const feeOf = (fee: string) => ({ fee, fee_asset: 'USDT' });
      // Three fills with 0.01 USDT each: 0.03 in fees, realized 20 - 0.03.
      expect(run(flip('19.97', feeOf('0.01'))).checks.pnl_accuracy).toBe('PASS');
      const feeIgnored = run(flip('20', feeOf('0.01')));
      expect(find(feeIgnored, 'pnl_mismatch')?.difference).toBe('0.03000000');
      // Off by exactly the tolerance passes; one unit beyond does not.
      expect(run(flip('19.98', feeOf('0.01'))).items.at(-1)?.status).toBe('WITHIN_TOLERANCE');
      expect(run(flip('19.98000001', feeOf('0.01'))).items.at(-1)?.status).toBe('BREAK');
    });

    it('values base-asset fees at the fill price and counts fees in other assets without valuing them', () => {
      // 0.001 BTC on each of three fills at 100, 110 and 105: 0.315 USDT.
      expect(run(flip('19.685', { fee: '0.001', fee_asset: 'BTC' })).checks.pnl_accuracy).toBe('PASS');
      const bnb = run(flip('20', { fee: '0.5', fee_asset: 'BNB' }));
      expect(bnb.checks.pnl_accuracy).toBe('PASS');
      expect(bnb.stats.fees_not_valued).toBe(3);
    });

    it('compares fills with no position, and recorded P&L with no fills, against zero', () => {
      const noPosition = run({ ...flip('0'), positions: [] });
      expect(find(noPosition, 'pnl_mismatch')).toMatchObject({
        symbol: 'BTC/USDT',
        internal: '0.00000000',
        exchange: '20.00000000',
      });
      const noFills = run({ positions: [position({ symbol: 'ETH/USDT', quantity: '0', realized_pnl: '5' })] });
      expect(find(noFills, 'pnl_mismatch')).toMatchObject({ symbol: 'ETH/USDT', exchange: '0.00000000' });
    });

    it('sums the recorded P&L of every account against fills replayed per account', () => {
      const w = flip('0');
      // The middle order belongs to another account: main buys 1 and buys 2, alt sells 3.
      const orders = w.orders!.map((o, i) => (i === 1 ? { ...o, account: 'alt' } : o));
      const positions = [
        position({ quantity: '3', avg_entry_price: '103.33333333' }),
        position({ account: 'alt', quantity: '-3', avg_entry_price: '110' }),
      ];
      const out = run({ ...w, orders, positions });
      expect(out.checks).toEqual(allPass);
    });
  });

  it('rejects bad settings, naming the key', () => {
    expect(() => reconcile({ ...world({}), integrity: null, settings: { pnlTolerance: '-1' } as never })).toThrow(
      'reconcile settings: pnlTolerance: must be a non-negative decimal string',
    );
  });
});

describe('corrections and the report', () => {
  /** Books restored from a backup taken before the last trade: the exchange has one more fill. */
  function restoredFromOldBackup(): World {
    const o1 = order({ client_order_id: 'o1', quantity: '0.1', filled_quantity: '0.1', updated_at: before(40 * MIN) });
    const o2 = order({
      client_order_id: 'o2',
      side: 'sell',
      quantity: '0.1',
      filled_quantity: '0.1',
      price: '120',
      updated_at: before(10 * MIN),
    });
    const f1 = fill({
      trade_id: 't1',
      client_order_id: 'o1',
      quantity: '0.1',
      fee: '0.01',
      timestamp: before(40 * MIN),
    });
    const f2 = fill({
      trade_id: 't2',
      client_order_id: 'o2',
      side: 'sell',
      quantity: '0.1',
      price: '120',
      fee: '0.012',
      timestamp: before(10 * MIN),
    });
    const stale = { ...o2, status: 'NEW' as const, filled_quantity: '0', updated_at: before(15 * MIN) };
    return {
      orders: [o1, stale],
      fills: [f1],
      positions: [position({ quantity: '0.1', avg_entry_price: '100', realized_pnl: '-0.01' })],
      exchangeOrders: [onExchange(o1), onExchange(o2)],
      trades: [asTrade(f1), asTrade(f2)],
      exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity: '0' }],
    };
  }

  it('backfills, updates and rebuilds, after which a re-run passes and a second application adds nothing', () => {
    const w = restoredFromOldBackup();
    const { books, exchange } = world(w);
    const first = reconcile({ books, exchange, integrity: 'not-applicable' });
    expect(first.checks).toEqual({ ...allPass, position_match: 'FAIL', order_consistency: 'FAIL' });
    expect(first.corrections.unmatched).toEqual([]);

    const applied = applyCorrections(books, first.corrections);
    expect(applied.actions.map((a) => `${a.kind} ${a.key}`)).toEqual([
      'backfill_fill t2',
      'update_order o2',
      'rebuild_position main:BTC/USDT',
    ]);
    expect(applied.books.positions).toEqual([
      // 0.1 × (120 − 100) − 0.01 − 0.012
      {
        account: 'main',
        symbol: 'BTC/USDT',
        quantity: '0.00000000',
        avg_entry_price: '0.00000000',
        realized_pnl: '1.97800000',
      },
    ]);
    expect(books.fills).toHaveLength(1);

    const second = reconcile({ books: applied.books, exchange, integrity: 'not-applicable' });
    expect(second.checks).toEqual(allPass);
    expect(second.corrections).toEqual({
      backfillOrders: [],
      backfillFills: [],
      orderUpdates: [],
      positions: [],
      unmatched: [],
    });
    expect(applyCorrections(applied.books, first.corrections).actions).toEqual([]);

    const unsigned = buildReport(second, {
      timestamp: new Date(COLLECTED_MS),
      recoveryType: 'db-corruption',
      actionsTaken: applied.actions,
      corrected: true,
    });
    expect(unsigned).toMatchObject({ verdict: 'PASS_WITH_CORRECTIONS', ready_to_trade: false, sign_off: null });
    const signed = buildReport(second, {
      timestamp: COLLECTED,
      recoveryType: 'db-corruption',
      actionsTaken: applied.actions,
      corrected: true,
      signOff: 'sofia (ops)',
    });
    expect(signed).toMatchObject({ verdict: 'PASS_WITH_CORRECTIONS', ready_to_trade: true, sign_off: 'sofia (ops)' });
    expect(Object.keys(signed)).toEqual(
      expect.arrayContaining([
        'timestamp',
        'recovery_type',
        'checks',
        'discrepancies',
        'actions_taken',
        'ready_to_trade',
      ]),
    );
  });

  it('brings back a done order the books lost with its fills, but not one placed outside the system', () => {
    // The backup predates o2 entirely: the books know neither the order nor its trade.
    const w = restoredFromOldBackup();
    const { books, exchange } = world({ ...w, orders: [w.orders![0]!] });
    const manual = onExchange(order({ client_order_id: 'hand', quantity: '0.2', filled_quantity: '0.2' }), {
      client_order_id: '',
      exchange_order_id: 'x-hand',
    });
    const withManual = { ...exchange, orders: [...exchange.orders, manual] };
    const first = reconcile({ books, exchange: withManual, integrity: 'not-applicable' });
    expect(first.corrections.backfillOrders).toEqual([
      expect.objectContaining({ client_order_id: 'o2', exchange_order_id: 'x-o2', status: 'FILLED', account: 'main' }),
    ]);
    expect(first.corrections.backfillFills.map((f) => f.trade_id)).toEqual(['t2']);
    expect(first.corrections.unmatched).toEqual([
      expect.objectContaining({ kind: 'filled_quantity_mismatch', exchange_order_id: 'x-hand' }),
    ]);
    expect(first.corrections.unmatched[0]!.detail).toContain('not placed by the trading system');

    const applied = applyCorrections(books, first.corrections);
    expect(applied.actions.map((a) => `${a.kind} ${a.key}`)).toEqual([
      'backfill_order o2',
      'backfill_fill t2',
      'rebuild_position main:BTC/USDT',
    ]);
    const second = reconcile({ books: applied.books, exchange, integrity: 'not-applicable' });
    expect(second.checks).toEqual(allPass);
    expect(applyCorrections(applied.books, first.corrections).actions).toEqual([]);
  });

  it('judges an order the books lack that was touched just now when its trades are settled', () => {
    // Partly filled 10 minutes ago, cancelled 1 s before the snapshot; the books never saw it.
    const lost = order({
      client_order_id: 'late',
      quantity: '1',
      filled_quantity: '0.4',
      status: 'CANCELED',
      updated_at: before(1000),
    });
    const f = fill({ trade_id: 'tl', client_order_id: 'late', quantity: '0.4', timestamp: before(10 * MIN) });
    const out = run({
      exchangeOrders: [onExchange(lost)],
      trades: [asTrade(f)],
      exchangePositions: [{ account: 'main', symbol: 'BTC/USDT', quantity: '0.4' }],
    });
    expect(out.corrections.backfillOrders.map((o) => o.client_order_id)).toEqual(['late']);
    expect(out.corrections.backfillFills.map((x) => x.trade_id)).toEqual(['tl']);
    // Touched just now with no settled trade: in flight, not judged.
    const fresh = run({
      exchangeOrders: [onExchange({ ...lost, filled_quantity: '0', status: 'NEW' })],
      exchangePositions: [],
    });
    expect(fresh.stats.in_flight_skipped).toBe(1);
    expect(fresh.checks.order_consistency).toBe('PASS');
  });

  it('rebuilds a position whose recorded P&L the fills contradict, keeping its quantity', () => {
    const o = order({ client_order_id: 'o1', quantity: '0.5', filled_quantity: '0.5' });
    const f = fill({ trade_id: 't1', client_order_id: 'o1', quantity: '0.5', fee: '0.05' });
    const out = run({ orders: [o], fills: [f], positions: [position({ quantity: '0.5', realized_pnl: '3' })] });
    expect(kinds(out)).toEqual(['pnl_mismatch']);
    expect(out.corrections.positions).toEqual([
      {
        account: 'main',
        symbol: 'BTC/USDT',
        quantity: '0.50000000',
        avg_entry_price: '100.00000000',
        realized_pnl: '-0.05000000',
      },
    ]);
    expect(out.corrections.unmatched).toEqual([]);
  });

  it('leaves alone a position its fills do not explain, rather than break its quantity', () => {
    const o = order({ client_order_id: 'o1', quantity: '0.5', filled_quantity: '0.5' });
    const f = fill({ trade_id: 't1', client_order_id: 'o1', quantity: '0.5' });
    // The books hold 1 (as the exchange does) and P&L from history older than their fills.
    const out = run({ orders: [o], fills: [f], positions: [position({ quantity: '1', realized_pnl: '5' })] });
    expect(kinds(out)).toEqual(['pnl_mismatch']);
    expect(out.corrections.positions).toEqual([]);
    expect(out.corrections.unmatched.map((d) => d.kind)).toEqual(['pnl_mismatch']);
  });

  it('fails when corrections leave a break, and passes clean books with no corrections', () => {
    const broken = run({ positions: [position({ quantity: '1' })], exchangePositions: [] });
    const opts = { timestamp: COLLECTED, recoveryType: 'manual', actionsTaken: [], corrected: true, signOff: 'x' };
    expect(buildReport(broken, opts)).toMatchObject({ verdict: 'FAIL', ready_to_trade: false });
    const clean = buildReport(run(twoFills()), { ...opts, corrected: false, signOff: undefined });
    expect(clean).toMatchObject({ verdict: 'PASS', ready_to_trade: true, checks: allPass });
  });

  it('summarizes a report for the terminal', () => {
    const out = run({ ...restoredFromOldBackup() });
    const text = formatReportSummary(
      buildReport(out, { timestamp: COLLECTED, recoveryType: 'db-corruption', actionsTaken: [], corrected: false }),
    );
    expect(text).toContain(`Reconciliation ${COLLECTED} (db-corruption)`);
    expect(text).toMatch(/position_match\s+FAIL/);
    expect(text).toMatch(/pnl_accuracy\s+PASS/);
    expect(text).toContain('- missing_fill: exchange trade t2');
    expect(text).toContain('Verdict: FAIL');
    expect(text).toContain('Ready to trade: NO');
  });
});

describe('pairing rows by id', () => {
  const side = (ids: string[]) => ({
    length: ids.length,
    id: (i: number) => ids[i]!,
    group: (i: number) => ids[i]![0]!,
  });
  const pair = (mine: string[], theirs: string[], usable = (_: number) => true) =>
    pairById(side(mine), side(theirs), usable, undefined);

  it('pairs lists in the same order, in opposite orders, and shifted by a row', () => {
    expect(pair(['a', 'b', 'c'], ['a', 'b', 'c']).pairOfMine).toEqual([0, 1, 2]);
    expect(pair(['a', 'b', 'c'], ['c', 'b', 'a']).pairOfMine).toEqual([2, 1, 0]);
    expect(pair(['a', 'b', 'c'], ['x', 'a', 'b', 'c']).pairOfMine).toEqual([1, 2, 3]);
    expect(pair(['a', 'b', 'c', 'd'], ['c', 'a', 'd', 'b']).pairOfMine).toEqual([1, 3, 0, 2]);
  });

  it('pairs a list given symbol by symbol with one in time order', () => {
    // Ids start with their symbol: mine interleave a, b and c; theirs take each symbol in turn.
    const mine = Array.from({ length: 60 }, (_, k) => `${'abc'[k % 3]}${k}`);
    const theirs = [...'abc'].flatMap((g) => mine.filter((id) => id[0] === g));
    const p = pair(mine, theirs);
    expect(p.pairOfMine.every((j, i) => theirs[j] === mine[i])).toBe(true);
    const backwards = pair(
      mine,
      [...'cba'].flatMap((g) => mine.filter((id) => id[0] === g).reverse()),
    );
    expect(backwards.pairOfMine.every((j) => j !== -1)).toBe(true);
  });

  it('reports their repeats of an id already paired, and leaves empty ids and unusable rows alone', () => {
    const p = pair(['a', 'b'], ['b', 'a', 'b', '']);
    expect(p.pairOfMine).toEqual([1, 0]);
    expect(p.repeats).toEqual([{ theirs: 2, mine: 1 }]);
    expect(p.pairOfTheirs).toEqual([1, 0, -1, -1]);
    expect(pair(['a', 'b'], ['a', 'b'], (i) => i !== 0).pairOfMine).toEqual([-1, 1]);
  });

  it('takes ids as distinct when they only rise or only fall', () => {
    expect(strictlyMonotonic(['1', '2', '10'], (x) => x)).toBe(true);
    expect(strictlyMonotonic(['c', 'b', 'a'], (x) => x)).toBe(true);
    expect(strictlyMonotonic(['a', 'b', 'b'], (x) => x)).toBe(false);
    expect(strictlyMonotonic(['a', 'c', 'b'], (x) => x)).toBe(false);
  });
});

describe('reading times', () => {
  it('reads ISO-8601 times as Date.parse does', () => {
    for (const s of [
      '2025-06-01T12:00:00Z',
      '2025-06-01T12:00:00.5Z',
      '2025-06-01T12:00:00.123456789Z',
      '2024-02-29T23:59:59.999+02:00',
      '1999-12-31T00:00:00-05:30',
      '2025-01-01T00:00:00.000Z',
      '2025-03-01T00:00:00Z',
    ]) {
      expect(timeMs(s)).toBe(Date.parse(s));
    }
  });
});
