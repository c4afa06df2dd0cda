// Extraction: a backup's files, checked against the manifest and laid out as the target
// had them, in a directory. Everything is written into a staging directory beside the
// destination and renamed into place only when every checksum matched.
import { mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { extractEntries, openArchive, type Runtime } from '@lifeboat/adapters';
import { archiveLimits, type JobProgress, LifeboatError } from '@lifeboat/domain';
import { throttled } from '../context.js';
import { readManifest } from './catalog.js';

export interface ExtractResult {
  backupId: string;
  destination: string;
  files: Array<{ path: string; size: number; sha256: string; role: string }>;
  bytes: number;
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'ENOTDIR') return false;
    throw err;
  }
}

export async function extractBackup(
  runtime: Runtime,
  target: string,
  backupId: string,
  destination: string,
  onProgress?: (p: JobProgress) => void,
): Promise<ExtractResult> {
  const dest = resolve(destination);
  if (!(await isEmptyOrMissing(dest))) {
    throw new LifeboatError('CONFLICT', `cannot extract: ${dest} exists and is not an empty directory`, {
      hint: 'choose a new directory; Lifeboat never overwrites files by extracting',
    });
  }
  const manifest = await readManifest(runtime, target, backupId);
  const bySource = new Map(manifest.entries.map((e) => [e.path, e]));
  await mkdir(dirname(dest), { recursive: true });
  const report = throttled(onProgress);
  const staging = join(dirname(dest), `.${basename(dest)}.lifeboat-staging-${process.pid}-${Date.now()}`);
  await mkdir(staging);
  try {
    const opened = await openArchive(runtime.store, manifest.archive.key, {
      limits: archiveLimits(manifest),
      encrypted: manifest.archive.encryption !== null,
      identities: manifest.archive.encryption ? await runtime.identities() : [],
      onBytes: (bytes) => report.push({ phase: 'extract', bytes, totalBytes: manifest.archive.size }),
    });
    // The entry being read, for naming where damage showed (as `verify --full` does), and the
    // files already written whose checksums disagree with the manifest.
    let current: string | undefined;
    const seen = new Set<string>();
    const mismatched: string[] = [];
    const tracked = (async function* () {
      try {
        for (;;) {
          current = undefined;
          const next = await opened.entries.next();
          if (next.done) return;
          current = next.value.path;
          seen.add(current);
          yield next.value;
        }
      } finally {
        await opened.entries.return(undefined);
      }
    })();
    const files = await extractEntries(tracked, staging, {
      // Only what the manifest lists is written, at the path the target had it.
      map: (entry) => bySource.get(entry.path)?.source ?? null,
      mode: (entry) => {
        const e = bySource.get(entry.path);
        return e?.secret ? 0o600 : (e?.mode ?? 0o644) & 0o777;
      },
      onFile: (f) => {
        const e = bySource.get(f.entry);
        if (e && (e.sha256 !== f.sha256 || e.size !== f.size)) mismatched.push(f.entry);
      },
    }).catch((err: unknown) => {
      if (!(err instanceof LifeboatError && err.code === 'VERIFY_FAILED')) throw err;
      // Between entries (read-ahead runs a little ahead), the next one expected; past the last, the last read.
      const next = current ?? manifest.entries.find((e) => !seen.has(e.path))?.path;
      const where = next ? ` at entry ${next}` : seen.size ? ` after entry ${[...seen].at(-1)}` : '';
      const also = mismatched.length ? `; already read and not as the manifest says: ${mismatched.join(', ')}` : '';
      throw new LifeboatError('VERIFY_FAILED', `backup ${backupId} is damaged${where}: ${err.message}${also}`, {
        hint: 'nothing was extracted; use another backup',
      });
    });
    report.flush();
    const problems: string[] = [];
    for (const f of files) {
      const e = bySource.get(f.entry);
      if (e && (e.sha256 !== f.sha256 || e.size !== f.size))
        problems.push(`${f.entry}: sha256 ${f.sha256}, expected ${e.sha256}`);
    }
    const got = new Set(files.map((f) => f.entry));
    for (const e of manifest.entries) if (!got.has(e.path)) problems.push(`${e.path}: missing from the archive`);
    if (opened.digest.sha256 !== manifest.archive.sha256)
      problems.push(`archive sha256 ${opened.digest.sha256}, expected ${manifest.archive.sha256}`);
    if (problems.length) {
      throw new LifeboatError(
        'VERIFY_FAILED',
        `backup ${backupId} does not match its manifest: ${problems.join('; ')}`,
        {
          hint: 'nothing was extracted; use another backup',
        },
      );
    }
    if (await isEmptyOrMissing(dest)) await rmdir(dest).catch(() => undefined);
    await rename(staging, dest);
    return {
      backupId,
      destination: dest,
      files: files.map((f) => ({
        path: f.path,
        size: f.size,
        sha256: f.sha256,
        role: bySource.get(f.entry)?.role ?? 'unknown',
      })),
      bytes: files.reduce((n, f) => n + f.size, 0),
    };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}
