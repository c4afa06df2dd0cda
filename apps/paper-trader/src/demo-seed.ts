// The demo's venue, made to match the demo's books: `lifeboat demo init` generates a trading
// history into the target's database and then gives the simulated exchange the same past.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { ExchangeEngine } from './exchange/engine.js';
import { type BooksFill, type BooksOrder, importBooksHistory } from './exchange/history.js';

export interface SeedDemoExchangeOptions {
  targetDir: string;
  exchangeDir: string;
  apiKey: string;
  secret: string;
  /** The target's PostgreSQL database; else `<targetDir>/trading.db`. */
  databaseUrl?: string;
}

interface Books {
  orders: BooksOrder[];
  fills: BooksFill[];
  balances: Array<{ asset: string; total: string }>;
}

const ORDERS = `SELECT client_order_id, exchange_order_id, symbol, side, type, quantity::text AS quantity, price::text AS price,
  status, filled_quantity::text AS filled_quantity, created_at, updated_at FROM orders ORDER BY created_at`;
const FILLS = `SELECT trade_id, client_order_id, symbol, side, quantity::text AS quantity, price::text AS price,
  fee::text AS fee, fee_asset, timestamp FROM fills`;
const BALANCES = `SELECT asset, total::text AS total FROM balances WHERE account = 'main'`;

async function readBooks(options: SeedDemoExchangeOptions): Promise<Books> {
  if (options.databaseUrl) {
    const client = new pg.Client({ connectionString: options.databaseUrl });
    await client.connect();
    try {
      const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : String(v));
      const orders = (await client.query(ORDERS)).rows.map((r) => ({
        ...r,
        created_at: iso(r.created_at),
        updated_at: iso(r.updated_at),
      }));
      const fills = (await client.query(FILLS)).rows.map((r) => ({ ...r, timestamp: iso(r.timestamp) }));
      return { orders, fills, balances: (await client.query(BALANCES)).rows };
    } finally {
      await client.end();
    }
  }
  const db = new Database(join(options.targetDir, 'trading.db'), { readonly: true, fileMustExist: true });
  try {
    const sqlite = (sql: string) => sql.replace(/::text/g, '');
    return {
      orders: db.prepare(sqlite(ORDERS)).all() as BooksOrder[],
      fills: db.prepare(sqlite(FILLS)).all() as BooksFill[],
      balances: db.prepare(sqlite(BALANCES)).all() as Books['balances'],
    };
  } finally {
    db.close();
  }
}

/** Creates the venue in exchangeDir with the account and the books' history; returns what it imported. */
export async function seedDemoExchange(options: SeedDemoExchangeOptions): Promise<{ orders: number; trades: number }> {
  const books = await readBooks(options);
  const engine = new ExchangeEngine({
    dir: options.exchangeDir,
    account: { apiKey: options.apiKey, secret: options.secret, initialBalances: {} },
    tickMs: 0,
  });
  try {
    return importBooksHistory(engine.state, engine.account.id, books);
  } finally {
    engine.close();
  }
}
