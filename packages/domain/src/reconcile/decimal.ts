// Decimal arithmetic for reconciliation without floats: equal strings need no arithmetic,
// decimal.js judges the values that differ, and bigint fixed point replays millions of fills.
import decimalModule, { type Decimal } from 'decimal.js';

// decimal.js declares CommonJS types but Node and Vite load its ES module, whose default
// export is the constructor itself; this finds the constructor under either reading.
const DecimalClass = ((decimalModule as { Decimal?: unknown }).Decimal ?? decimalModule) as typeof Decimal;

/** A private decimal.js constructor, so the global one's settings are never touched. */
export const Dec = DecimalClass.clone({
  precision: 60,
  rounding: DecimalClass.ROUND_HALF_UP,
  toExpNeg: -100,
  toExpPos: 100,
});
export type Dec = Decimal;

/** The shortest text of a decimal string: no sign on zero, no leading or trailing zeros. */
export function canonicalDecimal(s: string): string {
  let negative = s.charCodeAt(0) === 45;
  let start = negative ? 1 : 0;
  let end = s.length;
  const dot = s.indexOf('.');
  if (dot >= 0) {
    while (end > dot + 1 && s.charCodeAt(end - 1) === 48) end--;
    if (end === dot + 1) end = dot;
  }
  const intEnd = dot >= 0 && dot < end ? dot : end;
  while (start < intEnd - 1 && s.charCodeAt(start) === 48) start++;
  const body = start === 0 && end === s.length ? s : s.slice(start, end);
  if (body === '0') negative = false;
  return negative ? `-${body}` : body;
}

/** Whether two decimal strings are the same number ("0.5" and "0.50000000" are). */
export function sameDecimal(a: string, b: string): boolean {
  return a === b || canonicalDecimal(a) === canonicalDecimal(b);
}

export function isZeroDecimal(s: string): boolean {
  return canonicalDecimal(s) === '0';
}

export function compareDecimal(a: string, b: string): number {
  return sameDecimal(a, b) ? 0 : new Dec(a).cmp(b);
}

export type Judgement = 'MATCHED' | 'WITHIN_TOLERANCE' | 'BREAK';
export interface Judged {
  status: Judgement;
  /** a − b, as plain decimal text. */
  diff: string;
}

const SAME: Judged = Object.freeze({ status: 'MATCHED', diff: '0' }) as Judged;

/** MATCHED when equal, WITHIN_TOLERANCE when |a − b| <= tolerance (the edge passes), else BREAK. */
export function judgeAbsolute(a: string, b: string, tolerance: Dec): Judged {
  if (sameDecimal(a, b)) return SAME;
  const diff = new Dec(a).minus(b);
  return { status: diff.abs().lte(tolerance) ? 'WITHIN_TOLERANCE' : 'BREAK', diff: diff.toFixed() };
}

/** As judgeAbsolute, with the tolerance relative to b (the exchange's value): |a − b| <= relative × |b|. */
export function judgeRelative(a: string, b: string, relative: Dec): Judged {
  if (sameDecimal(a, b)) return SAME;
  const diff = new Dec(a).minus(b);
  return {
    status: diff.abs().lte(new Dec(b).abs().times(relative)) ? 'WITHIN_TOLERANCE' : 'BREAK',
    diff: diff.toFixed(),
  };
}

// ---------------------------------------------------------------------------------------
// Fixed point: a decimal as a bigint count of 10^-scale.

const POW10: bigint[] = [];

export function pow10(n: number): bigint {
  let p = POW10[n];
  if (p === undefined) {
    p = 10n ** BigInt(n);
    POW10[n] = p;
  }
  return p;
}

export function fractionDigits(s: string): number {
  const dot = s.indexOf('.');
  return dot < 0 ? 0 : s.length - dot - 1;
}

/** Thrown by toUnits when asked for exact units and the string has more decimals than the scale. */
export class ScaleTooSmall extends Error {
  constructor(readonly digits: number) {
    super(`a value has ${digits} decimals`);
  }
}

/**
 * A decimal string in units of 10^-scale. Past the scale it is rounded half away from zero,
 * or, when `exact`, ScaleTooSmall is thrown so the caller can start again at a finer scale.
 */
export function toUnits(s: string, scale: number, exact = false): bigint {
  const negative = s.charCodeAt(0) === 45;
  const start = negative ? 1 : 0;
  const dot = s.indexOf('.');
  const fraction = dot < 0 ? 0 : s.length - dot - 1;
  let units: bigint;
  if (fraction <= scale) {
    const digits = s.length - start - (dot < 0 ? 0 : 1);
    if (digits <= 15) {
      // Fifteen decimal digits make an integer below 2^53, which a double holds exactly, and
      // building it digit by digit is several times cheaper than BigInt(string).
      let n = 0;
      for (let k = start; k < s.length; k++) {
        const c = s.charCodeAt(k);
        if (c !== 46) n = n * 10 + (c - 48);
      }
      units = BigInt(n);
    } else {
      units = BigInt(dot < 0 ? s.slice(start) : s.slice(start, dot) + s.slice(dot + 1));
    }
    if (fraction < scale) units *= pow10(scale - fraction);
  } else {
    if (exact) throw new ScaleTooSmall(fraction);
    units = BigInt(s.slice(start, dot) + s.slice(dot + 1, dot + 1 + scale));
    if (s.charCodeAt(dot + 1 + scale) - 48 >= 5) units += 1n;
  }
  return negative ? -units : units;
}

/** n ÷ d for d > 0, rounded half away from zero. */
export function divRound(n: bigint, d: bigint): bigint {
  const q = n / d;
  const r = n % d;
  if (r === 0n) return q;
  if ((r < 0n ? -r : r) * 2n >= d) return n < 0n ? q - 1n : q + 1n;
  return q;
}

export function rescale(units: bigint, from: number, to: number): bigint {
  if (to === from) return units;
  return to > from ? units * pow10(to - from) : divRound(units, pow10(from - to));
}

/** Units of 10^-scale as text with exactly `digits` decimals, rounded half away from zero. */
export function formatUnits(units: bigint, scale: number, digits: number): string {
  const u = rescale(units, scale, digits);
  const negative = u < 0n;
  let s = (negative ? -u : u).toString();
  if (digits > 0) {
    if (s.length <= digits) s = s.padStart(digits + 1, '0');
    s = `${s.slice(0, s.length - digits)}.${s.slice(s.length - digits)}`;
  }
  return negative ? `-${s}` : s;
}
