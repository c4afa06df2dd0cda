// The drills that check without restoring: the newest backup verified in full
// (backup-verify), and the target's books reconciled with the exchange (reconciliation).
import { verifyBackup } from '@lifeboat/backup';
import { check } from '../recorder.js';
import { type DrillRun, type Measured, newestBackup, seconds } from './common.js';

export async function backupVerify(run: DrillRun): Promise<Measured> {
  const { backup } = await run.rec.step('pick-backup', async () => {
    // The newest, even one a check already found damaged: this drill is the check.
    const picked = await newestBackup(run, { usable: false });
    return {
      ...picked,
      detail: `${picked.taken ? 'took' : 'newest is'} ${picked.backup.backupId}, made ${picked.backup.createdAt}`,
      evidence: { backupId: picked.backup.backupId, backupCreatedAt: picked.backup.createdAt },
    };
  });
  await run.rec.step('verify-full', async () => {
    const record = await verifyBackup(run.ctx.runtime, run.target.name, backup.backupId, 'full', { log: run.ctx.log });
    const evidence = {
      verification: {
        ok: record.ok,
        durationMs: record.durationMs,
        problems: record.problems,
        checks: record.checks.length,
      },
    };
    Object.assign(run.rec.evidence, evidence);
    check(record.ok, 'verify-full', `backup ${backup.backupId} failed verification: ${record.problems.join('; ')}`);
    return { detail: `${record.checks.length} checks passed in ${seconds(record.durationMs)} s`, evidence };
  });
  // Age of the newest backup at the drill's start: what a disaster now would lose.
  return { rto_seconds: null, rpo: { orderHistory: seconds(run.disasterAt.getTime() - Date.parse(backup.createdAt)) } };
}

export async function reconciliation(run: DrillRun): Promise<Measured> {
  await run.rec.step('reconcile', async () => {
    const ask = () =>
      run.ctx.jobs.reconcile({
        target: run.target.name,
        recoveryType: `drill ${run.drill}`,
        apply: false,
        store: true,
        requestedBy: `drill:${run.request.requestedBy}`,
      });
    let result = await ask();
    // The target trades while it is read: its books and the venue are two moving pictures.
    // A position break seen once is asked again after the in-flight window; a real break is
    // still there, one made of the two reads' timing is not. Both reports are kept.
    let firstReport: string | null = null;
    const onlyPositions =
      result.report.verdict === 'FAIL' &&
      result.report.discrepancies.length > 0 &&
      result.report.discrepancies.every((d) => d.kind === 'position_mismatch');
    if (onlyPositions) {
      firstReport = result.reportKey;
      const settings = run.target.config.reconcile?.settings as { inFlightThresholdMs?: number } | undefined;
      await new Promise((r) => setTimeout(r, (settings?.inFlightThresholdMs ?? 5000) + 250));
      result = await ask();
    }
    const r = result.report;
    const evidence = {
      reconciliation: {
        verdict: r.verdict,
        readyToTrade: r.ready_to_trade,
        checks: r.checks,
        discrepancies: r.discrepancies.length,
        reportKey: result.reportKey,
        ...(firstReport ? { positionBreakAskedAgain: { firstReport } } : {}),
      },
    };
    Object.assign(run.rec.evidence, evidence);
    check(
      r.verdict === 'PASS',
      'reconcile',
      `${r.verdict}: ${r.discrepancies.length} discrepancies (${[...new Set(r.discrepancies.map((d) => d.kind))].join(', ')})`,
    );
    return {
      detail: `PASS: ${r.stats.items_listed} items listed, report ${result.reportKey ?? 'not stored'}`,
      evidence,
    };
  });
  return { rto_seconds: null, rpo: {} };
}
