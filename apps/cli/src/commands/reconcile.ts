// `lifeboat reconcile`: are the books and the exchange in agreement, and is the target ready
// to trade? Exit 0 only when ready to trade, 1 when not, 2 for bad input.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { configPath, type Runtime } from '@lifeboat/adapters';
import { formatReportSummary, LifeboatError, type ReconcileJobResult } from '@lifeboat/domain';
import { reconcile } from '@lifeboat/reconciler';
import { cliLogger, distributed, type GlobalOptions, openBus, openRuntime } from '../context.js';
import { EXIT, formatDuration, printJson } from '../output.js';

export interface ReconcileOptions extends GlobalOptions {
  internal?: string;
  exchange?: string;
  apply?: boolean;
  signOff?: string;
  recoveryType?: string;
  items?: string;
  store?: boolean;
  json?: boolean;
}

export async function reconcileCommand(opts: ReconcileOptions): Promise<number> {
  if (opts.items !== undefined && opts.items !== 'all' && opts.items !== 'exceptions') {
    throw new LifeboatError('INVALID_REQUEST', `--items must be all or exceptions, got "${opts.items}"`);
  }
  // Two files need no configuration; anything else reads lifeboat.yaml.
  const filesOnly = Boolean(opts.internal && opts.exchange);
  const runtime: Runtime | undefined =
    filesOnly && !opts.config && !existsSync(configPath()) ? undefined : await openRuntime(opts);
  const request = {
    ...(runtime && (opts.target || !filesOnly) ? { target: runtime.target(opts.target).name } : {}),
    recoveryType: opts.recoveryType ?? 'manual',
    ...(opts.internal ? { internal: opts.internal } : {}),
    ...(opts.exchange ? { exchange: opts.exchange } : {}),
    apply: Boolean(opts.apply),
    ...(opts.signOff ? { signOff: opts.signOff } : {}),
    ...(opts.items ? { settings: { items: opts.items } } : {}),
    store: opts.store !== false,
    requestedBy: `cli:${process.env.USER ?? 'unknown'}`,
  };
  const progress = (step: string) => {
    if (!opts.json && process.stderr.isTTY) process.stderr.write(`\r\x1b[K${step}…`);
  };
  let result: ReconcileJobResult;
  // Local files are read here; only a configured target's reconciliation goes to a worker.
  if (runtime && distributed() && !opts.internal && !opts.exchange) {
    const bus = await openBus(runtime);
    try {
      const jobId = `reconcile:${request.target}:${randomUUID()}`;
      await bus.enqueue('reconcile', request, { jobId });
      if (!opts.json) process.stderr.write(`reconciliation of ${request.target} queued (BullMQ, job ${jobId})\n`);
      result = (await bus.result('reconcile', jobId, { timeoutMs: 3600_000 })) as ReconcileJobResult;
    } finally {
      await bus.close();
    }
  } else {
    result = await reconcile(request, { ...(runtime ? { runtime } : {}), log: cliLogger(), progress });
  }
  if (!opts.json && process.stderr.isTTY) process.stderr.write('\r\x1b[K');

  if (opts.json) printJson(result);
  else {
    console.log(formatReportSummary(result.report));
    console.log(`internal: ${result.sources.internal}`);
    console.log(`exchange: ${result.sources.exchange}`);
    for (const [part, reason] of Object.entries(result.sourceErrors)) console.log(`  incomplete ${part}: ${reason}`);
    if (result.correctedFile) console.log(`corrected books written to ${result.correctedFile}`);
    if (result.reportKey) console.log(`report stored as ${result.reportKey}`);
    console.log(`took ${formatDuration(result.durationMs)}`);
  }
  return result.report.ready_to_trade ? EXIT.ok : EXIT.failed;
}
