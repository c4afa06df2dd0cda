// The drills that restore: a corrupted database (database-restore) and a lost host
// (cold-restore), each into a sandbox from the newest backup, reconciled with the exchange.
import type { RestoreResult } from '@lifeboat/domain';
import { check, StepFailed } from '../recorder.js';
import {
  auditLogRpo,
  type DrillRun,
  type Measured,
  newestBackup,
  orderHistoryRpo,
  reportsRpo,
  restoreIntoSandbox,
  seconds,
} from './common.js';
import { healthOf, startCopyFrom } from './live.js';

async function pickBackup(run: DrillRun): Promise<string> {
  const { backup } = await run.rec.step('pick-backup', async () => {
    const picked = await newestBackup(run);
    const age = seconds(run.disasterAt.getTime() - Date.parse(picked.backup.createdAt));
    return {
      ...picked,
      detail: `${picked.taken ? 'took' : 'newest is'} ${picked.backup.backupId} (${age} s before the disaster)`,
      evidence: {
        backupId: picked.backup.backupId,
        backupCreatedAt: picked.backup.createdAt,
        backupTaken: picked.taken,
      },
    };
  });
  return backup.backupId;
}

/** The restore, step by step, as the drill's own steps (named restore:<step>). */
async function restoreSteps(
  run: DrillRun,
  scenario: 'db-corruption' | 'server-loss',
  backupId: string,
  avoid: readonly string[] = [],
) {
  const { result } = await run.rec.step('restore', async () => {
    const r = await restoreIntoSandbox(run, scenario, backupId, avoid);
    const evidence = {
      restore: {
        scenario: r.scenario,
        outcome: r.outcome,
        destination: r.destination,
        backupId: r.backupId,
        location: r.location,
        steps: r.steps.map((s) => ({
          name: s.name,
          status: s.status,
          durationMs: s.durationMs ?? null,
          outcome: s.outcome ?? null,
        })),
      },
    };
    if (r.outcome !== 'COMPLETED') {
      Object.assign(run.rec.evidence, evidence);
      throw new StepFailed(
        'restore',
        `restore ${scenario} into a sandbox failed at step ${r.failedStep}: ${r.error?.message ?? 'no message'}`,
      );
    }
    const from = r.location ? ` from ${r.location}` : '';
    return {
      result: r,
      detail: `${scenario} of ${r.backupId}${from} into ${r.destination.root}: ${r.outcome}`,
      evidence,
    };
  });
  return result;
}

/** The sandbox books reconciled with the exchange, corrected: when they are ready to trade is the RTO. */
async function reconciled(run: DrillRun, result: RestoreResult): Promise<number> {
  const { at } = await run.rec.step('reconcile', async () => {
    const books = result.destination.database;
    // Never the target's own books: a sandbox with none has nothing to reconcile.
    if (!books) throw new StepFailed('reconcile', 'the sandbox has no database to reconcile');
    if (!run.target.config.exchange && !run.target.config.api) {
      throw new StepFailed('reconcile', `targets.${run.target.name} has no exchange source: never ready to trade`);
    }
    const r = await run.ctx.jobs.reconcile({
      target: run.target.name,
      recoveryType: `drill ${run.drill}`,
      internal: books,
      apply: true,
      // Production keeps trading on the venue: its working orders are taken as the kill
      // switch of a real recovery would leave them, cancelled.
      settings: { openOrdersAsCancelled: true },
      // A drill's sign-off is the drill's own: in production a person gives it.
      signOff: `drill ${run.drill} (automatic)`,
      requestedBy: `drill:${run.request.requestedBy}`,
    });
    const report = r.report;
    const evidence = {
      reconciliation: {
        verdict: report.verdict,
        readyToTrade: report.ready_to_trade,
        checks: report.checks,
        corrections: report.actions_taken.length,
        discrepancies: report.discrepancies.slice(0, 20),
        reportKey: r.reportKey,
      },
    };
    Object.assign(run.rec.evidence, evidence);
    check(
      report.ready_to_trade,
      'reconcile',
      `${report.verdict}, not ready to trade: ${[...new Set(report.discrepancies.map((d) => d.kind))].join(', ')}`,
    );
    return {
      at: Date.now(),
      detail: `${report.verdict} with ${report.actions_taken.length} correction(s) to the sandbox books: ready to trade`,
      evidence,
    };
  });
  return seconds(at - run.disasterAt.getTime());
}

function shadowRto(run: DrillRun, result: RestoreResult): number | null {
  const start = Date.parse(result.startedAt) - run.disasterAt.getTime();
  return result.rto.toHealthyShadowMs === null ? null : seconds(start + result.rto.toHealthyShadowMs);
}

export async function databaseRestore(run: DrillRun): Promise<Measured> {
  const backupId = await pickBackup(run);
  const result = await restoreSteps(run, 'db-corruption', backupId);
  const rpo = await run.rec.step('measure-rpo', async () => {
    const r = await orderHistoryRpo(run, result);
    return { ...r, detail: `newest order kept: ${r.newest ?? 'none'}`, evidence: { newestOrderAt: r.newest } };
  });
  const ready = await reconciled(run, result);
  return { rto_seconds: ready, rto_shadow_seconds: shadowRto(run, result), rpo: { orderHistory: rpo.rpo } };
}

export async function coldRestore(run: DrillRun): Promise<Measured> {
  const backupId = await pickBackup(run);
  const result = await restoreSteps(run, 'server-loss', backupId);
  const rpo = await run.rec.step('measure-rpo', async () => {
    const orders = await orderHistoryRpo(run, result);
    const audit = await auditLogRpo(run, result.destination.root);
    const reports = await reportsRpo(run, result.destination.root);
    return {
      orders,
      audit,
      reports,
      detail: `newest order ${orders.newest ?? 'none'}, audit event ${audit.newest ?? 'none'}, report ${reports.newest ?? 'none'}`,
      evidence: { newestOrderAt: orders.newest, newestAuditEventAt: audit.newest, newestReport: reports },
    };
  });
  // The rebuilt host runs the target in shadow mode before it reconciles, as the runbook's
  // recovery does: a copy started from the sandbox (when the target says how to run one).
  let shadow: number | null = null;
  if (run.target.config.drills.sandbox) {
    shadow = await run.rec
      .step('start-shadow', async () => {
        const copy = await startCopyFrom(run, result, false);
        const body = (await healthOf(copy.apiUrl)) ?? {};
        check(body.mode === 'shadow', 'start-shadow', `healthy, but in ${body.mode ?? 'an unknown'} mode`);
        check(
          body.kill_switch === 'ON',
          'start-shadow',
          `healthy, but the kill switch is ${body.kill_switch ?? 'unknown'}`,
        );
        const at = seconds(Date.now() - run.disasterAt.getTime());
        return {
          at,
          detail: `a copy healthy in shadow mode with the kill switch ON on ${copy.apiUrl}, ${at} s after the disaster`,
        };
      })
      .then((o) => o.at);
  }
  const ready = await reconciled(run, result);
  return {
    rto_seconds: ready,
    rto_shadow_seconds: shadow,
    rpo: { orderHistory: rpo.orders.rpo, auditLogs: rpo.audit.rpo, reports: rpo.reports.rpo },
  };
}

/**
 * The primary location made unavailable: the restore must find the newest verified copy in
 * another location on its own (as it would with the primary down), and the sandbox it makes
 * from that copy must reconcile within the database-restore RTO. The primary is taken out by
 * the request (`avoid`), not by breaking it: production backups and the records the drill
 * writes stay where they are.
 */
export async function multiRegionFailover(run: DrillRun): Promise<Measured> {
  const primary = run.ctx.runtime.locations.find((l) => l.primary);
  const others = run.ctx.runtime.locations.filter((l) => !l.primary);
  await run.rec.step('make-primary-unavailable', async () => {
    if (!primary || others.length === 0) {
      throw new StepFailed(
        'make-primary-unavailable',
        `lifeboat.yaml configures no backup location besides the primary store: there is nothing to fail over to (add one under \`locations:\`)`,
      );
    }
    return {
      detail: `${primary.name} (${primary.store.location}) is unavailable to the restore; it may use ${others.map((o) => o.name).join(', ')}`,
      evidence: {
        unavailable: primary.name,
        candidates: others.map((o) => ({ name: o.name, store: o.store.location })),
      },
    };
  });
  const avoid = [primary?.name ?? 'primary'];
  const result = await restoreSteps(run, 'db-corruption', 'latest', avoid);
  await run.rec.step('check-location', async () => {
    check(
      result.location !== null && !avoid.includes(result.location),
      'check-location',
      `the restore took its backup from ${result.location ?? 'nowhere'}, not from another location`,
    );
    const select = result.steps.find((s) => s.name === 'select-backup');
    return {
      detail: `backup ${result.backupId} came from ${result.location}: ${select?.outcome ?? ''}`,
      evidence: { backupId: result.backupId, location: result.location },
    };
  });
  const rpo = await run.rec.step('measure-rpo', async () => {
    const r = await orderHistoryRpo(run, result);
    return { ...r, detail: `newest order kept: ${r.newest ?? 'none'}`, evidence: { newestOrderAt: r.newest } };
  });
  const ready = await reconciled(run, result);
  return { rto_seconds: ready, rto_shadow_seconds: shadowRto(run, result), rpo: { orderHistory: rpo.rpo } };
}
