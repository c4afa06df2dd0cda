// The trading database schema of a Sofia-shaped target (docs/FORMAT.md, "Target schema").
// One definition for the test data generator and the paper-trader. Quantities, prices and
// money are decimal strings in SQLite (TEXT) and NUMERIC in PostgreSQL, never floats.

export const TARGET_TABLES = ['orders', 'fills', 'positions', 'balances'] as const;
export type TargetTable = (typeof TARGET_TABLES)[number];

const common = (text: string, numeric: string, ts: string) => `
CREATE TABLE IF NOT EXISTS orders (
  id ${text} PRIMARY KEY,
  client_order_id ${text} NOT NULL,
  exchange_order_id ${text},
  account ${text} NOT NULL DEFAULT 'main',
  strategy ${text} NOT NULL,
  symbol ${text} NOT NULL,
  side ${text} NOT NULL CHECK (side IN ('buy', 'sell')),
  type ${text} NOT NULL CHECK (type IN ('limit', 'market')),
  quantity ${numeric} NOT NULL,
  price ${numeric},
  status ${text} NOT NULL CHECK (status IN ('NEW', 'PARTIAL', 'FILLED', 'CANCELED', 'REJECTED', 'EXPIRED')),
  filled_quantity ${numeric} NOT NULL DEFAULT '0',
  mode ${text} NOT NULL DEFAULT 'live',
  created_at ${ts} NOT NULL,
  updated_at ${ts} NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_client_order_id ON orders (client_order_id);
CREATE INDEX IF NOT EXISTS orders_status_updated ON orders (status, updated_at);
CREATE INDEX IF NOT EXISTS orders_exchange_order_id ON orders (exchange_order_id);
CREATE TABLE IF NOT EXISTS fills (
  trade_id ${text} PRIMARY KEY,
  order_id ${text} NOT NULL REFERENCES orders (id),
  client_order_id ${text} NOT NULL,
  symbol ${text} NOT NULL,
  side ${text} NOT NULL CHECK (side IN ('buy', 'sell')),
  quantity ${numeric} NOT NULL,
  price ${numeric} NOT NULL,
  fee ${numeric} NOT NULL DEFAULT '0',
  fee_asset ${text} NOT NULL,
  timestamp ${ts} NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_order_id ON fills (order_id);
CREATE INDEX IF NOT EXISTS fills_symbol_timestamp ON fills (symbol, timestamp);
CREATE TABLE IF NOT EXISTS positions (
  account ${text} NOT NULL,
  symbol ${text} NOT NULL,
  quantity ${numeric} NOT NULL,
  avg_entry_price ${numeric} NOT NULL,
  realized_pnl ${numeric} NOT NULL DEFAULT '0',
  updated_at ${ts} NOT NULL,
  PRIMARY KEY (account, symbol)
);
CREATE TABLE IF NOT EXISTS balances (
  account ${text} NOT NULL,
  asset ${text} NOT NULL,
  total ${numeric} NOT NULL,
  updated_at ${ts} NOT NULL,
  PRIMARY KEY (account, asset)
);
`;

/** DDL for SQLite: decimals as TEXT, times as ISO-8601 TEXT (UTC, milliseconds). */
export const SQLITE_TARGET_SCHEMA = common('TEXT', 'TEXT', 'TEXT');

/** DDL for PostgreSQL: decimals as NUMERIC, times as timestamptz. */
export const POSTGRES_TARGET_SCHEMA = common('TEXT', 'NUMERIC', 'TIMESTAMPTZ');

export type TargetOrderStatus = 'NEW' | 'PARTIAL' | 'FILLED' | 'CANCELED' | 'REJECTED' | 'EXPIRED';

/** A row of `orders`, as read back (decimals and times as text). */
export interface TargetOrderRow {
  id: string;
  client_order_id: string;
  exchange_order_id: string | null;
  account: string;
  strategy: string;
  symbol: string;
  side: 'buy' | 'sell';
  type: 'limit' | 'market';
  quantity: string;
  price: string | null;
  status: TargetOrderStatus;
  filled_quantity: string;
  mode: 'live' | 'shadow';
  created_at: string;
  updated_at: string;
}

/** A row of `fills` (without the internal order id), as read back. */
export interface TargetFillRow {
  trade_id: string;
  client_order_id: string;
  symbol: string;
  side: 'buy' | 'sell';
  quantity: string;
  price: string;
  fee: string;
  fee_asset: string;
  timestamp: string;
}
