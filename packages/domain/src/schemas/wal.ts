// Continuous archiving of PostgreSQL targets (docs/FORMAT.md, section 10): the record stored
// beside each archived WAL file, the manifest of a base backup, and the report of `wal verify`.
import { z } from 'zod';
import { TargetName } from './backup.js';
import { ManifestSeal } from './seal.js';

export const WAL_RECORD_FORMAT = 'lifeboat.wal-record/v1';
export const BASE_BACKUP_FORMAT = 'lifeboat.basebackup/v1';
export const WAL_VERIFY_FORMAT = 'lifeboat.wal-verify/v1';

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits');
const Lsn = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/, 'a log sequence number looks like 0/3000028');
const SegmentName = z.string().regex(/^[0-9A-F]{24}$/, 'a WAL segment name is 24 hex digits');
const Encryption = z.object({ type: z.literal('age'), recipients: z.array(z.string()).min(1) }).nullable();

/** The commit marker of one archived file: written after its object, so a record always has a complete object. */
export const WalRecord = z.object({
  format: z.literal(WAL_RECORD_FORMAT),
  /** The file name PostgreSQL gave (`%f`). */
  name: z.string().regex(/^[0-9A-F]{8}([0-9A-F]{16}(\.partial|\.[0-9A-F]{8}\.backup)?|\.history)$/),
  kind: z.enum(['segment', 'history', 'backup', 'partial']),
  timeline: z.number().int().positive(),
  /** Size and sha256 of the file as PostgreSQL wrote it. */
  size: z.number().int().nonnegative(),
  sha256: Sha256,
  /** The stored object (relative to the store) and its size and sha256 as stored: compressed, maybe encrypted. */
  object: z.string().min(1),
  storedSize: z.number().int().nonnegative(),
  storedSha256: Sha256,
  compression: z.literal('gzip'),
  encryption: Encryption,
  /** From a segment's first page header: the cluster it belongs to and its segment size. */
  systemIdentifier: z.string().regex(/^\d+$/).optional(),
  segmentSize: z.number().int().positive().optional(),
  pushedAt: z.iso.datetime(),
  host: z.string().optional(),
});
export type WalRecord = z.infer<typeof WalRecord>;

/** A base backup's manifest: written last, after its archive; a base backup exists only with one. */
export const BaseBackupManifest = z.object({
  format: z.literal(BASE_BACKUP_FORMAT),
  id: z.string().regex(/^\d{8}T\d{6}Z-base-[0-9a-f]{4,12}$/),
  target: TargetName,
  /** When pg_basebackup was started and when it returned (this host's clock). */
  createdAt: z.iso.datetime(),
  completedAt: z.iso.datetime(),
  host: z.string(),
  tool: z.object({ name: z.literal('lifeboat'), version: z.string() }),
  method: z.literal('pg_basebackup -Ft -X none'),
  label: z.string(),
  postgres: z.object({
    /** server_version, e.g. "15.20 (Debian 15.20-0+deb12u1)". */
    version: z.string(),
    versionNum: z.number().int().positive(),
    major: z.number().int().positive(),
    systemIdentifier: z.string().regex(/^\d+$/),
    walSegmentSize: z.number().int().positive(),
  }),
  wal: z.object({
    timeline: z.number().int().positive(),
    /** The WAL range replay needs to make the copy consistent, from PostgreSQL's own backup_manifest. */
    startLsn: Lsn,
    endLsn: Lsn,
    checkpointLsn: Lsn,
    startSegment: SegmentName,
    endSegment: SegmentName,
  }),
  /** START TIME of the backup_label, as PostgreSQL wrote it. */
  startTime: z.string(),
  archive: z.object({
    key: z.string(),
    compression: z.literal('gzip'),
    encryption: Encryption,
    /** The stored object. */
    size: z.number().int().nonnegative(),
    sha256: Sha256,
    /** The tar stream pg_basebackup wrote, before compression. */
    tarSize: z.number().int().nonnegative(),
    tarSha256: Sha256,
  }),
  /** As a backup manifest's (seal.ts); absent in base backups made before seals. */
  seal: ManifestSeal.optional(),
});
export type BaseBackupManifest = z.infer<typeof BaseBackupManifest>;

export const WalVerifyReport = z.object({
  format: z.literal(WAL_VERIFY_FORMAT),
  target: TargetName,
  checkedAt: z.iso.datetime(),
  /** `quick`: every record has its object, of its size; `full`: every object decrypted, decompressed and checksummed. */
  level: z.enum(['quick', 'full']),
  segmentSize: z.number().int().positive(),
  timelines: z.array(
    z.object({
      timeline: z.number().int().positive(),
      first: SegmentName,
      last: SegmentName,
      segments: z.number().int().nonnegative(),
      /** When the newest segment of this timeline was archived. */
      lastPushedAt: z.iso.datetime().nullable(),
    }),
  ),
  gaps: z.array(
    z.object({
      timeline: z.number().int().positive(),
      from: SegmentName,
      to: SegmentName,
      missing: z.number().int().positive(),
    }),
  ),
  histories: z.array(z.string()),
  baseBackups: z.array(
    z.object({
      id: z.string(),
      timeline: z.number().int().positive(),
      startSegment: SegmentName,
      endSegment: SegmentName,
      completedAt: z.iso.datetime(),
      /** Whether replay from this backup reaches its end segment (the copy becomes consistent). */
      restorable: z.boolean(),
      /** The last segment a replay from this backup reaches, and when it was archived: every commit in it is older. */
      latestSegment: SegmentName.nullable(),
      latestPushedAt: z.iso.datetime().nullable(),
      /** The first segment the replay needs and the archive lacks while newer ones exist (a gap), if any. */
      blockedAt: SegmentName.nullable(),
    }),
  ),
  /** Damage: records without objects, sizes or checksums that differ, records that do not parse. */
  problems: z.array(z.string()),
  /** Worth knowing, not damage: objects without a record (an interrupted push), no base backup yet. */
  notes: z.array(z.string()),
  ok: z.boolean(),
});
export type WalVerifyReport = z.infer<typeof WalVerifyReport>;
