// Port: the target's trading database, as far as backups need it: a consistent snapshot
// into a file, and checks of such a file.
import type { DatabaseFacts } from '../schemas/manifest.js';

export interface DatabaseSnapshot {
  /** The snapshot file (a SQLite database, or a pg_dump custom-format dump). */
  file: string;
  /** Name of the entry in the archive, e.g. `trading.db` or `trading.dump`. */
  name: string;
  size: number;
  /**
   * Facts measured inside the snapshot itself: engine version, row counts, integrity. They
   * may still be being measured while the snapshot file is read (SQLite's are, on a thread
   * of their own), so a backup archives the file meanwhile and awaits them for its manifest.
   */
  facts: Promise<Omit<DatabaseFacts, 'path'>>;
  /** Engine position of the cut, when the engine has one. */
  position?: string;
  method: 'sqlite-backup-api' | 'pg_dump-snapshot';
}

export interface SnapshotInspection {
  integrity: { ok: boolean; detail: string };
  /** Row counts per table, when the file can be read without restoring it. */
  tables?: Record<string, number>;
}

export interface DatabaseEngine {
  readonly engine: 'sqlite' | 'postgres';
  /** Where the database is, for messages; never carries a password. */
  readonly location: string;
  /** Takes a consistent snapshot into a file under dir, without stopping writers. */
  snapshot(dir: string): Promise<DatabaseSnapshot>;
  /** Checks a snapshot file: the engine's own integrity check, and row counts where possible. */
  inspect(file: string): Promise<SnapshotInspection>;
}
