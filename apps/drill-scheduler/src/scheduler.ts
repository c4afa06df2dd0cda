// The drill schedule kept in BullMQ: one leader (a Redis lease) upserts a job scheduler per
// drill at start and whenever lifeboat.yaml changes, removes those no longer wanted, and
// raises an alert for a schedule that never fires or a backup older than the RPO target.
import { stat } from 'node:fs/promises';
import type { AlertSender, LoadedConfig } from '@lifeboat/adapters';
import {
  drillSchedules,
  isLifeboatError,
  type Lease,
  type LockProvider,
  type QueueName,
  upcomingDrills,
} from '@lifeboat/domain';
import type { Logger } from './context.js';

/** What the scheduler needs of the BullMQ bus. */
export interface ScheduleBus {
  upsertSchedule(queue: QueueName, id: string, pattern: string, payload: unknown): Promise<void>;
  schedules(queue: QueueName): Promise<Array<{ id: string; pattern: string | null; next: number | null }>>;
  removeSchedule(queue: QueueName, id: string): Promise<void>;
}

export interface SchedulerOptions {
  bus: ScheduleBus;
  locks: LockProvider;
  log: Logger;
  /** Reads and validates lifeboat.yaml. */
  load: () => Promise<LoadedConfig>;
  alerts: (config: LoadedConfig) => AlertSender | null;
  /** Who this process is, in the lease (shown to the others). */
  holder: string;
  /** How often followers try for the lease and the leader looks at the config file. */
  tickMs?: number;
  /** The newest backup's time, for the stale-backup alert (null with none). */
  newestBackupAt?: (config: LoadedConfig, target: string) => Promise<{ id: string; at: string } | null>;
}

const LEASE_MS = 30_000;
/** How often the leader looks at the newest backup's age. */
const BACKUP_CHECK_MS = 60_000;
export const LEADER_LOCK = 'drill-scheduler:leader';
/** Schedules this process owns: `drill:<target>:<drill>`. */
const SCHEDULE_PREFIX = 'drill:';

export class DrillScheduler {
  #lease: Lease | null = null;
  #timer: NodeJS.Timeout | undefined;
  #configMtime = 0;
  #config: LoadedConfig | null = null;
  #staleAlerted = new Set<string>();
  #badEditMtime = -1;
  #backupCheckedAt = 0;
  #rejectedAlerted = new Set<string>();
  #neverFiresAlerted = new Set<string>();
  #stopped = false;
  #ticking: Promise<void> | null = null;

  constructor(private readonly options: SchedulerOptions) {}

  get leader(): boolean {
    return this.#lease !== null && !this.#lease.lost;
  }

  start(): void {
    const tick = () => {
      this.#ticking = this.tick()
        .catch((err: Error) =>
          this.options.log.error({ err: { message: err.message } }, 'drill scheduler: tick failed'),
        )
        .finally(() => {
          this.#ticking = null;
          if (!this.#stopped) this.#timer = setTimeout(tick, this.options.tickMs ?? 5000);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#ticking;
    await this.#lease?.release().catch(() => {});
    this.#lease = null;
  }

  /** One round: take or keep the lease; as leader, follow the config file and watch the backups. */
  async tick(): Promise<void> {
    if (this.#lease?.lost) {
      this.options.log.warn({}, 'drill scheduler: leadership lost');
      this.#lease = null;
      this.#configMtime = 0;
    }
    if (!this.#lease) {
      try {
        this.#lease = await this.options.locks.acquire(LEADER_LOCK, this.options.holder, LEASE_MS);
        this.options.log.info({ holder: this.options.holder, token: this.#lease.token }, 'drill scheduler: leader');
      } catch (err) {
        if (isLifeboatError(err) && err.code === 'CONFLICT') return;
        throw err;
      }
    }
    const changed = await this.#reloadIfChanged();
    if (changed) {
      // Only a sync that went through settles this version of the file; a failed one is retried next tick.
      const synced = await this.sync(changed.loaded);
      this.#config = changed.loaded;
      if (synced.complete) this.#configMtime = changed.mtime;
    }
    if (this.#config && Date.now() - this.#backupCheckedAt >= BACKUP_CHECK_MS) {
      this.#backupCheckedAt = Date.now();
      await this.#checkBackupAge(this.#config);
    }
  }

  /** The config when the file changed since the last successful sync (or was never synced). */
  async #reloadIfChanged(): Promise<{ loaded: LoadedConfig; mtime: number } | null> {
    const path = this.#config?.path ?? (await this.options.load()).path;
    const mtime = (await stat(path).catch(() => null))?.mtimeMs ?? 0;
    if (this.#config && mtime === this.#configMtime) return null;
    try {
      return { loaded: await this.options.load(), mtime };
    } catch (err) {
      // A bad edit keeps the schedules as they were, and says why (once per edit).
      if (this.#badEditMtime !== mtime) {
        this.#badEditMtime = mtime;
        this.options.log.error(
          { err: { message: (err as Error).message } },
          'drill scheduler: lifeboat.yaml does not load; keeping the current schedules',
        );
      }
      return null;
    }
  }

  /** Makes the BullMQ schedulers match the configuration: one per scheduled drill, nothing else of ours. */
  async sync(loaded: LoadedConfig): Promise<{ schedules: Array<{ id: string; pattern: string }>; complete: boolean }> {
    const config = loaded.config;
    const names = Object.keys(config.targets);
    const target = config.drills.target ?? (names.length === 1 ? names[0] : undefined);
    if (!target || !config.targets[target]) {
      this.options.log.error(
        { target: target ?? null, targets: names },
        'drill scheduler: drills.target must name one of the configured targets (needed when there are several)',
      );
      return { schedules: [], complete: true };
    }
    let schedules: ReturnType<typeof drillSchedules>;
    try {
      schedules = drillSchedules(config.drills);
    } catch (err) {
      const message = (err as Error).message;
      this.options.log.error({ err: { message } }, 'drill scheduler: bad schedule; the schedules stay as they were');
      await this.options.alerts(loaded)?.send({
        kind: 'schedule_rejected',
        target,
        text: `:warning: Lifeboat: lifeboat.yaml's drill schedule of ${target} was not applied: ${message}`,
      });
      return { schedules: [], complete: true };
    }
    // A schedule that never fires (30 February) is not upserted: it is an alert.
    const { neverFires } = upcomingDrills(schedules, new Date(), 1);
    const wanted = schedules
      .filter((s) => !neverFires.includes(s.drill))
      .map((s) => ({ id: `${SCHEDULE_PREFIX}${target}:${s.drill}`, pattern: s.cron.source, drill: s.drill }));
    // One schedule the queue refuses must not keep the others from being kept up to date.
    let complete = true;
    for (const w of wanted) {
      try {
        await this.options.bus.upsertSchedule('drill', w.id, w.pattern, {
          drill: w.drill,
          target,
          requestedBy: 'drill-scheduler',
        });
      } catch (err) {
        complete = false;
        const message = (err as Error).message;
        this.options.log.error(
          { drill: w.drill, pattern: w.pattern, err: { message } },
          'drill scheduler: upsert failed',
        );
        if (!this.#rejectedAlerted.has(`${w.drill} ${w.pattern} ${message}`)) {
          this.#rejectedAlerted.add(`${w.drill} ${w.pattern} ${message}`);
          await this.options.alerts(loaded)?.send({
            kind: 'schedule_rejected',
            target,
            drill: w.drill,
            text: `:warning: Lifeboat: the schedule of drill ${w.drill} of ${target} (${w.pattern}) was not set: ${message}`,
          });
        }
      }
    }
    const keep = new Set(wanted.map((w) => w.id));
    try {
      for (const existing of await this.options.bus.schedules('drill')) {
        if (existing.id.startsWith(SCHEDULE_PREFIX) && !keep.has(existing.id)) {
          await this.options.bus.removeSchedule('drill', existing.id);
          this.options.log.info({ id: existing.id }, 'drill scheduler: schedule removed');
        }
      }
    } catch (err) {
      complete = false;
      this.options.log.error(
        { err: { message: (err as Error).message } },
        'drill scheduler: old schedules not removed',
      );
    }
    for (const drill of neverFires) {
      if (this.#neverFiresAlerted.has(`${drill} ${config.drills.schedule[drill]}`)) continue;
      this.#neverFiresAlerted.add(`${drill} ${config.drills.schedule[drill]}`);
      const text = `:warning: Lifeboat: the schedule of drill ${drill} of ${target} never fires (${config.drills.schedule[drill]}): it will not run`;
      this.options.log.error({ drill }, text);
      await this.options.alerts(loaded)?.send({ kind: 'schedule_never_fires', target, drill, text });
    }
    this.options.log.info(
      { target, schedules: wanted.map((w) => `${w.drill} ${w.pattern}`), complete },
      'drill scheduler: schedules upserted',
    );
    return { schedules: wanted, complete };
  }

  /** A backup older than the order-history RPO is an alert, once per backup. */
  async #checkBackupAge(loaded: LoadedConfig): Promise<void> {
    const config = loaded.config;
    const names = Object.keys(config.targets);
    const target = config.drills.target ?? (names.length === 1 ? names[0] : undefined);
    if (!target || !config.targets[target] || !this.options.newestBackupAt) return;
    let newest: { id: string; at: string } | null;
    try {
      newest = await this.options.newestBackupAt(loaded, target);
    } catch (err) {
      // A store that does not answer says nothing about the backups' age: no alert.
      this.options.log.warn({ err: { message: (err as Error).message } }, 'drill scheduler: backups not listed');
      return;
    }
    const limit = config.drills.targets.rpo.orderHistory;
    const key = newest?.id ?? '(none)';
    if (newest) this.#staleAlerted.delete('(none)');
    const age = newest ? (Date.now() - Date.parse(newest.at)) / 1000 : Number.POSITIVE_INFINITY;
    if (age <= limit || this.#staleAlerted.has(key)) return;
    this.#staleAlerted.add(key);
    const text = newest
      ? `:warning: Lifeboat: the newest backup of ${target} (${newest.id}) is ${Math.round(age)} s old, above the order-history RPO of ${limit} s`
      : `:warning: Lifeboat: ${target} has no backup at all`;
    this.options.log.warn({ target, backup: newest?.id ?? null, ageSeconds: Math.round(age) }, text);
    await this.options.alerts(loaded)?.send({
      kind: 'backup_stale',
      target,
      backup: newest?.id ?? null,
      age_seconds: Math.round(age),
      text,
    });
  }
}
