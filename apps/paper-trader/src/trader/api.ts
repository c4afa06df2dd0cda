// The trading system's HTTP API (Sofia-compatible): health, the kill switch, the internal
// books, the venue's view of the account, and Prometheus metrics.
import Fastify, { type FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Books } from './books.js';
import type { ExchangeClient } from './exchange-client.js';
import type { KillSwitch } from './kill-switch.js';
import type { Trader } from './trader.js';
import { venueBalances, venueOrders, venuePositions, venueTrades } from './venue-view.js';

export interface ApiDeps {
  books: Books;
  venue: ExchangeClient;
  killSwitch: KillSwitch;
  trader: Trader;
  version: string;
  gitSha: string;
}

const reason = {
  type: 'object',
  required: ['reason'],
  properties: { reason: { type: 'string', minLength: 1 } },
} as const;

export function createApi(deps: ApiDeps): FastifyInstance {
  const app = Fastify({ logger: false });
  const registry = new Registry();
  // Process memory, heap and event-loop lag, as every Node service exports them.
  collectDefaultMetrics({ register: registry });
  const stat = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  stat('paper_trader_orders_created_total', 'Orders recorded in the books', () => deps.trader.stats.ordersCreated);
  stat('paper_trader_orders_sent_total', 'Orders accepted by the venue', () => deps.trader.stats.ordersSent);
  stat(
    'paper_trader_position_replays_total',
    "Positions recomputed from their market's fills because a fill arrived out of time order",
    () => deps.books.replays,
  );
  stat('paper_trader_fills_total', 'Fills applied to the books', () => deps.trader.stats.fillsApplied);
  stat('paper_trader_venue_errors_total', 'Failed requests to the venue', () => deps.trader.stats.venueErrors);
  stat('paper_trader_kill_switch_on', '1 while trading is halted', () => (deps.killSwitch.halted ? 1 : 0));

  // Venue failures are the venue's, not a bug here: answer 502 with what it said.
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, _req, reply) => {
    if (err.validation) return reply.code(400).send({ error: err.message });
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send({ error: err.message });
    return reply.code(502).send({ error: `exchange: ${err.message}` });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url}` }));

  app.get('/health', async (_req, reply) => {
    if (!deps.trader.started) reply.code(503);
    return health();
  });
  const health = () => ({
    status: deps.trader.started ? 'healthy' : 'recovering',
    version: deps.version,
    git_sha: deps.gitSha,
    mode: deps.trader.mode,
    kill_switch: deps.killSwitch.state,
  });
  app.get('/kill-switch', async () => deps.killSwitch.snapshot());
  app.post<{ Body: { reason: string } }>('/kill-switch/activate', { schema: { body: reason } }, async (req) => {
    const state = deps.killSwitch.activate(req.body.reason, 'api');
    const { cancelled } = await deps.trader.halt();
    return { ...state, cancelled_orders: cancelled };
  });
  app.post<{ Body: { reason: string } }>('/kill-switch/deactivate', { schema: { body: reason } }, async (req) =>
    deps.killSwitch.deactivate(req.body.reason, 'api'),
  );
  app.get('/risk/positions', async () => ({
    positions: await deps.books.positions(),
    balances: await deps.books.balances(),
  }));
  // The venue's view, in the record shapes of Lifeboat's exchange snapshot (docs/FORMAT.md).
  const since = (q: { since?: string }) => (q.since ? Date.parse(q.since) : undefined);
  const sinceQuery = { type: 'object', properties: { since: { type: 'string', format: 'date-time' } } } as const;
  app.get('/exchange/balances', async () => ({ balances: await venueBalances(deps.venue) }));
  app.get('/exchange/positions', async () => ({ positions: await venuePositions(deps.venue) }));
  app.get<{ Querystring: { status?: 'open' | 'all'; since?: string } }>(
    '/exchange/orders',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            status: { type: 'string', enum: ['open', 'all'] },
            since: { type: 'string', format: 'date-time' },
          },
        },
      },
    },
    async (req) => {
      const open = (req.query.status ?? 'open') === 'open';
      const from = since(req.query);
      return { orders: await venueOrders(deps.venue, { open, ...(from !== undefined ? { since: from } : {}) }) };
    },
  );
  app.get<{ Querystring: { since?: string } }>(
    '/exchange/trades',
    { schema: { querystring: sinceQuery } },
    async (req) => {
      const from = since(req.query);
      return { trades: await venueTrades(deps.venue, from !== undefined ? { since: from } : {}) };
    },
  );
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  return app;
}
