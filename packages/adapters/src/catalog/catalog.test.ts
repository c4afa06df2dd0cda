// The PostgreSQL catalog against a real PostgreSQL: migrations applied once, records read
// from a store, and `sync` making the tables match the store again.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layout } from '@lifeboat/domain';
import { getTestStack, type TestStack } from '@lifeboat/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreAuditTrail } from '../audit/store.js';
import { FileLockProvider } from '../lock/file.js';
import { FsObjectStore } from '../object-store/fs.js';
import { PostgresCatalog } from './postgres.js';

let stack: TestStack;
let url: string;
let dir: string;
let store: FsObjectStore;

const put = (key: string, doc: unknown) => store.put(key, Buffer.from(JSON.stringify(doc)));

beforeAll(async () => {
  stack = await getTestStack();
  url = await stack.postgres.createDatabase('catalog');
  dir = mkdtempSync(join(tmpdir(), 'lifeboat-catalog-'));
  store = new FsObjectStore(dir);
  await put('demo/backups/20261126T010000Z-full-aaaa/manifest.json', {
    backupId: '20261126T010000Z-full-aaaa',
    kind: 'full',
    createdAt: '2026-11-26T01:00:00.000Z',
    archive: { size: 1234, encrypted: true },
  });
  await put('demo/backups/20261126T010000Z-full-aaaa/verifications/20261126T010001000Z-quick-ok.json', {
    at: '2026-11-26T01:00:01.000Z',
  });
  await put('demo/backups/20261126T010000Z-full-aaaa/verifications/20261126T020000000Z-full-failed.json', {
    at: '2026-11-26T02:00:00.000Z',
  });
  await put('demo/restores/20261126T030000Z-db-corruption.json', {
    scenario: 'db-corruption',
    outcome: 'COMPLETED',
    startedAt: '2026-11-26T03:00:00.000Z',
    endedAt: '2026-11-26T03:00:09.000Z',
    backupId: '20261126T010000Z-full-aaaa',
    rto: { toReadyMs: 9000 },
    readyToTrade: true,
    destination: { kind: 'production', root: '/opt/sofia' },
    killSwitch: 'ON',
  });
  await put('demo/reports/reconciliation/20261126T030008.000Z-PASS_WITH_CORRECTIONS.json', {
    timestamp: '2026-11-26T03:00:08.000Z',
    verdict: 'PASS_WITH_CORRECTIONS',
    ready_to_trade: true,
    actions_taken: [
      { kind: 'backfill_fill', key: 't1', detail: 'a fill' },
      { kind: 'rebuild_position', key: 'main:BTC/USDT', detail: 'a position' },
    ],
  });
  await put('demo/reports/reconciliation-copies/20261126T040000.000Z-PASS.json', {
    timestamp: '2026-11-26T04:00:00.000Z',
    verdict: 'PASS',
    ready_to_trade: true,
    actions_taken: [],
  });
  await put('demo/drills/20261126T050000Z-database-restore.json', {
    id: '20261126T050000Z-database-restore',
    drill: 'database-restore',
    started_at: '2026-11-26T05:00:00.000Z',
    finished_at: '2026-11-26T05:00:12.000Z',
    verdict: 'PASS',
    measured: { rto_seconds: 12.5, rpo_seconds: 3.2 },
  });
  // Not catalog records: ignored.
  await put('demo/backups/20261126T010000Z-full-aaaa/archive.tar.gz.age', { not: 'json really' });
  await put('other/drills/20261126T050000Z-kill-switch.json', { id: 'x', drill: 'kill-switch' });
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await stack.postgres.dropDatabase(url);
});

async function query<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

describe('the PostgreSQL catalog', () => {
  it('applies its migrations once', async () => {
    const catalog = new PostgresCatalog(url);
    expect(await catalog.migrate()).toEqual([1, 2]);
    expect(await catalog.migrate()).toEqual([]);
    expect(new URL(catalog.location).password).toBe('');
  });

  it("rebuilds from the store: every record, each backup's newest verification, the audit events", async () => {
    const catalog = new PostgresCatalog(url);
    const result = await catalog.sync(store, ['demo']);
    expect(result.rows).toEqual({ backup: 1, restore: 1, reconciliation: 2, drill: 1, audit_events: 4 });
    expect(await catalog.counts('demo')).toEqual({
      lifeboat_backups: 1,
      lifeboat_restores: 1,
      lifeboat_reconciliations: 2,
      lifeboat_drills: 1,
      lifeboat_audit_events: 4,
    });
    const [backup] = await query<{ bytes: string; verified_level: string; verified_ok: boolean; encrypted: boolean }>(
      'SELECT bytes, verified_level, verified_ok, encrypted FROM lifeboat_backups',
    );
    expect(backup).toEqual({ bytes: '1234', verified_level: 'full', verified_ok: false, encrypted: true });
    const copies = await query<{ of_copy: boolean; verdict: string }>(
      'SELECT of_copy, verdict FROM lifeboat_reconciliations ORDER BY at',
    );
    expect(copies).toEqual([
      { of_copy: false, verdict: 'PASS_WITH_CORRECTIONS' },
      { of_copy: true, verdict: 'PASS' },
    ]);
    const events = await query<{ event: string }>('SELECT event FROM lifeboat_audit_events ORDER BY at, id');
    expect(events.map((e) => e.event)).toEqual([
      'reconciliation_correction:backfill_fill',
      'reconciliation_correction:rebuild_position',
      'restore',
      'drill',
    ]);
    const [drill] = await query<{ rto_seconds: number }>('SELECT rto_seconds FROM lifeboat_drills');
    expect(drill?.rto_seconds).toBe(12.5);
  });

  it('ingests one new record, and a second sync removes the rows of objects gone from the store', async () => {
    const catalog = new PostgresCatalog(url);
    const key = 'demo/drills/20261126T060000Z-cold-restore.json';
    await put(key, {
      id: '20261126T060000Z-cold-restore',
      drill: 'cold-restore',
      started_at: '2026-11-26T06:00:00.000Z',
      verdict: 'FAIL',
      measured: { rto_seconds: null, rpo_seconds: null },
    });
    expect(await catalog.ingest(store, key)).toBe(true);
    expect(await catalog.ingest(store, 'demo/backups/20261126T010000Z-full-aaaa/archive.tar.gz.age')).toBe(false);
    expect((await catalog.counts('demo')).lifeboat_drills).toBe(2);

    await store.delete('demo/restores/20261126T030000Z-db-corruption.json');
    const again = await catalog.sync(store, ['demo']);
    expect(again.removed).toBe(2); // the restore and its audit event
    expect(await catalog.counts('demo')).toMatchObject({ lifeboat_restores: 0, lifeboat_drills: 2 });
    // The same sync twice changes nothing more.
    expect((await catalog.sync(store, ['demo'])).removed).toBe(0);
  });

  it('mirrors audit entries as stored, keeps a row that already exists, and sync adds only the missing ones', async () => {
    const catalog = new PostgresCatalog(url);
    const locks = mkdtempSync(join(tmpdir(), 'lifeboat-catalog-locks-'));
    const trail = new StoreAuditTrail({ store, locks: new FileLockProvider({ dir: locks }) });
    const first = await trail.append({
      actor: 'ops',
      action: 'backup.completed',
      target: 'demo',
      details: { bytes: 10 },
    });
    const second = await trail.append({ actor: 'restore-worker', action: 'restore.failed', outcome: 'failed' });
    expect(await catalog.appendAudit(first)).toBe(true);
    expect(await catalog.appendAudit({ ...first, actor: 'someone else' })).toBe(false);
    const [row] = await catalog.auditEntries();
    expect(row).toEqual({
      seq: 1,
      at: first.at,
      actor: 'ops',
      action: 'backup.completed',
      target: 'demo',
      outcome: 'ok',
      details: { bytes: 10 },
      prev_hash: first.prevHash,
      hash: first.hash,
      entry: first,
    });
    // An entry that does not parse is left to `lifeboat audit verify`, not copied.
    await store.put(layout.auditEntry(3), Buffer.from('{"seq": 3, "not": "an entry"}'));
    const result = await catalog.sync(store, ['demo']);
    expect(result.auditLog).toEqual({ entries: 3, added: 1, skipped: 1 });
    expect((await catalog.auditEntries()).map((r) => r.entry)).toEqual([first, second]);
    expect((await catalog.sync(store, ['demo'])).auditLog).toEqual({ entries: 3, added: 0, skipped: 1 });
    rmSync(locks, { recursive: true, force: true });
  });
});
