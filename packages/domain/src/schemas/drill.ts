// Drills (DESIGN.md §7): the catalog's names, the recovery targets they are held to, the
// `drills` section of lifeboat.yaml, what is asked of a drill and the report it gives.
import { z } from 'zod';
import { parseDuration } from '../units.js';
import { TargetName } from './backup.js';

export const DRILL_NAMES = [
  'kill-switch',
  'shadow-failover',
  'reconciliation',
  'backup-verify',
  'database-restore',
  'cold-restore',
  'full-simulation',
  'vendor-connectivity-loss',
  'multi-region-failover',
  'rpo-under-load',
  'annual-audit',
] as const;
export const DrillName = z.enum(DRILL_NAMES, {
  error: (issue) => `${notADrill(issue.input)}; drills are ${DRILL_NAMES.join(', ')}`,
});
export type DrillName = z.infer<typeof DrillName>;

/** Only a string is quoted back: String() of an object from a job payload may throw. */
function notADrill(input: unknown): string {
  if (input === undefined) return 'a drill is required';
  if (typeof input === 'string') return `"${input}" is not a drill`;
  return `a drill is a name, not ${input === null ? 'null' : Array.isArray(input) ? 'an array' : `a ${typeof input}`}`;
}

/** `30s`, `5m`, `1h`, `1d` or a number of seconds; kept as seconds. */
const Duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** The runbook's recovery time objectives, in seconds. */
export const RtoTargets = z
  .object({
    killSwitch: Duration.default(30),
    shadowMode: Duration.default(5 * 60),
    databaseRestore: Duration.default(15 * 60),
    completeRebuild: Duration.default(60 * 60),
  })
  .strict();
export type RtoTargets = z.infer<typeof RtoTargets>;
export type RtoTargetName = keyof RtoTargets;

/** The runbook's recovery point objectives, in seconds. */
export const RpoTargets = z
  .object({
    orderHistory: Duration.default(60),
    auditLogs: Duration.default(5 * 60),
    reports: Duration.default(86_400),
  })
  .strict();
export type RpoTargets = z.infer<typeof RpoTargets>;
export type RpoTargetName = keyof RpoTargets;

/** lifeboat.yaml `drills:`. */
export const DrillsConfig = z
  .object({
    /** The target drills run against (default: the only target; needed when there are several). */
    target: TargetName.optional(),
    targets: z
      .object({ rto: RtoTargets.prefault({}), rpo: RpoTargets.prefault({}) })
      .strict()
      .prefault({}),
    /** Cron (UTC) per drill, replacing the default; `off` takes a drill off the schedule. */
    schedule: z.partialRecord(DrillName, z.string().min(1)).default({}),
    /** Where sandboxes are made (default: the OS temp dir of the restore worker); a volume the restore worker and the drill-scheduler share when they run apart. */
    sandboxDir: z.string().min(1).optional(),
    /** Slack-compatible webhook for failed drills, missed targets and stale backups: the URL comes from this variable. */
    webhookUrlEnv: z.string().min(1).default('LIFEBOAT_ALERT_WEBHOOK_URL'),
  })
  .strict();
export type DrillsConfig = z.infer<typeof DrillsConfig>;

export const DrillRequest = z
  .object({
    drill: DrillName,
    target: TargetName.optional(),
    requestedBy: z.string().min(1).default('unknown'),
    /** The scheduled instant of a fired schedule, when the scheduler gives it (informational). */
    scheduledAt: z.string().optional(),
  })
  .strict();
export type DrillRequest = z.infer<typeof DrillRequest>;
export type DrillRequestInput = z.input<typeof DrillRequest>;

export const DRILL_REPORT_FORMAT = 'lifeboat.drill-report/v1';

export const DrillStepStatus = z.enum(['PASSED', 'FAILED', 'SKIPPED']);
export type DrillStepStatus = z.infer<typeof DrillStepStatus>;

export const DrillStep = z.object({
  name: z.string(),
  status: DrillStepStatus,
  started_at: z.string(),
  finished_at: z.string(),
  duration_ms: z.number(),
  detail: z.string(),
});
export type DrillStep = z.infer<typeof DrillStep>;

const Seconds = z.number().nullable();

export const DrillReport = z.object({
  format: z.literal(DRILL_REPORT_FORMAT),
  id: z.string(),
  drill: DrillName,
  target: z.string(),
  title: z.string(),
  scenario: z.string(),
  hypothesis: z.string(),
  started_at: z.string(),
  finished_at: z.string(),
  verdict: z.enum(['PASS', 'FAIL']),
  /** The step that failed first, or why the drill failed; null for a pass. */
  failure: z.string().nullable(),
  measured: z.object({
    /** Start → ready to trade (or → halted, for the kill switch). */
    rto_seconds: Seconds,
    /** Start → healthy in shadow mode, where the drill gets there. */
    rto_shadow_seconds: Seconds.optional(),
    /** Order history: disaster time − the newest order present after the restore. */
    rpo_seconds: Seconds,
    rpo: z.object({ orderHistory: Seconds.optional(), auditLogs: Seconds.optional(), reports: Seconds.optional() }),
  }),
  targets: z.object({
    rto_seconds: Seconds,
    rpo_seconds: Seconds,
    rpo: z.object({ orderHistory: Seconds.optional(), auditLogs: Seconds.optional(), reports: Seconds.optional() }),
  }),
  steps: z.array(DrillStep),
  /** Backup ids, verification and reconciliation results, integrity output, sandbox paths, checksums. */
  evidence: z.record(z.string(), z.unknown()),
  /** full-simulation: the report of each drill it ran. */
  drills: z.array(z.lazy((): z.ZodType => DrillReport)).optional(),
});
export type DrillReport = Omit<z.infer<typeof DrillReport>, 'drills'> & { drills?: DrillReport[] };
