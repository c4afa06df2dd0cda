// The small figures every benchmark takes of its samples.

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Milliseconds from one process.hrtime.bigint() reading to another (or now). */
export const elapsedMs = (from: bigint, to: bigint = process.hrtime.bigint()) => Number(to - from) / 1e6;

/** Nearest rank: the smallest sample with at least p% of the samples at or below it. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
