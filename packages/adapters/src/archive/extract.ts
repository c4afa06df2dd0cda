// Writes archive entries into a directory, refusing any path that would land outside it.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, utimes } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '@lifeboat/domain';
import { isSafeEntryPath, type TarReadEntry } from './tar.js';

export interface ExtractedFile {
  /** Path inside the archive. */
  entry: string;
  /** Path written, relative to the directory. */
  path: string;
  size: number;
  sha256: string;
}

export interface ExtractOptions {
  /** Where an entry goes, relative to the directory; null skips it. Defaults to the entry's own path. */
  map?: (entry: TarReadEntry) => string | null;
  /** File mode for an entry (defaults to 0o644; secrets should get 0o600). */
  mode?: (entry: TarReadEntry, path: string) => number;
  /** Called as each file is complete: what was written so far is known when a later entry fails. */
  onFile?: (file: ExtractedFile) => void;
}

/** Resolves a relative path inside dir, or throws ARCHIVE_UNSAFE naming the entry. */
export function insideDirectory(dir: string, rel: string, entry: string): string {
  const root = resolve(dir);
  const target = resolve(root, rel);
  if (!isSafeEntryPath(rel) || !target.startsWith(root + sep)) {
    throw new LifeboatError('ARCHIVE_UNSAFE', `archive entry "${entry}" refused: it would be written outside ${root}`);
  }
  return target;
}

/**
 * Extracts regular files into `dir` (which should be a fresh staging directory). Files are
 * created exclusively, so an archive naming one path twice fails instead of overwriting.
 */
export async function extractEntries(
  entries: AsyncIterable<TarReadEntry>,
  dir: string,
  options: ExtractOptions = {},
): Promise<ExtractedFile[]> {
  const files: ExtractedFile[] = [];
  for await (const entry of entries) {
    if (entry.type === 'Directory') continue;
    const rel = options.map ? options.map(entry) : entry.path;
    if (rel === null) continue;
    const target = insideDirectory(dir, rel, entry.path);
    await mkdir(dirname(target), { recursive: true });
    const hash = createHash('sha256');
    let size = 0;
    const counted = (async function* () {
      for await (const chunk of entry.body) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    })();
    const mode = options.mode ? options.mode(entry, rel) : 0o644;
    try {
      await pipeline(Readable.from(counted), createWriteStream(target, { flags: 'wx', mode }));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new LifeboatError('ARCHIVE_UNSAFE', `archive entry "${entry.path}" refused: ${rel} appears twice`);
      }
      throw err;
    }
    // Restored files keep their time, as tar -x does: how old a report or a log is stays true.
    if (entry.mtime) await utimes(target, entry.mtime, entry.mtime);
    const file = { entry: entry.path, path: rel, size, sha256: hash.digest('hex') };
    files.push(file);
    options.onFile?.(file);
  }
  return files;
}
