// The catalog of a target's backups, read from the object store: a backup exists when its
// manifest does; verification records beside it say whether it was proven readable.
import { type Runtime, sha256hex } from '@lifeboat/adapters';
import {
  describeZodError,
  LifeboatError,
  layout,
  type Manifest,
  manifestSealProblem,
  parseBackupKey,
  parseStoredManifest,
} from '@lifeboat/domain';
import { ZodError } from 'zod';

export interface VerificationSummary {
  level: 'quick' | 'full';
  ok: boolean;
  at: string;
}

export interface BackupSummary {
  backupId: string;
  target: string;
  kind: Manifest['kind'];
  createdAt: string;
  scheduledAt?: string;
  /** The job that made it, when a job did. */
  jobId?: string;
  reason: string;
  bytes: number;
  sourceBytes: number;
  entries: number;
  encrypted: boolean;
  database: { engine: string; tables: Record<string, number> } | null;
  omitted: number;
  warnings: number;
  /** The latest verification, if any. */
  verification: VerificationSummary | null;
}

/** Verification record keys end in `<at>-<level>-<ok|failed>.json`, so a listing tells the outcome. */
export function verificationKey(target: string, backupId: string, at: Date, level: string, ok: boolean): string {
  const stamp = at.toISOString().replace(/[-:.]/g, '');
  return layout.verification(target, backupId, stamp, `${level}-${ok ? 'ok' : 'failed'}`);
}

function parseVerificationName(name: string): { level: 'quick' | 'full'; ok: boolean; stamp: string } | null {
  const m = /^(\d{8}T\d{9}Z)-(quick|full)-(ok|failed)\.json$/.exec(name);
  if (!m) return null;
  return { stamp: m[1] as string, level: m[2] as 'quick' | 'full', ok: m[3] === 'ok' };
}

function stampToIso(stamp: string): string {
  return `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}.${stamp.slice(15, 18)}Z`;
}

/** The newest verification of one backup, or null when it was never verified. */
export async function latestVerification(
  runtime: Runtime,
  target: string,
  backupId: string,
): Promise<VerificationSummary | null> {
  let latest: VerificationSummary | null = null;
  for await (const obj of runtime.store.list(layout.verificationsPrefix(target, backupId))) {
    const v = parseVerificationName(obj.key.slice(obj.key.lastIndexOf('/') + 1));
    if (!v) continue;
    const at = stampToIso(v.stamp);
    if (!latest || latest.at < at) latest = { level: v.level, ok: v.ok, at };
  }
  return latest;
}

/**
 * Reads a stored manifest and checks its seal (docs/FORMAT.md §3): one that does not parse,
 * or whose seal does not hold, is refused with VERIFY_FAILED naming its key.
 */
export async function readManifest(runtime: Runtime, target: string, backupId: string) {
  const key = layout.manifest(target, backupId);
  const sealKey = runtime.manifestKey();
  const bytes = await runtime.store.getBytes(key).catch((err) => {
    if (err instanceof LifeboatError && err.code === 'NOT_FOUND') {
      throw new LifeboatError(
        'NOT_FOUND',
        `backup ${backupId} of target ${target} not found in ${runtime.store.location}`,
        {
          hint: 'list backups with `lifeboat backups list`',
        },
      );
    }
    throw err;
  });
  let json: unknown;
  let manifest: ReturnType<typeof parseStoredManifest>;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
    manifest = parseStoredManifest(json);
  } catch (err) {
    const why = err instanceof ZodError ? describeZodError(err) : (err as Error).message.split('\n')[0];
    throw new LifeboatError('VERIFY_FAILED', `manifest ${key} is not a valid Lifeboat manifest: ${why}`);
  }
  // The seal covers the bytes as stored, so it is checked on what was read, not on the parsed copy.
  const problem = manifestSealProblem(json, sha256hex, sealKey);
  if (problem) {
    throw new LifeboatError('VERIFY_FAILED', `manifest ${key} refused: ${problem}`, {
      hint: 'use another backup; if every manifest is refused, check that backup.manifestKeyEnv holds the key they were sealed with',
    });
  }
  return manifest;
}

export interface Catalog {
  /** Every committed backup whose manifest reads, oldest first. */
  backups: BackupSummary[];
  /** Manifests that exist but do not read: listed, never fatal, so one bad object blocks nothing. */
  unreadable: Array<{ backupId: string; problem: string }>;
}

export async function readCatalog(runtime: Runtime, target: string): Promise<Catalog> {
  const manifests: string[] = [];
  const verifications = new Map<string, VerificationSummary>();
  for await (const obj of runtime.store.list(layout.backupsPrefix(target))) {
    const parts = parseBackupKey(obj.key);
    if (!parts || parts.target !== target) continue;
    if (parts.rest === 'manifest.json') manifests.push(parts.backupId);
    else if (parts.rest.startsWith('verifications/')) {
      const v = parseVerificationName(parts.rest.slice('verifications/'.length));
      if (!v) continue;
      const at = stampToIso(v.stamp);
      const prev = verifications.get(parts.backupId);
      if (!prev || prev.at < at) verifications.set(parts.backupId, { level: v.level, ok: v.ok, at });
    }
  }
  const catalog: Catalog = { backups: [], unreadable: [] };
  for (const backupId of manifests.sort()) {
    let m: Manifest & { archive: { size: number } };
    try {
      m = await readManifest(runtime, target, backupId);
    } catch (err) {
      if (err instanceof LifeboatError && err.code === 'VERIFY_FAILED') {
        catalog.unreadable.push({ backupId, problem: err.message });
        continue;
      }
      throw err;
    }
    catalog.backups.push({
      backupId,
      target,
      kind: m.kind,
      createdAt: m.createdAt,
      ...(m.scheduledAt ? { scheduledAt: m.scheduledAt } : {}),
      ...(m.jobId ? { jobId: m.jobId } : {}),
      reason: m.reason,
      bytes: m.archive.size,
      sourceBytes: m.entries.reduce((n, e) => n + e.size, 0),
      entries: m.entries.length,
      encrypted: m.archive.encryption !== null,
      database: m.database ? { engine: m.database.engine, tables: m.database.tables } : null,
      omitted: m.omitted.length,
      warnings: m.warnings.length,
      verification: verifications.get(backupId) ?? null,
    });
  }
  return catalog;
}

/** Every committed, readable backup of a target, oldest first. */
export async function listBackups(runtime: Runtime, target: string): Promise<BackupSummary[]> {
  return (await readCatalog(runtime, target)).backups;
}

/** Resolves `latest` (the newest backup not known to be damaged) or checks that an id exists. */
export async function resolveBackupId(runtime: Runtime, target: string, idOrLatest: string): Promise<string> {
  if (idOrLatest !== 'latest') {
    await readManifest(runtime, target, idOrLatest);
    return idOrLatest;
  }
  const all = await listBackups(runtime, target);
  const newest = all.filter((b) => b.verification?.ok !== false).at(-1);
  if (!newest) {
    const failed = all.length ? ` (${all.length} failed verification)` : '';
    throw new LifeboatError(
      'NOT_FOUND',
      `target ${target} has no usable backup in ${runtime.store.location}${failed}`,
      {
        hint: 'make one with `lifeboat backup`, or name a backup id',
      },
    );
  }
  return newest.backupId;
}
