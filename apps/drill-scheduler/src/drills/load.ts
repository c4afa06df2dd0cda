// rpo-under-load: what continuous protection really keeps. A copy of the target, restored
// into a sandbox, trades for real at 100 orders a second against a venue of its own while a
// shipper streams its database; at a random moment the host "dies" (the shipper stops with no
// last round, the copy is stopped), and the stream restored to its newest point must hold a
// prefix of the copy's orders — no gap — losing no more than the order-history RPO.
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandTargetControl, openBooksSource } from '@lifeboat/adapters';
import { restoreSqliteFromStream, SqliteShipper } from '@lifeboat/backup';
import { compactUtc } from '@lifeboat/domain';
import { check, StepFailed } from '../recorder.js';
import { type DrillRun, type Measured, newestBackup, restoreIntoSandbox, seconds } from './common.js';
import { startCopyFrom } from './live.js';
import { freePort } from './proxy.js';

/** The copy's order rate. */
export const LOAD_ORDERS_PER_SECOND = 100;
/** How long the copy trades before the moment of the disaster, at least and at most (ms). */
const LOAD_MIN_MS = 6_000;
const LOAD_MAX_MS = 12_000;

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
  if (db?.engine !== 'sqlite') {
    throw new StepFailed(
      'prepare',
      'rpo-under-load runs against a SQLite target (a PostgreSQL target keeps its RPO through its WAL archive: `lifeboat wal verify`, `lifeboat wal restore`)',
    );
  }

  // A sandbox from the newest backup, its venue, and the copy trading on it.
  const { copy, streamKey, shipper } = await run.rec.step('start-load', async () => {
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
    const file = join(root, db.path);
    const shipper = new SqliteShipper({
      runtime: run.ctx.runtime,
      target: streamKey,
      path: file,
      log: run.ctx.log,
      checkpointBytes: Math.round(run.target.config.ship.checkpointMiB * 1024 * 1024),
    });
    await shipper.start();
    run.cleanups.push(() => shipper.stop());

    return {
      copy,
      streamKey,
      shipper,
      detail: `a copy on ${copy.apiUrl} trading live at ${LOAD_ORDERS_PER_SECOND} orders/s on its own venue ${venueUrl}; shipping every ${run.target.config.ship.intervalMs} ms`,
      evidence: { venue: venueUrl, stream: streamKey, ordersPerSecond: LOAD_ORDERS_PER_SECOND },
    };
  });

  // Trading and shipping, until a moment nobody chose.
  const killAt = await run.rec.step('disaster', async () => {
    const until = Date.now() + randomInt(LOAD_MIN_MS, LOAD_MAX_MS);
    while (Date.now() < until) {
      const t = Date.now();
      await shipper.tick();
      await sleep(Math.max(0, run.target.config.ship.intervalMs - (Date.now() - t)));
    }
    // The host dies: the shipper with it (no last round), then the trading process.
    const at = new Date();
    await shipper.stop();
    const stopped = await copy.control.stop();
    check(stopped.exitCode === 0, 'disaster', `the copy did not stop (exit ${stopped.exitCode}): ${stopped.output}`);
    return {
      at,
      detail: `at ${at.toISOString()}, after ${shipper.stats.segments} segments (${shipper.stats.bytesShipped} bytes) shipped`,
      evidence: {
        disasterAt: at.toISOString(),
        segments: shipper.stats.segments,
        bytesShipped: shipper.stats.bytesShipped,
      },
    };
  });
  run.disasterAt = killAt.at;

  // Restored to the newest point the stream reached, and compared with what the copy had written.
  const measured = await run.rec.step('restore-latest', async () => {
    const live = copy.database as string;
    const restoredFile = join(run.env.TMPDIR ?? '/tmp', `lifeboat-rpo-${compactUtc(run.disasterAt)}-${process.pid}.db`);
    run.cleanups.push(async () => {
      await import('node:fs/promises').then((fs) => fs.rm(restoredFile, { force: true }));
    });
    const r = await restoreSqliteFromStream(run.ctx.runtime, streamKey, restoredFile);
    const [kept, wrote] = await Promise.all([ordersOf(run, restoredFile), ordersOf(run, live)]);
    const keptIds = new Set(kept.map((o) => o.client_order_id));
    const missingBefore = wrote.slice(0, kept.length).filter((o) => !keptIds.has(o.client_order_id));
    const unknown = kept.filter((o) => !wrote.some((w) => w.client_order_id === o.client_order_id));
    check(
      missingBefore.length === 0 && unknown.length === 0,
      'restore-latest',
      `the restored orders are not a prefix of the copy's: ${missingBefore.length} missing before the newest kept, ${unknown.length} unknown`,
    );
    const newest = kept.at(-1)?.created_at ?? null;
    const rpo = newest === null ? null : seconds(run.disasterAt.getTime() - Date.parse(newest));
    // What the copy wrote up to the disaster (it stops a moment later: what it wrote then is not lost).
    const before = wrote.filter((o) => Date.parse(o.created_at) <= run.disasterAt.getTime());
    const acknowledged = before.filter((o) => o.exchange_order_id !== null).length;
    return {
      rpo,
      detail: `${kept.length} of the ${before.length} orders written before the disaster kept (a prefix, no gap); the newest ${newest ?? 'none'}, ${rpo ?? 'n/a'} s before it`,
      evidence: {
        restoredTo: r.recoveredTo,
        segments: r.segments,
        ordersKept: kept.length,
        ordersWrittenBeforeDisaster: before.length,
        ordersTheVenueAcknowledged: acknowledged,
        ordersLost: Math.max(0, before.length - kept.length),
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
