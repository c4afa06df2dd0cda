// The annual DR audit (docs/FORMAT.md §9): a year of drill reports, restore records, backups
// per location, kill-switch events and the audit trail's verification folded into one report:
// drills run against drills scheduled, targets met, what failed and what followed, backup
// coverage, and findings a person must answer. Pure: the drill-scheduler gathers the records
// and renders the page.
import { z } from 'zod';
import { DRILLS } from './drills/catalog.js';
import { type CronSchedule, nextRun } from './drills/cron.js';
import type { DrillSchedule } from './drills/schedule.js';
import { LifeboatError } from './errors.js';
import { DRILL_NAMES, type DrillName, type DrillReport } from './schemas/drill.js';

export const AUDIT_REPORT_FORMAT = 'lifeboat.audit-report/v1';

/** The drill that writes this report: it is not evidence about itself, so it has no row. */
const AUDIT_DRILL: DrillName = 'annual-audit';

/** A location with no backup for longer than this many days is a finding (a daily schedule missed a day, and then some). */
export const DEFAULT_MAX_BACKUP_GAP_DAYS = 2;
/**
 * A scheduled slot whose next slot has not come yet is judged only once this long has passed:
 * a drill may still be running (the drill job's own timeout is six hours).
 */
export const SLOT_GRACE_MS = 6 * 3600_000;
/** A run stamped this much before its slot still answers it (clocks of different hosts differ). */
export const SLOT_SKEW_MS = 60_000;

const DAY_MS = 86_400_000;

/** What the report reads of a stored restore record (`layout.restoreRecord`, a RestoreResult). */
export const AuditRestoreRecord = z.object({
  scenario: z.string().min(1),
  outcome: z.enum(['COMPLETED', 'FAILED', 'PLANNED']),
  failedStep: z.string().nullable().optional(),
  error: z.object({ message: z.string() }).nullable().optional(),
  startedAt: z.iso.datetime({ offset: true }),
  destination: z.object({ kind: z.enum(['production', 'sandbox']) }),
  backupId: z.string().nullable().optional(),
  readyToTrade: z.boolean().optional(),
  rto: z.object({ toReadyMs: z.number().nullable().optional() }).optional(),
  requestedBy: z.string().optional(),
});
export type AuditRestoreRecord = z.infer<typeof AuditRestoreRecord>;

/** A restore record with its id (the key's file name: `<compact UTC start>-<scenario>`). */
export type AuditRestoreInput = AuditRestoreRecord & { id: string };

/** One location's committed backups, as its catalog lists them; an unreachable one has none. */
export interface LocationBackups {
  location: string;
  primary: boolean;
  reachable: boolean;
  /** Why the location could not be listed. */
  problem?: string;
  /**
   * `pruned`: no longer listed, known from the audit trail's record of it (retention removed
   * it); its verification is not known any more.
   */
  backups: ReadonlyArray<{ backupId: string; createdAt: string; verified: boolean | null; pruned?: boolean }>;
}

/** An audit-trail entry about the kill switch (see isKillSwitchAction). */
export interface KillSwitchAuditEvent {
  seq: number;
  at: string;
  actor: string;
  action: string;
  outcome: 'ok' | 'refused' | 'failed';
  details?: Readonly<Record<string, unknown>>;
}

/**
 * Kill-switch actions as the trail records them: `kill_switch.activate` / `.deactivate` from
 * the CLI, `console.kill_switch.activate` / `.request_deactivation` / `.deactivate` from the
 * console.
 */
export function isKillSwitchAction(action: string): boolean {
  return /(^|\.)kill_switch\./.test(action);
}

/** The audit trail's verification, as much of it as the report keeps. */
export interface AuditChainSummary {
  ok: boolean;
  /** Where the trail is kept (the primary store). */
  location: string;
  entries: number;
  /** The catalog's copy, when one was compared (distributed mode). */
  catalog: { location: string; rows: number; differences: number } | null;
  firstBroken: { seq: number; where: 'store' | 'catalog'; reason: string } | null;
}

export interface AuditReportInput {
  target: string;
  year: number;
  generatedAt: Date;
  /** The drill schedules in force (`drillSchedules(config.drills)`); a drill set to `off` is absent. */
  schedules: readonly DrillSchedule[];
  /** Drill reports started in the period or after it; full-simulation's nested ones may also be given one by one. */
  drills: readonly DrillReport[];
  restores: readonly AuditRestoreInput[];
  locations: readonly LocationBackups[];
  killSwitchEvents: readonly KillSwitchAuditEvent[];
  auditChain: AuditChainSummary;
  /** Records that exist but do not read: evidence that is lost, so each is a finding. */
  unreadable?: ReadonlyArray<{ key: string; problem: string }>;
  maxBackupGapDays?: number;
}

/** Worst (largest) and median of the values measured, in seconds; null with none. */
export interface AuditStat {
  /** How many runs measured a value. */
  measured: number;
  worst: number | null;
  median: number | null;
}

export interface AuditDrillRow {
  drill: DrillName;
  scenario: string;
  /** Its cron (UTC); null when it is off. */
  schedule: string | null;
  /** Slots of its schedule in the period. */
  scheduled: number;
  /** Slots no run answered (a slot is answered by a run started before the next slot). */
  missed: number;
  firstMissed: string | null;
  /** The newest slot, when it is too recent to judge (a run may still be going). */
  pending: number;
  /** Runs started in the period, standalone or within a full-simulation. */
  runs: number;
  /** Of those, how many ran within a full-simulation. */
  inSimulation: number;
  passed: number;
  failed: number;
  /** Runs that measured every target they are held to within it; null for a drill held to none. */
  targetsMet: number | null;
  /** Start to ready (or to halted), against the newest run's target. */
  rto: AuditStat & { target: number | null };
  /** Order-history RPO (`measured.rpo_seconds`), against the newest run's target. */
  rpo: AuditStat & { target: number | null };
  lastRun: { id: string; at: string; verdict: 'PASS' | 'FAIL' } | null;
}

export interface AuditLocationRow {
  location: string;
  primary: boolean;
  reachable: boolean;
  problem: string | null;
  /** The rest is null for a location that could not be listed. */
  backups: number | null;
  /** Of those, still listed: verified (their newest verification passed), failed, never verified. */
  verified: number | null;
  failedVerification: number | null;
  unverified: number | null;
  /** Of those, removed by retention since (known from the audit trail). */
  pruned: number | null;
  /** UTC days of the period with at least one backup, of `days`. */
  daysCovered: number | null;
  days: number;
  /** UTC days (YYYY-MM-DD) of the period with no backup. */
  daysWithout: string[] | null;
  newest: string | null;
  /** The longest stretch with no backup: between two backups, or from the period's start or to its end. */
  longestGap: { from: string; to: string; seconds: number } | null;
}

export interface AuditFailure {
  kind: 'drill' | 'restore';
  /** The drill, or the restore's scenario. */
  name: string;
  id: string;
  at: string;
  why: string;
  /** A drill run within a full-simulation: that run's id. */
  partOf: string | null;
  /** A restore's destination: a failed production restore is answered only by a production restore. */
  destination: 'production' | 'sandbox' | null;
  /** The next run of the same drill (restore of the same scenario and destination), whatever its outcome. */
  next: { id: string; at: string; outcome: string; afterSeconds: number } | null;
  /** The first later run that passed (completed). */
  nextPass: { id: string; at: string; afterSeconds: number } | null;
}

export type AuditFindingKind =
  | 'drill-never-ran'
  | 'drill-missed-runs'
  | 'failure-unresolved'
  | 'backup-gap'
  | 'location-unreachable'
  | 'audit-chain-broken'
  | 'unreadable-record';

export interface AuditFinding {
  kind: AuditFindingKind;
  text: string;
}

export interface AuditReport {
  format: typeof AUDIT_REPORT_FORMAT;
  target: string;
  year: number;
  generatedAt: string;
  /** The calendar year in UTC, ending at generatedAt when that is earlier. */
  period: { start: string; end: string; complete: boolean; days: number };
  verdict: 'CLEAN' | 'FINDINGS';
  findings: AuditFinding[];
  summary: {
    scheduled: number;
    missed: number;
    runs: number;
    passed: number;
    failed: number;
    restores: number;
    restoresFailed: number;
    killSwitchEvents: number;
    maxBackupGapDays: number;
  };
  drills: AuditDrillRow[];
  locations: AuditLocationRow[];
  restores: {
    count: number;
    byOutcome: Record<string, number>;
    byScenario: Record<string, { count: number; completed: number; failed: number }>;
    byDestination: { production: number; sandbox: number };
    /** Start of the plan to ready to trade, in seconds. */
    toReady: AuditStat;
  };
  killSwitch: {
    count: number;
    byAction: Record<string, { ok: number; refused: number; failed: number }>;
    events: Array<{ seq: number; at: string; actor: string; action: string; outcome: string; reason: string | null }>;
  };
  failures: AuditFailure[];
  auditChain: AuditChainSummary;
  unreadable: Array<{ key: string; problem: string }>;
}

/**
 * The middle value; for an even count, the mean of the two middle values (as a spreadsheet's
 * MEDIAN gives it, so an auditor's check agrees). Values are seconds to the millisecond, so
 * the mean is taken in whole milliseconds: it is exact, at worst a half millisecond.
 */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length % 2 === 1) return sorted[mid] as number;
  const ms = (v: number) => Math.round(v * 1000);
  return (ms(sorted[mid - 1] as number) + ms(sorted[mid] as number)) / 2 / 1000;
}

function stat(values: readonly number[]): AuditStat {
  return { measured: values.length, worst: values.length ? Math.max(...values) : null, median: median(values) };
}

/** Slots of a schedule in [from, to), and the first one after them (which closes the last one's window). */
function slotsOf(cron: CronSchedule, from: number, to: number): { slots: number[]; after: number | null } {
  const slots: number[] = [];
  // nextRun answers strictly after its argument: a minute earlier, so a slot at `from` counts.
  let next = nextRun(cron, new Date(from - 60_000));
  while (next && next.getTime() < to) {
    slots.push(next.getTime());
    next = nextRun(cron, next);
  }
  return { slots, after: next ? next.getTime() : null };
}

const iso = (ms: number) => new Date(ms).toISOString();
const dayOf = (ms: number) => iso(ms).slice(0, 10);
const secondsBetween = (a: number, b: number) => Math.round(b - a) / 1000;

/** A drill run: its report, its start, and the full-simulation it ran within (if any). */
interface Run {
  report: DrillReport;
  at: number;
  partOf: string | null;
}

/** Every single-drill run once: a full-simulation's nested reports are also stored one by one, with the same id. */
function flatten(reports: readonly DrillReport[], until: number): { runs: Run[]; simulations: Run[] } {
  const byId = new Map<string, Run>();
  const simulations = new Map<string, Run>();
  const add = (report: DrillReport, partOf: string | null) => {
    const at = Date.parse(report.started_at);
    if (Number.isNaN(at) || at > until || report.drill === AUDIT_DRILL) return;
    const known = byId.get(report.id);
    if (known) {
      known.partOf ??= partOf;
      return;
    }
    byId.set(report.id, { report, at, partOf });
  };
  for (const r of reports) {
    if (r.drill === 'full-simulation') {
      const at = Date.parse(r.started_at);
      if (!Number.isNaN(at) && at <= until) simulations.set(r.id, { report: r, at, partOf: null });
      // The drills a full-simulation ran count as runs of those drills: each was a real run,
      // measured and judged like a scheduled one.
      for (const d of r.drills ?? []) add(d, r.id);
    } else add(r, null);
  }
  const byTime = (a: Run, b: Run) => a.at - b.at || (a.report.id < b.report.id ? -1 : 1);
  return { runs: [...byId.values()].sort(byTime), simulations: [...simulations.values()].sort(byTime) };
}

/** Whether a run measured every target it is held to within it; a target it did not reach is not met. */
function metTargets(r: DrillReport): boolean {
  const rto = r.targets.rto_seconds;
  if (rto !== null && (r.measured.rto_seconds === null || r.measured.rto_seconds > rto)) return false;
  for (const [name, limit] of Object.entries(r.targets.rpo)) {
    if (limit === null || limit === undefined) continue;
    const value = r.measured.rpo[name as keyof typeof r.measured.rpo];
    if (value === null || value === undefined || value > limit) return false;
  }
  return true;
}

function drillRow(
  drill: DrillName,
  schedule: DrillSchedule | undefined,
  all: readonly Run[],
  start: number,
  end: number,
  generatedAt: number,
): AuditDrillRow {
  const def = DRILLS[drill];
  const inPeriod = all.filter((r) => r.at >= start && r.at < end);
  let missed = 0;
  let pending = 0;
  let firstMissed: number | null = null;
  let scheduled = 0;
  if (schedule) {
    const { slots, after } = slotsOf(schedule.cron, start, end);
    scheduled = slots.length;
    // A slot is answered by a run started from it until the next slot (the next run may come later than the period).
    let i = 0;
    slots.forEach((slot, n) => {
      const closes = (slots[n + 1] ?? after ?? Number.POSITIVE_INFINITY) - SLOT_SKEW_MS;
      while (i < all.length && (all[i] as Run).at < slot - SLOT_SKEW_MS) i++;
      if (i < all.length && (all[i] as Run).at < closes) return;
      if (closes > generatedAt && generatedAt - slot < SLOT_GRACE_MS) pending++;
      else {
        missed++;
        firstMissed ??= slot;
      }
    });
  }
  const rto = inPeriod.flatMap((r) => (r.report.measured.rto_seconds === null ? [] : [r.report.measured.rto_seconds]));
  const rpo = inPeriod.flatMap((r) => (r.report.measured.rpo_seconds === null ? [] : [r.report.measured.rpo_seconds]));
  const held = def.rto !== null || def.rpo.length > 0;
  const last = inPeriod.at(-1);
  return {
    drill,
    scenario: def.scenario,
    schedule: schedule?.cron.source ?? null,
    scheduled,
    missed,
    firstMissed: firstMissed === null ? null : iso(firstMissed),
    pending,
    runs: inPeriod.length,
    inSimulation: inPeriod.filter((r) => r.partOf !== null).length,
    passed: inPeriod.filter((r) => r.report.verdict === 'PASS').length,
    failed: inPeriod.filter((r) => r.report.verdict === 'FAIL').length,
    targetsMet: held ? inPeriod.filter((r) => metTargets(r.report)).length : null,
    rto: { ...stat(rto), target: last?.report.targets.rto_seconds ?? null },
    rpo: { ...stat(rpo), target: last?.report.targets.rpo_seconds ?? null },
    lastRun: last ? { id: last.report.id, at: last.report.started_at, verdict: last.report.verdict } : null,
  };
}

function locationRow(
  loc: LocationBackups,
  start: number,
  end: number,
  days: number,
  findings: AuditFinding[],
  maxGapDays: number,
): AuditLocationRow {
  const base = { location: loc.location, primary: loc.primary, days };
  if (!loc.reachable) {
    findings.push({
      kind: 'location-unreachable',
      text: `Location ${loc.location} could not be listed, so its backups are unaccounted for: ${loc.problem ?? 'no reason given'}.`,
    });
    return {
      ...base,
      reachable: false,
      problem: loc.problem ?? null,
      backups: null,
      verified: null,
      failedVerification: null,
      unverified: null,
      pruned: null,
      daysCovered: null,
      daysWithout: null,
      newest: null,
      longestGap: null,
    };
  }
  const times = loc.backups
    .map((b) => ({ ...b, t: Date.parse(b.createdAt) }))
    .filter((b) => !Number.isNaN(b.t))
    .sort((a, b) => a.t - b.t);
  const inPeriod = times.filter((b) => b.t >= start && b.t < end);
  const before = times.filter((b) => b.t < start).at(-1);
  // A backup from before the period opens the first stretch; without one, the period's start does.
  let from = before?.t ?? start;
  let longest: { from: number; to: number } | null = null;
  for (const t of [...inPeriod.map((b) => b.t), end]) {
    if (!longest || t - from > longest.to - longest.from) longest = { from, to: t };
    from = t;
  }
  const covered = new Set(inPeriod.map((b) => dayOf(b.t)));
  const daysWithout: string[] = [];
  for (let d = start; d < end; d += DAY_MS) if (!covered.has(dayOf(d))) daysWithout.push(dayOf(d));
  const gap = longest
    ? { from: iso(longest.from), to: iso(longest.to), seconds: secondsBetween(longest.from, longest.to) }
    : null;
  if (gap && gap.seconds > maxGapDays * 86_400) {
    findings.push({
      kind: 'backup-gap',
      text: `Location ${loc.location} went ${formatDays(gap.seconds)} without a backup (${gap.from} to ${gap.to}); at most ${maxGapDays} days are allowed.`,
    });
  }
  return {
    ...base,
    reachable: true,
    problem: null,
    backups: inPeriod.length,
    verified: inPeriod.filter((b) => !b.pruned && b.verified === true).length,
    failedVerification: inPeriod.filter((b) => !b.pruned && b.verified === false).length,
    unverified: inPeriod.filter((b) => !b.pruned && b.verified === null).length,
    pruned: inPeriod.filter((b) => b.pruned).length,
    daysCovered: covered.size,
    daysWithout,
    newest: times.at(-1)?.createdAt ?? null,
    longestGap: gap,
  };
}

function formatDays(seconds: number): string {
  const days = seconds / 86_400;
  return `${Number.isInteger(days) ? days : days.toFixed(1)} days`;
}

/** The drill failures of the period, each with the run that followed it and the first that passed. */
function drillFailures(runs: readonly Run[], start: number, end: number): AuditFailure[] {
  const out: AuditFailure[] = [];
  runs.forEach((r, i) => {
    if (r.report.verdict !== 'FAIL' || r.at < start || r.at >= end) return;
    const later = runs.slice(i + 1).filter((x) => x.report.drill === r.report.drill);
    const next = later[0];
    const pass = later.find((x) => x.report.verdict === 'PASS');
    out.push({
      kind: 'drill',
      name: r.report.drill,
      id: r.report.id,
      at: r.report.started_at,
      why: r.report.failure ?? 'failed (no reason recorded)',
      partOf: r.partOf,
      destination: null,
      next: next
        ? {
            id: next.report.id,
            at: next.report.started_at,
            outcome: next.report.verdict,
            afterSeconds: secondsBetween(r.at, next.at),
          }
        : null,
      nextPass: pass
        ? { id: pass.report.id, at: pass.report.started_at, afterSeconds: secondsBetween(r.at, pass.at) }
        : null,
    });
  });
  return out;
}

function restoreFailures(restores: ReadonlyArray<AuditRestoreInput & { at: number }>, start: number, end: number) {
  const out: AuditFailure[] = [];
  restores.forEach((r, i) => {
    if (r.outcome !== 'FAILED' || r.at < start || r.at >= end) return;
    // A failed production restore is answered by a production restore: a sandbox that came up says nothing about production.
    const later = restores
      .slice(i + 1)
      .filter((x) => x.scenario === r.scenario && x.destination.kind === r.destination.kind && x.outcome !== 'PLANNED');
    const next = later[0];
    const pass = later.find((x) => x.outcome === 'COMPLETED');
    out.push({
      kind: 'restore',
      name: r.scenario,
      id: r.id,
      at: r.startedAt,
      why: [r.failedStep, r.error?.message].filter(Boolean).join(': ') || 'failed (no reason recorded)',
      partOf: null,
      destination: r.destination.kind,
      next: next
        ? { id: next.id, at: next.startedAt, outcome: next.outcome, afterSeconds: secondsBetween(r.at, next.at) }
        : null,
      nextPass: pass ? { id: pass.id, at: pass.startedAt, afterSeconds: secondsBetween(r.at, pass.at) } : null,
    });
  });
  return out;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The year's audit report from its records. */
export function buildAuditReport(input: AuditReportInput): AuditReport {
  const { year } = input;
  if (!Number.isInteger(year) || year < 1970 || year > 9999) {
    throw new LifeboatError('INVALID_REQUEST', `audit report: year ${year} is not a calendar year`);
  }
  const generatedAt = input.generatedAt.getTime();
  const start = Date.UTC(year, 0, 1);
  const yearEnd = Date.UTC(year + 1, 0, 1);
  if (generatedAt <= start) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `audit report: ${year} has not begun at ${input.generatedAt.toISOString()}`,
      { hint: 'report on this year or an earlier one' },
    );
  }
  const end = Math.min(yearEnd, generatedAt);
  const days = Math.ceil((end - start) / DAY_MS);
  const maxGapDays = input.maxBackupGapDays ?? DEFAULT_MAX_BACKUP_GAP_DAYS;
  const findings: AuditFinding[] = [];

  // Drills: every drill of the catalog but this one, scheduled or not, in the catalog's order.
  const { runs, simulations } = flatten(input.drills, generatedAt);
  const schedules = new Map(input.schedules.map((s) => [s.drill, s]));
  const drills = DRILL_NAMES.filter((d) => d !== AUDIT_DRILL).map((d) =>
    drillRow(
      d,
      schedules.get(d),
      d === 'full-simulation' ? simulations : runs.filter((r) => r.report.drill === d),
      start,
      end,
      generatedAt,
    ),
  );
  for (const row of drills) {
    const judged = row.scheduled - row.pending;
    if (row.runs === 0 && row.missed > 0) {
      findings.push({
        kind: 'drill-never-ran',
        text: `${row.drill} was scheduled ${plural(judged, 'time')} in the period and never ran.`,
      });
    } else if (row.missed > 0) {
      findings.push({
        kind: 'drill-missed-runs',
        text: `${row.drill} missed ${row.missed} of its ${row.scheduled} scheduled runs (the first on ${row.firstMissed}).`,
      });
    }
  }

  // Restores, oldest first.
  const restores = input.restores
    .map((r) => ({ ...r, at: Date.parse(r.startedAt) }))
    .filter((r) => !Number.isNaN(r.at) && r.at <= generatedAt && r.outcome !== 'PLANNED')
    .sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1));
  const restoresInPeriod = restores.filter((r) => r.at >= start && r.at < end);
  const byOutcome: Record<string, number> = {};
  const byScenario: Record<string, { count: number; completed: number; failed: number }> = {};
  const byDestination = { production: 0, sandbox: 0 };
  for (const r of restoresInPeriod) {
    byOutcome[r.outcome] = (byOutcome[r.outcome] ?? 0) + 1;
    const s = byScenario[r.scenario] ?? { count: 0, completed: 0, failed: 0 };
    byScenario[r.scenario] = s;
    s.count++;
    if (r.outcome === 'COMPLETED') s.completed++;
    if (r.outcome === 'FAILED') s.failed++;
    byDestination[r.destination.kind]++;
  }
  const toReady = restoresInPeriod.flatMap((r) =>
    r.rto?.toReadyMs === null || r.rto?.toReadyMs === undefined ? [] : [r.rto.toReadyMs / 1000],
  );

  // Failures, and whether a pass followed. A full-simulation fails exactly when a drill in it
  // does; those drills are listed (with partOf), so the simulation itself is not listed again.
  const failures = [...drillFailures(runs, start, end), ...restoreFailures(restores, start, end)].sort(
    (a, b) => Date.parse(a.at) - Date.parse(b.at) || (a.id < b.id ? -1 : 1),
  );
  const unresolved = new Map<string, AuditFailure[]>();
  for (const f of failures) {
    if (f.nextPass) continue;
    const key = `${f.kind} ${f.name} ${f.destination ?? ''}`;
    unresolved.set(key, [...(unresolved.get(key) ?? []), f]);
  }
  for (const list of unresolved.values()) {
    const first = list[0] as AuditFailure;
    // The sentence names the failure; the failures list keeps the whole of it.
    const why = first.why.length > 200 ? `${first.why.slice(0, 199)}…` : first.why;
    const times = list.length > 1 ? ` (it failed ${list.length} times)` : '';
    findings.push({
      kind: 'failure-unresolved',
      text:
        first.kind === 'drill'
          ? `${first.name} failed on ${first.at} (${why}) and has not passed since${times}.`
          : `A ${first.name} restore into ${first.destination} failed on ${first.at} (${why}) and no later one completed${times}.`,
    });
  }

  // Backups per location.
  const locations = input.locations.map((l) => locationRow(l, start, end, days, findings, maxGapDays));

  // Kill-switch events of the period, oldest first.
  const events = input.killSwitchEvents
    .filter((e) => isKillSwitchAction(e.action))
    .map((e) => ({ ...e, t: Date.parse(e.at) }))
    .filter((e) => e.t >= start && e.t < end)
    .sort((a, b) => a.seq - b.seq);
  const byAction: AuditReport['killSwitch']['byAction'] = {};
  for (const e of events) {
    const counts = byAction[e.action] ?? { ok: 0, refused: 0, failed: 0 };
    byAction[e.action] = counts;
    counts[e.outcome]++;
  }

  // The audit trail.
  const chain = input.auditChain;
  if (!chain.ok) {
    const where = chain.firstBroken
      ? ` at entry ${chain.firstBroken.seq} in the ${chain.firstBroken.where}: ${chain.firstBroken.reason}`
      : '';
    findings.push({ kind: 'audit-chain-broken', text: `The audit trail's hash chain is broken${where}.` });
  }
  const unreadable = [...(input.unreadable ?? [])];
  if (unreadable.length) {
    findings.push({
      kind: 'unreadable-record',
      text: `${plural(unreadable.length, 'record')} of the period could not be read: ${unreadable
        .slice(0, 5)
        .map((u) => `${u.key} (${u.problem})`)
        .join('; ')}${unreadable.length > 5 ? '; …' : ''}.`,
    });
  }

  const sum = (f: (d: AuditDrillRow) => number) => drills.reduce((n, d) => n + f(d), 0);
  return {
    format: AUDIT_REPORT_FORMAT,
    target: input.target,
    year,
    generatedAt: input.generatedAt.toISOString(),
    period: { start: iso(start), end: iso(end), complete: end === yearEnd, days },
    verdict: findings.length ? 'FINDINGS' : 'CLEAN',
    findings,
    // The sums of the drill rows: a full-simulation counts once on its own row, and each drill
    // it ran once more on that drill's row.
    summary: {
      scheduled: sum((d) => d.scheduled),
      missed: sum((d) => d.missed),
      runs: sum((d) => d.runs),
      passed: sum((d) => d.passed),
      failed: sum((d) => d.failed),
      restores: restoresInPeriod.length,
      restoresFailed: byOutcome.FAILED ?? 0,
      killSwitchEvents: events.length,
      maxBackupGapDays: maxGapDays,
    },
    drills,
    locations,
    restores: {
      count: restoresInPeriod.length,
      byOutcome,
      byScenario,
      byDestination,
      toReady: stat(toReady),
    },
    killSwitch: {
      count: events.length,
      byAction,
      events: events.map((e) => ({
        seq: e.seq,
        at: e.at,
        actor: e.actor,
        action: e.action,
        outcome: e.outcome,
        reason: typeof e.details?.reason === 'string' ? e.details.reason : null,
      })),
    },
    failures,
    auditChain: chain,
    unreadable,
  };
}
