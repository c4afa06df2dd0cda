// `lifeboat audit verify` and `audit list`: proof that the audit trail is whole (the store's
// hash chain, and the catalog's copy in distributed mode), and its newest entries.
// `audit report`: the annual DR audit of a target, a year of evidence in one report.
import { writeFile } from 'node:fs/promises';
import { type AuditVerifyReport, openCatalogFromEnv, StoreAuditTrail, verifyAuditTrail } from '@lifeboat/adapters';
import {
  type AuditChainResult,
  type AuditEntry,
  type AuditReport,
  type AuditStat,
  formatSeconds,
  LifeboatError,
} from '@lifeboat/domain';
import { type GlobalOptions, openRuntime } from '../context.js';
import { EXIT, printJson } from '../output.js';

/** Differences printed one per line; the rest are counted (--json has the first hundred). */
const SHOWN_DIFFERENCES = 20;

export async function auditVerifyCommand(opts: GlobalOptions & { json?: boolean }): Promise<number> {
  const runtime = await openRuntime(opts);
  const catalog = await openCatalogFromEnv();
  const report = await verifyAuditTrail({ store: runtime.store, catalog });
  if (opts.json) printJson(report);
  else for (const line of describeReport(report)) console.log(line);
  // The same code as a backup that fails verification: the thing checked is not intact.
  return report.ok ? EXIT.ok : EXIT.failed;
}

export async function auditListCommand(
  opts: GlobalOptions & { limit?: string | number; json?: boolean },
): Promise<number> {
  const limit = opts.limit === undefined ? 20 : Number(opts.limit);
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new LifeboatError('INVALID_REQUEST', `--limit must be a whole number of 1 or more, not "${opts.limit}"`);
  }
  const runtime = await openRuntime(opts);
  const trail = new StoreAuditTrail({ store: runtime.store });
  const head = await trail.head();
  const entries = head ? await trail.list({ afterSeq: Math.max(0, head.seq - limit) }) : [];
  if (opts.json) {
    printJson({ store: runtime.store.location, head, entries });
    return EXIT.ok;
  }
  if (entries.length === 0) {
    console.log(`the audit trail in ${runtime.store.location} is empty`);
    return EXIT.ok;
  }
  const shown = entries.length < (head?.seq ?? 0) ? `the newest ${entries.length} of ${head?.seq}` : 'all';
  console.log(`audit trail in ${runtime.store.location} (${shown} entries; \`lifeboat audit verify\` checks them):`);
  for (const e of entries) console.log(`  ${formatEntry(e)}`);
  return EXIT.ok;
}

/** The report as lines for a person: the verdict first, then each side, then what differs. */
export function describeReport(report: AuditVerifyReport): string[] {
  const { store, catalog, firstBroken } = report;
  if (report.ok) {
    const agrees = catalog ? `; catalog agrees (${catalog.rows} rows)` : '';
    return [`audit trail: ${store.entries} entries, chain intact (store)${agrees}`];
  }
  const lines: string[] = [];
  if (firstBroken) {
    lines.push(`audit trail BROKEN at entry ${firstBroken.seq} in the ${firstBroken.where}: ${firstBroken.reason}`);
  }
  lines.push(`  store ${store.location}: ${store.entries} entries, ${chainText(store.chain)}`);
  if (catalog) {
    lines.push(`  catalog ${catalog.location}: ${catalog.rows} rows, ${chainText(catalog.chain)}`);
    if (catalog.differenceCount > 0) {
      lines.push(`  the catalog and the store disagree at ${catalog.differenceCount} point(s):`);
      for (const d of catalog.differences.slice(0, SHOWN_DIFFERENCES)) {
        lines.push(`    entry ${d.seq} (${d.side}): ${d.reason}`);
      }
      const more = catalog.differenceCount - Math.min(catalog.differences.length, SHOWN_DIFFERENCES);
      if (more > 0) lines.push(`    … and ${more} more (--json lists the first ${catalog.differences.length})`);
    }
  }
  return lines;
}

function chainText(chain: AuditChainResult): string {
  return chain.ok ? 'chain intact' : `chain broken at entry ${chain.firstBroken.seq}: ${chain.firstBroken.reason}`;
}

function formatEntry(e: AuditEntry): string {
  const details = Object.keys(e.details).length ? `  ${JSON.stringify(e.details)}` : '';
  return `#${e.seq}  ${e.at}  ${e.outcome.padEnd(7)} ${e.actor}  ${e.action}${e.target ? `  ${e.target}` : ''}${details}`;
}

/**
 * The year's audit report: a compact summary, the report as JSON (--json), the page (--html).
 * Exit 0 when it is clean, 1 when it has findings (as `audit verify` for a broken trail: the
 * thing audited does not hold), 2 for a bad --year.
 */
export async function auditReportCommand(
  opts: GlobalOptions & { year?: string; html?: string; json?: boolean; now?: Date },
): Promise<number> {
  const now = opts.now ?? new Date();
  const year = parseYear(opts.year, now);
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  const catalog = await openCatalogFromEnv();
  const { auditReportFor, renderAuditReportHtml } = await import('@lifeboat/drill-scheduler');
  const report = await auditReportFor({ runtime, target, year, now, catalog });
  if (opts.html) await writeFile(opts.html, renderAuditReportHtml(report));
  if (opts.json) printJson(report);
  else {
    for (const line of describeAuditReport(report)) console.log(line);
    if (opts.html) console.log(`page written to ${opts.html}`);
  }
  return report.verdict === 'CLEAN' ? EXIT.ok : EXIT.failed;
}

/** `--year`: four digits, not after the current year (UTC). */
export function parseYear(text: string | undefined, now: Date): number {
  const current = now.getUTCFullYear();
  if (text === undefined || !/^\d{4}$/.test(text.trim())) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `--year must be a year of four digits, such as ${current}, not "${text ?? ''}"`,
    );
  }
  const year = Number(text.trim());
  if (year > current) {
    throw new LifeboatError('INVALID_REQUEST', `--year ${year} is in the future (it is ${current} in UTC)`, {
      hint: `report on ${current} (the year so far) or an earlier year`,
    });
  }
  if (year < 1970) throw new LifeboatError('INVALID_REQUEST', `--year ${year} is before any record could exist`);
  return year;
}

const secs = (v: number | null) => (v === null ? '—' : formatSeconds(v));
const stat = (s: AuditStat) => (s.measured === 0 ? '—' : `${secs(s.worst)}/${secs(s.median)}`);

/** The report as lines for a person: the verdict, the drill table, locations, restores, the trail, the findings. */
export function describeAuditReport(report: AuditReport): string[] {
  const s = report.summary;
  const p = report.period;
  const lines = [
    `DR audit ${report.year} of ${report.target}: ${report.verdict}${report.findings.length ? ` (${report.findings.length} finding${report.findings.length === 1 ? '' : 's'})` : ''}`,
    `period ${p.start.slice(0, 10)} to ${p.end.slice(0, 16).replace('T', ' ')}Z${p.complete ? '' : ' (the year so far)'}, ${p.days} days`,
    `drills: ${s.runs} runs of ${s.scheduled} scheduled (${s.missed} missed), ${s.passed} passed, ${s.failed} failed`,
    `  ${'drill'.padEnd(26)}${'sched'.padStart(6)}${'runs'.padStart(6)}${'missed'.padStart(7)}${'pass'.padStart(6)}${'fail'.padStart(6)}${'targets'.padStart(9)}  RTO worst/median   RPO worst/median`,
  ];
  for (const d of report.drills) {
    const targets = d.targetsMet === null ? '—' : `${d.targetsMet}/${d.runs}`;
    lines.push(
      `  ${d.drill.padEnd(26)}${String(d.scheduled).padStart(6)}${String(d.runs).padStart(6)}${String(d.missed).padStart(7)}${String(d.passed).padStart(6)}${String(d.failed).padStart(6)}${targets.padStart(9)}  ${stat(d.rto).padEnd(17)}  ${stat(d.rpo)}`,
    );
  }
  lines.push('backups:');
  for (const l of report.locations) {
    if (!l.reachable) {
      lines.push(`  ${l.location}: UNREACHABLE: ${l.problem ?? ''}`);
      continue;
    }
    const gap = l.longestGap
      ? `, longest without ${formatSeconds(l.longestGap.seconds)} (${l.longestGap.from.slice(0, 10)} to ${l.longestGap.to.slice(0, 10)})`
      : '';
    const pruned = l.pruned ? `, ${l.pruned} pruned since` : '';
    lines.push(
      `  ${l.location}${l.primary && l.location !== 'primary' ? ' (primary)' : ''}: ${l.backups} backups on ${l.daysCovered} of ${l.days} days${gap}; ${l.verified} verified, ${l.failedVerification} failed${pruned}`,
    );
  }
  const r = report.restores;
  lines.push(
    `restores: ${r.count} (${r.byOutcome.COMPLETED ?? 0} completed, ${r.byOutcome.FAILED ?? 0} failed; ${r.byDestination.production} into production), ready to trade worst/median ${stat(r.toReady)}`,
  );
  const actions = Object.entries(report.killSwitch.byAction).map(
    ([action, o]) =>
      `${action} ${o.ok}${o.refused ? ` (+${o.refused} refused)` : ''}${o.failed ? ` (+${o.failed} failed)` : ''}`,
  );
  lines.push(`kill switch: ${report.killSwitch.count} events${actions.length ? `: ${actions.join(', ')}` : ''}`);
  const c = report.auditChain;
  lines.push(
    c.ok
      ? `audit trail: ${c.entries} entries, chain intact${c.catalog ? `; catalog ${c.catalog.differences} differences` : ''}`
      : `audit trail: BROKEN at entry ${c.firstBroken?.seq} in the ${c.firstBroken?.where}: ${c.firstBroken?.reason}`,
  );
  const unresolved = report.failures.filter((f) => !f.nextPass).length;
  lines.push(`failures: ${report.failures.length} (${unresolved} not followed by a pass)`);
  if (report.findings.length) {
    lines.push('findings:');
    for (const [i, f] of report.findings.entries()) lines.push(`  ${i + 1}. ${f.text}`);
  } else lines.push('findings: none');
  return lines;
}
