// The trading loop and its bookkeeping: a strategy sending orders at a set rate, and a sync
// that brings the books up to what the venue did (fills, final states). The same sync runs at
// start, so after a crash the books agree with the venue again before any new order.
import { randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditLog } from './audit.js';
import type { Books, BooksOrder } from './books.js';
import { type ExchangeClient, VenueError, type VenueOrder, type VenueTrade } from './exchange-client.js';
import type { KillSwitch } from './kill-switch.js';

export type TradingMode = 'live' | 'shadow';

/** Markets, with an order size worth a few USDT (above the venue's 5 USDT minimum). */
const MARKETS = [
  { symbol: 'BTC/USDT', venue: 'BTCUSDT', qty: '0.00012', tick: 2 },
  { symbol: 'ETH/USDT', venue: 'ETHUSDT', qty: '0.0025', tick: 2 },
  { symbol: 'SOL/USDT', venue: 'SOLUSDT', qty: '0.050', tick: 2 },
] as const;
const STRATEGIES = ['MOMENTUM', 'MEANREV', 'GRID'] as const;
const VENUE_STATUS: Record<VenueOrder['status'], BooksOrder['status']> = {
  NEW: 'NEW',
  PARTIALLY_FILLED: 'PARTIAL',
  FILLED: 'FILLED',
  CANCELED: 'CANCELED',
  REJECTED: 'REJECTED',
  EXPIRED: 'EXPIRED',
};
/** Resting limit orders older than this are cancelled, so the open book stays small. */
const MAX_RESTING_MS = 5_000;
const MAX_IN_FLIGHT = 64;

export interface TraderStats {
  ordersCreated: number;
  ordersSent: number;
  ordersRejected: number;
  fillsApplied: number;
  venueErrors: number;
}

export class Trader {
  readonly stats: TraderStats = { ordersCreated: 0, ordersSent: 0, ordersRejected: 0, fillsApplied: 0, venueErrors: 0 };
  #timer: NodeJS.Timeout | undefined;
  #syncTimer: NodeJS.Timeout | undefined;
  #inFlight = new Set<Promise<void>>();
  #credit = 0;
  #prices = new Map<string, number>();
  #lastTrade = new Map<string, number>();
  #syncing: Promise<void> | undefined;
  #seq = 0;

  constructor(
    private readonly books: Books,
    private readonly venue: ExchangeClient,
    private readonly killSwitch: KillSwitch,
    private readonly audit: AuditLog,
    private readonly options: {
      targetDir: string;
      mode: TradingMode;
      rate: number;
      /** The exchange silent this long engages the kill switch (0: never). */
      venueLossHaltMs?: number;
      log: (msg: string, detail?: object) => void;
    },
  ) {}

  get mode(): TradingMode {
    return this.options.mode;
  }

  /** Recovers (sync with the venue), then starts the loop. */
  /** Every market of the venue: the bot trades a few, but orders of any may be in the books. */
  #syncMarkets: ReadonlyArray<{ symbol: string; venue: string }> = MARKETS;

  async start(): Promise<void> {
    this.#syncMarkets = await this.venue
      .markets()
      .then((ms) => ms.map((m) => ({ symbol: `${m.baseAsset}/${m.quoteAsset}`, venue: m.symbol })))
      .catch(() => MARKETS);
    this.#lastTrade = await this.books.lastTradeIds();
    await this.refreshPrices().catch(() => undefined);
    await this.recover();
    // Starting halted (a restart after a crash, a restore): no order of ours may still be
    // working at the venue, or positions would move under a halted system.
    if (this.killSwitch.halted) {
      await this.halt();
      await this.sync();
    }
    this.audit('mode', { mode: this.options.mode, rate: this.options.rate });
    const periodMs = 50;
    this.#timer = setInterval(() => this.#tick(periodMs), periodMs);
    this.#venueOkAt = Date.now();
    this.#syncTimer = setInterval(
      () =>
        void this.sync().then(
          () => {
            this.#venueOkAt = Date.now();
          },
          (err) => {
            this.#venueError('sync', err);
            this.#watchVenue();
          },
        ),
      500,
    );
    this.#started = true;
  }

  #started = false;

  /** True once recovery has run and the order loop is on. */
  get started(): boolean {
    return this.#started;
  }

  /** Stops sending, waits for orders in flight, and runs a last sync. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    clearInterval(this.#syncTimer);
    await Promise.allSettled([...this.#inFlight]);
    await this.sync().catch(() => undefined);
  }

  /**
   * The kill switch's effect: nothing more is sent once this resolves (orders in flight are
   * awaited), and working orders are cancelled at the venue.
   */
  async halt(): Promise<{ cancelled: number }> {
    await Promise.allSettled([...this.#inFlight]);
    let cancelled = 0;
    for (const open of await this.venue.openOrders()) {
      await this.venue.cancelOrder(open.symbol, open.clientOrderId).then(
        () => cancelled++,
        (err) => this.#venueError('cancel', err),
      );
    }
    await this.sync().catch((err) => this.#venueError('sync', err));
    return { cancelled };
  }

  #tick(periodMs: number): void {
    // Shadow mode runs with the switch ON too (the runbook's recovery step): nothing is sent.
    if (this.killSwitch.halted && this.options.mode === 'live') return;
    this.#credit += (this.options.rate * periodMs) / 1000;
    while (this.#credit >= 1) {
      this.#credit -= 1;
      if (this.#inFlight.size >= MAX_IN_FLIGHT) continue; // the venue is slow: drop, don't queue
      const p = this.#placeOne().catch((err) => this.#venueError('order', err));
      this.#inFlight.add(p);
      void p.finally(() => this.#inFlight.delete(p));
    }
  }

  async refreshPrices(): Promise<void> {
    for (const { symbol, price } of await this.venue.prices()) this.#prices.set(symbol, Number(price));
  }

  async #placeOne(): Promise<void> {
    const m = MARKETS[this.#seq++ % MARKETS.length] as (typeof MARKETS)[number];
    const strategy = STRATEGIES[this.#seq % STRATEGIES.length] as string;
    const side = Math.random() < 0.5 ? 'buy' : 'sell';
    const type = Math.random() < 0.6 ? 'limit' : 'market';
    const last = this.#prices.get(m.venue);
    if (type === 'limit' && !last) return;
    // Limits a little either side of the market: some fill at once, some rest, some never.
    const price = type === 'limit' ? ((last as number) * (1 + (Math.random() - 0.5) * 0.002)).toFixed(m.tick) : null;
    const now = new Date();
    const order: BooksOrder = {
      id: randomUUID(),
      client_order_id: `SOFIA-${strategy}-${now.getTime()}-${randomBytes(3).toString('hex')}`,
      exchange_order_id: null,
      account: 'main',
      strategy,
      symbol: m.symbol,
      side,
      type,
      quantity: m.qty,
      price,
      status: 'NEW',
      filled_quantity: '0',
      mode: this.options.mode,
      created_at: now.toISOString(),
      updated_at: now.toISOString(),
    };
    // Into the books first: a crash after this line leaves an order to resolve, never a lost one.
    await this.books.insertOrder(order);
    this.stats.ordersCreated++;
    if (this.options.mode === 'shadow') {
      this.#shadowLine(order, false);
      return;
    }
    if (this.killSwitch.halted) {
      // The switch went ON between the tick and here: the order is refused, never sent.
      await this.books.updateOrder(order.client_order_id, { status: 'REJECTED' });
      this.#shadowLine(order, false);
      return;
    }
    let answer: VenueOrder;
    try {
      answer = await this.venue.placeOrder({
        symbol: m.venue,
        side: side === 'buy' ? 'BUY' : 'SELL',
        type: type === 'limit' ? 'LIMIT' : 'MARKET',
        quantity: m.qty,
        ...(price ? { price } : {}),
        newClientOrderId: order.client_order_id,
      });
    } catch (err) {
      if (err instanceof VenueError && err.status >= 400 && err.status < 500) {
        // Refused by the venue (balance, filters): final.
        await this.books.updateOrder(order.client_order_id, { status: 'REJECTED' });
        this.stats.ordersRejected++;
        this.#shadowLine(order, false);
        return;
      }
      throw err; // unknown outcome: the sync resolves it
    }
    this.stats.ordersSent++;
    await this.#applyVenueOrder(order, answer);
    this.#shadowLine(order, true);
  }

  /** Applies a venue order (and any fills it carries) to the books. */
  async #applyVenueOrder(order: BooksOrder, v: VenueOrder): Promise<void> {
    // The venue's id first: from then on the sync can attribute this order's trades too.
    await this.books.updateOrder(order.client_order_id, {
      status: VENUE_STATUS[v.status],
      exchange_order_id: String(v.orderId),
    });
    for (const f of v.fills ?? []) {
      const applied = await this.books.applyFill(
        {
          trade_id: String(f.tradeId),
          client_order_id: order.client_order_id,
          symbol: order.symbol,
          side: order.side,
          quantity: f.qty,
          price: f.price,
          fee: f.commission,
          fee_asset: f.commissionAsset,
          timestamp: new Date(v.updateTime ?? Date.now()).toISOString(),
        },
        order.id,
      );
      if (applied) this.stats.fillsApplied++;
    }
  }

  #shadowLine(order: BooksOrder, executed: boolean): void {
    const line = {
      order_id: order.client_order_id,
      symbol: order.symbol,
      side: order.side,
      type: order.type,
      quantity: order.quantity,
      price: order.price,
      mode: order.mode,
      executed,
      timestamp: order.created_at,
      metadata: { strategy: order.strategy },
    };
    appendFileSync(join(this.options.targetDir, 'shadow_orders.jsonl'), `${JSON.stringify(line)}\n`);
  }

  /** When the exchange last answered a whole sync. */
  #venueOkAt = Date.now();

  /**
   * The exchange gone quiet for longer than venueLossHaltMs halts trading: orders cannot be
   * confirmed or cancelled, so none may be sent (the runbook's vendor connectivity loss).
   */
  #watchVenue(): void {
    const limit = this.options.venueLossHaltMs ?? 0;
    const silentMs = Date.now() - this.#venueOkAt;
    if (limit <= 0 || silentMs < limit || this.killSwitch.halted) return;
    this.killSwitch.activate(
      `the exchange has not answered for ${(silentMs / 1000).toFixed(1)} s`,
      'venue_unreachable',
      { silent_ms: silentMs },
    );
    this.options.log('kill switch ON: the exchange is unreachable', { silentMs });
  }

  #venueError(what: string, err: unknown): void {
    this.stats.venueErrors++;
    this.options.log(`venue error (${what})`, { error: (err as Error).message });
  }

  /** Resolves orders whose outcome the books do not know (in flight at a crash), then syncs. */
  async recover(): Promise<{ resolved: number }> {
    let resolved = 0;
    for (const order of await this.books.openLiveOrders()) {
      if (order.exchange_order_id) continue;
      const venueSymbol = order.symbol.replace('/', '');
      try {
        const v = await this.venue.getOrder(venueSymbol, order.client_order_id);
        await this.books.updateOrder(order.client_order_id, {
          status: VENUE_STATUS[v.status],
          exchange_order_id: String(v.orderId),
        });
      } catch (err) {
        if (!(err instanceof VenueError && err.code === -2013)) throw err;
        // The venue never saw it: it was recorded, then the process died before sending.
        await this.books.updateOrder(order.client_order_id, { status: 'REJECTED' });
      }
      resolved++;
    }
    // Orders in flight at a crash finish in any order, so their fills may sit below the
    // newest trade id the books hold: look again at every trade of the last few minutes.
    const since = await this.books.lastFillTimes();
    for (const m of this.#syncMarkets) {
      const last = since.get(m.symbol);
      if (last === undefined) continue;
      let range: { startTime?: number; fromId?: number } = { startTime: last - 5 * 60_000 };
      for (;;) {
        const trades = await this.venue.myTrades(m.venue, range);
        for (const t of trades) await this.#applyTrade(m.symbol, t);
        if (trades.length < 1000) break;
        range = { fromId: (trades.at(-1)?.id ?? 0) + 1 };
      }
    }
    await this.sync();
    if (resolved) this.audit('recovery', { resolved });
    return { resolved };
  }

  /** Records one venue trade against its order in the books; returns the order, if known. */
  async #applyTrade(symbol: string, t: VenueTrade): Promise<BooksOrder | undefined> {
    const order = await this.books.orderByExchangeId(String(t.orderId));
    if (!order) return undefined;
    const applied = await this.books.applyFill(
      {
        trade_id: String(t.id),
        client_order_id: order.client_order_id,
        symbol,
        side: t.isBuyer ? 'buy' : 'sell',
        quantity: t.qty,
        price: t.price,
        fee: t.commission,
        fee_asset: t.commissionAsset,
        timestamp: new Date(t.time).toISOString(),
      },
      order.id,
    );
    if (applied) this.stats.fillsApplied++;
    return order;
  }

  /** Brings fills and order states from the venue into the books; one run at a time. */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    await this.refreshPrices();
    markets: for (const m of this.#syncMarkets) {
      for (;;) {
        const from = (this.#lastTrade.get(m.symbol) ?? 0) + 1;
        const trades = await this.venue.myTrades(m.venue, { fromId: from });
        for (const t of trades) {
          const order = await this.#applyTrade(m.symbol, t);
          // A trade of an order still in flight is picked up on the next round; one of an order
          // this bot never made (another client on the account) is passed over after a while.
          if (!order && Date.now() - t.time < 10_000) continue markets;
          if (!order)
            this.options.log('venue trade of an unknown order passed over', { tradeId: t.id, orderId: t.orderId });
          this.#lastTrade.set(m.symbol, t.id);
        }
        if (trades.length < 1000) break;
      }
    }
    const open = new Map((await this.venue.openOrders()).map((o) => [o.clientOrderId, o]));
    const now = Date.now();
    for (const order of await this.books.openLiveOrders(2_000)) {
      if (!order.exchange_order_id) continue; // still in flight
      const venueSymbol = order.symbol.replace('/', '');
      const resting = open.get(order.client_order_id);
      if (resting) {
        if (now - Date.parse(order.created_at) <= MAX_RESTING_MS) {
          // Still working: only its state may have moved (a partial fill).
          const status = VENUE_STATUS[resting.status];
          if (status !== order.status) await this.books.updateOrder(order.client_order_id, { status });
          continue;
        }
        await this.venue.cancelOrder(venueSymbol, order.client_order_id).catch(() => undefined);
      }
      try {
        const v = await this.venue.getOrder(venueSymbol, order.client_order_id);
        await this.books.updateOrder(order.client_order_id, { status: VENUE_STATUS[v.status] });
      } catch (err) {
        // One order the venue will not describe must not stop the rest of the sync.
        this.#venueError(`order ${order.client_order_id}`, err);
      }
    }
  }
}
