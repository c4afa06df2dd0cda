// The average-cost replay of fills, behind both the P&L check and the positions a
// correction rebuilds, in bigint fixed point so two million fills take about a second.
import { divRound, isZeroDecimal, pow10, ScaleTooSmall, toUnits } from './decimal.js';

/** Digits the average cost keeps beyond the fills' own, so its rounding never shows at 0.01. */
export const AVG_EXTRA_DIGITS = 10;
/** The fewest decimals a replay works in and prints: the books' own 1e-8. */
export const MIN_SCALE = 8;

export interface ReplayFill {
  trade_id: string;
  side: 'buy' | 'sell';
  quantity: string;
  price: string;
  fee: string;
  fee_asset: string;
}

/** One (account, symbol) after its fills, in fixed point at a scale S chosen by replay(). */
export interface Lifecycle {
  /** Signed, in units of 10^-S. */
  quantity: bigint;
  /** In units of 10^-(S + AVG_EXTRA_DIGITS); zero when flat. */
  avg: bigint;
  /** In units of 10^-(2S + AVG_EXTRA_DIGITS). */
  realized: bigint;
  /** Fees in an asset that is neither base nor quote, which have no price here. */
  feesNotValued: number;
}

/** Trade ids of equal length compare as text, and shorter ones come first, so numeric ids sort as numbers. */
export function compareTradeIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** Puts fill indices in time order (trade id breaking ties), skipping the sort when they already are. */
export function sortFills(order: number[], ms: Float64Array, fills: readonly ReplayFill[]): void {
  const cmp = (a: number, b: number): number =>
    ms[a]! - ms[b]! || compareTradeIds(fills[a]!.trade_id, fills[b]!.trade_id);
  for (let k = 1; k < order.length; k++) {
    if (cmp(order[k - 1]!, order[k]!) > 0) {
      order.sort(cmp);
      return;
    }
  }
}

/**
 * Replays fills (already in time order) of one account and symbol with the average-cost
 * method: adding to a position moves the average cost; reducing it realizes
 * (price − avg) × closed for a long, (avg − price) × closed for a short; a fill through zero
 * closes the old lifecycle and opens the rest at the fill price. Fees in the quote currency
 * are subtracted as they are, fees in the base asset at the fill price.
 */
export function replayAt(
  fills: readonly ReplayFill[],
  order: ArrayLike<number>,
  scale: number,
  base: string,
  quote: string,
): Lifecycle {
  const extra = pow10(AVG_EXTRA_DIGITS);
  const quoteFee = pow10(scale + AVG_EXTRA_DIGITS);
  let q = 0n;
  let avg = 0n;
  let realized = 0n;
  let feesNotValued = 0;
  for (let k = 0; k < order.length; k++) {
    const f = fills[order[k]!]!;
    const qty = toUnits(f.quantity, scale, true);
    const price = toUnits(f.price, scale, true);
    const priceX = price * extra;
    const delta = f.side === 'buy' ? qty : -qty;
    if (q === 0n || q > 0n === delta > 0n) {
      const total = q + delta;
      const size = total < 0n ? -total : total;
      const held = q < 0n ? -q : q;
      avg = size === 0n ? 0n : divRound(avg * held + priceX * qty, size);
      q = total;
    } else {
      const held = q < 0n ? -q : q;
      const closing = qty < held ? qty : held;
      realized += (q > 0n ? priceX - avg : avg - priceX) * closing;
      const before = q;
      q += delta;
      if (q === 0n) avg = 0n;
      else if (q > 0n !== before > 0n) avg = priceX;
    }
    if (f.fee_asset === quote) realized -= toUnits(f.fee, scale, true) * quoteFee;
    else if (f.fee_asset === base) realized -= toUnits(f.fee, scale, true) * price * extra;
    else if (!isZeroDecimal(f.fee)) feesNotValued++;
  }
  return { quantity: q, avg, realized, feesNotValued };
}

/**
 * Replays at the coarsest scale (from `atLeast` decimals) that holds every quantity, price
 * and fee exactly; finer scales are only tried when a value needs one.
 */
export function replay(
  fills: readonly ReplayFill[],
  order: ArrayLike<number>,
  base: string,
  quote: string,
  atLeast = MIN_SCALE,
): { scale: number; lifecycle: Lifecycle } {
  let scale = atLeast;
  for (;;) {
    try {
      return { scale, lifecycle: replayAt(fills, order, scale, base, quote) };
    } catch (err) {
      if (!(err instanceof ScaleTooSmall)) throw err;
      scale = err.digits;
    }
  }
}

export function splitSymbol(symbol: string): [base: string, quote: string] {
  const slash = symbol.indexOf('/');
  return [symbol.slice(0, slash), symbol.slice(slash + 1)];
}
