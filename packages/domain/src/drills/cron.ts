// Drill schedules as cron expressions in UTC: five fields (minute hour day-of-month month
// day-of-week), with names (MON, JAN), ranges, lists and steps, and `DOW#n` for the n-th
// such weekday of the month (Quartz's notation): `0 3 * * MON#1` is the first Monday.
//
// Plain cron OR-s a restricted day-of-month with a restricted day-of-week, so the usual
// attempt at "first Monday", `0 3 1-7 * 1`, fires on every Monday and on days 1–7. That
// pattern is refused here, with the way to say what was meant.
import { LifeboatError } from '../errors.js';

export interface CronSchedule {
  readonly source: string;
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  /** Empty when any day of the month will do. */
  readonly daysOfMonth: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  /** Weekdays 0 (Sunday) to 6, any occurrence in the month; empty when any will do. */
  readonly weekdays: ReadonlySet<number>;
  /** `weekday * 10 + n` for `DOW#n`: the n-th such weekday of the month. */
  readonly nthWeekdays: ReadonlySet<number>;
}

const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface Field {
  name: string;
  min: number;
  max: number;
  names?: string[];
  /** The value names[0] stands for. */
  namesFrom?: number;
}

const FIELDS: Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTH_NAMES, namesFrom: 1 },
  { name: 'day-of-week', min: 0, max: 7, names: DAY_NAMES, namesFrom: 0 },
];

function bad(source: string, why: string, hint?: string): LifeboatError {
  return new LifeboatError('INVALID_CONFIG', `cron "${source}": ${why}`, {
    hint: hint ?? 'five fields, UTC: minute hour day-of-month month day-of-week, e.g. "0 3 * * MON#1"',
  });
}

function value(text: string, field: Field, source: string): number {
  const upper = text.toUpperCase();
  const named = field.names?.indexOf(upper) ?? -1;
  if (named >= 0) return named + (field.namesFrom ?? 0);
  if (!/^\d+$/.test(text))
    throw bad(source, `${field.name}: "${text}" is not a number${field.names ? ' or a name' : ''}`);
  const n = Number(text);
  if (n < field.min || n > field.max) {
    throw bad(source, `${field.name}: ${n} is outside ${field.min}–${field.max}`);
  }
  return n;
}

/** One field's values; `*` (unrestricted) gives null. */
function parseField(text: string, field: Field, source: string): Set<number> | null {
  if (text === '*') return null;
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const [range, stepText] = part.split('/') as [string, string | undefined];
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1)
      throw bad(source, `${field.name}: step "${stepText}" must be a whole number ≥ 1`);
    let lo: number;
    let hi: number;
    if (range === '*') {
      lo = field.min;
      hi = field.max;
    } else if (range.includes('-')) {
      const [a, b] = range.split('-') as [string, string];
      lo = value(a, field, source);
      hi = value(b, field, source);
      if (hi < lo) throw bad(source, `${field.name}: range ${range} runs backwards`);
    } else {
      lo = value(range, field, source);
      hi = stepText === undefined ? lo : field.max;
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

export function parseCron(source: string): CronSchedule {
  const parts = source.trim().split(/\s+/);
  if (parts.length !== 5) throw bad(source, `${parts.length} fields; five are needed`);
  const [minute, hour, dom, month, dow] = parts as [string, string, string, string, string];
  const weekdays = new Set<number>();
  const nth = new Set<number>();
  let dowText = dow;
  if (dow.includes('#')) {
    // BullMQ's parser (cron-parser) takes one DOW#n per pattern, not a list: one drill, one n.
    if (dow.includes(',')) {
      throw bad(source, `day-of-week: "${dow}" — one DOW#n per schedule (a list of them is not supported)`);
    }
    for (const item of dow.split(',')) {
      const m = /^([A-Za-z]+|\d)#([1-5])$/.exec(item);
      if (!m)
        throw bad(source, `day-of-week: "${item}" — write the n-th weekday as DOW#n with n from 1 to 5, e.g. MON#1`);
      nth.add((value(m[1] as string, FIELDS[4] as Field, source) % 7) * 10 + Number(m[2]));
    }
    dowText = '*';
  }
  const days = parseField(dowText, FIELDS[4] as Field, source);
  for (const d of days ?? []) weekdays.add(d % 7);
  const daysOfMonth = parseField(dom, FIELDS[2] as Field, source) ?? new Set<number>();
  if (daysOfMonth.size > 0 && (weekdays.size > 0 || nth.size > 0)) {
    throw bad(
      source,
      'restricts both the day of the month and the day of the week; cron would fire on either, not on both',
      'for "the first Monday" write "* * MON#1" in the last three fields (third Monday: MON#3)',
    );
  }
  return {
    source,
    minutes: parseField(minute, FIELDS[0] as Field, source) ?? range(0, 59),
    hours: parseField(hour, FIELDS[1] as Field, source) ?? range(0, 23),
    daysOfMonth,
    months: parseField(month, FIELDS[3] as Field, source) ?? range(1, 12),
    weekdays,
    nthWeekdays: nth,
  };
}

function range(lo: number, hi: number): Set<number> {
  const out = new Set<number>();
  for (let v = lo; v <= hi; v++) out.add(v);
  return out;
}

function dayMatches(s: CronSchedule, year: number, month: number, day: number): boolean {
  if (!s.months.has(month)) return false;
  if (s.daysOfMonth.size > 0) return s.daysOfMonth.has(day);
  const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
  if (s.nthWeekdays.size > 0) return s.nthWeekdays.has(weekday * 10 + Math.ceil(day / 7));
  return s.weekdays.size === 0 || s.weekdays.has(weekday);
}

const DAY_MS = 86_400_000;
/** Thirty years ahead: a schedule with no firing by then (30 February) is taken as one that never fires. */
const HORIZON_DAYS = 366 * 30;

/** The first firing strictly after `after` (to the minute), or null when the schedule never fires. */
export function nextRun(s: CronSchedule, after: Date): Date | null {
  const start = new Date(Math.floor(after.getTime() / 60_000) * 60_000 + 60_000);
  const minutes = [...s.minutes].sort((a, b) => a - b);
  const hours = [...s.hours].sort((a, b) => a - b);
  let day = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate());
  for (let i = 0; i < HORIZON_DAYS; i++, day += DAY_MS) {
    const d = new Date(day);
    if (!dayMatches(s, d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate())) continue;
    for (const h of hours) {
      for (const m of minutes) {
        const at = day + h * 3_600_000 + m * 60_000;
        if (at >= start.getTime()) return new Date(at);
      }
    }
  }
  return null;
}

/**
 * The newest firing at or before `at` (to the minute), within `lookBackDays`; null when there
 * is none. A CronJob's pod uses it to name the slot it runs for, so a slot fired twice makes
 * one backup.
 */
export function previousRun(s: CronSchedule, at: Date, lookBackDays = 35): Date | null {
  let last: Date | null = null;
  let next = nextRun(s, new Date(at.getTime() - lookBackDays * DAY_MS));
  while (next && next.getTime() <= at.getTime()) {
    last = next;
    next = nextRun(s, next);
  }
  return last;
}
