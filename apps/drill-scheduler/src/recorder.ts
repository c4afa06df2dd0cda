// A drill's timeline: each step timed, with what it found; the first failure stops the
// drill (the report's timeline ends at the failed step).

import type { DrillStep } from '@lifeboat/domain';
import { LifeboatError } from '@lifeboat/domain';

export class StepFailed extends Error {
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(message);
  }
}

/** What a step answers: a line for the report, and evidence to keep. */
export interface StepOutcome {
  detail: string;
  evidence?: Record<string, unknown>;
  /** Recorded as SKIPPED (it did not apply). */
  skipped?: boolean;
}

export class Recorder {
  readonly steps: DrillStep[] = [];
  readonly evidence: Record<string, unknown> = {};
  failure: string | null = null;
  /** Checked before every step: a stop condition throws StepFailed. */
  guard: (() => Promise<void>) | undefined;

  constructor(
    private readonly now: () => Date,
    private readonly onStep?: (step: DrillStep) => void,
  ) {}

  /** Runs a step; a throw (or `check` failing) fails the drill at this step. */
  async step<T extends StepOutcome>(name: string, fn: () => Promise<T>): Promise<T> {
    const started = this.now();
    const record = (status: DrillStep['status'], detail: string): DrillStep => {
      const finished = this.now();
      const s: DrillStep = {
        name,
        status,
        started_at: started.toISOString(),
        finished_at: finished.toISOString(),
        duration_ms: finished.getTime() - started.getTime(),
        detail,
      };
      this.steps.push(s);
      this.onStep?.(s);
      return s;
    };
    try {
      await this.guard?.();
      const out = await fn();
      if (out.evidence) Object.assign(this.evidence, out.evidence);
      record(out.skipped ? 'SKIPPED' : 'PASSED', out.detail);
      return out;
    } catch (err) {
      const message =
        err instanceof StepFailed || !(err instanceof LifeboatError)
          ? (err as Error).message
          : `${err.message}${err.hint ? ` (${err.hint})` : ''}`;
      record('FAILED', message);
      this.failure ??= `${name}: ${message}`;
      throw err instanceof StepFailed ? err : new StepFailed(name, message);
    }
  }
}

/** Fails the current step with a message when a condition does not hold. */
export function check(condition: unknown, step: string, message: string): asserts condition {
  if (!condition) throw new StepFailed(step, message);
}
