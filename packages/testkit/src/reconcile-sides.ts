// Books and an exchange snapshot that agree: the fixture reconciliation tests start from and
// break one field at a time.

/** When both sides were collected. */
export const SIDES_AT = '2026-01-05T12:00:00.000Z';

/**
 * Books of `n` filled buys of 0.1 BTC/USDT at 100 (their fills, the position they add up to and
 * `balances`), and an exchange snapshot of the same orders, trades, position and balances: a
 * reconciliation of the two passes.
 */
export function agreeingSides(n = 3, balances: Array<{ asset: string; total: string }> = []) {
  const earlier = (min: number) => new Date(Date.parse(SIDES_AT) - min * 60_000).toISOString();
  const orders = Array.from({ length: n }, (_, i) => ({
    client_order_id: `c${i}`,
    exchange_order_id: `x${i}`,
    symbol: 'BTC/USDT',
    side: 'buy',
    type: 'limit',
    quantity: '0.1',
    price: '100',
    status: 'FILLED',
    filled_quantity: '0.1',
    created_at: earlier(60 - i),
    updated_at: earlier(59 - i),
  }));
  const fills = orders.map((o, i) => ({
    trade_id: `t${i}`,
    client_order_id: o.client_order_id,
    symbol: o.symbol,
    side: o.side,
    quantity: '0.1',
    price: '100',
    fee: '0.01',
    fee_asset: 'USDT',
    timestamp: o.updated_at,
  }));
  const quantity = (0.1 * n).toFixed(1);
  return {
    books: {
      format: 'lifeboat.books/v1',
      collected_at: SIDES_AT,
      orders,
      fills,
      positions: [
        { account: 'main', symbol: 'BTC/USDT', quantity, avg_entry_price: '100', realized_pnl: (-0.01 * n).toFixed(2) },
      ],
      balances: balances.map((b) => ({ ...b })),
    },
    snapshot: {
      format: 'lifeboat.exchange-snapshot/v1',
      venue: 'test',
      collected_at: SIDES_AT,
      complete: { orders: true, trades: true, positions: true, balances: true },
      orders: orders.map(({ created_at: _, ...o }) => o),
      trades: fills.map((f, i) => ({ ...f, exchange_order_id: `x${i}` })),
      positions: [{ account: 'main', symbol: 'BTC/USDT', quantity }],
      balances: balances.map((b) => ({ ...b })),
    },
  };
}
