// Schema profiles: the named SQL queries that read a target's books in the shape of the
// books file (docs/FORMAT.md). The default profile fits the Sofia/paper-trader schema
// (packages/domain/src/target-schema.ts); another schema gets its own in lifeboat.yaml.
import type { BooksProfileConfig } from '@lifeboat/domain';

export type BooksProfile = BooksProfileConfig;

// Shadow orders were never sent, so they are not part of the books the venue can confirm.
export const SQLITE_BOOKS_PROFILE: BooksProfile = {
  orders: `SELECT client_order_id, exchange_order_id, account, symbol, side, type, quantity, price, status,
    filled_quantity, created_at, updated_at FROM orders WHERE mode = 'live'`,
  fills: 'SELECT trade_id, client_order_id, symbol, side, quantity, price, fee, fee_asset, timestamp FROM fills',
  positions: 'SELECT account, symbol, quantity, avg_entry_price, realized_pnl FROM positions',
  balances: `SELECT asset, total FROM balances WHERE account = 'main'`,
};

const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export const POSTGRES_BOOKS_PROFILE: BooksProfile = {
  orders: `SELECT client_order_id, exchange_order_id, account, symbol, side, type, quantity::text AS quantity,
    price::text AS price, status, filled_quantity::text AS filled_quantity, ${iso('created_at')} AS created_at,
    ${iso('updated_at')} AS updated_at FROM orders WHERE mode = 'live'`,
  fills: `SELECT trade_id, client_order_id, symbol, side, quantity::text AS quantity, price::text AS price,
    fee::text AS fee, fee_asset, ${iso('timestamp')} AS timestamp FROM fills`,
  positions: `SELECT account, symbol, quantity::text AS quantity, avg_entry_price::text AS avg_entry_price,
    realized_pnl::text AS realized_pnl FROM positions`,
  balances: `SELECT asset, total::text AS total FROM balances WHERE account = 'main'`,
};

/**
 * Turns driver values into the books file's (numbers to decimal strings, dates to ISO) and
 * shares repeated strings: millions of rows hold a few symbols, sides and statuses and a
 * limited set of amounts, and one string per distinct value keeps the books about a quarter
 * smaller and the collector's work with them.
 */
export class RowNormalizer {
  readonly #pool = new Map<string, string>();

  row(row: Record<string, unknown>): Record<string, unknown> {
    for (const key in row) {
      const v = row[key];
      if (typeof v === 'string') {
        if (v.length <= 24 && !RowNormalizer.UNIQUE.has(key)) {
          const shared = this.#pool.get(v);
          if (shared === undefined) this.#pool.set(v, v);
          else row[key] = shared;
        }
      } else if (typeof v === 'number' || typeof v === 'bigint') row[key] = String(v);
      else if (v instanceof Date) row[key] = v.toISOString();
    }
    return row;
  }

  /** Ids and times are (nearly) unique: pooling them would only grow the pool. */
  static readonly UNIQUE: ReadonlySet<string> = new Set([
    'client_order_id',
    'exchange_order_id',
    'trade_id',
    'created_at',
    'updated_at',
    'timestamp',
  ]);
}

export function normalizeRows(
  rows: Array<Record<string, unknown>>,
  normalizer = new RowNormalizer(),
): Array<Record<string, unknown>> {
  for (const row of rows) normalizer.row(row);
  return rows;
}
