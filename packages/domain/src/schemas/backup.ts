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
  /** True when an earlier run had already made the backup for this scheduled slot. */
  deduplicated: z.boolean().default(false),
});
export type BackupResult = z.infer<typeof BackupResult>;
