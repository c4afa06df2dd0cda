import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createRuntime, parseConfig, type Runtime } from '@lifeboat/adapters';
import { type GeneratedTarget, generateTarget, getTestStack, type TestStack } from '@lifeboat/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup, extractBackup, readManifest, silentLogger, verifyBackup } from '../src/index.js';

let stack: TestStack;
let dir: string;
let sourceUrl: string;
let restoreUrl: string;
let target: GeneratedTarget;
let runtime: Runtime;

async function counts(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, number> = {};
    for (const t of ['orders', 'fills', 'positions', 'balances']) {
      out[t] = Number((await client.query(`SELECT COUNT(*) AS n FROM ${t}`)).rows[0].n);
    }
    return out;
  } finally {
    await client.end();
  }
}

/** The source URL with a password (local trust auth ignores a made-up one), to prove it never leaks. */
function urlWithPassword(): string {
  const u = new URL(sourceUrl);
  if (!u.password) u.password = 'not-a-real-pw-7f3a';
  return u.toString();
}

function storedText(root: string): string {
  return execFileSync('find', [root, '-type', 'f', '-exec', 'cat', '{}', '+']).toString('latin1');
}

beforeAll(async () => {
  stack = await getTestStack();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-pg-backup-'));
  sourceUrl = await stack.postgres.createDatabase('lbsrc');
  restoreUrl = await stack.postgres.createDatabase('lbrst');
  target = await generateTarget(join(dir, 'target'), {
    sizeBytes: 1024 * 1024,
    seed: 11,
    db: 'postgres',
    postgresUrl: sourceUrl,
  });
  runtime = createRuntime(
    parseConfig(
      {
        store: { type: 'fs', path: 'store' },
        targets: { trading: { root: 'target', database: { engine: 'postgres', urlEnv: 'TRADING_DB_URL' } } },
        backup: { verifyAfter: 'full' },
      },
      join(dir, 'lifeboat.yaml'),
      dir,
    ),
    { ...process.env, TRADING_DB_URL: urlWithPassword() },
  );
});

afterAll(async () => {
  await stack?.postgres.dropDatabase(sourceUrl);
  await stack?.postgres.dropDatabase(restoreUrl);
  await rm(dir, { recursive: true, force: true });
});

describe('backup of a PostgreSQL target', () => {
  it('dumps one snapshot whose row counts the manifest records, restorable with pg_restore', async () => {
    const result = await backup({ target: 'trading' }, { runtime, log: silentLogger });
    expect(result.verification).toBe('full');
    const manifest = await readManifest(runtime, 'trading', result.backupId);
    expect(manifest.consistency.method).toBe('pg_dump-snapshot');
    expect(manifest.database?.format).toBe('pg_dump-custom');
    expect(manifest.database?.tables).toMatchObject(target.rowCounts);
    const password = decodeURIComponent(new URL(urlWithPassword()).password);
    expect(storedText(join(dir, 'store'))).not.toContain(password);
    const archive = gunzipSync(readFileSync(join(dir, 'store', manifest.archive.key))).toString('latin1');
    expect(archive).not.toContain(password);

    const full = await verifyBackup(runtime, 'trading', result.backupId, 'full', { log: silentLogger });
    expect(full.ok).toBe(true);
    expect(full.checks.find((c) => c.name === 'database integrity')?.detail).toMatch(/TOC entries/);

    const out = join(dir, 'restored');
    const extracted = await extractBackup(runtime, 'trading', result.backupId, out);
    const dump = extracted.files.find((f) => f.role === 'database');
    expect(dump?.path).toMatch(/\.dump$/);
    execFileSync('pg_restore', ['--no-owner', '--dbname', restoreUrl, join(out, dump?.path as string)]);
    expect(await counts(restoreUrl)).toEqual(manifest.database?.tables);
  });
});
