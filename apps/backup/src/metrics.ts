// The backup app's Prometheus metrics: when the last backup succeeded (backup age is the
// RPO exposure), how long backups take, how big they are, how often they fail, and how far
// each other location's copies are behind the primary.
import type { Runtime } from '@lifeboat/adapters';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { planCopies, readLocations } from './handlers/locations.js';
import type { Shipping } from './ship/run.js';

export function createBackupMetrics(registry = new Registry()) {
  const copyLag = new Gauge({
    name: 'lifeboat_location_copy_lag_seconds',
    help: 'How long the oldest backup a location should hold has waited for its verified copy (0: up to date)',
    labelNames: ['target', 'location'],
    registers: [registry],
  });
  const locationUp = new Gauge({
    name: 'lifeboat_location_up',
    help: 'Whether a backup location answered its last listing (1) or not (0)',
    labelNames: ['target', 'location'],
    registers: [registry],
  });
  const missingCopies = new Gauge({
    name: 'lifeboat_location_missing_copies',
    help: 'Backups a location should hold a verified copy of and does not',
    labelNames: ['target', 'location'],
    registers: [registry],
  });
  return {
    registry,
    copyLag,
    locationUp,
    missingCopies,
    /** Lists every location of a target and sets the copy gauges (a location that is down loses its lag). */
    async refreshCopyLag(runtime: Runtime, target: string, now = new Date()): Promise<void> {
      if (runtime.locations.length < 2) return;
      const locations = await readLocations(runtime, target);
      const primary = locations.find((l) => l.primary);
      locationUp.set({ target, location: primary?.name ?? 'primary' }, primary?.reachable ? 1 : 0);
      if (!primary?.reachable) return;
      for (const plan of planCopies(locations, now)) {
        const labels = { target, location: plan.location };
        locationUp.set(labels, plan.reachable ? 1 : 0);
        if (plan.lagSeconds === null) {
          copyLag.remove(labels);
          missingCopies.remove(labels);
        } else {
          copyLag.set(labels, plan.lagSeconds);
          missingCopies.set(labels, plan.missing.length);
        }
      }
    },
    lastSuccess: new Gauge({
      name: 'lifeboat_backup_last_success_timestamp_seconds',
      help: 'Unix time of the last committed backup, per target',
      labelNames: ['target'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'lifeboat_backup_duration_seconds',
      help: 'Wall time of backup jobs',
      labelNames: ['target', 'outcome'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    }),
    bytes: new Gauge({
      name: 'lifeboat_backup_last_bytes',
      help: 'Archive size of the last committed backup, per target',
      labelNames: ['target'],
      registers: [registry],
    }),
    jobs: new Counter({
      name: 'lifeboat_backup_jobs_total',
      help: 'Backup jobs by outcome',
      labelNames: ['target', 'outcome'],
      registers: [registry],
    }),
  };
}
export type BackupMetrics = ReturnType<typeof createBackupMetrics>;

/** Ship mode's metrics: the replication lag the drills' RPO and the stale-backup alert read. */
export function createShipMetrics(registry = new Registry()) {
  const lag = new Gauge({
    name: 'lifeboat_ship_lag_seconds',
    help: 'Replication lag: how long the oldest change not yet shipped has waited (0: everything shipped)',
    labelNames: ['target', 'stream'],
    registers: [registry],
  });
  const bytes = new Gauge({
    name: 'lifeboat_ship_bytes_total',
    help: 'Bytes shipped since the shipper started',
    labelNames: ['target', 'stream'],
    registers: [registry],
  });
  const last = new Gauge({
    name: 'lifeboat_ship_last_segment_timestamp_seconds',
    help: 'Unix time of the newest segment stored',
    labelNames: ['target', 'stream'],
    registers: [registry],
  });
  return {
    registry,
    update(shipping: Shipping, now = new Date()): void {
      const lags = shipping.lagSeconds(now);
      for (const s of shipping.streams) {
        const labels = { target: shipping.target, stream: s.stream };
        lag.set(labels, lags[s.stream] ?? 0);
        bytes.set(labels, s.bytesShipped);
        if (s.lastSegmentAt) last.set(labels, s.lastSegmentAt.getTime() / 1000);
      }
    },
  };
}
