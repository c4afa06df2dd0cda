// A plan of named steps run in order, each timed and recorded (start, end, outcome,
// evidence). The first failure stops the plan; the steps after it stay NOT_STARTED.
import { isLifeboatError, type JobProgress, type StepRecord, type TimelineStep } from '@lifeboat/domain';

export interface StepOutcome {
  outcome: string;
  evidence?: Record<string, unknown>;
  /** The step did not apply (a sandbox, nothing to do): recorded as SKIPPED. */
  skipped?: boolean;
}

export interface PlanStep {
  name: string;
  description: string;
  touches: string[];
  run: () => Promise<StepOutcome>;
}

export interface PlanRun {
  steps: StepRecord[];
  failed: StepRecord | null;
}

export async function runPlan(
  steps: PlanStep[],
  options: { now?: () => Date; onStep?: (step: StepRecord) => void; dryRun?: boolean } = {},
): Promise<PlanRun> {
  const now = options.now ?? (() => new Date());
  const records: StepRecord[] = steps.map((s) => ({
    name: s.name,
    description: s.description,
    status: 'NOT_STARTED',
    touches: s.touches,
    evidence: {},
  }));
  if (options.dryRun) return { steps: records, failed: null };
  for (const [i, step] of steps.entries()) {
    const record = records[i] as StepRecord;
    const started = now();
    record.status = 'EXECUTING';
    record.startedAt = started.toISOString();
    options.onStep?.(record);
    try {
      const out = await step.run();
      record.status = out.skipped ? 'SKIPPED' : 'COMPLETED';
      record.outcome = out.outcome;
      record.evidence = out.evidence ?? {};
    } catch (err) {
      record.status = 'FAILED';
      record.error = isLifeboatError(err)
        ? err.toJSON()
        : { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
      record.outcome = record.error.message;
    }
    const ended = now();
    record.endedAt = ended.toISOString();
    record.durationMs = ended.getTime() - started.getTime();
    options.onStep?.(record);
    if (record.status === 'FAILED') return { steps: records, failed: record };
  }
  return { steps: records, failed: null };
}

/**
 * An onStep that reports the whole timeline so far as job progress, so a status page or a
 * late watcher sees every step, not only the newest.
 */
export function timelineProgress(progress: (p: JobProgress) => void): (step: StepRecord) => void {
  const steps = new Map<string, TimelineStep>();
  return (step) => {
    steps.set(step.name, {
      name: step.name,
      status: step.status,
      ...(step.startedAt ? { startedAt: step.startedAt } : {}),
      ...(step.endedAt ? { endedAt: step.endedAt } : {}),
      ...(step.durationMs !== undefined ? { durationMs: step.durationMs } : {}),
      ...(step.outcome ? { outcome: step.outcome } : {}),
    });
    progress({ phase: step.name, detail: step.status, timeline: [...steps.values()] });
  };
}
