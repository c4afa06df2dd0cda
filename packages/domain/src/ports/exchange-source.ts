// Port: the exchange's side of the books, as a snapshot in Lifeboat's format: from a
// target's `/exchange/*` routes, from ccxt, or from a file.
import type { ExchangeSnapshot, SnapshotPart } from '../schemas/reconcile.js';

export interface CollectedSnapshot {
  snapshot: ExchangeSnapshot;
  /** Why a part is marked incomplete (a source that errored or timed out). */
  errors: Partial<Record<SnapshotPart, string>>;
}

export interface ExchangeSource {
  /** What is asked, for messages and reports; never carries a key. */
  readonly location: string;
  /** True when the venue must be asked market by market and no markets are configured. */
  readonly needsSymbols?: boolean;
  /**
   * Collects a snapshot. A part that cannot be read is marked incomplete with its reason
   * (the reconciler then fails closed) rather than failing the whole collection.
   * `symbols` are the markets the internal books know, for venues that must be asked per market.
   */
  collect(hint: { symbols: readonly string[] }): Promise<CollectedSnapshot>;
}
