// The files' side of the cut. Append-only files are cut at their size at that moment and
// read up to it later; every other file is copied into staging at the cut and checked to
// be unchanged across the copy, so a writer rewriting a file in place cannot leave a torn
// copy in the backup, and no file handle is held for the length of the backup.
import { createReadStream } from 'node:fs';
import { copyFile, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LifeboatError } from '@lifeboat/domain';
import type { SelectedFile } from './select-files.js';

export interface CutFile extends SelectedFile {
  /** Path inside the archive. */
  path: string;
  size: number;
  mode: number;
  mtime: Date;
  /** The file's bytes as of the cut. */
  open(): AsyncIterable<Uint8Array>;
}

const COPY_ATTEMPTS = 5;

function sameVersion(
  a: { size: number; mtimeMs: number; ino: number },
  b: { size: number; mtimeMs: number; ino: number },
) {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

function appendOnlyReader(abs: string, source: string, size: number, ino: number): () => AsyncIterable<Uint8Array> {
  return () =>
    (async function* () {
      if (size === 0) return;
      const handle = await open(abs, 'r');
      try {
        const now = await handle.stat();
        if (now.ino !== ino || now.size < size) {
          throw new LifeboatError('TARGET_ERROR', `${source} was replaced or truncated during the backup`, {
            hint: 'an append-only file must only grow; check the target’s log rotation, then run the backup again',
          });
        }
        yield* createReadStream('', { fd: handle, start: 0, end: size - 1, autoClose: false, highWaterMark: 1 << 20 });
      } finally {
        await handle.close();
      }
    })();
}

/** A JSON state file must parse; a torn write shows up as a parse failure. */
async function parsesAsJson(file: string): Promise<boolean> {
  try {
    JSON.parse(await readFile(file, 'utf8'));
    return true;
  } catch {
    return false;
  }
}

/**
 * Takes the cut of the selected files. `pathFor` names each file in the archive; warnings
 * (a JSON state file that does not parse) are appended to `warnings`, never secret contents.
 */
export async function cutFiles(
  root: string,
  files: readonly SelectedFile[],
  staging: string,
  pathFor: (f: SelectedFile) => string,
  warnings: string[],
): Promise<CutFile[]> {
  const out: CutFile[] = [];
  for (const [i, f] of files.entries()) {
    const abs = join(root, f.source);
    const before = await stat(abs).catch((err: NodeJS.ErrnoException) => {
      throw new LifeboatError('TARGET_ERROR', `cannot read ${f.source} in ${root}: ${err.code ?? err.message}`);
    });
    const base = { ...f, path: pathFor(f), mode: before.mode & 0o777, mtime: before.mtime };
    if (f.appendOnly) {
      out.push({ ...base, size: before.size, open: appendOnlyReader(abs, f.source, before.size, before.ino) });
      continue;
    }
    const copy = join(staging, `file-${i}`);
    let version = before;
    let settled = false;
    for (let attempt = 1; attempt <= COPY_ATTEMPTS && !settled; attempt++) {
      await copyFile(abs, copy);
      const after = await stat(abs);
      const copied = await stat(copy);
      const json = f.role === 'state' && f.source.endsWith('.json');
      settled = sameVersion(version, after) && copied.size === after.size && (!json || (await parsesAsJson(copy)));
      version = after;
      if (!settled && attempt < COPY_ATTEMPTS) await new Promise((r) => setTimeout(r, 20 * attempt));
    }
    if (!settled) {
      warnings.push(
        `${f.source}: no stable copy in ${COPY_ATTEMPTS} attempts (it kept changing, or is not valid JSON); the last copy is kept`,
      );
    }
    const size = (await stat(copy)).size;
    out.push({ ...base, size, open: () => createReadStream(copy, { highWaterMark: 1 << 20 }) });
  }
  return out;
}
