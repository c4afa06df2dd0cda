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
export const LEADER_LOCK = 'drill-scheduler:leader';
/** Schedules this process owns: `drill:<target>:<drill>`. */
const SCHEDULE_PREFIX = 'drill:';

export class DrillScheduler {
  #lease: Lease | null = null;
  #timer: NodeJS.Timeout | undefined;
  #configMtime = 0;
  #config: LoadedConfig | null = null;
  #staleAlerted = new Set<string>();
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
    const loaded = await this.#reloadIfChanged();
    if (loaded) await this.sync(loaded);
    if (this.#config) await this.#checkBackupAge(this.#config);
  }

  async #reloadIfChanged(): Promise<LoadedConfig | null> {
    const current = this.#config ?? (await this.options.load());
    const mtime = (await stat(current.path).catch(() => null))?.mtimeMs ?? 0;
    if (this.#config && mtime === this.#configMtime) return null;
    try {
      const loaded = this.#config ? await this.options.load() : current;
      this.#config = loaded;
      this.#configMtime = mtime;
      return loaded;
    } catch (err) {
      // A bad edit keeps the schedules as they were, and says why.
      this.#configMtime = mtime;
      this.options.log.error(
        { err: { message: (err as Error).message } },
        'drill scheduler: lifeboat.yaml does not load; keeping the current schedules',
      );
      return null;
    }
  }

  /** Makes the BullMQ schedulers match the configuration: one per scheduled drill, nothing else of ours. */
  async sync(loaded: LoadedConfig): Promise<Array<{ id: string; pattern: string }>> {
    const config = loaded.config;
    const target = config.drills.target ?? Object.keys(config.targets)[0];
    if (!target || !config.targets[target]) {
      this.options.log.error({ target }, 'drill scheduler: drills.target names no configured target');
      return [];
    }
    let schedules: ReturnType<typeof drillSchedules>;
    try {
      schedules = drillSchedules(config.drills);
    } catch (err) {
      this.options.log.error({ err: { message: (err as Error).message } }, 'drill scheduler: bad schedule; unchanged');
      return [];
    }
    // A schedule that never fires (30 February) is not upserted: it is an alert.
    const { neverFires } = upcomingDrills(schedules, new Date(), 1);
    const wanted = schedules
      .filter((s) => !neverFires.includes(s.drill))
      .map((s) => ({ id: `${SCHEDULE_PREFIX}${target}:${s.drill}`, pattern: s.cron.source, drill: s.drill }));
    for (const w of wanted) {
      await this.options.bus.upsertSchedule('drill', w.id, w.pattern, {
        drill: w.drill,
        target,
        requestedBy: 'drill-scheduler',
      });
    }
    const keep = new Set(wanted.map((w) => w.id));
    for (const existing of await this.options.bus.schedules('drill')) {
      if (existing.id.startsWith(SCHEDULE_PREFIX) && !keep.has(existing.id)) {
        await this.options.bus.removeSchedule('drill', existing.id);
        this.options.log.info({ id: existing.id }, 'drill scheduler: schedule removed');
      }
    }
    for (const drill of neverFires) {
      if (this.#neverFiresAlerted.has(`${drill} ${config.drills.schedule[drill]}`)) continue;
      this.#neverFiresAlerted.add(`${drill} ${config.drills.schedule[drill]}`);
      const text = `:warning: Lifeboat: the schedule of drill ${drill} of ${target} never fires (${config.drills.schedule[drill]}): it will not run`;
      this.options.log.error({ drill }, text);
      await this.options.alerts(loaded)?.send({ kind: 'schedule_never_fires', target, drill, text });
    }
    this.options.log.info(
      { target, schedules: wanted.map((w) => `${w.drill} ${w.pattern}`) },
      'drill scheduler: schedules upserted',
    );
    return wanted;
  }

  /** A backup older than the order-history RPO is an alert, once per backup. */
  async #checkBackupAge(loaded: LoadedConfig): Promise<void> {
    const config = loaded.config;
    const target = config.drills.target ?? Object.keys(config.targets)[0];
    if (!target || !this.options.newestBackupAt) return;
    const newest = await this.options.newestBackupAt(loaded, target).catch(() => null);
    const limit = config.drills.targets.rpo.orderHistory;
    const key = newest?.id ?? '(none)';
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
