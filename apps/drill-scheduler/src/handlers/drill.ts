// The drill handler: runs one drill of the catalog (or all of them, for full-simulation)
// against a sandbox, measures RTO and RPO, scores them against the targets, and stores the
// report (JSON and a self-contained HTML page) in the object store.
import { alertSenderFromEnv, createKillSwitch, type ResolvedTarget } from '@lifeboat/adapters';
import {
  compactUtc,
  DRILL_REPORT_FORMAT,
  DRILLS,
  type DrillName,
  type DrillReport,
  DrillRequest,
  describeZodError,
  type KillSwitchReading,
  LifeboatError,
  layout,
  type RpoTargetName,
} from '@lifeboat/domain';
import type { DrillContext } from '../context.js';
import { annualAudit } from '../drills/audit.js';
import { backupVerify, reconciliation } from '../drills/checks.js';
import type { DrillRun, Measured } from '../drills/common.js';
import { killSwitchDrill, shadowFailover, vendorConnectivityLoss } from '../drills/live.js';
import { rpoUnderLoad } from '../drills/load.js';
import { coldRestore, databaseRestore, multiRegionFailover } from '../drills/restores.js';
import { Recorder, StepFailed } from '../recorder.js';
import { drillHistory, renderDrillHtml } from '../report/html.js';

type DrillFn = (run: DrillRun) => Promise<Measured>;

const RUNNERS: Record<Exclude<DrillName, 'full-simulation'>, DrillFn> = {
  'backup-verify': backupVerify,
  reconciliation,
  'database-restore': databaseRestore,
  'cold-restore': coldRestore,
  'kill-switch': killSwitchDrill,
  'shadow-failover': shadowFailover,
  'vendor-connectivity-loss': vendorConnectivityLoss,
  'annual-audit': annualAudit,
  'multi-region-failover': multiRegionFailover,
  'rpo-under-load': rpoUnderLoad,
};

/**
 * full-simulation's order: the restores first, while the newest backup is youngest. Not
 * annual-audit: it exercises no recovery, it reads the year's evidence; run inside the
 * quarterly simulation it would judge a year that has not ended four times a year.
 */
export const SIMULATION_ORDER: ReadonlyArray<Exclude<DrillName, 'full-simulation'>> = [
  'backup-verify',
  'database-restore',
  'cold-restore',
  'reconciliation',
  'kill-switch',
  'shadow-failover',
  'vendor-connectivity-loss',
];

export function parseDrillRequest(payload: unknown): DrillRequest {
  const parsed = DrillRequest.safeParse(payload);
  if (!parsed.success) throw new LifeboatError('INVALID_REQUEST', describeZodError(parsed.error, 'drill request'));
  return parsed.data;
}

export async function runDrill(payload: unknown, ctx: DrillContext): Promise<DrillReport> {
  const request = parseDrillRequest(payload);
  const config = ctx.runtime.loaded.config.drills;
  const target = ctx.runtime.target(request.target ?? config.target);
  const now = ctx.now ?? (() => new Date());
  if (request.drill !== 'full-simulation') {
    const report = await runOne(request.drill, request, target, ctx, now);
    await alert(ctx, report);
    return report;
  }

  const started = now();
  const reports: DrillReport[] = [];
  // Multi-region failover applies only where there is a second location (the runbook's "if applicable").
  const order: Array<Exclude<DrillName, 'full-simulation'>> = [...SIMULATION_ORDER];
  if (ctx.runtime.locations.length > 1) order.splice(order.indexOf('cold-restore') + 1, 0, 'multi-region-failover');
  // RPO under load, where the copy has a venue of its own to trade on and its database ships (SQLite).
  if (target.config.drills.sandbox?.venue && target.config.database?.engine === 'sqlite') {
    order.splice(order.indexOf('database-restore') + 1, 0, 'rpo-under-load');
  }
  for (const drill of order) reports.push(await runOne(drill, request, target, ctx, now));
  const failed = reports.filter((r) => r.verdict === 'FAIL');
  const def = DRILLS['full-simulation'];
  const report: DrillReport = {
    format: DRILL_REPORT_FORMAT,
    id: `${compactUtc(started)}-full-simulation`,
    drill: 'full-simulation',
    target: target.name,
    title: def.title,
    scenario: def.scenario,
    hypothesis: def.hypothesis,
    started_at: started.toISOString(),
    finished_at: now().toISOString(),
    verdict: failed.length ? 'FAIL' : 'PASS',
    failure: failed.length ? failed.map((r) => `${r.drill}: ${r.failure}`).join('; ') : null,
    measured: { rto_seconds: null, rpo_seconds: null, rpo: {} },
    targets: { rto_seconds: null, rpo_seconds: null, rpo: {} },
    steps: reports.map((r) => ({
      name: r.drill,
      status: r.verdict === 'PASS' ? 'PASSED' : 'FAILED',
      started_at: r.started_at,
      finished_at: r.finished_at,
      duration_ms: Date.parse(r.finished_at) - Date.parse(r.started_at),
      detail: r.failure ?? summary(r),
    })),
    evidence: { reports: reports.map((r) => layout.drillReport(target.name, r.id)) },
    drills: reports,
  };
  await store(ctx, report);
  await alert(ctx, report);
  return report;
}

/** A failed drill (or a missed target) is told through the webhook, once per report. */
async function alert(ctx: DrillContext, report: DrillReport): Promise<void> {
  if (report.verdict === 'PASS') return;
  const env = ctx.env ?? process.env;
  const sender =
    ctx.alerts === undefined ? alertSenderFromEnv(ctx.runtime.loaded.config.drills.webhookUrlEnv, env) : ctx.alerts;
  if (!sender) return;
  const missed = !(
    report.steps.some((s) => s.status === 'FAILED') ||
    report.drills?.some((d) => d.steps.some((s) => s.status === 'FAILED'))
  );
  const outcome = await sender.send({
    kind: missed ? 'target_missed' : 'drill_failed',
    target: report.target,
    drill: report.drill,
    report: layout.drillReport(report.target, report.id),
    failure: report.failure,
    text: `:rotating_light: Lifeboat drill ${report.drill} of ${report.target} FAILED: ${report.failure ?? 'see the report'} (report ${layout.drillReport(report.target, report.id)})`,
  });
  ctx.log[outcome.sent ? 'info' : 'warn'](
    { drill: report.drill, sent: outcome.sent, detail: outcome.detail },
    'drill: alert',
  );
}

function summary(r: DrillReport): string {
  const parts: string[] = [];
  if (r.measured.rto_seconds !== null)
    parts.push(`RTO ${r.measured.rto_seconds} s (target ${r.targets.rto_seconds} s)`);
  if (r.measured.rpo_seconds !== null)
    parts.push(`RPO ${r.measured.rpo_seconds} s (target ${r.targets.rpo_seconds} s)`);
  return parts.length ? parts.join(', ') : 'hypothesis held';
}

async function runOne(
  drill: Exclude<DrillName, 'full-simulation'>,
  request: DrillRequest,
  target: ResolvedTarget,
  ctx: DrillContext,
  now: () => Date,
): Promise<DrillReport> {
  const def = DRILLS[drill];
  const config = ctx.runtime.loaded.config.drills;
  const disasterAt = now();
  const rec = new Recorder(now, (s) => ctx.onStep?.(drill, s));
  const run: DrillRun = {
    ctx,
    request,
    drill,
    target,
    config,
    rec,
    disasterAt,
    env: ctx.env ?? process.env,
    now,
    cleanups: [],
  };
  ctx.log.info({ drill, target: target.name }, 'drill: start');

  // Stop condition: someone (or something) moving the production kill switch during a drill
  // means production is in play; the drill stops rather than measure over it.
  const killSwitch = (ctx.killSwitchFor ?? createKillSwitch)(target);
  const before = await killSwitch.status().catch(() => null);
  rec.guard = async () => {
    if (drill === 'kill-switch' && target.config.drills.killSwitchInProduction) return;
    const after = await killSwitch.status().catch(() => null);
    if (before && after && switchMoved(before, after)) {
      throw new StepFailed(
        'guard',
        `the production kill switch changed during the drill (${before.state} → ${after.state}): drill aborted, production left alone`,
      );
    }
  };

  let measured: Measured = { rto_seconds: null, rpo: {} };
  try {
    measured = await RUNNERS[drill](run);
  } catch (err) {
    // A step records its own failure; anything thrown outside one is recorded here.
    rec.failure ??=
      err instanceof StepFailed ? `${err.step}: ${err.message}` : err instanceof Error ? err.message : String(err);
  } finally {
    for (const cleanup of run.cleanups.reverse()) {
      await cleanup().catch((err: Error) =>
        ctx.log.warn({ drill, err: { message: err.message } }, 'drill: cleanup failed'),
      );
    }
  }

  const targets = config.targets;
  const rtoTarget = def.rto ? targets.rto[def.rto] : null;
  const rpoTargets: Partial<Record<RpoTargetName, number>> = {};
  for (const name of def.rpo) rpoTargets[name] = targets.rpo[name];
  const missed: string[] = [];
  if (!rec.failure) {
    if (rtoTarget !== null) {
      if (measured.rto_seconds === null) missed.push('RTO not reached: the recovery never got to ready');
      else if (measured.rto_seconds > rtoTarget)
        missed.push(`RTO ${measured.rto_seconds} s exceeds the target ${rtoTarget} s`);
    }
    for (const name of def.rpo) {
      const value = measured.rpo[name];
      const limit = rpoTargets[name] as number;
      if (value !== null && value !== undefined && value > limit) {
        missed.push(`RPO ${name} ${value} s exceeds the target ${limit} s`);
      }
    }
  }
  const finished = now();
  const orderRpo = measured.rpo.orderHistory ?? null;
  const report: DrillReport = {
    format: DRILL_REPORT_FORMAT,
    id: `${compactUtc(disasterAt)}-${drill}`,
    drill,
    target: target.name,
    title: def.title,
    scenario: def.scenario,
    hypothesis: def.hypothesis,
    started_at: disasterAt.toISOString(),
    finished_at: finished.toISOString(),
    verdict: rec.failure || missed.length ? 'FAIL' : 'PASS',
    failure: rec.failure ?? (missed.length ? missed.join('; ') : null),
    measured: {
      rto_seconds: measured.rto_seconds,
      ...(measured.rto_shadow_seconds !== undefined ? { rto_shadow_seconds: measured.rto_shadow_seconds } : {}),
      rpo_seconds: orderRpo,
      rpo: measured.rpo,
    },
    targets: {
      rto_seconds: rtoTarget,
      rpo_seconds: rpoTargets.orderHistory ?? null,
      rpo: rpoTargets,
    },
    steps: rec.steps,
    evidence: rec.evidence,
  };
  ctx.log[report.verdict === 'PASS' ? 'info' : 'warn'](
    { drill, target: target.name, verdict: report.verdict, failure: report.failure, measured: report.measured },
    'drill: done',
  );
  await store(ctx, report);
  return report;
}

function switchMoved(a: KillSwitchReading, b: KillSwitchReading): boolean {
  if (a.state !== b.state) return true;
  const at = (r: KillSwitchReading) => (r.file as { updated_at?: string } | null)?.updated_at ?? null;
  return at(a) !== null && at(b) !== null && at(a) !== at(b);
}

/**
 * The JSON report and its HTML page, under `<target>/drills/`. A store that does not answer
 * (the primary location down, which the failover drill may meet for real) loses the record,
 * not the drill: the report is still returned, saying it was not stored.
 */
async function store(ctx: DrillContext, report: DrillReport): Promise<void> {
  try {
    await storeReport(ctx, report);
  } catch (err) {
    if (!(err instanceof LifeboatError && err.code === 'STORE_UNREACHABLE')) throw err;
    report.evidence.notStored = err.message;
    ctx.log.error({ drill: report.drill, err: { message: err.message } }, 'drill: the report was not stored');
  }
}

async function storeReport(ctx: DrillContext, report: DrillReport): Promise<void> {
  const store = ctx.runtime.store;
  await store.put(layout.drillReport(report.target, report.id), Buffer.from(`${JSON.stringify(report, null, 1)}\n`));
  const history = await drillHistory(store, report.target).catch(() => []);
  await store.put(layout.drillHtml(report.target, report.id), Buffer.from(renderDrillHtml(report, history)));
}
