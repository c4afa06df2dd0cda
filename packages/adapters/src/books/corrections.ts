// What a backfilled fill does to the books beyond the fill itself, as the trading system
// books it: the order's filled quantity and the balances (base, quote and fee asset).
import type { BookFill } from '@lifeboat/domain';
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
