// Exact decimal amounts for the simulated exchange: bigint counts of 1e-8 units, as the
// venue's books must add up to the last unit and floats cannot promise that.

/** Units per 1: every amount is an integer count of 1e-8. */
export const SCALE = 100_000_000n;
const DIGITS = 8;

/** Binance's own pattern for decimal parameters. */
const DECIMAL = /^(\d{1,20})(?:\.(\d{1,20}))?$/;

export class DecimalError extends Error {
  override readonly name = 'DecimalError';
  constructor(
    readonly reason: 'malformed' | 'precision',
    text: string,
  ) {
    super(reason === 'malformed' ? `not a decimal: "${text}"` : `more than ${DIGITS} decimals: "${text}"`);
  }
}

/** Parses a non-negative decimal string ("0.001", "60000") into units. */
export function parseUnits(text: string): bigint {
  const m = DECIMAL.exec(text);
  if (!m) throw new DecimalError('malformed', text);
  // Trailing zeros are not precision: "0.00100000000" is 0.001.
  const fraction = (m[2] ?? '').replace(/0+$/, '');
  if (fraction.length > DIGITS) throw new DecimalError('precision', text);
  return BigInt(m[1]!) * SCALE + BigInt(fraction.padEnd(DIGITS, '0') || '0');
}

/** Formats units the way Binance prints amounts: always eight decimals. */
export function formatUnits(units: bigint): string {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const whole = abs / SCALE;
  const fraction = (abs % SCALE).toString().padStart(DIGITS, '0');
  return `${negative ? '-' : ''}${whole}.${fraction}`;
}

export type Rounding = 'floor' | 'ceil' | 'halfUp';

function divide(numerator: bigint, denominator: bigint, rounding: Rounding): bigint {
  const q = numerator / denominator;
  const r = numerator % denominator;
  if (r === 0n) return q;
  // Amounts here are non-negative, so truncation is floor.
  if (rounding === 'floor') return q;
  if (rounding === 'ceil') return q + 1n;
  return 2n * r >= denominator ? q + 1n : q;
}

/** a × b, both in units, rounded back to units. */
export function mulUnits(a: bigint, b: bigint, rounding: Rounding = 'halfUp'): bigint {
  return divide(a * b, SCALE, rounding);
}

/** a ÷ b, both in units, rounded to units. */
export function divUnits(a: bigint, b: bigint, rounding: Rounding = 'floor'): bigint {
  return divide(a * SCALE, b, rounding);
}

/** The largest multiple of step not above units. */
export function floorToStep(units: bigint, step: bigint): bigint {
  return units - (units % step);
}

export function minUnits(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
