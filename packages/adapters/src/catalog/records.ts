// What the catalog holds, read from the store's objects (the store is the source of truth):
// backups (with their newest verification), restores, reconciliations, drills, and the
// audit events those records carry.
import { parseBackupKey } from '@lifeboat/domain';

export interface BackupRow {
  key: string;
  target: string;
  backup_id: string;
  created_at: string;
  kind: string;
  bytes: number | null;
  encrypted: boolean;
  doc: unknown;
}

export interface VerificationRow {
  target: string;
  backup_id: string;
  at: string;
  level: string;
  ok: boolean;
}

export interface RestoreRow {
  key: string;
  target: string;
  scenario: string;
  outcome: string;
  started_at: string;
  backup_id: string | null;
  to_ready_ms: number | null;
  ready_to_trade: boolean;
  doc: unknown;
}

export interface ReconciliationRow {
  key: string;
  target: string;
  at: string;
  verdict: string;
  ready_to_trade: boolean;
  /** A run over other books (a sandbox, a file): never evidence for the kill switch. */
  of_copy: boolean;
  doc: unknown;
}

export interface DrillRow {
  key: string;
  target: string;
  drill_id: string;
  drill: string;
  started_at: string;
  verdict: string;
  rto_seconds: number | null;
  rpo_seconds: number | null;
  doc: unknown;
}

export interface AuditEventRow {
  /** `<record key>#<n>`: the same record always gives the same events. */
  id: string;
  target: string;
  at: string;
  event: string;
  detail: string;
  source_key: string;
}

export type CatalogRecord =
  | { kind: 'backup'; row: BackupRow }
  | { kind: 'verification'; row: VerificationRow }
  | { kind: 'restore'; row: RestoreRow; events: AuditEventRow[] }
  | { kind: 'reconciliation'; row: ReconciliationRow; events: AuditEventRow[] }
  | { kind: 'drill'; row: DrillRow; events: AuditEventRow[] };

/** Whether a key is one the catalog reads. */
export function isCatalogKey(key: string): boolean {
  return (
    /^[^/]+\/backups\/[^/]+\/(manifest\.json|verifications\/[^/]+\.json)$/.test(key) ||
    /^[^/]+\/(restores|drills|reports\/reconciliation|reports\/reconciliation-copies)\/[^/]+\.json$/.test(key)
  );
}

type Doc = Record<string, unknown>;
const str = (v: unknown, fallback = ''): string => (typeof v === 'string' ? v : fallback);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The record an object stands for, or null for a key the catalog does not read. */
export function recordFromObject(key: string, body: Buffer | Uint8Array): CatalogRecord | null {
  if (!isCatalogKey(key)) return null;
  const doc = JSON.parse(Buffer.from(body).toString('utf8')) as Doc;
  const target = key.slice(0, key.indexOf('/'));
  const backup = parseBackupKey(key);
  if (backup && backup.rest === 'manifest.json') {
    const archive = (doc.archive ?? {}) as Doc;
    return {
      kind: 'backup',
      row: {
        key,
        target,
        backup_id: backup.backupId,
        created_at: str(doc.createdAt),
        kind: str(doc.kind),
        bytes: num(archive.size),
        encrypted: archive.encrypted === true,
        doc,
      },
    };
  }
  if (backup) {
    const m = /^verifications\/(.+)-(quick|full)-(ok|failed)\.json$/.exec(backup.rest);
    if (!m) return null;
    return {
      kind: 'verification',
      row: { target, backup_id: backup.backupId, at: str(doc.at), level: m[2] as string, ok: m[3] === 'ok' },
    };
  }
  if (key.startsWith(`${target}/restores/`)) {
    const rto = (doc.rto ?? {}) as Doc;
    const row: RestoreRow = {
      key,
      target,
      scenario: str(doc.scenario),
      outcome: str(doc.outcome),
      started_at: str(doc.startedAt),
      backup_id: typeof doc.backupId === 'string' ? doc.backupId : null,
      to_ready_ms: num(rto.toReadyMs),
      ready_to_trade: doc.readyToTrade === true,
      doc,
    };
    const dest = (doc.destination ?? {}) as Doc;
    return {
      kind: 'restore',
      row,
      events: [
        {
          id: `${key}#0`,
          target,
          at: str(doc.endedAt, row.started_at),
          event: 'restore',
          detail: `${row.scenario} into ${str(dest.kind)} ${str(dest.root)}: ${row.outcome}${doc.failedStep ? ` at ${str(doc.failedStep)}` : ''} (backup ${row.backup_id ?? 'none'}; kill switch ${str(doc.killSwitch)})`,
          source_key: key,
        },
      ],
    };
  }
  if (key.startsWith(`${target}/reports/reconciliation`)) {
    const row: ReconciliationRow = {
      key,
      target,
      at: str(doc.timestamp),
      verdict: str(doc.verdict),
      ready_to_trade: doc.ready_to_trade === true,
      of_copy: key.startsWith(`${target}/reports/reconciliation-copies/`),
      doc,
    };
    const actions = Array.isArray(doc.actions_taken) ? (doc.actions_taken as Doc[]) : [];
    return {
      kind: 'reconciliation',
      row,
      events: actions.map((a, i) => ({
        id: `${key}#${i}`,
        target,
        at: row.at,
        event: `reconciliation_correction:${str(a.kind)}`,
        detail: `${str(a.key)}: ${str(a.detail)}${row.of_copy ? ' (a copy of the books)' : ''}`,
        source_key: key,
      })),
    };
  }
  const measured = (doc.measured ?? {}) as Doc;
  const row: DrillRow = {
    key,
    target,
    drill_id: str(doc.id),
    drill: str(doc.drill),
    started_at: str(doc.started_at),
    verdict: str(doc.verdict),
    rto_seconds: num(measured.rto_seconds),
    rpo_seconds: num(measured.rpo_seconds),
    doc,
  };
  return {
    kind: 'drill',
    row,
    events: [
      {
        id: `${key}#0`,
        target,
        at: str(doc.finished_at, row.started_at),
        event: 'drill',
        detail: `${row.drill}: ${row.verdict}${doc.failure ? ` (${str(doc.failure)})` : ''}`,
        source_key: key,
      },
    ],
  };
}
