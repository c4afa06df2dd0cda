// Checks the audit trail end to end: the store's chain, and in distributed mode the catalog's
// copy, its columns against its entries, and every entry against the store's.
import {
  type AuditChainResult,
  canonicalJson,
  layout,
  type ObjectStore,
  parseAuditKey,
  type Sha256Hex,
  verifyAuditChain,
} from '@lifeboat/domain';
import type { AuditLogRow, PostgresCatalog } from '../catalog/postgres.js';
import { sha256hex as defaultSha256hex, mapLimit, readJson } from './store.js';

/** Something wrong at one seq, and where it lies. */
export interface AuditDifference {
  seq: number;
  /** Where the fault is: the entry is missing or wrong there; `both` when the two copies differ. */
  side: 'store' | 'catalog' | 'both';
  reason: string;
}

export interface AuditVerifyReport {
  /** True only when the store's chain is intact and, with a catalog, the catalog agrees entry for entry. */
  ok: boolean;
  store: { location: string; entries: number; chain: AuditChainResult };
  catalog: {
    location: string;
    rows: number;
    chain: AuditChainResult;
    /** The first of them (by seq), at most MAX_DIFFERENCES. */
    differences: AuditDifference[];
    differenceCount: number;
  } | null;
  /** The lowest seq at which anything is wrong. */
  firstBroken: { seq: number; where: 'store' | 'catalog'; reason: string } | null;
}

const MAX_DIFFERENCES = 100;
const READ_CONCURRENCY = 16;

/** A stored object that is not JSON: compared and chained as itself, so it never matches. */
interface Unreadable {
  unreadable: string;
}

export async function verifyAuditTrail(options: {
  store: ObjectStore;
  catalog?: PostgresCatalog | null;
  sha256hex?: Sha256Hex;
}): Promise<AuditVerifyReport> {
  const { store } = options;
  const hash = options.sha256hex ?? defaultSha256hex;
  const stored = await readStore(store);
  // A key's own problem (not JSON, another seq inside) says more than the gap the chain then sees.
  const storeChain = withProblems(verifyAuditChain(stored.raws, hash), stored.problems, 'problem');
  const report: AuditVerifyReport = {
    ok: storeChain.ok,
    store: { location: store.location, entries: stored.raws.length, chain: storeChain },
    catalog: null,
    firstBroken: storeChain.ok ? null : { ...storeChain.firstBroken, where: 'store' },
  };
  if (!options.catalog) return report;

  const rows = await options.catalog.auditEntries();
  const columnProblems = rows.flatMap((row) => {
    const fields = disagreeingColumns(row);
    return fields.length ? [{ seq: row.seq, reason: `its columns disagree with its entry: ${fields.join(', ')}` }] : [];
  });
  // An edited entry usually leaves its columns disagreeing too; the hash says more.
  const catalogChain = withProblems(
    verifyAuditChain(
      rows.map((r) => r.entry),
      hash,
    ),
    columnProblems,
    'chain',
  );
  const differences = await compare(store, stored.bySeq, rows);
  for (const p of columnProblems) differences.push({ seq: p.seq, side: 'catalog', reason: p.reason });
  differences.sort((a, b) => a.seq - b.seq);
  report.catalog = {
    location: options.catalog.location,
    rows: rows.length,
    chain: catalogChain,
    differences: differences.slice(0, MAX_DIFFERENCES),
    differenceCount: differences.length,
  };
  report.ok = storeChain.ok && catalogChain.ok && differences.length === 0;
  // The store first when both break at one seq: it is the source of truth.
  const candidates: Array<NonNullable<AuditVerifyReport['firstBroken']>> = [];
  if (!storeChain.ok) candidates.push({ ...storeChain.firstBroken, where: 'store' });
  if (!catalogChain.ok) candidates.push({ ...catalogChain.firstBroken, where: 'catalog' });
  const [firstDiff] = differences;
  if (firstDiff) {
    candidates.push({
      seq: firstDiff.seq,
      where: firstDiff.side === 'store' ? 'store' : 'catalog',
      reason: firstDiff.reason,
    });
  }
  report.firstBroken = candidates.reduce<AuditVerifyReport['firstBroken']>(
    (best, c) => (best === null || c.seq < best.seq ? c : best),
    null,
  );
  return report;
}

/** Every entry object of the store in key order, and what is wrong with a key itself. */
async function readStore(store: ObjectStore): Promise<{
  raws: unknown[];
  bySeq: Map<number, unknown>;
  problems: Array<{ seq: number; reason: string }>;
}> {
  const keys: Array<{ key: string; seq: number }> = [];
  for await (const o of store.list(layout.auditPrefix)) {
    const seq = parseAuditKey(o.key);
    if (seq !== null) keys.push({ key: o.key, seq });
  }
  const problems: Array<{ seq: number; reason: string }> = [];
  const raws = await mapLimit(keys, READ_CONCURRENCY, async ({ key, seq }): Promise<unknown> => {
    try {
      return await readJson(store, key);
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      problems.push({ seq, reason: `${key} is not JSON` });
      return { unreadable: key } satisfies Unreadable;
    }
  });
  const bySeq = new Map<number, unknown>();
  keys.forEach(({ key, seq }, i) => {
    const raw = raws[i];
    bySeq.set(seq, raw);
    const inner = (raw as { seq?: unknown } | null)?.seq;
    if (!(raw as Unreadable | null)?.unreadable && inner !== seq) {
      problems.push({ seq, reason: `${key} holds entry ${JSON.stringify(inner)}, not ${seq}` });
    }
  });
  return { raws, bySeq, problems };
}

/** Joins problems found outside the chain walk to its result: the lowest seq wins; `tie` says which wins at one seq. */
function withProblems(
  chain: AuditChainResult,
  problems: ReadonlyArray<{ seq: number; reason: string }>,
  tie: 'problem' | 'chain',
): AuditChainResult {
  let first = chain.ok ? null : chain.firstBroken;
  for (const p of problems) {
    if (first === null || p.seq < first.seq || (p.seq === first.seq && tie === 'problem')) first = p;
  }
  return first === null ? chain : { ok: false, count: chain.count, firstBroken: first };
}

/** The columns of a catalog row that say something other than its entry. */
function disagreeingColumns(row: AuditLogRow): string[] {
  const e = (row.entry ?? {}) as Record<string, unknown>;
  const out: string[] = [];
  if (row.seq !== e.seq) out.push('seq');
  if (typeof e.at !== 'string' || Date.parse(row.at) !== Date.parse(e.at)) out.push('at');
  if (row.actor !== e.actor) out.push('actor');
  if (row.action !== e.action) out.push('action');
  if (row.target !== (e.target ?? null)) out.push('target');
  if (row.outcome !== e.outcome) out.push('outcome');
  if (canonicalJson(row.details) !== canonicalJson(e.details)) out.push('details');
  if (row.prev_hash !== e.prevHash) out.push('prev_hash');
  if (row.hash !== e.hash) out.push('hash');
  return out;
}

/** Entry by entry, the catalog's copy against the store's. */
async function compare(
  store: ObjectStore,
  bySeq: Map<number, unknown>,
  rows: readonly AuditLogRow[],
): Promise<AuditDifference[]> {
  const out: AuditDifference[] = [];
  const inCatalog = new Map(rows.map((r) => [r.seq, r.entry]));
  for (const seq of bySeq.keys()) {
    if (!inCatalog.has(seq)) {
      out.push({ seq, side: 'catalog', reason: 'missing from the catalog (run `lifeboat catalog sync`)' });
    }
  }
  const storeMax = Math.max(0, ...bySeq.keys());
  for (const [seq, entry] of inCatalog) {
    let stored = bySeq.get(seq);
    // Appended after the store was listed: read it now rather than call it missing.
    if (stored === undefined && seq > storeMax && (await store.head(layout.auditEntry(seq)))) {
      stored = await readJson(store, layout.auditEntry(seq)).catch(() => ({ unreadable: layout.auditEntry(seq) }));
    }
    if (stored === undefined)
      out.push({ seq, side: 'store', reason: 'missing from the store (only the catalog has it)' });
    else if (canonicalJson(stored) !== canonicalJson(entry)) {
      out.push({ seq, side: 'both', reason: "the catalog's entry differs from the store's" });
    }
  }
  return out;
}
