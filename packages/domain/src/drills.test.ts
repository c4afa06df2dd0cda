import { describe, expect, it } from 'vitest';
import { DRILLS } from './drills/catalog.js';
import { nextRun, parseCron, previousRun } from './drills/cron.js';
import { drillSchedules, upcomingDrills } from './drills/schedule.js';
import { LifeboatError } from './errors.js';
import { DRILL_NAMES, DrillsConfig } from './schemas/drill.js';
import { formatSeconds, parseDuration } from './units.js';

/**
 * The n-th Monday of a month by Zeller's congruence, not by Date: an independent
 * computation for the schedule to agree with.
 */
function nthMonday(year: number, month: number, n: number): number {
  const m = month < 3 ? month + 12 : month;
  const y = month < 3 ? year - 1 : year;
  const k = y % 100;
  const j = Math.floor(y / 100);
  // h: 0 = Saturday, 1 = Sunday, 2 = Monday, …, of the 1st of the month.
  const h = (1 + Math.floor((13 * (m + 1)) / 5) + k + Math.floor(k / 4) + Math.floor(j / 4) + 5 * j) % 7;
  const firstMonday = 1 + ((2 - h + 7) % 7);
  return firstMonday + 7 * (n - 1);
}

const iso = (y: number, m: number, d: number, hh: number, mm: number) =>
  new Date(Date.UTC(y, m - 1, d, hh, mm)).toISOString();

function runsOf(drill: string, from: string, count: number): string[] {
  return upcomingDrills(drillSchedules(), new Date(from), 10_000)
    .runs.filter((r) => r.drill === drill)
    .slice(0, count)
    .map((r) => r.at);
}

describe('the drill schedule', () => {
  it('puts database-restore on the first Monday and cold-restore on the third, every month for two years', () => {
    const from = '2026-11-26T00:00:00.000Z';
    const expectedFirst: string[] = [];
    const expectedThird: string[] = [];
    for (let i = 0; i < 25; i++) {
      const year = 2026 + Math.floor((10 + i) / 12);
      const month = ((10 + i) % 12) + 1;
      const first = iso(year, month, nthMonday(year, month, 1), 3, 0);
      const third = iso(year, month, nthMonday(year, month, 3), 3, 0);
      if (first > from) expectedFirst.push(first);
      if (third > from) expectedThird.push(third);
    }
    const first = expectedFirst.slice(0, 24);
    const third = expectedThird.slice(0, 24);
    expect(runsOf('database-restore', from, 24)).toEqual(first);
    expect(runsOf('cold-restore', from, 24)).toEqual(third);
    // December 2026 starts on a Tuesday: its first Monday is the 7th, its third the 21st.
    expect(first[0]).toBe('2026-12-07T03:00:00.000Z');
    expect(third[0]).toBe('2026-12-21T03:00:00.000Z');
  });

  it('runs full-simulation on the first Monday of each quarter and vendor-connectivity-loss on that of July', () => {
    const from = '2026-11-26T00:00:00.000Z';
    const quarters: string[] = [];
    for (const year of [2027, 2028]) {
      for (const month of [1, 4, 7, 10]) quarters.push(iso(year, month, nthMonday(year, month, 1), 4, 0));
    }
    expect(runsOf('full-simulation', from, 8)).toEqual(quarters);
    expect(runsOf('vendor-connectivity-loss', from, 2)).toEqual([
      iso(2027, 7, nthMonday(2027, 7, 1), 5, 0),
      iso(2028, 7, nthMonday(2028, 7, 1), 5, 0),
    ]);
  });

  it('runs the weekly drills on their weekday and backup-verify every day', () => {
    const from = '2026-11-26T00:00:00.000Z'; // a Thursday
    expect(runsOf('kill-switch', from, 3)).toEqual([
      '2026-11-30T02:00:00.000Z',
      '2026-12-07T02:00:00.000Z',
      '2026-12-14T02:00:00.000Z',
    ]);
    expect(runsOf('shadow-failover', from, 1)).toEqual(['2026-12-02T02:00:00.000Z']);
    expect(runsOf('reconciliation', from, 1)).toEqual(['2026-11-27T02:00:00.000Z']);
    expect(runsOf('backup-verify', from, 3)).toEqual([
      '2026-11-26T01:30:00.000Z',
      '2026-11-27T01:30:00.000Z',
      '2026-11-28T01:30:00.000Z',
    ]);
  });

  it('lists runs in time order, ties by drill name, strictly after the start', () => {
    const { runs } = upcomingDrills(drillSchedules(), new Date('2026-11-30T02:00:00.000Z'), 50);
    const times = runs.map((r) => r.at);
    expect([...times].sort()).toEqual(times);
    expect(times[0]! > '2026-11-30T02:00:00.000Z').toBe(true);
    // 2027-01-04 is the first Monday of a quarter: four drills and a daily one that day.
    const days = upcomingDrills(drillSchedules(), new Date('2027-01-04T00:00:00.000Z'), 7).runs;
    expect(days.map((r) => `${r.at.slice(8, 10)} ${r.at.slice(11, 16)} ${r.drill}`)).toEqual([
      '04 01:30 backup-verify',
      '04 02:00 kill-switch',
      '04 03:00 database-restore',
      '04 04:00 full-simulation',
      '05 01:30 backup-verify',
      '06 01:30 backup-verify',
      '06 02:00 shadow-failover',
    ]);
  });

  it('takes schedules from lifeboat.yaml, drops those set off, and reports one that never fires', () => {
    const config = DrillsConfig.parse({
      schedule: { 'kill-switch': '15 9 * * TUE', reconciliation: 'off', 'cold-restore': '0 3 30 FEB *' },
    });
    const schedules = drillSchedules(config);
    expect(schedules.map((s) => s.drill)).not.toContain('reconciliation');
    expect(schedules.find((s) => s.drill === 'kill-switch')?.source).toBe('config');
    const { runs, neverFires } = upcomingDrills(schedules, new Date('2026-11-26T00:00:00.000Z'), 200);
    expect(neverFires).toEqual(['cold-restore']);
    expect(runs.find((r) => r.drill === 'kill-switch')?.at).toBe('2026-12-01T09:15:00.000Z');
  });
});

describe('cron', () => {
  it('reads names, ranges, lists and steps', () => {
    const s = parseCron('*/15 8-10 * JAN,jul MON-FRI');
    expect([...s.minutes]).toEqual([0, 15, 30, 45]);
    expect([...s.hours]).toEqual([8, 9, 10]);
    expect([...s.months]).toEqual([1, 7]);
    expect([...s.weekdays]).toEqual([1, 2, 3, 4, 5]);
    expect(nextRun(s, new Date('2027-01-01T23:59:00Z'))?.toISOString()).toBe('2027-01-04T08:00:00.000Z');
    expect(nextRun(parseCron('0 0 * * 7'), new Date('2026-11-26T00:00:00Z'))?.toISOString()).toBe(
      '2026-11-29T00:00:00.000Z',
    );
  });

  it('refuses the day-of-month and day-of-week trap, saying how to write the first Monday', () => {
    const err = (() => {
      try {
        parseCron('0 2 1-7 * 1');
      } catch (e) {
        return e as LifeboatError;
      }
    })();
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err?.message).toContain('either, not on both');
    expect(err?.hint).toContain('MON#1');
  });

  it('names the field that is wrong', () => {
    expect(() => parseCron('60 * * * *')).toThrow(/minute: 60 is outside 0–59/);
    expect(() => parseCron('0 2 * * MON#6')).toThrow(/DOW#n with n from 1 to 5/);
    expect(() => parseCron('0 2 * * MON#1,MON#3')).toThrow(/one DOW#n per schedule/);
    expect(() => parseCron('0 2 * *')).toThrow(/4 fields; five are needed/);
    expect(() => parseCron('0 2 * FOO *')).toThrow(/month: "FOO" is not a number or a name/);
    expect(() => drillSchedules({ schedule: { 'kill-switch': '0 2 * * XYZ' } })).toThrow(
      /drills\.schedule\.kill-switch: cron "0 2 \* \* XYZ": day-of-week/,
    );
  });
});

describe('the drill catalog and its targets', () => {
  it('has every drill, each with a hypothesis and steps', () => {
    expect(Object.keys(DRILLS).sort()).toEqual([...DRILL_NAMES].sort());
    for (const d of Object.values(DRILLS)) {
      expect(d.hypothesis.length).toBeGreaterThan(20);
      expect(d.steps.length).toBeGreaterThan(0);
    }
  });

  it("defaults to the runbook's targets and reads durations as people write them", () => {
    const defaults = DrillsConfig.parse({});
    expect(defaults.targets.rto).toEqual({
      killSwitch: 30,
      shadowMode: 300,
      databaseRestore: 900,
      completeRebuild: 3600,
    });
    expect(defaults.targets.rpo).toEqual({ orderHistory: 60, auditLogs: 300, reports: 86_400 });
    const edited = DrillsConfig.parse({ targets: { rto: { databaseRestore: '10m' }, rpo: { reports: '12h' } } });
    expect(edited.targets.rto.databaseRestore).toBe(600);
    expect(edited.targets.rpo.reports).toBe(43_200);
    expect(() => DrillsConfig.parse({ targets: { rto: { killSwitch: 'soon' } } })).toThrow(
      /soon.{0,4} is not a duration/,
    );
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('3650d')).toBe(315_360_000);
    expect(() => DrillsConfig.parse({ targets: { rto: { killSwitch: '99999999999999999999d' } } })).toThrow(
      /99999999999999999999d.{0,4} is longer than ten years/,
    );
    expect(() => parseDuration(315_360_001)).toThrow(/longer than ten years/);
    expect(formatSeconds(222)).toBe('3m 42s');
    expect(formatSeconds(12)).toBe('12s');
  });
});

describe('previousRun', () => {
  it('names the slot a late or repeated CronJob pod runs for', () => {
    const nightly = parseCron('0 2 * * *');
    expect(previousRun(nightly, new Date('2026-11-26T02:00:00Z'))?.toISOString()).toBe('2026-11-26T02:00:00.000Z');
    expect(previousRun(nightly, new Date('2026-11-26T02:09:59Z'))?.toISOString()).toBe('2026-11-26T02:00:00.000Z');
    expect(previousRun(nightly, new Date('2026-11-26T01:59:00Z'))?.toISOString()).toBe('2026-11-25T02:00:00.000Z');
    expect(previousRun(parseCron('0 3 * * MON#1'), new Date('2026-11-26T00:00:00Z'))?.toISOString()).toBe(
      '2026-11-02T03:00:00.000Z',
    );
    expect(previousRun(parseCron('0 0 1 1 *'), new Date('2026-11-26T00:00:00Z'))).toBeNull();
  });
});
