// The audit trail against real backends: chains on a directory and on S3, appends racing from
// several trails under the file lock and the Redis lock, the PostgreSQL mirror, and
// verification naming the one entry that was edited or removed, in the store or the catalog.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AuditEntry,
  auditHash,
  GENESIS_HASH,
  type JobContext,
  LifeboatError,
  layout,
  type ObjectStore,
} from '@lifeboat/domain';
import { getTestStack, stackStoreConfig, type TestStack, uniqueName } from '@lifeboat/testkit';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresCatalog } from '../catalog/postgres.js';
import { parseConfig } from '../config/load.js';
import { createRuntime } from '../config/runtime.js';
import { FileLockProvider, RedisLockProvider } from '../lock/index.js';
import { FsObjectStore } from '../object-store/fs.js';
import { S3ObjectStore } from '../object-store/s3.js';
import { auditedHandler, createAuditTrail, StoreAuditTrail, sha256hex, verifyAuditTrail } from './index.js';

let stack: TestStack;
const dirs: string[] = [];
const s3Stores: S3ObjectStore[] = [];
const redisProviders: RedisLockProvider[] = [];
const databases: string[] = [];
const redisPrefixes: string[] = [];

async function tempDir(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `lifeboat-audit-${name}-`));
  dirs.push(dir);
  return dir;
}

async function fsStore(): Promise<FsObjectStore> {
  return new FsObjectStore(await tempDir('store'));
}

async function s3Store(): Promise<S3ObjectStore> {
  const bucket = await stack.s3.createBucket('audit');
  const store = new S3ObjectStore(stackStoreConfig(stack, bucket, uniqueName('trail')));
  s3Stores.push(store);
  return store;
}

function redisLocks(prefix: string): RedisLockProvider {
  const provider = new RedisLockProvider({ url: stack.redis.url, prefix });
  redisProviders.push(provider);
  return provider;
}

async function catalogDb(): Promise<{ catalog: PostgresCatalog; url: string }> {
  const url = await stack.postgres.createDatabase('audit');
  databases.push(url);
  const catalog = new PostgresCatalog(url);
  await catalog.migrate();
  return { catalog, url };
}

/** Changes the catalog behind Lifeboat's back, as someone with SQL access could. */
async function sql(url: string, text: string, values: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(text, values);
  } finally {
    await c.end();
  }
}

async function appendMany(trail: StoreAuditTrail, n: number, actor = 'ops'): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await trail.append({
        actor,
        action: i % 2 ? 'kill_switch.activate' : 'backup.completed',
        ...(i % 3 ? { target: 'demo' } : {}),
        details: { i, note: `event ${i}` },
      }),
    );
  }
  return out;
}

async function readEntry(store: ObjectStore, seq: number): Promise<AuditEntry> {
  return JSON.parse(Buffer.from(await store.getBytes(layout.auditEntry(seq))).toString('utf8')) as AuditEntry;
}

async function writeEntry(store: ObjectStore, seq: number, entry: unknown): Promise<void> {
  await store.put(layout.auditEntry(seq), Buffer.from(JSON.stringify(entry)));
}

const ctx = (jobId: string): JobContext => ({
  jobId,
  attempt: 1,
  progress: () => {},
  signal: new AbortController().signal,
});

beforeAll(async () => {
  stack = await getTestStack();
});

afterAll(async () => {
  for (const store of s3Stores) store.destroy();
  await Promise.all(redisProviders.map((p) => p.close()));
  if (redisPrefixes.length) {
    const admin = new Redis(stack.redis.url, { maxRetriesPerRequest: 1 });
    for (const prefix of redisPrefixes) {
      const keys = await admin.keys(`${prefix}:*`);
      if (keys.length) await admin.del(...keys);
    }
    await admin.quit();
  }
  for (const url of databases) await stack.postgres.dropDatabase(url);
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  await stack?.close();
});

describe.each([
  ['a directory', fsStore],
  ['S3', s3Store],
])('an audit trail in %s', (_name, makeStore) => {
  it('chains every append to the one before it, one object per entry', async () => {
    const store = await makeStore();
    const trail = new StoreAuditTrail({ store, locks: new FileLockProvider({ dir: await tempDir('locks') }) });
    const entries = await appendMany(trail, 12);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(entries[0]?.prevHash).toBe(GENESIS_HASH);
    for (let i = 1; i < entries.length; i++) expect(entries[i]?.prevHash).toBe(entries[i - 1]?.hash);
    expect(entries[2]).toMatchObject({ actor: 'ops', action: 'backup.completed', target: 'demo', outcome: 'ok' });
    expect(entries[0]).not.toHaveProperty('target');

    expect(await readEntry(store, 12)).toEqual(entries[11]);
    expect(await trail.list()).toEqual(entries);
    expect((await trail.list({ afterSeq: 5, limit: 3 })).map((e) => e.seq)).toEqual([6, 7, 8]);
    expect(await trail.head()).toEqual({ seq: 12, hash: entries[11]?.hash });

    const report = await verifyAuditTrail({ store });
    expect(report).toMatchObject({ ok: true, store: { entries: 12, chain: { ok: true, head: { seq: 12 } } } });
    expect(report.firstBroken).toBeNull();
  });

  it('finds the head by listing when HEAD.json is missing or behind, and never overwrites an entry', async () => {
    const store = await makeStore();
    const trail = new StoreAuditTrail({ store, locks: new FileLockProvider({ dir: await tempDir('locks') }) });
    const first = await appendMany(trail, 4);
    await store.delete(layout.auditHead);
    expect((await trail.append({ actor: 'ops', action: 'test.after_lost_head' })).seq).toBe(5);
    // A crash between the entry and the pointer leaves the pointer one behind.
    await store.put(layout.auditHead, Buffer.from(JSON.stringify({ seq: 3, hash: first[2]?.hash })));
    const sixth = await trail.append({ actor: 'ops', action: 'test.after_stale_head' });
    expect(sixth.seq).toBe(6);
    // A pointer that names the wrong hash is not believed either.
    await store.put(layout.auditHead, Buffer.from(JSON.stringify({ seq: 6, hash: 'a'.repeat(64) })));
    expect((await trail.append({ actor: 'ops', action: 'test.after_bad_head' })).seq).toBe(7);
    expect((await readEntry(store, 4)).hash).toBe(first[3]?.hash);
    expect((await verifyAuditTrail({ store })).ok).toBe(true);
  });
});

describe('appends from many processes at once', () => {
  async function race(trails: StoreAuditTrail[], each: number): Promise<AuditEntry[]> {
    const all = await Promise.all(trails.map((t, i) => appendMany(t, each, `worker-${i}`)));
    return all.flat();
  }

  it('get consecutive seqs and one valid chain under the file lock', async () => {
    const store = await fsStore();
    const lockDir = await tempDir('locks');
    // Each trail with its own provider, as separate processes on one host would have.
    const trails = Array.from(
      { length: 5 },
      () =>
        new StoreAuditTrail({ store: new FsObjectStore(store.root), locks: new FileLockProvider({ dir: lockDir }) }),
    );
    const entries = await race(trails, 8);
    expect(entries.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const report = await verifyAuditTrail({ store });
    expect(report.store.chain).toMatchObject({ ok: true, count: 40, head: { seq: 40 } });
  }, 60_000);

  it('get consecutive seqs and one valid chain under the Redis lock, on S3', async () => {
    const prefix = uniqueName('audit');
    redisPrefixes.push(prefix);
    const store = await s3Store();
    const trails = Array.from({ length: 4 }, () => new StoreAuditTrail({ store, locks: redisLocks(prefix) }));
    const entries = await race(trails, 6);
    expect(new Set(entries.map((e) => e.seq)).size).toBe(24);
    const report = await verifyAuditTrail({ store });
    expect(report.store.chain).toMatchObject({ ok: true, count: 24, head: { seq: 24 } });
  }, 60_000);

  it('give up with CONFLICT naming the lock when it stays taken', async () => {
    const store = await fsStore();
    const locks = new FileLockProvider({ dir: await tempDir('locks') });
    const held = await locks.acquire('audit-trail', 'someone else', 30_000);
    try {
      const trail = new StoreAuditTrail({ store, locks, lockWaitMs: 150 });
      const err = await trail.append({ actor: 'ops', action: 'test.blocked' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LifeboatError);
      expect(err).toMatchObject({ code: 'CONFLICT' });
      expect((err as Error).message).toContain('audit trail: the lock audit-trail stayed taken');
    } finally {
      await held.release();
    }
  });
});

describe('the catalog mirror and verification', () => {
  let store: FsObjectStore;
  let catalog: PostgresCatalog;
  let url: string;
  let trail: StoreAuditTrail;

  beforeAll(async () => {
    store = await fsStore();
    ({ catalog, url } = await catalogDb());
    trail = new StoreAuditTrail({ store, catalog, locks: new FileLockProvider({ dir: await tempDir('locks') }) });
    await appendMany(trail, 10);
  });

  it('holds exactly what the store holds, and verification agrees', async () => {
    const rows = await catalog.auditEntries();
    expect(rows.map((r) => r.entry)).toEqual(await trail.list());
    expect(rows[4]).toMatchObject({ seq: 5, actor: 'ops', action: 'backup.completed', target: 'demo', outcome: 'ok' });
    expect(rows[3]).toMatchObject({ seq: 4, action: 'kill_switch.activate', target: null });
    const report = await verifyAuditTrail({ store, catalog });
    expect(report.ok).toBe(true);
    expect(report.catalog).toMatchObject({ rows: 10, chain: { ok: true }, differences: [], differenceCount: 0 });
  });

  it('keeps appending to the store when the catalog fails, and says so in the log', async () => {
    const warnings: string[] = [];
    const broken = new StoreAuditTrail({
      store,
      catalog: new PostgresCatalog('postgres://nobody@127.0.0.1:1/none'),
      locks: new FileLockProvider({ dir: await tempDir('locks') }),
      log: { warn: (_obj, msg) => warnings.push(msg ?? '') },
    });
    const entry = await broken.append({ actor: 'ops', action: 'test.catalog_down' });
    expect(entry.seq).toBe(11);
    expect(warnings.join('\n')).toContain('not mirrored to the catalog');
    const report = await verifyAuditTrail({ store, catalog });
    expect(report.ok).toBe(false);
    expect(report.catalog?.differences).toEqual([
      { seq: 11, side: 'catalog', reason: 'missing from the catalog (run `lifeboat catalog sync`)' },
    ]);
    // `catalog sync` adds what is missing, and verification agrees again.
    const synced = await catalog.sync(store, []);
    expect(synced.auditLog).toEqual({ entries: 11, added: 1, skipped: 0 });
    expect((await verifyAuditTrail({ store, catalog })).ok).toBe(true);
  });

  it('names the entry whose details were edited in the store', async () => {
    const original = await readEntry(store, 4);
    try {
      await writeEntry(store, 4, { ...original, details: { ...original.details, i: 999 } });
      const report = await verifyAuditTrail({ store, catalog });
      expect(report.ok).toBe(false);
      expect(report.store.chain).toEqual({
        ok: false,
        count: 11,
        firstBroken: { seq: 4, reason: 'hash does not match its content (edited?)' },
      });
      expect(report.firstBroken).toEqual({
        seq: 4,
        where: 'store',
        reason: 'hash does not match its content (edited?)',
      });
      expect(report.catalog?.chain.ok).toBe(true);
      expect(report.catalog?.differences).toEqual([
        { seq: 4, side: 'both', reason: "the catalog's entry differs from the store's" },
      ]);
    } finally {
      await writeEntry(store, 4, original);
    }
    expect((await verifyAuditTrail({ store, catalog })).ok).toBe(true);
  });

  it('names the entry missing from the store', async () => {
    const original = await readEntry(store, 6);
    try {
      await store.delete(layout.auditEntry(6));
      const report = await verifyAuditTrail({ store, catalog });
      expect(report.store.chain).toMatchObject({ ok: false, firstBroken: { seq: 6, reason: 'entry 6 missing' } });
      expect(report.catalog?.differences).toEqual([
        { seq: 6, side: 'store', reason: 'missing from the store (only the catalog has it)' },
      ]);
      expect(report.firstBroken).toMatchObject({ seq: 6, where: 'store' });
    } finally {
      await writeEntry(store, 6, original);
    }
  });

  it('names a catalog row whose entry alone was edited', async () => {
    await sql(url, `UPDATE lifeboat_audit_log SET entry = jsonb_set(entry, '{details,i}', '42') WHERE seq = 7`);
    try {
      const report = await verifyAuditTrail({ store, catalog });
      expect(report.ok).toBe(false);
      expect(report.store.chain.ok).toBe(true);
      expect(report.catalog?.chain).toMatchObject({
        ok: false,
        firstBroken: { seq: 7, reason: 'hash does not match its content (edited?)' },
      });
      expect(report.catalog?.differences).toEqual([
        { seq: 7, side: 'both', reason: "the catalog's entry differs from the store's" },
        { seq: 7, side: 'catalog', reason: 'its columns disagree with its entry: details' },
      ]);
      expect(report.firstBroken).toMatchObject({ seq: 7, where: 'catalog' });
    } finally {
      await sql(url, `UPDATE lifeboat_audit_log SET entry = jsonb_set(entry, '{details,i}', '6') WHERE seq = 7`);
    }
    expect((await verifyAuditTrail({ store, catalog })).ok).toBe(true);
  });

  it('names a catalog row whose columns alone were edited', async () => {
    await sql(url, `UPDATE lifeboat_audit_log SET actor = 'someone else', outcome = 'refused' WHERE seq = 2`);
    try {
      const report = await verifyAuditTrail({ store, catalog });
      expect(report.ok).toBe(false);
      expect(report.catalog?.differences).toEqual([
        { seq: 2, side: 'catalog', reason: 'its columns disagree with its entry: actor, outcome' },
      ]);
      expect(report.firstBroken).toEqual({
        seq: 2,
        where: 'catalog',
        reason: 'its columns disagree with its entry: actor, outcome',
      });
    } finally {
      await sql(url, `UPDATE lifeboat_audit_log SET actor = 'ops', outcome = 'ok' WHERE seq = 2`);
    }
  });

  it('names a catalog row rewritten whole with a recomputed hash, and a row only the catalog has', async () => {
    const original = (await catalog.auditEntries()).find((r) => r.seq === 9)?.entry as AuditEntry;
    const forged = { ...original, actor: 'intruder' };
    forged.hash = auditHash(forged, sha256hex);
    await sql(url, 'UPDATE lifeboat_audit_log SET entry = $1, actor = $2, hash = $3 WHERE seq = 9', [
      JSON.stringify(forged),
      'intruder',
      forged.hash,
    ]);
    try {
      const report = await verifyAuditTrail({ store, catalog });
      expect(report.catalog?.chain).toMatchObject({ ok: false, firstBroken: { seq: 10 } });
      expect(report.catalog?.differences).toEqual([
        { seq: 9, side: 'both', reason: "the catalog's entry differs from the store's" },
      ]);
      expect(report.firstBroken).toMatchObject({ seq: 9, where: 'catalog' });
    } finally {
      await sql(url, 'UPDATE lifeboat_audit_log SET entry = $1, actor = $2, hash = $3 WHERE seq = 9', [
        JSON.stringify(original),
        'ops',
        original.hash,
      ]);
    }
    const twelfth = await readEntry(store, 11);
    await sql(
      url,
      `INSERT INTO lifeboat_audit_log (seq, at, actor, action, outcome, details, prev_hash, hash, entry)
       VALUES (12, now(), 'ghost', 'x.y', 'ok', '{}', $1, $2, $3)`,
      [twelfth.hash, 'b'.repeat(64), JSON.stringify({ seq: 12 })],
    );
    try {
      const report = await verifyAuditTrail({ store, catalog });
      expect(report.catalog?.differences[0]).toEqual({
        seq: 12,
        side: 'store',
        reason: 'missing from the store (only the catalog has it)',
      });
    } finally {
      await sql(url, 'DELETE FROM lifeboat_audit_log WHERE seq = 12');
    }
    expect((await verifyAuditTrail({ store, catalog })).ok).toBe(true);
  });
});

describe('createAuditTrail', () => {
  it.each([
    ['embedded mode: a lock file beside the configuration', false],
    ['distributed mode: the Redis lock and the catalog', true],
  ])('wires %s', async (_name, distributed) => {
    const dir = await tempDir('runtime');
    const document = { store: { type: 'fs', path: 'store' }, targets: { demo: { root: 'target' } } };
    const runtime = createRuntime(parseConfig(document, join(dir, 'lifeboat.yaml'), dir), {});
    const env: NodeJS.ProcessEnv = {};
    if (distributed) {
      env.LIFEBOAT_REDIS_URL = stack.redis.url;
      env.LIFEBOAT_QUEUE_PREFIX = uniqueName('audit');
      redisPrefixes.push(env.LIFEBOAT_QUEUE_PREFIX);
      env.LIFEBOAT_CATALOG_URL = (await catalogDb()).url;
    }
    const { trail, catalog, close } = await createAuditTrail(runtime, { env });
    try {
      const entries = await appendMany(trail, 3);
      expect(entries.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(catalog === null).toBe(!distributed);
      if (catalog) expect((await catalog.auditEntries()).map((r) => r.entry)).toEqual(entries);
      expect((await verifyAuditTrail({ store: runtime.store, catalog })).ok).toBe(true);
    } finally {
      await close();
    }
  });
});

describe('audited job handlers', () => {
  it('record a completed job with a small summary of its result', async () => {
    const store = await fsStore();
    const trail = new StoreAuditTrail({ store, locks: new FileLockProvider({ dir: await tempDir('locks') }) });
    const handler = auditedHandler(
      trail,
      'restore',
      async () => ({
        target: 'demo',
        scenario: 'db-corruption',
        outcome: 'COMPLETED',
        readyToTrade: true,
        backupId: '20261126T010000Z-full-aaaa',
        destination: { kind: 'sandbox', root: '/tmp/x', database: 'postgres://u:secret@h/db' },
        steps: [{ name: 'a lot of detail' }],
      }),
      { actor: 'restore-worker', log: { error: () => {} } },
    );
    const result = await handler({ target: 'demo', scenario: 'db-corruption' }, ctx('job-1'));
    expect(result).toMatchObject({ outcome: 'COMPLETED' });
    const [entry] = await trail.list();
    expect(entry).toMatchObject({
      seq: 1,
      actor: 'restore-worker',
      action: 'restore.completed',
      target: 'demo',
      outcome: 'ok',
      details: {
        jobId: 'job-1',
        scenario: 'db-corruption',
        outcome: 'COMPLETED',
        readyToTrade: true,
        backupId: '20261126T010000Z-full-aaaa',
        destination: 'sandbox',
      },
    });
    expect(JSON.stringify(entry)).not.toContain('secret');
    expect(entry?.details).not.toHaveProperty('steps');
  });

  it('record a job that finished with a failure (a restore stopped at a step, a failed drill) as failed', async () => {
    const store = await fsStore();
    const trail = new StoreAuditTrail({ store, locks: new FileLockProvider({ dir: await tempDir('locks') }) });
    const restoreJob = auditedHandler(
      trail,
      'restore',
      async () => ({ outcome: 'FAILED', failedStep: 'fetch-backup' }),
      {
        actor: 'restore-worker',
        log: { error: () => {} },
      },
    );
    const drillJob = auditedHandler(trail, 'drill', async () => ({ id: 'd1', drill: 'kill-switch', verdict: 'FAIL' }), {
      actor: 'drill-worker',
      log: { error: () => {} },
    });
    await restoreJob({ target: 'demo' }, ctx('job-r'));
    await drillJob({ target: 'demo' }, ctx('job-d'));
    const entries = await trail.list();
    expect(entries.map((e) => `${e.action} ${e.outcome}`)).toEqual([
      'restore.completed failed',
      'drill.completed failed',
    ]);
    expect(entries[0]?.details).toMatchObject({ failedStep: 'fetch-backup' });
  });

  it('record a failed job with its code and message, and rethrow its error', async () => {
    const store = await fsStore();
    const trail = new StoreAuditTrail({ store, locks: new FileLockProvider({ dir: await tempDir('locks') }) });
    const boom = new LifeboatError('NOT_FOUND', 'backup 2026 of target demo not found');
    const handler = auditedHandler(
      trail,
      'backup',
      async () => {
        throw boom;
      },
      { actor: 'backup-worker', log: { error: () => {} } },
    );
    await expect(handler({ target: 'demo' }, ctx('job-2'))).rejects.toBe(boom);
    const [entry] = await trail.list();
    expect(entry).toMatchObject({
      action: 'backup.failed',
      target: 'demo',
      outcome: 'failed',
      details: { jobId: 'job-2', code: 'NOT_FOUND', message: 'backup 2026 of target demo not found' },
    });
  });

  it('leave the job as it was when the trail cannot be written, and log it', async () => {
    const errors: string[] = [];
    const failing = {
      append: async () => {
        throw new Error('store down');
      },
      list: async () => [],
    };
    const handler = auditedHandler(
      failing,
      'drill',
      async () => ({ id: 'd1', drill: 'kill-switch', verdict: 'PASS' }),
      {
        actor: 'drill-scheduler',
        log: { error: (obj) => errors.push(JSON.stringify(obj)) },
      },
    );
    expect(await handler({}, ctx('job-3'))).toEqual({ id: 'd1', drill: 'kill-switch', verdict: 'PASS' });
    expect(errors.join('\n')).toContain('store down');
    const failingJob = auditedHandler(
      failing,
      'drill',
      async () => {
        throw new Error('drill crashed');
      },
      { actor: 'drill-scheduler', log: { error: () => {} } },
    );
    await expect(failingJob({}, ctx('job-4'))).rejects.toThrow('drill crashed');
  });
});
