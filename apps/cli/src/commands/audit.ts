// `lifeboat audit verify` and `audit list`: proof that the audit trail is whole (the store's
// hash chain, and the catalog's copy in distributed mode), and its newest entries.
import { type AuditVerifyReport, openCatalogFromEnv, StoreAuditTrail, verifyAuditTrail } from '@lifeboat/adapters';
import { type AuditChainResult, type AuditEntry, LifeboatError } from '@lifeboat/domain';
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
