// The reconciliation report in the runbook's template, its verdict, and a terminal summary.
import {
  type ActionTaken,
  CHECK_NAMES,
  RECONCILIATION_REPORT_FORMAT,
  type ReconcileOutcome,
  type ReconciliationReport,
  type Verdict,
} from '../schemas/reconcile.js';

export interface ReportOptions {
  timestamp: string | Date;
  recoveryType: string;
  actionsTaken: ActionTaken[];
  /** Corrections were applied and the outcome is the re-run on the corrected books. */
  corrected: boolean;
  /** Who accepted the corrections; a corrected run is ready to trade only with one. */
  signOff?: string;
}

/** PASS with nothing broken and nothing corrected, PASS_WITH_CORRECTIONS when the corrected books pass, else FAIL. */
export function verdictOf(outcome: ReconcileOutcome, corrected: boolean): Verdict {
  const { BREAK, UNRESOLVED } = outcome.stats.items_by_status;
  if (BREAK + UNRESOLVED > 0) return 'FAIL';
  return corrected ? 'PASS_WITH_CORRECTIONS' : 'PASS';
}

export function buildReport(outcome: ReconcileOutcome, opts: ReportOptions): ReconciliationReport {
  const verdict = verdictOf(outcome, opts.corrected);
  const signOff = opts.signOff?.trim() || null;
  return {
    format: RECONCILIATION_REPORT_FORMAT,
    timestamp: typeof opts.timestamp === 'string' ? opts.timestamp : opts.timestamp.toISOString(),
    recovery_type: opts.recoveryType,
    checks: { ...outcome.checks },
    discrepancies: outcome.discrepancies,
    actions_taken: opts.actionsTaken,
    ready_to_trade: verdict === 'PASS' || (verdict === 'PASS_WITH_CORRECTIONS' && signOff !== null),
    verdict,
    items: outcome.items,
    stats: outcome.stats,
    sign_off: signOff,
  };
}

const SHOWN_DISCREPANCIES = 20;

/** A summary for a terminal: each check, the counts, the first discrepancies, the verdict. */
export function formatReportSummary(report: ReconciliationReport): string {
  const s = report.stats;
  const lines: string[] = [`Reconciliation ${report.timestamp} (${report.recovery_type})`];
  for (const check of CHECK_NAMES) {
    const c = s.items_by_check[check];
    lines.push(
      `  ${check.padEnd(20)} ${report.checks[check].padEnd(4)}  ${c.MATCHED} matched, ${c.WITHIN_TOLERANCE} within tolerance, ${c.BREAK} break, ${c.UNRESOLVED} unresolved`,
    );
  }
  lines.push(
    `Compared: ${s.orders_compared} orders, ${s.fills_compared} fills, ${s.trades_compared} trades, ${s.positions_compared} positions, P&L of ${s.pnl_symbols_compared} symbols`,
  );
  const notJudged = [
    `${s.in_flight_skipped} in flight`,
    `${s.outside_window} before the snapshot's window`,
    `${s.not_judged_incomplete} in incomplete snapshot parts`,
  ];
  lines.push(`Not judged: ${notJudged.join(', ')}`);
  if (s.fees_not_valued) lines.push(`Fees in other assets, not in the recomputed P&L: ${s.fees_not_valued}`);

  lines.push(`Discrepancies: ${report.discrepancies.length}`);
  for (const d of report.discrepancies.slice(0, SHOWN_DISCREPANCIES)) lines.push(`  - ${d.kind}: ${d.detail}`);
  if (report.discrepancies.length > SHOWN_DISCREPANCIES) {
    lines.push(`  … and ${report.discrepancies.length - SHOWN_DISCREPANCIES} more in the report`);
  }

  if (report.actions_taken.length) {
    const byKind = new Map<string, number>();
    for (const a of report.actions_taken) byKind.set(a.kind, (byKind.get(a.kind) ?? 0) + 1);
    lines.push(
      `Actions taken: ${report.actions_taken.length} (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')})`,
    );
  } else {
    lines.push('Actions taken: none');
  }

  lines.push(`Verdict: ${report.verdict}`);
  let ready = report.ready_to_trade ? 'YES' : 'NO';
  if (report.ready_to_trade && report.sign_off) ready += ` (signed off by ${report.sign_off})`;
  else if (!report.ready_to_trade && report.verdict === 'PASS_WITH_CORRECTIONS')
    ready += ' (corrections need a sign-off)';
  else if (!report.ready_to_trade) ready += ' (resolve the discrepancies and run again)';
  lines.push(`Ready to trade: ${ready}`);
  return lines.join('\n');
}
