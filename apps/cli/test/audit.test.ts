// `lifeboat audit verify` and `audit list`, called as the CLI calls them: what they print and
// the exit code, for an intact trail, an edited store entry and an edited catalog row.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLockProvider, FsObjectStore, PostgresCatalog, StoreAuditTrail } from '@lifeboat/adapters';
import { type AuditEntry, LifeboatError, layout } from '@lifeboat/domain';
import { getTestStack, type TestStack } from '@lifeboat/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditListCommand, auditVerifyCommand } from '../src/commands/audit.js';

let stack: TestStack;
let dir: string;
let config: string;
let store: FsObjectStore;
let catalogUrl: string;
const savedCatalogUrl = process.env.LIFEBOAT_CATALOG_URL;

/** Runs a command, returning its exit code and everything it printed to stdout. */
async function run(command: () => Promise<number>): Promise<{ code: number; out: string }> {
  const printed: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    printed.push(`${args.join(' ')}\n`);
  });
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    printed.push(String(chunk));
    return true;
  });
  try {
    const code = await command();
    return { code, out: printed.join('') };
  } finally {
    log.mockRestore();
    write.mockRestore();
  }
}

async function entry(seq: number): Promise<AuditEntry> {
  return JSON.parse(Buffer.from(await store.getBytes(layout.auditEntry(seq))).toString('utf8')) as AuditEntry;
}

async function sql(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: catalogUrl });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  stack = await getTestStack();
  catalogUrl = await stack.postgres.createDatabase('cliaudit');
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-cli-audit-'));
  config = join(dir, 'lifeboat.yaml');
  await writeFile(
    config,
    ['store:', '  type: fs', '  path: store', 'targets:', '  demo:', '    root: target', ''].join('\n'),
  );
  store = new FsObjectStore(join(dir, 'store'));
});

afterEach(() => {
  if (savedCatalogUrl === undefined) delete process.env.LIFEBOAT_CATALOG_URL;
  else process.env.LIFEBOAT_CATALOG_URL = savedCatalogUrl;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await stack.postgres.dropDatabase(catalogUrl);
});

describe('lifeboat audit', () => {
  it('verifies and lists an empty trail', async () => {
    delete process.env.LIFEBOAT_CATALOG_URL;
    expect(await run(() => auditVerifyCommand({ config }))).toEqual({
      code: 0,
      out: 'audit trail: 0 entries, chain intact (store)\n',
    });
    const list = await run(() => auditListCommand({ config }));
    expect(list.out).toContain('is empty');
  });

  it('verifies an intact trail and its catalog copy, and lists the newest entries', async () => {
    process.env.LIFEBOAT_CATALOG_URL = catalogUrl;
    const catalog = new PostgresCatalog(catalogUrl);
    await catalog.migrate();
    const trail = new StoreAuditTrail({ store, catalog, locks: new FileLockProvider({ dir: join(dir, 'locks') }) });
    for (let i = 1; i <= 5; i++) {
      await trail.append({ actor: 'ops', action: 'backup.completed', target: 'demo', details: { n: i } });
    }
    expect(await run(() => auditVerifyCommand({ config }))).toEqual({
      code: 0,
      out: 'audit trail: 5 entries, chain intact (store); catalog agrees (5 rows)\n',
    });

    const list = await run(() => auditListCommand({ config, limit: '3' }));
    expect(list.code).toBe(0);
    expect(list.out).toContain('the newest 3 of 5 entries');
    expect(list.out.match(/^ {2}#\d+/gm)).toEqual(['  #3', '  #4', '  #5']);
    expect(list.out).toMatch(/#5 {2}\S+Z {2}ok {6}ops {2}backup\.completed {2}demo {2}\{"n":5\}/);

    const json = await run(() => auditListCommand({ config, limit: 2, json: true }));
    const doc = JSON.parse(json.out) as { head: { seq: number }; entries: AuditEntry[] };
    expect(doc.head.seq).toBe(5);
    expect(doc.entries.map((e) => e.seq)).toEqual([4, 5]);

    await expect(auditListCommand({ config, limit: '0' })).rejects.toThrow(LifeboatError);
  });

  it('exits 1 naming the entry edited in the store', async () => {
    delete process.env.LIFEBOAT_CATALOG_URL;
    const original = await entry(3);
    await store.put(layout.auditEntry(3), Buffer.from(JSON.stringify({ ...original, actor: 'intruder' })));
    try {
      const text = await run(() => auditVerifyCommand({ config }));
      expect(text.code).toBe(1);
      expect(text.out.split('\n')[0]).toBe(
        'audit trail BROKEN at entry 3 in the store: hash does not match its content (edited?)',
      );
      const json = await run(() => auditVerifyCommand({ config, json: true }));
      expect(json.code).toBe(1);
      expect(JSON.parse(json.out)).toMatchObject({
        ok: false,
        firstBroken: { seq: 3, where: 'store' },
        store: { entries: 5, chain: { ok: false, firstBroken: { seq: 3 } } },
        catalog: null,
      });
    } finally {
      await store.put(layout.auditEntry(3), Buffer.from(JSON.stringify(original)));
    }
  });

  it('exits 1 naming the catalog row edited behind its back', async () => {
    process.env.LIFEBOAT_CATALOG_URL = catalogUrl;
    await sql(`UPDATE lifeboat_audit_log SET details = '{"n": 40}' WHERE seq = 4`);
    try {
      const text = await run(() => auditVerifyCommand({ config }));
      expect(text.code).toBe(1);
      expect(text.out).toContain(
        'audit trail BROKEN at entry 4 in the catalog: its columns disagree with its entry: details',
      );
      expect(text.out).toContain('chain intact');
      expect(text.out).toContain('    entry 4 (catalog): its columns disagree with its entry: details');
    } finally {
      await sql(`UPDATE lifeboat_audit_log SET details = '{"n": 4}' WHERE seq = 4`);
    }
    expect((await run(() => auditVerifyCommand({ config }))).code).toBe(0);
  });
});
