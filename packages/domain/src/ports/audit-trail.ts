// Port: the tamper-evident audit trail, an append-only chain of who did what (docs/FORMAT.md §8).
import type { AuditEntry, AuditEventInput } from '../audit.js';

export interface AuditTrail {
  /** Records an event as the entry after the newest, chained to it by hash; returns the entry as stored. */
  append(event: AuditEventInput): Promise<AuditEntry>;
  /** Entries in seq order: those after afterSeq (default 0), at most limit of them (default all). */
  list(options?: { afterSeq?: number; limit?: number }): Promise<AuditEntry[]>;
}
