// Schema profiles: the named SQL queries that read a target's books in the shape of the
// books file (docs/FORMAT.md). The default profile fits the Sofia/paper-trader schema
// (packages/domain/src/target-schema.ts); another schema gets its own in lifeboat.yaml.
import { type BooksProfileConfig, hashString, restoreFastStringMethods } from '@lifeboat/domain';

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
 * One string per distinct value: open addressing over an array, with the hash taken here. A
 * Map would do, but each driver string is new and V8 hashes a new string in a call out of the
 * compiled code, which made looking one up several times the cost of a loop over its characters.
 */
class StringPool {
  #slots: Array<string | undefined> = new Array<string | undefined>(1024).fill(undefined);
  #mask = 1023;
  #size = 0;

  intern(s: string): string {
    const slots = this.#slots;
    let h = hashString(s) & this.#mask;
    for (;;) {
      const known = slots[h];
      if (known === undefined) break;
      if (known === s) return known;
      h = (h + 1) & this.#mask;
    }
    slots[h] = s;
    // At most half full, so a look rarely goes past a second slot.
    if (++this.#size * 2 > slots.length) this.#grow();
    return s;
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Array<string | undefined>(old.length * 2).fill(undefined);
    this.#mask = this.#slots.length - 1;
    for (const s of old) {
      if (s === undefined) continue;
      let h = hashString(s) & this.#mask;
      while (this.#slots[h] !== undefined) h = (h + 1) & this.#mask;
      this.#slots[h] = s;
    }
  }
}

/**
 * Turns driver values into the books file's (numbers to decimal strings, dates to ISO) and
 * shares repeated strings: millions of rows hold a few symbols, sides and statuses and a
 * limited set of amounts, and one string per distinct value keeps the books about a quarter
 * smaller and the collector's work with them.
 */
export class RowNormalizer {
  readonly #pool = new StringPool();

  constructor() {
    // The pool hashes millions of strings with charCodeAt, which must not be the slow kind.
    restoreFastStringMethods();
  }

  row(row: Record<string, unknown>): Record<string, unknown> {
    for (const key in row) {
      const v = row[key];
      if (typeof v === 'string') {
        if (v.length <= 24 && !RowNormalizer.UNIQUE.has(key)) row[key] = this.#pool.intern(v);
      } else if (typeof v === 'number' || typeof v === 'bigint') row[key] = String(v);
      else if (v instanceof Date) row[key] = v.toISOString();
    }
    return row;
  }

  /** A value of a column whose values repeat, as `row` makes it: one string per distinct value. */
  shared(v: unknown): unknown {
    if (typeof v !== 'string') return this.own(v);
    return v.length > 24 ? v : this.#pool.intern(v);
  }

  /** A value of a column of (nearly) unique values, as `row` makes it: converted, not pooled. */
  own(v: unknown): unknown {
    if (typeof v === 'string' || v === null) return v;
    if (typeof v === 'number' || typeof v === 'bigint') return String(v);
    if (v instanceof Date) return v.toISOString();
    return v;
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

/** The columns of the books file's orders and fills (docs/FORMAT.md), in its order. */
const ORDER_COLUMNS = [
  'client_order_id',
  'exchange_order_id',
  'account',
  'symbol',
  'side',
  'type',
  'quantity',
  'price',
  'status',
  'filled_quantity',
  'created_at',
  'updated_at',
] as const;
const FILL_COLUMNS = [
  'trade_id',
  'client_order_id',
  'symbol',
  'side',
  'quantity',
  'price',
  'fee',
  'fee_asset',
  'timestamp',
] as const;

/** Makes a row of the books from a driver's row given as an array of its column values. */
export type RecordReader = (values: unknown[]) => Record<string, unknown>;

const sameColumns = (columns: readonly string[], wanted: readonly string[]): boolean =>
  columns.length === wanted.length && columns.every((c, i) => c === wanted[i]);

/**
 * For a query whose columns are exactly the books file's orders or fills, in its order (as the
 * default profile's are), a reader of rows given as arrays; null for any other query, whose rows
 * `RowNormalizer.row` takes as the driver makes them. The rows are the same, made more cheaply
 * for millions: the driver builds an object field by field, through calls into V8 that end in a
 * second allocation for the fields past the fourth, where one object literal per row holds
 * them all, in one shape every row shares. A value equal to the previous row's (the same
 * account, status or fee asset; a fill of the same order) is that row's string, found without
 * a look in the pool, as are a filled quantity equal to the quantity and an update time equal
 * to the creation time.
 */
export function recordReader(
  table: keyof BooksProfile,
  columns: readonly string[],
  n: RowNormalizer,
): RecordReader | null {
  /** A repeated value: the previous row's string when it is the same, else the pool's. */
  const shared = (v: unknown, before: unknown): unknown => (v === before ? before : n.shared(v));
  /** A (nearly) unique value: the previous row's string when it is the same. */
  const own = (v: unknown, before: unknown): unknown => (v === before ? before : n.own(v));
  if (table === 'orders' && sameColumns(columns, ORDER_COLUMNS)) {
    // The row before; none before the first, whose fields a driver value (never undefined) is not.
    let b: Record<string, unknown> = {};
    return (r) => {
      const quantity = shared(r[6], b.quantity);
      const created = own(r[10], b.created_at);
      const row = {
        client_order_id: n.own(r[0]),
        exchange_order_id: n.own(r[1]),
        account: shared(r[2], b.account),
        symbol: shared(r[3], b.symbol),
        side: shared(r[4], b.side),
        type: shared(r[5], b.type),
        quantity,
        price: shared(r[7], b.price),
        status: shared(r[8], b.status),
        filled_quantity: shared(r[9], quantity),
        created_at: created,
        updated_at: own(r[11], created),
      };
      b = row;
      return row;
    };
  }
  if (table === 'fills' && sameColumns(columns, FILL_COLUMNS)) {
    let b: Record<string, unknown> = {};
    return (r) => {
      const row = {
        trade_id: n.own(r[0]),
        client_order_id: own(r[1], b.client_order_id),
        symbol: shared(r[2], b.symbol),
        side: shared(r[3], b.side),
        quantity: shared(r[4], b.quantity),
        price: shared(r[5], b.price),
        fee: shared(r[6], b.fee),
        fee_asset: shared(r[7], b.fee_asset),
        timestamp: own(r[8], b.timestamp),
      };
      b = row;
      return row;
    };
  }
  return null;
}
