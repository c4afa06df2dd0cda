// The reconcile handler: reads the exchange's side and the books, runs the runbook's four
// checks, optionally applies the corrections and checks again, then stores the report and
// writes the audit trail. "Are we ready to trade?" with evidence.
import { appendFile, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  FileBooksStore,
  openBooksSource,
  openTargetBooks,
  type ResolvedTarget,
  resolvePath,
  withTargetCredentials,
} from '@lifeboat/adapters';
import {
  type ActionTaken,
  type Books,
  type BooksStore,
  buildReport,
  describeZodError,
  type ExchangeSource,
  inStep,
  LifeboatError,
  layout,
  parseExchangeSnapshot,
  parseReconcileSettings,
  type ReconcileJobResult,
  ReconcileRequest,
  type ReconcileResult,
  reconcile as reconcileBooks,
  verdictOf,
} from '@lifeboat/domain';
import type { ReconcileContext } from '../context.js';
import { CcxtExchangeSource } from '../exchange/ccxt.js';
import { FileExchangeSource } from '../exchange/file.js';
import { HttpExchangeSource } from '../exchange/http.js';

/** Past the in-flight threshold, so a record that was just too fresh is judged the second time. */
const SETTLE_MARGIN_MS = 250;

export function parseReconcileRequest(payload: unknown): ReconcileRequest {
  const parsed = ReconcileRequest.safeParse(payload);
  if (!parsed.success) {
    throw new LifeboatError('INVALID_REQUEST', describeZodError(parsed.error, 'reconcile request'));
  }
  return parsed.data;
}

async function within<T>(step: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw inStep(step, err);
  }
}

/** The compact UTC stamp of a report key, with milliseconds so two runs never collide. */
function stamp(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '');
}

function exchangeSourceFor(
  target: ResolvedTarget | null,
  baseDir: string,
  env: NodeJS.ProcessEnv,
  snapshotFile: string | undefined,
): ExchangeSource {
  if (snapshotFile && /^https?:\/\//i.test(snapshotFile)) return new HttpExchangeSource(snapshotFile);
  if (snapshotFile) return new FileExchangeSource(snapshotFile);
  const cfg = target?.config.exchange;
  if (!cfg) {
    if (target?.config.api) return new HttpExchangeSource(target.config.api.url);
    throw new LifeboatError('INVALID_CONFIG', `no exchange source for target ${target?.name ?? '(none)'}`, {
      hint: 'set targets.<name>.exchange (or targets.<name>.api) in lifeboat.yaml, or pass --exchange <snapshot file>',
    });
  }
  if (cfg.type === 'file') return new FileExchangeSource(resolvePath(baseDir, cfg.path));
  if (cfg.type === 'http') {
    const url = cfg.url ?? target?.config.api?.url;
    if (!url) {
      throw new LifeboatError(
        'INVALID_CONFIG',
        `targets.${target?.name}.exchange: type http needs a url (or targets.${target?.name}.api.url)`,
      );
    }
    return new HttpExchangeSource(url, cfg.timeoutMs);
  }
  const apiKey = env[cfg.apiKeyEnv];
  const secret = env[cfg.secretEnv];
  if (!apiKey || !secret) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `the exchange keys are not set: ${cfg.apiKeyEnv} and ${cfg.secretEnv} must both be set`,
      {
        hint: 'export read-only exchange API keys in those environment variables',
      },
    );
  }
  const since = cfg.since ? Date.parse(cfg.since) : undefined;
  if (since !== undefined && Number.isNaN(since)) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `targets.${target?.name}.exchange.since: "${cfg.since}" is not an ISO time`,
    );
  }
  return new CcxtExchangeSource({
    exchange: cfg.exchange,
    apiKey,
    secret,
    ...(cfg.urls ? { urls: cfg.urls } : {}),
    ...(cfg.symbols ? { symbols: cfg.symbols } : {}),
    ...(since !== undefined ? { since } : {}),
    timeoutMs: cfg.timeoutMs,
  });
}

export async function reconcile(payload: unknown, ctx: ReconcileContext): Promise<ReconcileJobResult> {
  const request = parseReconcileRequest(payload);
  const now = ctx.now ?? (() => new Date());
  const env = ctx.env ?? process.env;
  const started = now();
  const step = (name: string) => ctx.progress?.(name);

  const runtime = ctx.runtime;
  if (!runtime && !(request.internal && request.exchange)) {
    throw new LifeboatError('INVALID_CONFIG', 'no configuration: reconciling a target needs lifeboat.yaml', {
      hint: 'pass --config, or give both sides as files: --internal <books.json|db> --exchange <snapshot.json>',
    });
  }
  const target =
    runtime && (request.target || !(request.internal && request.exchange)) ? runtime.target(request.target) : null;
  const baseDir = runtime?.loaded.baseDir ?? process.cwd();
  const profile = target?.config.reconcile?.profile;
  // Taking working orders as cancelled is for a copy of the books (a drill's sandbox): never the target's own.
  if (
    !request.internal &&
    (request.settings?.openOrdersAsCancelled || target?.config.reconcile?.settings?.openOrdersAsCancelled)
  ) {
    throw new LifeboatError('INVALID_REQUEST', 'openOrdersAsCancelled is only for a copy of the books (--internal)', {
      hint: "it stands for a kill switch that did not really cancel anything; never use it on the target's own books",
    });
  }
  const books: BooksStore = request.internal
    ? openBooksSource(withTargetCredentials(request.internal, target?.config.database, env), profile)
    : openTargetBooks(target?.config.database ?? null, target?.root ?? baseDir, profile, env);
  const exchange = ctx.exchangeSource ?? exchangeSourceFor(target, baseDir, env, request.exchange);
  const log = ctx.log;
  log.info({ target: target?.name, internal: books.location, exchange: exchange.location }, 'reconcile: start');

  try {
    // Usually the venue first: its collected_at anchors the in-flight threshold, and books
    // read after it can only be newer (skipped as in flight), never older. A venue asked
    // market by market needs the books' markets first.
    const collect = async (symbols: readonly string[]) => {
      step(`asking the exchange (${exchange.location})`);
      const got = await within('collect exchange snapshot', () => exchange.collect({ symbols }));
      for (const [part, reason] of Object.entries(got.errors)) {
        log.warn({ part, reason }, 'reconcile: exchange snapshot part incomplete');
      }
      return { snapshot: parseExchangeSnapshot(got.snapshot, exchange.location), errors: got.errors };
    };
    const readBooks = () => {
      step(`reading the books (${books.location})`);
      return within('read books', () => books.read());
    };
    // The engine's check runs beside the rest (a worker thread for SQLite) and is awaited last.
    step(`checking the database (${books.location})`);
    const checking = books.integrity().catch((err) => {
      log.warn({ err: { message: (err as Error).message } }, 'reconcile: integrity check could not run');
      return null;
    });
    const gather = async (): Promise<{ internal: Books; collected: Awaited<ReturnType<typeof collect>> }> => {
      if (exchange.needsSymbols) {
        const internal = await readBooks();
        const symbols = new Set([...internal.orders.map((o) => o.symbol), ...internal.positions.map((p) => p.symbol)]);
        return { internal, collected: await collect([...symbols]) };
      }
      const collected = await collect([]);
      return { collected, internal: await readBooks() };
    };
    let { internal, collected } = await gather();
    const integrity = await checking;

    const settings = parseReconcileSettings({ ...target?.config.reconcile?.settings, ...request.settings });
    const run = (b: Books): ReconcileResult =>
      reconcileBooks({
        books: b,
        exchange: collected.snapshot,
        integrity,
        settings,
        recoveryType: request.recoveryType,
        now: started,
      });
    step('reconciling');
    let outcome = run(internal);
    // Right after a halt the newest trades are too fresh to judge, yet the venue's positions
    // already hold them: a run that did not pass with records skipped as in flight waits
    // the threshold out once and asks both sides again, so a recovery is judged on all of it.
    const skipped = outcome.stats.in_flight_skipped;
    if (skipped > 0 && verdictOf(outcome, false) !== 'PASS' && settings.inFlightThresholdMs > 0) {
      const waitMs = settings.inFlightThresholdMs + SETTLE_MARGIN_MS;
      log.info({ skipped, waitMs }, 'reconcile: records too fresh to judge; asking again once they have settled');
      step(`${skipped} record(s) too fresh to judge: asking again in ${(waitMs / 1000).toFixed(1)} s`);
      await sleep(waitMs);
      ({ internal, collected } = await gather());
      step('reconciling');
      outcome = run(internal);
    }

    let actions: ActionTaken[] = [];
    let corrected = false;
    const plan = outcome.corrections;
    const broken = outcome.stats.items_by_status.BREAK > 0;
    if (
      request.apply &&
      broken &&
      (plan.backfillOrders.length || plan.backfillFills.length || plan.orderUpdates.length || plan.positions.length)
    ) {
      step('applying corrections');
      actions = await within('apply corrections', () => books.apply(plan));
      if (actions.length) {
        corrected = true;
        step('reconciling the corrected books');
        internal = await readBooks();
        outcome = run(internal);
      }
    }

    const report = buildReport(outcome, {
      timestamp: started,
      recoveryType: request.recoveryType,
      actionsTaken: actions,
      corrected,
      ...(request.signOff ? { signOff: request.signOff } : {}),
    });

    let reportKey: string | null = null;
    let notStored: string | undefined;
    if (runtime && target && request.store) {
      // Only a run over the target's own books can later let its kill switch go OFF.
      reportKey = (request.internal ? layout.reconciliationOfCopy : layout.reconciliation)(
        target.name,
        stamp(started),
        report.verdict,
      );
      const body = Buffer.from(
        `${JSON.stringify({ ...report, target: target.name, sources: { internal: books.location, exchange: exchange.location }, source_errors: collected.errors, requested_by: request.requestedBy }, null, 1)}\n`,
      );
      try {
        await within('store report', () => runtime.store.put(reportKey as string, body));
      } catch (err) {
        // The verdict stands (and corrections are already in the books), but a report nobody
        // can read later is no evidence: it is returned, said to be unstored, and the kill
        // switch cannot be let go on it.
        if (!(err instanceof LifeboatError && err.code === 'STORE_UNREACHABLE')) throw err;
        notStored = err.message;
        reportKey = null;
        log.error({ err: { message: err.message } }, 'reconcile: the report was not stored');
      }
    }
    // The target's own audit log records runs over its own books, not over a copy elsewhere (a sandbox).
    if (target && !request.internal)
      await audit(target.root, request, report.verdict, report.ready_to_trade, actions, reportKey);

    const result: ReconcileJobResult = {
      target: target?.name ?? null,
      report,
      reportKey,
      ...(notStored ? { notStored } : {}),
      sources: { internal: books.location, exchange: exchange.location },
      sourceErrors: collected.errors,
      ...(books instanceof FileBooksStore && corrected ? { correctedFile: books.correctedPath } : {}),
      durationMs: now().getTime() - started.getTime(),
    };
    log.info(
      {
        target: result.target,
        verdict: report.verdict,
        ready_to_trade: report.ready_to_trade,
        discrepancies: report.discrepancies.length,
        actions: actions.length,
        reportKey,
        durationMs: result.durationMs,
      },
      'reconcile: done',
    );
    return result;
  } finally {
    await books.close();
  }
}

/**
 * The target's audit log (`logs/audit.jsonl`, as the trading system writes it): one line per
 * correction and one for the run. Skipped when the target's directory is not there (a
 * sandbox restore that has not made it yet).
 */
async function audit(
  root: string,
  request: ReconcileRequest,
  verdict: string,
  ready: boolean,
  actions: ActionTaken[],
  reportKey: string | null,
): Promise<void> {
  const exists = await stat(root).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!exists) return;
  await mkdir(join(root, 'logs'), { recursive: true });
  const at = new Date().toISOString();
  const by = request.signOff ?? request.requestedBy;
  const lines = actions.map((a) =>
    JSON.stringify({
      timestamp: at,
      event: 'reconciliation_correction',
      actor: 'lifeboat',
      by,
      kind: a.kind,
      key: a.key,
      detail: a.detail,
    }),
  );
  lines.push(
    JSON.stringify({
      timestamp: at,
      event: 'reconciliation',
      actor: 'lifeboat',
      by,
      recovery_type: request.recoveryType,
      verdict,
      ready_to_trade: ready,
      corrections: actions.length,
      report: reportKey,
    }),
  );
  await appendFile(join(root, 'logs', 'audit.jsonl'), `${lines.join('\n')}\n`);
}
