import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SQLITE_TARGET_SCHEMA } from '@lifeboat/domain';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SQLITE_BOOKS_PROFILE } from './profile.js';
import { SqliteBooksStore } from './sqlite.js';

// The default profile's orders and fills are read as arrays into rows built field by field;
// any other query's rows are taken as the driver makes them. Both must give the same books.
// A profile with the same columns in another order takes the second way.
const REORDERED = {
  ...SQLITE_BOOKS_PROFILE,
  orders: `SELECT account, client_order_id, exchange_order_id, symbol, side, type, quantity, price, status,
    filled_quantity, created_at, updated_at FROM orders WHERE mode = 'live'`,
  fills: 'SELECT client_order_id, trade_id, symbol, side, quantity, price, fee, fee_asset, timestamp FROM fills',
};

let dir: string;
let file: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lifeboat-sqlite-books-'));
  file = join(dir, 'trading.db');
  const db = new Database(file);
  db.exec(SQLITE_TARGET_SCHEMA);
  const order = db.prepare(
    `INSERT INTO orders (id, client_order_id, exchange_order_id, account, strategy, symbol, side, type, quantity, price,
      status, filled_quantity, mode, created_at, updated_at) VALUES (?, ?, ?, ?, 'S', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const t0 = '2025-06-01T10:00:00.000Z';
  const t1 = '2025-06-01T10:00:01.500Z';
  order.run('1', 'c1', '101', 'main', 'BTC/USDT', 'buy', 'limit', '0.5', '60000', 'FILLED', '0.5', 'live', t0, t0);
  order.run('2', 'c2', null, 'main', 'BTC/USDT', 'sell', 'market', '0.5', null, 'NEW', '0', 'live', t0, t1);
  order.run('3', 'c3', '103', 'sub', 'ETH/USDT', 'sell', 'limit', '2', '3000.50', 'PARTIAL', '1', 'live', t1, t1);
  order.run('4', 'c4', '104', 'main', 'ETH/USDT', 'buy', 'limit', '1', '2900', 'FILLED', '1', 'shadow', t1, t1);
  const fill = db.prepare(
    `INSERT INTO fills (trade_id, order_id, client_order_id, symbol, side, quantity, price, fee, fee_asset, timestamp)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  fill.run('t1', '1', 'c1', 'BTC/USDT', 'buy', '0.25', '60000', '0.015', 'USDT', t0);
  fill.run('t2', '1', 'c1', 'BTC/USDT', 'buy', '0.25', '60000', '0.00000025', 'BTC', t0);
  fill.run('t3', '3', 'c3', 'ETH/USDT', 'sell', '1', '3000.50', '0', 'USDT', t1);
  db.prepare(
    `INSERT INTO positions (account, symbol, quantity, avg_entry_price, realized_pnl, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
  ).run('main', 'BTC/USDT', '0.5', '60000', '-0.015', t1);
  db.prepare('INSERT INTO balances (account, asset, total, updated_at) VALUES (?, ?, ?, ?)').run(
    'main',
    'USDT',
    '1000',
    t1,
  );
  db.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reading the books of a SQLite database', () => {
  it('gives the same books through the default profile as through a query the driver rows serve', async () => {
    const fast = await new SqliteBooksStore(file).read();
    const plain = await new SqliteBooksStore(file, REORDERED).read();
    expect(fast.orders).toHaveLength(3);
    expect(fast.fills).toHaveLength(3);
    expect(fast.orders[1]).toEqual({
      client_order_id: 'c2',
      exchange_order_id: null,
      account: 'main',
      symbol: 'BTC/USDT',
      side: 'sell',
      type: 'market',
      quantity: '0.5',
      price: null,
      status: 'NEW',
      filled_quantity: '0',
      created_at: '2025-06-01T10:00:00.000Z',
      updated_at: '2025-06-01T10:00:01.500Z',
    });
    // In the query's order, as the driver's rows have their fields.
    expect(Object.keys(fast.fills[0] ?? {})).toEqual([
      'trade_id',
      'client_order_id',
      'symbol',
      'side',
      'quantity',
      'price',
      'fee',
      'fee_asset',
      'timestamp',
    ]);
    expect({ ...fast, collected_at: '' }).toEqual({ ...plain, collected_at: '' });
  });

  it('refuses a value that is not text the same way on both paths', async () => {
    const db = new Database(file);
    db.prepare(`UPDATE fills SET fee = X'00' WHERE trade_id = 't3'`).run();
    db.close();
    try {
      const message = (books: Promise<unknown>) =>
        books.then(
          () => 'accepted',
          (err: Error) => err.message,
        );
      const fast = await message(new SqliteBooksStore(file).read());
      expect(fast).toMatch(/fills\[2\]\.fee: must be a non-negative decimal string/);
      expect(await message(new SqliteBooksStore(file, REORDERED).read())).toBe(fast);
    } finally {
      const again = new Database(file);
      again.prepare(`UPDATE fills SET fee = '0' WHERE trade_id = 't3'`).run();
      again.close();
    }
  });
});
