// The annual audit report over a generated year: every expected number below was counted by
// hand from the generator's rules (written out beside each), not by running the builder's code.
import { describe, expect, it } from 'vitest';
import {
  type AuditChainSummary,
  type AuditRestoreInput,
  buildAuditReport,
  type KillSwitchAuditEvent,
  type LocationBackups,
  median,
} from './audit-report.js';
import { parseCron } from './drills/cron.js';
import { drillSchedules } from './drills/schedule.js';
import { LifeboatError } from './errors.js';
import type { DrillName, DrillReport } from './schemas/drill.js';

const DAY = 86_400_000;
const TARGETS: Record<DrillName, DrillReport['targets']> = {
  'kill-switch': { rto_seconds: 30, rpo_seconds: null, rpo: {} },
  'shadow-failover': { rto_seconds: 300, rpo_seconds: null, rpo: {} },
  reconciliation: { rto_seconds: null, rpo_seconds: null, rpo: {} },
  'backup-verify': { rto_seconds: null, rpo_seconds: 60, rpo: { orderHistory: 60 } },
  'database-restore': { rto_seconds: 900, rpo_seconds: 60, rpo: { orderHistory: 60 } },
  'cold-restore': {
    rto_seconds: 3600,
    rpo_seconds: 60,
    rpo: { orderHistory: 60, auditLogs: 300, reports: 86_400 },
  },
  'full-simulation': { rto_seconds: null, rpo_seconds: null, rpo: {} },
  'vendor-connectivity-loss': { rto_seconds: 30, rpo_seconds: null, rpo: {} },
  'multi-region-failover': { rto_seconds: 900, rpo_seconds: 60, rpo: { orderHistory: 60 } },
  'rpo-under-load': { rto_seconds: null, rpo_seconds: 60, rpo: { orderHistory: 60 } },
  'annual-audit': { rto_seconds: null, rpo_seconds: null, rpo: {} },
};

const stamp = (d: Date) =>
  d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');

function drill(
  name: DrillName,
  at: Date,
  m: { rto?: number | null; rpo?: number | null; auditLogs?: number; failure?: string; nested?: DrillReport[] } = {},
): DrillReport {
  const rpo = m.rpo ?? null;
  return {
    format: 'lifeboat.drill-report/v1',
    id: `${stamp(at)}-${name}`,
    drill: name,
    target: 'demo',
    title: name,
    scenario: name,
    hypothesis: '',
    started_at: at.toISOString(),
    finished_at: new Date(at.getTime() + 60_000).toISOString(),
    verdict: m.failure || m.nested?.some((d) => d.verdict === 'FAIL') ? 'FAIL' : 'PASS',
    failure: m.failure ?? null,
    measured: {
      rto_seconds: m.rto ?? null,
      rpo_seconds: rpo,
      rpo: {
        ...(rpo !== null ? { orderHistory: rpo } : {}),
        ...(m.auditLogs !== undefined ? { auditLogs: m.auditLogs, reports: 3600 } : {}),
      },
    },
    targets: TARGETS[name],
    steps: [],
    evidence: {},
    ...(m.nested ? { drills: m.nested } : {}),
  };
}

const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => new Date(Date.UTC(y, mo - 1, d, h, mi, s));
const ymd = (d: Date) => d.toISOString().slice(0, 10);

/** Every day of 2026, as midnight UTC. */
function days2026(): Date[] {
  const out: Date[] = [];
  for (let t = Date.UTC(2026, 0, 1); t < Date.UTC(2027, 0, 1); t += DAY) out.push(new Date(t));
  return out;
}

/** The n-th Monday of each month of 2026 (by walking the days, not by cron). */
function nthMondays(n: number): Date[] {
  const out: Date[] = [];
  for (let mo = 0; mo < 12; mo++) {
    const mondays = days2026().filter((d) => d.getUTCMonth() === mo && d.getUTCDay() === 1);
    out.push(mondays[n - 1] as Date);
  }
  return out;
}

const at = (day: Date, h: number, mi: number, s: number) => new Date(day.getTime() + ((h * 60 + mi) * 60 + s) * 1000);

/**
 * The year 2026 of target demo, by these rules:
 * - kill-switch every Monday 02:00:05, RTO 10 s; none on 03-09 and 03-16; on 06-01 RTO 41 s (FAIL).
 * - shadow-failover every Wednesday 02:00:05, RTO 100 s; on 12-30 a step fails (RTO null).
 * - reconciliation every Friday 02:00:05.
 * - backup-verify every day 01:30:05, RPO 30 s; none on 02-10; on 08-20 RPO 75 s (FAIL).
 * - database-restore every first Monday 03:00:05, RTO 300 + 10 × month s, RPO 20 s; on 11-02 a step fails.
 * - cold-restore every third Monday 03:00:05, RTO 600 + 60 × month s, RPO 45 s; on 09-21 the audit-log RPO is 400 s (FAIL).
 * - full-simulation on the first Mondays of Jan, Apr, Jul, Oct at 04:00:00, all passing:
 *   backup-verify 04:00:01 (RPO 40), database-restore 04:01 (RTO 500, RPO 25), cold-restore 04:10
 *   (RTO 1500.5, RPO 50), reconciliation 04:30, kill-switch 04:31 (RTO 20), shadow-failover 04:32
 *   (RTO 150), vendor-connectivity-loss 04:35 (RTO 4, 5, 6, 8 in turn). Each nested report is also
 *   given on its own, as the store keeps it.
 * - vendor-connectivity-loss and multi-region-failover never run on their own.
 * - an annual-audit on 10-05 06:00, and a kill-switch on 2025-12-29: neither counts.
 */
function generateDrills(): DrillReport[] {
  const out: DrillReport[] = [drill('kill-switch', utc(2025, 12, 29, 2, 0, 5), { rto: 10 })];
  for (const d of days2026()) {
    const day = ymd(d);
    if (d.getUTCDay() === 1 && day !== '2026-03-09' && day !== '2026-03-16') {
      out.push(
        day === '2026-06-01'
          ? drill('kill-switch', at(d, 2, 0, 5), { rto: 41, failure: 'RTO 41 s exceeds the target 30 s' })
          : drill('kill-switch', at(d, 2, 0, 5), { rto: 10 }),
      );
    }
    if (d.getUTCDay() === 3) {
      out.push(
        day === '2026-12-30'
          ? drill('shadow-failover', at(d, 2, 0, 5), { failure: 'wait-healthy: no answer in 300 s' })
          : drill('shadow-failover', at(d, 2, 0, 5), { rto: 100 }),
      );
    }
    if (d.getUTCDay() === 5) out.push(drill('reconciliation', at(d, 2, 0, 5)));
    if (day === '2026-08-20') {
      out.push(
        drill('backup-verify', at(d, 1, 30, 5), { rpo: 75, failure: 'RPO orderHistory 75 s exceeds the target 60 s' }),
      );
    } else if (day !== '2026-02-10') out.push(drill('backup-verify', at(d, 1, 30, 5), { rpo: 30 }));
  }
  for (const d of nthMondays(1)) {
    const month = d.getUTCMonth() + 1;
    out.push(
      month === 11
        ? drill('database-restore', at(d, 3, 0, 5), { failure: 'restore: backup damaged' })
        : drill('database-restore', at(d, 3, 0, 5), { rto: 300 + 10 * month, rpo: 20 }),
    );
  }
  for (const d of nthMondays(3)) {
    const month = d.getUTCMonth() + 1;
    out.push(
      month === 9
        ? drill('cold-restore', at(d, 3, 0, 5), {
            rto: 600 + 60 * month,
            rpo: 45,
            auditLogs: 400,
            failure: 'RPO auditLogs 400 s exceeds the target 300 s',
          })
        : drill('cold-restore', at(d, 3, 0, 5), { rto: 600 + 60 * month, rpo: 45, auditLogs: 100 }),
    );
  }
  const vendorRto = [4, 5, 6, 8];
  [0, 3, 6, 9].forEach((mo, q) => {
    const d = nthMondays(1)[mo] as Date;
    const nested = [
      drill('backup-verify', at(d, 4, 0, 1), { rpo: 40 }),
      drill('database-restore', at(d, 4, 1, 0), { rto: 500, rpo: 25 }),
      drill('cold-restore', at(d, 4, 10, 0), { rto: 1500.5, rpo: 50, auditLogs: 100 }),
      drill('reconciliation', at(d, 4, 30, 0)),
      drill('kill-switch', at(d, 4, 31, 0), { rto: 20 }),
      drill('shadow-failover', at(d, 4, 32, 0), { rto: 150 }),
      drill('vendor-connectivity-loss', at(d, 4, 35, 0), { rto: vendorRto[q] as number }),
    ];
    out.push(drill('full-simulation', at(d, 4, 0, 0), { nested }), ...nested);
  });
  out.push(drill('annual-audit', utc(2026, 10, 5, 6, 0, 0)));
  return out;
}

function restore(
  startedAt: Date,
  scenario: 'app-crash' | 'db-corruption',
  destination: 'production' | 'sandbox',
  outcome: 'COMPLETED' | 'FAILED',
  toReadyMs: number | null,
  failedStep: string | null = null,
): AuditRestoreInput {
  return {
    id: `${stamp(startedAt)}-${scenario}`,
    scenario,
    outcome,
    failedStep,
    error: failedStep ? { message: `${failedStep} went wrong` } : null,
    startedAt: startedAt.toISOString(),
    destination: { kind: destination },
    backupId: null,
    readyToTrade: toReadyMs !== null,
    rto: { toReadyMs },
  };
}

/**
 * A sandbox db-corruption restore 10 s into each first-Monday database-restore (FAILED at
 * fetch-backup on 11-02); app-crash into production FAILED at reconcile on 05-12 10:00 and
 * COMPLETED at 12:00 (ready after 240 s); db-corruption into production on 09-03 (600.5 s).
 */
function generateRestores(): AuditRestoreInput[] {
  const out = nthMondays(1).map((d) =>
    d.getUTCMonth() === 10
      ? restore(at(d, 3, 0, 15), 'db-corruption', 'sandbox', 'FAILED', null, 'fetch-backup')
      : restore(at(d, 3, 0, 15), 'db-corruption', 'sandbox', 'COMPLETED', null),
  );
  out.push(
    restore(utc(2026, 5, 12, 10), 'app-crash', 'production', 'FAILED', null, 'reconcile'),
    restore(utc(2026, 5, 12, 12), 'app-crash', 'production', 'COMPLETED', 240_000),
    restore(utc(2026, 9, 3, 8), 'db-corruption', 'production', 'COMPLETED', 600_500),
    restore(utc(2025, 11, 3, 8), 'db-corruption', 'production', 'FAILED', null, 'restore-database'),
  );
  return out;
}

/**
 * primary: a backup every day at 02:00 (and one on 2025-12-31), none on 04-11 to 04-13; those
 * before 12-01 pruned by retention (known from the audit trail); the one of 12-15 failed
 * verification, the one of 12-31 is unverified. offsite: every day at 03:00 from 03-01.
 * dr-site: unreachable.
 */
function generateLocations(): LocationBackups[] {
  const listed = (t: Date, verified: boolean | null) => ({
    backupId: `${stamp(t)}-full-0001`,
    createdAt: t.toISOString(),
    verified,
  });
  const backup = (t: Date, verified: boolean | null) =>
    t.getTime() < Date.UTC(2026, 11, 1) ? { ...listed(t, null), pruned: true } : listed(t, verified);
  const primary = [backup(utc(2025, 12, 31, 2), true)];
  const offsite = [];
  for (const d of days2026()) {
    const day = ymd(d);
    if (!['2026-04-11', '2026-04-12', '2026-04-13'].includes(day)) {
      primary.push(backup(at(d, 2, 0, 0), day === '2026-12-15' ? false : day === '2026-12-31' ? null : true));
    }
    if (d.getUTCMonth() >= 2) offsite.push(listed(at(d, 3, 0, 0), true));
  }
  return [
    { location: 'primary', primary: true, reachable: true, backups: primary },
    { location: 'offsite', primary: false, reachable: true, backups: offsite },
    { location: 'dr-site', primary: false, reachable: false, problem: 'connect ECONNREFUSED 127.0.0.1:9', backups: [] },
  ];
}

const killSwitchEvents: KillSwitchAuditEvent[] = [
  { seq: 3, at: '2025-12-20T09:00:00.000Z', actor: 'cli:alice', action: 'kill_switch.activate', outcome: 'ok' },
  {
    seq: 10,
    at: '2026-03-02T09:00:00.000Z',
    actor: 'cli:alice',
    action: 'kill_switch.activate',
    outcome: 'ok',
    details: { reason: 'exchange outage' },
  },
  {
    seq: 11,
    at: '2026-03-02T10:00:00.000Z',
    actor: 'bob',
    action: 'console.kill_switch.request_deactivation',
    outcome: 'ok',
  },
  {
    seq: 12,
    at: '2026-03-02T10:01:00.000Z',
    actor: 'bob',
    action: 'console.kill_switch.deactivate',
    outcome: 'refused',
  },
  { seq: 13, at: '2026-03-02T10:05:00.000Z', actor: 'carol', action: 'console.kill_switch.deactivate', outcome: 'ok' },
  { seq: 20, at: '2026-05-01T00:00:00.000Z', actor: 'backup-worker', action: 'backup.completed', outcome: 'ok' },
  { seq: 30, at: '2026-11-15T08:00:00.000Z', actor: 'cli:dan', action: 'kill_switch.activate', outcome: 'ok' },
  { seq: 31, at: '2026-11-15T08:30:00.000Z', actor: 'cli:dan', action: 'kill_switch.deactivate', outcome: 'ok' },
];

const brokenChain: AuditChainSummary = {
  ok: false,
  location: '/srv/store',
  entries: 120,
  catalog: null,
  firstBroken: { seq: 42, where: 'store', reason: 'hash does not match its content (edited?)' },
};

describe('the annual audit report over a generated year', () => {
  const report = buildAuditReport({
    target: 'demo',
    year: 2026,
    generatedAt: new Date('2027-01-02T00:00:00.000Z'),
    // The year was generated before rpo-under-load joined the catalog: the firm did not run it.
    schedules: drillSchedules({ schedule: { 'rpo-under-load': 'off' } }),
    drills: generateDrills(),
    restores: generateRestores(),
    locations: generateLocations(),
    killSwitchEvents,
    auditChain: brokenChain,
  });
  const row = (name: string) => report.drills.find((d) => d.drill === name);

  it('covers the calendar year, closed', () => {
    expect(report.format).toBe('lifeboat.audit-report/v1');
    expect(report.period).toEqual({
      start: '2026-01-01T00:00:00.000Z',
      end: '2027-01-01T00:00:00.000Z',
      complete: true,
      days: 365,
    });
  });

  it('counts runs against the schedule, with full-simulation drills as runs of their own drill', () => {
    // 2026 starts on a Thursday: 52 Mondays, Wednesdays and Fridays; 365 days; 12 first and third Mondays.
    const counts = report.drills.map((d) => [
      d.drill,
      d.scheduled,
      d.runs,
      d.inSimulation,
      d.passed,
      d.failed,
      d.missed,
    ]);
    expect(counts).toEqual([
      // 50 Mondays + 4 in full-simulation; 03-09 and 03-16 missed; 06-01 failed.
      ['kill-switch', 52, 54, 4, 53, 1, 2],
      ['shadow-failover', 52, 56, 4, 55, 1, 0],
      ['reconciliation', 52, 56, 4, 56, 0, 0],
      // 364 days + 4; 02-10 missed; 08-20 failed.
      ['backup-verify', 365, 368, 4, 367, 1, 1],
      ['database-restore', 12, 16, 4, 15, 1, 0],
      ['cold-restore', 12, 16, 4, 15, 1, 0],
      ['full-simulation', 4, 4, 0, 4, 0, 0],
      // Its one slot (07-06 05:00) is answered by the full-simulation of 10-05.
      ['vendor-connectivity-loss', 1, 4, 4, 4, 0, 0],
      ['multi-region-failover', 1, 0, 0, 0, 0, 1],
      // Off: no slot, no run.
      ['rpo-under-load', 0, 0, 0, 0, 0, 0],
    ]);
    expect(row('annual-audit')).toBeUndefined();
    expect(row('kill-switch')?.firstMissed).toBe('2026-03-09T02:00:00.000Z');
    expect(row('backup-verify')?.firstMissed).toBe('2026-02-10T01:30:00.000Z');
    expect(report.summary).toEqual({
      scheduled: 551,
      missed: 4,
      runs: 574,
      passed: 569,
      failed: 5,
      restores: 15,
      restoresFailed: 2,
      killSwitchEvents: 6,
      maxBackupGapDays: 2,
    });
  });

  it('gives targets met and the worst and median RTO and RPO per drill', () => {
    const numbers = report.drills.map((d) => [
      d.drill,
      d.targetsMet,
      d.rto.worst,
      d.rto.median,
      d.rto.target,
      d.rpo.worst,
      d.rpo.median,
      d.rpo.target,
    ]);
    expect(numbers).toEqual([
      // RTOs: 49 × 10, 4 × 20, 41 → the 27th and 28th of 54 are both 10.
      ['kill-switch', 53, 41, 10, 30, null, null, null],
      // 51 × 100, 4 × 150 (the failed run measured none) → the 28th of 55 is 100.
      ['shadow-failover', 55, 150, 100, 300, null, null, null],
      ['reconciliation', null, null, null, null, null, null, null],
      // RPOs: 363 × 30, 4 × 40, 75 → the 184th and 185th of 368 are both 30.
      ['backup-verify', 367, null, null, null, 75, 30, 60],
      // RTOs 310…400, 420, 4 × 500 → the 8th of 15 is 380; RPOs 11 × 20, 4 × 25 → 20.
      ['database-restore', 15, 500, 380, 900, 25, 20, 60],
      // RTOs 660…1320 by 60, 4 × 1500.5 → the 8th and 9th of 16 are 1080 and 1140: 1110.
      ['cold-restore', 15, 1500.5, 1110, 3600, 50, 45, 60],
      ['full-simulation', null, null, null, null, null, null, null],
      // 4, 5, 6, 8 → (5 + 6) / 2.
      ['vendor-connectivity-loss', 4, 8, 5.5, 30, null, null, null],
      ['multi-region-failover', 0, null, null, null, null, null, null],
      ['rpo-under-load', 0, null, null, null, null, null, null],
    ]);
    expect(row('kill-switch')?.lastRun).toEqual({
      id: '20261228T020005Z-kill-switch',
      at: '2026-12-28T02:00:05.000Z',
      verdict: 'PASS',
    });
  });

  it('lists each failure with the run that followed it and how long after', () => {
    expect(
      report.failures.map((f) => [
        f.kind,
        f.name,
        f.at,
        f.destination,
        f.next?.outcome ?? null,
        f.next?.afterSeconds ?? null,
        f.nextPass?.afterSeconds ?? null,
      ]),
    ).toEqual([
      ['restore', 'app-crash', '2026-05-12T10:00:00.000Z', 'production', 'COMPLETED', 7200, 7200],
      ['drill', 'kill-switch', '2026-06-01T02:00:05.000Z', null, 'PASS', 604_800, 604_800],
      ['drill', 'backup-verify', '2026-08-20T01:30:05.000Z', null, 'PASS', 86_400, 86_400],
      // Followed by the full-simulation's cold-restore of 10-05 04:10: 14 days 1 h 9 min 55 s.
      ['drill', 'cold-restore', '2026-09-21T03:00:05.000Z', null, 'PASS', 1_213_795, 1_213_795],
      ['drill', 'database-restore', '2026-11-02T03:00:05.000Z', null, 'PASS', 3_024_000, 3_024_000],
      ['restore', 'db-corruption', '2026-11-02T03:00:15.000Z', 'sandbox', 'COMPLETED', 3_024_000, 3_024_000],
      ['drill', 'shadow-failover', '2026-12-30T02:00:05.000Z', null, null, null, null],
    ]);
    expect(report.failures[0]?.why).toBe('reconcile: reconcile went wrong');
    expect(report.failures[3]?.next?.id).toBe('20261005T041000Z-cold-restore');
  });

  it('gives the restores by outcome, scenario and destination', () => {
    expect(report.restores).toEqual({
      count: 15,
      byOutcome: { COMPLETED: 13, FAILED: 2 },
      byScenario: {
        'db-corruption': { count: 13, completed: 12, failed: 1 },
        'app-crash': { count: 2, completed: 1, failed: 1 },
      },
      byDestination: { production: 3, sandbox: 12 },
      // 240 and 600.5 s.
      toReady: { measured: 2, worst: 600.5, median: 420.25 },
    });
  });

  it('gives backup coverage per location, with the longest stretch without one', () => {
    const [primary, offsite, drSite] = report.locations;
    expect(primary).toMatchObject({
      location: 'primary',
      reachable: true,
      // Jan 1 to Nov 30 is 334 days, less the three without: 331 pruned; December's 31 listed.
      backups: 362,
      verified: 29,
      failedVerification: 1,
      unverified: 1,
      pruned: 331,
      daysCovered: 362,
      days: 365,
      daysWithout: ['2026-04-11', '2026-04-12', '2026-04-13'],
      newest: '2026-12-31T02:00:00.000Z',
      longestGap: { from: '2026-04-10T02:00:00.000Z', to: '2026-04-14T02:00:00.000Z', seconds: 345_600 },
    });
    // March to December: 31 + 30 + 31 + 30 + 31 + 31 + 30 + 31 + 30 + 31 days.
    expect(offsite).toMatchObject({
      backups: 306,
      verified: 306,
      pruned: 0,
      daysCovered: 306,
      longestGap: { from: '2026-01-01T00:00:00.000Z', to: '2026-03-01T03:00:00.000Z', seconds: 5_108_400 },
    });
    expect(offsite?.daysWithout).toHaveLength(59);
    expect(drSite).toMatchObject({ reachable: false, problem: 'connect ECONNREFUSED 127.0.0.1:9', backups: null });
  });

  it('counts kill-switch events by action and outcome', () => {
    expect(report.killSwitch.count).toBe(6);
    expect(report.killSwitch.byAction).toEqual({
      'kill_switch.activate': { ok: 2, refused: 0, failed: 0 },
      'console.kill_switch.request_deactivation': { ok: 1, refused: 0, failed: 0 },
      'console.kill_switch.deactivate': { ok: 1, refused: 1, failed: 0 },
      'kill_switch.deactivate': { ok: 1, refused: 0, failed: 0 },
    });
    expect(report.killSwitch.events[0]).toEqual({
      seq: 10,
      at: '2026-03-02T09:00:00.000Z',
      actor: 'cli:alice',
      action: 'kill_switch.activate',
      outcome: 'ok',
      reason: 'exchange outage',
    });
  });

  it('says in plain sentences what needs an answer', () => {
    expect(report.verdict).toBe('FINDINGS');
    expect(report.findings).toEqual([
      {
        kind: 'drill-missed-runs',
        text: 'kill-switch missed 2 of its 52 scheduled runs (the first on 2026-03-09T02:00:00.000Z).',
      },
      {
        kind: 'drill-missed-runs',
        text: 'backup-verify missed 1 of its 365 scheduled runs (the first on 2026-02-10T01:30:00.000Z).',
      },
      { kind: 'drill-never-ran', text: 'multi-region-failover was scheduled 1 time in the period and never ran.' },
      {
        kind: 'failure-unresolved',
        text: 'shadow-failover failed on 2026-12-30T02:00:05.000Z (wait-healthy: no answer in 300 s) and has not passed since.',
      },
      {
        kind: 'backup-gap',
        text: 'Location primary went 4 days without a backup (2026-04-10T02:00:00.000Z to 2026-04-14T02:00:00.000Z); at most 2 days are allowed.',
      },
      {
        kind: 'backup-gap',
        text: 'Location offsite went 59.1 days without a backup (2026-01-01T00:00:00.000Z to 2026-03-01T03:00:00.000Z); at most 2 days are allowed.',
      },
      {
        kind: 'location-unreachable',
        text: 'Location dr-site could not be listed, so its backups are unaccounted for: connect ECONNREFUSED 127.0.0.1:9.',
      },
      {
        kind: 'audit-chain-broken',
        text: "The audit trail's hash chain is broken at entry 42 in the store: hash does not match its content (edited?).",
      },
    ]);
  });
});

describe('the audit report, case by case', () => {
  const intact: AuditChainSummary = { ok: true, location: 'store', entries: 0, catalog: null, firstBroken: null };
  const daily = [{ drill: 'backup-verify' as const, cron: parseCron('30 1 * * *'), source: 'default' as const }];
  const base = {
    target: 'demo',
    restores: [],
    locations: [],
    killSwitchEvents: [],
    auditChain: intact,
  };

  it('takes the median of an even count as the mean of the two middle values, to the half millisecond', () => {
    expect(median([])).toBeNull();
    expect(median([7])).toBe(7);
    expect(median([9, 1, 5])).toBe(5);
    expect(median([4, 8, 5, 6])).toBe(5.5);
    expect(median([1.001, 1.002])).toBe(1.0015);
    expect(median([0.1, 0.2])).toBe(0.15);
  });

  it('ends the period at generatedAt within the year, and leaves a slot too recent to judge pending', () => {
    // Runs at 01:30:05 from 01-01 to 03-09; the slot of 03-10 01:30 is 3.5 h old at 05:00.
    const drills: DrillReport[] = [];
    for (let t = Date.UTC(2027, 0, 1); t < Date.UTC(2027, 2, 10); t += DAY) {
      drills.push(drill('backup-verify', new Date(t + 5_405_000), { rpo: 30 }));
    }
    const report = buildAuditReport({
      ...base,
      year: 2027,
      generatedAt: utc(2027, 3, 10, 5),
      schedules: daily,
      drills,
    });
    expect(report.period).toEqual({
      start: '2027-01-01T00:00:00.000Z',
      end: '2027-03-10T05:00:00.000Z',
      complete: false,
      // 31 + 28 + 10 (the 10th begun).
      days: 69,
    });
    expect(row(report, 'backup-verify')).toMatchObject({ scheduled: 69, runs: 68, missed: 0, pending: 1 });
    expect(report.verdict).toBe('CLEAN');
    expect(report.findings).toEqual([]);

    // Seven hours after the slot, nobody is still running it: missed.
    const later = buildAuditReport({
      ...base,
      year: 2027,
      generatedAt: utc(2027, 3, 10, 8, 31),
      schedules: daily,
      drills,
    });
    expect(row(later, 'backup-verify')).toMatchObject({ scheduled: 69, missed: 1, pending: 0 });
    expect(later.verdict).toBe('FINDINGS');
  });

  it('counts a drill run within a full-simulation once, whether given nested, alone, or both', () => {
    const nested = drill('kill-switch', utc(2026, 1, 5, 4, 31), { rto: 20 });
    const sim = drill('full-simulation', utc(2026, 1, 5, 4), { nested: [nested] });
    const generatedAt = utc(2026, 1, 6);
    for (const drills of [[sim], [sim, nested], [nested, sim]]) {
      const report = buildAuditReport({ ...base, year: 2026, generatedAt, schedules: [], drills });
      expect(row(report, 'kill-switch')).toMatchObject({ runs: 1, inSimulation: 1, passed: 1 });
      expect(row(report, 'full-simulation')).toMatchObject({ runs: 1 });
    }
    const alone = buildAuditReport({ ...base, year: 2026, generatedAt, schedules: [], drills: [nested] });
    expect(row(alone, 'kill-switch')).toMatchObject({ runs: 1, inSimulation: 0 });
  });

  it('finds a failure with no later pass, and records that cannot be read', () => {
    const report = buildAuditReport({
      ...base,
      year: 2026,
      generatedAt: utc(2026, 6, 1),
      schedules: [],
      drills: [
        drill('database-restore', utc(2026, 2, 2, 3), { failure: 'restore: backup damaged' }),
        drill('database-restore', utc(2026, 3, 2, 3), { failure: 'restore: backup damaged' }),
      ],
      restores: [restore(utc(2026, 4, 1), 'db-corruption', 'production', 'FAILED', null, 'integrity-check')],
      unreadable: [{ key: 'demo/drills/20260401T000000Z-kill-switch.json', problem: 'not JSON' }],
    });
    expect(report.failures.map((f) => [f.name, f.next?.outcome ?? null, f.nextPass])).toEqual([
      ['database-restore', 'FAIL', null],
      ['database-restore', null, null],
      ['db-corruption', null, null],
    ]);
    expect(report.findings.map((f) => f.text)).toEqual([
      'database-restore failed on 2026-02-02T03:00:00.000Z (restore: backup damaged) and has not passed since (it failed 2 times).',
      'A db-corruption restore into production failed on 2026-04-01T00:00:00.000Z (integrity-check: integrity-check went wrong) and no later one completed.',
      '1 record of the period could not be read: demo/drills/20260401T000000Z-kill-switch.json (not JSON).',
    ]);
  });

  it('shortens a long failure to 200 characters in its finding, keeping it whole in the failures', () => {
    const why = `sandbox-copy: ${'x'.repeat(300)}`;
    const report = buildAuditReport({
      ...base,
      year: 2026,
      generatedAt: utc(2026, 6, 1),
      schedules: [],
      drills: [drill('kill-switch', utc(2026, 2, 2, 2), { failure: why })],
    });
    expect(report.failures[0]?.why).toBe(why);
    expect(report.findings[0]?.text).toBe(
      `kill-switch failed on 2026-02-02T02:00:00.000Z (${why.slice(0, 199)}…) and has not passed since.`,
    );
  });

  it('refuses a year that has not begun', () => {
    expect(() =>
      buildAuditReport({ ...base, year: 2028, generatedAt: utc(2027, 12, 31, 23, 59), schedules: [], drills: [] }),
    ).toThrow(LifeboatError);
    expect(() =>
      buildAuditReport({ ...base, year: 2028, generatedAt: utc(2027, 12, 31, 23, 59), schedules: [], drills: [] }),
    ).toThrow('audit report: 2028 has not begun at 2027-12-31T23:59:00.000Z');
  });
});

function row(report: ReturnType<typeof buildAuditReport>, name: string) {
  return report.drills.find((d) => d.drill === name);
}
