// rpo-under-load: what continuous protection really keeps. A copy of the target, restored
// into a sandbox, trades for real at 100 orders a second against a venue of its own while its
// database is protected continuously; at a random moment the host "dies", and the database
// restored to its newest point must hold a prefix of the copy's orders — no gap — losing no
// more than the order-history RPO.
//
// SQLite: a shipper streams the copy's database; the disaster stops it with no last round.
// PostgreSQL: the copy's scratch database lives on the target's server, whose archive_command
// ships WAL (`lifeboat wal push`) and whose WAL a shipper streams (pg_receivewal, as `lifeboat
// ship` does); the server is not Lifeboat's to kill, so the restore replays only the WAL
// archived or streamed by the disaster — what a server lost then would have left.
import { randomInt } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandTargetControl, openBooksSource, withTargetCredentials } from '@lifeboat/adapters';
import {
  listBaseBackups,
  PostgresShipper,
  restoreSqliteFromStream,
  SqliteShipper,
  takeBaseBackup,
} from '@lifeboat/backup';
import { compactUtc } from '@lifeboat/domain';
import { restorePostgresToPoint } from '@lifeboat/restore';
import { check, StepFailed } from '../recorder.js';
import { type DrillRun, type Measured, newestBackup, restoreIntoSandbox, seconds } from './common.js';
import { startCopyFrom } from './live.js';
import { freePort } from './proxy.js';

/** The copy's order rate. */
export const LOAD_ORDERS_PER_SECOND = 100;
/** How long the copy trades before the moment of the disaster, at least and at most (ms). */
const LOAD_MIN_MS = 6_000;
const LOAD_MAX_MS = 12_000;
/**
 * Orders created this long before the newest one restored may be missing without a gap: their
 * transactions were in flight at the cut and committed after it.
 */
const IN_FLIGHT_MS = 1_000;

export async function rpoUnderLoad(run: DrillRun): Promise<Measured> {
  const spec = run.target.config.drills.sandbox;
  const venue = spec?.venue;
  const db = run.target.config.database;
  if (!spec || !venue) {
    throw new StepFailed(
      'prepare',
      `targets.${run.target.name}.drills.sandbox.venue is not configured: this drill's copy places real orders, and needs a venue of its own to place them on`,
    );
  }
  if (!db)
    throw new StepFailed('prepare', `targets.${run.target.name} has no database: there is no order history to lose`);

  // A sandbox from the newest backup, its venue, and the copy trading on it.
  const { copy, streamKey, shipper } = await run.rec.step('start-load', async () => {
    // PostgreSQL: a base backup older than the copy's database, for the replay to start from.
    if (db.engine === 'postgres' && (await listBaseBackups(run.ctx.runtime, run.target.name)).manifests.length === 0) {
      await takeBaseBackup(run.ctx.runtime, run.target.name, { env: run.env });
    }
    const { backup } = await newestBackup(run);
    const restored = await restoreIntoSandbox(run, 'server-loss', backup.backupId);
    if (restored.outcome !== 'COMPLETED') {
      throw new StepFailed(
        'start-load',
        `restoring ${backup.backupId} into a sandbox failed at ${restored.failedStep}: ${restored.error?.message}`,
      );
    }
    const root = restored.destination.root;
    const venuePort = await freePort();
    const venueControl = new CommandTargetControl({
      start: venue.start,
      startShadow: venue.start,
      stop: venue.stop,
      cwd: root,
      timeoutMs: spec.timeoutMs,
      healthTimeoutMs: spec.healthTimeoutMs,
      env: { ...run.env, LIFEBOAT_SANDBOX_ROOT: root, LIFEBOAT_SANDBOX_VENUE_PORT: String(venuePort) },
    });
    run.cleanups.push(async () => {
      await venueControl.stop();
    });
    const started = await venueControl.start('live');
    check(
      started.exitCode === 0,
      'start-load',
      `the venue did not start (exit ${started.exitCode}): ${started.output}`,
    );
    const venueUrl = `http://127.0.0.1:${venuePort}`;

    // The stream goes under the drill's own prefix, never the target's, and is removed after.
    const streamKey = `${run.target.name}/drill-streams/${compactUtc(run.disasterAt)}`;
    run.cleanups.push(async () => {
      for await (const o of run.ctx.runtime.store.list(`${streamKey}/`)) await run.ctx.runtime.store.delete(o.key);
    });
    // The copy first: it opens its database in WAL mode, which the shipper reads.
    const copy = await startCopyFrom(run, restored, true, {
      mode: 'live',
      exchangeUrl: venueUrl,
      env: { LIFEBOAT_SANDBOX_ORDER_RATE: String(LOAD_ORDERS_PER_SECOND) },
    });
    let shipper: SqliteShipper | PostgresShipper | null = null;
    if (db.engine === 'postgres' && run.target.config.ship.postgres.stream) {
      // The server's WAL streamed as the shipper does it, into a spool of the drill's own.
      const spool = join(tmpdir(), `lifeboat-rpo-${compactUtc(run.disasterAt)}-${process.pid}-pg_wal`);
      run.cleanups.push(() => rm(spool, { recursive: true, force: true }));
      const s = new PostgresShipper({
        runtime: run.ctx.runtime,
        target: run.target,
        log: run.ctx.log,
        env: run.env,
        spoolDir: spool,
        applicationName: `lifeboat-drill-${process.pid}`,
      });
      run.cleanups.push(() => s.stop());
      await s.start();
      shipper = s;
    }
    if (db.engine === 'sqlite') {
      const s = new SqliteShipper({
        runtime: run.ctx.runtime,
        target: streamKey,
        path: join(root, db.path),
        log: run.ctx.log,
        checkpointBytes: Math.round(run.target.config.ship.checkpointMiB * 1024 * 1024),
      });
      await s.start();
      run.cleanups.push(() => s.stop());
      shipper = s;
    }

    return {
      copy,
      streamKey,
      shipper,
      detail: `a copy on ${copy.apiUrl} trading live at ${LOAD_ORDERS_PER_SECOND} orders/s on its own venue ${venueUrl}; ${shipper ? `shipping every ${run.target.config.ship.intervalMs} ms` : ''}${db.engine === 'postgres' ? `${shipper ? ', and ' : ''}its server's WAL archived by archive_command` : ''}`,
      evidence: { venue: venueUrl, stream: streamKey, ordersPerSecond: LOAD_ORDERS_PER_SECOND },
    };
  });

  // Trading and shipping, until a moment nobody chose.
  const killAt = await run.rec.step('disaster', async () => {
    const until = Date.now() + randomInt(LOAD_MIN_MS, LOAD_MAX_MS);
    while (Date.now() < until) {
      const t = Date.now();
      await shipper?.tick();
      await sleep(Math.min(until - Date.now(), Math.max(0, run.target.config.ship.intervalMs - (Date.now() - t))));
    }
    // The host dies: the shipper with it (no last round), then the trading process.
    const at = new Date();
    await shipper?.stop();
    const stopped = await copy.control.stop();
    check(stopped.exitCode === 0, 'disaster', `the copy did not stop (exit ${stopped.exitCode}): ${stopped.output}`);
    return {
      at,
      detail: `at ${at.toISOString()}${shipper ? `, after ${shipper.stats.segments} ${db.engine === 'postgres' ? 'pieces of WAL' : 'segments'} (${shipper.stats.bytesShipped} bytes) shipped` : ''}${db.engine === 'postgres' ? `; only the WAL archived${shipper ? ' or streamed' : ''} by then counts` : ''}`,
      evidence: {
        disasterAt: at.toISOString(),
        ...(shipper ? { segments: shipper.stats.segments, bytesShipped: shipper.stats.bytesShipped } : {}),
      },
    };
  });
  run.disasterAt = killAt.at;

  // Restored to the newest point protected at the disaster, and compared with what the copy had written.
  const measured = await run.rec.step('restore-latest', async () => {
    const live = withTargetCredentials(copy.database as string, db, run.env);
    let restoredBooks: string;
    let restoredTo: string | null;
    let pieces: Record<string, unknown>;
    if (db.engine === 'sqlite') {
      restoredBooks = join(tmpdir(), `lifeboat-rpo-${compactUtc(run.disasterAt)}-${process.pid}.db`);
      const file = restoredBooks;
      run.cleanups.push(() => rm(file, { force: true }));
      const r = await restoreSqliteFromStream(run.ctx.runtime, streamKey, file);
      restoredTo = r.recoveredTo;
      pieces = { generation: r.generation, segments: r.segments };
    } else {
      const server = await restorePostgresToPoint(run.ctx.runtime, run.target.name, {
        at: 'latest',
        archivedBy: run.disasterAt.toISOString(),
        env: run.env,
        log: run.ctx.log,
      });
      run.cleanups.push(() => server.stop({ remove: true }));
      // The copy's scratch database, as the archive had it.
      const url = new URL(server.url);
      url.pathname = new URL(live).pathname;
      restoredBooks = url.toString();
      restoredTo = server.recoveredTo;
      pieces = { baseBackup: server.baseBackupId, lastSegment: server.lastSegment };
    }
    const [kept, wrote] = await Promise.all([ordersOf(run, restoredBooks), ordersOf(run, live)]);
    const keptIds = new Set(kept.map((o) => o.client_order_id));
    // Commit order is the log's order, and writers on several connections commit orders out of
    // the order they created them: one created a moment before the newest kept may have been
    // in flight at the cut. Anything older missing is a gap.
    const newestAt = kept.length ? Date.parse((kept.at(-1) as { created_at: string }).created_at) : 0;
    const missingBefore = wrote.filter((o) => Date.parse(o.created_at) <= newestAt && !keptIds.has(o.client_order_id));
    const gaps = missingBefore.filter((o) => newestAt - Date.parse(o.created_at) > IN_FLIGHT_MS);
    const wroteIds = new Set(wrote.map((o) => o.client_order_id));
    const unknown = kept.filter((o) => !wroteIds.has(o.client_order_id));
    check(
      gaps.length === 0 && unknown.length === 0,
      'restore-latest',
      `the restored orders are not a prefix of the copy's: ${gaps.length} missing more than ${IN_FLIGHT_MS} ms before the newest kept (${kept.at(-1)?.created_at})${
        gaps.length
          ? `: ${gaps
              .slice(0, 3)
              .map((o) => `${o.client_order_id} of ${o.created_at}`)
              .join(', ')}`
          : ''
      }; ${unknown.length} unknown`,
    );
    const newest = kept.at(-1)?.created_at ?? null;
    const rpo = newest === null ? null : seconds(run.disasterAt.getTime() - Date.parse(newest));
    // What the copy wrote up to the disaster (it stops a moment later: what it wrote then is not lost).
    const before = wrote.filter((o) => Date.parse(o.created_at) <= run.disasterAt.getTime());
    const acknowledged = before.filter((o) => o.exchange_order_id !== null).length;
    return {
      rpo,
      detail: `${kept.length} of the ${before.length} orders written before the disaster kept (a prefix, no gap${missingBefore.length ? `; ${missingBefore.length} in flight at the cut committed after it` : ''}); the newest ${newest ?? 'none'}, ${rpo ?? 'n/a'} s before it`,
      evidence: {
        restoredTo,
        ...pieces,
        ordersKept: kept.length,
        ordersWrittenBeforeDisaster: before.length,
        ordersTheVenueAcknowledged: acknowledged,
        ordersLost: Math.max(0, before.length - kept.length),
        ordersInFlightAtCut: missingBefore.length,
        newestKept: newest,
      },
    };
  });
  return { rto_seconds: null, rpo: { orderHistory: measured.rpo } };
}

/** A book's orders in the order they were created. */
async function ordersOf(run: DrillRun, file: string) {
  const books = openBooksSource(file, run.target.config.reconcile?.profile);
  try {
    const { orders } = await books.read();
    return [...orders].sort(
      (a, b) => Date.parse(a.created_at) - Date.parse(b.created_at) || (a.client_order_id < b.client_order_id ? -1 : 1),
    );
  } finally {
    await books.close();
  }
}
