import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { getTestStack } from '@lifeboat/testkit';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExchangeServer, type ExchangeServer } from '../src/exchange/index.js';
import { auditLog } from '../src/trader/audit.js';
import { KillSwitch } from '../src/trader/kill-switch.js';

const main = join(import.meta.dirname, '..', 'dist', 'trader', 'main.js');
const account = { apiKey: 'trader-test-key', secret: 'trader-test-secret' };
const VENUE_TO_BOOKS: Record<string, string> = {
  NEW: 'NEW',
  PARTIALLY_FILLED: 'PARTIAL',
  FILLED: 'FILLED',
  CANCELED: 'CANCELED',
  REJECTED: 'REJECTED',
  EXPIRED: 'EXPIRED',
};
const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];

beforeAll(() => {
  if (!existsSync(main))
    throw new Error('apps/paper-trader is not built: run `npm run build` (npm test does it first)');
});

describe('kill switch state file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-ks-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fails closed when the file is missing or unreadable, and says why', () => {
    const missing = new KillSwitch(dir, auditLog(dir));
    expect(missing.state).toBe('ON');
    expect(missing.snapshot().events.at(-1)?.reason).toContain('state file missing');
    writeFileSync(join(dir, 'kill_switch_state.json'), '{"state": "OF');
    const corrupt = new KillSwitch(dir, auditLog(dir));
    expect(corrupt.halted).toBe(true);
    expect(corrupt.snapshot().events.at(-1)?.reason).toContain('unreadable');
  });

  it('keeps the last 100 events, writes atomically, and audits every change', () => {
    const ks = new KillSwitch(dir, auditLog(dir));
    for (let i = 0; i < 120; i++) ks[i % 2 ? 'activate' : 'deactivate'](`drill ${i}`);
    const onDisk = JSON.parse(readFileSync(join(dir, 'kill_switch_state.json'), 'utf8'));
    expect(onDisk.events).toHaveLength(100);
    expect(onDisk.events.at(-1)).toMatchObject({ reason: 'drill 119', activated: true, trigger: 'manual' });
    expect(onDisk.state).toBe('ON');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
    const audit = readFileSync(join(dir, 'logs', 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n');
    expect(audit.length).toBeGreaterThanOrEqual(120);
    expect(JSON.parse(audit.at(-1) as string)).toMatchObject({
      event: 'kill_switch',
      state: 'ON',
      reason: 'drill 119',
    });
  });
});

interface Running {
  child: ChildProcess;
  url: string;
}

function startTrader(env: NodeJS.ProcessEnv): Promise<Running> {
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    // The API listens first; the trading loop runs once recovery is done.
    let url: string | undefined;
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === 'paper-trader listening' && entry.url) url = entry.url;
      if (entry.msg === 'recovered; trading loop running' && url) resolve({ child, url });
    });
    child.once('exit', (code) => reject(new Error(`paper-trader exited with ${code} while starting`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((r) => child.once('exit', (code) => r(code)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface BooksRow {
  client_order_id: string;
  exchange_order_id: string | null;
  status: string;
  filled_quantity: string;
  mode: string;
}

async function readBooks(targetDir: string, databaseUrl?: string): Promise<{ orders: BooksRow[]; fills: number }> {
  if (databaseUrl) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const orders = (
        await client.query('SELECT client_order_id, exchange_order_id, status, filled_quantity::text, mode FROM orders')
      ).rows;
      const fills = Number((await client.query('SELECT COUNT(*) AS n FROM fills')).rows[0].n);
      return { orders, fills };
    } finally {
      await client.end();
    }
  }
  const db = new Database(join(targetDir, 'trading.db'), { readonly: true });
  try {
    return {
      orders: db
        .prepare('SELECT client_order_id, exchange_order_id, status, filled_quantity, mode FROM orders')
        .all() as BooksRow[],
      fills: (db.prepare('SELECT COUNT(*) AS n FROM fills').get() as { n: number }).n,
    };
  } finally {
    db.close();
  }
}

/** Every order and trade the venue holds for the account. */
function venueBook(exchange: ExchangeServer) {
  const id = exchange.engine.account.id;
  const orders = [];
  let trades = 0;
  for (const s of SYMBOLS) {
    let from = 0;
    for (;;) {
      const page = exchange.engine.allOrders(id, s, { orderId: from, limit: 1000 });
      orders.push(...page);
      if (page.length < 1000) break;
      from = (page.at(-1)?.orderId ?? 0) + 1;
    }
    let fromId = 0;
    for (;;) {
      const page = exchange.engine.myTrades(id, s, { fromId, limit: 1000 });
      trades += page.length;
      if (page.length < 1000) break;
      fromId = (page.at(-1)?.id ?? 0) + 1;
    }
  }
  return { orders, trades };
}

describe.each(['sqlite', 'postgres'] as const)('the paper-trader over %s, against the simulated exchange', (engine) => {
  let dir: string;
  let exchange: ExchangeServer;
  let env: NodeJS.ProcessEnv;
  let databaseUrl: string | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `lifeboat-trader-${engine}-`));
    exchange = createExchangeServer({ dir: join(dir, 'exchange'), account, tickMs: 20 });
    const url = await exchange.listen(0);
    if (engine === 'postgres') databaseUrl = await (await getTestStack()).postgres.createDatabase('lbtrader');
    env = {
      TARGET_DIR: join(dir, 'target'),
      API_PORT: '0',
      EXCHANGE_URL: url,
      EXCHANGE_API_KEY: account.apiKey,
      EXCHANGE_API_SECRET: account.secret,
      ORDER_RATE: '100',
      TRADING_MODE: 'live',
      DATABASE_URL: databaseUrl ?? '',
    };
    // A trading system that starts with its kill switch OFF, as after a morning check.
    const ks = new KillSwitch(join(dir, 'target'), auditLog(join(dir, 'target')));
    ks.deactivate('test setup');
  });

  afterAll(async () => {
    await exchange?.close();
    if (databaseUrl) await (await getTestStack()).postgres.dropDatabase(databaseUrl);
    await rm(dir, { recursive: true, force: true });
  });

  it('trades, halts on the kill switch, survives SIGKILL, and its books agree with the venue', async () => {
    const first = await startTrader(env);
    await sleep(1500);
    const received = () => exchange.engine.stats().orders.total;
    expect(received()).toBeGreaterThan(50);

    // Kill switch ON: once the call returns, not one more order reaches the venue.
    const activate = await fetch(`${first.url}/kill-switch/activate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'drill' }),
    });
    expect(activate.status).toBe(200);
    const atActivation = received();
    await sleep(1000);
    expect(received()).toBe(atActivation);
    expect(exchange.engine.openOrders(exchange.engine.account.id)).toEqual([]);
    expect(((await (await fetch(`${first.url}/health`)).json()) as { kill_switch: string }).kill_switch).toBe('ON');
    const missing = await fetch(`${first.url}/kill-switch/deactivate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(missing.status).toBe(400);
    expect(await missing.text()).toContain('reason');
    await fetch(`${first.url}/kill-switch/deactivate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'drill over' }),
    });
    await sleep(1000);
    expect(received()).toBeGreaterThan(atActivation);

    // A crash in the middle of trading.
    first.child.kill('SIGKILL');
    await exited(first.child);
    const second = await startTrader(env);
    await sleep(800);
    // Quiesce as an operator would before comparing: halt (cancels resting orders), then stop.
    await fetch(`${second.url}/kill-switch/activate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'compare books' }),
    });
    second.child.kill('SIGTERM');
    expect(await exited(second.child)).toBe(0);

    const books = await readBooks(join(dir, 'target'), databaseUrl);
    const venue = venueBook(exchange);
    const byClientId = new Map(books.orders.map((o) => [o.client_order_id, o]));
    expect(venue.orders.length).toBeGreaterThan(100);
    for (const v of venue.orders) {
      const b = byClientId.get(v.clientOrderId);
      expect(b, `venue order ${v.clientOrderId} is in the books`).toBeDefined();
      // A refusal (insufficient balance) answers with an error that carries no order id, as on Binance.
      if (v.status !== 'REJECTED') expect(b?.exchange_order_id).toBe(String(v.orderId));
      expect(b?.status, v.clientOrderId).toBe(VENUE_TO_BOOKS[v.status]);
      expect(Number(b?.filled_quantity), v.clientOrderId).toBe(Number(v.executedQty));
    }
    const venueIds = new Set(venue.orders.map((o) => o.clientOrderId));
    for (const b of books.orders) {
      if (b.mode !== 'live' || venueIds.has(b.client_order_id)) continue;
      // Recorded but never sent (the process died in between), or refused: never open.
      expect(['REJECTED'], b.client_order_id).toContain(b.status);
    }
    expect(books.fills).toBe(venue.trades);
  });

  it('sends nothing in shadow mode, and logs every order as not executed', async () => {
    const before = exchange.engine.stats().orders.total;
    const shadow = await startTrader({ ...env, TRADING_MODE: 'shadow' });
    expect(((await (await fetch(`${shadow.url}/health`)).json()) as { mode: string }).mode).toBe('shadow');
    await sleep(1000);
    shadow.child.kill('SIGTERM');
    await exited(shadow.child);
    expect(exchange.engine.stats().orders.total).toBe(before);
    const lines = readFileSync(join(dir, 'target', 'shadow_orders.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const shadowLines = lines.filter((l) => l.mode === 'shadow');
    expect(shadowLines.length).toBeGreaterThan(20);
    expect(shadowLines.every((l) => l.executed === false)).toBe(true);
    expect(Object.keys(shadowLines[0]).sort()).toEqual([
      'executed',
      'metadata',
      'mode',
      'order_id',
      'price',
      'quantity',
      'side',
      'symbol',
      'timestamp',
      'type',
    ]);
  });
});
