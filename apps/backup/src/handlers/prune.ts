// Retention: compute the plan (GFS rules, the newest verified backup always kept), then
// delete what it lets go — the manifest first, so a backup stops existing at once.
import type { Runtime } from '@lifeboat/adapters';
import {
  layout,
  parseBackupKey,
  planRetention,
  protectOnlyCopies,
  type RetentionPlan,
  type RetentionPolicy,
} from '@lifeboat/domain';
import type { Logger } from '../context.js';
import { pruneStreams, type StreamPrune } from '../ship/prune.js';
import { readCatalog } from './catalog.js';
import { asCandidates, readLocations } from './locations.js';
import { pruneWal, type WalPrune } from './wal-prune.js';

export interface PruneResult {
  target: string;
  /** The location pruned (its own retention). */
  location: string;
  dryRun: boolean;
  policy: RetentionPolicy;
  plan: RetentionPlan;
  /** Objects of backups that never committed (no manifest), removed or to remove. */
  abandoned: string[];
  deletedObjects: number;
  /** The continuous streams pruned with the primary's backups (null elsewhere). */
  streams: StreamPrune | null;
  /** A PostgreSQL target's WAL archive and base backups, pruned with the primary's backups (null elsewhere). */
  wal: WalPrune | null;
}

export async function pruneBackups(
  runtime: Runtime,
  target: string,
  options: { dryRun: boolean; now?: Date; log: Logger },
): Promise<PruneResult> {
  const now = options.now ?? new Date();
  const policy = runtime.retention;
  const { backups, unreadable } = await readCatalog(runtime, target);
  let plan = planRetention(asCandidates(backups), policy, now);
  if (plan.delete.length && runtime.locations.length > 1) {
    // Copies span locations: the only verified copy of a backup another location still wants stays.
    const others = await readLocations(runtime, target, { except: runtime.locationName });
    plan = protectOnlyCopies(
      plan,
      new Set(backups.filter((b) => b.verification?.ok === true).map((b) => b.backupId)),
      others.map((o) => ({
        name: o.name,
        policy: o.retention,
        backups: o.reachable ? asCandidates(o.backups) : null,
      })),
      now,
    );
  }

  // Objects under a backup id with no manifest belong to a backup that never committed. One
  // whose manifest exists but is refused (damaged, its seal broken, a key not the one it was
  // sealed with) did commit: it is neither counted nor deleted, and `backups list` shows it.
  const graceMs = runtime.loaded.config.backup.abandonedUploadMinutes * 60_000;
  const committed = new Set(backups.map((b) => b.backupId));
  const refused = new Set(unreadable.map((u) => u.backupId));
  const byBackup = new Map<string, string[]>();
  const abandoned: string[] = [];
  for await (const obj of runtime.store.list(layout.backupsPrefix(target))) {
    const parts = parseBackupKey(obj.key);
    if (!parts || refused.has(parts.backupId)) continue;
    if (!committed.has(parts.backupId)) {
      if (now.getTime() - obj.lastModified.getTime() > graceMs) abandoned.push(obj.key);
      continue;
    }
    byBackup.set(parts.backupId, [...(byBackup.get(parts.backupId) ?? []), obj.key]);
  }

  let deletedObjects = 0;
  if (!options.dryRun) {
    for (const d of plan.delete) {
      await runtime.store.delete(layout.manifest(target, d.backupId));
      deletedObjects++;
      for (const key of byBackup.get(d.backupId) ?? []) {
        if (key.endsWith('/manifest.json')) continue;
        await runtime.store.delete(key);
        deletedObjects++;
      }
      options.log.info(
        { backupId: d.backupId, location: runtime.locationName, reasons: d.reasons },
        'backup deleted by retention',
      );
    }
    for (const key of abandoned) {
      await runtime.store.delete(key);
      deletedObjects++;
    }
    const aborted = await runtime.store.cleanupIncomplete(layout.backupsPrefix(target), graceMs);
    abandoned.push(...aborted);
  }
  // The streams and the WAL archive are the primary's: what no kept backup needs goes with the backups.
  let streams: StreamPrune | null = null;
  let wal: WalPrune | null = null;
  const oldestKept = plan.keep.at(-1);
  if (runtime.locations.find((l) => l.name === runtime.locationName)?.primary && oldestKept) {
    streams = await pruneStreams(runtime, target, oldestKept.createdAt, { dryRun: options.dryRun });
    deletedObjects += options.dryRun ? 0 : streams.deletedObjects;
    if (runtime.target(target).config.database?.engine === 'postgres') {
      wal = await pruneWal(runtime, target, oldestKept.createdAt, { dryRun: options.dryRun, log: options.log });
      deletedObjects += options.dryRun ? 0 : wal.deletedObjects;
    }
  }
  return {
    target,
    location: runtime.locationName,
    dryRun: options.dryRun,
    policy,
    plan,
    abandoned,
    deletedObjects,
    streams,
    wal,
  };
}
