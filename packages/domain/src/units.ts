// Sizes as people write them (`10MiB`, `1GiB`) and as the tools print them.

/** Parses sizes like `10MiB`, `1GiB`, `500KB`, `1048576` (binary units; `KB` means KiB). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a size (try 10MiB or 1GiB)`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit.startsWith('g') ? 1024 ** 3 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('k') ? 1024 : 1;
  return Math.round(Number(m[1]) * mult);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** The longest duration a recovery target may be: ten years (longer is a typo, not a target). */
export const MAX_DURATION_SECONDS = 3650 * 86_400;

/** Parses durations like `30s`, `5m`, `1h`, `1d`, `90` (seconds), `1h30m`; gives seconds. */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') {
    if (!Number.isFinite(text) || text < 0) throw new Error(`${text} is not a duration in seconds`);
    return atMostTenYears(text, String(text));
  }
  const s = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(s)) return atMostTenYears(Number(s), text);
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)\s*([smhd])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== s.replace(/\s+/g, '')) {
    throw new Error(`"${text}" is not a duration (try 30s, 5m, 1h or 1d)`);
  }
  const seconds = parts.reduce((n, p) => n + Number(p[1]) * (DURATION_UNITS[p[2] as string] as number), 0);
  return atMostTenYears(seconds, text);
}

function atMostTenYears(seconds: number, text: string): number {
  if (seconds > MAX_DURATION_SECONDS) throw new Error(`"${text}" is longer than ten years (3650d)`);
  return seconds;
}

/** Seconds as people read them: `12s`, `3m 42s`, `1h 05m`. */
export function formatSeconds(seconds: number): string {
  if (seconds < 1) return `${seconds.toFixed(2)}s`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)}s`;
  const whole = Math.round(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)}m ${String(whole % 60).padStart(2, '0')}s`;
  if (whole < 86_400)
    return `${Math.floor(whole / 3600)}h ${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(whole / 86_400)}d ${String(Math.floor((whole % 86_400) / 3600)).padStart(2, '0')}h`;
}
