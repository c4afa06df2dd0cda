// Restores: the runbook's recovery scenarios as plans of named, timed steps (DESIGN.md §5),
// what is asked of a restore and what it answers.
import { z } from 'zod';
import { TargetName } from './backup.js';

export const Scenario = z.enum(['app-crash', 'db-corruption', 'server-loss']);
export type Scenario = z.infer<typeof Scenario>;

/** The runbook's recovery time objectives. */
export const SCENARIO_RTO_MS: Readonly<Record<Scenario, number>> = {
  'app-crash': 5 * 60_000,
  'db-corruption': 15 * 60_000,
  'server-loss': 30 * 60_000,
};

export const StepStatus = z.enum(['NOT_STARTED', 'EXECUTING', 'COMPLETED', 'FAILED', 'SKIPPED']);
export type StepStatus = z.infer<typeof StepStatus>;

export interface StepRecord {
  name: string;
  description: string;
  status: StepStatus;
  /** What the step reads or changes, named for a dry run and for the record. */
  touches: string[];
  startedAt?: string;
  endedAt?: string;
  durationMs?: number;
  /** One line: what happened, or why it was skipped. */
  outcome?: string;
  /** Checksums, integrity output, moved-aside paths, report keys… */
  evidence: Record<string, unknown>;
  error?: { code: string; message: string; hint?: string };
}

/** `production`, `sandbox` (a new scratch directory) or `sandbox:<dir>`. */
export const Destination = z
  .string()
  .regex(/^(production|sandbox(:.+)?)$/, 'destination is production, sandbox or sandbox:<dir>');

export const RestoreRequest = z
  .object({
    target: TargetName,
    scenario: Scenario,
    /** A backup id, or `latest` (the newest that has not failed verification). */
    backup: z.string().min(1).default('latest'),
    /** The newest backup taken at or before this instant (ISO 8601), rolled forward to it from the stream. */
    pointInTime: z.iso.datetime({ offset: true }).optional(),
    destination: Destination.default('production'),
    /** Take the backup from this location only (default: the first location, in configured order, that has a usable copy). */
    from: z.string().min(1).max(40).optional(),
    /** Locations to treat as down (the multi-region failover drill makes the primary unavailable this way). */
    avoid: z.array(z.string().min(1).max(40)).max(20).default([]),
    /** Bring the database and append-only files forward from the continuous stream (`lifeboat ship`) when there is one. */
    stream: z.boolean().default(true),
    /** Print the plan and what each step would touch; change nothing. */
    dryRun: z.boolean().default(false),
    /** False: the plan ends before reconciling (a drill reconciles on its own, to measure what the restore alone kept). */
    reconcile: z.boolean().default(true),
    /** Who accepts the reconciliation's corrections (a corrected run is ready to trade only with one). */
    signOff: z.string().min(1).max(200).optional(),
    reason: z.string().min(1).max(500).default('restore'),
    requestedBy: z.string().min(1).max(200).default('unknown'),
  })
  .strict();
export type RestoreRequest = z.infer<typeof RestoreRequest>;
export type RestoreRequestInput = z.input<typeof RestoreRequest>;

export interface RestoreResult {
  target: string;
  scenario: Scenario;
  destination: { kind: 'production' | 'sandbox'; root: string; database: string | null };
  backupId: string | null;
  /** The location the backup was taken from (null before one was picked). */
  location: string | null;
  dryRun: boolean;
  /** COMPLETED: every step ran; FAILED: a step failed (named); PLANNED: a dry run. */
  outcome: 'COMPLETED' | 'FAILED' | 'PLANNED';
  failedStep: string | null;
  error: { code: string; message: string; hint?: string } | null;
  steps: StepRecord[];
  startedAt: string;
  endedAt: string;
  /** Measured recovery times from the start of the plan. */
  rto: {
    targetMs: number;
    /** Until the target answered healthy in shadow mode. */
    toHealthyShadowMs: number | null;
    /** Until reconciliation said ready to trade (null when it did not). */
    toReadyMs: number | null;
    withinTarget: boolean | null;
  };
  readyToTrade: boolean;
  /** The kill switch as the plan left it. */
  killSwitch: string;
  /** Every file or database replaced, kept aside under these names. */
  movedAside: string[];
  reconciliation: { verdict: string; readyToTrade: boolean; reportKey: string | null } | null;
  /** The lock's fencing token (distributed restores). */
  fencingToken: number | null;
}
