// `lifeboat drill run|list|report|schedule`: the runbook's testing schedule, run for real
// against a sandbox, with measured RTO and RPO against the targets.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { configPath, createLockProvider, type Runtime } from '@lifeboat/adapters';
import {
  type BackupResult,
  DRILL_NAMES,
  DRILLS,
  type DrillReport,
  drillSchedules,
  formatSeconds,
  LifeboatError,
  layout,
  type ReconcileJobResult,
  type RestoreResult,
  upcomingDrills,
} from '@lifeboat/domain';
import { type DrillContext, drillHistory, runDrill } from '@lifeboat/drill-scheduler';
import { restore } from '@lifeboat/restore';
import { audited, cliLogger, distributed, type GlobalOptions, openBus, openRuntime } from '../context.js';
import { EXIT, printJson } from '../output.js';

export interface DrillRunOptions extends GlobalOptions {
  json?: boolean;
  open?: boolean;
  html?: string;
}

const MARK: Record<string, string> = { PASSED: '✓', FAILED: '✗', SKIPPED: '–' };

export async function drillRunCommand(drill: string, opts: DrillRunOptions): Promise<number> {
  if (!(DRILL_NAMES as readonly string[]).includes(drill)) {
    throw new LifeboatError('INVALID_REQUEST', `"${drill}" is not a drill; drills are ${DRILL_NAMES.join(', ')}`);
  }
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target ?? runtime.loaded.config.drills.target).name;
  const request = { drill, target, requestedBy: `cli:${process.env.USER ?? 'unknown'}` };
  const live = !opts.json;
  if (live) process.stderr.write(`drill ${drill} of ${target}: ${DRILLS[drill as keyof typeof DRILLS].hypothesis}\n`);
  const bus = await openBus(runtime);
  let report: DrillReport;
  try {
    if (distributed()) {
      const jobId = `drill:${target}:${drill}:${randomUUID()}`;
      await bus.enqueue('drill', request, { jobId, attempts: 1 });
      if (live) process.stderr.write(`queued (BullMQ, job ${jobId}); waiting for the drill-scheduler…\n`);
      report = (await bus.result('drill', jobId, { timeoutMs: 6 * 3600_000 })) as DrillReport;
    } else {
      const ctx: DrillContext = {
        runtime,
        log: cliLogger(),
        onStep: (d, s) => {
          if (live) {
            process.stderr.write(
              `  ${MARK[s.status] ?? '·'} ${`${d}/${s.name}`.padEnd(44)} ${(s.duration_ms / 1000).toFixed(1).padStart(6)} s  ${s.detail}\n`,
            );
          }
        },
        jobs: {
          backup: async (req) => {
            const jobId = `backup:${req.target}:${randomUUID()}`;
            await bus.enqueue('backup', req, { jobId });
            return (await bus.result('backup', jobId, { timeoutMs: 6 * 3600_000 })) as BackupResult;
          },
          reconcile: async (req) => {
            const jobId = `reconcile:${req.target}:${randomUUID()}`;
            await bus.enqueue('reconcile', req, { jobId });
            return (await bus.result('reconcile', jobId, { timeoutMs: 3600_000 })) as ReconcileJobResult;
          },
          restore: (req): Promise<RestoreResult> =>
            restore(req, {
              runtime,
              log: cliLogger(),
              locks: createLockProvider({ dir: join(runtime.loaded.baseDir, '.lifeboat', 'locks') }),
              holder: `lifeboat drill ${drill} (cli, pid ${process.pid})`,
              reconcile: async (r) => {
                const jobId = `reconcile:${r.target}:${randomUUID()}`;
                await bus.enqueue('reconcile', r, { jobId });
                return (await bus.result('reconcile', jobId, { timeoutMs: 3600_000 })) as ReconcileJobResult;
              },
            }),
        },
      };
      report = await audited(runtime, 'drill', request, () => runDrill(request, ctx));
    }
  } finally {
    await bus.close();
  }

  const htmlKey = layout.drillHtml(report.target, report.id);
  const htmlFile = opts.html ? resolve(opts.html) : null;
  if (htmlFile || opts.open) {
    const file = htmlFile ?? join(runtime.loaded.baseDir, '.lifeboat', `${report.id}.html`);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, Buffer.from(await runtime.store.getBytes(htmlKey)));
    if (live) process.stderr.write(`HTML report written to ${file}\n`);
    if (opts.open) openInBrowser(file);
  }
  if (opts.json) printJson(report);
  else printReport(report, htmlKey);
  return report.verdict === 'PASS' ? EXIT.ok : EXIT.failed;
}

function openInBrowser(file: string): void {
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'start' : 'xdg-open';
  const child = spawn(opener, [file], { detached: true, stdio: 'ignore' });
  child.on('error', () => process.stderr.write(`could not open a browser (${opener}); the report is ${file}\n`));
  child.unref();
}

const secs = (v: number | null | undefined) => (v === null || v === undefined ? '—' : formatSeconds(v));

/** The runbook's table, from this run: Scenario | Target RTO | Actual RTO | RPO | Status. */
export function drillTable(reports: DrillReport[]): string {
  const rows = reports.map((r) => [
    r.scenario,
    secs(r.targets.rto_seconds),
    secs(r.measured.rto_seconds),
    r.measured.rpo_seconds === null ? '—' : `${secs(r.measured.rpo_seconds)} / ${secs(r.targets.rpo_seconds)}`,
    r.verdict === 'PASS' ? '✅ PASS' : '❌ FAIL',
  ]);
  const head = ['Scenario', 'Target RTO', 'Actual RTO', 'RPO / target', 'Status'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function printReport(r: DrillReport, htmlKey: string): void {
  console.log(`drill ${r.drill} of ${r.target}: ${r.verdict}${r.failure ? ` — ${r.failure}` : ''}`);
  console.log(drillTable(r.drills ?? [r]));
  console.log(`report ${layout.drillReport(r.target, r.id)} (HTML: ${htmlKey})`);
}

export async function drillListCommand(opts: GlobalOptions & { json?: boolean }): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target ?? runtime.loaded.config.drills.target).name;
  const history = await drillHistory(runtime.store, target);
  if (opts.json) printJson({ target, drills: history });
  else if (history.length === 0)
    console.log(`no drill of ${target} has run yet (try: lifeboat drill run backup-verify)`);
  else {
    for (const h of history) {
      console.log(
        `${h.id.padEnd(42)} ${h.verdict.padEnd(4)}  RTO ${secs(h.rto_seconds).padStart(8)} / ${secs(h.rto_target).padEnd(8)} RPO ${secs(h.rpo_seconds).padStart(8)} / ${secs(h.rpo_target)}`,
      );
    }
  }
  return EXIT.ok;
}

export async function drillReportCommand(
  id: string,
  opts: GlobalOptions & { json?: boolean; html?: string },
): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target ?? runtime.loaded.config.drills.target).name;
  const report = await readReport(runtime, target, id);
  if (opts.html) {
    const file = resolve(opts.html);
    await writeFile(file, Buffer.from(await runtime.store.getBytes(layout.drillHtml(target, report.id))));
    if (!opts.json) console.error(`HTML report written to ${file}`);
  }
  if (opts.json) printJson(report);
  else printReport(report, layout.drillHtml(target, report.id));
  return EXIT.ok;
}

async function readReport(runtime: Runtime, target: string, id: string): Promise<DrillReport> {
  let key = layout.drillReport(target, id);
  if (id === 'latest') {
    const keys: string[] = [];
    for await (const o of runtime.store.list(layout.drillsPrefix(target)))
      if (o.key.endsWith('.json')) keys.push(o.key);
    const newest = keys.sort().at(-1);
    if (!newest) throw new LifeboatError('NOT_FOUND', `no drill report of ${target} in ${runtime.store.location}`);
    key = newest;
  }
  const bytes = await runtime.store.getBytes(key).catch(() => {
    throw new LifeboatError('NOT_FOUND', `no drill report ${id} of ${target} (${key})`, {
      hint: 'list them with `lifeboat drill list`',
    });
  });
  return JSON.parse(Buffer.from(bytes).toString('utf8')) as DrillReport;
}

export async function drillScheduleCommand(
  opts: GlobalOptions & { from?: string; count?: string; json?: boolean },
): Promise<number> {
  const from = opts.from ? new Date(opts.from) : new Date();
  if (Number.isNaN(from.getTime())) {
    throw new LifeboatError('INVALID_REQUEST', `--from: "${opts.from}" is not a date (try 2027-01-01 or an ISO time)`);
  }
  const count = opts.count === undefined ? 20 : Number(opts.count);
  if (!Number.isInteger(count) || count < 1 || count > 10_000) {
    throw new LifeboatError('INVALID_REQUEST', `--count must be a whole number from 1 to 10000, got "${opts.count}"`);
  }
  // The schedule reads lifeboat.yaml when there is one (a broken one is an error); the
  // catalog's defaults when there is none.
  const runtime = existsSync(configPath(opts.config)) || opts.config ? await openRuntime(opts) : null;
  const { runs, neverFires } = upcomingDrills(drillSchedules(runtime?.loaded.config.drills), from, count);
  if (opts.json) {
    printJson(runs);
  } else {
    for (const r of runs) console.log(`${r.at.replace('.000Z', 'Z')}  ${r.drill}`);
  }
  for (const d of neverFires) console.error(`lifeboat: the schedule of ${d} never fires; it will not run`);
  return neverFires.length ? EXIT.failed : EXIT.ok;
}
