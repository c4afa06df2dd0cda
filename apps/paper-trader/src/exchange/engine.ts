// The simulated venue's matching engine: a seeded random price walk per symbol, market
// orders filled at once, limit orders resting until the walk crosses them, 0.1 % fees in
// the quote asset and balances locked for what is resting, every change in one transaction.
import { randomBytes } from 'node:crypto';
import { DecimalError, divUnits, floorToStep, formatUnits, minUnits, mulUnits, parseUnits } from './decimal.js';
import { BinanceApiError, binanceErrors } from './errors.js';
import {
  type Account,
  type Balance,
  ExchangeState,
  type Order,
  type OrderRequestStats,
  type OrderStatus,
  type OrderType,
  type Side,
  type TimeInForce,
  type Trade,
} from './state.js';

export interface SymbolSpec {
  /** Binance's id (BTCUSDT). */
  symbol: string;
  /** ccxt's unified symbol (BTC/USDT). */
  unified: string;
  baseAsset: string;
  quoteAsset: string;
  tickSize: string;
  stepSize: string;
  minQty: string;
  maxQty: string;
  minPrice: string;
  maxPrice: string;
  minNotional: string;
  /** Where the walk starts on a new venue. */
  initialPrice: string;
  /** Standard deviation of one walk step, as a fraction of the price. */
  volatility: number;
}

export const SYMBOLS: readonly SymbolSpec[] = [
  {
    symbol: 'BTCUSDT',
    unified: 'BTC/USDT',
    baseAsset: 'BTC',
    quoteAsset: 'USDT',
    tickSize: '0.01',
    stepSize: '0.00001',
    minQty: '0.00001',
    maxQty: '9000',
    minPrice: '0.01',
    maxPrice: '1000000',
    minNotional: '5',
    initialPrice: '60000',
    volatility: 0.0002,
  },
  {
    symbol: 'ETHUSDT',
    unified: 'ETH/USDT',
    baseAsset: 'ETH',
    quoteAsset: 'USDT',
    tickSize: '0.01',
    stepSize: '0.0001',
    minQty: '0.0001',
    maxQty: '9000',
    minPrice: '0.01',
    maxPrice: '1000000',
    minNotional: '5',
    initialPrice: '3000',
    volatility: 0.00025,
  },
  {
    symbol: 'SOLUSDT',
    unified: 'SOL/USDT',
    baseAsset: 'SOL',
    quoteAsset: 'USDT',
    tickSize: '0.01',
    stepSize: '0.001',
    minQty: '0.001',
    maxQty: '90000',
    minPrice: '0.01',
    maxPrice: '100000',
    minNotional: '5',
    initialPrice: '150',
    volatility: 0.0003,
  },
  // The rest of the demo's history trades these (packages/testkit's generator).
  {
    symbol: 'BNBUSDT',
    unified: 'BNB/USDT',
    baseAsset: 'BNB',
    quoteAsset: 'USDT',
    tickSize: '0.01',
    stepSize: '0.001',
    minQty: '0.001',
    maxQty: '90000',
    minPrice: '0.01',
    maxPrice: '1000000',
    minNotional: '5',
    initialPrice: '860',
    volatility: 0.0003,
  },
  {
    symbol: 'XRPUSDT',
    unified: 'XRP/USDT',
    baseAsset: 'XRP',
    quoteAsset: 'USDT',
    tickSize: '0.0001',
    stepSize: '0.1',
    minQty: '0.1',
    maxQty: '9000000',
    minPrice: '0.0001',
    maxPrice: '1000000',
    minNotional: '5',
    initialPrice: '2.85',
    volatility: 0.0004,
  },
  {
    symbol: 'ADAUSDT',
    unified: 'ADA/USDT',
    baseAsset: 'ADA',
    quoteAsset: 'USDT',
    tickSize: '0.0001',
    stepSize: '0.1',
    minQty: '0.1',
    maxQty: '9000000',
    minPrice: '0.0001',
    maxPrice: '1000000',
    minNotional: '5',
    initialPrice: '0.83',
    volatility: 0.0004,
  },
  {
    symbol: 'DOGEUSDT',
    unified: 'DOGE/USDT',
    baseAsset: 'DOGE',
    quoteAsset: 'USDT',
    tickSize: '0.00001',
    stepSize: '1',
    minQty: '1',
    maxQty: '90000000',
    minPrice: '0.00001',
    maxPrice: '1000000',
    minNotional: '5',
    initialPrice: '0.215',
    volatility: 0.0005,
  },
];

/** Taker and maker fee, charged in the quote asset. */
export const FEE_RATE = '0.001';

export const DEFAULT_INITIAL_BALANCES: Readonly<Record<string, string>> = {
  USDT: '2000000',
  BTC: '0',
  ETH: '0',
  SOL: '0',
};

export interface ExchangeAccountConfig {
  apiKey: string;
  secret: string;
  /** Balances of a new account (ignored once it exists); unnamed assets start at 0. */
  initialBalances?: Record<string, string>;
}

export interface ExchangeEngineOptions {
  /** State directory; the database is `<dir>/exchange.db`. */
  dir: string;
  account: ExchangeAccountConfig;
  /** Seed of the price walk and of fill decisions, used when the venue is created (default 1). */
  seed?: number;
  /** Walk step interval in ms once started (default 100). */
  tickMs?: number;
  /** Chance that a resting order's first fill is partial (default 0.3). */
  partialFillProbability?: number;
  /** Chance that a taker order fills in two trades (default 0.3). */
  splitFillProbability?: number;
  now?: () => number;
  /** Told about a walk step that failed (the timer keeps going). */
  onError?: (err: unknown) => void;
}

/** POST /api/v3/order parameters, as strings the way they arrive. */
export interface PlaceOrderParams {
  symbol?: string | undefined;
  side?: string | undefined;
  type?: string | undefined;
  timeInForce?: string | undefined;
  quantity?: string | undefined;
  quoteOrderQty?: string | undefined;
  price?: string | undefined;
  newClientOrderId?: string | undefined;
}

export interface PlaceOrderResult {
  order: Order;
  fills: Trade[];
}

/** An order named by its exchange id or its client id (the exchange id wins when both are given). */
export interface OrderRef {
  orderId?: number | undefined;
  origClientOrderId?: string | undefined;
}

export interface ExchangeStats {
  orders: OrderRequestStats;
  openOrders: number;
  trades: number;
  walkSteps: number;
  prices: Record<string, string>;
}

const CLIENT_ORDER_ID = /^[.A-Z:/a-z0-9_-]{1,36}$/;
const CLIENT_ORDER_ID_RANGE = '^[\\.A-Z\\:/a-z0-9_-]{1,36}$';
const DECIMAL_RANGE = '^([0-9]{1,20})(\\.[0-9]{1,20})?$';
const FEE = parseUnits(FEE_RATE);

interface Market {
  spec: SymbolSpec;
  tick: bigint;
  step: bigint;
  minQty: bigint;
  maxQty: bigint;
  minPrice: bigint;
  maxPrice: bigint;
  minNotional: bigint;
  initial: bigint;
}

interface Fill {
  price: bigint;
  qty: bigint;
}

interface ValidOrder {
  market: Market;
  side: Side;
  type: OrderType;
  timeInForce: TimeInForce;
  quantity: bigint | undefined;
  quoteOrderQty: bigint | undefined;
  price: bigint | undefined;
  clientOrderId: string;
}

/** mulberry32: one uniform in [0, 1) and the next state, so the walk's state fits in the database. */
function nextRandom(state: number): [number, number] {
  const next = (state + 0x6d2b79f5) >>> 0;
  let t = next;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [((t ^ (t >>> 14)) >>> 0) / 4294967296, next];
}

/** A uniform in [0, 1) fixed by (seed, order id, purpose): fill decisions do not depend on timing. */
function chance(seed: number, orderId: number, salt: number): number {
  let h = (seed ^ Math.imul(salt, 0x9e3779b1)) >>> 0;
  for (const n of [orderId >>> 0, Math.floor(orderId / 4294967296)]) {
    h = Math.imul(h ^ n, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return (h >>> 0) / 4294967296;
}

const SALT_PARTIAL = 1;
const SALT_PARTIAL_SIZE = 2;
const SALT_SPLIT = 3;
const SALT_SPLIT_SIZE = 4;

function decimalParam(name: string, value: string): bigint {
  try {
    return parseUnits(value);
  } catch (err) {
    if (err instanceof DecimalError && err.reason === 'precision') throw binanceErrors.tooPrecise(name);
    throw binanceErrors.illegalChars(name, DECIMAL_RANGE);
  }
}

function present(value: string | undefined): value is string {
  return value !== undefined && value !== '';
}

function generatedClientOrderId(): string {
  // Binance's own ids are 22 characters of [A-Za-z0-9].
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(22), (b) => alphabet[b % alphabet.length]).join('');
}

export class ExchangeEngine {
  readonly state: ExchangeState;
  /** The configured account. */
  readonly account: Account;
  /** The walk's seed (the one the venue was created with). */
  readonly seed: number;
  private readonly markets = new Map<string, Market>();
  private readonly prices = new Map<string, bigint>();
  private rng: number;
  private walkSteps: number;
  private readonly tickMs: number;
  private readonly partialP: number;
  private readonly splitP: number;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: ExchangeEngineOptions) {
    this.now = options.now ?? Date.now;
    this.tickMs = options.tickMs ?? 100;
    this.partialP = options.partialFillProbability ?? 0.3;
    this.splitP = options.splitFillProbability ?? 0.3;
    this.onError = options.onError ?? (() => {});
    for (const spec of SYMBOLS) {
      this.markets.set(spec.symbol, {
        spec,
        tick: parseUnits(spec.tickSize),
        step: parseUnits(spec.stepSize),
        minQty: parseUnits(spec.minQty),
        maxQty: parseUnits(spec.maxQty),
        minPrice: parseUnits(spec.minPrice),
        maxPrice: parseUnits(spec.maxPrice),
        minNotional: parseUnits(spec.minNotional),
        initial: parseUnits(spec.initialPrice),
      });
    }
    this.state = new ExchangeState(options.dir);
    try {
      const now = this.now();
      const initial: Record<string, string> = {};
      for (const [asset, amount] of Object.entries({
        ...DEFAULT_INITIAL_BALANCES,
        ...options.account.initialBalances,
      })) {
        initial[asset] = formatUnits(parseUnits(amount));
      }
      this.account = this.state.ensureAccount(options.account.apiKey, options.account.secret, initial, now);
      const venue = this.state.transaction(() => {
        let seed = this.state.getMeta('seed');
        if (seed === undefined) {
          seed = String((options.seed ?? 1) >>> 0);
          this.state.setMeta('seed', seed);
          this.state.setMeta('rng_state', seed);
          this.state.setMeta('walk_steps', '0');
        }
        const stored = this.state.prices();
        for (const m of this.markets.values()) {
          if (!stored.has(m.spec.symbol)) {
            this.state.setPrice(m.spec.symbol, formatUnits(m.initial), now);
            stored.set(m.spec.symbol, formatUnits(m.initial));
          }
        }
        return {
          seed: Number(seed),
          rng: Number(this.state.getMeta('rng_state')),
          steps: Number(this.state.getMeta('walk_steps')),
          prices: stored,
        };
      });
      this.seed = venue.seed;
      this.rng = venue.rng;
      this.walkSteps = venue.steps;
      for (const [symbol, price] of venue.prices) this.prices.set(symbol, parseUnits(price));
    } catch (err) {
      this.state.close();
      throw err;
    }
  }

  /** Starts the walk timer (no-op with tickMs 0). */
  start(): void {
    if (this.timer || this.tickMs <= 0) return;
    this.timer = setInterval(() => {
      try {
        this.step();
      } catch (err) {
        this.onError(err);
      }
    }, this.tickMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  close(): void {
    this.stop();
    this.state.close();
  }

  symbols(): readonly SymbolSpec[] {
    return SYMBOLS;
  }

  symbol(id: string): SymbolSpec | undefined {
    return this.markets.get(id)?.spec;
  }

  accountByKey(apiKey: string): Account | undefined {
    return apiKey === this.account.apiKey ? this.account : this.state.accountByKey(apiKey);
  }

  price(symbol: string): string {
    const p = this.prices.get(symbol);
    if (p === undefined) throw binanceErrors.badSymbol();
    return formatUnits(p);
  }

  currentPrices(): Record<string, string> {
    return Object.fromEntries([...this.prices].map(([s, p]) => [s, formatUnits(p)]));
  }

  balances(accountId: number): Balance[] {
    return this.state.balances(accountId);
  }

  /** Advances the walk n steps, filling the limit orders each step crosses. */
  step(n = 1): void {
    for (let i = 0; i < n; i++) {
      this.state.transaction(() => {
        const now = this.now();
        const moved = new Map<string, bigint>();
        let rng = this.rng;
        for (const m of this.markets.values()) {
          let u1: number;
          let u2: number;
          [u1, rng] = nextRandom(rng);
          [u2, rng] = nextRandom(rng);
          const z = Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
          const p = this.prices.get(m.spec.symbol)!;
          const price = Number(p) / 1e8;
          // A slight pull towards the start keeps a long demo's prices in a believable range.
          const move = price * m.spec.volatility * z + 0.0005 * (Number(m.initial) / 1e8 - price);
          const ticks = BigInt(Math.round(move / (Number(m.tick) / 1e8)));
          let next = p + ticks * m.tick;
          if (next < m.minPrice) next = m.minPrice;
          if (next > m.maxPrice) next = m.maxPrice;
          moved.set(m.spec.symbol, next);
          this.state.setPrice(m.spec.symbol, formatUnits(next), now);
          this.matchResting(m, next, now);
        }
        this.state.setMeta('rng_state', String(rng));
        this.state.setMeta('walk_steps', String(this.walkSteps + 1));
        // Memory follows the database only once the transaction has committed.
        return () => {
          this.rng = rng;
          this.walkSteps += 1;
          for (const [s, p] of moved) this.prices.set(s, p);
        };
      })();
    }
  }

  /** Sets a symbol's price (drills and tests), filling the limit orders it crosses. */
  setPrice(symbol: string, price: string): void {
    const m = this.markets.get(symbol);
    if (!m) throw binanceErrors.badSymbol();
    const p = decimalParam('price', price);
    if (p < m.minPrice || p > m.maxPrice || p % m.tick !== 0n) throw binanceErrors.filterFailure('PRICE_FILTER');
    this.state.transaction(() => {
      const now = this.now();
      this.state.setPrice(symbol, formatUnits(p), now);
      this.matchResting(m, p, now);
    });
    this.prices.set(symbol, p);
  }

  /** Checks an order as POST /api/v3/order/test does: parameters and filters, not balances. */
  validateOrder(params: PlaceOrderParams): void {
    const v = this.validate(params);
    if (v.type === 'MARKET') this.marketQuantity(v, this.prices.get(v.market.spec.symbol)!);
  }

  /**
   * Places an order. Throws BinanceApiError for invalid parameters, filter failures, a
   * duplicate client id of an open order (-2010) and insufficient balance (-2010; the order
   * is then kept as REJECTED).
   */
  placeOrder(accountId: number, params: PlaceOrderParams): PlaceOrderResult {
    let recorded = false;
    try {
      const v = this.validate(params);
      const result = this.state.transaction((): PlaceOrderResult | { error: BinanceApiError; recorded: boolean } => {
        const now = this.now();
        if (this.state.openOrderByClientId(accountId, v.clientOrderId)) {
          return { error: binanceErrors.duplicateOrder(), recorded: false };
        }
        const m = v.market;
        const price = this.prices.get(m.spec.symbol)!;
        const qty = v.type === 'MARKET' ? this.marketQuantity(v, price) : v.quantity!;
        const lockedAsset = v.side === 'BUY' ? m.spec.quoteAsset : m.spec.baseAsset;
        const orderId = this.state.insertOrder({
          accountId,
          clientOrderId: v.clientOrderId,
          symbol: m.spec.symbol,
          side: v.side,
          type: v.type,
          timeInForce: v.timeInForce,
          price: formatUnits(v.price ?? 0n),
          priceUnits: v.price ?? 0n,
          origQty: formatUnits(qty),
          executedQty: formatUnits(0n),
          cummulativeQuoteQty: formatUnits(0n),
          origQuoteOrderQty: formatUnits(v.quoteOrderQty ?? 0n),
          status: 'NEW',
          lockedAsset,
          lockedAmount: formatUnits(0n),
          time: now,
          updateTime: now,
        });
        let fills: Fill[] = [];
        let resting = false;
        if (v.type === 'MARKET') {
          fills = v.quoteOrderQty !== undefined ? [{ price, qty }] : this.takerFills(m, orderId, v.side, qty, price);
        } else {
          const marketable = v.side === 'BUY' ? v.price! >= price : v.price! <= price;
          if (marketable) fills = this.takerFills(m, orderId, v.side, qty, price, v.price);
          else resting = v.timeInForce === 'GTC';
        }
        // A buy locks what it may spend at its limit (or what its fills cost), fee included; a sell its base.
        let need = qty;
        if (v.side === 'BUY') {
          const cost =
            v.type === 'LIMIT' ? mulUnits(v.price!, qty) : fills.reduce((s, f) => s + mulUnits(f.price, f.qty), 0n);
          need = cost + mulUnits(cost, FEE);
        }
        const balance = this.state.balance(accountId, lockedAsset);
        const free = parseUnits(balance.free);
        const order = this.state.order(orderId)!;
        if (free < need) {
          this.state.updateOrder(orderId, { ...order, status: 'REJECTED' });
          this.state.recordOrderRequest(now, v.clientOrderId, m.spec.symbol, 'rejected');
          return { error: binanceErrors.insufficientBalance(), recorded: true };
        }
        this.state.setBalance(
          accountId,
          lockedAsset,
          formatUnits(free - need),
          formatUnits(parseUnits(balance.locked) + need),
        );
        this.state.updateOrder(orderId, { ...order, lockedAmount: formatUnits(need) });
        const trades = fills.map((f) => this.fill(orderId, f, false, now));
        const after = this.state.order(orderId)!;
        if (!resting && after.status !== 'FILLED') {
          // An IOC or FOK order that did not cross: nothing filled, it expires.
          this.finish(after, 'EXPIRED', now);
        }
        this.state.recordOrderRequest(now, v.clientOrderId, m.spec.symbol, 'accepted');
        return { order: this.state.order(orderId)!, fills: trades };
      });
      if ('error' in result) {
        recorded = result.recorded;
        throw result.error;
      }
      recorded = true;
      return result;
    } catch (err) {
      if (!recorded) {
        const outcome = err instanceof BinanceApiError ? `error ${err.code}` : 'error';
        this.recordOrderRequest(params.newClientOrderId ?? null, params.symbol ?? null, outcome);
      }
      throw err;
    }
  }

  /** Notes an order request that never reached placeOrder (bad signature, a fault). */
  recordOrderRequest(clientOrderId: string | null, symbol: string | null, outcome: string): void {
    this.state.transaction(() => this.state.recordOrderRequest(this.now(), clientOrderId, symbol, outcome));
  }

  /** An order of this account on this symbol; -2013 when there is none. */
  getOrder(accountId: number, symbol: string, ref: OrderRef): Order {
    this.requireMarket(symbol);
    const order = this.findOrder(accountId, symbol, ref);
    if (!order) throw binanceErrors.noSuchOrder();
    return order;
  }

  /** Cancels an open order; -2011 when it does not exist or has already ended. */
  cancelOrder(accountId: number, symbol: string, ref: OrderRef): Order {
    this.requireMarket(symbol);
    const result = this.state.transaction(() => {
      const order = this.findOrder(accountId, symbol, ref);
      if (!order || (order.status !== 'NEW' && order.status !== 'PARTIALLY_FILLED')) return undefined;
      this.finish(order, 'CANCELED', this.now());
      return this.state.order(order.orderId)!;
    });
    if (!result) throw binanceErrors.unknownOrder();
    return result;
  }

  /** Cancels every open order of this account on a symbol; -2011 when there is none. */
  cancelOpenOrders(accountId: number, symbol: string): Order[] {
    this.requireMarket(symbol);
    const cancelled = this.state.transaction(() => {
      const now = this.now();
      return this.state.openOrders(accountId, symbol).map((order) => {
        this.finish(order, 'CANCELED', now);
        return this.state.order(order.orderId)!;
      });
    });
    if (cancelled.length === 0) throw binanceErrors.unknownOrder();
    return cancelled;
  }

  openOrders(accountId: number, symbol?: string): Order[] {
    if (symbol !== undefined) this.requireMarket(symbol);
    return this.state.openOrders(accountId, symbol);
  }

  allOrders(
    accountId: number,
    symbol: string,
    query: { orderId?: number; startTime?: number; endTime?: number; limit?: number } = {},
  ): Order[] {
    this.requireMarket(symbol);
    return this.state.allOrders(accountId, symbol, {
      ...(query.orderId !== undefined ? { fromOrderId: query.orderId } : {}),
      ...(query.startTime !== undefined ? { startTime: query.startTime } : {}),
      ...(query.endTime !== undefined ? { endTime: query.endTime } : {}),
      limit: query.limit ?? 500,
    });
  }

  myTrades(
    accountId: number,
    symbol: string,
    query: { orderId?: number; fromId?: number; startTime?: number; endTime?: number; limit?: number } = {},
  ): Trade[] {
    this.requireMarket(symbol);
    return this.state.trades(accountId, symbol, {
      ...(query.orderId !== undefined ? { orderId: query.orderId } : {}),
      ...(query.fromId !== undefined ? { fromId: query.fromId } : {}),
      ...(query.startTime !== undefined ? { startTime: query.startTime } : {}),
      ...(query.endTime !== undefined ? { endTime: query.endTime } : {}),
      limit: query.limit ?? 500,
    });
  }

  tradesOfOrder(orderId: number): Trade[] {
    return this.state.tradesOfOrder(orderId);
  }

  stats(clientOrderIdPrefix?: string): ExchangeStats {
    return {
      orders: this.state.orderRequestStats(clientOrderIdPrefix),
      ...this.state.counts(),
      walkSteps: this.walkSteps,
      prices: this.currentPrices(),
    };
  }

  private requireMarket(symbol: string): Market {
    const m = this.markets.get(symbol);
    if (!m) throw binanceErrors.badSymbol();
    return m;
  }

  private findOrder(accountId: number, symbol: string, ref: OrderRef): Order | undefined {
    let order: Order | undefined;
    if (ref.orderId !== undefined) {
      order = this.state.order(ref.orderId);
      if (order && ref.origClientOrderId !== undefined && order.clientOrderId !== ref.origClientOrderId)
        return undefined;
    } else if (ref.origClientOrderId !== undefined) {
      order = this.state.orderByClientId(accountId, ref.origClientOrderId);
    }
    if (!order || order.accountId !== accountId || order.symbol !== symbol) return undefined;
    return order;
  }

  private validate(p: PlaceOrderParams): ValidOrder {
    if (!present(p.symbol)) throw binanceErrors.mandatory('symbol');
    if (!present(p.side)) throw binanceErrors.mandatory('side');
    if (!present(p.type)) throw binanceErrors.mandatory('type');
    const market = this.requireMarket(p.symbol);
    if (p.side !== 'BUY' && p.side !== 'SELL') throw binanceErrors.badSide();
    if (p.type !== 'LIMIT' && p.type !== 'MARKET') throw binanceErrors.badOrderType();
    let timeInForce: TimeInForce = 'GTC';
    if (p.type === 'LIMIT') {
      if (!present(p.timeInForce)) throw binanceErrors.mandatory('timeInForce');
      if (p.timeInForce !== 'GTC' && p.timeInForce !== 'IOC' && p.timeInForce !== 'FOK') {
        throw binanceErrors.badTimeInForce();
      }
      timeInForce = p.timeInForce;
      if (!present(p.quantity)) throw binanceErrors.mandatory('quantity');
      if (!present(p.price)) throw binanceErrors.mandatory('price');
      if (present(p.quoteOrderQty)) throw binanceErrors.notRequired('quoteOrderQty');
    } else {
      if (present(p.timeInForce)) throw binanceErrors.notRequired('timeInForce');
      if (present(p.price)) throw binanceErrors.notRequired('price');
      if (!present(p.quantity) && !present(p.quoteOrderQty))
        throw binanceErrors.eitherMandatory('quantity', 'quoteOrderQty');
      if (present(p.quantity) && present(p.quoteOrderQty)) throw binanceErrors.notRequired('quoteOrderQty');
    }
    let clientOrderId = p.newClientOrderId;
    if (clientOrderId === undefined || clientOrderId === '') clientOrderId = generatedClientOrderId();
    else if (!CLIENT_ORDER_ID.test(clientOrderId)) {
      throw binanceErrors.illegalChars('newClientOrderId', CLIENT_ORDER_ID_RANGE);
    }
    const quantity = present(p.quantity) ? decimalParam('quantity', p.quantity) : undefined;
    const quoteOrderQty = present(p.quoteOrderQty) ? decimalParam('quoteOrderQty', p.quoteOrderQty) : undefined;
    const price = present(p.price) ? decimalParam('price', p.price) : undefined;
    if (price !== undefined && (price < market.minPrice || price > market.maxPrice || price % market.tick !== 0n)) {
      throw binanceErrors.filterFailure('PRICE_FILTER');
    }
    if (quantity !== undefined) this.checkLot(market, quantity);
    if (price !== undefined && quantity !== undefined && mulUnits(price, quantity) < market.minNotional) {
      throw binanceErrors.filterFailure('NOTIONAL');
    }
    return { market, side: p.side, type: p.type, timeInForce, quantity, quoteOrderQty, price, clientOrderId };
  }

  private checkLot(m: Market, qty: bigint): void {
    if (qty < m.minQty || qty > m.maxQty || (qty - m.minQty) % m.step !== 0n)
      throw binanceErrors.filterFailure('LOT_SIZE');
  }

  /** A market order's base quantity: as given, or what quoteOrderQty buys at the current price. */
  private marketQuantity(v: ValidOrder, price: bigint): bigint {
    const m = v.market;
    if (v.quantity !== undefined) {
      if (mulUnits(v.quantity, price) < m.minNotional) throw binanceErrors.filterFailure('NOTIONAL');
      return v.quantity;
    }
    if (v.quoteOrderQty! < m.minNotional) throw binanceErrors.filterFailure('NOTIONAL');
    const qty = floorToStep(divUnits(v.quoteOrderQty!, price, 'floor'), m.step);
    this.checkLot(m, qty);
    return qty;
  }

  /** How a taker order fills: at the price, sometimes in two trades, the second a tick worse (within the limit). */
  private takerFills(m: Market, orderId: number, side: Side, qty: bigint, price: bigint, limit?: bigint): Fill[] {
    if (qty < 2n * m.step || chance(this.seed, orderId, SALT_SPLIT) >= this.splitP) return [{ price, qty }];
    const fraction = 0.4 + 0.3 * chance(this.seed, orderId, SALT_SPLIT_SIZE);
    let first = floorToStep(BigInt(Math.floor(Number(qty) * fraction)), m.step);
    if (first < m.step) first = m.step;
    if (first >= qty) return [{ price, qty }];
    let second = side === 'BUY' ? price + m.tick : price - m.tick;
    if (limit !== undefined) second = side === 'BUY' ? minUnits(second, limit) : second < limit ? limit : second;
    if (second < m.minPrice) second = m.minPrice;
    return [
      { price, qty: first },
      { price: second, qty: qty - first },
    ];
  }

  /** Fills the resting orders this price crosses, at their limit price (they are the makers). */
  private matchResting(m: Market, price: bigint, now: number): void {
    for (const order of this.state.crossingOrders(m.spec.symbol, price)) {
      const remaining = parseUnits(order.origQty) - parseUnits(order.executedQty);
      let qty = remaining;
      const firstFill = parseUnits(order.executedQty) === 0n;
      if (firstFill && remaining >= 2n * m.step && chance(this.seed, order.orderId, SALT_PARTIAL) < this.partialP) {
        const fraction = 0.2 + 0.6 * chance(this.seed, order.orderId, SALT_PARTIAL_SIZE);
        qty = floorToStep(BigInt(Math.floor(Number(remaining) * fraction)), m.step);
        if (qty < m.step) qty = m.step;
        if (qty >= remaining) qty = remaining;
      }
      this.fill(order.orderId, { price: parseUnits(order.price), qty }, true, now);
    }
  }

  /** Books one trade of an order: the trade row, both balances, and the order's progress. */
  private fill(orderId: number, f: Fill, isMaker: boolean, now: number): Trade {
    const order = this.state.order(orderId)!;
    const m = this.markets.get(order.symbol)!;
    const cost = mulUnits(f.price, f.qty);
    const cumBefore = parseUnits(order.cummulativeQuoteQty);
    const cumAfter = cumBefore + cost;
    // The fee is rounded on the running total, so partial fills never charge more than one fill would.
    const fee = mulUnits(cumAfter, FEE) - mulUnits(cumBefore, FEE);
    const lockedBefore = parseUnits(order.lockedAmount);
    const spent = order.side === 'BUY' ? cost + fee : f.qty;
    if (spent > lockedBefore) {
      throw new Error(`order ${orderId}: fill needs ${formatUnits(spent)} but holds ${formatUnits(lockedBefore)}`);
    }
    const { baseAsset, quoteAsset } = m.spec;
    if (order.side === 'BUY') {
      this.adjust(order.accountId, quoteAsset, 0n, -spent);
      this.adjust(order.accountId, baseAsset, f.qty, 0n);
    } else {
      this.adjust(order.accountId, baseAsset, 0n, -spent);
      this.adjust(order.accountId, quoteAsset, cost - fee, 0n);
    }
    const executed = parseUnits(order.executedQty) + f.qty;
    const orig = parseUnits(order.origQty);
    const status: OrderStatus = executed === orig ? 'FILLED' : 'PARTIALLY_FILLED';
    this.state.updateOrder(orderId, {
      origQty: order.origQty,
      executedQty: formatUnits(executed),
      cummulativeQuoteQty: formatUnits(cumAfter),
      status,
      updateTime: now,
      lockedAmount: formatUnits(lockedBefore - spent),
    });
    const trade = {
      orderId,
      accountId: order.accountId,
      symbol: order.symbol,
      side: order.side,
      price: formatUnits(f.price),
      qty: formatUnits(f.qty),
      quoteQty: formatUnits(cost),
      commission: formatUnits(fee),
      commissionAsset: quoteAsset,
      time: now,
      isBuyer: order.side === 'BUY',
      isMaker,
    };
    const id = this.state.insertTrade(trade);
    if (status === 'FILLED') this.finish(this.state.order(orderId)!, 'FILLED', now);
    return { id, ...trade };
  }

  /** Ends an order, giving back whatever it still holds locked. */
  private finish(order: Order, status: OrderStatus, now: number): void {
    const rest = parseUnits(order.lockedAmount);
    if (rest > 0n) this.adjust(order.accountId, order.lockedAsset, rest, -rest);
    this.state.updateOrder(order.orderId, {
      origQty: order.origQty,
      executedQty: order.executedQty,
      cummulativeQuoteQty: order.cummulativeQuoteQty,
      status,
      updateTime: now,
      lockedAmount: formatUnits(0n),
    });
  }

  private adjust(accountId: number, asset: string, dFree: bigint, dLocked: bigint): void {
    const b = this.state.balance(accountId, asset);
    const free = parseUnits(b.free) + dFree;
    const locked = parseUnits(b.locked) + dLocked;
    if (free < 0n || locked < 0n) {
      throw new Error(`balance ${asset} of account ${accountId} would go negative (${free} free, ${locked} locked)`);
    }
    this.state.setBalance(accountId, asset, formatUnits(free), formatUnits(locked));
  }
}
