import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ccxt from 'ccxt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExchangeServer, type ExchangeServer } from '../src/exchange/index.js';

const KEY = 'ccxt-test-key';
const SECRET = 'ccxt-test-secret';

let dir: string;
let server: ExchangeServer;
let url: string;
/** "METHOD /path" of every request ccxt made, to see which endpoints it really uses. */
const seen: string[] = [];

/** The real ccxt binance client with every API URL pointed at the simulated exchange. */
function client(secret = SECRET): InstanceType<typeof ccxt.binance> {
  const exchange = new ccxt.binance({
    apiKey: KEY,
    secret,
    enableRateLimit: false,
    options: {
      fetchMarkets: { types: ['spot'] },
      fetchCurrencies: false,
      fetchMargins: false,
    },
  });
  const api = exchange.urls.api as Record<string, string>;
  for (const key of Object.keys(api)) api[key] = `${url}/api/v3`;
  return exchange;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-exchange-ccxt-'));
  server = createExchangeServer({
    dir,
    account: { apiKey: KEY, secret: SECRET },
    tickMs: 0,
    partialFillProbability: 0,
    splitFillProbability: 0,
  });
  server.app.addHook('onRequest', async (request) => {
    seen.push(`${request.method} ${request.url.split('?')[0]}`);
  });
  url = await server.listen(0);
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('ccxt binance against the simulated exchange', () => {
  it('loads the markets and fetches the balance, open orders and trades', async () => {
    const exchange = client();
    seen.length = 0;
    const balance = await exchange.fetchBalance();
    expect(balance.USDT).toMatchObject({ free: 2000000, used: 0, total: 2000000 });
    expect(balance.BTC?.total).toBe(0);
    expect(seen).toEqual(['GET /api/v3/exchangeInfo', 'GET /api/v3/account']);
    const market = exchange.market('BTC/USDT');
    expect(market).toMatchObject({ id: 'BTCUSDT', spot: true, active: true });
    expect(market.precision).toMatchObject({ price: 0.01, amount: 0.00001 });
    expect(market.limits.cost?.min).toBe(5);
    expect(await exchange.fetchOpenOrders('BTC/USDT')).toEqual([]);
    expect(await exchange.fetchMyTrades('BTC/USDT')).toEqual([]);
  });

  it('places a limit order that rests, finds it, and cancels it', async () => {
    const exchange = client();
    server.engine.setPrice('BTCUSDT', '50000');
    const order = await exchange.createOrder('BTC/USDT', 'limit', 'buy', 0.01, 45000, {
      clientOrderId: 'SOFIA-ccxt-1-abcdef',
    });
    expect(order).toMatchObject({
      symbol: 'BTC/USDT',
      type: 'limit',
      side: 'buy',
      status: 'open',
      price: 45000,
      amount: 0.01,
      filled: 0,
      clientOrderId: 'SOFIA-ccxt-1-abcdef',
    });
    const open = await exchange.fetchOpenOrders('BTC/USDT');
    expect(open.map((o) => o.id)).toEqual([order.id]);
    const balance = await exchange.fetchBalance();
    expect(balance.USDT?.used).toBe(450.45);
    const fetched = await exchange.fetchOrder(order.id!, 'BTC/USDT');
    expect(fetched.status).toBe('open');

    const cancelled = await exchange.cancelOrder(order.id!, 'BTC/USDT');
    expect(cancelled).toMatchObject({ id: order.id, status: 'canceled' });
    expect(await exchange.fetchOpenOrders('BTC/USDT')).toEqual([]);
    await expect(exchange.cancelOrder(order.id!, 'BTC/USDT')).rejects.toBeInstanceOf(ccxt.OrderNotFound);
  });

  it('places a market order that fills, and sees its trade and fee', async () => {
    const exchange = client();
    server.engine.setPrice('ETHUSDT', '3000');
    const order = await exchange.createOrder('ETH/USDT', 'market', 'buy', 0.5);
    expect(order).toMatchObject({ status: 'closed', filled: 0.5, remaining: 0, cost: 1500, average: 3000 });
    const trades = await exchange.fetchMyTrades('ETH/USDT');
    expect(trades).toHaveLength(1);
    expect(trades[0]).toMatchObject({
      order: order.id,
      side: 'buy',
      price: 3000,
      amount: 0.5,
      cost: 1500,
      takerOrMaker: 'taker',
      fee: { cost: 1.5, currency: 'USDT' },
    });
    const balance = await exchange.fetchBalance();
    expect(balance.ETH?.free).toBe(0.5);
    expect(balance.USDT?.free).toBe(2000000 - 1501.5);
    const closed = await exchange.fetchOrders('ETH/USDT');
    expect(closed.map((o) => o.status)).toEqual(['closed']);
  });

  it('raises the exceptions ccxt raises for the real venue', async () => {
    await expect(client('wrong-secret').fetchBalance()).rejects.toBeInstanceOf(ccxt.AuthenticationError);
    const exchange = client();
    await exchange.loadMarkets();
    await expect(exchange.createOrder('SOL/USDT', 'market', 'sell', 5)).rejects.toBeInstanceOf(ccxt.InsufficientFunds);
    await expect(exchange.fetchOrder('987654', 'BTC/USDT')).rejects.toBeInstanceOf(ccxt.OrderNotFound);

    await server.setFault({ mode: 'errors' });
    try {
      await expect(exchange.fetchBalance()).rejects.toBeInstanceOf(ccxt.OperationFailed);
    } finally {
      await server.setFault({ mode: 'none' });
    }
    await server.setFault({ mode: 'unreachable' });
    try {
      await expect(exchange.fetchBalance()).rejects.toBeInstanceOf(ccxt.NetworkError);
    } finally {
      await server.setFault({ mode: 'none' });
    }
    expect((await exchange.fetchBalance()).USDT?.free).toBeGreaterThan(0);
  });
});
