// Backup ids: sortable by time, readable, unique (`20251125T020000Z-full-3f9a`).
import type { BackupKind } from './schemas/backup.js';

const BACKUP_ID = /^(\d{8}T\d{6}Z)-(full|database|state|pre-change)-([0-9a-f]{4,12})$/;

/** Formats a time as the compact UTC stamp used in ids and job ids. */
export function compactUtc(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** A new backup id for a cut taken at `at`; `suffix` is random hex (given by the caller). */
export function makeBackupId(at: Date, kind: BackupKind, suffix: string): string {
  if (!/^[0-9a-f]{4,12}$/.test(suffix)) throw new Error(`backup id suffix must be 4-12 hex digits, got "${suffix}"`);
  return `${compactUtc(at)}-${kind}-${suffix}`;
}

export function isBackupId(value: string): boolean {
  return BACKUP_ID.test(value);
}

/** The time a backup id was cut at, or null when the value is not a backup id. */
export function backupIdTime(id: string): Date | null {
  const m = BACKUP_ID.exec(id);
  if (!m?.[1]) return null;
  const s = m[1];
  return new Date(
    `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`,
  );
}

/** Deterministic job id for a scheduled backup, so a CronJob that fires twice makes one backup. */
export function scheduledBackupJobId(target: string, scheduledAt: Date): string {
  return `backup:${target}:${compactUtc(scheduledAt)}`;
}
