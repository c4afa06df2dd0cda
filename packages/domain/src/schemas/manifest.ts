// The manifest: the description of one backup, and its commit marker (docs/FORMAT.md).
import { z } from 'zod';
import { BackupKind, TargetName } from './backup.js';
import { ManifestSeal } from './seal.js';

export const MANIFEST_FORMAT = 'lifeboat.manifest/v1';

export const EntryRole = z.enum(['database', 'state', 'reports', 'config', 'audit']);
export type EntryRole = z.infer<typeof EntryRole>;

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits');

/** A relative path with forward slashes, no `..`, no leading slash. */
export const SafeRelativePath = z
  .string()
  .min(1)
  .max(4096)
  .refine(
    (p) =>
      !p.startsWith('/') &&
      !/^[A-Za-z]:/.test(p) &&
      !p.includes('\\') &&
      !p.includes('\0') &&
      p.split('/').every((seg) => seg !== '..' && seg !== '.' && seg !== ''),
    'must be a relative path without "..", "." or empty segments',
  );

export const ManifestEntry = z.object({
  /** Path inside the archive. */
  path: SafeRelativePath,
  /** Path relative to the target's root (or the database's configured name). */
  source: SafeRelativePath,
  role: EntryRole,
  size: z.number().int().nonnegative(),
  sha256: Sha256,
  secret: z.boolean(),
  mode: z.number().int().nonnegative().optional(),
  /** For append-only files: the byte offset the cut was taken at (equal to size). */
  appendOnlyOffset: z.number().int().nonnegative().optional(),
});
export type ManifestEntry = z.infer<typeof ManifestEntry>;

export const DatabaseFacts = z.object({
  engine: z.enum(['sqlite', 'postgres']),
  version: z.string(),
  /** Archive path of the database entry. */
  path: SafeRelativePath,
  /** `sqlite` (a database file) or `pg_dump-custom` (pg_dump -Fc). */
  format: z.enum(['sqlite', 'pg_dump-custom']),
  tables: z.record(z.string(), z.number().int().nonnegative()),
  integrity: z.object({ ok: z.boolean(), detail: z.string() }),
});
export type DatabaseFacts = z.infer<typeof DatabaseFacts>;

export const ArchiveFacts = z.object({
  key: z.string(),
  compression: z.literal('gzip'),
  encryption: z.object({ type: z.literal('age'), recipients: z.array(z.string()).min(1) }).nullable(),
  /** Size and sha256 of the stored object; absent only in the copy inside the archive. */
  size: z.number().int().nonnegative().optional(),
  sha256: Sha256.optional(),
});

export const Manifest = z.object({
  format: z.literal(MANIFEST_FORMAT),
  backupId: z.string(),
  target: TargetName,
  kind: BackupKind,
  reason: z.string(),
  requestedBy: z.string(),
  scheduledAt: z.iso.datetime().optional(),
  /** The job that made it: a run of the same job after a crash answers with this backup rather than make another. */
  jobId: z.string().optional(),
  /** The moment of the cut. */
  createdAt: z.iso.datetime(),
  completedAt: z.iso.datetime().optional(),
  host: z.string(),
  tool: z.object({ name: z.literal('lifeboat'), version: z.string() }),
  consistency: z.object({
    method: z.enum(['sqlite-backup-api', 'pg_dump-snapshot', 'none']),
    /** Engine position of the cut (SQLite data_version, PostgreSQL WAL LSN), when known. */
    position: z.string().optional(),
    appendOnlyOffsets: z.record(z.string(), z.number().int().nonnegative()),
  }),
  entries: z.array(ManifestEntry),
  /** Files matched by the target's rules but left out, with why (e.g. a secret with no recipient). */
  omitted: z.array(z.object({ source: z.string(), role: EntryRole, reason: z.string() })),
  /** What an operator should know about this backup (a state file that kept changing, a failed integrity check). */
  warnings: z.array(z.string()).default([]),
  database: DatabaseFacts.nullable(),
  archive: ArchiveFacts,
  /** The stored manifest's seal (seal.ts); absent in the copy inside the archive and in manifests written before seals. */
  seal: ManifestSeal.optional(),
});
export type Manifest = z.infer<typeof Manifest>;

/** Parses a stored manifest, which must carry the archive's size and checksum. */
export function parseStoredManifest(data: unknown): Manifest & { archive: { size: number; sha256: string } } {
  const m = Manifest.parse(data);
  if (m.archive.size === undefined || m.archive.sha256 === undefined) {
    throw new Error('archive.size and archive.sha256 are required in a stored manifest');
  }
  return m as Manifest & { archive: { size: number; sha256: string } };
}

/** A verification record, stored beside the manifest (the manifest itself never changes). */
export const VerificationRecord = z.object({
  backupId: z.string(),
  level: z.enum(['quick', 'full']),
  ok: z.boolean(),
  at: z.iso.datetime(),
  durationMs: z.number().nonnegative(),
  problems: z.array(z.string()),
  checks: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
});
export type VerificationRecord = z.infer<typeof VerificationRecord>;

/** The most a reader takes of an entry the manifest does not list (the manifest's own copy). */
export const UNLISTED_ENTRY_LIMIT = 64 << 20;

/**
 * What an archive may expand to, from its manifest: each listed entry at most its recorded
 * size, anything else at most UNLISTED_ENTRY_LIMIT, all of it at most their sum. A tampered
 * archive declaring more (a decompression bomb) is refused at the entry's tar header.
 */
export function archiveLimits(manifest: Pick<Manifest, 'entries'>): {
  entryBytes: (path: string) => number;
  totalBytes: number;
} {
  const sizes = new Map(manifest.entries.map((e) => [e.path, e.size]));
  const listed = manifest.entries.reduce((n, e) => n + e.size, 0);
  return {
    entryBytes: (path) => sizes.get(path) ?? UNLISTED_ENTRY_LIMIT,
    totalBytes: listed + UNLISTED_ENTRY_LIMIT,
  };
}
