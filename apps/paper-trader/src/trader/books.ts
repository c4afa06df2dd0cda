// The internal books in the trading database (packages/domain target schema): SQLite
// `trading.db` in WAL mode by default, PostgreSQL when a URL is given. Every change to an
// order, its fills, the position and the balances happens in one transaction.
import { join } from 'node:path';
import {
  POSTGRES_TARGET_SCHEMA,
  SQLITE_TARGET_SCHEMA,
  type TargetFillRow,
  type TargetOrderRow,
  type TargetOrderStatus,
} from '@lifeboat/domain';
import Database from 'better-sqlite3';
import pg from 'pg';
import { formatUnits, mulUnits, parseUnits } from '../exchange/decimal.js';

export type BooksStatus = TargetOrderStatus;
export type BooksOrder = TargetOrderRow;
export type BooksFill = TargetFillRow;
export const OPEN: readonly BooksStatus[] = ['NEW', 'PARTIAL'];

/** The little SQL both engines need: `?` placeholders, rows as plain objects. */
interface Sql {
  all<T>(sql: string, params?: unknown[]): Promise<T[]>;
  run(sql: string, params?: unknown[]): Promise<void>;
  tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

function sqliteSql(file: string): Sql {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.exec(SQLITE_TARGET_SCHEMA);
  let depth = 0;
  const sql: Sql = {
    all: async <T>(q: string, p: unknown[] = []) => db.prepare(q).all(...p) as T[],
    run: async (q, p = []) => {
      db.prepare(q).run(...p);
    },
    tx: async (fn) => {
      // better-sqlite3 is synchronous, but fn is async: hold the write lock across it by hand.
      if (depth++ === 0) db.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(sql);
        if (depth === 1) db.exec('COMMIT');
        return out;
      } catch (err) {
        if (depth === 1) db.exec('ROLLBACK');
        throw err;
      } finally {
        depth--;
      }
    },
    close: async () => {
      db.close();
    },
  };
  return sql;
}

const toPg = (q: string) => {
  let n = 0;
  return q.replace(/\?/g, () => `$${++n}`);
};

/** Timestamps and decimals come back as text, as in SQLite. */
const pgRow = (row: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]));

async function postgresSql(url: string): Promise<Sql> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pg.types.setTypeParser(1700, (v) => v); // NUMERIC stays a string
  await pool.query(POSTGRES_TARGET_SCHEMA);
  const over = (client: pg.Pool | pg.PoolClient): Sql => ({
    all: async <T>(q: string, p: unknown[] = []) => (await client.query(toPg(q), p)).rows.map(pgRow) as T[],
    run: async (q, p = []) => {
      await client.query(toPg(q), p);
    },
    tx: async (fn) => {
      if (client !== pool) return fn(over(client));
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        const out = await fn(over(c));
        await c.query('COMMIT');
        return out;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        c.release();
      }
    },
    close: () => pool.end(),
  });
  return over(pool);
}

/** Signed amounts (positions and P&L go below zero; the venue's never do). */
const signed = (text: string): bigint =>
  text.trim().startsWith('-') ? -parseUnits(text.trim().slice(1)) : parseUnits(text);
/** Fixed 8-decimal text, as every amount in the books. */
const fixed = (text: string) => formatUnits(signed(text));

/** A position in 1e-8 units: signed quantity, average entry price, realized P&L. */
interface PositionUnits {
  q: bigint;
  avg: bigint;
  pnl: bigint;
}

/**
 * One fill's effect on a position by average cost: adding moves the average; reducing
 * realizes P&L on the closed part; a fill through zero opens the rest at its price. Fees are
 * realized costs (quote fees as they are, base fees at the fill's price), as the reconciler
 * counts them.
 */
function applyToPosition(
  p: PositionUnits,
  symbol: string,
  fill: { side: 'buy' | 'sell'; quantity: string; price: string; fee: string; fee_asset: string },
): void {
  const qty = parseUnits(String(fill.quantity));
  const price = parseUnits(String(fill.price));
  const fee = parseUnits(String(fill.fee));
  const delta = fill.side === 'buy' ? qty : -qty;
  const abs = (x: bigint) => (x < 0n ? -x : x);
  if (p.q === 0n || p.q > 0n === delta > 0n) {
    const total = p.q + delta;
    const size = abs(total);
    // Rounded half up, in 1e-8 units, as every amount in the books.
    p.avg = total === 0n ? 0n : (p.avg * abs(p.q) + price * qty + size / 2n) / size;
    p.q = total;
  } else {
    const held = abs(p.q);
    // Math.min takes no bigints.
    // biome-ignore lint/complexity/useMathMinMax: bigint operands
    const closing = qty < held ? qty : held;
    p.pnl += mulUnits(p.q > 0n ? price - p.avg : p.avg - price, closing);
    const before = p.q;
    p.q += delta;
    if (p.q === 0n) p.avg = 0n;
    else if (p.q > 0n !== before > 0n) p.avg = price;
  }
  const [base, quote] = symbol.split('/') as [string, string];
  if (fill.fee_asset === quote) p.pnl -= fee;
  else if (fill.fee_asset === base) p.pnl -= mulUnits(fee, price);
}

/** Time order of fills: time, then trade id (numeric ids compare by length first). */
interface FillKey {
  ms: number;
  id: string;
}

function compareFillKeys(a: FillKey, b: FillKey): number {
  return a.ms - b.ms || a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

interface Checkpoint {
  key: FillKey;
  pos: PositionUnits;
}

/** Remembered positions per market: late fills arrive within seconds, a few hundred fills back at most. */
const CHECKPOINTS = 512;

export class Books {
  /** Replays of a market's fills caused by fills arriving out of time order. */
  replays = 0;

  private constructor(
    private readonly sql: Sql,
    readonly engine: 'sqlite' | 'postgres',
  ) {}

  static async open(targetDir: string, databaseUrl?: string): Promise<Books> {
    return databaseUrl
      ? new Books(await postgresSql(databaseUrl), 'postgres')
      : new Books(sqliteSql(join(targetDir, 'trading.db')), 'sqlite');
  }

  /** Records an order before it is sent, so a crash leaves a trace to resolve. */
  async insertOrder(o: BooksOrder): Promise<void> {
    await this.sql.run(
      `INSERT INTO orders (id, client_order_id, exchange_order_id, account, strategy, symbol, side, type, quantity, price,
         status, filled_quantity, mode, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        o.id,
        o.client_order_id,
        o.exchange_order_id,
        o.account,
        o.strategy,
        o.symbol,
        o.side,
        o.type,
        o.quantity,
        o.price,
        o.status,
        o.filled_quantity,
        o.mode,
        o.created_at,
        o.updated_at,
      ],
    );
  }

  async order(clientOrderId: string): Promise<BooksOrder | undefined> {
    return (await this.sql.all<BooksOrder>('SELECT * FROM orders WHERE client_order_id = ?', [clientOrderId]))[0];
  }

  async orderByExchangeId(exchangeOrderId: string): Promise<BooksOrder | undefined> {
    return (await this.sql.all<BooksOrder>('SELECT * FROM orders WHERE exchange_order_id = ?', [exchangeOrderId]))[0];
  }

  /** Live orders the books hold as open (NEW or PARTIAL). */
  async openLiveOrders(limit = 10_000): Promise<BooksOrder[]> {
    return this.sql.all<BooksOrder>(
      `SELECT * FROM orders WHERE status IN ('NEW', 'PARTIAL') AND mode = 'live' ORDER BY created_at LIMIT ${Math.floor(limit)}`,
    );
  }

  async hasFill(tradeId: string): Promise<boolean> {
    return (await this.sql.all('SELECT 1 FROM fills WHERE trade_id = ?', [tradeId])).length > 0;
  }

  /** The highest venue trade id recorded per symbol, to ask the venue only for newer trades. */
  async lastTradeIds(): Promise<Map<string, number>> {
    const rows = await this.sql.all<{ symbol: string; trade_id: string }>('SELECT symbol, trade_id FROM fills');
    const out = new Map<string, number>();
    for (const r of rows) {
      const n = Number(r.trade_id);
      if (Number.isSafeInteger(n) && n > (out.get(r.symbol) ?? 0)) out.set(r.symbol, n);
    }
    return out;
  }

  /** The time of the newest fill per symbol. */
  async lastFillTimes(): Promise<Map<string, number>> {
    const rows = await this.sql.all<{ symbol: string; t: string }>(
      'SELECT symbol, MAX(timestamp) AS t FROM fills GROUP BY symbol',
    );
    return new Map(rows.map((r) => [r.symbol, Date.parse(String(r.t))]));
  }

  /** Sets an order's venue state; fills are applied separately with applyFill. */
  async updateOrder(
    clientOrderId: string,
    change: { status: BooksStatus; exchange_order_id?: string | null; filled_quantity?: string; updated_at?: string },
  ): Promise<void> {
    const now = change.updated_at ?? new Date().toISOString();
    await this.sql.run(
      `UPDATE orders SET status = ?, exchange_order_id = COALESCE(?, exchange_order_id),
         filled_quantity = COALESCE(?, filled_quantity), updated_at = ? WHERE client_order_id = ?`,
      [change.status, change.exchange_order_id ?? null, change.filled_quantity ?? null, now, clientOrderId],
    );
  }

  /**
   * Records a fill once (by the venue's trade id) with its effect on the order's filled
   * quantity, the position (average cost, realized P&L) and the balances, in one transaction.
   * Returns false when the fill was already there.
   */
  async applyFill(fill: BooksFill, orderId: string, account = 'main'): Promise<boolean> {
    // One fill at a time: the order's answer and the sync may bring the same trade at once.
    const run = this.#fills.then(() => this.#applyFill(fill, orderId, account));
    this.#fills = run.catch(() => undefined);
    return run;
  }

  #fills: Promise<unknown> = Promise.resolve();

  async #applyFill(fill: BooksFill, orderId: string, account: string): Promise<boolean> {
    // The remembered positions change only once the transaction has committed.
    let pendingRing: [string, Checkpoint[]] | undefined;
    const applied = await this.sql.tx(async (sql) => {
      if ((await sql.all('SELECT 1 FROM fills WHERE trade_id = ?', [fill.trade_id])).length) return false;
      await sql.run(
        `INSERT INTO fills (trade_id, order_id, client_order_id, symbol, side, quantity, price, fee, fee_asset, timestamp)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          fill.trade_id,
          orderId,
          fill.client_order_id,
          fill.symbol,
          fill.side,
          fixed(fill.quantity),
          fixed(fill.price),
          fixed(fill.fee),
          fill.fee_asset,
          fill.timestamp,
        ],
      );
      const qty = parseUnits(fill.quantity);
      const price = parseUnits(fill.price);
      const fee = parseUnits(fill.fee);
      const order = (
        await sql.all<{ filled_quantity: string }>('SELECT filled_quantity FROM orders WHERE id = ?', [orderId])
      )[0];
      if (order) {
        await sql.run('UPDATE orders SET filled_quantity = ?, updated_at = ? WHERE id = ?', [
          formatUnits(signed(order.filled_quantity) + qty),
          fill.timestamp,
          orderId,
        ]);
      }
      // Average cost depends on the order of fills. They arrive in any order (answers to
      // orders in flight, the sync), so one older than the newest fill of its market
      // triggers a replay of that market's fills in time order, trade id breaking ties: the
      // order the reconciler recomputes in.
      const newer = await sql.all<{ n: number | string }>(
        `SELECT COUNT(*) AS n FROM fills f JOIN orders o ON o.id = f.order_id
         WHERE f.symbol = ? AND o.account = ? AND f.trade_id <> ?
           AND (f.timestamp > ? OR (f.timestamp = ? AND (length(f.trade_id) > ? OR (length(f.trade_id) = ? AND f.trade_id > ?))))`,
        [
          fill.symbol,
          account,
          fill.trade_id,
          fill.timestamp,
          fill.timestamp,
          fill.trade_id.length,
          fill.trade_id.length,
          fill.trade_id,
        ],
      );
      let position: PositionUnits;
      const ringKey = `${account}|${fill.symbol}`;
      const mine: FillKey = { ms: Date.parse(fill.timestamp), id: fill.trade_id };
      const ring = this.#checkpoints.get(ringKey) ?? [];
      let nextRing: Checkpoint[];
      if (Number(newer[0]?.n ?? 0) > 0) {
        // Replay from the newest remembered position older than this fill, else from the start.
        let from = -1;
        for (let i = ring.length - 1; i >= 0; i--) {
          if (compareFillKeys((ring[i] as Checkpoint).key, mine) < 0) {
            from = i;
            break;
          }
        }
        const base = from >= 0 ? (ring[from] as Checkpoint) : null;
        const rows = await sql.all<{
          trade_id: string;
          side: 'buy' | 'sell';
          quantity: string;
          price: string;
          fee: string;
          fee_asset: string;
          timestamp: string;
        }>(
          `SELECT f.trade_id, f.side, f.quantity, f.price, f.fee, f.fee_asset, f.timestamp FROM fills f
           JOIN orders o ON o.id = f.order_id WHERE f.symbol = ? AND o.account = ?${base ? ' AND f.timestamp >= ?' : ''}`,
          base ? [fill.symbol, account, new Date(base.key.ms).toISOString()] : [fill.symbol, account],
        );
        const keyed = rows
          .map((r) => ({ r, key: { ms: Date.parse(String(r.timestamp)), id: r.trade_id } }))
          .filter((x) => !base || compareFillKeys(x.key, base.key) > 0)
          .sort((a, b) => compareFillKeys(a.key, b.key));
        position = base ? { ...base.pos } : { q: 0n, avg: 0n, pnl: 0n };
        nextRing = from >= 0 ? ring.slice(0, from + 1) : [];
        for (const { r, key } of keyed) {
          applyToPosition(position, fill.symbol, r);
          nextRing.push({ key, pos: { ...position } });
        }
        this.replays++;
      } else {
        const pos = (
          await sql.all<{ quantity: string; avg_entry_price: string; realized_pnl: string }>(
            'SELECT quantity, avg_entry_price, realized_pnl FROM positions WHERE account = ? AND symbol = ?',
            [account, fill.symbol],
          )
        )[0];
        position = pos
          ? { q: signed(pos.quantity), avg: signed(pos.avg_entry_price), pnl: signed(pos.realized_pnl) }
          : { q: 0n, avg: 0n, pnl: 0n };
        applyToPosition(position, fill.symbol, fill);
        nextRing = [...ring, { key: mine, pos: { ...position } }];
      }
      pendingRing = [ringKey, nextRing.slice(-CHECKPOINTS)];
      const { q, avg, pnl } = position;
      const now = fill.timestamp;
      await sql.run(
        `INSERT INTO positions (account, symbol, quantity, avg_entry_price, realized_pnl, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (account, symbol) DO UPDATE SET quantity = excluded.quantity, avg_entry_price = excluded.avg_entry_price,
           realized_pnl = excluded.realized_pnl, updated_at = excluded.updated_at`,
        [account, fill.symbol, formatUnits(q), formatUnits(avg), formatUnits(pnl), now],
      );
      const [base, quote] = fill.symbol.split('/') as [string, string];
      const notional = mulUnits(price, qty);
      const moves: Array<[string, bigint]> =
        fill.side === 'buy'
          ? [
              [base, qty],
              [quote, -notional],
            ]
          : [
              [base, -qty],
              [quote, notional],
            ];
      moves.push([fill.fee_asset, -fee]);
      for (const [asset, delta] of moves) {
        const row = (
          await sql.all<{ total: string }>('SELECT total FROM balances WHERE account = ? AND asset = ?', [
            account,
            asset,
          ])
        )[0];
        await sql.run(
          `INSERT INTO balances (account, asset, total, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (account, asset) DO UPDATE SET total = excluded.total, updated_at = excluded.updated_at`,
          [account, asset, formatUnits((row ? signed(row.total) : 0n) + delta), now],
        );
      }
      return true;
    });
    if (applied && pendingRing) this.#checkpoints.set(pendingRing[0], pendingRing[1]);
    return applied;
  }

  /** Positions after each of the latest fills per account and market: a late fill replays from there. */
  #checkpoints = new Map<string, Checkpoint[]>();

  async positions(): Promise<
    Array<{ account: string; symbol: string; quantity: string; avg_entry_price: string; realized_pnl: string }>
  > {
    return this.sql.all(
      'SELECT account, symbol, quantity, avg_entry_price, realized_pnl FROM positions ORDER BY account, symbol',
    );
  }

  async balances(): Promise<Array<{ account: string; asset: string; total: string }>> {
    return this.sql.all('SELECT account, asset, total FROM balances ORDER BY account, asset');
  }

  async counts(): Promise<{ orders: number; fills: number }> {
    const [o] = await this.sql.all<{ n: number | string }>('SELECT COUNT(*) AS n FROM orders');
    const [f] = await this.sql.all<{ n: number | string }>('SELECT COUNT(*) AS n FROM fills');
    return { orders: Number(o?.n ?? 0), fills: Number(f?.n ?? 0) };
  }

  /** Every live order with a venue id, for agreement checks. */
  async liveOrders(): Promise<BooksOrder[]> {
    return this.sql.all<BooksOrder>("SELECT * FROM orders WHERE mode = 'live' ORDER BY created_at");
  }

  close(): Promise<void> {
    return this.sql.close();
  }
}
