import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createExchangeServer,
  type ExchangeServer,
  type ExchangeServerOptions,
  ExchangeState,
  formatUnits,
  parseUnits,
  SYMBOLS,
  signParams,
} from '../src/exchange/index.js';

const KEY = 'lifeboat-test-key';
const SECRET = 'lifeboat-test-secret';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

type Method = 'GET' | 'POST' | 'DELETE';
// biome-ignore lint/suspicious/noExplicitAny: Binance's JSON answers; the assertions check their shape.
type Json = any;

let dir: string;
const servers: ExchangeServer[] = [];
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-exchange-'));
});

afterEach(async () => {
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const s of servers.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

/** An exchange with a still price (no timer) and no random partial or split fills unless asked. */
function open(options: Partial<ExchangeServerOptions> = {}): ExchangeServer {
  const server = createExchangeServer({
    dir,
    account: { apiKey: KEY, secret: SECRET },
    tickMs: 0,
    partialFillProbability: 0,
    splitFillProbability: 0,
    ...options,
  });
  servers.push(server);
  return server;
}

async function call(
  server: ExchangeServer,
  method: Method,
  path: string,
  params: Record<string, string | number | undefined> = {},
  auth: { key?: string; secret?: string; now?: number } = {},
): Promise<{ status: number; body: Json }> {
  const signed = signParams(params, auth.secret ?? SECRET, auth.now ?? Date.now());
  const headers = { 'x-mbx-apikey': auth.key ?? KEY };
  const res =
    method === 'POST'
      ? await server.app.inject({ method, url: path, payload: signed, headers: { ...headers, ...FORM } })
      : await server.app.inject({ method, url: `${path}?${signed}`, headers });
  return { status: res.statusCode, body: res.json() };
}

async function balance(server: ExchangeServer, asset: string): Promise<{ free: string; locked: string }> {
  const { body } = await call(server, 'GET', '/api/v3/account');
  return body.balances.find((b: Json) => b.asset === asset);
}

const limitBuy = (price: string, quantity: string, extra: Json = {}) => ({
  symbol: 'BTCUSDT',
  side: 'BUY',
  type: 'LIMIT',
  timeInForce: 'GTC',
  quantity,
  price,
  ...extra,
});

describe('signed requests', () => {
  it('answers a correctly signed request with the account and its starting balances', async () => {
    const server = open();
    const { status, body } = await call(server, 'GET', '/api/v3/account');
    expect(status).toBe(200);
    expect(body.canTrade).toBe(true);
    expect(body.permissions).toEqual(['SPOT']);
    expect(body.balances).toEqual(
      expect.arrayContaining([
        { asset: 'USDT', free: '2000000.00000000', locked: '0.00000000' },
        { asset: 'BTC', free: '0.00000000', locked: '0.00000000' },
      ]),
    );
  });

  it('refuses a bad signature with -1022 and an unknown or missing API key with -2015 / -2014', async () => {
    const server = open();
    const bad = await call(server, 'GET', '/api/v3/account', {}, { secret: 'not-the-secret' });
    expect(bad).toEqual({ status: 400, body: { code: -1022, msg: 'Signature for this request is not valid.' } });
    const unknown = await call(server, 'GET', '/api/v3/account', {}, { key: 'someone-else' });
    expect(unknown).toEqual({
      status: 401,
      body: { code: -2015, msg: 'Invalid API-key, IP, or permissions for action.' },
    });
    const res = await server.app.inject({ method: 'GET', url: `/api/v3/account?${signParams({}, SECRET)}` });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ code: -2014, msg: 'API-key format invalid.' });
  });

  it('refuses a timestamp outside recvWindow (default 5000 ms) and one from the future', async () => {
    const server = open();
    const stale = await call(server, 'GET', '/api/v3/account', {}, { now: Date.now() - 6000 });
    expect(stale.status).toBe(400);
    expect(stale.body.code).toBe(-1021);
    const wider = await call(server, 'GET', '/api/v3/account', { recvWindow: 10_000 }, { now: Date.now() - 6000 });
    expect(wider.status).toBe(200);
    const ahead = await call(server, 'GET', '/api/v3/account', {}, { now: Date.now() + 5000 });
    expect(ahead.body.code).toBe(-1021);
    const missing = await server.app.inject({
      method: 'GET',
      url: '/api/v3/account?signature=00',
      headers: { 'x-mbx-apikey': KEY },
    });
    expect(missing.json()).toEqual({
      code: -1102,
      msg: "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
    });
  });

  it('signs the query string followed by the body when parameters come in both, as Binance does', async () => {
    const server = open();
    const query = 'symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC';
    const body = `quantity=0.01&price=50000&recvWindow=5000&timestamp=${Date.now()}`;
    const { hmacSignature } = await import('../src/exchange/signing.js');
    const signature = hmacSignature(SECRET, query + body);
    const res = await server.app.inject({
      method: 'POST',
      url: `/api/v3/order?${query}`,
      payload: `${body}&signature=${signature}`,
      headers: { 'x-mbx-apikey': KEY, ...FORM },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ symbol: 'BTCUSDT', status: 'NEW', price: '50000.00000000' });
  });
});

describe('orders', () => {
  it('fills a market buy at the current price and charges 0.1 % in USDT', async () => {
    const server = open();
    server.engine.setPrice('BTCUSDT', '50000');
    const { status, body } = await call(server, 'POST', '/api/v3/order', {
      symbol: 'BTCUSDT',
      side: 'BUY',
      type: 'MARKET',
      quantity: '0.1',
      newClientOrderId: 'SOFIA-test-1-abcdef',
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      clientOrderId: 'SOFIA-test-1-abcdef',
      status: 'FILLED',
      executedQty: '0.10000000',
      cummulativeQuoteQty: '5000.00000000',
      fills: [{ price: '50000.00000000', qty: '0.10000000', commission: '5.00000000', commissionAsset: 'USDT' }],
    });
    expect(await balance(server, 'USDT')).toMatchObject({ free: '1994995.00000000', locked: '0.00000000' });
    expect(await balance(server, 'BTC')).toMatchObject({ free: '0.10000000', locked: '0.00000000' });

    // Selling it back: the proceeds less the fee.
    const sell = await call(server, 'POST', '/api/v3/order', {
      symbol: 'BTCUSDT',
      side: 'SELL',
      type: 'MARKET',
      quantity: '0.1',
    });
    expect(sell.body.status).toBe('FILLED');
    expect(await balance(server, 'USDT')).toMatchObject({ free: '1999990.00000000' });
    const trades = await call(server, 'GET', '/api/v3/myTrades', { symbol: 'BTCUSDT' });
    expect(trades.body).toHaveLength(2);
    expect(trades.body[0]).toMatchObject({ isBuyer: true, isMaker: false, quoteQty: '5000.00000000' });
    expect(trades.body[1]).toMatchObject({ isBuyer: false, commission: '5.00000000' });
  });

  it('fills some market orders in two trades, the second a tick worse', async () => {
    const server = open({ splitFillProbability: 1 });
    server.engine.setPrice('ETHUSDT', '3000');
    const { body } = await call(server, 'POST', '/api/v3/order', {
      symbol: 'ETHUSDT',
      side: 'BUY',
      type: 'MARKET',
      quantity: '1',
    });
    expect(body.status).toBe('FILLED');
    expect(body.fills).toHaveLength(2);
    expect(body.fills.map((f: Json) => f.price)).toEqual(['3000.00000000', '3000.01000000']);
    const qty = body.fills.reduce((s: bigint, f: Json) => s + parseUnits(f.qty), 0n);
    expect(formatUnits(qty)).toBe('1.00000000');
    const fees = body.fills.reduce((s: bigint, f: Json) => s + parseUnits(f.commission), 0n);
    // The fee is the fee of the whole order, rounded once.
    expect(formatUnits(fees)).toBe(
      formatUnits((parseUnits(body.cummulativeQuoteQty) * 100_000n + 50_000_000n) / 100_000_000n),
    );
  });

  it('buys for a quote amount with quoteOrderQty', async () => {
    const server = open();
    server.engine.setPrice('SOLUSDT', '150');
    const { body } = await call(server, 'POST', '/api/v3/order', {
      symbol: 'SOLUSDT',
      side: 'BUY',
      type: 'MARKET',
      quoteOrderQty: '1000',
    });
    expect(body).toMatchObject({ status: 'FILLED', executedQty: '6.66600000', cummulativeQuoteQty: '999.90000000' });
  });

  it('locks the balance of a resting limit order and fills it when the price crosses', async () => {
    const server = open();
    server.engine.setPrice('BTCUSDT', '50000');
    const placed = await call(
      server,
      'POST',
      '/api/v3/order',
      limitBuy('49000', '0.1', { newClientOrderId: 'rest-1' }),
    );
    expect(placed.body).toMatchObject({ status: 'NEW', executedQty: '0.00000000', fills: [] });
    // 4900 at the limit and its 4.9 fee are held for the order.
    expect(await balance(server, 'USDT')).toEqual({
      asset: 'USDT',
      free: '1995095.10000000',
      locked: '4904.90000000',
    });

    server.engine.setPrice('BTCUSDT', '49000.01');
    const open1 = await call(server, 'GET', '/api/v3/openOrders', { symbol: 'BTCUSDT' });
    expect(open1.body.map((o: Json) => o.clientOrderId)).toEqual(['rest-1']);

    server.engine.setPrice('BTCUSDT', '48900');
    const got = await call(server, 'GET', '/api/v3/order', { symbol: 'BTCUSDT', origClientOrderId: 'rest-1' });
    expect(got.body).toMatchObject({
      status: 'FILLED',
      executedQty: '0.10000000',
      cummulativeQuoteQty: '4900.00000000',
    });
    const trades = await call(server, 'GET', '/api/v3/myTrades', { symbol: 'BTCUSDT', orderId: got.body.orderId });
    // A resting order is the maker and fills at its own limit.
    expect(trades.body).toEqual([
      expect.objectContaining({ price: '49000.00000000', qty: '0.10000000', isMaker: true, commission: '4.90000000' }),
    ]);
    expect(await balance(server, 'USDT')).toMatchObject({ free: '1995095.10000000', locked: '0.00000000' });
    expect(await balance(server, 'BTC')).toMatchObject({ free: '0.10000000' });
    expect((await call(server, 'GET', '/api/v3/openOrders', { symbol: 'BTCUSDT' })).body).toEqual([]);
  });

  it('fills a crossed limit order partially first when the venue decides so, then the rest', async () => {
    const server = open({ partialFillProbability: 1 });
    server.engine.setPrice('BTCUSDT', '50000');
    await call(server, 'POST', '/api/v3/order', limitBuy('49000', '0.5', { newClientOrderId: 'part-1' }));
    server.engine.setPrice('BTCUSDT', '48999.99');
    const partial = await call(server, 'GET', '/api/v3/order', { symbol: 'BTCUSDT', origClientOrderId: 'part-1' });
    expect(partial.body.status).toBe('PARTIALLY_FILLED');
    const executed = parseUnits(partial.body.executedQty);
    expect(executed > 0n && executed < parseUnits('0.5')).toBe(true);

    server.engine.step();
    server.engine.setPrice('BTCUSDT', '48000');
    const filled = await call(server, 'GET', '/api/v3/order', { symbol: 'BTCUSDT', origClientOrderId: 'part-1' });
    expect(filled.body).toMatchObject({ status: 'FILLED', executedQty: '0.50000000' });
    const trades = await call(server, 'GET', '/api/v3/myTrades', { symbol: 'BTCUSDT' });
    expect(trades.body).toHaveLength(2);
    const fees = trades.body.reduce((s: bigint, t: Json) => s + parseUnits(t.commission), 0n);
    expect(formatUnits(fees)).toBe('24.50000000');
    expect(await balance(server, 'USDT')).toMatchObject({ free: '1975475.50000000', locked: '0.00000000' });
  });

  it('fills a limit sell when the price rises to it', async () => {
    const server = open({ account: { apiKey: KEY, secret: SECRET, initialBalances: { USDT: '0', SOL: '10' } } });
    server.engine.setPrice('SOLUSDT', '150');
    const placed = await call(server, 'POST', '/api/v3/order', {
      symbol: 'SOLUSDT',
      side: 'SELL',
      type: 'LIMIT',
      timeInForce: 'GTC',
      quantity: '4',
      price: '155.5',
    });
    expect(placed.body.status).toBe('NEW');
    expect(await balance(server, 'SOL')).toMatchObject({ free: '6.00000000', locked: '4.00000000' });
    server.engine.setPrice('SOLUSDT', '156');
    expect(await balance(server, 'SOL')).toMatchObject({ free: '6.00000000', locked: '0.00000000' });
    expect(await balance(server, 'USDT')).toMatchObject({ free: '621.37800000' });
  });

  it('moves the price on a seeded walk that repeats for the same seed', async () => {
    const a = open({ dir: join(dir, 'a'), seed: 42 });
    const b = open({ dir: join(dir, 'b'), seed: 42 });
    const c = open({ dir: join(dir, 'c'), seed: 43 });
    for (const s of [a, b, c]) s.engine.step(50);
    expect(a.engine.currentPrices()).toEqual(b.engine.currentPrices());
    expect(a.engine.currentPrices()).not.toEqual(c.engine.currentPrices());
    expect(a.engine.currentPrices().BTCUSDT).not.toBe('60000.00000000');
    for (const spec of SYMBOLS) {
      const price = parseUnits(a.engine.price(spec.symbol));
      expect(price % parseUnits(spec.tickSize)).toBe(0n);
    }
  });

  it('cancels a resting order, gives back its lock, and refuses to cancel it twice', async () => {
    const server = open();
    server.engine.setPrice('BTCUSDT', '50000');
    const placed = await call(server, 'POST', '/api/v3/order', limitBuy('40000', '0.2', { newClientOrderId: 'c-1' }));
    const cancel = await call(server, 'DELETE', '/api/v3/order', { symbol: 'BTCUSDT', origClientOrderId: 'c-1' });
    expect(cancel.status).toBe(200);
    expect(cancel.body).toMatchObject({
      orderId: placed.body.orderId,
      origClientOrderId: 'c-1',
      status: 'CANCELED',
      executedQty: '0.00000000',
    });
    expect(await balance(server, 'USDT')).toMatchObject({ free: '2000000.00000000', locked: '0.00000000' });
    const again = await call(server, 'DELETE', '/api/v3/order', { symbol: 'BTCUSDT', orderId: placed.body.orderId });
    expect(again).toEqual({ status: 400, body: { code: -2011, msg: 'Unknown order sent.' } });
    const all = await call(server, 'GET', '/api/v3/allOrders', { symbol: 'BTCUSDT' });
    expect(all.body.map((o: Json) => o.status)).toEqual(['CANCELED']);
  });

  it('cancels all open orders of a symbol', async () => {
    const server = open();
    server.engine.setPrice('BTCUSDT', '50000');
    await call(server, 'POST', '/api/v3/order', limitBuy('40000', '0.01'));
    await call(server, 'POST', '/api/v3/order', limitBuy('41000', '0.01'));
    const res = await call(server, 'DELETE', '/api/v3/openOrders', { symbol: 'BTCUSDT' });
    expect(res.body.map((o: Json) => o.status)).toEqual(['CANCELED', 'CANCELED']);
    expect(await balance(server, 'USDT')).toMatchObject({ locked: '0.00000000' });
  });

  it('rejects an order the balance cannot cover with -2010 and keeps it as REJECTED', async () => {
    const server = open();
    const res = await call(server, 'POST', '/api/v3/order', {
      symbol: 'BTCUSDT',
      side: 'SELL',
      type: 'MARKET',
      quantity: '1',
      newClientOrderId: 'broke-1',
    });
    expect(res).toEqual({
      status: 400,
      body: { code: -2010, msg: 'Account has insufficient balance for requested action.' },
    });
    const big = await call(server, 'POST', '/api/v3/order', limitBuy('50000', '100'));
    expect(big.body.code).toBe(-2010);
    const got = await call(server, 'GET', '/api/v3/order', { symbol: 'BTCUSDT', origClientOrderId: 'broke-1' });
    expect(got.body).toMatchObject({ status: 'REJECTED', executedQty: '0.00000000' });
    expect(await balance(server, 'USDT')).toMatchObject({ free: '2000000.00000000', locked: '0.00000000' });
  });

  it('refuses a second open order with the same client order id', async () => {
    const server = open();
    server.engine.setPrice('BTCUSDT', '50000');
    const first = await call(server, 'POST', '/api/v3/order', limitBuy('40000', '0.01', { newClientOrderId: 'dup-1' }));
    expect(first.status).toBe(200);
    const second = await call(
      server,
      'POST',
      '/api/v3/order',
      limitBuy('40000', '0.01', { newClientOrderId: 'dup-1' }),
    );
    expect(second).toEqual({ status: 400, body: { code: -2010, msg: 'Duplicate order sent.' } });
    expect((await call(server, 'GET', '/api/v3/openOrders', {})).body).toHaveLength(1);
  });

  it('answers bad requests with 400 naming the parameter, and unknown routes with 404', async () => {
    const server = open();
    const noQty = await call(server, 'POST', '/api/v3/order', {
      symbol: 'BTCUSDT',
      side: 'BUY',
      type: 'LIMIT',
      timeInForce: 'GTC',
      price: '50000',
    });
    expect(noQty).toEqual({
      status: 400,
      body: { code: -1102, msg: "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed." },
    });
    const noSymbol = await call(server, 'GET', '/api/v3/allOrders', {});
    expect(noSymbol.body.msg).toContain("'symbol'");
    const badSymbol = await call(server, 'GET', '/api/v3/openOrders', { symbol: 'LUNAUSDT' });
    expect(badSymbol).toEqual({ status: 400, body: { code: -1121, msg: 'Invalid symbol.' } });
    const noRef = await call(server, 'GET', '/api/v3/order', { symbol: 'BTCUSDT' });
    expect(noRef.body).toEqual({
      code: -1102,
      msg: "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!",
    });
    const missing = await call(server, 'GET', '/api/v3/order', { symbol: 'BTCUSDT', orderId: 999 });
    expect(missing).toEqual({ status: 400, body: { code: -2013, msg: 'Order does not exist.' } });
    const lot = await call(server, 'POST', '/api/v3/order', limitBuy('50000', '0.000015'));
    expect(lot.body).toEqual({ code: -1013, msg: 'Filter failure: LOT_SIZE' });
    const tick = await call(server, 'POST', '/api/v3/order', limitBuy('50000.005', '0.01'));
    expect(tick.body).toEqual({ code: -1013, msg: 'Filter failure: PRICE_FILTER' });
    const qty = await call(server, 'POST', '/api/v3/order', limitBuy('50000', 'lots'));
    expect(qty.body.code).toBe(-1100);
    expect(qty.body.msg).toContain("'quantity'");
    const side = await call(server, 'POST', '/api/v3/order', { ...limitBuy('50000', '0.01'), side: 'HOLD' });
    expect(side.body).toEqual({ code: -1117, msg: 'Invalid side.' });
    const notFound = await server.app.inject({ method: 'GET', url: '/api/v3/depth' });
    expect(notFound.statusCode).toBe(404);
    expect(notFound.json()).toEqual({ code: -1000, msg: 'Unknown route: GET /api/v3/depth' });
  });

  it('publishes its markets, prices and time without a signature', async () => {
    const server = open();
    const info = (await server.app.inject({ method: 'GET', url: '/api/v3/exchangeInfo' })).json();
    expect(info.symbols.map((s: Json) => s.symbol)).toEqual([
      'BTCUSDT',
      'ETHUSDT',
      'SOLUSDT',
      'BNBUSDT',
      'XRPUSDT',
      'ADAUSDT',
      'DOGEUSDT',
    ]);
    expect(info.symbols[0]).toMatchObject({
      status: 'TRADING',
      baseAsset: 'BTC',
      quoteAsset: 'USDT',
      permissions: ['SPOT'],
    });
    expect(info.symbols[0].filters.map((f: Json) => f.filterType)).toEqual([
      'PRICE_FILTER',
      'LOT_SIZE',
      'MIN_NOTIONAL',
      'NOTIONAL',
    ]);
    const one = (await server.app.inject({ method: 'GET', url: '/api/v3/ticker/price?symbol=ETHUSDT' })).json();
    expect(one).toEqual({ symbol: 'ETHUSDT', price: '3000.00000000' });
    const time = (await server.app.inject({ method: 'GET', url: '/api/v3/time' })).json();
    expect(Math.abs(time.serverTime - Date.now())).toBeLessThan(5000);
    expect((await server.app.inject({ method: 'GET', url: '/api/v3/ping' })).json()).toEqual({});
  });

  it('counts every order request that reached it, refused ones included', async () => {
    const server = open();
    server.engine.setPrice('BTCUSDT', '50000');
    await call(server, 'POST', '/api/v3/order', limitBuy('40000', '0.01', { newClientOrderId: 'SOFIA-a-1-000001' }));
    await call(server, 'POST', '/api/v3/order', limitBuy('40000', '0.01', { newClientOrderId: 'SOFIA-a-1-000001' }));
    await call(server, 'POST', '/api/v3/order', limitBuy('40000', '0.01', { newClientOrderId: 'SOFIA-b-1-000002' }), {
      secret: 'wrong',
    });
    await call(server, 'POST', '/api/v3/order', limitBuy('40000', '0.01', { newClientOrderId: 'other-1' }));
    await call(server, 'GET', '/api/v3/openOrders', {});
    const stats = (
      await server.app.inject({ method: 'GET', url: '/_lifeboat/stats?clientOrderIdPrefix=SOFIA-' })
    ).json();
    expect(stats).toMatchObject({
      ordersReceived: 4,
      ordersAccepted: 2,
      ordersRefused: 2,
      ordersReceivedWithPrefix: 3,
      openOrders: 2,
    });
  });
});

describe('restarts', () => {
  it('keeps balances, open orders and the walk when reopened from the same directory', async () => {
    const first = open({ seed: 7 });
    first.engine.setPrice('BTCUSDT', '50000');
    await call(first, 'POST', '/api/v3/order', limitBuy('49000', '0.1', { newClientOrderId: 'keep-1' }));
    first.engine.step(10);
    const prices = first.engine.currentPrices();
    await first.close();

    const second = open({ seed: 999 });
    // The venue keeps the seed it was created with, and its prices.
    expect(second.engine.seed).toBe(7);
    expect(second.engine.currentPrices()).toEqual(prices);
    const orders = await call(second, 'GET', '/api/v3/openOrders', { symbol: 'BTCUSDT' });
    expect(orders.body.map((o: Json) => o.clientOrderId)).toEqual(['keep-1']);
    expect(await balance(second, 'USDT')).toMatchObject({ locked: '4904.90000000' });
    second.engine.setPrice('BTCUSDT', '48000');
    const got = await call(second, 'GET', '/api/v3/order', { symbol: 'BTCUSDT', origClientOrderId: 'keep-1' });
    expect(got.body.status).toBe('FILLED');
  });
});

describe('faults', () => {
  it('slow holds back every Binance answer by delayMs, not the control surface', async () => {
    const server = open();
    await server.setFault({ mode: 'slow', delayMs: 400 });
    let started = Date.now();
    expect((await server.app.inject({ method: 'GET', url: '/api/v3/ping' })).statusCode).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    started = Date.now();
    const stats = (await server.app.inject({ method: 'GET', url: '/_lifeboat/stats' })).json();
    expect(Date.now() - started).toBeLessThan(300);
    expect(stats.fault).toMatchObject({ mode: 'slow', delayMs: 400 });
    await server.setFault({ mode: 'none' });
    started = Date.now();
    await server.app.inject({ method: 'GET', url: '/api/v3/ping' });
    expect(Date.now() - started).toBeLessThan(300);
  });

  it('errors answers every Binance request with 503 -1001 and creates nothing, until durationMs ends it', async () => {
    const server = open();
    const set = await server.app.inject({
      method: 'POST',
      url: '/_lifeboat/faults',
      payload: { mode: 'errors', durationMs: 1500 },
    });
    const setAt = Date.now();
    // A window long enough for the checks below on a loaded machine; then waited out from when it began.
    expect(set.json()).toMatchObject({ mode: 'errors', durationMs: 1500 });
    const order = await call(server, 'POST', '/api/v3/order', limitBuy('40000', '0.01'));
    expect(order).toEqual({
      status: 503,
      body: { code: -1001, msg: 'Internal error; unable to process your request. Please try again.' },
    });
    expect((await server.app.inject({ method: 'GET', url: '/api/v3/time' })).statusCode).toBe(503);
    const stats = (await server.app.inject({ method: 'GET', url: '/_lifeboat/stats' })).json();
    expect(stats).toMatchObject({ ordersReceived: 1, ordersAccepted: 0, openOrders: 0 });
    await new Promise((r) => setTimeout(r, setAt + 1600 - Date.now()));
    expect((await server.app.inject({ method: 'GET', url: '/api/v3/time' })).statusCode).toBe(200);
    expect(server.fault().mode).toBe('none');
  });

  it('refuses bad fault requests with 400 naming the field', async () => {
    const server = open();
    const res = await server.app.inject({ method: 'POST', url: '/_lifeboat/faults', payload: { mode: 'flaky' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().msg).toContain("'mode'");
    const delay = await server.app.inject({
      method: 'POST',
      url: '/_lifeboat/faults',
      payload: { mode: 'slow', delayMs: -1 },
    });
    expect(delay.json().msg).toContain("'delayMs'");
  });

  it('unreachable refuses connections, then listens again on the same port after durationMs', async () => {
    const server = open();
    const url = await server.listen(0);
    expect((await fetch(`${url}/api/v3/ping`)).status).toBe(200);
    const set = await fetch(`${url}/_lifeboat/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mode: 'unreachable', durationMs: 800 }),
    });
    expect(await set.json()).toMatchObject({ mode: 'unreachable', durationMs: 800 });
    await new Promise((r) => setTimeout(r, 50));
    const refused = await fetch(`${url}/api/v3/ping`).then(
      () => 'connected',
      (err: Error & { cause?: { code?: string } }) => err.cause?.code,
    );
    expect(refused).toBe('ECONNREFUSED');
    await new Promise((r) => setTimeout(r, 1000));
    expect((await fetch(`${url}/api/v3/ping`)).status).toBe(200);
    expect(server.fault().mode).toBe('none');
  });

  it('setFault makes it unreachable at once and ends the fault when set back to none', async () => {
    const server = open();
    const url = await server.listen(0);
    await server.setFault({ mode: 'unreachable' });
    expect(server.fault()).toMatchObject({ mode: 'unreachable', durationMs: 30_000 });
    await expect(fetch(`${url}/api/v3/ping`)).rejects.toThrow();
    await server.setFault({ mode: 'none' });
    expect((await fetch(`${url}/api/v3/ping`)).status).toBe(200);
  });
});

describe('the exchange process', () => {
  const main = join(import.meta.dirname, '..', 'src', 'exchange', 'main.ts');

  function start(env: NodeJS.ProcessEnv): { child: ChildProcess; url: Promise<string>; output: string[] } {
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', main], {
      cwd: join(import.meta.dirname, '..'),
      env: { ...process.env, EXCHANGE_DIR: join(dir, 'venue'), EXCHANGE_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const output: string[] = [];
    const url = new Promise<string>((resolve, reject) => {
      // 'close', not 'exit': by then every line of its output has been read.
      child.once('close', (code) => reject(new Error(`exchange exited with ${code}: ${output.join('\n')}`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        output.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg === 'exchange listening' && entry.url) resolve(entry.url);
        } catch {
          // not a log line
        }
      });
      child.stderr!.on('data', (d) => output.push(String(d)));
    });
    return { child, url, output };
  }

  const exited = (child: ChildProcess) =>
    new Promise<number | null>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) r(child.exitCode);
      else child.once('exit', (code) => r(code));
    });

  async function send(url: string, method: Method, path: string, params: Json): Promise<Json> {
    const signed = signParams(params, SECRET);
    const headers = { 'x-mbx-apikey': KEY };
    const res =
      method === 'POST'
        ? await fetch(`${url}${path}`, { method, body: signed, headers: { ...headers, ...FORM } })
        : await fetch(`${url}${path}?${signed}`, { method, headers });
    return res.json();
  }

  it('logs one listening line, keeps its books consistent through a SIGKILL, and exits 0 on SIGTERM', async () => {
    const env = { EXCHANGE_API_KEY: KEY, EXCHANGE_API_SECRET: SECRET, EXCHANGE_TICK_MS: '5', EXCHANGE_SEED: '3' };
    const first = start(env);
    const url = await first.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // A burst of orders of every kind, killed while requests are in flight.
    const ticker = (await (await fetch(`${url}/api/v3/ticker/price?symbol=BTCUSDT`)).json()) as { price: string };
    const price = Number(ticker.price);
    const inFlight: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      const offset = ((i % 7) - 3) * 10;
      const params =
        i % 3 === 0
          ? { symbol: 'BTCUSDT', side: i % 2 ? 'SELL' : 'BUY', type: 'MARKET', quantity: '0.001' }
          : {
              symbol: 'BTCUSDT',
              side: i % 2 ? 'SELL' : 'BUY',
              type: 'LIMIT',
              timeInForce: 'GTC',
              quantity: '0.002',
              price: (price + offset).toFixed(2),
            };
      inFlight.push(send(url, 'POST', '/api/v3/order', { ...params, newClientOrderId: `kill-${i}` }).catch(() => null));
      if (i === 150) first.child.kill('SIGKILL');
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.all(inFlight);
    await exited(first.child);

    // Every balance is the start plus what the trades moved, and locked is what open orders hold.
    const state = new ExchangeState(join(dir, 'venue'));
    try {
      const account = state.accountByKey(KEY)!;
      const expected = new Map<string, bigint>([
        ['USDT', parseUnits('2000000')],
        ['BTC', 0n],
      ]);
      const locked = new Map<string, bigint>();
      let orders = 0;
      for (const order of state.allOrders(account.id, 'BTCUSDT', { limit: Number.MAX_SAFE_INTEGER })) {
        orders++;
        const trades = state.tradesOfOrder(order.orderId);
        const qty = trades.reduce((s, t) => s + parseUnits(t.qty), 0n);
        expect(formatUnits(qty)).toBe(order.executedQty);
        for (const t of trades) {
          const sign = t.isBuyer ? 1n : -1n;
          expected.set('BTC', expected.get('BTC')! + sign * parseUnits(t.qty));
          expected.set('USDT', expected.get('USDT')! - sign * parseUnits(t.quoteQty) - parseUnits(t.commission));
        }
        if (order.status === 'NEW' || order.status === 'PARTIALLY_FILLED') {
          locked.set(order.lockedAsset, (locked.get(order.lockedAsset) ?? 0n) + parseUnits(order.lockedAmount));
        } else {
          expect(order.lockedAmount).toBe('0.00000000');
        }
      }
      expect(orders).toBeGreaterThan(0);
      for (const asset of ['USDT', 'BTC']) {
        const b = state.balance(account.id, asset);
        expect(formatUnits(parseUnits(b.free) + parseUnits(b.locked)), asset).toBe(formatUnits(expected.get(asset)!));
        expect(b.locked, asset).toBe(formatUnits(locked.get(asset) ?? 0n));
      }
    } finally {
      state.close();
    }

    const second = start(env);
    const again = await second.url;
    const openOrders = await send(again, 'GET', '/api/v3/openOrders', { symbol: 'BTCUSDT' });
    expect(Array.isArray(openOrders)).toBe(true);
    second.child.kill('SIGTERM');
    expect(await exited(second.child)).toBe(0);
    const log = [...first.output, ...second.output].join('\n');
    expect(log).not.toContain(SECRET);
    expect(second.output.filter((l) => l.includes('"msg":"exchange listening"'))).toHaveLength(1);
  });

  it('exits 2 naming the variable when EXCHANGE_API_SECRET is missing', async () => {
    const run = start({ EXCHANGE_API_KEY: KEY, EXCHANGE_API_SECRET: '' });
    await expect(run.url).rejects.toThrow(/EXCHANGE_API_SECRET is not set/);
    expect(run.child.exitCode).toBe(2);
  });
});
