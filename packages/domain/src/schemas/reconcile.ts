// The reconciliation formats (docs/FORMAT.md, "Reconciliation"): the internal books, the
// exchange snapshot, the settings, and the report with its items and discrepancies.
import { z } from 'zod';
import { LifeboatError } from '../errors.js';
import { describeZodError } from './config.js';

export const BOOKS_FORMAT = 'lifeboat.books/v1';
export const EXCHANGE_SNAPSHOT_FORMAT = 'lifeboat.exchange-snapshot/v1';
export const RECONCILIATION_REPORT_FORMAT = 'lifeboat.reconciliation-report/v1';

/** The account an order belongs to when the books do not say. */
export const DEFAULT_ACCOUNT = 'main';

// Plain decimal text only: no exponent, no sign on amounts that cannot be negative, so two
// equal strings are equal numbers and a parser never has to guess.
export const NON_NEGATIVE_DECIMAL = /^\d+(?:\.\d+)?$/;
export const SIGNED_DECIMAL = /^-?\d+(?:\.\d+)?$/;
export const ISO_TIME =
  /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;
export const SYMBOL = /^[^/\s]+\/[^/\s]+$/;

const ORDER_SIDES = ['buy', 'sell'] as const;
const ORDER_TYPES = ['limit', 'market'] as const;
export const BOOK_ORDER_STATUSES = ['NEW', 'PARTIAL', 'FILLED', 'CANCELED', 'REJECTED', 'EXPIRED'] as const;
export const EXCHANGE_ORDER_STATUSES = [
  'OPEN',
  'PARTIALLY_FILLED',
  'FILLED',
  'CANCELED',
  'REJECTED',
  'EXPIRED',
] as const;

/** The messages both validators give, so an operator sees the same words whichever ran. */
const M = {
  required: 'is required',
  object: 'must be an object',
  array: 'must be an array',
  boolean: 'must be true or false',
  string: 'must be a string',
  id: 'must be a non-empty string',
  idOrNull: 'must be a non-empty string or null',
  decimal: 'must be a non-negative decimal string',
  decimalOrNull: 'must be a non-negative decimal string or null',
  signed: 'must be a decimal string',
  time: 'must be an ISO-8601 time with a zone, e.g. 2025-01-01T00:00:00Z',
  symbol: 'must be a symbol BASE/QUOTE, e.g. BTC/USDT',
  side: `must be one of ${ORDER_SIDES.join(', ')}`,
  type: `must be one of ${ORDER_TYPES.join(', ')}`,
  bookStatus: `must be one of ${BOOK_ORDER_STATUSES.join(', ')}`,
  exchangeStatus: `must be one of ${EXCHANGE_ORDER_STATUSES.join(', ')}`,
  format: (tag: string) => `must be "${tag}"`,
} as const;

const err = (message: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? M.required : message),
});

const Id = z.string(err(M.id)).min(1, M.id);
const AnyString = z.string(err(M.string));
const Time = z.string(err(M.time)).regex(ISO_TIME, M.time);
const Amount = z.string(err(M.decimal)).regex(NON_NEGATIVE_DECIMAL, M.decimal);
const AmountOrNull = z.string(err(M.decimalOrNull)).regex(NON_NEGATIVE_DECIMAL, M.decimalOrNull).nullable();
const Signed = z.string(err(M.signed)).regex(SIGNED_DECIMAL, M.signed);
const MarketSymbol = z.string(err(M.symbol)).regex(SYMBOL, M.symbol);
const Side = z.enum(ORDER_SIDES, err(M.side));
const OrderType = z.enum(ORDER_TYPES, err(M.type));

/** Rejects two rows for one (account, symbol): a position is one number, not a sum. */
function uniquePositions(rows: Array<{ account: string; symbol: string }>, ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  rows.forEach((row, i) => {
    const key = `${row.account}:${row.symbol}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else ctx.addIssue({ code: 'custom', message: `duplicate of positions[${first}] (${key})`, path: [i] });
  });
}

// ---------------------------------------------------------------------------------------
// The internal books

export const BookOrder = z.object(
  {
    client_order_id: Id,
    exchange_order_id: z.string(err(M.idOrNull)).min(1, M.idOrNull).nullable(),
    account: Id.default(DEFAULT_ACCOUNT),
    symbol: MarketSymbol,
    side: Side,
    type: OrderType,
    quantity: Amount,
    /** Null for market orders. */
    price: AmountOrNull,
    status: z.enum(BOOK_ORDER_STATUSES, err(M.bookStatus)),
    filled_quantity: Amount,
    created_at: Time,
    updated_at: Time,
  },
  err(M.object),
);
export type BookOrder = z.infer<typeof BookOrder>;

export const BookFill = z.object(
  {
    /** The venue's trade id: a fill is recorded once per trade. */
    trade_id: Id,
    client_order_id: Id,
    symbol: MarketSymbol,
    side: Side,
    quantity: Amount,
    price: Amount,
    fee: Amount,
    fee_asset: AnyString,
    timestamp: Time,
  },
  err(M.object),
);
export type BookFill = z.infer<typeof BookFill>;

export const BookPosition = z.object(
  {
    account: Id,
    symbol: MarketSymbol,
    /** Signed: negative is short. */
    quantity: Signed,
    avg_entry_price: Amount,
    realized_pnl: Signed,
  },
  err(M.object),
);
export type BookPosition = z.infer<typeof BookPosition>;

export const BookBalance = z.object({ asset: Id, total: Signed }, err(M.object));
export type BookBalance = z.infer<typeof BookBalance>;

export const Books = z.object(
  {
    format: z.literal(BOOKS_FORMAT, err(M.format(BOOKS_FORMAT))),
    collected_at: Time,
    orders: z.array(BookOrder, err(M.array)),
    fills: z.array(BookFill, err(M.array)),
    positions: z.array(BookPosition, err(M.array)).superRefine(uniquePositions),
    balances: z.array(BookBalance, err(M.array)),
  },
  err(M.object),
);
export type Books = z.infer<typeof Books>;

// ---------------------------------------------------------------------------------------
// The exchange snapshot

export const ExchangeOrder = z.object(
  {
    exchange_order_id: Id,
    /** Empty when the venue has none (an order placed by hand). */
    client_order_id: AnyString,
    symbol: MarketSymbol,
    side: Side,
    type: OrderType,
    quantity: Amount,
    price: AmountOrNull,
    status: z.enum(EXCHANGE_ORDER_STATUSES, err(M.exchangeStatus)),
    filled_quantity: Amount,
    updated_at: Time,
  },
  err(M.object),
);
export type ExchangeOrder = z.infer<typeof ExchangeOrder>;

export const ExchangeTrade = z.object(
  {
    trade_id: Id,
    exchange_order_id: Id,
    client_order_id: AnyString,
    symbol: MarketSymbol,
    side: Side,
    quantity: Amount,
    price: Amount,
    fee: Amount,
    fee_asset: AnyString,
    timestamp: Time,
  },
  err(M.object),
);
export type ExchangeTrade = z.infer<typeof ExchangeTrade>;

export const ExchangePosition = z.object({ account: Id, symbol: MarketSymbol, quantity: Signed }, err(M.object));
export type ExchangePosition = z.infer<typeof ExchangePosition>;

export const ExchangeBalance = z.object({ asset: Id, total: Signed }, err(M.object));
export type ExchangeBalance = z.infer<typeof ExchangeBalance>;

export const SNAPSHOT_PARTS = ['orders', 'trades', 'positions', 'balances'] as const;
export type SnapshotPart = (typeof SNAPSHOT_PARTS)[number];

export const ExchangeSnapshot = z.object(
  {
    format: z.literal(EXCHANGE_SNAPSHOT_FORMAT, err(M.format(EXCHANGE_SNAPSHOT_FORMAT))),
    venue: Id,
    collected_at: Time,
    /** Whether each part is the venue's whole answer; a part that is not fails closed. */
    complete: z.object(
      {
        orders: z.boolean(err(M.boolean)),
        trades: z.boolean(err(M.boolean)),
        positions: z.boolean(err(M.boolean)),
        balances: z.boolean(err(M.boolean)),
      },
      err(M.object),
    ),
    /** History before this instant was not fetched. */
    window_start: Time.optional(),
    /**
     * When the positions were read, with the trades read after them (default collected_at):
     * positions are compared as of a moment before it, trades since backed out of both sides.
     */
    positions_at: Time.optional(),
    /** When the positions were asked for: trades between this and positions_at may or may not be in them. */
    positions_from: Time.optional(),
    orders: z.array(ExchangeOrder, err(M.array)),
    trades: z.array(ExchangeTrade, err(M.array)),
    positions: z.array(ExchangePosition, err(M.array)).superRefine(uniquePositions),
    balances: z.array(ExchangeBalance, err(M.array)),
  },
  err(M.object),
);
export type ExchangeSnapshot = z.infer<typeof ExchangeSnapshot>;

// ---------------------------------------------------------------------------------------
// Validation fast enough for millions of rows: the same rules and messages as the schemas
// above (a test holds them together), checked in place without copying the rows.

type Row = Record<string, unknown>;

const isObject = (v: unknown): v is Row => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): boolean => typeof v === 'string' && v.length > 0;
const isAmount = (v: unknown): boolean => typeof v === 'string' && NON_NEGATIVE_DECIMAL.test(v);
const isSigned = (v: unknown): boolean => typeof v === 'string' && SIGNED_DECIMAL.test(v);
const isTime = (v: unknown): boolean => typeof v === 'string' && ISO_TIME.test(v);
const isSymbol = (v: unknown): boolean => typeof v === 'string' && SYMBOL.test(v);
const isSide = (v: unknown): boolean => v === 'buy' || v === 'sell';
const isType = (v: unknown): boolean => v === 'limit' || v === 'market';
const BOOK_STATUS_SET: ReadonlySet<unknown> = new Set(BOOK_ORDER_STATUSES);
const EXCHANGE_STATUS_SET: ReadonlySet<unknown> = new Set(EXCHANGE_ORDER_STATUSES);
/** Stands for the row before the first: no value in a row equals its fields. */
const UNSEEN = Symbol('unseen');
const NO_ROW: Row = { symbol: UNSEEN, quantity: UNSEEN, price: UNSEEN, fee: UNSEEN, timestamp: UNSEEN };

class Validator {
  constructor(readonly source: string) {}

  fail(path: string, value: unknown, message: string): never {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `${this.source}: ${path}: ${value === undefined ? M.required : message}`,
      { hint: 'fix or re-export the file; docs/FORMAT.md describes it' },
    );
  }

  field(list: string, i: number, name: string, value: unknown, message: string): never {
    return this.fail(`${list}[${i}].${name}`, value, message);
  }

  array(root: Row, name: string): unknown[] {
    const value = root[name];
    if (!Array.isArray(value)) this.fail(name, value, M.array);
    return value;
  }

  row(list: string, rows: unknown[], i: number): Row {
    const row = rows[i];
    if (!isObject(row)) this.fail(`${list}[${i}]`, row, M.object);
    return row;
  }

  positions(list: unknown[], withEntryAndPnl: boolean): void {
    const seen = new Map<string, number>();
    for (let i = 0; i < list.length; i++) {
      const p = this.row('positions', list, i);
      if (!isId(p.account)) this.field('positions', i, 'account', p.account, M.id);
      if (!isSymbol(p.symbol)) this.field('positions', i, 'symbol', p.symbol, M.symbol);
      if (!isSigned(p.quantity)) this.field('positions', i, 'quantity', p.quantity, M.signed);
      if (withEntryAndPnl) {
        if (!isAmount(p.avg_entry_price)) this.field('positions', i, 'avg_entry_price', p.avg_entry_price, M.decimal);
        if (!isSigned(p.realized_pnl)) this.field('positions', i, 'realized_pnl', p.realized_pnl, M.signed);
      }
      const key = `${p.account}:${p.symbol}`;
      const first = seen.get(key);
      if (first === undefined) seen.set(key, i);
      else this.fail(`positions[${i}]`, p, `duplicate of positions[${first}] (${key})`);
    }
  }

  balances(list: unknown[]): void {
    for (let i = 0; i < list.length; i++) {
      const b = this.row('balances', list, i);
      if (!isId(b.asset)) this.field('balances', i, 'asset', b.asset, M.id);
      if (!isSigned(b.total)) this.field('balances', i, 'total', b.total, M.signed);
    }
  }
}

/**
 * Validates a books file (`lifeboat.books/v1`). Throws INVALID_REQUEST naming the source,
 * the record and the field: `books.json: orders[12].quantity: must be a non-negative decimal string`.
 * Rows are kept as they are (unknown fields included); only a missing `account` is filled in.
 */
export function parseBooks(value: unknown, source: string): Books {
  const v = new Validator(source);
  if (!isObject(value)) return v.fail('(top level)', value, M.object);
  if (value.format !== BOOKS_FORMAT) v.fail('format', value.format, M.format(BOOKS_FORMAT));
  if (!isTime(value.collected_at)) v.fail('collected_at', value.collected_at, M.time);

  let orders = v.array(value, 'orders');
  let withoutAccount = 0;
  for (let i = 0; i < orders.length; i++) {
    const o = v.row('orders', orders, i);
    if (!isId(o.client_order_id)) v.field('orders', i, 'client_order_id', o.client_order_id, M.id);
    const eid = o.exchange_order_id;
    if (eid !== null && !isId(eid)) v.field('orders', i, 'exchange_order_id', eid, M.idOrNull);
    if (o.account === undefined) withoutAccount++;
    else if (!isId(o.account)) v.field('orders', i, 'account', o.account, M.id);
    if (!isSymbol(o.symbol)) v.field('orders', i, 'symbol', o.symbol, M.symbol);
    if (!isSide(o.side)) v.field('orders', i, 'side', o.side, M.side);
    if (!isType(o.type)) v.field('orders', i, 'type', o.type, M.type);
    if (!isAmount(o.quantity)) v.field('orders', i, 'quantity', o.quantity, M.decimal);
    if (o.price !== null && !isAmount(o.price)) v.field('orders', i, 'price', o.price, M.decimalOrNull);
    if (!BOOK_STATUS_SET.has(o.status)) v.field('orders', i, 'status', o.status, M.bookStatus);
    // A value equal to one that passed the same check passes (see the fills below): a filled
    // order's quantity, an order never updated since it was made.
    if (o.filled_quantity !== o.quantity && !isAmount(o.filled_quantity)) {
      v.field('orders', i, 'filled_quantity', o.filled_quantity, M.decimal);
    }
    if (!isTime(o.created_at)) v.field('orders', i, 'created_at', o.created_at, M.time);
    if (o.updated_at !== o.created_at && !isTime(o.updated_at)) {
      v.field('orders', i, 'updated_at', o.updated_at, M.time);
    }
  }
  if (withoutAccount > 0) {
    orders = orders.map((o) => ((o as Row).account === undefined ? { ...(o as Row), account: DEFAULT_ACCOUNT } : o));
  }

  const fills = v.array(value, 'fills');
  // A value equal to the previous row's passed its check there. Fills come in runs, those of
  // one order with one symbol and price and often one time, and a comparison (of the very same
  // string, as a database read shares them) costs much less than a check.
  let b = NO_ROW;
  for (let i = 0; i < fills.length; i++) {
    const f = v.row('fills', fills, i);
    if (!isId(f.trade_id)) v.field('fills', i, 'trade_id', f.trade_id, M.id);
    if (!isId(f.client_order_id)) v.field('fills', i, 'client_order_id', f.client_order_id, M.id);
    if (f.symbol !== b.symbol && !isSymbol(f.symbol)) v.field('fills', i, 'symbol', f.symbol, M.symbol);
    if (!isSide(f.side)) v.field('fills', i, 'side', f.side, M.side);
    if (f.quantity !== b.quantity && !isAmount(f.quantity)) v.field('fills', i, 'quantity', f.quantity, M.decimal);
    if (f.price !== b.price && !isAmount(f.price)) v.field('fills', i, 'price', f.price, M.decimal);
    if (f.fee !== b.fee && !isAmount(f.fee)) v.field('fills', i, 'fee', f.fee, M.decimal);
    if (typeof f.fee_asset !== 'string') v.field('fills', i, 'fee_asset', f.fee_asset, M.string);
    if (f.timestamp !== b.timestamp && !isTime(f.timestamp)) v.field('fills', i, 'timestamp', f.timestamp, M.time);
    b = f;
  }

  const positions = v.array(value, 'positions');
  v.positions(positions, true);
  const balances = v.array(value, 'balances');
  v.balances(balances);

  return { format: BOOKS_FORMAT, collected_at: value.collected_at, orders, fills, positions, balances } as Books;
}

/** Validates an exchange snapshot (`lifeboat.exchange-snapshot/v1`), with the same messages as parseBooks. */
export function parseExchangeSnapshot(value: unknown, source: string): ExchangeSnapshot {
  const v = new Validator(source);
  if (!isObject(value)) return v.fail('(top level)', value, M.object);
  if (value.format !== EXCHANGE_SNAPSHOT_FORMAT) v.fail('format', value.format, M.format(EXCHANGE_SNAPSHOT_FORMAT));
  if (!isId(value.venue)) v.fail('venue', value.venue, M.id);
  if (!isTime(value.collected_at)) v.fail('collected_at', value.collected_at, M.time);
  const complete = value.complete;
  if (!isObject(complete)) return v.fail('complete', complete, M.object);
  for (const part of SNAPSHOT_PARTS) {
    if (typeof complete[part] !== 'boolean') v.fail(`complete.${part}`, complete[part], M.boolean);
  }
  if (value.window_start !== undefined && !isTime(value.window_start)) {
    v.fail('window_start', value.window_start, M.time);
  }
  if (value.positions_at !== undefined && !isTime(value.positions_at)) {
    v.fail('positions_at', value.positions_at, M.time);
  }
  if (value.positions_from !== undefined && !isTime(value.positions_from)) {
    v.fail('positions_from', value.positions_from, M.time);
  }

  const orders = v.array(value, 'orders');
  for (let i = 0; i < orders.length; i++) {
    const o = v.row('orders', orders, i);
    if (!isId(o.exchange_order_id)) v.field('orders', i, 'exchange_order_id', o.exchange_order_id, M.id);
    if (typeof o.client_order_id !== 'string') v.field('orders', i, 'client_order_id', o.client_order_id, M.string);
    if (!isSymbol(o.symbol)) v.field('orders', i, 'symbol', o.symbol, M.symbol);
    if (!isSide(o.side)) v.field('orders', i, 'side', o.side, M.side);
    if (!isType(o.type)) v.field('orders', i, 'type', o.type, M.type);
    if (!isAmount(o.quantity)) v.field('orders', i, 'quantity', o.quantity, M.decimal);
    if (o.price !== null && !isAmount(o.price)) v.field('orders', i, 'price', o.price, M.decimalOrNull);
    if (!EXCHANGE_STATUS_SET.has(o.status)) v.field('orders', i, 'status', o.status, M.exchangeStatus);
    // A filled order's filled quantity is its quantity, which passed (see parseBooks).
    if (o.filled_quantity !== o.quantity && !isAmount(o.filled_quantity)) {
      v.field('orders', i, 'filled_quantity', o.filled_quantity, M.decimal);
    }
    if (!isTime(o.updated_at)) v.field('orders', i, 'updated_at', o.updated_at, M.time);
  }

  const trades = v.array(value, 'trades');
  // A value equal to the previous trade's passed its check there (see parseBooks).
  let b = NO_ROW;
  for (let i = 0; i < trades.length; i++) {
    const t = v.row('trades', trades, i);
    if (!isId(t.trade_id)) v.field('trades', i, 'trade_id', t.trade_id, M.id);
    if (!isId(t.exchange_order_id)) v.field('trades', i, 'exchange_order_id', t.exchange_order_id, M.id);
    if (typeof t.client_order_id !== 'string') v.field('trades', i, 'client_order_id', t.client_order_id, M.string);
    if (t.symbol !== b.symbol && !isSymbol(t.symbol)) v.field('trades', i, 'symbol', t.symbol, M.symbol);
    if (!isSide(t.side)) v.field('trades', i, 'side', t.side, M.side);
    if (t.quantity !== b.quantity && !isAmount(t.quantity)) v.field('trades', i, 'quantity', t.quantity, M.decimal);
    if (t.price !== b.price && !isAmount(t.price)) v.field('trades', i, 'price', t.price, M.decimal);
    if (t.fee !== b.fee && !isAmount(t.fee)) v.field('trades', i, 'fee', t.fee, M.decimal);
    if (typeof t.fee_asset !== 'string') v.field('trades', i, 'fee_asset', t.fee_asset, M.string);
    if (t.timestamp !== b.timestamp && !isTime(t.timestamp)) v.field('trades', i, 'timestamp', t.timestamp, M.time);
    b = t;
  }

  const positions = v.array(value, 'positions');
  v.positions(positions, false);
  const balances = v.array(value, 'balances');
  v.balances(balances);

  return {
    format: EXCHANGE_SNAPSHOT_FORMAT,
    venue: value.venue,
    collected_at: value.collected_at,
    complete: {
      orders: complete.orders,
      trades: complete.trades,
      positions: complete.positions,
      balances: complete.balances,
    },
    ...(value.window_start === undefined ? {} : { window_start: value.window_start }),
    ...(value.positions_at === undefined ? {} : { positions_at: value.positions_at }),
    ...(value.positions_from === undefined ? {} : { positions_from: value.positions_from }),
    orders,
    trades,
    positions,
    balances,
  } as ExchangeSnapshot;
}

/** Formats a zod issue path the way the validators name a field: `orders[12].quantity`. */
export function formatIssuePath(path: ReadonlyArray<PropertyKey>): string {
  if (path.length === 0) return '(top level)';
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Settings

const Tolerance = z.string().regex(NON_NEGATIVE_DECIMAL, M.decimal);

export const ReconcileSettings = z
  .object({
    /** Absolute tolerance on quantities (positions, filled quantities, fills), in base units. */
    quantityTolerance: z
      .object({
        default: Tolerance.default('0.00000001'),
        /** Per symbol (`BTC/USDT`), replacing the default for it. */
        perSymbol: z.record(z.string().regex(SYMBOL, M.symbol), Tolerance).default({}),
      })
      .strict()
      .prefault({}),
    /** Relative tolerance on prices (limit orders, fills): |a - b| <= tolerance × |exchange price|. */
    priceToleranceRelative: Tolerance.default('0.0001'),
    /** Absolute tolerance on realized P&L per symbol, in its quote currency. */
    pnlTolerance: Tolerance.default('0.01'),
    /** An open order not updated for longer than this before the snapshot is stale. */
    staleOrderAgeMs: z.number().int().nonnegative().default(3_600_000),
    /** Orders and fills updated less than this before the snapshot may still be on their way: not judged. */
    inFlightThresholdMs: z.number().int().nonnegative().default(5_000),
    /** `exceptions` lists only what is not MATCHED among orders and fills; `all` lists every item. */
    items: z.enum(['exceptions', 'all']).default('exceptions'),
    /**
     * Take orders still open on the venue as cancelled, as the kill switch would leave them:
     * for a drill's sandbox copy reconciled against a venue production still trades on.
     */
    openOrdersAsCancelled: z.boolean().default(false),
  })
  .strict();
export type ReconcileSettings = z.infer<typeof ReconcileSettings>;
export type ReconcileSettingsInput = z.input<typeof ReconcileSettings>;

export const DEFAULT_RECONCILE_SETTINGS: ReconcileSettings = ReconcileSettings.parse({});

/** Parses reconciliation settings, naming the key that is wrong. */
export function parseReconcileSettings(value: unknown, source = 'reconcile settings'): ReconcileSettings {
  const result = ReconcileSettings.safeParse(value ?? {});
  if (!result.success) throw new LifeboatError('INVALID_CONFIG', describeZodError(result.error, source));
  return result.data;
}

// ---------------------------------------------------------------------------------------
// Outcome and report

export const CHECK_NAMES = ['database_integrity', 'position_match', 'order_consistency', 'pnl_accuracy'] as const;
export const CheckName = z.enum(CHECK_NAMES);
export type CheckName = z.infer<typeof CheckName>;

export const ITEM_STATUSES = ['MATCHED', 'WITHIN_TOLERANCE', 'BREAK', 'UNRESOLVED'] as const;
export const ItemStatus = z.enum(ITEM_STATUSES);
export type ItemStatus = z.infer<typeof ItemStatus>;

export const CheckResult = z.enum(['PASS', 'FAIL']);
export type CheckResult = z.infer<typeof CheckResult>;

export const DISCREPANCY_KINDS = [
  'position_mismatch',
  'position_missing_internal',
  'position_missing_exchange',
  'stale_open_order',
  'duplicate_client_order_id',
  'open_internal_not_on_exchange',
  'orphan_exchange_order',
  'filled_quantity_mismatch',
  'missing_fill',
  'unknown_fill',
  'pnl_mismatch',
  'snapshot_incomplete',
  'database_integrity_failed',
] as const;
export const DiscrepancyKind = z.enum(DISCREPANCY_KINDS);
export type DiscrepancyKind = z.infer<typeof DiscrepancyKind>;

export const ReconcileItem = z.object({
  check: CheckName,
  /** `main:BTC/USDT` (positions), a client order id (orders), a trade id (fills), a symbol (P&L). */
  key: z.string(),
  status: ItemStatus,
  internal: z.string().optional(),
  exchange: z.string().optional(),
  /** internal − exchange (for P&L: recorded − recomputed). */
  difference: z.string().optional(),
  /** The rule the item was judged by, e.g. `|diff| <= 0.00000001`. */
  rule: z.string(),
});
export type ReconcileItem = z.infer<typeof ReconcileItem>;

export const Discrepancy = z.object({
  check: CheckName,
  kind: DiscrepancyKind,
  symbol: z.string().optional(),
  client_order_id: z.string().optional(),
  exchange_order_id: z.string().optional(),
  trade_id: z.string().optional(),
  internal: z.string().optional(),
  exchange: z.string().optional(),
  difference: z.string().optional(),
  detail: z.string(),
});
export type Discrepancy = z.infer<typeof Discrepancy>;

const StatusCounts = z.object({
  MATCHED: z.number().int(),
  WITHIN_TOLERANCE: z.number().int(),
  BREAK: z.number().int(),
  UNRESOLVED: z.number().int(),
});
export type StatusCounts = z.infer<typeof StatusCounts>;

export const ReconcileStats = z.object({
  /** Every item judged, listed or not. */
  items_by_status: StatusCounts,
  items_by_check: z.object({
    database_integrity: StatusCounts,
    position_match: StatusCounts,
    order_consistency: StatusCounts,
    pnl_accuracy: StatusCounts,
  }),
  items_listed: z.number().int(),
  internal_orders: z.number().int(),
  internal_fills: z.number().int(),
  internal_positions: z.number().int(),
  exchange_orders: z.number().int(),
  exchange_trades: z.number().int(),
  exchange_positions: z.number().int(),
  /** Order items judged: matched pairs and orders on one side only. */
  orders_compared: z.number().int(),
  /** Internal fills judged (matched or not). */
  fills_compared: z.number().int(),
  /** Exchange trades judged (matched or not). */
  trades_compared: z.number().int(),
  positions_compared: z.number().int(),
  pnl_symbols_compared: z.number().int(),
  /** Orders, fills and trades updated too close to the snapshot to judge. */
  in_flight_skipped: z.number().int(),
  /** Internal orders and fills older than the snapshot's window_start, not looked for on the exchange. */
  outside_window: z.number().int(),
  /** Internal records not found in a snapshot part marked incomplete: not judged. */
  not_judged_incomplete: z.number().int(),
  /** Exchange trades with a trade id seen before in the snapshot (the first one counts). */
  exchange_duplicate_trades: z.number().int(),
  /** Fees in an asset that is neither the symbol's base nor its quote: not in the recomputed P&L. */
  fees_not_valued: z.number().int(),
});
export type ReconcileStats = z.infer<typeof ReconcileStats>;

export const ActionTaken = z.object({
  kind: z.enum(['backfill_order', 'backfill_fill', 'update_order', 'rebuild_position']),
  key: z.string(),
  detail: z.string(),
});
export type ActionTaken = z.infer<typeof ActionTaken>;

export interface OrderUpdate {
  client_order_id: string;
  status: BookOrder['status'];
  filled_quantity: string;
  exchange_order_id: string;
  reason: string;
}

/** What a correction run would do; pure data, applied to a database or to a Books value. */
export interface CorrectionPlan {
  /** Terminal exchange orders with fills, placed by the trading system (a client id) but lost from the books. */
  backfillOrders: BookOrder[];
  /** Exchange trades missing internally whose order is known internally; trade_id is the venue's. */
  backfillFills: BookFill[];
  orderUpdates: OrderUpdate[];
  /** Positions rebuilt from the corrected fills, for the (account, symbol) pairs the corrections touch. */
  positions: BookPosition[];
  /** Breaks no correction fixes (orphan exchange orders are never cancelled, only reported). */
  unmatched: Discrepancy[];
}

export type ChecksResult = Record<CheckName, CheckResult>;

export interface ReconcileOutcome {
  checks: ChecksResult;
  /** Listed items: every position, P&L and integrity item; orders and fills as `settings.items` says. */
  items: ReconcileItem[];
  discrepancies: Discrepancy[];
  stats: ReconcileStats;
  corrections: CorrectionPlan;
}

export const Verdict = z.enum(['PASS', 'PASS_WITH_CORRECTIONS', 'FAIL']);
export type Verdict = z.infer<typeof Verdict>;

export const ReconciliationReport = z.object({
  format: z.literal(RECONCILIATION_REPORT_FORMAT),
  timestamp: z.string(),
  recovery_type: z.string(),
  checks: z.object({
    database_integrity: CheckResult,
    position_match: CheckResult,
    order_consistency: CheckResult,
    pnl_accuracy: CheckResult,
  }),
  discrepancies: z.array(Discrepancy),
  actions_taken: z.array(ActionTaken),
  ready_to_trade: z.boolean(),
  verdict: Verdict,
  items: z.array(ReconcileItem),
  stats: ReconcileStats,
  /** Who accepted the corrections (required for PASS_WITH_CORRECTIONS to be ready to trade). */
  sign_off: z.string().nullable(),
});
export type ReconciliationReport = z.infer<typeof ReconciliationReport>;
