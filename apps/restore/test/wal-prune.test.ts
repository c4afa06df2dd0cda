// Retention of a PostgreSQL target's WAL archive and base backups, on a cluster of this
// test's own whose archive_command is the real `lifeboat wal push` (1 MiB segments): what
// goes, what stays, and that a point-in-time restore from the base backup kept still works.
// The shared server on :5432 is never reconfigured.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, parseConfig, type Runtime } from '@lifeboat/adapters';
import {
  type BaseBackupResult,
  listBaseBackups,
  type PruneResult,
  pruneWal,
  pushWal,
  readWalRecord,
  takeBaseBackup,
  verifyWal,
} from '@lifeboat/backup';
import { compactUtcMs, layout, parseWalFileName } from '@lifeboat/domain';
import { type CliRun, LIFEBOAT_BIN, lifeboat, type PrivateCluster, startArchivingCluster } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { restorePostgresToPoint, type ScratchServer } from '../src/index.js';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const TARGET = 'trading';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let cluster: PrivateCluster | undefined;
let dir: string;
let configFile: string;
let runtime: Runtime;
let env: NodeJS.ProcessEnv;
let appUrl: string;
let nextId = 1;
let first: BaseBackupResult;
let second: BaseBackupResult;
let third: BaseBackupResult;
const servers: ScratchServer[] = [];

async function insertRows(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = nextId++;
    await cluster?.sql(appUrl, 'INSERT INTO orders (id, note) VALUES ($1, $2)', [id, `order ${id}`]);
  }
}

/** Switches to a new segment and waits until the one just finished is in the store. */
async function switchAndWaitArchived(): Promise<string> {
  const c = cluster as PrivateCluster;
  const [row] = await c.sql(c.adminUrl, 'SELECT pg_walfile_name(pg_switch_wal()) AS name');
  const name = row?.name as string;
  const deadline = Date.now() + 60_000;
  while (!(await readWalRecord(runtime, TARGET, name))) {
    if (Date.now() > deadline) throw new Error(`${name} was not archived in 60 s: see ${join(dir, 'pg.log')}`);
    await sleep(100);
  }
  return name;
}

/** Every key in the store. */
async function storeKeys(): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of runtime.store.list('')) keys.push(o.key);
  return keys.sort();
}

/** The WAL files (not histories) of the archive named below `segment` on its timeline, by name. */
async function walFilesBelow(segment: string): Promise<string[]> {
  const prefix = layout.walPrefix(TARGET);
  const names = new Set<string>();
  for await (const o of runtime.store.list(prefix)) {
    const name = o.key.slice(prefix.length).replace(/(\.json|\.gz|\.gz\.age)$/, '');
    const file = parseWalFileName(name);
    if (file && file.kind !== 'history' && name.slice(0, 24) < segment) names.add(name);
  }
  return [...names].sort();
}

function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(-3000)}`);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-wal-prune-'));
  configFile = join(dir, 'lifeboat.yaml');
  const document = {
    store: { type: 'fs', path: 'store' },
    targets: { [TARGET]: { root: 'target', database: { engine: 'postgres', urlEnv: 'WAL_PRUNE_DB_URL' } } },
  };
  await writeFile(configFile, JSON.stringify(document, null, 2));
  await mkdir(join(dir, 'target'));
  await writeFile(join(dir, 'target', 'strategy.yaml'), 'risk: low\n');
  // The archiver (user postgres) writes the WAL; this process the rest: both need these.
  await mkdir(join(dir, 'store', '.incomplete'), { recursive: true });
  await mkdir(join(dir, 'store', TARGET, 'wal', 'postgres'), { recursive: true });
  // No silent skip: without PostgreSQL's server binaries this fails, saying what is missing.
  cluster = await startArchivingCluster({
    dir,
    archiveCommand: `${process.execPath} ${LIFEBOAT_BIN} wal push %p --config ${configFile} --target ${TARGET}`,
    walSegmentMiB: 1,
  });
  await cluster.sql(cluster.adminUrl, 'CREATE DATABASE trading');
  appUrl = `postgres://postgres@127.0.0.1:${cluster.port}/trading`;
  await cluster.sql(appUrl, 'CREATE TABLE orders (id int PRIMARY KEY, note text)');
  env = { ...process.env, WAL_PRUNE_DB_URL: appUrl };
  runtime = createRuntime(parseConfig(document, configFile, dir), env);

  await insertRows(5);
  await switchAndWaitArchived();
  first = await takeBaseBackup(runtime, TARGET, { env });
  for (let i = 0; i < 3; i++) {
    await insertRows(5);
    await switchAndWaitArchived();
  }
  second = await takeBaseBackup(runtime, TARGET, { env });
  // Rows only WAL after the second base backup holds.
  await insertRows(5);
  await switchAndWaitArchived();
});

afterAll(async () => {
  for (const s of servers) await s.stop({ remove: true }).catch(() => undefined);
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('retention of the WAL archive and base backups', () => {
  it('keeps everything when no base backup had completed by keepFrom', async () => {
    const before = await storeKeys();
    const [oldest] = (await listBaseBackups(runtime, TARGET)).manifests;
    const keepFrom = new Date(Date.parse(oldest?.completedAt as string) - 1);
    const result = await pruneWal(runtime, TARGET, keepFrom, { dryRun: false });
    expect(result).toMatchObject({ baseBackups: [], segments: 0, deletedObjects: 0, keptFromSegment: null });
    expect(result.note).toMatch(/no base backup completed by .*every base backup and all WAL kept/);
    expect(await storeKeys()).toEqual(before);
  });

  it('keepFrom between the two base backups keeps the first: only the WAL before its start goes', async () => {
    const bases = (await listBaseBackups(runtime, TARGET)).manifests;
    expect(bases.map((m) => m.id)).toEqual([first.id, second.id]);
    const keepFrom = new Date(Date.parse(bases[1]?.completedAt as string) - 1);
    const below = await walFilesBelow(first.startSegment);
    expect(below.length).toBeGreaterThan(0);
    const result = await pruneWal(runtime, TARGET, keepFrom, { dryRun: false });
    expect(result).toMatchObject({ baseBackups: [], segments: below.length, keptFromSegment: first.startSegment });
    expect(result.note).toBeUndefined();
    expect(await walFilesBelow(first.startSegment)).toEqual([]);
    expect((await listBaseBackups(runtime, TARGET)).manifests.map((m) => m.id)).toEqual([first.id, second.id]);
    expect((await verifyWal(runtime, TARGET)).ok).toBe(true);
  });

  it('a dry run reports what would go and deletes nothing', async () => {
    // A timeline history file (PostgreSQL writes none for timeline 1, so one stands in for a
    // later timeline's), and streamed pieces of a segment before the point and of one after it.
    const history = join(dir, '00000001.history');
    await writeFile(history, '# no switch on this timeline\n');
    await pushWal(runtime, TARGET, history);
    const [oldSegment] = await walFilesBelow(second.startSegment);
    // Pruning reads only the keys of pieces, never their contents.
    const piece = (segment: string) => layout.streamPostgresPiece(TARGET, segment, 0, compactUtcMs(new Date()), false);
    await runtime.store.put(piece(oldSegment?.slice(0, 24) as string), Buffer.from('streamed before'));
    await runtime.store.put(piece(second.startSegment), Buffer.from('streamed after'));

    const before = await storeKeys();
    const below = await walFilesBelow(second.startSegment);
    expect(below.some((n) => n.endsWith('.backup'))).toBe(true);
    const baseObjects = before.filter((k) => k.startsWith(`${layout.baseBackupsPrefix(TARGET)}${first.id}/`));
    const walObjects = before.filter((k) => below.some((n) => k.startsWith(`${layout.walPrefix(TARGET)}${n}.`)));
    const result = await pruneWal(runtime, TARGET, new Date(), { dryRun: true });
    expect(result).toEqual({
      baseBackups: [first.id],
      segments: below.length,
      deletedObjects: baseObjects.length + walObjects.length + 1,
      keptFromSegment: second.startSegment,
    });
    expect(await storeKeys()).toEqual(before);
  });

  it('deletes the older base backup and the WAL before the kept one starts; histories stay, and it restores', async () => {
    const dry = await pruneWal(runtime, TARGET, new Date(), { dryRun: true });
    const result = await pruneWal(runtime, TARGET, new Date(), { dryRun: false });
    expect(result).toEqual(dry);
    expect(result.baseBackups).toEqual([first.id]);

    const keys = await storeKeys();
    expect(keys.filter((k) => k.includes(first.id))).toEqual([]);
    expect(await walFilesBelow(second.startSegment)).toEqual([]);
    expect(keys).toContain(layout.walRecord(TARGET, '00000001.history'));
    expect(keys).toContain(layout.walRecord(TARGET, second.startSegment));
    const streamed = keys.filter((k) => k.startsWith(layout.streamPostgresPrefix(TARGET)));
    expect(streamed).toHaveLength(1);
    expect(streamed[0]).toContain(`/${second.startSegment}/`);

    const report = await verifyWal(runtime, TARGET);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.timelines[0]?.first).toBe(second.startSegment);
    expect(report.histories).toEqual(['00000001.history']);
    expect(report.baseBackups.map((b) => [b.id, b.restorable])).toEqual([[second.id, true]]);

    const server = await restorePostgresToPoint(runtime, TARGET, { at: 'latest', env });
    servers.push(server);
    expect(server.baseBackupId).toBe(second.id);
    const c = cluster as PrivateCluster;
    const rows = await c.sql(server.url, 'SELECT id FROM orders ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: nextId - 1 }, (_, i) => i + 1));
    await server.stop({ remove: true });
  });

  it('prunes nothing while a base backup manifest does not read, and says why', async () => {
    const damaged = layout.baseBackupManifest(TARGET, '20000101T000000Z-base-dead');
    await runtime.store.put(damaged, Buffer.from('{"format": "lifeboat.basebackup/v1"'));
    try {
      // A third base backup: the second and the WAL before the third would go, were it not for the damage.
      for (let i = 0; i < 2; i++) {
        await insertRows(5);
        await switchAndWaitArchived();
      }
      third = await takeBaseBackup(runtime, TARGET, { env });
      await insertRows(5);
      await switchAndWaitArchived();
      expect((await walFilesBelow(third.startSegment)).length).toBeGreaterThan(0);
      const before = await storeKeys();
      const result = await pruneWal(runtime, TARGET, new Date(), { dryRun: false });
      expect(result).toMatchObject({ baseBackups: [], segments: 0, deletedObjects: 0, keptFromSegment: null });
      expect(result.note).toMatch(/nothing pruned .*a base backup manifest does not read.*20000101T000000Z-base-dead/);
      expect(await storeKeys()).toEqual(before);
    } finally {
      await runtime.store.delete(damaged);
    }
  });

  it('`lifeboat prune` prunes the WAL archive with the backups kept, in its JSON and its text', async () => {
    const backup = await lifeboat(['backup', '--config', configFile, '--target', TARGET, '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    const below = await walFilesBelow(third.startSegment);
    expect(below.length).toBeGreaterThan(0);

    const dry = await lifeboat(['prune', '--dry-run', '--config', configFile, '--target', TARGET], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(
      `wal: would delete 1 base backup(s) and ${below.length} WAL file(s) before ${third.startSegment}`,
    );
    expect(dry.stdout).toContain(`delete base backup ${second.id}`);

    const run = await lifeboat(['prune', '--config', configFile, '--target', TARGET, '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    const [primary] = json<{ locations: PruneResult[] }>(run).locations;
    expect(primary?.wal).toMatchObject({
      baseBackups: [second.id],
      segments: below.length,
      keptFromSegment: third.startSegment,
    });
    expect(primary?.deletedObjects).toBeGreaterThanOrEqual(primary?.wal?.deletedObjects as number);
    expect((await listBaseBackups(runtime, TARGET)).manifests.map((m) => m.id)).toEqual([third.id]);
    expect(await walFilesBelow(third.startSegment)).toEqual([]);
    expect((await verifyWal(runtime, TARGET)).ok).toBe(true);
  });
});
