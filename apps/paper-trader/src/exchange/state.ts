// The simulated exchange's books in their own SQLite file (`<dir>/exchange.db`): accounts,
// balances, orders, trades and prices, changed only inside transactions so that a SIGKILL
// at any moment leaves a venue whose balances, orders and trades agree.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseUnits } from './decimal.js';

export type Side = 'BUY' | 'SELL';
export type OrderType = 'LIMIT' | 'MARKET';
export type TimeInForce = 'GTC' | 'IOC' | 'FOK';
export type OrderStatus = 'NEW' | 'PARTIALLY_FILLED' | 'FILLED' | 'CANCELED' | 'REJECTED' | 'EXPIRED';

export const OPEN_STATUSES: readonly OrderStatus[] = ['NEW', 'PARTIALLY_FILLED'];

export interface Account {
  id: number;
  apiKey: string;
  secret: string;
}

/** Amounts are decimal strings with eight decimals, as Binance prints them. */
export interface Balance {
  asset: string;
  free: string;
  locked: string;
}

export interface Order {
  orderId: number;
  accountId: number;
  clientOrderId: string;
  symbol: string;
  side: Side;
  type: OrderType;
  timeInForce: TimeInForce;
  /** The limit price; "0.00000000" for market orders, as on Binance. */
  price: string;
  origQty: string;
  executedQty: string;
  cummulativeQuoteQty: string;
  origQuoteOrderQty: string;
  status: OrderStatus;
  time: number;
  updateTime: number;
  /** What this order still holds locked (quote for buys, base for sells), released when it ends. */
  lockedAsset: string;
  lockedAmount: string;
}

export interface Trade {
  id: number;
  orderId: number;
  accountId: number;
  symbol: string;
  side: Side;
  price: string;
  qty: string;
  quoteQty: string;
  commission: string;
  commissionAsset: string;
  time: number;
  isBuyer: boolean;
  isMaker: boolean;
}

export interface RangeQuery {
  startTime?: number;
  endTime?: number;
  /** At most this many rows. */
  limit: number;
}

export interface OrderRequestStats {
  /** POST /api/v3/order requests that reached the exchange, whatever their outcome. */
  total: number;
  /** Requests that created an order (any status but REJECTED). */
  accepted: number;
  /** Requests refused: bad signature or parameters, insufficient balance, duplicates, faults. */
  refused: number;
  /** Requests whose client order id starts with the asked prefix, when one was asked. */
  withPrefix?: number;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
  id INTEGER PRIMARY KEY,
  api_key TEXT NOT NULL UNIQUE,
  secret TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS balances (
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  asset TEXT NOT NULL,
  free TEXT NOT NULL,
  locked TEXT NOT NULL,
  PRIMARY KEY (account_id, asset)
);
CREATE TABLE IF NOT EXISTS orders (
  order_id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  client_order_id TEXT NOT NULL,
  symbol TEXT NOT NULL,
  side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
  type TEXT NOT NULL CHECK (type IN ('LIMIT', 'MARKET')),
  time_in_force TEXT NOT NULL,
  price TEXT NOT NULL,
  -- The limit price in 1e-8 units, so that crossing orders are found by an indexed range.
  price_units INTEGER NOT NULL,
  orig_qty TEXT NOT NULL,
  executed_qty TEXT NOT NULL,
  cummulative_quote_qty TEXT NOT NULL,
  orig_quote_order_qty TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('NEW', 'PARTIALLY_FILLED', 'FILLED', 'CANCELED', 'REJECTED', 'EXPIRED')),
  locked_asset TEXT NOT NULL,
  locked_amount TEXT NOT NULL,
  time INTEGER NOT NULL,
  update_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_open ON orders (symbol, side, price_units)
  WHERE status IN ('NEW', 'PARTIALLY_FILLED');
CREATE INDEX IF NOT EXISTS orders_client_id ON orders (account_id, client_order_id);
CREATE INDEX IF NOT EXISTS orders_account_symbol ON orders (account_id, symbol, order_id);
CREATE TABLE IF NOT EXISTS trades (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  order_id INTEGER NOT NULL REFERENCES orders(order_id),
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  symbol TEXT NOT NULL,
  side TEXT NOT NULL,
  price TEXT NOT NULL,
  qty TEXT NOT NULL,
  quote_qty TEXT NOT NULL,
  commission TEXT NOT NULL,
  commission_asset TEXT NOT NULL,
  time INTEGER NOT NULL,
  is_buyer INTEGER NOT NULL,
  is_maker INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS trades_account_symbol ON trades (account_id, symbol, id);
CREATE INDEX IF NOT EXISTS trades_order ON trades (order_id);
CREATE TABLE IF NOT EXISTS prices (
  symbol TEXT PRIMARY KEY,
  price TEXT NOT NULL,
  update_time INTEGER NOT NULL
);
-- Every order request that reached the venue, so drills can count them (the kill switch
-- test: none while it is ON).
CREATE TABLE IF NOT EXISTS order_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  client_order_id TEXT,
  symbol TEXT,
  outcome TEXT NOT NULL
);
`;

interface OrderRow {
  order_id: number;
  account_id: number;
  client_order_id: string;
  symbol: string;
  side: Side;
  type: OrderType;
  time_in_force: TimeInForce;
  price: string;
  orig_qty: string;
  executed_qty: string;
  cummulative_quote_qty: string;
  orig_quote_order_qty: string;
  status: OrderStatus;
  locked_asset: string;
  locked_amount: string;
  time: number;
  update_time: number;
}

interface TradeRow {
  id: number;
  order_id: number;
  account_id: number;
  symbol: string;
  side: Side;
  price: string;
  qty: string;
  quote_qty: string;
  commission: string;
  commission_asset: string;
  time: number;
  is_buyer: number;
  is_maker: number;
}

function toOrder(r: OrderRow): Order {
  return {
    orderId: r.order_id,
    accountId: r.account_id,
    clientOrderId: r.client_order_id,
    symbol: r.symbol,
    side: r.side,
    type: r.type,
    timeInForce: r.time_in_force,
    price: r.price,
    origQty: r.orig_qty,
    executedQty: r.executed_qty,
    cummulativeQuoteQty: r.cummulative_quote_qty,
    origQuoteOrderQty: r.orig_quote_order_qty,
    status: r.status,
    time: r.time,
    updateTime: r.update_time,
    lockedAsset: r.locked_asset,
    lockedAmount: r.locked_amount,
  };
}

function toTrade(r: TradeRow): Trade {
  return {
    id: r.id,
    orderId: r.order_id,
    accountId: r.account_id,
    symbol: r.symbol,
    side: r.side,
    price: r.price,
    qty: r.qty,
    quoteQty: r.quote_qty,
    commission: r.commission,
    commissionAsset: r.commission_asset,
    time: r.time,
    isBuyer: r.is_buyer === 1,
    isMaker: r.is_maker === 1,
  };
}

/** Rows of a range query: the first `limit` from a given start, else the most recent `limit`, oldest first. */
function rangeWindow<T>(rows: T[], fromStart: boolean, limit: number): T[] {
  if (fromStart) return rows.slice(0, limit);
  return rows.slice(Math.max(0, rows.length - limit));
}

export type NewOrder = Omit<Order, 'orderId'> & { priceUnits: bigint };
export type OrderChange = Pick<
  Order,
  'executedQty' | 'cummulativeQuoteQty' | 'status' | 'updateTime' | 'lockedAmount' | 'origQty'
>;

export class ExchangeState {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'exchange.db');
    this.db = new Database(this.path);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode never corrupts; a power cut (not a process kill) may lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const version = this.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).pluck().get() as
      | string
      | undefined;
    if (version === undefined) {
      this.db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?)`).run(String(SCHEMA_VERSION));
    } else if (Number(version) !== SCHEMA_VERSION) {
      this.db.close();
      throw new Error(`${this.path} has schema version ${version}, this exchange knows ${SCHEMA_VERSION}`);
    }
    const db = this.db;
    this.stmts = {
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      accountByKey: db.prepare('SELECT id, api_key AS apiKey, secret FROM accounts WHERE api_key = ?'),
      insertAccount: db.prepare('INSERT INTO accounts (api_key, secret, created_at) VALUES (?, ?, ?)'),
      updateSecret: db.prepare('UPDATE accounts SET secret = ? WHERE id = ?'),
      balances: db.prepare('SELECT asset, free, locked FROM balances WHERE account_id = ? ORDER BY asset'),
      balance: db.prepare('SELECT asset, free, locked FROM balances WHERE account_id = ? AND asset = ?'),
      upsertBalance: db.prepare(
        `INSERT INTO balances (account_id, asset, free, locked) VALUES (?, ?, ?, ?)
         ON CONFLICT (account_id, asset) DO UPDATE SET free = excluded.free, locked = excluded.locked`,
      ),
      insertOrder: db.prepare(
        `INSERT INTO orders (account_id, client_order_id, symbol, side, type, time_in_force, price, price_units,
           orig_qty, executed_qty, cummulative_quote_qty, orig_quote_order_qty, status, locked_asset, locked_amount,
           time, update_time)
         VALUES (@accountId, @clientOrderId, @symbol, @side, @type, @timeInForce, @price, @priceUnits,
           @origQty, @executedQty, @cummulativeQuoteQty, @origQuoteOrderQty, @status, @lockedAsset, @lockedAmount,
           @time, @updateTime)`,
      ),
      updateOrder: db.prepare(
        `UPDATE orders SET orig_qty = @origQty, executed_qty = @executedQty,
           cummulative_quote_qty = @cummulativeQuoteQty, status = @status, update_time = @updateTime,
           locked_amount = @lockedAmount
         WHERE order_id = @orderId`,
      ),
      order: db.prepare('SELECT * FROM orders WHERE order_id = ?'),
      orderByClientId: db.prepare(
        'SELECT * FROM orders WHERE account_id = ? AND client_order_id = ? ORDER BY order_id DESC LIMIT 1',
      ),
      openOrderByClientId: db.prepare(
        `SELECT * FROM orders WHERE account_id = ? AND client_order_id = ?
           AND status IN ('NEW', 'PARTIALLY_FILLED') LIMIT 1`,
      ),
      openOrders: db.prepare(
        `SELECT * FROM orders WHERE account_id = ? AND status IN ('NEW', 'PARTIALLY_FILLED') ORDER BY order_id`,
      ),
      openOrdersForSymbol: db.prepare(
        `SELECT * FROM orders WHERE account_id = ? AND symbol = ? AND status IN ('NEW', 'PARTIALLY_FILLED')
         ORDER BY order_id`,
      ),
      crossingBuys: db.prepare(
        `SELECT * FROM orders WHERE symbol = ? AND side = 'BUY' AND price_units >= ?
           AND status IN ('NEW', 'PARTIALLY_FILLED') ORDER BY order_id`,
      ),
      crossingSells: db.prepare(
        `SELECT * FROM orders WHERE symbol = ? AND side = 'SELL' AND price_units <= ?
           AND status IN ('NEW', 'PARTIALLY_FILLED') ORDER BY order_id`,
      ),
      allOrders: db.prepare(
        `SELECT * FROM orders WHERE account_id = @accountId AND symbol = @symbol
           AND order_id >= @fromId AND time >= @startTime AND time <= @endTime
         ORDER BY order_id`,
      ),
      insertTrade: db.prepare(
        `INSERT INTO trades (order_id, account_id, symbol, side, price, qty, quote_qty, commission, commission_asset,
           time, is_buyer, is_maker)
         VALUES (@orderId, @accountId, @symbol, @side, @price, @qty, @quoteQty, @commission, @commissionAsset,
           @time, @isBuyer, @isMaker)`,
      ),
      trades: db.prepare(
        `SELECT * FROM trades WHERE account_id = @accountId AND symbol = @symbol
           AND id >= @fromId AND time >= @startTime AND time <= @endTime
           AND (@orderId IS NULL OR order_id = @orderId)
         ORDER BY id`,
      ),
      tradesOfOrder: db.prepare('SELECT * FROM trades WHERE order_id = ? ORDER BY id'),
      prices: db.prepare('SELECT symbol, price FROM prices'),
      setPrice: db.prepare(
        `INSERT INTO prices (symbol, price, update_time) VALUES (?, ?, ?)
         ON CONFLICT (symbol) DO UPDATE SET price = excluded.price, update_time = excluded.update_time`,
      ),
      recordRequest: db.prepare(
        'INSERT INTO order_requests (time, client_order_id, symbol, outcome) VALUES (?, ?, ?, ?)',
      ),
      requestCount: db.prepare(`SELECT count(*) FROM order_requests`).pluck(),
      acceptedCount: db.prepare(`SELECT count(*) FROM order_requests WHERE outcome = 'accepted'`).pluck(),
      prefixCount: db
        .prepare('SELECT count(*) FROM order_requests WHERE substr(client_order_id, 1, length(@prefix)) = @prefix')
        .pluck(),
      openOrderCount: db.prepare(`SELECT count(*) FROM orders WHERE status IN ('NEW', 'PARTIALLY_FILLED')`).pluck(),
      tradeCount: db.prepare('SELECT count(*) FROM trades').pluck(),
    };
  }

  /** Runs fn in one write transaction: all of its changes land, or none. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  getMeta(key: string): string | undefined {
    return this.stmts.getMeta.get(key) as string | undefined;
  }

  setMeta(key: string, value: string): void {
    this.stmts.setMeta.run(key, value);
  }

  accountByKey(apiKey: string): Account | undefined {
    return this.stmts.accountByKey.get(apiKey) as Account | undefined;
  }

  /**
   * The account for this key, created with its initial balances the first time; the secret
   * is the configured one (so rotating it in the configuration takes effect).
   */
  ensureAccount(apiKey: string, secret: string, initialBalances: Record<string, string>, now: number): Account {
    return this.transaction(() => {
      const existing = this.accountByKey(apiKey);
      if (existing) {
        if (existing.secret !== secret) this.stmts.updateSecret.run(secret, existing.id);
        return { ...existing, secret };
      }
      const id = Number(this.stmts.insertAccount.run(apiKey, secret, now).lastInsertRowid);
      for (const [asset, free] of Object.entries(initialBalances)) {
        this.stmts.upsertBalance.run(id, asset, free, '0.00000000');
      }
      return { id, apiKey, secret };
    });
  }

  balances(accountId: number): Balance[] {
    return this.stmts.balances.all(accountId) as Balance[];
  }

  balance(accountId: number, asset: string): Balance {
    return (
      (this.stmts.balance.get(accountId, asset) as Balance | undefined) ?? {
        asset,
        free: '0.00000000',
        locked: '0.00000000',
      }
    );
  }

  setBalance(accountId: number, asset: string, free: string, locked: string): void {
    this.stmts.upsertBalance.run(accountId, asset, free, locked);
  }

  insertOrder(order: NewOrder): number {
    return Number(this.stmts.insertOrder.run({ ...order, priceUnits: Number(order.priceUnits) }).lastInsertRowid);
  }

  updateOrder(orderId: number, change: OrderChange): void {
    this.stmts.updateOrder.run({
      orderId,
      origQty: change.origQty,
      executedQty: change.executedQty,
      cummulativeQuoteQty: change.cummulativeQuoteQty,
      status: change.status,
      updateTime: change.updateTime,
      lockedAmount: change.lockedAmount,
    });
  }

  order(orderId: number): Order | undefined {
    const row = this.stmts.order.get(orderId) as OrderRow | undefined;
    return row && toOrder(row);
  }

  /** The latest order with this client id (a client id may be reused once its order has ended). */
  orderByClientId(accountId: number, clientOrderId: string): Order | undefined {
    const row = this.stmts.orderByClientId.get(accountId, clientOrderId) as OrderRow | undefined;
    return row && toOrder(row);
  }

  openOrderByClientId(accountId: number, clientOrderId: string): Order | undefined {
    const row = this.stmts.openOrderByClientId.get(accountId, clientOrderId) as OrderRow | undefined;
    return row && toOrder(row);
  }

  openOrders(accountId: number, symbol?: string): Order[] {
    const rows = (
      symbol === undefined
        ? this.stmts.openOrders.all(accountId)
        : this.stmts.openOrdersForSymbol.all(accountId, symbol)
    ) as OrderRow[];
    return rows.map(toOrder);
  }

  /** Open orders of every account that the price crosses: buys at or above it, sells at or below. */
  crossingOrders(symbol: string, priceUnits: bigint): Order[] {
    const p = Number(priceUnits);
    const rows = [
      ...(this.stmts.crossingBuys.all(symbol, p) as OrderRow[]),
      ...(this.stmts.crossingSells.all(symbol, p) as OrderRow[]),
    ];
    return rows.sort((a, b) => a.order_id - b.order_id).map(toOrder);
  }

  allOrders(accountId: number, symbol: string, query: RangeQuery & { fromOrderId?: number }): Order[] {
    const rows = this.stmts.allOrders.all({
      accountId,
      symbol,
      fromId: query.fromOrderId ?? 0,
      startTime: query.startTime ?? 0,
      endTime: query.endTime ?? Number.MAX_SAFE_INTEGER,
    }) as OrderRow[];
    const fromStart = query.fromOrderId !== undefined || query.startTime !== undefined;
    return rangeWindow(rows, fromStart, query.limit).map(toOrder);
  }

  insertTrade(trade: Omit<Trade, 'id'>): number {
    return Number(
      this.stmts.insertTrade.run({ ...trade, isBuyer: trade.isBuyer ? 1 : 0, isMaker: trade.isMaker ? 1 : 0 })
        .lastInsertRowid,
    );
  }

  trades(accountId: number, symbol: string, query: RangeQuery & { fromId?: number; orderId?: number }): Trade[] {
    const rows = this.stmts.trades.all({
      accountId,
      symbol,
      fromId: query.fromId ?? 0,
      startTime: query.startTime ?? 0,
      endTime: query.endTime ?? Number.MAX_SAFE_INTEGER,
      orderId: query.orderId ?? null,
    }) as TradeRow[];
    const fromStart = query.fromId !== undefined || query.startTime !== undefined;
    return rangeWindow(rows, fromStart, query.limit).map(toTrade);
  }

  tradesOfOrder(orderId: number): Trade[] {
    return (this.stmts.tradesOfOrder.all(orderId) as TradeRow[]).map(toTrade);
  }

  prices(): Map<string, string> {
    const rows = this.stmts.prices.all() as { symbol: string; price: string }[];
    return new Map(rows.map((r) => [r.symbol, r.price]));
  }

  setPrice(symbol: string, price: string, time: number): void {
    this.stmts.setPrice.run(symbol, price, time);
  }

  recordOrderRequest(time: number, clientOrderId: string | null, symbol: string | null, outcome: string): void {
    this.stmts.recordRequest.run(time, clientOrderId, symbol, outcome);
  }

  orderRequestStats(prefix?: string): OrderRequestStats {
    const total = this.stmts.requestCount.get() as number;
    const accepted = this.stmts.acceptedCount.get() as number;
    return {
      total,
      accepted,
      refused: total - accepted,
      ...(prefix === undefined ? {} : { withPrefix: this.stmts.prefixCount.get({ prefix }) as number }),
    };
  }

  counts(): { openOrders: number; trades: number } {
    return {
      openOrders: this.stmts.openOrderCount.get() as number,
      trades: this.stmts.tradeCount.get() as number,
    };
  }

  /**
   * Writes a history with its own order and trade ids, in one transaction: the demo's past,
   * so that a new venue and the books it is meant to match start out in agreement.
   */
  importHistory(
    accountId: number,
    orders: readonly Order[],
    trades: readonly Trade[],
    balances: readonly Balance[],
  ): void {
    const insertOrder = this.db.prepare(
      `INSERT INTO orders (order_id, account_id, client_order_id, symbol, side, type, time_in_force, price, price_units,
         orig_qty, executed_qty, cummulative_quote_qty, orig_quote_order_qty, status, locked_asset, locked_amount,
         time, update_time)
       VALUES (@orderId, @accountId, @clientOrderId, @symbol, @side, @type, @timeInForce, @price, @priceUnits,
         @origQty, @executedQty, @cummulativeQuoteQty, @origQuoteOrderQty, @status, @lockedAsset, @lockedAmount,
         @time, @updateTime)`,
    );
    const insertTrade = this.db.prepare(
      `INSERT INTO trades (id, order_id, account_id, symbol, side, price, qty, quote_qty, commission, commission_asset,
         time, is_buyer, is_maker)
       VALUES (@id, @orderId, @accountId, @symbol, @side, @price, @qty, @quoteQty, @commission, @commissionAsset,
         @time, @isBuyer, @isMaker)`,
    );
    this.transaction(() => {
      for (const o of orders) insertOrder.run({ ...o, accountId, priceUnits: Number(parseUnits(o.price)) });
      for (const t of trades) {
        insertTrade.run({ ...t, accountId, isBuyer: t.isBuyer ? 1 : 0, isMaker: t.isMaker ? 1 : 0 });
      }
      for (const b of balances) this.stmts.upsertBalance.run(accountId, b.asset, b.free, b.locked);
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
