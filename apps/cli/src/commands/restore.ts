// `lifeboat restore`: a recovery scenario as a measured plan, with a live timeline.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { createLockProvider } from '@lifeboat/adapters';
import {
  LifeboatError,
  type ReconcileJobResult,
  RestoreRequest,
  type RestoreResult,
  type StepRecord,
} from '@lifeboat/domain';
import { restore } from '@lifeboat/restore';
import { audited, cliLogger, distributed, type GlobalOptions, openBus, openRuntime } from '../context.js';
import { EXIT, formatDuration, printJson } from '../output.js';

export interface RestoreOptions extends GlobalOptions {
  scenario: string;
  backup: string;
  pointInTime?: string;
  to: string;
  from?: string;
  stream?: boolean;
  dryRun?: boolean;
  yes?: boolean;
  signOff?: string;
  reason: string;
  json?: boolean;
}

const MARK: Record<StepRecord['status'], string> = {
  NOT_STARTED: '·',
  EXECUTING: '▸',
  COMPLETED: '✓',
  FAILED: '✗',
  SKIPPED: '–',
};

function stepLine(s: StepRecord): string {
  const time = s.durationMs !== undefined ? ` (${formatDuration(s.durationMs)})` : '';
  return `${MARK[s.status]} ${s.name.padEnd(30)} ${s.status === 'EXECUTING' ? s.description : (s.outcome ?? s.description)}${time}`;
}

async function confirm(target: string, scenario: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(
      `restore ${scenario} changes the PRODUCTION target ${target} (its kill switch goes ON first). Type the target name to go on: `,
    );
    return answer.trim() === target;
  } finally {
    rl.close();
  }
}

export async function restoreCommand(opts: RestoreOptions): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  const parsed = RestoreRequest.safeParse({
    target,
    scenario: opts.scenario,
    backup: opts.backup,
    ...(opts.pointInTime ? { pointInTime: opts.pointInTime } : {}),
    destination: opts.to,
    ...(opts.from ? { from: opts.from } : {}),
    stream: opts.stream !== false,
    dryRun: Boolean(opts.dryRun),
    ...(opts.signOff ? { signOff: opts.signOff } : {}),
    reason: opts.reason,
    requestedBy: `cli:${process.env.USER ?? 'unknown'}`,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue?.path.join('.') ?? '';
    const flag =
      { scenario: '--scenario', destination: '--to', pointInTime: '--point-in-time', backup: '--backup' }[key] ?? key;
    throw new LifeboatError('INVALID_REQUEST', `${flag}: ${issue?.message}`, {
      hint: '--scenario app-crash|db-corruption|server-loss, --to production|sandbox[:<dir>]',
    });
  }
  const request = parsed.data;
  if (
    request.destination === 'production' &&
    !request.dryRun &&
    !opts.yes &&
    !(await confirm(target, request.scenario))
  ) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      'a production restore needs confirmation: pass --yes, or answer the prompt',
      {
        hint: 'try --dry-run first to see what each step would touch',
      },
    );
  }
  const live = !opts.json;
  const onStep = (s: StepRecord) => {
    if (live && s.status !== 'EXECUTING') process.stderr.write(`${stepLine(s)}\n`);
  };
  let result: RestoreResult;
  const bus = await openBus(runtime);
  try {
    if (distributed()) {
      const jobId = `restore:${target}:${randomUUID()}`;
      await bus.enqueue('restore', request, { jobId });
      if (live)
        process.stderr.write(`restore of ${target} queued (BullMQ, job ${jobId}); waiting for a restore worker…\n`);
      result = (await bus.result('restore', jobId, { timeoutMs: 6 * 3600_000 })) as RestoreResult;
      if (live) for (const s of result.steps) onStep(s);
    } else {
      result = await audited(runtime, 'restore', request, () =>
        restore(request, {
          runtime,
          log: cliLogger(),
          locks: createLockProvider({ dir: join(runtime.loaded.baseDir, '.lifeboat', 'locks') }),
          holder: `lifeboat restore (cli, pid ${process.pid}, ${process.env.USER ?? 'unknown'})`,
          onStep,
          reconcile: async (req) => {
            const jobId = `reconcile:${req.target}:${randomUUID()}`;
            await bus.enqueue('reconcile', req, { jobId });
            return (await bus.result('reconcile', jobId, { timeoutMs: 3600_000 })) as ReconcileJobResult;
          },
        }),
      );
    }
  } finally {
    await bus.close();
  }

  if (opts.json) printJson(result);
  else printRestore(result);
  if (result.outcome === 'PLANNED') return EXIT.ok;
  return result.outcome === 'COMPLETED' ? EXIT.ok : EXIT.failed;
}

function printRestore(r: RestoreResult): void {
  if (r.dryRun) {
    console.log(
      `plan ${r.scenario} for ${r.target} → ${r.destination.kind} ${r.destination.root} (dry run: nothing changed)`,
    );
    for (const s of r.steps)
      console.log(
        `  ${s.name.padEnd(30)} ${s.description}${s.touches.length ? `\n  ${''.padEnd(30)} touches: ${s.touches.join(', ')}` : ''}`,
      );
    return;
  }
  const secs = (ms: number | null) => (ms === null ? 'n/a' : formatDuration(ms));
  console.log(
    `restore ${r.scenario} of ${r.target}: ${r.outcome}${r.failedStep ? ` at step ${r.failedStep}: ${r.error?.message}` : ''}`,
  );
  if (r.backupId) console.log(`  backup       ${r.backupId}${r.location ? ` (from ${r.location})` : ''}`);
  console.log(
    `  destination  ${r.destination.kind} ${r.destination.root}${r.destination.database ? ` (database ${r.destination.database})` : ''}`,
  );
  console.log(`  kill switch  ${r.killSwitch}`);
  for (const m of r.movedAside) console.log(`  kept aside   ${m}`);
  if (r.reconciliation)
    console.log(
      `  reconcile    ${r.reconciliation.verdict}${r.reconciliation.reportKey ? ` (${r.reconciliation.reportKey})` : ''}`,
    );
  console.log(
    `  RTO          healthy in shadow mode after ${secs(r.rto.toHealthyShadowMs)}, ready to trade after ${secs(r.rto.toReadyMs)} (target ${formatDuration(r.rto.targetMs)})`,
  );
  console.log(
    `  ready to trade: ${r.readyToTrade ? 'yes — deactivate with `lifeboat kill-switch deactivate --reason …`' : 'no — trading stays halted'}`,
  );
}
