// Retention of the continuous streams, chained to the backups kept: a restore to any point
// after the oldest kept backup needs the generation current at that point and every segment
// after it, so only what ended before that backup goes — never the newest generation, and
// never a file epoch still current.
import type { Runtime } from '@lifeboat/adapters';
import { layout, parseSegmentName } from '@lifeboat/domain';
import { readFileSegment } from './files.js';
import { listGenerations } from './sqlite.js';

export interface StreamPrune {
  /** Generations that ended before `keepFrom`, and how many objects each had. */
  generations: string[];
  /** File segments of epochs replaced before `keepFrom`. */
  fileSegments: number;
  deletedObjects: number;
}

export async function pruneStreams(
  runtime: Runtime,
  target: string,
  keepFrom: Date,
  options: { dryRun: boolean },
): Promise<StreamPrune> {
  const out: StreamPrune = { generations: [], fileSegments: 0, deletedObjects: 0 };
  const remove = async (key: string) => {
    if (!options.dryRun) await runtime.store.delete(key);
    out.deletedObjects++;
  };

  // A generation ends where the next begins.
  const generations = await listGenerations(runtime, target);
  for (let i = 0; i + 1 < generations.length; i++) {
    const next = generations[i + 1] as { createdAt: string };
    if (Date.parse(next.createdAt) > keepFrom.getTime()) break;
    const g = (generations[i] as { generation: string }).generation;
    out.generations.push(g);
    // The snapshot record first: the generation stops existing at once.
    const prefix = layout.streamGenerationPrefix(target, g);
    const keys: string[] = [];
    for await (const o of runtime.store.list(prefix)) keys.push(o.key);
    const record = layout.streamSnapshotRecord(target, g);
    if (keys.includes(record)) await remove(record);
    for (const k of keys) if (k !== record) await remove(k);
  }

  // A file's epoch ends where the next epoch's first segment begins.
  const filesPrefix = layout.streamFilesPrefix(target);
  const byFile = new Map<string, Array<{ key: string; seq: number; shippedAt: Date }>>();
  for await (const o of runtime.store.list(filesPrefix)) {
    const [file, name] = o.key.slice(filesPrefix.length).split('/');
    const parsed = name ? parseSegmentName(name) : null;
    if (!file || !parsed) continue;
    byFile.set(file, [...(byFile.get(file) ?? []), { key: o.key, ...parsed }]);
  }
  for (const segments of byFile.values()) {
    segments.sort((a, b) => a.seq - b.seq);
    // The first segment (offset 0) of each epoch, newest first: everything before an epoch
    // that began at or before keepFrom is no longer needed.
    for (let i = segments.length - 1; i > 0; i--) {
      const s = segments[i] as { key: string; shippedAt: Date };
      if (s.shippedAt.getTime() > keepFrom.getTime()) continue;
      const { header } = await readFileSegment(runtime, s.key);
      if (header.offset !== 0) continue;
      for (const old of segments.slice(0, i)) {
        await remove(old.key);
        out.fileSegments++;
      }
      break;
    }
  }
  return out;
}
