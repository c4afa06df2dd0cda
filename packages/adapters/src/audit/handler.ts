// Records every job a worker runs in the audit trail: `<queue>.completed` with a small summary
// of the result, or `<queue>.failed` with the error, without ever changing the job's outcome.
import type { AuditTrail, JobHandler } from '@lifeboat/domain';
import { isLifeboatError } from '@lifeboat/domain';

export interface AuditedHandlerOptions {
  /** Who runs the jobs: the app, such as "restore-worker". */
  actor: string;
  log: { error(obj: object, msg?: string): void };
}

/** Result fields worth keeping in the trail: ids, keys, sizes and verdicts, never content or secrets. */
const SUMMARY_FIELDS = [
  'backupId',
  'manifestKey',
  'bytes',
  'deduplicated',
  'runId',
  'scenario',
  'outcome',
  'readyToTrade',
  'failedStep',
  'verdict',
  'ready_to_trade',
  'key',
  'reportKey',
  'id',
  'drill',
  'location',
] as const;
const MAX_TEXT = 500;

export function auditedHandler(
  trail: AuditTrail,
  queue: string,
  handler: JobHandler,
  options: AuditedHandlerOptions,
): JobHandler {
  const record = async (
    action: string,
    outcome: 'ok' | 'failed',
    payload: unknown,
    details: Record<string, unknown>,
  ) => {
    const target = (payload as { target?: unknown } | null)?.target;
    try {
      await trail.append({
        actor: options.actor,
        action: `${queue}.${action}`,
        ...(typeof target === 'string' && target !== '' ? { target } : {}),
        outcome,
        details,
      });
    } catch (err) {
      // The job's outcome stands whatever happens to its record; the log says what was lost.
      options.log.error(
        { queue, action, details, err: { message: (err as Error)?.message ?? String(err) } },
        'audit: job not recorded in the audit trail',
      );
    }
  };
  return async (payload, ctx) => {
    let result: unknown;
    try {
      result = await handler(payload, ctx);
    } catch (err) {
      await record('failed', 'failed', payload, {
        jobId: ctx.jobId,
        attempt: ctx.attempt,
        code: isLifeboatError(err) ? err.code : 'INTERNAL',
        message: clip((err as Error)?.message ?? String(err)),
      });
      throw err;
    }
    // A job can finish and still report a failure (a restore that stopped at a step, a drill
    // or reconciliation that did not pass): the trail says so in its outcome, not only in details.
    const summary = summarize(result);
    const failed = summary.outcome === 'FAILED' || summary.verdict === 'FAIL';
    await record('completed', failed ? 'failed' : 'ok', payload, { jobId: ctx.jobId, ...summary });
    return result;
  };
}

/** The summary of a job's result kept in the trail: known scalar fields of a backup, restore, reconcile or drill result. */
export function summarize(result: unknown): Record<string, unknown> {
  if (result === null || typeof result !== 'object') return {};
  const r = result as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of SUMMARY_FIELDS) {
    const v = r[field];
    if (typeof v === 'string') out[field] = clip(v);
    else if (typeof v === 'number' || typeof v === 'boolean' || v === null) out[field] = v;
  }
  // A restore's destination is an object whose database may be a connection string: its kind is enough.
  const dest = r.destination;
  if (typeof dest === 'string') out.destination = clip(dest);
  else if (dest && typeof dest === 'object' && typeof (dest as { kind?: unknown }).kind === 'string') {
    out.destination = (dest as { kind: string }).kind;
  }
  // A reconcile job's verdict lives in its report.
  const report = r.report as Record<string, unknown> | undefined;
  if (report && typeof report === 'object') {
    if (typeof report.verdict === 'string') out.verdict ??= report.verdict;
    if (typeof report.ready_to_trade === 'boolean') out.ready_to_trade ??= report.ready_to_trade;
  }
  return out;
}

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}
