// Where things live in an object store (docs/FORMAT.md, "Object-store layout"). Keys are
// relative to the store's own prefix.

export const layout = {
  backupsPrefix: (target: string) => `${target}/backups/`,
  backupPrefix: (target: string, backupId: string) => `${target}/backups/${backupId}/`,
  manifest: (target: string, backupId: string) => `${target}/backups/${backupId}/manifest.json`,
  archive: (target: string, backupId: string, encrypted: boolean) =>
    `${target}/backups/${backupId}/archive.tar.gz${encrypted ? '.age' : ''}`,
  verification: (target: string, backupId: string, at: string, level: string) =>
    `${target}/backups/${backupId}/verifications/${at}-${level}.json`,
  verificationsPrefix: (target: string, backupId: string) => `${target}/backups/${backupId}/verifications/`,
  reconciliationsPrefix: (target: string) => `${target}/reports/reconciliation/`,
  /** `<stamp>` is the run's start (compact UTC), so keys sort by time. */
  reconciliation: (target: string, stamp: string, verdict: string) =>
    `${target}/reports/reconciliation/${stamp}-${verdict}.json`,
  /** Runs over books other than the target's own (sandboxes, --internal files): never kill-switch evidence. */
  reconciliationOfCopy: (target: string, stamp: string, verdict: string) =>
    `${target}/reports/reconciliation-copies/${stamp}-${verdict}.json`,
  restoresPrefix: (target: string) => `${target}/restores/`,
  /** A restore's result (not a dry run's): `<stamp>` is its start, compact UTC. */
  restoreRecord: (target: string, stamp: string, scenario: string) => `${target}/restores/${stamp}-${scenario}.json`,
  /** Continuous archiving of a PostgreSQL target (docs/FORMAT.md §10): one object and one record per WAL file. */
  walPrefix: (target: string) => `${target}/wal/postgres/`,
  /** `<name>` is the file name PostgreSQL archives: a segment, `.history`, `.backup` or `.partial` file. */
  walObject: (target: string, name: string, encrypted: boolean) =>
    `${target}/wal/postgres/${name}.gz${encrypted ? '.age' : ''}`,
  /** Written after its object: the commit marker of an archived WAL file. */
  walRecord: (target: string, name: string) => `${target}/wal/postgres/${name}.json`,
  baseBackupsPrefix: (target: string) => `${target}/basebackups/`,
  baseBackupArchive: (target: string, id: string, encrypted: boolean) =>
    `${target}/basebackups/${id}/base.tar.gz${encrypted ? '.age' : ''}`,
  /** Written after the archive, once the WAL the backup needs is archived: the commit marker. */
  baseBackupManifest: (target: string, id: string) => `${target}/basebackups/${id}/manifest.json`,
  drillsPrefix: (target: string) => `${target}/drills/`,
  /** `<id>` is `<compact UTC start>-<drill>`, so keys sort by time. */
  drillReport: (target: string, id: string) => `${target}/drills/${id}.json`,
  drillHtml: (target: string, id: string) => `${target}/drills/${id}.html`,
  auditReportsPrefix: (target: string) => `${target}/audit-reports/`,
  /** An annual audit report (docs/FORMAT.md §9): one per run, `<stamp>` its generatedAt (compact UTC), so none is overwritten. */
  auditReport: (target: string, year: number, stamp: string) => `${target}/audit-reports/${year}/${stamp}.json`,
  auditReportHtml: (target: string, year: number, stamp: string) => `${target}/audit-reports/${year}/${stamp}.html`,
  killSwitchRequestsPrefix: (target: string) => `${target}/kill-switch/requests/`,
  /** A request to deactivate, waiting for a second person's approval; `<id>` starts with its compact UTC time. */
  killSwitchRequest: (target: string, id: string) => `${target}/kill-switch/requests/${id}.json`,
  /** Continuous protection (docs/FORMAT.md §10): SQLite's log, in generations of a snapshot and numbered segments. */
  streamSqlitePrefix: (target: string) => `${target}/stream/sqlite/`,
  streamGenerationPrefix: (target: string, generation: string) => `${target}/stream/sqlite/${generation}/`,
  streamSnapshot: (target: string, generation: string, encrypted: boolean) =>
    `${target}/stream/sqlite/${generation}/snapshot.db.gz${encrypted ? '.age' : ''}`,
  /** Written after the snapshot: the generation's commit marker. */
  streamSnapshotRecord: (target: string, generation: string) => `${target}/stream/sqlite/${generation}/snapshot.json`,
  streamSegmentsPrefix: (target: string, generation: string) => `${target}/stream/sqlite/${generation}/wal/`,
  /** `<seq>` zero-padded to 12 digits, `<stamp>` the compact UTC time (ms) it was shipped. */
  streamSegment: (target: string, generation: string, seq: number, stamp: string, encrypted: boolean) =>
    `${target}/stream/sqlite/${generation}/wal/${String(seq).padStart(12, '0')}-${stamp}.seg${encrypted ? '.age' : ''}`,
  /** Append-only files: `<file>` is the file's path relative to the root, base64url. */
  streamFilesPrefix: (target: string) => `${target}/stream/files/`,
  streamFileSegment: (target: string, file: string, seq: number, stamp: string, encrypted: boolean) =>
    `${target}/stream/files/${file}/${String(seq).padStart(12, '0')}-${stamp}.seg${encrypted ? '.age' : ''}`,
  /**
   * PostgreSQL WAL streamed as the server writes it (`lifeboat ship`, docs/FORMAT.md §10):
   * per segment, pieces named by the byte offset they start at. What a restore takes for a
   * segment the archive does not hold yet.
   */
  streamPostgresPrefix: (target: string) => `${target}/stream/postgres/`,
  streamPostgresSegmentPrefix: (target: string, segment: string) => `${target}/stream/postgres/${segment}/`,
  streamPostgresPiece: (target: string, segment: string, offset: number, stamp: string, encrypted: boolean) =>
    `${target}/stream/postgres/${segment}/${String(offset).padStart(12, '0')}-${stamp}.seg${encrypted ? '.age' : ''}`,
  /** The audit trail is the store's, not a target's: `_` cannot begin a target name, so no target meets it. */
  auditPrefix: '_lifeboat/audit/',
  /** One entry per object; seq zero-padded to 12 digits, so keys sort by seq. */
  auditEntry: (seq: number) => `_lifeboat/audit/${String(seq).padStart(12, '0')}.json`,
  /** `{seq, hash}` of the newest entry: a shortcut for appends, checked against the entries. */
  auditHead: '_lifeboat/audit/HEAD.json',
} as const;

/** Splits `<target>/backups/<id>/<rest>` into its parts, or null for any other key. */
export function parseBackupKey(key: string): { target: string; backupId: string; rest: string } | null {
  const m = /^([^/]+)\/backups\/([^/]+)\/(.+)$/.exec(key);
  if (!m) return null;
  return { target: m[1] as string, backupId: m[2] as string, rest: m[3] as string };
}

/** The seq of an audit entry's key (`_lifeboat/audit/000000000042.json` → 42), or null for any other key. */
export function parseAuditKey(key: string): number | null {
  const m = /^_lifeboat\/audit\/(\d{12})\.json$/.exec(key);
  return m ? Number(m[1]) : null;
}

/** Splits a stream segment key's name (`<seq>-<stamp>.seg[.age]`) into its parts, or null. */
export function parseSegmentName(name: string): { seq: number; shippedAt: Date; encrypted: boolean } | null {
  const m = /^(\d{12})-(\d{8}T\d{9}Z)\.seg(\.age)?$/.exec(name);
  if (!m) return null;
  const s = m[2] as string;
  const shippedAt = new Date(
    `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}.${s.slice(15, 18)}Z`,
  );
  return { seq: Number(m[1]), shippedAt, encrypted: Boolean(m[3]) };
}

/** The compact UTC time with milliseconds used in segment keys (`20251125T020000123Z`). */
export function compactUtcMs(date: Date): string {
  return date.toISOString().replace(/[-:.]/g, '');
}
