// The backup app's Prometheus metrics: when the last backup succeeded (backup age is the
// RPO exposure), how long backups take, how big they are, and how often they fail.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export function createBackupMetrics(registry = new Registry()) {
  return {
    registry,
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
