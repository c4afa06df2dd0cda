// The venue's view of the account, read in full (paged) and given in the record shapes of
// Lifeboat's exchange snapshot (docs/FORMAT.md), so a reconciler can ask this target's
// `/exchange/*` routes as a real trading system asks its exchange.
import { formatUnits, parseUnits } from '../exchange/decimal.js';
import type { ExchangeClient, VenueOrder, VenueTrade } from './exchange-client.js';

const PAGE = 1000;

export interface ViewOrder {
  exchange_order_id: string;
  client_order_id: string;
  symbol: string;
  side: 'buy' | 'sell';
  type: 'limit' | 'market';
  quantity: string;
  price: string | null;
  status: 'OPEN' | Exclude<VenueOrder['status'], 'NEW'>;
  filled_quantity: string;
  updated_at: string;
}

export interface ViewTrade {
  trade_id: string;
  exchange_order_id: string;
  client_order_id: string;
  symbol: string;
  side: 'buy' | 'sell';
  quantity: string;
  price: string;
  fee: string;
  fee_asset: string;
  timestamp: string;
}

type Markets = Map<string, { base: string; quote: string; symbol: string }>;

async function markets(venue: ExchangeClient): Promise<Markets> {
  return new Map(
    (await venue.markets()).map((m) => [
      m.symbol,
      { base: m.baseAsset, quote: m.quoteAsset, symbol: `${m.baseAsset}/${m.quoteAsset}` },
    ]),
  );
}

function viewOrder(o: VenueOrder, symbol: string): ViewOrder {
  return {
    exchange_order_id: String(o.orderId),
    client_order_id: o.clientOrderId,
    symbol,
    side: o.side === 'BUY' ? 'buy' : 'sell',
    type: o.type === 'LIMIT' ? 'limit' : 'market',
    quantity: o.origQty,
    price: o.type === 'LIMIT' ? o.price : null,
    status: o.status === 'NEW' ? 'OPEN' : o.status,
    filled_quantity: o.executedQty,
    updated_at: new Date(o.updateTime ?? 0).toISOString(),
  };
}

/** Every order of every market (or the open ones), oldest first per market. */
export async function venueOrders(
  venue: ExchangeClient,
  options: { open?: boolean; since?: number } = {},
): Promise<ViewOrder[]> {
  const all = await markets(venue);
  if (options.open) {
    return (await venue.openOrders()).map((o) => viewOrder(o, all.get(o.symbol)?.symbol ?? o.symbol));
  }
  const out: ViewOrder[] = [];
  for (const [venueSymbol, m] of all) {
    // Pages by order id, from the first order at or after `since`.
    let range: { orderId?: number; startTime?: number } = options.since ? { startTime: options.since } : { orderId: 0 };
    for (;;) {
      const page = await venue.allOrders(venueSymbol, { ...range, limit: PAGE });
      for (const o of page) out.push(viewOrder(o, m.symbol));
      if (page.length < PAGE) break;
      range = { orderId: (page.at(-1)?.orderId ?? 0) + 1 };
    }
  }
  return out;
}

/** Every trade of every market since `since` (default: all), with its order's client id. */
export async function venueTrades(venue: ExchangeClient, options: { since?: number } = {}): Promise<ViewTrade[]> {
  const all = await markets(venue);
  const orders = new Map((await venueOrders(venue, options)).map((o) => [o.exchange_order_id, o.client_order_id]));
  const out: ViewTrade[] = [];
  for (const [venueSymbol, m] of all) {
    let range: { fromId?: number; startTime?: number } = options.since ? { startTime: options.since } : { fromId: 0 };
    for (;;) {
      const page: VenueTrade[] = await venue.myTrades(venueSymbol, { ...range, limit: PAGE });
      for (const t of page) {
        out.push({
          trade_id: String(t.id),
          exchange_order_id: String(t.orderId),
          client_order_id: orders.get(String(t.orderId)) ?? '',
          symbol: m.symbol,
          side: t.isBuyer ? 'buy' : 'sell',
          quantity: t.qty,
          price: t.price,
          fee: t.commission,
          fee_asset: t.commissionAsset,
          timestamp: new Date(t.time).toISOString(),
        });
      }
      if (page.length < PAGE) break;
      range = { fromId: (page.at(-1)?.id ?? 0) + 1 };
    }
  }
  return out;
}

/** Holdings per market: a spot venue's positions are its base-asset balances. */
export async function venuePositions(
  venue: ExchangeClient,
  account = 'main',
): Promise<Array<{ account: string; symbol: string; quantity: string }>> {
  const all = await markets(venue);
  const balances = new Map((await venue.account()).balances.map((b) => [b.asset, b]));
  const out = [];
  for (const m of all.values()) {
    const b = balances.get(m.base);
    out.push({ account, symbol: m.symbol, quantity: b ? formatUnits(parseUnits(b.free) + parseUnits(b.locked)) : '0' });
  }
  return out;
}

export async function venueBalances(venue: ExchangeClient): Promise<Array<{ asset: string; total: string }>> {
  return (await venue.account()).balances.map((b) => ({
    asset: b.asset,
    total: formatUnits(parseUnits(b.free) + parseUnits(b.locked)),
  }));
}
