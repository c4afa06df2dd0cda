// Retention of a PostgreSQL target's WAL archive and base backups, chained to the backups
// kept: a point-in-time restore to any moment from `keepFrom` on starts from the newest base
// backup completed by then (or a newer one) and replays the WAL from its start, so only base
// backups older than that one, and the WAL before its start, go (docs/FORMAT.md §10).
import { LifeboatError } from '@lifeboat/domain/errors';
import { layout } from '@lifeboat/domain/layout';
import {
  type BaseBackupManifest,
  parseWalFileName,
  segmentNumber,
  type WalFileName,
  walSegmentName,
} from '@lifeboat/domain/wal';
import type { Logger } from '../context.js';
import { baseBackupSegments, listBaseBackups, readWalArchive, type WalRuntime } from './wal.js';

export interface WalPrune {
  /** Ids of the base backups deleted (or, in a dry run, to delete), oldest first. */
  baseBackups: string[];
  /** WAL files (segments, `.partial` and `.backup` files) deleted or to delete: record and object. */
  segments: number;
  /** Every object deleted or to delete: base backups, WAL records and objects, streamed pieces. */
  deletedObjects: number;
  /** The start segment of the oldest base backup kept: WAL from there on is kept. Null when the archive was left as it is. */
  keptFromSegment: string | null;
  /** Why nothing, or not everything, was pruned. */
  note?: string;
}

/** A WAL file below the retention point: its record (when it has one) and its objects. */
interface Doomed {
  name: string;
  timeline: number;
  segno: number;
  record: string | null;
  objects: string[];
}

export async function pruneWal(
  runtime: WalRuntime,
  target: string,
  keepFrom: Date,
  options: { dryRun: boolean; log?: Logger },
): Promise<WalPrune> {
  const t = runtime.target(target);
  if (t.config.database?.engine !== 'postgres') {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `target ${t.name} has no PostgreSQL database: WAL retention is for PostgreSQL targets`,
      { hint: `set targets.${t.name}.database.engine: postgres in ${runtime.loaded.path}` },
    );
  }
  const out: WalPrune = { baseBackups: [], segments: 0, deletedObjects: 0, keptFromSegment: null };
  const remove = async (key: string) => {
    if (!options.dryRun) await runtime.store.delete(key);
    out.deletedObjects++;
  };
  /** Leaves the archive as it is, saying why: a warning when the archive does not read. */
  const keepAll = (note: string, level: 'info' | 'warn' = 'warn'): WalPrune => {
    options.log?.[level]({ target: t.name, note }, 'WAL archive not pruned');
    return { ...out, note };
  };

  // Everything is read and decided before anything is deleted: a listing that does not add
  // up leaves the archive as it is, with the reason in the result.
  const bases = await listBaseBackups(runtime, t.name);
  if (bases.problems.length) {
    return keepAll(
      `nothing pruned from the WAL archive or its base backups: a base backup manifest does not read, so which one a restore needs is unknown (${bases.problems.join('; ')})`,
    );
  }
  if (bases.manifests.length === 0) {
    return keepAll('no base backup: nothing pruned from the WAL archive, which restores nothing without one', 'info');
  }
  // The base backup a restore to keepFrom starts from; every newer one is kept as well.
  const keepIndex = bases.manifests.findLastIndex((m) => Date.parse(m.completedAt) <= keepFrom.getTime());
  if (keepIndex < 0) {
    return keepAll(
      `no base backup completed by ${keepFrom.toISOString()} (the oldest backup kept): every base backup and all WAL kept`,
      'info',
    );
  }
  const kept = bases.manifests[keepIndex] as BaseBackupManifest;
  const archive = await readWalArchive(runtime, t.name, bases.manifests);
  if (archive.problems.length) {
    return keepAll(
      `nothing pruned from the WAL archive or its base backups: the archive does not read cleanly (${archive.problems.join('; ')}); \`lifeboat wal verify\` says more`,
    );
  }
  const segmentSize = archive.index.segmentSize;
  if (segmentSize !== kept.postgres.walSegmentSize) {
    return keepAll(
      `nothing pruned from the WAL archive or its base backups: its segments are of ${segmentSize} bytes, base backup ${kept.id} says ${kept.postgres.walSegmentSize}`,
    );
  }
  const { start } = baseBackupSegments(kept, segmentSize);

  // WAL files on the kept backup's timeline or an older one, before its start segment: the
  // segment number of one that goes, null for one that stays. Timeline history files are
  // tiny and every later timeline's history needs them: never.
  const goes = (file: WalFileName | null): number | null => {
    if (!file || file.kind === 'history' || file.timeline > kept.wal.timeline) return null;
    const segno = segmentNumber(file, segmentSize);
    return segno < start ? segno : null;
  };
  const doomed = new Map<string, Doomed>();
  const entry = (file: WalFileName, segno: number) => {
    const d = doomed.get(file.name) ?? { name: file.name, timeline: file.timeline, segno, record: null, objects: [] };
    doomed.set(file.name, d);
    return d;
  };
  const prefix = layout.walPrefix(t.name);
  try {
    for (const name of archive.names) {
      const file = parseWalFileName(name);
      const segno = goes(file);
      if (file && segno !== null) entry(file, segno).record = layout.walRecord(t.name, name);
    }
    // Objects without a record (an interrupted push) below the point go as well.
    for (const key of archive.objects.keys()) {
      const file = parseWalFileName(key.slice(prefix.length).replace(/\.gz(\.age)?$/, ''));
      const segno = goes(file);
      if (file && segno !== null) entry(file, segno).objects.push(key);
    }
  } catch (err) {
    // A name whose position cannot be a segment of this size: not understood, so not touched.
    return keepAll(`nothing pruned from the WAL archive or its base backups: ${(err as Error).message}`);
  }

  // Streamed pieces of segments below the point (`lifeboat ship`); often there are none.
  const streamPrefix = layout.streamPostgresPrefix(t.name);
  const pieces: string[] = [];
  for await (const o of runtime.store.list(streamPrefix)) {
    const [segment, piece] = o.key.slice(streamPrefix.length).split('/');
    const file = parseWalFileName(segment ?? '');
    if (!piece || file?.kind !== 'segment') continue;
    try {
      if (goes(file) !== null) pieces.push(o.key);
    } catch {
      // A segment name that cannot be of this size is not this archive's: left alone.
    }
  }

  // Base backups first, each by its manifest first: a base backup stops existing before any
  // WAL it needs is gone, so an interrupted prune never leaves one that cannot be restored.
  const older = bases.manifests.slice(0, keepIndex);
  const basePrefix = layout.baseBackupsPrefix(t.name);
  for (const m of older) {
    const manifestKey = layout.baseBackupManifest(t.name, m.id);
    const rest: string[] = [];
    for await (const o of runtime.store.list(`${basePrefix}${m.id}/`)) if (o.key !== manifestKey) rest.push(o.key);
    await remove(manifestKey);
    for (const key of rest) await remove(key);
    out.baseBackups.push(m.id);
    options.log?.info(
      { target: t.name, baseBackupId: m.id, keptFrom: kept.id, dryRun: options.dryRun },
      'base backup deleted by retention',
    );
  }

  // Oldest first, each by its record first: an interrupted prune leaves an archive that
  // starts later, never one with a gap in it.
  const files = [...doomed.values()].sort(
    (a, b) => a.segno - b.segno || a.timeline - b.timeline || a.name.localeCompare(b.name),
  );
  for (const f of files) {
    if (f.record) await remove(f.record);
    for (const key of f.objects) await remove(key);
    out.segments++;
  }
  for (const key of pieces.sort()) await remove(key);
  out.keptFromSegment = walSegmentName(kept.wal.timeline, start, segmentSize);
  if (files.length || pieces.length) {
    options.log?.info(
      {
        target: t.name,
        files: files.length,
        streamedPieces: pieces.length,
        keptFromSegment: out.keptFromSegment,
        dryRun: options.dryRun,
      },
      'WAL before the oldest base backup kept deleted by retention',
    );
  }
  return out;
}
