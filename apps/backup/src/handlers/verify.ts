// Verification: `quick` re-reads the stored archive and checks its size and sha256; `full`
// also decrypts and unpacks it, checks every entry against the manifest, runs the
// database's own integrity check on the restored file and parses the JSON state.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspectDatabaseFile, measure, openArchive, type Runtime } from '@lifeboat/adapters';
import {
  archiveLimits,
  LifeboatError,
  type Manifest,
  type SnapshotInspection,
  type VerificationRecord,
} from '@lifeboat/domain';
import { type BackupContext, throttled } from '../context.js';
import { readManifest, verificationKey } from './catalog.js';

type Check = VerificationRecord['checks'][number];

async function drainBody(body: AsyncIterable<Buffer>, sink?: (c: Buffer) => void): Promise<void> {
  for await (const c of body) sink?.(c);
}

async function checkArchiveChecksum(
  runtime: Runtime,
  manifest: Manifest,
  checks: Check[],
  onBytes: (n: number) => void,
): Promise<void> {
  const m = measure(await runtime.store.get(manifest.archive.key), onBytes);
  for await (const _ of m.stream) {
    // hashing happens in measure()
  }
  const ok = m.digest.size === manifest.archive.size && m.digest.sha256 === manifest.archive.sha256;
  checks.push({
    name: 'archive checksum',
    ok,
    detail: ok
      ? `${m.digest.size} bytes, sha256 ${m.digest.sha256}`
      : `stored archive has ${m.digest.size} bytes, sha256 ${m.digest.sha256}; the manifest says ${manifest.archive.size} bytes, sha256 ${manifest.archive.sha256}`,
  });
}

async function checkEveryEntry(
  runtime: Runtime,
  manifest: Manifest,
  checks: Check[],
  scratch: string,
  onBytes?: (n: number) => void,
): Promise<void> {
  const expected = new Map(manifest.entries.map((e) => [e.path, e]));
  const seen = new Set<string>();
  // The database's own check starts as soon as its file is out, beside the rest of the archive.
  let dbCheck: Promise<SnapshotInspection> | undefined;
  const opened = await openArchive(runtime.store, manifest.archive.key, {
    limits: archiveLimits(manifest),
    encrypted: manifest.archive.encryption !== null,
    identities: manifest.archive.encryption ? await runtime.identities() : [],
    ...(onBytes ? { onBytes } : {}),
  });
  let current: string | undefined;
  try {
    for await (const entry of opened.entries) {
      current = entry.path;
      if (entry.type === 'Directory') continue;
      if (entry.path === 'manifest.json') {
        const chunks: Buffer[] = [];
        await drainBody(entry.body, (c) => chunks.push(c));
        let same = false;
        try {
          const inner = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Manifest;
          same =
            inner.backupId === manifest.backupId && JSON.stringify(inner.entries) === JSON.stringify(manifest.entries);
        } catch {
          same = false;
        }
        checks.push({
          name: 'manifest inside the archive',
          ok: same,
          detail: same ? 'matches the stored manifest' : 'differs from the stored manifest',
        });
        current = undefined;
        continue;
      }
      const exp = expected.get(entry.path);
      if (!exp) {
        await drainBody(entry.body);
        checks.push({ name: `entry ${entry.path}`, ok: false, detail: 'in the archive but not in the manifest' });
        current = undefined;
        continue;
      }
      seen.add(entry.path);
      const hashed = measure(entry.body);
      const keepJson = exp.path.endsWith('.json') && exp.size <= 16 << 20;
      const text: Buffer[] = [];
      if (exp.role === 'database') {
        const dbFile = join(scratch, 'database');
        await pipeline(Readable.from(hashed.stream), createWriteStream(dbFile));
        if (manifest.database) {
          dbCheck = inspectDatabaseFile(manifest.database.engine, dbFile);
          dbCheck.catch(() => {}); // awaited below; the archive may fail first
        }
      } else {
        for await (const c of hashed.stream) if (keepJson) text.push(Buffer.from(c));
      }
      const ok = hashed.digest.size === exp.size && hashed.digest.sha256 === exp.sha256;
      checks.push({
        name: `entry ${entry.path}`,
        ok,
        detail: ok
          ? `sha256 ${exp.sha256}`
          : `sha256 ${hashed.digest.sha256} (${hashed.digest.size} bytes), expected ${exp.sha256} (${exp.size} bytes)`,
      });
      if (ok && keepJson) {
        try {
          JSON.parse(Buffer.concat(text).toString('utf8'));
        } catch (err) {
          // The parser quotes the text around the fault: never for a secret.
          const why = exp.secret ? '' : `: ${(err as Error).message}`;
          checks.push({ name: `json ${entry.path}`, ok: false, detail: `does not parse${why}` });
        }
      }
      current = undefined;
    }
  } catch (err) {
    if (err instanceof LifeboatError && (err.code === 'VERIFY_FAILED' || err.code === 'ARCHIVE_UNSAFE')) {
      // Name the entry being read when the damage showed (a decryption or inflate error); when
      // it shows between entries (read-ahead runs a little ahead), the next one expected.
      const named = current ?? manifest.entries.find((e) => !seen.has(e.path))?.path;
      checks.push({
        name: named ? `entry ${named}` : 'archive readable',
        ok: false,
        detail: `archive damaged while reading it: ${err.message}`,
      });
      return;
    }
    throw err;
  }
  const missing = manifest.entries.filter((e) => !seen.has(e.path));
  for (const e of missing)
    checks.push({ name: `entry ${e.path}`, ok: false, detail: 'in the manifest but missing from the archive' });
  const d = opened.digest;
  const archiveOk = d.size === manifest.archive.size && d.sha256 === manifest.archive.sha256;
  checks.push({
    name: 'archive checksum',
    ok: archiveOk,
    detail: archiveOk ? `sha256 ${d.sha256}` : `sha256 ${d.sha256}, expected ${manifest.archive.sha256}`,
  });

  if (manifest.database && dbCheck) {
    const inspection = await dbCheck;
    checks.push({ name: 'database integrity', ok: inspection.integrity.ok, detail: inspection.integrity.detail });
    if (inspection.tables) {
      const want = manifest.database.tables;
      const diffs = Object.keys({ ...want, ...inspection.tables })
        .filter((t) => want[t] !== inspection.tables?.[t])
        .map((t) => `${t}: ${inspection.tables?.[t] ?? 'missing'} rows, manifest says ${want[t] ?? 'no such table'}`);
      checks.push({
        name: 'database row counts',
        ok: diffs.length === 0,
        detail: diffs.length ? diffs.join('; ') : 'equal to the manifest',
      });
    }
  }
}

/** Verifies one backup and stores the record beside it. */
export async function verifyBackup(
  runtime: Runtime,
  target: string,
  backupId: string,
  level: 'quick' | 'full',
  ctx: Pick<BackupContext, 'log' | 'progress'>,
): Promise<VerificationRecord> {
  const started = Date.now();
  const manifest = await readManifest(runtime, target, backupId);
  const checks: Check[] = [];
  const report = throttled(ctx.progress);
  const onBytes = (bytes: number) =>
    report.push({ phase: `verify-${level}`, bytes, totalBytes: manifest.archive.size });
  if (level === 'quick') {
    await checkArchiveChecksum(runtime, manifest, checks, onBytes);
  } else {
    const scratch = await mkdtemp(join(tmpdir(), 'lifeboat-verify-'));
    try {
      await checkEveryEntry(runtime, manifest, checks, scratch, onBytes);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  report.flush();
  const at = new Date();
  const failed = checks.filter((c) => !c.ok);
  const record: VerificationRecord = {
    backupId,
    level,
    ok: failed.length === 0,
    at: at.toISOString(),
    durationMs: Date.now() - started,
    problems: failed.map((c) => `${c.name}: ${c.detail}`),
    checks,
  };
  await runtime.store.put(
    verificationKey(target, backupId, at, level, record.ok),
    Buffer.from(`${JSON.stringify(record, null, 2)}\n`),
  );
  ctx.log[record.ok ? 'info' : 'error'](
    { backupId, level, ok: record.ok, problems: record.problems },
    'backup verified',
  );
  return record;
}
