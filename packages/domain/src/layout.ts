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
  drillsPrefix: (target: string) => `${target}/drills/`,
  /** `<id>` is `<compact UTC start>-<drill>`, so keys sort by time. */
  drillReport: (target: string, id: string) => `${target}/drills/${id}.json`,
  drillHtml: (target: string, id: string) => `${target}/drills/${id}.html`,
  killSwitchRequestsPrefix: (target: string) => `${target}/kill-switch/requests/`,
  /** A request to deactivate, waiting for a second person's approval; `<id>` starts with its compact UTC time. */
  killSwitchRequest: (target: string, id: string) => `${target}/kill-switch/requests/${id}.json`,
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
