// The average-cost replay of fills, behind both the P&L check and the positions a
// correction rebuilds, in bigint fixed point so two million fills take about a second.
import { isZeroDecimal, pow10, ScaleTooSmall, toUnits } from './decimal.js';

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

/** One (account, symbol) after its fills, in fixed point at scale S. */
export interface Lifecycle {
  /** S: every quantity, price and fee of the fills is exact in units of 10^-S. */
  readonly scale: number;
  /** Signed, in units of 10^-S. */
  readonly quantity: bigint;
  /** In units of 10^-(S + AVG_EXTRA_DIGITS), cut; zero when flat. */
  readonly avg: bigint;
  /** In units of 10^-(2S + AVG_EXTRA_DIGITS). */
  readonly realized: bigint;
  /** Fees in an asset that is neither base nor quote, which have no price here. */
  readonly feesNotValued: number;
}

/** The most distinct amounts an ExactUnits keeps converted; past it, the others are converted each time. */
const KEPT_UNITS = 1 << 16;

/**
 * Decimal strings in exact units of 10^-scale, each distinct string converted once: millions of
 * fills repeat a few thousand quantities, prices and fees (read from a database, as the very same
 * strings), and finding one is cheaper than converting it again into a new bigint.
 */
export class ExactUnits {
  readonly #known = new Map<string, bigint>();

  constructor(readonly scale: number) {}

  /** Throws ScaleTooSmall when s has more decimals than the scale. */
  of(s: string): bigint {
    let units = this.#known.get(s);
    if (units === undefined) {
      units = toUnits(s, this.scale, true);
      if (this.#known.size < KEPT_UNITS) this.#known.set(s, units);
    }
    return units;
  }
}

/**
 * The running position of one account and symbol. Adding to it moves the average cost;
 * reducing it realizes (price − avg) × closed for a long, (avg − price) × closed for a short;
 * a fill through zero closes the old lifecycle and opens the rest at the fill price. Fees in
 * the quote currency are subtracted as they are, fees in the base asset at the fill price.
 */
export class RunningPosition implements Lifecycle {
  quantity = 0n;
  /** Cut, not rounded, at AVG_EXTRA_DIGITS beyond the scale: one division the less per fill. */
  avg = 0n;
  feesNotValued = 0;
  /** Realized from closing trades, at 2S + AVG_EXTRA_DIGITS. */
  #closed = 0n;
  /** Fees kept apart until read, so each fill adds one number rather than scaling one: at S and 2S. */
  #quoteFees = 0n;
  #baseFees = 0n;
  readonly #extra = pow10(AVG_EXTRA_DIGITS);
  readonly #units: ExactUnits;

  /** `units` may be shared by the positions of one replay; one of another scale is not used. */
  constructor(
    readonly scale: number,
    readonly base: string,
    readonly quote: string,
    units?: ExactUnits,
  ) {
    this.#units = units?.scale === scale ? units : new ExactUnits(scale);
  }

  get realized(): bigint {
    return this.#closed - this.#quoteFees * pow10(this.scale + AVG_EXTRA_DIGITS) - this.#baseFees * this.#extra;
  }

  /** Throws ScaleTooSmall when a value has more decimals than the scale. */
  apply(f: ReplayFill): void {
    const units = this.#units;
    const qty = units.of(f.quantity);
    const price = units.of(f.price);
    const q = this.quantity;
    const buy = f.side === 'buy';
    if (q === 0n || q > 0n === buy) {
      const held = q < 0n ? -q : q;
      const size = held + qty;
      // avg × held + price × qty over the new size, all at S + extra digits.
      if (size !== 0n) this.avg = (this.avg * held + price * qty * this.#extra) / size;
      this.quantity = buy ? q + qty : q - qty;
    } else {
      const held = q < 0n ? -q : q;
      const closing = qty < held ? qty : held;
      const priceX = price * this.#extra;
      this.#closed += (q > 0n ? priceX - this.avg : this.avg - priceX) * closing;
      const after = buy ? q + qty : q - qty;
      this.quantity = after;
      if (after === 0n) this.avg = 0n;
      else if (after > 0n !== q > 0n) this.avg = priceX;
    }
    if (f.fee_asset === this.quote) this.#quoteFees += units.of(f.fee);
    else if (f.fee_asset === this.base) this.#baseFees += units.of(f.fee) * price;
    else if (!isZeroDecimal(f.fee)) this.feesNotValued++;
  }
}

/** Trade ids of equal length compare as text, and shorter ones come first, so numeric ids sort as numbers. */
export function compareTradeIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** Puts fill indices in time order (trade id breaking ties), skipping the sort when they already are. */
export function sortFills(order: number[], ms: ArrayLike<number>, fills: readonly ReplayFill[]): void {
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
 * Replays fills (indices in time order) at the coarsest scale, from `atLeast` decimals, that
 * holds every quantity, price and fee exactly; finer scales are only tried when a value needs one.
 */
export function replay(
  fills: readonly ReplayFill[],
  order: ArrayLike<number>,
  base: string,
  quote: string,
  atLeast = MIN_SCALE,
): Lifecycle {
  let scale = atLeast;
  for (;;) {
    const position = new RunningPosition(scale, base, quote);
    try {
      for (let k = 0; k < order.length; k++) position.apply(fills[order[k]!]!);
      return position;
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
