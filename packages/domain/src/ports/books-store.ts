// Port: a target's books (orders, fills, positions, balances) as the reconciler reads and
// corrects them: from its trading database through a schema profile, or from a books file.
import type { ActionTaken, Books, CorrectionPlan } from '../schemas/reconcile.js';

export interface BooksStore {
  /** What is read, for messages and reports; never carries a password. */
  readonly location: string;
  /** The engine's own integrity check; 'not-applicable' for a books file. */
  integrity(): Promise<{ ok: boolean; detail: string } | 'not-applicable'>;
  /** Reads the books, validated (an error names the record and the field). */
  read(): Promise<Books>;
  /** When the newest order was created (ISO-8601), null with none: what a restore kept (its RPO). */
  newestOrderAt(): Promise<string | null>;
  /** Applies a correction plan in one transaction; returns what was done. Idempotent. */
  apply(plan: CorrectionPlan): Promise<ActionTaken[]>;
  close(): Promise<void>;
}
