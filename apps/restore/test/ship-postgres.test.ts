// Streaming a PostgreSQL target's WAL (`lifeboat ship`): a cluster of this test's own whose
// archive_command is the real `lifeboat wal push` and whose archive_timeout is off, so the
// segment being written reaches the archive only when it is full, and only the stream holds
// the newest commits. The shared server on :5432 is never touched.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runtime } from '@lifeboat/adapters';
import {
  fetchWal,
  listStreamedPieces,
  PostgresShipper,
  readStreamedSegment,
  readWalRecord,
  type Shipping,
  STREAM_KEEP_AFTER_ARCHIVED_MS,
  startShipping,
  takeBaseBackup,
} from '@lifeboat/backup';
import { walSegmentName } from '@lifeboat/domain';
import { LIFEBOAT_BIN, type PrivateCluster, REPO_ROOT, startStreamedTarget } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { restorePostgresToPoint } from '../src/index.js';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const silent = { info() {}, warn() {}, error() {}, debug() {} } as never;

let cluster: PrivateCluster | undefined;
let dir: string;
let configFile: string;
let runtime: Runtime;
let env: NodeJS.ProcessEnv;
let appUrl: string;
let nextId = 1;
const children: ChildProcess[] = [];

async function insertRows(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = nextId++;
    await cluster?.sql(appUrl, 'INSERT INTO orders (id, note) VALUES ($1, $2)', [id, `order ${id}`]);
  }
}

async function currentSegment(): Promise<string> {
  const [row] = (await cluster?.sql(cluster.adminUrl, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS name')) ?? [];
  return row?.name as string;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-ship-pg-'));
  ({ cluster, configFile, runtime, appUrl, env } = await startStreamedTarget({
    dir,
    spoolDir: 'spool',
    password: 'ship-test-pw',
  }));
  // A base backup to restore from.
  await takeBaseBackup(runtime, 'trading', { env });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cluster?.stop();
  if (dir && !process.env.LIFEBOAT_TEST_KEEP) await rm(dir, { recursive: true, force: true });
});

describe('lifeboat ship on a PostgreSQL target', () => {
  let shipping: Shipping | undefined;

  it('streams what the server flushed, encrypted, where the archive has none of it yet', async () => {
    const target = runtime.target('trading');
    shipping = await startShipping({ runtime, target, log: silent, loop: false, env });
    expect(shipping.streams.map((s) => s.stream)).toContain('postgres');
    await insertRows(20);
    const segment = await currentSegment();
    await shipping.round();
    // Nothing wrote between the server's position and the round: no change waits.
    expect(shipping.lagSeconds().postgres).toBe(0);

    expect(await readWalRecord(runtime, 'trading', segment)).toBeNull();
    const pieces = (await listStreamedPieces(runtime, 'trading')).get(segment) ?? [];
    expect(pieces.length).toBeGreaterThan(0);
    for (const p of pieces) {
      const stored = await readFile(join(dir, 'store', ...p.key.split('/')));
      expect(stored.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    }
    const [flush] = await cluster!.sql(cluster!.adminUrl, 'SELECT pg_current_wal_flush_lsn()::text AS lsn');
    const [hi, lo] = String(flush?.lsn)
      .split('/')
      .map((x) => Number.parseInt(x, 16)) as [number, number];
    const streamed = await readStreamedSegment(runtime, 'trading', segment);
    expect(streamed).not.toBeNull();
    // Up to the server's flush position, but for zeros the last record may end with (records are 8-byte aligned).
    const flushed = (hi * 2 ** 32 + lo) % (1 << 20);
    expect(streamed?.covered).toBeLessThanOrEqual(flushed);
    expect(streamed?.covered).toBeGreaterThan(flushed - 8);

    // restore_command's view: the segment comes whole from the stream, zeros after the streamed bytes.
    const out = join(dir, 'fetched');
    const fetched = await fetchWal(runtime, 'trading', segment, out);
    expect(fetched.source).toBe('stream');
    expect(fetched.size).toBe(1 << 20);
    expect((await readFile(out)).subarray(streamed?.covered).every((b) => b === 0)).toBe(true);
  });

  it('a restore to the latest point holds the commits only the stream has', async () => {
    shipping ??= await startShipping({ runtime, target: runtime.target('trading'), log: silent, loop: false, env });
    await insertRows(10);
    await shipping?.round();
    const segment = await currentSegment();
    expect(await readWalRecord(runtime, 'trading', segment)).toBeNull();
    const server = await restorePostgresToPoint(runtime, 'trading', { at: 'latest', env });
    try {
      const url = new URL(server.url);
      url.pathname = '/trading';
      const rows = await cluster!.sql(url.toString(), 'SELECT count(*)::int AS n, max(id) AS top FROM orders');
      const log = await readFile(server.logFile, 'utf8').catch(() => '');
      expect(rows[0], log.slice(-3000)).toEqual({ n: nextId - 1, top: nextId - 1 });
      expect(server.lastSegment ?? segment).toBe(segment);
    } finally {
      await server.stop({ remove: true });
    }
    await shipping?.stop();
  });

  it('with archivedBy, a segment archived later replays only as far as it was streamed by then, the same each time it is read', async () => {
    // Orders before the moment, all streamed by it; more after it, then the segment archived.
    const before = await startShipping({ runtime, target: runtime.target('trading'), log: silent, loop: false, env });
    try {
      await insertRows(10);
      await before.round();
    } finally {
      await before.stop();
    }
    const rowsByThen = nextId - 1;
    await sleep(20);
    const moment = new Date();
    await sleep(20);
    await insertRows(10);
    const segment = await currentSegment();
    await cluster!.sql(cluster!.adminUrl, 'SELECT pg_switch_wal()');
    const deadline = Date.now() + 60_000;
    let record = await readWalRecord(runtime, 'trading', segment);
    while (!record) {
      if (Date.now() > deadline) throw new Error(`${segment} was not archived in 60 s`);
      await sleep(100);
      record = await readWalRecord(runtime, 'trading', segment);
    }
    expect(Date.parse(record.pushedAt)).toBeGreaterThan(moment.getTime());
    await insertRows(5);
    // The replay reads the last segment twice: fetched ahead for the replay, then again by
    // restore_command at the end of recovery. Both must be the stream as of the moment; the
    // archived copy (with the orders after it) must not be replayed.
    const server = await restorePostgresToPoint(runtime, 'trading', {
      at: 'latest',
      archivedBy: moment.toISOString(),
      env,
    });
    try {
      const url = new URL(server.url);
      url.pathname = '/trading';
      const rows = await cluster!.sql(url.toString(), 'SELECT count(*)::int AS n, max(id) AS top FROM orders');
      const log = await readFile(server.logFile, 'utf8').catch(() => '');
      expect(rows[0], log.slice(-3000)).toEqual({ n: rowsByThen, top: rowsByThen });
      expect(server.lastSegment).toBe(segment);
    } finally {
      await server.stop({ remove: true });
    }
  });

  it('keeps a streamed segment for 15 minutes after the archive took it, then removes its pieces', async () => {
    let clock = Date.now();
    const shipper = new PostgresShipper({
      runtime,
      target: runtime.target('trading'),
      log: silent,
      env,
      now: () => new Date(clock),
      spoolDir: join(dir, 'spool-tidy'),
      applicationName: 'lifeboat-tidy-test',
    });
    await shipper.start();
    const piecesOf = async (segment: string) => (await listStreamedPieces(runtime, 'trading')).get(segment) ?? [];
    // Every TIDY_EVERY (30) rounds the shipper removes what it no longer needs.
    const tidyRounds = async () => {
      for (let i = 0; i < 30; i++) await shipper.tick();
    };
    try {
      await insertRows(5);
      const segment = await currentSegment();
      await shipper.tick();
      expect((await piecesOf(segment)).length).toBeGreaterThan(0);
      await cluster!.sql(cluster!.adminUrl, 'SELECT pg_switch_wal()');
      const deadline = Date.now() + 60_000;
      while (!(await readWalRecord(runtime, 'trading', segment))) {
        if (Date.now() > deadline) throw new Error(`${segment} was not archived in 60 s`);
        await sleep(100);
      }
      await insertRows(2);
      await tidyRounds();
      expect((await piecesOf(segment)).length, 'removed moments after it was archived').toBeGreaterThan(0);
      clock = Date.now() + STREAM_KEEP_AFTER_ARCHIVED_MS + 1000;
      await tidyRounds();
      expect(await piecesOf(segment)).toEqual([]);
      // The segment being written keeps its pieces.
      expect((await piecesOf(await currentSegment())).length).toBeGreaterThan(0);
    } finally {
      await shipper.stop();
    }
  });

  it('a shipper killed with SIGKILL: the next one ends the receiver it left and goes on with no gap and no duplicate', async () => {
    const start = (args: string[]) => {
      const child = spawn(
        process.execPath,
        [LIFEBOAT_BIN, 'ship', '--config', configFile, '--target', 'trading', ...args],
        { cwd: REPO_ROOT, env: { ...env, LIFEBOAT_REDIS_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(child);
      let output = '';
      child.stdout?.on('data', (d) => {
        output += d;
      });
      child.stderr?.on('data', (d) => {
        output += d;
      });
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      return { child, exited, output: () => output };
    };
    const before = await listStreamedPieces(runtime, 'trading');
    const countBefore = [...before.values()].reduce((n, p) => n + p.length, 0);
    const first = start([]);
    // Shipping: new pieces appear as rows are written.
    const deadline = Date.now() + 30_000;
    for (;;) {
      await insertRows(5);
      await sleep(300);
      const now = await listStreamedPieces(runtime, 'trading');
      if ([...now.values()].reduce((n, p) => n + p.length, 0) > countBefore + 2) break;
      if (Date.now() > deadline) throw new Error(`the shipper shipped nothing in 30 s: ${first.output()}`);
    }
    first.child.kill('SIGKILL');
    await first.exited;
    const lock = (await readFile(join(dir, 'spool', '.lifeboat-ship.pid'), 'utf8')).trim().split(/\s+/).map(Number);
    const orphan = lock[1] as number;
    expect(orphan).toBeGreaterThan(0);
    expect(() => process.kill(orphan, 0)).not.toThrow();

    await insertRows(15);
    const [written] = await cluster!.sql(cluster!.adminUrl, 'SELECT pg_current_wal_flush_lsn()::text AS lsn');
    const second = start(['--once', '--json']);
    const code = await second.exited;
    expect(code, second.output()).toBe(0);
    expect(() => process.kill(orphan, 0)).toThrow();

    // Every segment's pieces chain from byte 0 with no hole and no offset shipped twice.
    for (const [segment, pieces] of await listStreamedPieces(runtime, 'trading')) {
      const offsets = pieces.map((p) => p.offset);
      expect(new Set(offsets).size, `${segment}: ${offsets.join(', ')}`).toBe(offsets.length);
      expect(offsets[0], segment).toBe(0);
      const s = await readStreamedSegment(runtime, 'trading', segment, { pieces });
      expect(s?.pieces, segment).toBe(pieces.length);
    }
    // The second shipper's one round shipped at least everything written before it started.
    const lo = Number.parseInt(String(written?.lsn).split('/')[1] as string, 16);
    const segment = walSegmentName(1, Math.floor(lo / (1 << 20)), 1 << 20);
    const covered = (await readStreamedSegment(runtime, 'trading', segment))?.covered as number;
    expect(covered).toBeGreaterThan((lo % (1 << 20)) - 8);
  });
});
