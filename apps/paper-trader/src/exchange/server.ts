// The simulated exchange over HTTP: the subset of Binance's spot REST API that ccxt's
// `binance` client uses, signed the way Binance signs, plus a `/_lifeboat` control surface
// with which drills make the venue slow, failing or unreachable.
import { createServer, type Server } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { formatUnits, parseUnits } from './decimal.js';
import { ExchangeEngine, type ExchangeEngineOptions, FEE_RATE, type OrderRef, type SymbolSpec } from './engine.js';
import { BinanceApiError, binanceErrors } from './errors.js';
import { signatureMatches } from './signing.js';
import type { Account, Order, Trade } from './state.js';

export type FaultMode = 'none' | 'slow' | 'errors' | 'unreachable';

export interface Fault {
  mode: FaultMode;
  /** slow: how long every Binance response is held back (default 2000 ms). */
  delayMs?: number;
  /** How long the fault lasts before the venue recovers by itself; unreachable defaults to 30000 ms, the others last until changed. */
  durationMs?: number;
}

export interface FaultState {
  mode: FaultMode;
  delayMs?: number;
  durationMs?: number;
  since: string;
  /** When the fault ends by itself. */
  until?: string;
}

export interface ExchangeServerOptions extends ExchangeEngineOptions {
  /** Where the server logs failures (requests themselves are not logged). */
  logger?: FastifyBaseLogger;
}

export interface ExchangeStatsResponse {
  /** POST /api/v3/order requests that reached the exchange, accepted or refused. */
  ordersReceived: number;
  ordersAccepted: number;
  ordersRefused: number;
  /** With `?clientOrderIdPrefix=`: requests whose newClientOrderId starts with it. */
  ordersReceivedWithPrefix?: number;
  openOrders: number;
  trades: number;
  walkSteps: number;
  prices: Record<string, string>;
  fault: FaultState;
  /** The exchange process's memory in bytes (for soak tests). */
  memory: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
}

export interface ExchangeServer {
  readonly app: FastifyInstance;
  readonly engine: ExchangeEngine;
  /** Listens (port 0 picks a free one) and returns the base URL, e.g. http://127.0.0.1:8024. */
  listen(port?: number, host?: string): Promise<string>;
  /** The base URL once listening. */
  readonly url: string | undefined;
  /** Applies a fault; resolves once it is in effect (for unreachable: the port refuses connections). */
  setFault(fault: Fault): Promise<FaultState>;
  fault(): FaultState;
  close(): Promise<void>;
}

const DEFAULT_RECV_WINDOW = 5000;
const MAX_RECV_WINDOW = 60_000;
const DEFAULT_SLOW_MS = 2000;
const DEFAULT_UNREACHABLE_MS = 30_000;
const INTEGER_RANGE = '^[0-9]{1,20}$';

/** The parameters of a Binance request: query string and form body together, as Binance reads them. */
class Params {
  constructor(
    readonly values: Map<string, string>,
    /** The query string and the body concatenated, without the signature: what the client signed. */
    readonly signed: string,
    readonly signature: string | undefined,
  ) {}

  get(name: string): string | undefined {
    const v = this.values.get(name);
    return v === undefined || v === '' ? undefined : v;
  }

  require(name: string): string {
    const v = this.get(name);
    if (v === undefined) throw binanceErrors.mandatory(name);
    return v;
  }

  integer(name: string): number | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (!/^[0-9]{1,20}$/.test(v) || !Number.isSafeInteger(Number(v)))
      throw binanceErrors.illegalChars(name, INTEGER_RANGE);
    return Number(v);
  }

  limit(max = 1000): number | undefined {
    const v = this.get('limit');
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!/^[0-9]{1,10}$/.test(v) || n < 1) throw binanceErrors.badLimit();
    return Math.min(n, max);
  }
}

function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    throw binanceErrors.illegalChars(text.split('=')[0] ?? text, 'a percent-encoded string');
  }
}

function readParams(request: FastifyRequest): Params {
  const url = request.raw.url ?? '';
  const q = url.indexOf('?');
  const query = q >= 0 ? url.slice(q + 1) : '';
  // Only form bodies carry parameters; the form parser hands us the raw text.
  const body = typeof request.body === 'string' ? request.body : '';
  const values = new Map<string, string>();
  let signature: string | undefined;
  const unsigned: string[] = [];
  for (const raw of [query, body]) {
    const kept: string[] = [];
    for (const pair of raw.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const key = decodeComponent(eq >= 0 ? pair.slice(0, eq) : pair);
      const value = decodeComponent(eq >= 0 ? pair.slice(eq + 1) : '');
      if (key === 'signature') {
        if (signature !== undefined) throw binanceErrors.duplicateParam('signature');
        signature = value;
        continue;
      }
      if (values.has(key)) throw binanceErrors.duplicateParam(key);
      values.set(key, value);
      kept.push(pair);
    }
    unsigned.push(kept.join('&'));
  }
  // Binance signs "totalParams": the query string followed directly by the body.
  return new Params(values, unsigned.join(''), signature);
}

function orderJson(o: Order) {
  return {
    symbol: o.symbol,
    orderId: o.orderId,
    orderListId: -1,
    clientOrderId: o.clientOrderId,
    price: o.price,
    origQty: o.origQty,
    executedQty: o.executedQty,
    cummulativeQuoteQty: o.cummulativeQuoteQty,
    status: o.status,
    timeInForce: o.timeInForce,
    type: o.type,
    side: o.side,
    stopPrice: '0.00000000',
    icebergQty: '0.00000000',
    time: o.time,
    updateTime: o.updateTime,
    isWorking: true,
    workingTime: o.time,
    origQuoteOrderQty: o.origQuoteOrderQty,
    selfTradePreventionMode: 'NONE',
  };
}

function cancelJson(o: Order, cancelClientOrderId: string, now: number) {
  return {
    symbol: o.symbol,
    origClientOrderId: o.clientOrderId,
    orderId: o.orderId,
    orderListId: -1,
    // As on Binance: the id of the cancel request, not of the order (that is origClientOrderId).
    clientOrderId: cancelClientOrderId,
    transactTime: now,
    price: o.price,
    origQty: o.origQty,
    executedQty: o.executedQty,
    origQuoteOrderQty: o.origQuoteOrderQty,
    cummulativeQuoteQty: o.cummulativeQuoteQty,
    status: o.status,
    timeInForce: o.timeInForce,
    type: o.type,
    side: o.side,
    selfTradePreventionMode: 'NONE',
  };
}

function tradeJson(t: Trade) {
  return {
    symbol: t.symbol,
    id: t.id,
    orderId: t.orderId,
    orderListId: -1,
    price: t.price,
    qty: t.qty,
    quoteQty: t.quoteQty,
    commission: t.commission,
    commissionAsset: t.commissionAsset,
    time: t.time,
    isBuyer: t.isBuyer,
    isMaker: t.isMaker,
    isBestMatch: true,
  };
}

function symbolJson(s: SymbolSpec) {
  const f = (text: string) => formatUnits(parseUnits(text));
  return {
    symbol: s.symbol,
    status: 'TRADING',
    baseAsset: s.baseAsset,
    baseAssetPrecision: 8,
    quoteAsset: s.quoteAsset,
    quotePrecision: 8,
    quoteAssetPrecision: 8,
    baseCommissionPrecision: 8,
    quoteCommissionPrecision: 8,
    orderTypes: ['LIMIT', 'MARKET'],
    icebergAllowed: false,
    ocoAllowed: false,
    otoAllowed: false,
    quoteOrderQtyMarketAllowed: true,
    allowTrailingStop: false,
    cancelReplaceAllowed: false,
    isSpotTradingAllowed: true,
    isMarginTradingAllowed: false,
    filters: [
      { filterType: 'PRICE_FILTER', minPrice: f(s.minPrice), maxPrice: f(s.maxPrice), tickSize: f(s.tickSize) },
      { filterType: 'LOT_SIZE', minQty: f(s.minQty), maxQty: f(s.maxQty), stepSize: f(s.stepSize) },
      { filterType: 'MIN_NOTIONAL', minNotional: f(s.minNotional), applyToMarket: true, avgPriceMins: 0 },
      {
        filterType: 'NOTIONAL',
        minNotional: f(s.minNotional),
        applyMinToMarket: true,
        maxNotional: '9000000.00000000',
        applyMaxToMarket: false,
        avgPriceMins: 0,
      },
    ],
    permissions: ['SPOT'],
    permissionSets: [['SPOT']],
    defaultSelfTradePreventionMode: 'NONE',
    allowedSelfTradePreventionModes: ['NONE'],
  };
}

/** Symbols named by `symbol` or `symbols` (a JSON array), or all of them. */
function selectSymbols(engine: ExchangeEngine, params: Params): SymbolSpec[] | undefined {
  const one = params.get('symbol');
  const many = params.get('symbols');
  if (one !== undefined && many !== undefined) throw binanceErrors.notRequired('symbols');
  if (one !== undefined) {
    const spec = engine.symbol(one);
    if (!spec) throw binanceErrors.badSymbol();
    return [spec];
  }
  if (many !== undefined) {
    let ids: unknown;
    try {
      ids = JSON.parse(many);
    } catch {
      throw binanceErrors.illegalChars('symbols', '^\\["[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}]$');
    }
    if (!Array.isArray(ids) || ids.length === 0) throw binanceErrors.mandatory('symbols');
    return ids.map((id) => {
      const spec = typeof id === 'string' ? engine.symbol(id) : undefined;
      if (!spec) throw binanceErrors.badSymbol();
      return spec;
    });
  }
  return undefined;
}

function orderRef(params: Params): OrderRef {
  const orderId = params.integer('orderId');
  const origClientOrderId = params.get('origClientOrderId');
  if (orderId === undefined && origClientOrderId === undefined) {
    throw binanceErrors.eitherMandatory('orderId', 'origClientOrderId');
  }
  return { orderId, origClientOrderId };
}

function parseFault(body: unknown): Fault {
  const bad = (msg: string) => new BinanceApiError(-1100, msg);
  if (typeof body !== 'object' || body === null) throw binanceErrors.mandatory('mode');
  const { mode, delayMs, durationMs } = body as Record<string, unknown>;
  if (mode === undefined) throw binanceErrors.mandatory('mode');
  if (mode !== 'none' && mode !== 'slow' && mode !== 'errors' && mode !== 'unreachable') {
    throw bad(`Parameter 'mode' must be one of none, slow, errors, unreachable; got ${JSON.stringify(mode)}.`);
  }
  const fault: Fault = { mode };
  for (const [name, value] of [
    ['delayMs', delayMs],
    ['durationMs', durationMs],
  ] as const) {
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 3_600_000) {
      throw bad(
        `Parameter '${name}' must be a whole number of milliseconds up to 3600000; got ${JSON.stringify(value)}.`,
      );
    }
    fault[name] = value;
  }
  return fault;
}

export function createExchangeServer(options: ExchangeServerOptions): ExchangeServer {
  const engine = new ExchangeEngine({
    ...options,
    onError: options.onError ?? ((err) => options.logger?.error({ err }, 'price walk step failed')),
  });
  const now = options.now ?? Date.now;
  const app = Fastify(
    options.logger ? { loggerInstance: options.logger, disableRequestLogging: true } : { logger: false },
  );

  let http: Server | undefined;
  let host = '127.0.0.1';
  let port: number | undefined;
  let closed = false;
  let fault: FaultState = { mode: 'none', since: new Date(now()).toISOString() };
  let revertTimer: NodeJS.Timeout | undefined;
  const sleepers = new Set<() => void>();
  /** Requests whose response must go out before the port closes (the one that asked for unreachable). */
  const closeAfter = new WeakSet<FastifyRequest>();

  const isBinance = (request: FastifyRequest) => request.url.startsWith('/api/');
  const isOrderRequest = (request: FastifyRequest) =>
    request.method === 'POST' && (request.raw.url ?? '').split('?')[0] === '/api/v3/order';

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      sleepers.add(done);
    });
  }

  function openListener(): Promise<void> {
    const server = createServer((req, res) => app.routing(req, res));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port ?? 0, host, () => {
        server.off('error', reject);
        const address = server.address();
        if (address && typeof address === 'object') port = address.port;
        http = server;
        resolve();
      });
    });
  }

  function closeListener(): Promise<void> {
    const server = http;
    http = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      // Open keep-alive connections would otherwise still reach us: unreachable means refused.
      server.closeAllConnections();
    });
  }

  async function applyFault(next: Fault, how: { closeLater?: boolean } = {}): Promise<FaultState> {
    if (revertTimer) clearTimeout(revertTimer);
    revertTimer = undefined;
    const started = now();
    const durationMs = next.durationMs ?? (next.mode === 'unreachable' ? DEFAULT_UNREACHABLE_MS : undefined);
    const state: FaultState = {
      mode: next.mode,
      since: new Date(started).toISOString(),
      ...(next.mode === 'slow' ? { delayMs: next.delayMs ?? DEFAULT_SLOW_MS } : {}),
      ...(durationMs !== undefined && next.mode !== 'none'
        ? { durationMs, until: new Date(started + durationMs).toISOString() }
        : {}),
    };
    const wasUnreachable = fault.mode === 'unreachable';
    fault = state;
    if (state.mode === 'unreachable') {
      if (!how.closeLater) await closeListener();
    } else if (wasUnreachable && port !== undefined && !http && !closed) await openListener();
    if (state.durationMs !== undefined) {
      revertTimer = setTimeout(() => {
        revertTimer = undefined;
        applyFault({ mode: 'none' }).catch((err) => options.logger?.error({ err }, 'could not end the fault'));
      }, state.durationMs);
    }
    options.logger?.warn({ fault: state }, 'exchange fault');
    return state;
  }

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, body);
  });

  app.setErrorHandler((err, request, reply) => {
    if (err instanceof BinanceApiError) return reply.code(err.httpStatus).send(err.toJSON());
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send({ code: -1000, msg: (err as Error).message });
    }
    request.log.error({ err }, 'exchange request failed');
    return reply.code(500).send(binanceErrors.unknown().toJSON());
  });

  app.setNotFoundHandler((request, reply) => {
    const e = binanceErrors.unknownRoute(request.method, request.url.split('?')[0] ?? request.url);
    return reply.code(e.httpStatus).send(e.toJSON());
  });

  // errors: Binance answers with -1001 without doing anything, as during an incident.
  app.addHook('preHandler', async (request, reply) => {
    if (fault.mode !== 'errors' || !isBinance(request)) return;
    if (isOrderRequest(request)) {
      const params = (() => {
        try {
          return readParams(request);
        } catch {
          return undefined;
        }
      })();
      engine.recordOrderRequest(params?.get('newClientOrderId') ?? null, params?.get('symbol') ?? null, 'fault 503');
    }
    return reply.code(503).send(binanceErrors.internal().toJSON());
  });

  // slow: the work is done at once, the answer is late (so a client that times out has an order in flight).
  app.addHook('onSend', async (request, _reply, payload) => {
    if (fault.mode === 'slow' && isBinance(request)) await sleep(fault.delayMs ?? DEFAULT_SLOW_MS);
    return payload;
  });

  app.addHook('onResponse', async (request) => {
    if (closeAfter.has(request) && fault.mode === 'unreachable') await closeListener();
  });

  function authenticate(request: FastifyRequest, params: Params): Account {
    const apiKey = request.headers['x-mbx-apikey'];
    if (typeof apiKey !== 'string' || apiKey === '') throw binanceErrors.badApiKeyFormat();
    const account = engine.accountByKey(apiKey);
    if (!account) throw binanceErrors.badApiKey();
    const timestamp = params.get('timestamp');
    if (timestamp === undefined || !/^[0-9]{1,20}$/.test(timestamp)) throw binanceErrors.mandatory('timestamp');
    if (params.signature === undefined || params.signature === '') throw binanceErrors.mandatory('signature');
    const recvWindowText = params.get('recvWindow');
    let recvWindow = DEFAULT_RECV_WINDOW;
    if (recvWindowText !== undefined) {
      recvWindow = Number(recvWindowText);
      if (!/^[0-9]{1,10}$/.test(recvWindowText)) throw binanceErrors.illegalChars('recvWindow', INTEGER_RANGE);
      if (recvWindow > MAX_RECV_WINDOW) throw binanceErrors.badRecvWindow();
    }
    const serverTime = now();
    const ts = Number(timestamp);
    if (ts >= serverTime + 1000) throw binanceErrors.timestampAhead();
    if (serverTime - ts > recvWindow) throw binanceErrors.timestampOutside();
    if (!signatureMatches(account.secret, params.signed, params.signature)) throw binanceErrors.badSignature();
    return account;
  }

  type Handler = (params: Params, account: Account, request: FastifyRequest, reply: FastifyReply) => unknown;
  const signed = (handler: Handler) => async (request: FastifyRequest, reply: FastifyReply) => {
    const params = readParams(request);
    return handler(params, authenticate(request, params), request, reply);
  };
  const publicRoute = (handler: (params: Params) => unknown) => async (request: FastifyRequest, _reply: FastifyReply) =>
    handler(readParams(request));

  // Public market data.
  app.get(
    '/api/v3/ping',
    publicRoute(() => ({})),
  );
  app.get(
    '/api/v3/time',
    publicRoute(() => ({ serverTime: now() })),
  );
  app.get(
    '/api/v3/exchangeInfo',
    publicRoute((params) => ({
      timezone: 'UTC',
      serverTime: now(),
      rateLimits: [
        { rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: 6000 },
        { rateLimitType: 'ORDERS', interval: 'SECOND', intervalNum: 10, limit: 10000 },
      ],
      exchangeFilters: [],
      symbols: (selectSymbols(engine, params) ?? engine.symbols()).map(symbolJson),
    })),
  );
  app.get(
    '/api/v3/ticker/price',
    publicRoute((params) => {
      const selected = selectSymbols(engine, params);
      const ticker = (s: SymbolSpec) => ({ symbol: s.symbol, price: engine.price(s.symbol) });
      if (params.get('symbol') !== undefined && selected) return ticker(selected[0]!);
      return (selected ?? engine.symbols()).map(ticker);
    }),
  );

  // Account and orders (USER_DATA / TRADE: signed).
  app.get(
    '/api/v3/account',
    signed((params, account) => {
      const omitZero = params.get('omitZeroBalances') === 'true';
      const balances = engine
        .balances(account.id)
        .filter((b) => !omitZero || parseUnits(b.free) + parseUnits(b.locked) > 0n);
      const fee = formatUnits(parseUnits(FEE_RATE));
      return {
        makerCommission: 10,
        takerCommission: 10,
        buyerCommission: 0,
        sellerCommission: 0,
        commissionRates: { maker: fee, taker: fee, buyer: '0.00000000', seller: '0.00000000' },
        canTrade: true,
        canWithdraw: false,
        canDeposit: false,
        brokered: false,
        requireSelfTradePrevention: false,
        preventSor: false,
        updateTime: now(),
        accountType: 'SPOT',
        balances,
        permissions: ['SPOT'],
        uid: account.id,
      };
    }),
  );

  app.post('/api/v3/order', async (request, reply) => {
    let params: Params | undefined;
    let account: Account;
    try {
      params = readParams(request);
      account = authenticate(request, params);
    } catch (err) {
      const code = err instanceof BinanceApiError ? err.code : 'error';
      engine.recordOrderRequest(
        params?.get('newClientOrderId') ?? null,
        params?.get('symbol') ?? null,
        `error ${code}`,
      );
      throw err;
    }
    const respType = params.get('newOrderRespType') ?? 'FULL';
    if (respType !== 'ACK' && respType !== 'RESULT' && respType !== 'FULL') {
      const err = binanceErrors.badOrderRespType();
      engine.recordOrderRequest(
        params.get('newClientOrderId') ?? null,
        params.get('symbol') ?? null,
        `error ${err.code}`,
      );
      throw err;
    }
    const { order, fills } = engine.placeOrder(account.id, {
      symbol: params.get('symbol'),
      side: params.get('side'),
      type: params.get('type'),
      timeInForce: params.get('timeInForce'),
      quantity: params.get('quantity'),
      quoteOrderQty: params.get('quoteOrderQty'),
      price: params.get('price'),
      newClientOrderId: params.get('newClientOrderId'),
    });
    const ack = {
      symbol: order.symbol,
      orderId: order.orderId,
      orderListId: -1,
      clientOrderId: order.clientOrderId,
      transactTime: order.time,
    };
    if (respType === 'ACK') return reply.send(ack);
    const result = {
      ...ack,
      price: order.price,
      origQty: order.origQty,
      executedQty: order.executedQty,
      origQuoteOrderQty: order.origQuoteOrderQty,
      cummulativeQuoteQty: order.cummulativeQuoteQty,
      status: order.status,
      timeInForce: order.timeInForce,
      type: order.type,
      side: order.side,
      workingTime: order.time,
      selfTradePreventionMode: 'NONE',
    };
    if (respType === 'RESULT') return reply.send(result);
    return reply.send({
      ...result,
      fills: fills.map((t) => ({
        price: t.price,
        qty: t.qty,
        commission: t.commission,
        commissionAsset: t.commissionAsset,
        tradeId: t.id,
      })),
    });
  });

  app.post(
    '/api/v3/order/test',
    signed((params) => {
      engine.validateOrder({
        symbol: params.get('symbol'),
        side: params.get('side'),
        type: params.get('type'),
        timeInForce: params.get('timeInForce'),
        quantity: params.get('quantity'),
        quoteOrderQty: params.get('quoteOrderQty'),
        price: params.get('price'),
        newClientOrderId: params.get('newClientOrderId'),
      });
      return {};
    }),
  );

  app.get(
    '/api/v3/order',
    signed((params, account) => orderJson(engine.getOrder(account.id, params.require('symbol'), orderRef(params)))),
  );

  app.delete(
    '/api/v3/order',
    signed((params, account) => {
      const symbol = params.require('symbol');
      const order = engine.cancelOrder(account.id, symbol, orderRef(params));
      return cancelJson(order, params.get('newClientOrderId') ?? `cancel-${order.orderId}`, now());
    }),
  );

  app.get(
    '/api/v3/openOrders',
    signed((params, account) => engine.openOrders(account.id, params.get('symbol')).map(orderJson)),
  );

  app.delete(
    '/api/v3/openOrders',
    signed((params, account) => {
      const at = now();
      return engine
        .cancelOpenOrders(account.id, params.require('symbol'))
        .map((o) => cancelJson(o, `cancel-${o.orderId}`, at));
    }),
  );

  app.get(
    '/api/v3/allOrders',
    signed((params, account) => {
      const query = {
        orderId: params.integer('orderId'),
        startTime: params.integer('startTime'),
        endTime: params.integer('endTime'),
        limit: params.limit(),
      };
      return engine
        .allOrders(
          account.id,
          params.require('symbol'),
          Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)),
        )
        .map(orderJson);
    }),
  );

  app.get(
    '/api/v3/myTrades',
    signed((params, account) => {
      const query = {
        orderId: params.integer('orderId'),
        fromId: params.integer('fromId'),
        startTime: params.integer('startTime'),
        endTime: params.integer('endTime'),
        limit: params.limit(),
      };
      if (query.fromId !== undefined && (query.startTime !== undefined || query.endTime !== undefined)) {
        throw new BinanceApiError(-1128, 'Combination of optional parameters invalid.');
      }
      return engine
        .myTrades(
          account.id,
          params.require('symbol'),
          Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)),
        )
        .map(tradeJson);
    }),
  );

  // The drill control surface (not Binance): never faulted, never signed; bind to localhost.
  app.get('/_lifeboat/faults', async () => fault);
  app.post('/_lifeboat/faults', async (request) => {
    const next = parseFault(request.body);
    // Unreachable: answer first, then close the port (in onResponse).
    if (next.mode === 'unreachable') closeAfter.add(request);
    return applyFault(next, { closeLater: next.mode === 'unreachable' });
  });
  app.get('/_lifeboat/stats', async (request): Promise<ExchangeStatsResponse> => {
    const prefix = (request.query as Record<string, unknown>).clientOrderIdPrefix;
    const stats = engine.stats(typeof prefix === 'string' && prefix !== '' ? prefix : undefined);
    return {
      ordersReceived: stats.orders.total,
      ordersAccepted: stats.orders.accepted,
      ordersRefused: stats.orders.refused,
      ...(stats.orders.withPrefix !== undefined ? { ordersReceivedWithPrefix: stats.orders.withPrefix } : {}),
      openOrders: stats.openOrders,
      trades: stats.trades,
      walkSteps: stats.walkSteps,
      prices: stats.prices,
      fault,
      memory: (({ rss, heapUsed, external, arrayBuffers }) => ({ rss, heapUsed, external, arrayBuffers }))(
        process.memoryUsage(),
      ),
    };
  });
  app.post('/_lifeboat/price', async (request) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (typeof body.symbol !== 'string' || body.symbol === '') throw binanceErrors.mandatory('symbol');
    if (typeof body.price !== 'string' || body.price === '') throw binanceErrors.mandatory('price');
    engine.setPrice(body.symbol, body.price);
    return { symbol: body.symbol, price: engine.price(body.symbol) };
  });
  app.post('/_lifeboat/step', async (request) => {
    const steps = (request.body as Record<string, unknown> | undefined)?.steps ?? 1;
    if (typeof steps !== 'number' || !Number.isInteger(steps) || steps < 1 || steps > 100_000) {
      throw new BinanceApiError(
        -1100,
        `Parameter 'steps' must be a whole number from 1 to 100000; got ${JSON.stringify(steps)}.`,
      );
    }
    engine.step(steps);
    return { walkSteps: engine.stats().walkSteps, prices: engine.currentPrices() };
  });

  engine.start();

  return {
    app,
    engine,
    get url() {
      return port === undefined ? undefined : `http://${host}:${port}`;
    },
    async listen(listenPort = 0, listenHost = '127.0.0.1') {
      await app.ready();
      host = listenHost;
      port = listenPort;
      await openListener();
      return `http://${host}:${port}`;
    },
    setFault: (next: Fault) => applyFault(parseFault(next)),
    fault: () => fault,
    async close() {
      if (closed) return;
      closed = true;
      if (revertTimer) clearTimeout(revertTimer);
      for (const wake of [...sleepers]) wake();
      engine.stop();
      await closeListener();
      await app.close();
      engine.close();
    },
  };
}
