// The locations of a target's backups, side by side: what each one holds and has verified,
// which copies each one still needs, and how far behind the primary it is.
import type { Runtime } from '@lifeboat/adapters';
import {
  compactUtc,
  LifeboatError,
  type RetentionCandidate,
  type RetentionPolicy,
  replicateJobId,
  wantedBy,
} from '@lifeboat/domain';
import { type BackupSummary, readCatalog } from './catalog.js';

export interface LocationCatalog {
  name: string;
  primary: boolean;
  /** Where the store is (never credentials). */
  store: string;
  retention: RetentionPolicy;
  /** False when the store could not be listed; `problem` says why. */
  reachable: boolean;
  problem?: string;
  backups: BackupSummary[];
  /** Manifests that exist there but do not read. */
  unreadable: Array<{ backupId: string; problem: string }>;
}

/** Every location's catalog of one target, in the configured order; a location that is down is marked, never fatal. */
export async function readLocations(
  runtime: Runtime,
  target: string,
  options: { except?: string } = {},
): Promise<LocationCatalog[]> {
  return Promise.all(
    runtime.locations
      .filter((l) => l.name !== options.except)
      .map(async (l) => {
        const base = { name: l.name, primary: l.primary, store: l.store.location, retention: l.retention };
        try {
          return { ...base, reachable: true, ...(await readCatalog(runtime.at(l.name), target)) };
        } catch (err) {
          return { ...base, reachable: false, problem: (err as Error).message, backups: [], unreadable: [] };
        }
      }),
  );
}

export function asCandidates(backups: readonly BackupSummary[]): RetentionCandidate[] {
  return backups.map((b) => ({
    backupId: b.backupId,
    createdAt: new Date(b.createdAt),
    verified: b.verification?.ok === true,
  }));
}

export interface CopyPlan {
  location: string;
  reachable: boolean;
  problem?: string;
  /** Backups of the primary this location should hold (its retention would keep them) and has no verified copy of, oldest first. */
  missing: BackupSummary[];
  /** How long the oldest missing backup has waited for its copy, in seconds; 0 when none is missing, null when the location is down. */
  lagSeconds: number | null;
}

/**
 * What each other location lacks. A primary backup that failed its verification is never
 * copied; one a location's retention would delete at once is not copied there either (a
 * yearly archive does not need every daily backup).
 */
export function planCopies(locations: readonly LocationCatalog[], now: Date): CopyPlan[] {
  const primary = locations.find((l) => l.primary);
  if (!primary) throw new LifeboatError('INTERNAL', 'no primary location');
  const usable = primary.backups.filter((b) => b.verification?.ok !== false);
  return locations
    .filter((l) => !l.primary)
    .map((l) => {
      if (!l.reachable) {
        return {
          location: l.name,
          reachable: false,
          ...(l.problem ? { problem: l.problem } : {}),
          missing: [],
          lagSeconds: null,
        };
      }
      const copied = new Set(l.backups.filter((b) => b.verification?.ok === true).map((b) => b.backupId));
      const candidates = usable.filter((b) => !copied.has(b.backupId));
      const wanted = wantedBy(
        asCandidates(l.backups.filter((b) => copied.has(b.backupId))),
        asCandidates(candidates),
        l.retention,
        now,
      );
      const missing = candidates.filter((b) => wanted.has(b.backupId));
      const oldest = missing[0];
      return {
        location: l.name,
        reachable: true,
        missing,
        lagSeconds: oldest ? secondsSince(oldest.createdAt, now) : 0,
      };
    });
}

function secondsSince(iso: string, now: Date): number {
  return Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
}

/**
 * The copy jobs a catch-up queues, one per missing backup and location. Their ids carry the
 * catch-up's time: the backup's own job may have failed, and its id would find that failure.
 */
export function copyJobs(target: string, plans: readonly CopyPlan[], now: Date) {
  return plans.flatMap((p) =>
    p.missing.map((b) => ({
      jobId: `${replicateJobId(target, b.backupId, p.location)}:${compactUtc(now)}`,
      request: { target, backupId: b.backupId, location: p.location, requestedBy: 'catch-up' },
    })),
  );
}
