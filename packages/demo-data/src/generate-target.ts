// Generates a Sofia-shaped target (trading database, state files, reports, config and audit logs) of a chosen size, byte-for-byte the same for the same seed.
import { closeSync, mkdirSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { POSTGRES_TARGET_SCHEMA, SQLITE_TARGET_SCHEMA, TARGET_TABLES } from '@lifeboat/domain';
import Database from 'better-sqlite3';
import pg from 'pg';

export interface GenerateTargetOptions {
  /** Approximate size of the whole target; the database takes about 85% of it. Default 10 MiB. */
  sizeBytes?: number;
  /** Same seed, same content. Default 1. */
  seed?: number;
  /** Where the trading tables go: `trading.db` in the directory, or the database at postgresUrl. Default sqlite. */
  db?: 'sqlite' | 'postgres';
  /** An empty PostgreSQL database (the schema is created if missing); required with db: 'postgres'. */
  postgresUrl?: string;
  /** The target's "now": every timestamp is derived from it. Default 2025-08-29T10:00:00Z. */
  now?: Date;
}

export interface GeneratedTarget {
  dir: string;
  /** Relative paths of every file written, with forward slashes, sorted. */
  files: string[];
  rowCounts: Record<string, number>;
  /** Secret values written to the .env files, keyed `<file>:<NAME>`: none may ever appear in plain text in a store. */
  secrets: Record<string, string>;
  /** Bytes of the files written, plus the tables' size on the server for PostgreSQL. */
  bytes: number;
}

/** The fixed "now" of generated targets: the date of the runbook's example backup. */
export const DEFAULT_TARGET_NOW = new Date('2025-08-29T10:00:00Z');
/**
 * What the account held before its first order; balances are these plus the effect of every
 * fill. Enough that fees (about 0.3 USDT an order) and the positions never starve a 1 GiB book.
 */
export const GENERATED_INITIAL_BALANCES: Readonly<Record<string, string>> = { USDT: '2000000.00000000' };
/** Fees are charged in the quote asset at this rate (Binance's spot taker fee, 0.1%). */
export const GENERATED_FEE_DIVISOR = 1000n;

const MIB = 1024 * 1024;
const DAY_MS = 86_400_000;
/** Orders are spread over the 30 days before `now`. */
const SPAN_MS = 30 * DAY_MS;
/** Daily and end-of-day reports cover the last complete days before `now`. */
const REPORT_DAYS = 7;
const DB_SHARE = 0.85;
/** Orders per transaction: big enough that commits cost nothing, small enough to stay in memory. */
const BATCH_ORDERS = 20_000;
/**
 * Measured bytes one order (with its fills and index entries) adds to the database; the
 * order count is planned from these rather than by watching the file grow, so the rows
 * depend only on the seed and the size, never on the engine's page layout.
 */
const SQLITE_BYTES_PER_ORDER = 660;
const SQLITE_SMALL_BYTES_PER_ORDER = 715;
const POSTGRES_BYTES_PER_ORDER = 640;

/** Fixed-point: every quantity, price and amount is a bigint of 1e-8 units, written with 8 decimals. */
const UNIT = 100_000_000n;

const ACCOUNT = 'main';
/** The exposure per market the simulated strategies steer towards. */
const TARGET_POSITION_USDT = 70_000n;
const STRATEGIES = ['MOMENTUM', 'MEANREV', 'GRID', 'BREAKOUT', 'ARB'] as const;

interface Market {
  symbol: string;
  base: string;
  /** Reference price (late August 2025) the simulated price reverts to. */
  ref: number;
  tick: bigint;
  lot: bigint;
  weight: number;
}

const MARKETS: readonly Market[] = [
  { symbol: 'BTC/USDT', base: 'BTC', ref: 110_000, tick: 1_000_000n, lot: 1_000n, weight: 30 },
  { symbol: 'ETH/USDT', base: 'ETH', ref: 4_400, tick: 1_000_000n, lot: 10_000n, weight: 25 },
  { symbol: 'SOL/USDT', base: 'SOL', ref: 205, tick: 1_000_000n, lot: 100_000n, weight: 15 },
  { symbol: 'BNB/USDT', base: 'BNB', ref: 860, tick: 1_000_000n, lot: 100_000n, weight: 10 },
  { symbol: 'XRP/USDT', base: 'XRP', ref: 2.85, tick: 10_000n, lot: 10_000_000n, weight: 8 },
  { symbol: 'ADA/USDT', base: 'ADA', ref: 0.83, tick: 10_000n, lot: 10_000_000n, weight: 6 },
  { symbol: 'DOGE/USDT', base: 'DOGE', ref: 0.215, tick: 1_000n, lot: UNIT, weight: 6 },
];

// ---------------------------------------------------------------------------------------
// Deterministic randomness and exact decimals

/** mulberry32: a small, fast PRNG whose sequence is fixed by its 32-bit seed. */
class Rng {
  #state: number;

  constructor(seed: number, stream: number) {
    // Each file draws from its own stream, so changing the size (and so the number of
    // orders) leaves the secrets and state files as they were.
    this.#state = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
  }

  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) | 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  chars(n: number, alphabet: string): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.next() * alphabet.length)];
    return s;
  }
}

const HEX = '0123456789abcdef';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A 1e-8 fixed-point amount as a decimal string with exactly 8 decimals. */
export function formatUnits(units: bigint): string {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  return `${negative ? '-' : ''}${abs / UNIT}.${(abs % UNIT).toString().padStart(8, '0')}`;
}

/** a / b rounded half away from zero (b > 0): the one rounding rule of generated amounts. */
export function divRound(a: bigint, b: bigint): bigint {
  const q = a / b;
  const r = a % b;
  if (2n * (r < 0n ? -r : r) >= b) return a < 0n ? q - 1n : q + 1n;
  return q;
}

/**
 * Applies one fill to a position by average cost, as the generator does: a buy moves the
 * average entry price, a sell realizes (price - average) x quantity and leaves the average;
 * a flat position forgets its average. The fee (in the quote asset) is a realized cost of
 * every fill, as the reconciler counts it. Exported so tests recompute positions from fills.
 */
export function applyFillToPosition(
  position: { quantity: bigint; avgEntryPrice: bigint; realizedPnl: bigint },
  side: 'buy' | 'sell',
  quantity: bigint,
  price: bigint,
  fee = 0n,
): void {
  position.realizedPnl -= fee;
  if (side === 'buy') {
    const total = position.quantity + quantity;
    position.avgEntryPrice = divRound(position.quantity * position.avgEntryPrice + quantity * price, total);
    position.quantity = total;
  } else {
    position.realizedPnl += divRound((price - position.avgEntryPrice) * quantity, UNIT);
    position.quantity -= quantity;
    if (position.quantity === 0n) position.avgEntryPrice = 0n;
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();
const day = (ms: number): string => iso(ms).slice(0, 10);

// ---------------------------------------------------------------------------------------
// The trading book: orders, fills, and the positions and balances they imply

type OrderRow = [
  id: string,
  clientOrderId: string,
  exchangeOrderId: string | null,
  account: string,
  strategy: string,
  symbol: string,
  side: 'buy' | 'sell',
  type: 'limit' | 'market',
  quantity: string,
  price: string | null,
  status: string,
  filledQuantity: string,
  mode: string,
  createdAt: string,
  updatedAt: string,
];

type FillRow = [
  tradeId: string,
  orderId: string,
  clientOrderId: string,
  symbol: string,
  side: 'buy' | 'sell',
  quantity: string,
  price: string,
  fee: string,
  feeAsset: string,
  timestamp: string,
];

const ORDER_COLUMNS =
  'id, client_order_id, exchange_order_id, account, strategy, symbol, side, type, quantity, price, status, filled_quantity, mode, created_at, updated_at';
const FILL_COLUMNS = 'trade_id, order_id, client_order_id, symbol, side, quantity, price, fee, fee_asset, timestamp';

interface PositionState {
  quantity: bigint;
  avgEntryPrice: bigint;
  realizedPnl: bigint;
  updatedAt: number;
}

interface DayStats {
  orders: Record<string, number>;
  fills: number;
  volume: bigint;
  fees: bigint;
  realizedPnl: bigint;
  bySymbol: Record<string, { orders: number; fills: number; volume: bigint }>;
}

interface EodSnapshot {
  at: number;
  positions: { symbol: string; quantity: string; avg_entry_price: string; realized_pnl: string }[];
  balances: { asset: string; total: string }[];
}

function symbolStats(stats: DayStats, symbol: string): DayStats['bySymbol'][string] {
  const found = stats.bySymbol[symbol];
  if (found) return found;
  const created = { orders: 0, fills: 0, volume: 0n };
  stats.bySymbol[symbol] = created;
  return created;
}

class TradingBook {
  readonly #rng: Rng;
  readonly #orders: number;
  readonly #start: number;
  readonly #gap: number;
  readonly #openFrom: number;
  readonly #mid: number[];
  readonly #cumWeights: number[];
  readonly positions = new Map<string, PositionState>();
  readonly balances = new Map<string, { total: bigint; updatedAt: number }>();
  readonly #targetValue: bigint;
  #exchangeId = 38_174_000_000;
  #tradeSeq = 0;
  fills = 0;
  // Reports: per-day statistics and end-of-day snapshots for the last complete days.
  readonly #reportFrom: number;
  readonly days = new Map<string, DayStats>();
  readonly eod = new Map<string, EodSnapshot>();
  #nextBoundary: number;

  constructor(seed: number, orders: number, now: number) {
    this.#rng = new Rng(seed, 0);
    this.#orders = orders;
    this.#start = now - SPAN_MS;
    this.#gap = Math.floor(SPAN_MS / orders);
    // The last orders are still working: open orders are recent, as on a real book.
    const open = Math.min(500, Math.max(1, Math.round(orders * 0.02)));
    this.#openFrom = orders - open;
    this.#mid = MARKETS.map((m) => m.ref);
    let sum = 0;
    this.#cumWeights = MARKETS.map((m) => (sum += m.weight));
    const usdt = BigInt(GENERATED_INITIAL_BALANCES.USDT!.replace('.', ''));
    this.balances.set('USDT', { total: usdt, updatedAt: this.#start });
    this.#targetValue = TARGET_POSITION_USDT * UNIT;
    this.#reportFrom = Math.floor(now / DAY_MS) * DAY_MS - REPORT_DAYS * DAY_MS;
    this.#nextBoundary = this.#reportFrom + DAY_MS;
  }

  /** Generates order i (in time order) with its fills, and books the fills. */
  order(i: number): { order: OrderRow; fills: FillRow[] } {
    const rng = this.#rng;
    const t = this.#start + i * this.#gap + rng.int(0, Math.floor(this.#gap / 2));
    this.#snapshotUntil(t);
    // Fills and cancels land before the next order's earliest time, so rows stay in time order.
    const maxDelay = Math.max(0, Math.min(Math.floor(this.#gap / 2) - 1, 3_000));

    const r = rng.next() * this.#cumWeights[this.#cumWeights.length - 1]!;
    const mi = this.#cumWeights.findIndex((w) => r < w);
    const market = MARKETS[mi]!;
    const mid = this.#walk(mi);
    const tickF = Number(market.tick) / 1e8;
    const price = BigInt(Math.max(1, Math.round(mid / tickF))) * market.tick;

    const strategy = rng.pick(STRATEGIES);
    const open = i >= this.#openFrom;
    const type: 'limit' | 'market' = open || rng.next() < 0.8 ? 'limit' : 'market';
    // Slippage of market orders, in ticks, bounded so the cash check below holds.
    const slip = type === 'market' ? BigInt(rng.int(0, 5)) * market.tick : 0n;

    const pos = this.positions.get(market.symbol) ?? { quantity: 0n, avgEntryPrice: 0n, realizedPnl: 0n, updatedAt: 0 };
    const posValue = (pos.quantity * price) / UNIT;
    // Mean-reverting exposure: the fuller a position, the likelier a sell; never short.
    const target = Number(this.#targetValue);
    const pSell = Math.min(0.9, Math.max(0.1, 0.5 + (Number(posValue) - target) / (2 * target)));
    let side: 'buy' | 'sell' = pos.quantity > 0n && rng.next() < pSell ? 'sell' : 'buy';

    // Notional between 10 and 1000 USDT, log-uniform.
    const notional = 10 * 100 ** rng.next();
    let lots = BigInt(Math.max(1, Math.floor(notional / (mid * (Number(market.lot) / 1e8)))));
    let status: string;
    let rejected = false;
    if (side === 'sell') {
      const held = pos.quantity / market.lot;
      if (lots > held) lots = held;
    } else {
      // Enough cash for the worst fill price and its fee (rounded up by at most a unit).
      const cash = this.balances.get('USDT')!.total;
      const worst = price + slip;
      const affordable = (cash * UNIT * GENERATED_FEE_DIVISOR) / (worst * market.lot * (GENERATED_FEE_DIVISOR + 2n));
      if (lots > affordable) {
        if (affordable > 0n) lots = affordable;
        else if (pos.quantity > 0n) {
          side = 'sell';
          lots = pos.quantity / market.lot;
        } else rejected = true;
      }
    }
    const quantity = lots * market.lot;

    let filledLots = 0n;
    if (rejected) status = 'REJECTED';
    else if (open) {
      status = lots > 1n && rng.next() < 0.5 ? 'PARTIAL' : 'NEW';
      if (status === 'PARTIAL') filledLots = 1n + BigInt(Math.floor(rng.next() * Number(lots - 1n)));
    } else {
      const s = rng.next();
      if (type === 'market') status = s < 0.995 ? 'FILLED' : 'REJECTED';
      else status = s < 0.84 ? 'FILLED' : s < 0.96 ? 'CANCELED' : s < 0.99 ? 'EXPIRED' : 'REJECTED';
      if (status === 'FILLED') filledLots = lots;
      // A third of the canceled orders were partly filled first.
      else if (status === 'CANCELED' && lots > 1n && rng.next() < 0.3) {
        filledLots = 1n + BigInt(Math.floor(rng.next() * Number(lots - 1n)));
      }
    }

    const id = `ord_${String(i + 1).padStart(10, '0')}`;
    const clientOrderId = `SOFIA-${strategy}-${t}-${rng.chars(6, HEX)}`;
    let exchangeOrderId: string | null = null;
    if (status !== 'REJECTED') {
      this.#exchangeId += rng.int(1, 40);
      exchangeOrderId = String(this.#exchangeId);
    }

    const fills: FillRow[] = [];
    let last = t;
    if (filledLots > 0n) {
      const parts = Math.min(Number(filledLots), rng.next() < 0.6 ? 1 : rng.next() < 0.75 ? 2 : 3);
      let left = filledLots;
      for (let p = 0; p < parts; p++) {
        const partLots =
          p === parts - 1 ? left : 1n + BigInt(Math.floor(rng.next() * Number(left - BigInt(parts - p))));
        left -= partLots;
        const fillPrice =
          type === 'limit' ? price : side === 'buy' ? price + slip : price - slip > 0n ? price - slip : price;
        last = Math.min(last + rng.int(1, Math.max(1, Math.floor(maxDelay / parts))), t + maxDelay);
        fills.push(this.#fill(id, clientOrderId, market, side, partLots * market.lot, fillPrice, last));
      }
    } else if (status === 'CANCELED' || status === 'EXPIRED') {
      last = t + rng.int(0, maxDelay);
    }
    if (status === 'CANCELED' && filledLots > 0n) last = Math.min(last + 1, t + maxDelay);

    const order: OrderRow = [
      id,
      clientOrderId,
      exchangeOrderId,
      ACCOUNT,
      strategy,
      market.symbol,
      side,
      type,
      formatUnits(quantity),
      type === 'limit' ? formatUnits(price) : null,
      status,
      formatUnits(filledLots * market.lot),
      'live',
      iso(t),
      iso(last),
    ];
    this.#countDay(t, market.symbol, status);
    return { order, fills };
  }

  /** Takes the end-of-day snapshots still due at the end. */
  finish(now: number): void {
    this.#snapshotUntil(now);
  }

  #walk(mi: number): number {
    const market = MARKETS[mi]!;
    const mid = this.#mid[mi]!;
    // Plain arithmetic only (no Math.exp or friends), so every platform draws the same walk.
    const next = mid + (market.ref - mid) * 0.002 + mid * (this.#rng.next() - 0.5) * 0.003;
    this.#mid[mi] = next;
    return next;
  }

  #position(symbol: string): PositionState {
    let p = this.positions.get(symbol);
    if (!p) {
      p = { quantity: 0n, avgEntryPrice: 0n, realizedPnl: 0n, updatedAt: 0 };
      this.positions.set(symbol, p);
    }
    return p;
  }

  #fill(
    orderId: string,
    clientOrderId: string,
    market: Market,
    side: 'buy' | 'sell',
    quantity: bigint,
    price: bigint,
    at: number,
  ): FillRow {
    const notional = (quantity * price) / UNIT; // exact: lots and ticks are multiples of 1e-8 units
    const fee = divRound(notional, GENERATED_FEE_DIVISOR);
    const pos = this.#position(market.symbol);
    const before = pos.realizedPnl;
    applyFillToPosition(pos, side, quantity, price, fee);
    pos.updatedAt = at;
    const usdt = this.balances.get('USDT')!;
    usdt.total += side === 'buy' ? -notional - fee : notional - fee;
    usdt.updatedAt = at;
    const base = this.balances.get(market.base) ?? { total: 0n, updatedAt: at };
    base.total += side === 'buy' ? quantity : -quantity;
    base.updatedAt = at;
    this.balances.set(market.base, base);
    this.fills++;
    const stats = this.#stats(at);
    if (stats) {
      stats.fills++;
      stats.volume += notional;
      stats.fees += fee;
      stats.realizedPnl += pos.realizedPnl - before;
      const bySymbol = symbolStats(stats, market.symbol);
      bySymbol.fills++;
      bySymbol.volume += notional;
    }
    return [
      // Numeric, as the venue's trade ids are.
      String(++this.#tradeSeq),
      orderId,
      clientOrderId,
      market.symbol,
      side,
      formatUnits(quantity),
      formatUnits(price),
      formatUnits(fee),
      'USDT',
      iso(at),
    ];
  }

  #stats(at: number): DayStats | undefined {
    if (at < this.#reportFrom || at >= this.#reportFrom + REPORT_DAYS * DAY_MS) return undefined;
    const key = day(at);
    let s = this.days.get(key);
    if (!s) {
      s = { orders: {}, fills: 0, volume: 0n, fees: 0n, realizedPnl: 0n, bySymbol: {} };
      this.days.set(key, s);
    }
    return s;
  }

  #countDay(at: number, symbol: string, status: string): void {
    const stats = this.#stats(at);
    if (!stats) return;
    stats.orders[status] = (stats.orders[status] ?? 0) + 1;
    symbolStats(stats, symbol).orders++;
  }

  #snapshotUntil(t: number): void {
    const end = this.#reportFrom + REPORT_DAYS * DAY_MS;
    while (this.#nextBoundary <= t && this.#nextBoundary <= end) {
      const at = this.#nextBoundary;
      this.eod.set(day(at - 1), {
        at,
        positions: [...this.positions.entries()].map(([symbol, p]) => ({
          symbol,
          quantity: formatUnits(p.quantity),
          avg_entry_price: formatUnits(p.avgEntryPrice),
          realized_pnl: formatUnits(p.realizedPnl),
        })),
        balances: [...this.balances.entries()].map(([asset, b]) => ({ asset, total: formatUnits(b.total) })),
      });
      this.#nextBoundary += DAY_MS;
    }
  }

  positionRows(): [string, string, string, string, string, string][] {
    return [...this.positions.entries()].map(([symbol, p]) => [
      ACCOUNT,
      symbol,
      formatUnits(p.quantity),
      formatUnits(p.avgEntryPrice),
      formatUnits(p.realizedPnl),
      iso(p.updatedAt),
    ]);
  }

  balanceRows(): [string, string, string, string][] {
    return [...this.balances.entries()].map(([asset, b]) => [ACCOUNT, asset, formatUnits(b.total), iso(b.updatedAt)]);
  }
}

// ---------------------------------------------------------------------------------------
// Database sinks

/** Plans the order count for a database budget. */
function plannedOrders(dbBudget: number, engine: 'sqlite' | 'postgres', pageSize: number): number {
  if (engine === 'postgres') {
    // Every table, index and TOAST table with its index starts with one 8 KiB page.
    return Math.max(3, Math.round((dbBudget - 17 * 8192) / POSTGRES_BYTES_PER_ORDER));
  }
  // The schema alone takes one page per table and index, plus the header page.
  const perOrder = pageSize === 4096 ? SQLITE_BYTES_PER_ORDER : SQLITE_SMALL_BYTES_PER_ORDER;
  return Math.max(3, Math.round((dbBudget - 14 * pageSize) / perOrder));
}

function writeSqlite(file: string, book: TradingBook, orders: number, pageSize: number): void {
  rmSync(file, { force: true });
  for (const suffix of ['-wal', '-shm', '-journal']) rmSync(file + suffix, { force: true });
  const db = new Database(file);
  try {
    db.pragma(`page_size = ${pageSize}`);
    // A throwaway file being filled: no journal, no fsync, one writer; it is made
    // durable and self-contained once, at the end.
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('cache_size = -65536');
    db.exec(SQLITE_TARGET_SCHEMA);
    const insertOrder = db.prepare(`INSERT INTO orders (${ORDER_COLUMNS}) VALUES (${placeholders(15)})`);
    const insertFill = db.prepare(`INSERT INTO fills (${FILL_COLUMNS}) VALUES (${placeholders(10)})`);
    for (let from = 0; from < orders; from += BATCH_ORDERS) {
      db.exec('BEGIN');
      const to = Math.min(orders, from + BATCH_ORDERS);
      for (let i = from; i < to; i++) {
        const { order, fills } = book.order(i);
        insertOrder.run(order);
        for (const fill of fills) insertFill.run(fill);
      }
      db.exec('COMMIT');
    }
    db.exec('BEGIN');
    const insertPosition = db.prepare(
      `INSERT INTO positions (account, symbol, quantity, avg_entry_price, realized_pnl, updated_at) VALUES (${placeholders(6)})`,
    );
    for (const row of book.positionRows()) insertPosition.run(row);
    const insertBalance = db.prepare(
      `INSERT INTO balances (account, asset, total, updated_at) VALUES (${placeholders(4)})`,
    );
    for (const row of book.balanceRows()) insertBalance.run(row);
    db.exec('COMMIT');
    db.pragma('synchronous = FULL');
    // A rollback-journal file with nothing beside it: copyable, and readable anywhere.
    db.pragma('journal_mode = DELETE');
  } finally {
    db.close();
  }
}

async function writePostgres(url: string, book: TradingBook, orders: number): Promise<number> {
  const client = new pg.Client({ connectionString: url, application_name: 'lifeboat-generate-target' });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `generateTarget: PostgreSQL at ${redactPassword(url)} unreachable: ${(err as Error).message} (is the server running?)`,
      { cause: err },
    );
  }
  try {
    await client.query(POSTGRES_TARGET_SCHEMA);
    const { rows } = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM orders');
    if (rows[0]!.n !== '0') {
      throw new Error(
        `generateTarget: orders in ${redactPassword(url)} already holds ${rows[0]!.n} rows; generate into an empty database`,
      );
    }
    // unnest() of one array per column: a whole batch in one statement with 15 parameters,
    // far below PostgreSQL's parameter limit and much faster than one INSERT per row.
    const orderSql = `INSERT INTO orders (${ORDER_COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::numeric[], $10::numeric[], $11::text[], $12::numeric[], $13::text[], $14::timestamptz[], $15::timestamptz[])`;
    const fillSql = `INSERT INTO fills (${FILL_COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::numeric[], $8::numeric[], $9::text[], $10::timestamptz[])`;
    const batch = 5_000;
    for (let from = 0; from < orders; from += batch) {
      const orderCols: (string | null)[][] = Array.from({ length: 15 }, () => []);
      const fillCols: (string | null)[][] = Array.from({ length: 10 }, () => []);
      const to = Math.min(orders, from + batch);
      for (let i = from; i < to; i++) {
        const { order, fills } = book.order(i);
        for (let c = 0; c < order.length; c++) orderCols[c]!.push(order[c]!);
        for (const fill of fills) for (let c = 0; c < fill.length; c++) fillCols[c]!.push(fill[c]!);
      }
      await client.query('BEGIN');
      await client.query(orderSql, orderCols);
      if (fillCols[0]!.length > 0) await client.query(fillSql, fillCols);
      await client.query('COMMIT');
    }
    await client.query('BEGIN');
    for (const row of book.positionRows()) {
      await client.query(
        'INSERT INTO positions (account, symbol, quantity, avg_entry_price, realized_pnl, updated_at) VALUES ($1, $2, $3, $4, $5, $6)',
        row,
      );
    }
    for (const row of book.balanceRows()) {
      await client.query('INSERT INTO balances (account, asset, total, updated_at) VALUES ($1, $2, $3, $4)', row);
    }
    await client.query('COMMIT');
    const { rows: size } = await client.query<{ bytes: string }>(
      `SELECT sum(pg_total_relation_size(c.oid))::text AS bytes FROM pg_class c
        WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1)`,
      [[...TARGET_TABLES]],
    );
    return Number(size[0]!.bytes ?? 0);
  } finally {
    await client.end().catch(() => {});
  }
}

const placeholders = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

function urlPassword(url: string): string | undefined {
  try {
    const password = new URL(url).password;
    return password ? decodeURIComponent(password) : undefined;
  } catch {
    return undefined;
  }
}

function redactPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable URL>';
  }
}

// ---------------------------------------------------------------------------------------
// Files

/** Appends lines through a large buffer: the jsonl files reach hundreds of megabytes. */
class LineWriter {
  readonly #fd: number;
  #chunks: string[] = [];
  #pending = 0;
  bytes = 0;

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true });
    this.#fd = openSync(file, 'w');
  }

  line(text: string): void {
    this.#chunks.push(text, '\n');
    const n = Buffer.byteLength(text) + 1;
    this.#pending += n;
    this.bytes += n;
    if (this.#pending >= 4 * MIB) this.#flush();
  }

  close(): void {
    this.#flush();
    closeSync(this.#fd);
  }

  #flush(): void {
    if (this.#chunks.length > 0) writeSync(this.#fd, this.#chunks.join(''));
    this.#chunks = [];
    this.#pending = 0;
  }
}

function writeText(dir: string, rel: string, text: string): void {
  const file = join(dir, rel);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

interface KillSwitchEvent {
  trigger: string;
  reason: string;
  timestamp: string;
  metadata: Record<string, unknown>;
  activated: boolean;
}

/** Past kill-switch episodes (each an activation and its release); the switch is OFF now. */
function killSwitchEvents(seed: number, now: number): KillSwitchEvent[] {
  const rng = new Rng(seed, 1);
  const templates: ((r: Rng) => Omit<KillSwitchEvent, 'timestamp' | 'activated'>)[] = [
    () => ({
      trigger: 'MANUAL',
      reason: 'Scheduled exchange maintenance',
      metadata: { operator: 'ops', ticket: 'OPS-214' },
    }),
    (r) => {
      const dd = (5 + r.int(1, 30) / 10).toFixed(1);
      return {
        trigger: 'MAX_DRAWDOWN',
        reason: `Daily drawdown ${dd}% exceeded limit 5.0%`,
        metadata: { drawdown_pct: dd, limit_pct: '5.0' },
      };
    },
    (r) => {
      const errors = r.int(10, 25);
      return {
        trigger: 'API_ERRORS',
        reason: `${errors} consecutive exchange API errors`,
        metadata: { error_count: errors, window_seconds: 60, last_error: 'HTTP 503 Service Unavailable' },
      };
    },
    (r) => {
      const symbol = r.pick(MARKETS).symbol;
      return {
        trigger: 'RECONCILIATION_MISMATCH',
        reason: `Position mismatch on ${symbol} after restart`,
        metadata: { symbol, discrepancies_found: r.int(1, 3) },
      };
    },
  ];
  const episodes = rng.int(2, 4);
  const events: KillSwitchEvent[] = [];
  for (let e = 0; e < episodes; e++) {
    // Episodes sit in separate slices of the span, so they never overlap.
    const slice = SPAN_MS / episodes;
    const at = now - SPAN_MS + Math.floor(e * slice + rng.next() * slice * 0.8);
    const cause = rng.pick(templates)(rng);
    events.push({ ...cause, timestamp: iso(at), activated: true });
    const releasedAt = at + rng.int(10, 120) * 60_000;
    events.push({
      trigger: 'MANUAL',
      reason: `Resolved: ${cause.reason.charAt(0).toLowerCase()}${cause.reason.slice(1)}`,
      timestamp: iso(releasedAt),
      metadata: { operator: 'ops', previous_trigger: cause.trigger },
      activated: false,
    });
  }
  return events;
}

/** One line per order placed in shadow mode (simulated, never sent to the exchange). */
function writeShadowOrders(file: string, seed: number, now: number, budget: number): number {
  const rng = new Rng(seed, 2);
  const out = new LineWriter(file);
  const estimated = Math.max(3, Math.floor(budget / 330));
  const step = Math.floor((SPAN_MS - 60_000) / estimated);
  const mids = MARKETS.map((m) => m.ref);
  for (let i = 0; i < 3 || out.bytes < budget; i++) {
    const at = Math.min(now - 1, now - SPAN_MS + i * step + rng.int(0, Math.max(0, Math.floor(step / 2))));
    const mi = rng.int(0, MARKETS.length - 1);
    const market = MARKETS[mi]!;
    const mid = mids[mi]!;
    mids[mi] = mid + (market.ref - mid) * 0.002 + mid * (rng.next() - 0.5) * 0.003;
    const price = BigInt(Math.max(1, Math.round(mids[mi]! / (Number(market.tick) / 1e8)))) * market.tick;
    const lots = BigInt(Math.max(1, Math.floor((10 * 100 ** rng.next()) / (mids[mi]! * (Number(market.lot) / 1e8)))));
    const strategy = rng.pick(STRATEGIES);
    const type = rng.next() < 0.8 ? 'limit' : 'market';
    out.line(
      JSON.stringify({
        order_id: `SOFIA-${strategy}-${at}-${rng.chars(6, HEX)}`,
        symbol: market.symbol,
        side: rng.next() < 0.5 ? 'buy' : 'sell',
        type,
        quantity: formatUnits(lots * market.lot),
        price: formatUnits(price),
        mode: 'shadow',
        executed: rng.next() < 0.9,
        timestamp: iso(at),
        metadata: {
          strategy,
          signal_strength: (rng.int(50, 99) / 100).toFixed(2),
          reference_price: formatUnits(price),
          latency_ms: rng.int(2, 80),
        },
      }),
    );
  }
  out.close();
  return out.bytes;
}

/** The service's audit trail: requests, order events, risk checks and the kill-switch history. */
function writeAuditLog(file: string, seed: number, now: number, budget: number, kill: KillSwitchEvent[]): number {
  const rng = new Rng(seed, 3);
  const out = new LineWriter(file);
  const estimated = Math.max(3, Math.floor(budget / 230));
  const step = Math.floor((SPAN_MS - 60_000) / estimated);
  const pending = [...kill];
  const paths = ['/health', '/risk/positions', '/exchange/positions', '/orders', '/reconciliation/status'];
  for (let i = 0; i < 3 || out.bytes < budget; i++) {
    const at = Math.min(now - 1, now - SPAN_MS + i * step + rng.int(0, Math.max(0, Math.floor(step / 2))));
    while (pending.length > 0 && Date.parse(pending[0]!.timestamp) <= at) {
      const k = pending.shift()!;
      out.line(
        JSON.stringify({
          timestamp: k.timestamp,
          level: 'WARNING',
          event: k.activated ? 'kill_switch.activated' : 'kill_switch.deactivated',
          service: 'sofia-trading',
          request_id: rng.chars(8, HEX),
          details: { trigger: k.trigger, reason: k.reason },
        }),
      );
    }
    const market = rng.pick(MARKETS);
    const strategy = rng.pick(STRATEGIES);
    const kind = rng.next();
    let event: string;
    let details: Record<string, unknown>;
    if (kind < 0.35) {
      event = 'order.submitted';
      details = {
        client_order_id: `SOFIA-${strategy}-${at}-${rng.chars(6, HEX)}`,
        symbol: market.symbol,
        side: rng.next() < 0.5 ? 'buy' : 'sell',
        strategy,
      };
    } else if (kind < 0.6) {
      event = 'order.filled';
      details = {
        client_order_id: `SOFIA-${strategy}-${at - rng.int(5, 900)}-${rng.chars(6, HEX)}`,
        symbol: market.symbol,
      };
    } else if (kind < 0.7) {
      event = 'order.canceled';
      details = {
        client_order_id: `SOFIA-${strategy}-${at - rng.int(1_000, 60_000)}-${rng.chars(6, HEX)}`,
        reason: 'stale_quote',
      };
    } else if (kind < 0.85) {
      event = 'risk.check.passed';
      details = {
        exposure_usdt: `${rng.int(20_000, 90_000)}.00`,
        limit_usdt: '100000.00',
        open_orders: rng.int(0, 40),
      };
    } else {
      event = 'api.request';
      details = { method: 'GET', path: rng.pick(paths), status: 200, latency_ms: rng.int(1, 40) };
    }
    out.line(
      JSON.stringify({
        timestamp: iso(at),
        level: 'INFO',
        event,
        service: 'sofia-trading',
        request_id: rng.chars(8, HEX),
        details,
      }),
    );
  }
  out.close();
  return out.bytes;
}

function envFiles(
  seed: number,
  databaseUrl: string,
): { files: Record<string, string>; secrets: Record<string, string> } {
  const rng = new Rng(seed, 4);
  const secrets: Record<string, string> = {};
  const files: Record<string, string> = {};
  const secret = (file: string, name: string, value: string): string => {
    secrets[`${file}:${name}`] = value;
    return `${name}=${value}`;
  };
  const telegram = `${rng.int(100_000_000, 999_999_999)}:AA${rng.chars(33, `${ALNUM}_-`)}`;
  files['.env'] = [
    '# Sofia Trading System: production',
    'TRADING_MODE=live',
    'KILL_SWITCH=AUTO',
    'API_HOST=0.0.0.0',
    'API_PORT=8023',
    'EXCHANGE=binance',
    'EXCHANGE_TESTNET=false',
    secret('.env', 'EXCHANGE_API_KEY', rng.chars(64, ALNUM)),
    secret('.env', 'EXCHANGE_API_SECRET', rng.chars(64, ALNUM)),
    `DATABASE_URL=${databaseUrl}`,
    secret('.env', 'TELEGRAM_BOT_TOKEN', telegram),
    `TELEGRAM_CHAT_ID=-100${rng.int(1_000_000_000, 1_999_999_999)}`,
    'MAX_POSITION_USDT=100000',
    'MAX_DAILY_DRAWDOWN_PCT=5.0',
    'LOG_LEVEL=INFO',
    '',
  ].join('\n');
  files['.env.testnet'] = [
    '# Sofia Trading System: Binance spot testnet',
    'TRADING_MODE=shadow',
    'KILL_SWITCH=AUTO',
    'API_HOST=127.0.0.1',
    'API_PORT=8024',
    'EXCHANGE=binance',
    'EXCHANGE_TESTNET=true',
    secret('.env.testnet', 'EXCHANGE_API_KEY', rng.chars(64, ALNUM)),
    secret('.env.testnet', 'EXCHANGE_API_SECRET', rng.chars(64, ALNUM)),
    'DATABASE_URL=sqlite:///trading_testnet.db',
    'LOG_LEVEL=DEBUG',
    '',
  ].join('\n');
  return { files, secrets };
}

function writeReports(put: (rel: string, text: string) => void, book: TradingBook, now: number): void {
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  for (let d = REPORT_DAYS; d >= 1; d--) {
    const start = today - d * DAY_MS;
    const date = day(start);
    const s = book.days.get(date) ?? { orders: {}, fills: 0, volume: 0n, fees: 0n, realizedPnl: 0n, bySymbol: {} };
    const daily = {
      date,
      type: 'daily',
      generated_at: iso(start + DAY_MS + 5 * 60_000),
      account: ACCOUNT,
      orders: {
        total: Object.values(s.orders).reduce((a, b) => a + b, 0),
        ...Object.fromEntries(Object.entries(s.orders).sort(([a], [b]) => (a < b ? -1 : 1))),
      },
      fills: s.fills,
      volume_usdt: formatUnits(s.volume),
      fees_usdt: formatUnits(s.fees),
      realized_pnl_usdt: formatUnits(s.realizedPnl),
      by_symbol: Object.fromEntries(
        Object.entries(s.bySymbol)
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([symbol, v]) => [symbol, { orders: v.orders, fills: v.fills, volume_usdt: formatUnits(v.volume) }]),
      ),
    };
    put(`reports/daily/${date}.json`, `${JSON.stringify(daily, null, 2)}\n`);
    const snap = book.eod.get(date);
    const eod = {
      date,
      type: 'eod',
      generated_at: iso(start + DAY_MS + 10 * 60_000),
      account: ACCOUNT,
      positions: snap?.positions ?? [],
      balances: snap?.balances ?? [],
      reconciliation: { status: 'success', discrepancies_found: 0 },
    };
    put(`reports/eod/${date}.json`, `${JSON.stringify(eod, null, 2)}\n`);
  }
  // The runbook's reconciliation report template, as of the last scheduled run.
  const reconciliation = {
    timestamp: iso(today + 2 * 3_600_000),
    recovery_type: 'scheduled',
    checks: { database_integrity: 'PASS', position_match: 'PASS', order_consistency: 'PASS', pnl_accuracy: 'PASS' },
    discrepancies: [],
    actions_taken: [],
    ready_to_trade: true,
  };
  put(`reports/reconciliation/${day(today)}.json`, `${JSON.stringify(reconciliation, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------

/** Creates a Sofia-shaped target in dir (made if missing); files already there are replaced. */
export async function generateTarget(dir: string, options: GenerateTargetOptions = {}): Promise<GeneratedTarget> {
  const sizeBytes = options.sizeBytes ?? 10 * MIB;
  const seed = options.seed ?? 1;
  const engine = options.db ?? 'sqlite';
  const now = (options.now ?? DEFAULT_TARGET_NOW).getTime();
  if (!Number.isFinite(sizeBytes) || sizeBytes <= 0)
    throw new Error(`generateTarget: sizeBytes must be > 0, got ${sizeBytes}`);
  if (!Number.isInteger(seed)) throw new Error(`generateTarget: seed must be an integer, got ${seed}`);
  if (engine === 'postgres' && !options.postgresUrl) {
    throw new Error("generateTarget: db 'postgres' needs postgresUrl (an empty database)");
  }
  const root = resolve(dir);
  mkdirSync(root, { recursive: true });
  const written: string[] = [];
  const put = (rel: string, text: string): void => {
    writeText(root, rel, text);
    written.push(rel);
  };

  const dbBudget = Math.round(sizeBytes * DB_SHARE);
  // Small pages let a target of a few kilobytes still hold a few orders.
  const pageSize = dbBudget < MIB ? 1024 : 4096;
  const orders = plannedOrders(dbBudget, engine, pageSize);
  const book = new TradingBook(seed, orders, now);
  let dbBytes = 0;
  if (engine === 'sqlite') writeSqlite(join(root, 'trading.db'), book, orders, pageSize);
  else dbBytes = await writePostgres(options.postgresUrl!, book, orders);
  book.finish(now);

  const kill = killSwitchEvents(seed, now);
  const killState = { state: 'OFF', events: kill, last_updated: kill[kill.length - 1]!.timestamp };
  put('kill_switch_state.json', `${JSON.stringify(killState, null, 2)}\n`);
  writeReports(put, book, now);
  const env = envFiles(seed, engine === 'sqlite' ? 'sqlite:///trading.db' : options.postgresUrl!);
  for (const [name, text] of Object.entries(env.files)) put(name, text);
  const password = engine === 'postgres' ? urlPassword(options.postgresUrl!) : undefined;
  if (password) env.secrets['.env:DATABASE_PASSWORD'] = password;

  // What is left of the budget after the database and the small files: about half each
  // for the shadow orders and the audit log.
  const small = written.reduce((sum, f) => sum + statSync(join(root, f)).size, 0);
  const rest = Math.max(0, sizeBytes - dbBudget - small);
  writeShadowOrders(join(root, 'shadow_orders.jsonl'), seed, now, Math.floor(rest / 2));
  writeAuditLog(join(root, 'logs', 'audit.jsonl'), seed, now, rest - Math.floor(rest / 2), kill);
  written.push('shadow_orders.jsonl', 'logs/audit.jsonl');
  if (engine === 'sqlite') written.push('trading.db');

  const files = written.sort();
  const fileBytes = files.reduce((sum, f) => sum + statSync(join(root, f)).size, 0);
  return {
    dir: root,
    files,
    rowCounts: {
      orders,
      fills: book.fills,
      positions: book.positions.size,
      balances: book.balances.size,
    },
    secrets: env.secrets,
    bytes: fileBytes + dbBytes,
  };
}
