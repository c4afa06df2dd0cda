// The drill schedule: each drill's cron (the catalog's default, or lifeboat.yaml's), and the
// runs to come, merged in time order.
import { LifeboatError } from '../errors.js';
import { DRILL_NAMES, type DrillName, type DrillsConfig } from '../schemas/drill.js';
import { DRILLS } from './catalog.js';
import { type CronSchedule, nextRun, parseCron } from './cron.js';

export interface DrillSchedule {
  drill: DrillName;
  cron: CronSchedule;
  /** Whether it is the catalog's default or lifeboat.yaml's. */
  source: 'default' | 'config';
}

/** Every scheduled drill (those set to `off` are left out); a bad cron names its drill. */
export function drillSchedules(config?: Pick<DrillsConfig, 'schedule'>): DrillSchedule[] {
  const out: DrillSchedule[] = [];
  for (const drill of DRILL_NAMES) {
    const configured = config?.schedule?.[drill];
    if (configured?.trim().toLowerCase() === 'off') continue;
    try {
      out.push({
        drill,
        cron: parseCron(configured ?? DRILLS[drill].schedule),
        source: configured ? 'config' : 'default',
      });
    } catch (err) {
      if (err instanceof LifeboatError) {
        throw new LifeboatError(err.code, `drills.schedule.${drill}: ${err.message}`, {
          ...(err.hint ? { hint: err.hint } : {}),
        });
      }
      throw err;
    }
  }
  return out;
}

export interface UpcomingDrill {
  drill: DrillName;
  /** ISO-8601, UTC. */
  at: string;
}

/**
 * The next `count` runs after `from`, sorted by time (then by drill name), and the drills
 * whose schedule never fires (a day that does not exist): those deserve an alert.
 */
export function upcomingDrills(
  schedules: readonly DrillSchedule[],
  from: Date,
  count: number,
): { runs: UpcomingDrill[]; neverFires: DrillName[] } {
  const neverFires: DrillName[] = [];
  const heads = new Map<DrillName, { schedule: DrillSchedule; at: Date }>();
  for (const s of schedules) {
    const at = nextRun(s.cron, from);
    if (at) heads.set(s.drill, { schedule: s, at });
    else neverFires.push(s.drill);
  }
  const runs: UpcomingDrill[] = [];
  while (runs.length < count && heads.size > 0) {
    let first: { schedule: DrillSchedule; at: Date } | undefined;
    for (const h of heads.values()) {
      if (
        !first ||
        h.at.getTime() < first.at.getTime() ||
        (h.at.getTime() === first.at.getTime() && h.schedule.drill < first.schedule.drill)
      ) {
        first = h;
      }
    }
    const head = first as { schedule: DrillSchedule; at: Date };
    runs.push({ drill: head.schedule.drill, at: head.at.toISOString() });
    const next = nextRun(head.schedule.cron, head.at);
    if (next) head.at = next;
    else heads.delete(head.schedule.drill);
  }
  return { runs, neverFires };
}
