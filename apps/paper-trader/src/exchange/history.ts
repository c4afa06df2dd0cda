// Seeds a new venue with the trading history the books already hold (the demo's generated
// past), so that venue and books agree from the start, as they do for a bot that has traded
// on its exchange for months. Rows come in the books' shape (packages/domain target schema).
import type { TargetFillRow, TargetOrderRow } from '@lifeboat/domain';
import { formatUnits, mulUnits, parseUnits } from './decimal.js';
import { FEE_RATE } from './engine.js';
import type { Balance, ExchangeState, Order, OrderStatus, Trade } from './state.js';

/** What the import reads of the books' rows (packages/domain target schema). */
export type BooksOrder = Pick<
  TargetOrderRow,
  | 'client_order_id'
  | 'exchange_order_id'
  | 'symbol'
  | 'side'
  | 'type'
  | 'quantity'
  | 'price'
  | 'status'
  | 'filled_quantity'
  | 'created_at'
  | 'updated_at'
>;
export type BooksFill = TargetFillRow;

const STATUS: Record<string, OrderStatus> = {
  NEW: 'NEW',
  PARTIAL: 'PARTIALLY_FILLED',
  FILLED: 'FILLED',
  CANCELED: 'CANCELED',
  REJECTED: 'REJECTED',
  EXPIRED: 'EXPIRED',
};

const fee = parseUnits(FEE_RATE);
const fixed = (text: string | null) => formatUnits(parseUnits(text ?? '0'));

/**
 * Imports the books' orders that reached the venue (those with an exchange order id), their
 * fills, and balances equal to the books' totals less what open orders lock.
 */
export function importBooksHistory(
  state: ExchangeState,
  accountId: number,
  books: {
    orders: readonly BooksOrder[];
    fills: readonly BooksFill[];
    balances: ReadonlyArray<{ asset: string; total: string }>;
  },
): { orders: number; trades: number } {
  const orders: Order[] = [];
  const byClientId = new Map<string, Order>();
  const locked = new Map<string, bigint>();
  for (const o of books.orders) {
    if (!o.exchange_order_id) continue;
    const [base, quote] = o.symbol.split('/') as [string, string];
    const status = STATUS[o.status];
    if (!status) throw new Error(`order ${o.client_order_id}: unknown status ${o.status}`);
    const open = status === 'NEW' || status === 'PARTIALLY_FILLED';
    const remaining = parseUnits(o.quantity) - parseUnits(o.filled_quantity);
    const side = o.side === 'buy' ? 'BUY' : 'SELL';
    let lockedAmount = 0n;
    if (open && remaining > 0n) {
      const cost = side === 'BUY' ? mulUnits(parseUnits(o.price ?? '0'), remaining) : remaining;
      lockedAmount = side === 'BUY' ? cost + mulUnits(cost, fee) : cost;
    }
    const lockedAsset = side === 'BUY' ? quote : base;
    locked.set(lockedAsset, (locked.get(lockedAsset) ?? 0n) + lockedAmount);
    const order: Order = {
      orderId: Number(o.exchange_order_id),
      accountId,
      clientOrderId: o.client_order_id,
      symbol: `${base}${quote}`,
      side,
      type: o.type === 'limit' ? 'LIMIT' : 'MARKET',
      timeInForce: 'GTC',
      price: o.type === 'limit' ? fixed(o.price) : formatUnits(0n),
      origQty: fixed(o.quantity),
      executedQty: fixed(o.filled_quantity),
      cummulativeQuoteQty: formatUnits(0n),
      origQuoteOrderQty: formatUnits(0n),
      status,
      time: Date.parse(o.created_at),
      updateTime: Date.parse(o.updated_at),
      lockedAsset,
      lockedAmount: formatUnits(lockedAmount),
    };
    orders.push(order);
    byClientId.set(o.client_order_id, order);
  }
  const quoteByOrder = new Map<number, bigint>();
  const trades: Trade[] = [];
  for (const f of books.fills) {
    const order = byClientId.get(f.client_order_id);
    if (!order) continue;
    const id = Number(f.trade_id);
    if (!Number.isSafeInteger(id)) throw new Error(`fill ${f.trade_id}: the venue's trade ids are numbers`);
    const quoteQty = mulUnits(parseUnits(f.price), parseUnits(f.quantity));
    quoteByOrder.set(order.orderId, (quoteByOrder.get(order.orderId) ?? 0n) + quoteQty);
    trades.push({
      id,
      orderId: order.orderId,
      accountId,
      symbol: order.symbol,
      side: order.side,
      price: fixed(f.price),
      qty: fixed(f.quantity),
      quoteQty: formatUnits(quoteQty),
      commission: fixed(f.fee),
      commissionAsset: f.fee_asset,
      time: Date.parse(f.timestamp),
      isBuyer: order.side === 'BUY',
      isMaker: order.type === 'LIMIT',
    });
  }
  for (const o of orders) o.cummulativeQuoteQty = formatUnits(quoteByOrder.get(o.orderId) ?? 0n);
  const balances: Balance[] = books.balances.map((b) => {
    const lock = locked.get(b.asset) ?? 0n;
    return { asset: b.asset, free: formatUnits(parseUnits(b.total) - lock), locked: formatUnits(lock) };
  });
  state.importHistory(accountId, orders, trades, balances);
  return { orders: orders.length, trades: trades.length };
}
