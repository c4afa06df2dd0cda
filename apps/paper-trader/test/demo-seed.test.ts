import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateTarget } from '@lifeboat/testkit';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { seedDemoExchange } from '../src/demo-seed.js';
import { parseUnits } from '../src/exchange/decimal.js';
import { ExchangeEngine } from '../src/exchange/engine.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('the demo venue starts with the books’ history', () => {
  it('holds every order that reached it, every fill, and the same balances', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-seed-'));
    const target = await generateTarget(join(dir, 'target'), { sizeBytes: 512 * 1024, seed: 4 });
    const account = { apiKey: 'demo-key', secret: 'demo-secret' };
    const imported = await seedDemoExchange({ targetDir: target.dir, exchangeDir: join(dir, 'exchange'), ...account });

    const books = new Database(join(target.dir, 'trading.db'), { readonly: true });
    const sentOrders = (
      books.prepare('SELECT COUNT(*) AS n FROM orders WHERE exchange_order_id IS NOT NULL').get() as { n: number }
    ).n;
    const openAtBooks = books
      .prepare(
        "SELECT exchange_order_id FROM orders WHERE status IN ('NEW', 'PARTIAL') AND exchange_order_id IS NOT NULL",
      )
      .all()
      .map((r) => Number((r as { exchange_order_id: string }).exchange_order_id))
      .sort((a, b) => a - b);
    const maxImported = (
      books.prepare('SELECT MAX(CAST(exchange_order_id AS INTEGER)) AS m FROM orders').get() as { m: number }
    ).m;
    const balances = books.prepare("SELECT asset, total FROM balances WHERE account = 'main'").all() as Array<{
      asset: string;
      total: string;
    }>;
    books.close();
    expect(imported).toEqual({ orders: sentOrders, trades: target.rowCounts.fills });

    const engine = new ExchangeEngine({
      dir: join(dir, 'exchange'),
      account: { ...account, initialBalances: {} },
      tickMs: 0,
    });
    try {
      const accountId = engine.account.id;
      expect(
        engine
          .openOrders(accountId)
          .map((o) => o.orderId)
          .sort((a, b) => a - b),
      ).toEqual(openAtBooks);
      const venue = new Map(
        engine.balances(accountId).map((b) => [b.asset, parseUnits(b.free) + parseUnits(b.locked)]),
      );
      for (const b of balances) expect(venue.get(b.asset), b.asset).toBe(parseUnits(b.total));
      // New orders get ids after the imported ones.
      const placed = engine.placeOrder(accountId, {
        symbol: 'BTCUSDT',
        side: 'BUY',
        type: 'MARKET',
        quantity: '0.001',
      });
      expect(placed.order.orderId).toBeGreaterThan(maxImported);
    } finally {
      engine.close();
    }
  });
});
