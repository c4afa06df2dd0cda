// Ship mode: one long-running loop per target that ships the database's log (SQLite's log
// frames; PostgreSQL's WAL as pg_receivewal streams it, on top of archive_command) and the
// append-only files every interval, and keeps the figures the metrics and drills read.
import { resolve } from 'node:path';
import type { ResolvedTarget, Runtime } from '@lifeboat/adapters';
import type { Logger } from '../context.js';
import { FileShipper } from './files.js';
import { PostgresShipper } from './postgres.js';
import { type ShipStats, SqliteShipper } from './sqlite.js';

export interface Shipping {
  target: string;
  intervalMs: number;
  streams: ShipStats[];
  /** Replication lag per stream, in seconds: how long the oldest change not yet shipped has waited (0: none). */
  lagSeconds(now?: Date): Record<string, number>;
  /** One round now (tests, `--once`). */
  round(): Promise<void>;
  stop(): Promise<void>;
  /** Settles when the loop ends (stop() or a fatal error). */
  done: Promise<void>;
}

export async function startShipping(options: {
  runtime: Runtime;
  target: ResolvedTarget;
  log: Logger;
  /** Default: the target's `ship.intervalMs`. */
  intervalMs?: number;
  /** Run rounds on a timer (default); false: only when round() is called. */
  loop?: boolean;
  /** Where the target's database URL variable is read (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  onRound?: (shipping: Shipping) => void;
}): Promise<Shipping> {
  const { runtime, target, log } = options;
  const intervalMs = options.intervalMs ?? target.config.ship.intervalMs;
  const shippers: Array<SqliteShipper | PostgresShipper | FileShipper> = [];
  const db = target.config.database;
  if (db?.engine === 'sqlite') {
    shippers.push(
      new SqliteShipper({
        runtime,
        target: target.name,
        path: resolve(target.root, db.path),
        log,
        checkpointBytes: Math.round(target.config.ship.checkpointMiB * 1024 * 1024),
      }),
    );
  }
  if (db?.engine === 'postgres' && target.config.ship.postgres.stream) {
    shippers.push(new PostgresShipper({ runtime, target, log, ...(options.env ? { env: options.env } : {}) }));
  }
  shippers.push(new FileShipper({ runtime, target, log }));
  try {
    for (const s of shippers) await s.start();
  } catch (err) {
    // A receiver already running, a lock already taken: released before the error goes up.
    for (const s of shippers) await s.stop().catch(() => {});
    throw err;
  }

  let stopping = false;
  let running: Promise<void> = Promise.resolve();
  const round = () => {
    running = running.then(async () => {
      for (const s of shippers) {
        try {
          await s.tick();
        } catch (err) {
          // A round that fails is tried again next interval; the lag metric shows it meanwhile.
          s.stats.pendingSince ??= new Date();
          log.error(
            { target: target.name, stream: s.stats.stream, err: { message: (err as Error).message } },
            'ship: round failed',
          );
        }
      }
      options.onRound?.(shipping);
    });
    return running;
  };
  let timer: NodeJS.Timeout | undefined;
  let finish: () => void = () => {};
  const done = new Promise<void>((r) => {
    finish = r;
  });
  const schedule = () => {
    if (stopping || options.loop === false) return;
    timer = setTimeout(() => {
      void round().finally(schedule);
    }, intervalMs);
  };
  const shipping: Shipping = {
    target: target.name,
    intervalMs,
    streams: shippers.map((s) => s.stats),
    lagSeconds: (now = new Date()) =>
      Object.fromEntries(
        shippers.map((s) => [
          s.stats.stream,
          s.stats.pendingSince ? Math.max(0, (now.getTime() - s.stats.pendingSince.getTime()) / 1000) : 0,
        ]),
      ),
    round,
    async stop() {
      stopping = true;
      clearTimeout(timer);
      // The last changes go out before the process ends.
      await round();
      for (const s of shippers) await s.stop();
      finish();
    },
    done,
  };
  await round();
  schedule();
  log.info({ target: target.name, intervalMs, streams: shippers.map((s) => s.stats.stream) }, 'ship: started');
  return shipping;
}
