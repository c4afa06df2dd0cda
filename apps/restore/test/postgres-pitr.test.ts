// Continuous archiving end to end: a PostgreSQL cluster of this test's own whose
// archive_command is the real `lifeboat wal push`, a base backup, point-in-time restores into
// scratch servers, and what a missing or a foreign segment does. The local server on :5432 is
// shared with other tests and is never touched.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chownToClusterOwner,
  createRuntime,
  findPgBinaries,
  generateAgeKeyPair,
  initCluster,
  type PgBinaries,
  parseConfig,
  pgCtl,
  type Runtime,
  stopCluster,
} from '@lifeboat/adapters';
import { fetchWal, pushWal, readWalRecord, takeBaseBackup, verifyWal } from '@lifeboat/backup';
import { layout, type WalRecord, type WalVerifyReport, walSegmentName } from '@lifeboat/domain';
import { freePort, LIFEBOAT_BIN, REPO_ROOT } from '@lifeboat/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { restorePostgresToPoint, type ScratchServer } from '../src/index.js';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let bin: PgBinaries;
let dir: string;
let pgdata: string;
let configFile: string;
let runtime: Runtime;
let env: NodeJS.ProcessEnv;
let superUrl: string;
let appUrl: string;
const servers: ScratchServer[] = [];

/** Commit times as this process saw them: just after each INSERT returned. */
const committed = new Map<number, number>();
let nextId = 1;
let pointBetween: string;
let rowsBeforePoint: number;
/** The oldest and the newest archived segment once the writes are done. */
let firstSegment: string;
let lastSegment: string;
/** The segment a switch closed after the writes around the point: every later one holds later commits. */
let closedAfterPoint: string;

async function sql<T = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

async function insertRows(n: number, spacingMs = 0): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = nextId++;
    await sql(appUrl, 'INSERT INTO orders (id, note) VALUES ($1, $2)', [id, `order ${id}`]);
    committed.set(id, Date.now());
    if (spacingMs) await sleep(spacingMs);
  }
}

/** Switches to a new segment and waits until the one just finished is in the store. */
async function switchAndWaitArchived(): Promise<string> {
  const [row] = await sql<{ name: string }>(superUrl, 'SELECT pg_walfile_name(pg_switch_wal()) AS name');
  const name = row?.name as string;
  const deadline = Date.now() + 60_000;
  while (!(await readWalRecord(runtime, 'trading', name))) {
    if (Date.now() > deadline) {
      throw new Error(`${name} was not archived in 60 s: server log ${await readFile(join(dir, 'pg.log'), 'utf8')}`);
    }
    await sleep(100);
  }
  return name;
}

async function ids(url: string): Promise<number[]> {
  return (await sql<{ id: number }>(url, 'SELECT id FROM orders ORDER BY id')).map((r) => r.id);
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LIFEBOAT_BIN, ...args, '--config', configFile, '--target', 'trading'], {
      cwd: REPO_ROOT,
      env: { ...process.env, LIFEBOAT_REDIS_URL: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

beforeAll(async () => {
  if (!existsSync(join(REPO_ROOT, 'apps', 'cli', 'dist', 'commands', 'wal.js'))) {
    throw new Error('apps/cli is not built with `wal`: run `npm run build` (npm test does it first)');
  }
  // No silent skip: without PostgreSQL's server binaries this fails, saying what is missing.
  bin = await findPgBinaries();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-pitr-test-'));
  // archive_command and restore_command run as the cluster's owner: it must reach everything here.
  await chmod(dir, 0o755);
  pgdata = join(dir, 'pgdata');
  await mkdir(join(dir, 'store'));
  const keys = await generateAgeKeyPair();
  await writeFile(join(dir, 'identity.txt'), keys.file, { mode: 0o600 });
  configFile = join(dir, 'lifeboat.yaml');
  const document = {
    store: { type: 'fs', path: 'store' },
    encryption: { recipients: [keys.recipient], identityFile: 'identity.txt' },
    targets: { trading: { root: 'target', database: { engine: 'postgres', urlEnv: 'TRADING_DB_URL' } } },
  };
  await writeFile(configFile, JSON.stringify(document, null, 2));
  await chownToClusterOwner(dir);

  await initCluster(bin, pgdata);
  const port = await freePort();
  const archiveCommand = `${process.execPath} ${LIFEBOAT_BIN} wal push %p --config ${configFile} --target trading`;
  await writeFile(
    join(pgdata, 'postgresql.conf'),
    [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${dir}'`,
      'wal_level = replica',
      'archive_mode = on',
      `archive_command = '${archiveCommand}'`,
      'archive_timeout = 1s',
      "lc_messages = 'C'",
      '',
    ].join('\n'),
    { flag: 'a' },
  );
  const started = await pgCtl(bin, ['start', '-D', pgdata, '-l', join(dir, 'pg.log'), '-w', '-t', '60']);
  if (started.code !== 0) throw new Error(`test cluster did not start: ${started.stderr}`);
  superUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  // The checkpointer, started during the startup recovery, sleeps a whole checkpoint_timeout
  // before it first looks at archive_timeout; a reload wakes it.
  await sql(superUrl, 'SELECT pg_reload_conf()');
  await sql(superUrl, "CREATE ROLE trader LOGIN REPLICATION PASSWORD 'pitr-test-pw'");
  await sql(superUrl, 'CREATE DATABASE trading OWNER trader');
  appUrl = `postgres://trader:pitr-test-pw@127.0.0.1:${port}/trading`;
  await sql(appUrl, 'CREATE TABLE orders (id int PRIMARY KEY, note text, at timestamptz DEFAULT clock_timestamp())');
  env = { ...process.env, TRADING_DB_URL: appUrl };
  runtime = createRuntime(parseConfig(document, configFile, dir), env);
});

afterAll(async () => {
  for (const s of servers) await s.stop({ remove: true }).catch(() => undefined);
  if (bin && pgdata) await stopCluster(bin, pgdata, 'immediate').catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('continuous archiving of a PostgreSQL target', () => {
  it('archives through the real archive_command and commits a base backup once its WAL is archived', async () => {
    await insertRows(5);
    await switchAndWaitArchived();
    const base = await takeBaseBackup(runtime, 'trading', { env });
    expect(base.encrypted).toBe(true);
    const archive = await readFile(join(dir, 'store', ...base.archiveKey.split('/')));
    expect(archive.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(await readWalRecord(runtime, 'trading', base.endSegment)).not.toBeNull();

    // Writes a quarter of a second apart; the point lies between the 10th and the 11th.
    await insertRows(5, 250);
    const before = Date.now();
    await sleep(400);
    pointBetween = new Date(before + 200).toISOString();
    rowsBeforePoint = nextId - 1;
    await insertRows(5, 250);
    closedAfterPoint = await switchAndWaitArchived();
    await insertRows(2);
    await switchAndWaitArchived();
    await insertRows(2);
    await switchAndWaitArchived();

    const report = await verifyWal(runtime, 'trading');
    expect(report.gaps).toEqual([]);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    const b = report.baseBackups.find((x) => x.id === base.id) as WalVerifyReport['baseBackups'][number];
    expect(b.restorable).toBe(true);
    expect(b.blockedAt).toBeNull();
    expect(b.latestSegment).toBe(report.timelines[0]?.last);
    firstSegment = report.timelines[0]?.first as string;
    lastSegment = report.timelines[0]?.last as string;
  });

  it('restores to a point between two writes: exactly the rows committed before it', async () => {
    const server = await restorePostgresToPoint(runtime, 'trading', { at: pointBetween, env });
    servers.push(server);
    expect(await ids(server.url)).toEqual(Array.from({ length: rowsBeforePoint }, (_, i) => i + 1));
    expect(server.recoveredTo).not.toBeNull();
    expect(Date.parse(server.recoveredTo as string)).toBeLessThanOrEqual(Date.parse(pointBetween));
    expect(Date.parse(server.recoveredTo as string)).toBeGreaterThanOrEqual(
      (committed.get(rowsBeforePoint) as number) - 1000,
    );
    // The scratch server listens on 127.0.0.1 only and archives nothing into the target's store.
    const [settings] = await sql<{ listen: string; archive: string }>(
      server.url,
      "SELECT current_setting('listen_addresses') AS listen, current_setting('archive_mode') AS archive",
    );
    expect(settings).toEqual({ listen: '127.0.0.1', archive: 'off' });
    await server.stop({ remove: true });
  });

  it('restores to the latest point: every row whose WAL was archived', async () => {
    const started = Date.now();
    const server = await restorePostgresToPoint(runtime, 'trading', { at: 'latest', env });
    servers.push(server);
    expect(await ids(server.url)).toEqual(Array.from({ length: nextId - 1 }, (_, i) => i + 1));
    expect(Date.parse(server.recoveredTo as string)).toBeGreaterThanOrEqual(
      (committed.get(nextId - 1) as number) - 1000,
    );
    console.log(`restore to latest: ${Date.now() - started} ms, last segment ${server.lastSegment}`);
    await server.stop({ remove: true });
  });

  it('a point after the newest archived WAL restores to its end', async () => {
    const server = await restorePostgresToPoint(runtime, 'trading', { at: new Date().toISOString(), env });
    servers.push(server);
    expect(server.target).toBe('latest');
    expect((await ids(server.url)).length).toBe(nextId - 1);
    await server.stop({ remove: true });
  });

  it('a segment pushed twice is fine; a different file under an archived name is refused, naming both', async () => {
    const scratch = await mkdtemp(join(dir, 'segments-'));
    const name = firstSegment;
    const copy = join(scratch, name);
    await fetchWal(runtime, 'trading', name, copy);
    const bytes = await readFile(copy);
    const record = await readWalRecord(runtime, 'trading', name);
    expect(sha256(bytes)).toBe(record?.sha256);

    const again = await cli(['wal', 'push', copy, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ name, alreadyArchived: true });

    const altered = Buffer.from(bytes);
    altered[100_000] = (altered[100_000] as number) ^ 0xff;
    await writeFile(copy, altered);
    const refused = await cli(['wal', 'push', copy]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`archived sha256 ${record?.sha256}`);
    expect(refused.stderr).toContain(`this file sha256 ${sha256(altered)}`);
    expect(sha256(Buffer.from(await runtime.store.getBytes(layout.walRecord('trading', name))))).toBe(
      sha256(Buffer.from(`${JSON.stringify(record, null, 2)}\n`)),
    );
  });

  it('wal fetch of a segment that is not archived exits 1 quietly and fast', async () => {
    const missing = await cli(['wal', 'fetch', walSegmentName(1, 0xfff, 16 * 1024 * 1024), join(dir, 'nothing')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/is not archived for target trading/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
    expect(missing.ms).toBeLessThan(5000);
    expect(existsSync(join(dir, 'nothing'))).toBe(false);
  });

  it('an encrypted store round-trips; so does a plain one, and its full verification passes', async () => {
    const name = lastSegment;
    const record = (await readWalRecord(runtime, 'trading', name)) as WalRecord;
    expect(record.encryption?.type).toBe('age');
    const stored = await readFile(join(dir, 'store', ...record.object.split('/')));
    expect(stored.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    const scratch = await mkdtemp(join(dir, 'plain-'));
    const fetched = join(scratch, name);
    await fetchWal(runtime, 'trading', name, fetched);
    expect(sha256(await readFile(fetched))).toBe(record?.sha256);

    const plainDoc = {
      store: { type: 'fs', path: 'plain-store' },
      targets: { trading: { root: 'target', database: { engine: 'postgres', urlEnv: 'TRADING_DB_URL' } } },
    };
    const plain = createRuntime(parseConfig(plainDoc, join(scratch, 'lifeboat.yaml'), scratch), env);
    const pushed = await pushWal(plain, 'trading', fetched);
    expect(pushed).toMatchObject({ alreadyArchived: false, sha256: record?.sha256 });
    expect(pushed.objectKey.endsWith('.gz')).toBe(true);
    const back = join(scratch, 'back');
    await fetchWal(plain, 'trading', name, back);
    expect(sha256(await readFile(back))).toBe(record?.sha256);
    const full = await verifyWal(plain, 'trading', { full: true });
    expect(full.problems).toEqual([]);
    expect(full.notes.join(' ')).toMatch(/no base backup/);
  });

  it('a deleted segment: wal verify reports the gap, and a restore past it fails clearly', async () => {
    const before = await verifyWal(runtime, 'trading');
    const timeline = before.timelines[0] as WalVerifyReport['timelines'][number];
    const lastSegno = Number.parseInt(timeline.last.slice(16), 16);
    // After the point, so a restore to the point still works; before the newest, so it is a gap.
    const gapSegno = Number.parseInt(closedAfterPoint.slice(16), 16) + 1;
    expect(lastSegno).toBeGreaterThan(gapSegno);
    const gap = walSegmentName(1, gapSegno, 16 * 1024 * 1024);
    const record = await readWalRecord(runtime, 'trading', gap);
    await runtime.store.delete(layout.walRecord('trading', gap));
    await runtime.store.delete(record?.object as string);

    const report = await verifyWal(runtime, 'trading');
    expect(report.ok).toBe(false);
    expect(report.gaps).toEqual([{ timeline: 1, from: gap, to: gap, missing: 1 }]);
    expect(report.baseBackups[0]).toMatchObject({ restorable: true, blockedAt: gap });
    const printed = await cli(['wal', 'verify']);
    expect(printed.code).toBe(1);
    expect(printed.stdout).toContain(`GAP on timeline 1: ${gap} missing`);

    await expect(restorePostgresToPoint(runtime, 'trading', { at: 'latest', env })).rejects.toMatchObject({
      code: 'VERIFY_FAILED',
      message: expect.stringContaining(`a gap in the WAL chain: ${gap} is not archived`),
    });
    await expect(
      restorePostgresToPoint(runtime, 'trading', { at: new Date().toISOString(), env }),
    ).rejects.toMatchObject({ code: 'VERIFY_FAILED', message: expect.stringContaining(gap) });
    // A point before the gap still restores.
    const server = await restorePostgresToPoint(runtime, 'trading', { at: pointBetween, env });
    servers.push(server);
    expect((await ids(server.url)).length).toBe(rowsBeforePoint);
    await server.stop({ remove: true });
  });

  it('refuses a point before the first base backup completed', async () => {
    await expect(restorePostgresToPoint(runtime, 'trading', { at: '2000-01-01T00:00:00Z', env })).rejects.toMatchObject(
      { code: 'NOT_FOUND', message: expect.stringContaining('no base backup completed before') },
    );
  });
});
