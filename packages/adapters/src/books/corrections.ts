// What a backfilled fill does to the books beyond the fill itself, as the trading system
// books it: the order's filled quantity and the balances (base, quote and fee asset).
import type { BookFill, BookOrder } from '@lifeboat/domain';
import decimalModule, { type Decimal } from 'decimal.js';

// decimal.js declares CommonJS types while Node loads its ES module (whose default export is
// the constructor): this finds the constructor under either reading.
const Dec = ((decimalModule as { Decimal?: unknown }).Decimal ?? decimalModule) as typeof Decimal;

/** Balance moves of one fill: asset → signed decimal string. */
export function balanceMoves(fill: BookFill): Array<[asset: string, delta: string]> {
  const [base, quote] = fill.symbol.split('/') as [string, string];
  const qty = new Dec(fill.quantity);
  const notional = qty.times(fill.price);
  const moves: Array<[string, Decimal]> =
    fill.side === 'buy'
      ? [
          [base, qty],
          [quote, notional.negated()],
        ]
      : [
          [base, qty.negated()],
          [quote, notional],
        ];
  moves.push([fill.fee_asset, new Dec(fill.fee).negated()]);
  return moves.map(([asset, d]) => [asset, d.toFixed()]);
}

export function addDecimal(a: string, b: string): string {
  return new Dec(a).plus(b).toFixed();
}

/** The strategy a backfilled order is booked under: it came back from the venue, not from a strategy. */
export const BACKFILL_STRATEGY = 'lifeboat-backfill';

/**
 * Inserting a backfilled order (placeholders for the driver: `?` or `$n`); the caller first
 * looks for an order with its client id, so running the same plan twice adds it once.
 */
export function backfillOrderSql(p: (n: number) => string): string {
  const values = Array.from({ length: 13 }, (_, i) => p(i + 1));
  return `INSERT INTO orders (id, client_order_id, exchange_order_id, account, symbol, side, type, quantity, price, status,
    filled_quantity, created_at, updated_at, strategy, mode)
    VALUES (${values.join(', ')}, '${BACKFILL_STRATEGY}', 'live') ON CONFLICT (id) DO NOTHING`;
}

/** The parameters of backfillOrderSql; the row id is derived from the venue's order id, so it is the same every run. */
export function backfillOrderParams(o: BookOrder): Array<string | null> {
  return [
    `backfill-${o.exchange_order_id}`,
    o.client_order_id,
    o.exchange_order_id,
    o.account,
    o.symbol,
    o.side,
    o.type,
    o.quantity,
    o.price,
    o.status,
    o.filled_quantity,
    o.created_at,
    o.updated_at,
  ];
}
