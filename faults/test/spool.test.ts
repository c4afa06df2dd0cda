// A PostgreSQL target's WAL spool on a disk that fills up: `lifeboat ship` streams the WAL
// through pg_receivewal into a spool directory, here a small tmpfs (root, as the other disk
// faults) that is filled while the target writes. The receiver must fail saying so, the lag
// must show it, and once there is room again the stream must go on from where it stopped:
// no gap, no byte shipped twice, and a restore to the latest point holding every commit.
// The cluster is this file's own; the shared server on :5432 is never touched.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runtime } from '@lifeboat/adapters';
import {
  listStreamedPieces,
  readStreamedSegment,
  type Shipping,
  startShipping,
  takeBaseBackup,
} from '@lifeboat/backup';
import { walSegmentName } from '@lifeboat/domain';
import { restorePostgresToPoint } from '@lifeboat/restore';
import { type PrivateCluster, startStreamedTarget } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fillUntil, mountTmpfs, scratchDir, sleep } from './harness.js';
import { Tally, trials } from './record.js';

vi.setConfig({ testTimeout: 600_000, hookTimeout: 300_000 });

const SEGMENT = 1 << 20;

let cluster: PrivateCluster | undefined;
let dir: string;
let spool: string;
let runtime: Runtime;
let env: NodeJS.ProcessEnv;
let appUrl: string;
let nextId = 1;
let shipping: Shipping | undefined;
/** What the shipper logged as errors (the receiver's end among them), and as information. */
const errors: Array<{ fields: Record<string, unknown>; message: string }> = [];
const infos: string[] = [];
const log = {
  info(_fields: Record<string, unknown>, message: string) {
    infos.push(message);
  },
  warn() {},
  debug() {},
  error(fields: Record<string, unknown>, message: string) {
    errors.push({ fields, message });
  },
};

async function insertRows(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = nextId++;
    await cluster?.sql(appUrl, 'INSERT INTO orders (id, note) VALUES ($1, $2)', [id, `order ${id}`]);
  }
}

/** The server's WAL flush position as a byte number. */
async function flushed(): Promise<number> {
  const [row] = (await cluster?.sql(cluster.adminUrl, 'SELECT pg_current_wal_flush_lsn()::text AS lsn')) ?? [];
  const [hi, lo] = String(row?.lsn)
    .split('/')
    .map((x) => Number.parseInt(x, 16)) as [number, number];
  return hi * 2 ** 32 + lo;
}

/** How far the stream in the store reaches (byte number) in the segment holding position. */
async function streamedTo(position: number): Promise<number> {
  const segno = Math.floor(position / SEGMENT);
  const covered = (await readStreamedSegment(runtime, 'trading', walSegmentName(1, segno, SEGMENT)))?.covered ?? 0;
  return segno * SEGMENT + covered;
}

/** Problems with the stored stream: a segment whose pieces do not chain from byte 0, or an offset twice. */
async function streamProblems(): Promise<string[]> {
  const problems: string[] = [];
  for (const [segment, pieces] of await listStreamedPieces(runtime, 'trading')) {
    const offsets = pieces.map((p) => p.offset);
    if (new Set(offsets).size !== offsets.length) problems.push(`${segment}: an offset shipped twice (${offsets})`);
    if (offsets[0] !== 0) problems.push(`${segment}: does not begin at byte 0`);
    const s = await readStreamedSegment(runtime, 'trading', segment, { pieces });
    if (s?.pieces !== pieces.length) problems.push(`${segment}: ${pieces.length} pieces, ${s?.pieces} chain`);
  }
  return problems;
}

/** Restores the target to the latest point on a scratch server; its order count and top id. */
async function restoreLatest(): Promise<{ n: number; top: number }> {
  const server = await restorePostgresToPoint(runtime, 'trading', { at: 'latest', env });
  try {
    const url = new URL(server.url);
    url.pathname = '/trading';
    const [row] = await cluster!.sql(url.toString(), 'SELECT count(*)::int AS n, max(id) AS top FROM orders');
    return { n: Number(row?.n), top: Number(row?.top) };
  } finally {
    await server.stop({ remove: true });
  }
}

beforeAll(async () => {
  dir = await scratchDir('lifeboat-fault-spool-');
  spool = join(dir, 'spool');
  await mountTmpfs(spool, '16m');
  const target = await startStreamedTarget({ dir, spoolDir: spool, password: 'spool-fault-pw' });
  ({ cluster, runtime, appUrl, env } = target);
  await takeBaseBackup(runtime, 'trading', { env });
  shipping = await startShipping({ runtime, target: runtime.target('trading'), log: log as never, loop: false, env });
});

afterAll(async () => {
  await shipping?.stop();
  await cluster?.stop();
});

describe('a PostgreSQL target whose WAL spool disk fills up', () => {
  it('the receiver ends naming the full disk and the lag grows; with room again the stream goes on with no gap, and a restore holds every commit', async () => {
    const tally = new Tally();
    const n = trials(3, 1);
    // Room for the shipper's small files (the quick run's one trial: the receiver leaves a
    // half-padded segment file), no room at all, room for most of a segment.
    const room = [64 * 1024, 0, 700 * 1024];
    for (let trial = 1; trial <= n; trial++) {
      const free = room[(trial - 1) % room.length] as number;
      // Caught up before the fault.
      await insertRows(5);
      await shipping?.round();
      const problems: string[] = [];
      errors.length = 0;
      infos.length = 0;
      const filler = await fillUntil(spool, free);
      // A new segment: the receiver must create (and pad) a file of 1 MiB, which no longer fits.
      await cluster?.sql(cluster.adminUrl, 'SELECT pg_switch_wal()');
      await insertRows(10);
      const deadline = Date.now() + 30_000;
      while (!errors.some((e) => e.message === 'ship postgres: receiver ended') && Date.now() < deadline) {
        await shipping?.round().catch(() => {});
        await sleep(200);
      }
      const ended = errors.find((e) => e.message === 'ship postgres: receiver ended');
      const said = String(ended?.fields.stderr ?? '');
      if (!ended) problems.push('the receiver did not end within 30 s of the switch');
      else if (!/No space left on device/.test(said))
        problems.push(`the receiver ended without naming the disk: ${said}`);
      else if (!String(ended.fields.hint).includes(`the disk of the spool ${spool} is full`)) {
        problems.push(`the shipper's log gave no hint naming the spool: ${ended.fields.hint}`);
      }
      await insertRows(10);
      await shipping?.round().catch(() => {});
      await sleep(1000);
      await shipping?.round().catch(() => {});
      // The oldest change not shipped has waited at least the second just slept.
      const lag = shipping?.lagSeconds().postgres ?? 0;
      if (!(lag >= 1)) problems.push(`lag ${lag} s while nothing could be streamed for over a second`);

      await rm(filler);
      const freedAt = Date.now();
      const target = await flushed();
      let reached = 0;
      while (Date.now() - freedAt < 60_000) {
        await shipping?.round().catch(() => {});
        reached = await streamedTo(target);
        if (reached > target - 8) break;
        await sleep(200);
      }
      const caughtUpMs = Date.now() - freedAt;
      // A receiver that ran out of room while padding a new segment file leaves it half-padded.
      const halfPadded = infos.filter((m) => m.startsWith('ship postgres: removed a segment file')).length;
      if (reached <= target - 8)
        problems.push(`60 s after the disk had room, the stream reached ${reached} of ${target}`);
      problems.push(...(await streamProblems()));
      // After the last: every commit, the newest only in the stream, comes back.
      if (trial === n) {
        const rows = await restoreLatest();
        console.log(`restore to the latest point after the faults: ${JSON.stringify(rows)} of ${nextId - 1} orders`);
        if (rows.n !== nextId - 1 || rows.top !== nextId - 1) {
          problems.push(`a restore to the latest point holds ${rows.n} of ${nextId - 1} orders`);
        }
      }
      const outcome = problems.length
        ? problems.join('; ')
        : `the receiver ended naming the full disk, the lag rose; with room again${halfPadded ? ' the half-padded segment file it left was removed and' : ''} the stream caught up with no gap or byte twice${trial === n ? ', and a restore to the latest point held every order' : ''}`;
      tally.add(outcome, problems.length > 0);
      console.log(
        `spool disk full trial ${trial}/${n}: ${Math.round(free / 1024)} KiB free; receiver said "${said}"; lag ${lag} s; caught up ${caughtUpMs} ms after the disk had room; ${outcome}`,
      );
    }
    tally.record(
      'disk',
      'PostgreSQL target: WAL spool disk full while streaming (lifeboat ship)',
      'pg_receivewal ends saying "No space left on device", logged by the shipper with a hint naming the spool; the replication lag rises; once the disk has room the receiver is started again (a segment file it could not finish padding, which pg_receivewal refuses, removed first) and the stream reaches the server’s flush position, every segment’s pieces chaining from byte 0 with no offset twice; after all trials a restore to the latest point holds every order, the newest only in the stream',
    );
    expect(tally.lost).toBe(0);
  });
});
