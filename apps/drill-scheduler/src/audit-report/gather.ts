// Gathers a year of one target's evidence for the annual audit report (docs/FORMAT.md §9):
// drill reports and restore records from the primary store, each location's backups, the
// kill-switch entries of the audit trail, and the trail's verification. The report itself is
// built by the domain (buildAuditReport); this module only reads.
import { type AuditVerifyReport, type PostgresCatalog, type Runtime, verifyAuditTrail } from '@lifeboat/adapters';
import { listBackups } from '@lifeboat/backup';
import {
  type AuditChainSummary,
  AuditEntry,
  type AuditReport,
  type AuditReportInput,
  type AuditRestoreInput,
  AuditRestoreRecord,
  backupIdTime,
  buildAuditReport,
  compactUtc,
  DrillReport,
  describeZodError,
  drillSchedules,
  isKillSwitchAction,
  type KillSwitchAuditEvent,
  LifeboatError,
  type LocationBackups,
  layout,
  type ObjectStore,
  parseAuditKey,
} from '@lifeboat/domain';

/** Objects read at once. */
const READ_CONCURRENCY = 8;

export interface AuditGatherOptions {
  runtime: Runtime;
  target: string;
  year: number;
  /** The report's instant (default: now): the period ends here when the year has not. */
  now?: Date;
  maxBackupGapDays?: number;
}

/** Everything the report needs but the audit trail's verification. */
export type AuditRecords = Omit<AuditReportInput, 'auditChain'>;

/** Gathers the evidence, verifies the audit trail (and the catalog's copy, when given) and builds the report. */
export async function auditReportFor(
  options: AuditGatherOptions & { catalog?: PostgresCatalog | null },
): Promise<AuditReport> {
  const records = await gatherAuditRecords(options);
  const auditChain = await auditChainSummary(options.runtime.store, options.catalog ?? null);
  return buildAuditReport({ ...records, auditChain });
}

export async function gatherAuditRecords(options: AuditGatherOptions): Promise<AuditRecords> {
  const { runtime, target, year } = options;
  const now = options.now ?? new Date();
  const from = new Date(Date.UTC(year, 0, 1));
  if (now.getTime() <= from.getTime()) {
    throw new LifeboatError('INVALID_REQUEST', `audit report: ${year} has not begun at ${now.toISOString()}`, {
      hint: 'report on this year or an earlier one',
    });
  }
  const store = runtime.store;
  const unreadable: Array<{ key: string; problem: string }> = [];
  // Runs after the period are read too (up to now): they tell what followed a failure late in the year.
  const drills = await readRecords(store, layout.drillsPrefix(target), from, now, unreadable, (raw) => {
    const parsed = DrillReport.safeParse(raw);
    if (!parsed.success) throw new Error(describeZodError(parsed.error, 'drill report'));
    return parsed.data as DrillReport;
  });
  const restores = await readRecords(store, layout.restoresPrefix(target), from, now, unreadable, (raw, id) => {
    const parsed = AuditRestoreRecord.safeParse(raw);
    if (!parsed.success) throw new Error(describeZodError(parsed.error, 'restore record'));
    return { ...parsed.data, id } satisfies AuditRestoreInput;
  });
  const trail = (await readAuditEntries(store)).filter((e) => e.target === target);
  const killSwitchEvents: KillSwitchAuditEvent[] = trail.filter((e) => isKillSwitchAction(e.action));
  return {
    target,
    year,
    generatedAt: now,
    schedules: drillSchedules(runtime.loaded.config.drills),
    drills: drills.map((d) => d.record),
    restores: restores.map((r) => r.record),
    locations: await backupsPerLocation(runtime, target, trail),
    killSwitchEvents,
    unreadable,
    ...(options.maxBackupGapDays !== undefined ? { maxBackupGapDays: options.maxBackupGapDays } : {}),
  };
}

/** `lifeboat audit verify`'s result, as much of it as the report keeps. */
export async function auditChainSummary(
  store: ObjectStore,
  catalog: PostgresCatalog | null,
): Promise<AuditChainSummary> {
  return summarizeVerification(await verifyAuditTrail({ store, catalog }));
}

export function summarizeVerification(report: AuditVerifyReport): AuditChainSummary {
  return {
    ok: report.ok,
    location: report.store.location,
    entries: report.store.entries,
    catalog: report.catalog
      ? { location: report.catalog.location, rows: report.catalog.rows, differences: report.catalog.differenceCount }
      : null,
    firstBroken: report.firstBroken,
  };
}

/**
 * Every location's backups of the target. A location lists only what its retention kept, so
 * the audit trail's records of backups made (`backup.completed`, the primary) and copied
 * (`replicate.completed`, the others) add those removed since, marked `pruned`: coverage is
 * judged on every backup there was evidence of, not on what happens to be left.
 */
async function backupsPerLocation(
  runtime: Runtime,
  target: string,
  trail: readonly AuditEntry[],
): Promise<LocationBackups[]> {
  return Promise.all(
    runtime.locations.map(async (location): Promise<LocationBackups> => {
      let listed: Awaited<ReturnType<typeof listBackups>>;
      try {
        listed = await listBackups(runtime.at(location.name), target);
      } catch (err) {
        // One location down leaves the report to say so; it never stops the audit.
        return {
          location: location.name,
          primary: location.primary,
          reachable: false,
          problem: (err as Error)?.message ?? String(err),
          backups: [],
        };
      }
      const backups: Array<LocationBackups['backups'][number]> = listed.map((b) => ({
        backupId: b.backupId,
        createdAt: b.createdAt,
        verified: b.verification ? b.verification.ok : null,
      }));
      const known = new Set(backups.map((b) => b.backupId));
      for (const e of trail) {
        if (e.outcome !== 'ok') continue;
        const made = location.primary ? e.action === 'backup.completed' : e.action === 'replicate.completed';
        if (!made || (!location.primary && e.details.location !== location.name)) continue;
        const id = e.details.backupId;
        const at = typeof id === 'string' ? backupIdTime(id) : null;
        if (!at || known.has(id as string)) continue;
        known.add(id as string);
        backups.push({ backupId: id as string, createdAt: at.toISOString(), verified: null, pruned: true });
      }
      return { location: location.name, primary: location.primary, reachable: true, backups };
    }),
  );
}

/**
 * The records under a prefix whose key starts with a compact UTC stamp in [from, until] (drill
 * reports and restore records are named so); one that does not read is noted, never fatal.
 */
async function readRecords<T>(
  store: ObjectStore,
  prefix: string,
  from: Date,
  until: Date,
  unreadable: Array<{ key: string; problem: string }>,
  parse: (raw: unknown, id: string) => T,
): Promise<Array<{ key: string; record: T }>> {
  const lo = compactUtc(from);
  const hi = compactUtc(until);
  const keys: string[] = [];
  for await (const o of store.list(prefix)) {
    const name = o.key.slice(prefix.length);
    if (!name.endsWith('.json') || name.includes('/')) continue;
    const stamp = name.slice(0, lo.length);
    if (stamp >= lo && stamp <= hi) keys.push(o.key);
  }
  keys.sort();
  const out = await mapLimit(keys, async (key) => {
    // A store that does not answer fails the gathering; only a record that does not read is noted.
    const bytes = await store.getBytes(key);
    try {
      const raw = JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
      return { key, record: parse(raw, key.slice(prefix.length, -'.json'.length)) };
    } catch (err) {
      unreadable.push({ key, problem: err instanceof SyntaxError ? 'not JSON' : (err as Error).message });
      return null;
    }
  });
  return out.filter((r): r is { key: string; record: T } => r !== null);
}

/** Every entry of the audit trail that parses; what does not is the chain verification's to report. */
async function readAuditEntries(store: ObjectStore): Promise<AuditEntry[]> {
  const keys: string[] = [];
  for await (const o of store.list(layout.auditPrefix)) if (parseAuditKey(o.key) !== null) keys.push(o.key);
  const entries = await mapLimit(keys, async (key) => {
    const bytes = await store.getBytes(key);
    try {
      const parsed = AuditEntry.safeParse(JSON.parse(Buffer.from(bytes).toString('utf8')));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  });
  return entries.filter((e): e is AuditEntry => e !== null).sort((a, b) => a.seq - b.seq);
}

async function mapLimit<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, items.length) }, worker));
  return out;
}
