// Reconciliation of the internal books against an exchange snapshot, as a pure function:
// the runbook's four checks, their items and discrepancies, and a correction plan.
import { restoreFastStringMethods } from '../fast-strings.js';
import {
  type Books,
  CHECK_NAMES,
  type ChecksResult,
  type Discrepancy,
  type ExchangeSnapshot,
  parseReconcileSettings,
  type ReconcileOutcome,
  type ReconcileSettingsInput,
} from '../schemas/reconcile.js';
import { Run } from './context.js';
import { buildPlan } from './corrections.js';
import { checkFills, checkOrders } from './orders.js';
import { checkPnl, groupFills } from './pnl.js';
import { checkPositions } from './positions.js';

export { applyCorrections, describeOrder } from './corrections.js';
export { buildReport, formatReportSummary, type ReportOptions, verdictOf } from './report.js';

/** The engine's own integrity check; null when it could not run. */
export type IntegrityInput = { ok: boolean; detail: string } | 'not-applicable' | null;

export interface ReconcileInput {
  books: Books;
  exchange: ExchangeSnapshot;
  /** `not-applicable` for books read from a file, with no database behind them. */
  integrity: IntegrityInput;
  settings?: ReconcileSettingsInput;
  recoveryType?: string;
  now?: Date;
}

export interface ReconcileResult extends ReconcileOutcome {
  /** When the run happened (input.now, else the clock). */
  at: string;
  recovery_type: string | null;
}

function checkIntegrity(run: Run, integrity: IntegrityInput): void {
  const base = { check: 'database_integrity' as const, key: 'database' };
  if (integrity === 'not-applicable') {
    run.add({ ...base, status: 'MATCHED', rule: 'no database' });
  } else if (integrity === null) {
    const d: Discrepancy = {
      check: 'database_integrity',
      kind: 'database_integrity_failed',
      detail: 'the integrity check could not run, so the database is not known to be sound',
    };
    run.add({ ...base, status: 'UNRESOLVED', rule: 'the engine integrity check passes' }, [d]);
  } else if (integrity.ok) {
    run.add({ ...base, status: 'MATCHED', internal: integrity.detail, rule: 'the engine integrity check passes' });
  } else {
    const d: Discrepancy = {
      check: 'database_integrity',
      kind: 'database_integrity_failed',
      internal: integrity.detail,
      detail: `the integrity check failed: ${integrity.detail}`,
    };
    run.add({ ...base, status: 'BREAK', internal: integrity.detail, rule: 'the engine integrity check passes' }, [d]);
  }
}

/** The venue as the kill switch would leave it: every order still working, cancelled. */
function asHalted(exchange: ExchangeSnapshot): ExchangeSnapshot {
  return {
    ...exchange,
    orders: exchange.orders.map((o) =>
      o.status === 'OPEN' || o.status === 'PARTIALLY_FILLED' ? { ...o, status: 'CANCELED' as const } : o,
    ),
  };
}

/**
 * Reconciles the books against the exchange. Nothing is changed: the corrections are a plan
 * (see applyCorrections), and a check passes only when every one of its items is MATCHED or
 * WITHIN_TOLERANCE.
 */
export function reconcile(input: ReconcileInput): ReconcileResult {
  restoreFastStringMethods();
  const settings = parseReconcileSettings(input.settings);
  const exchange = settings.openOrdersAsCancelled ? asHalted(input.exchange) : input.exchange;
  const run = new Run(input.books, exchange, settings);

  checkIntegrity(run, input.integrity);
  checkPositions(run);
  checkOrders(run);
  const fills = input.books.fills;
  const fillMs = run.fillMs;
  checkFills(run, fillMs);
  const groups = groupFills(run, fillMs);
  const pnl = checkPnl(run, groups, fillMs);
  const corrections = buildPlan(run, groups, fillMs, pnl);

  const checks = {} as ChecksResult;
  const byCheck = {} as ReconcileResult['stats']['items_by_check'];
  for (const check of CHECK_NAMES) {
    const counts = run.statusCounts(check);
    byCheck[check] = counts;
    checks[check] = counts.BREAK + counts.UNRESOLVED === 0 ? 'PASS' : 'FAIL';
  }

  return {
    checks,
    items: run.items,
    discrepancies: run.discrepancies,
    stats: {
      items_by_status: run.statusCounts(),
      items_by_check: byCheck,
      items_listed: run.items.length,
      internal_orders: input.books.orders.length,
      internal_fills: fills.length,
      internal_positions: input.books.positions.length,
      exchange_orders: exchange.orders.length,
      exchange_trades: input.exchange.trades.length,
      exchange_positions: input.exchange.positions.length,
      ...run.counters,
    },
    corrections,
    at: (input.now ?? new Date()).toISOString(),
    recovery_type: input.recoveryType ?? null,
  };
}
