// The backup job's contract: what a producer asks for and what the worker answers.
import { z } from 'zod';

export const TargetName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'target names are 1-63 lowercase letters, digits, ".", "_" or "-"');

export const BackupKind = z.enum(['full', 'database', 'state', 'pre-change']);
export type BackupKind = z.infer<typeof BackupKind>;

export const BackupRequest = z
  .object({
    target: TargetName,
    kind: BackupKind.default('full'),
    reason: z.string().max(500).default('manual'),
    requestedBy: z.string().min(1).max(200).default('cli'),
    /** Set by schedulers: the slot this backup is for; a second request for one slot makes no second backup. */
    scheduledAt: z.iso
      .datetime({ offset: true })
      .transform((t) => new Date(t).toISOString())
      .optional(),
  })
  .strict();
export type BackupRequest = z.infer<typeof BackupRequest>;
export type BackupRequestInput = z.input<typeof BackupRequest>;

export const BackupResult = z.object({
  backupId: z.string(),
  target: TargetName,
  manifestKey: z.string(),
  bytes: z.number().int().nonnegative(),
  sourceBytes: z.number().int().nonnegative(),
  durationMs: z.number().nonnegative(),
  entries: z.number().int().nonnegative(),
  encrypted: z.boolean(),
  omitted: z.array(z.object({ source: z.string(), reason: z.string() })),
  warnings: z.array(z.string()).default([]),
  verification: z.enum(['none', 'quick', 'full']),
  /** True when an earlier run had already made the backup for this scheduled slot, or for this job. */
  deduplicated: z.boolean().default(false),
  /** The copies to other locations, queued once the backup committed (queue `replicate`). */
  replication: z.array(z.object({ location: z.string(), jobId: z.string() })).default([]),
});
export type BackupResult = z.infer<typeof BackupResult>;

/** Copy a committed backup from one location to another (by default from the primary). */
export const ReplicateRequest = z
  .object({
    target: TargetName,
    backupId: z.string().regex(/^[0-9A-Za-z._-]{1,128}$/, 'a backup id is letters, digits, ".", "_" or "-"'),
    /** The location the copy goes to; never the one it comes from. */
    location: z.string().min(1).max(40),
    from: z.string().min(1).max(40).default('primary'),
    requestedBy: z.string().min(1).max(200).default('backup'),
  })
  .strict()
  .refine((r) => r.location !== r.from, {
    message: 'a copy goes to another location than its source',
    path: ['location'],
  });
export type ReplicateRequest = z.infer<typeof ReplicateRequest>;
export type ReplicateRequestInput = z.input<typeof ReplicateRequest>;

export const ReplicateResult = z.object({
  target: TargetName,
  backupId: z.string(),
  location: z.string(),
  from: z.string(),
  /** `copied`: copied and verified now; `present`: the location already had a verified copy. */
  outcome: z.enum(['copied', 'present']),
  bytes: z.number().int().nonnegative(),
  sha256: z.string(),
  durationMs: z.number().nonnegative(),
});
export type ReplicateResult = z.infer<typeof ReplicateResult>;

/** The job id of a copy: one job per backup and location, however often it is asked for. */
export function replicateJobId(target: string, backupId: string, location: string): string {
  return `replicate:${target}:${backupId}:${location}`;
}
