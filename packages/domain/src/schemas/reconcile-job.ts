// The reconcile job: what a restore plan, a drill or the CLI asks the reconciler for, and
// what it answers (the report, where it was stored, and where each side was read).
import { z } from 'zod';
import { TargetName } from './backup.js';
import type { ReconciliationReport, SnapshotPart } from './reconcile.js';

export const ReconcileRequest = z
  .object({
    /** The configured target; needed unless both sides are files. */
    target: TargetName.optional(),
    /** The report's recovery_type: app-crash, db-corruption, server-loss, drill, manual… */
    recoveryType: z.string().min(1).max(64).default('manual'),
    /** Books from here instead of the target's database: a books file, a SQLite file or a PostgreSQL URL. */
    internal: z.string().min(1).optional(),
    /** Instead of the target's configured exchange source: a snapshot file, or the `http(s)://` API of a target whose /exchange/* routes to ask (a drill's sandbox copy). */
    exchange: z.string().min(1).optional(),
    /** Correct what can be corrected (backfill fills, take the exchange's order states, rebuild positions). */
    apply: z.boolean().default(false),
    /** Who accepts corrections; a corrected run is ready to trade only with a sign-off. */
    signOff: z.string().min(1).max(200).optional(),
    /** Overrides of the reconciliation settings (tolerances, ages, items). */
    settings: z.record(z.string(), z.unknown()).optional(),
    /** Store the report in the object store (default when a configuration is loaded). */
    store: z.boolean().default(true),
    requestedBy: z.string().min(1).max(200).default('unknown'),
  })
  .strict();
export type ReconcileRequest = z.infer<typeof ReconcileRequest>;
export type ReconcileRequestInput = z.input<typeof ReconcileRequest>;

export interface ReconcileJobResult {
  target: string | null;
  report: ReconciliationReport;
  /** Object-store key of the stored report, or null when it was not stored. */
  reportKey: string | null;
  /** Why a report that was to be stored is not (its store was unreachable): it is no evidence for the kill switch. */
  notStored?: string;
  /** Where the books were read and where the exchange was asked (no credentials). */
  sources: { internal: string; exchange: string };
  /** Why a snapshot part is incomplete, when one is. */
  sourceErrors: Partial<Record<SnapshotPart, string>>;
  /** Where corrected books went, for a books file with --apply. */
  correctedFile?: string;
  durationMs: number;
}
