// Verification: `quick` re-reads the stored archive and checks its size and sha256; `full`
// also decrypts and unpacks it, checks every entry against the manifest, runs the
// database's own integrity check on the restored file and parses the JSON state.
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type Digest,
  inspectDatabaseFile,
  measure,
  type OpenedArchive,
  openArchive,
  type Runtime,
  readArchiveStream,
} from '@lifeboat/adapters';
import {
  archiveLimits,
  LifeboatError,
  Manifest,
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

/** What a full read of an archive found, entry by entry, before it is compared with a manifest. */
interface ReadBack {
  entries: Map<string, { size: number; sha256: string }>;
  /** The manifest the archive carries as its last entry, when it parses. */
  inner?: Manifest;
  /** Damage that stopped the read, naming the entry it showed in. */
  damaged?: Check;
  dbCheck?: Promise<SnapshotInspection>;
}

/**
 * Reads every entry of an opened archive: hashes each one, writes the database file to
 * scratch and starts its engine's check there at once (beside the rest of the archive), and
 * parses JSON state. `manifest` is the stored one when there is one; a loose archive is read
 * against the manifest inside it, which comes last.
 */
async function readEveryEntry(
  opened: OpenedArchive,
  manifest: Manifest | undefined,
  checks: Check[],
  scratch: string,
): Promise<ReadBack> {
  const expected = new Map(manifest?.entries.map((e) => [e.path, e]));
  const out: ReadBack = { entries: new Map() };
  let dbFile: string | undefined;
  let current: string | undefined;
  let last: string | undefined;
  try {
    for await (const entry of opened.entries) {
      current = entry.path;
      last = entry.path;
      if (entry.type === 'Directory') continue;
      if (entry.path === 'manifest.json') {
        const chunks: Buffer[] = [];
        await drainBody(entry.body, (c) => chunks.push(c));
        try {
          out.inner = Manifest.parse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          out.inner = undefined;
        }
        current = undefined;
        continue;
      }
      const exp = expected.get(entry.path);
      if (manifest && !exp) {
        await drainBody(entry.body);
        checks.push({ name: `entry ${entry.path}`, ok: false, detail: 'in the archive but not in the manifest' });
        current = undefined;
        continue;
      }
      // Without a stored manifest the archive's layout says which entry is the database
      // (docs/FORMAT.md §2), and every entry is treated as possibly secret.
      const isDatabase = exp ? exp.role === 'database' : entry.path.startsWith('database/');
      const secret = exp ? exp.secret : true;
      const hashed = measure(entry.body);
      const keepJson = entry.path.endsWith('.json') && entry.size <= 16 << 20;
      const text: Buffer[] = [];
      if (isDatabase) {
        dbFile = join(scratch, 'database');
        await pipeline(Readable.from(hashed.stream), createWriteStream(dbFile));
        if (manifest?.database) {
          out.dbCheck = inspectDatabaseFile(manifest.database.engine, dbFile);
          out.dbCheck.catch(() => {}); // awaited later; the archive may fail first
        }
      } else {
        for await (const c of hashed.stream) if (keepJson) text.push(Buffer.from(c));
      }
      out.entries.set(entry.path, { size: hashed.digest.size, sha256: hashed.digest.sha256 });
      if (keepJson) {
        try {
          JSON.parse(Buffer.concat(text).toString('utf8'));
        } catch (err) {
          // The parser quotes the text around the fault: never for a secret.
          const why = secret ? '' : `: ${(err as Error).message}`;
          checks.push({ name: `json ${entry.path}`, ok: false, detail: `does not parse${why}` });
        }
      }
      current = undefined;
    }
  } catch (err) {
    if (err instanceof LifeboatError && (err.code === 'VERIFY_FAILED' || err.code === 'ARCHIVE_UNSAFE')) {
      // Name the entry being read when the damage showed (a decryption or inflate error); when
      // it shows between entries (read-ahead runs a little ahead), the next one expected; past
      // the last, the last one read.
      const named = current ?? manifest?.entries.find((e) => !out.entries.has(e.path))?.path;
      out.damaged = {
        name: named ? `entry ${named}` : 'archive readable',
        ok: false,
        detail: `archive damaged ${!named && last ? `after entry ${last} ` : ''}while reading it: ${err.message}`,
      };
      return out;
    }
    throw err;
  }
  // A loose archive's database is checked once the manifest at its end has named the engine.
  const engine = manifest?.database?.engine ?? out.inner?.database?.engine;
  if (!out.dbCheck && dbFile && engine) out.dbCheck = inspectDatabaseFile(engine, dbFile);
  return out;
}

/** Compares what was read with the manifest's entries, row counts and archive checksum. */
async function compareWithManifest(
  read: ReadBack,
  manifest: Manifest,
  digest: Digest,
  checks: Check[],
  options: { archiveChecksum: boolean },
): Promise<void> {
  if (read.damaged) {
    checks.push(read.damaged);
    // What was read before the damage showed may be damaged too (inflate can pass a flipped bit on silently).
    for (const exp of manifest.entries) {
      const got = read.entries.get(exp.path);
      if (got && (got.size !== exp.size || got.sha256 !== exp.sha256))
        checks.push({
          name: `entry ${exp.path}`,
          ok: false,
          detail: `sha256 ${got.sha256} (${got.size} bytes), expected ${exp.sha256} (${exp.size} bytes)`,
        });
    }
    return;
  }
  for (const exp of manifest.entries) {
    const got = read.entries.get(exp.path);
    if (!got) {
      checks.push({ name: `entry ${exp.path}`, ok: false, detail: 'in the manifest but missing from the archive' });
      continue;
    }
    const ok = got.size === exp.size && got.sha256 === exp.sha256;
    checks.push({
      name: `entry ${exp.path}`,
      ok,
      detail: ok
        ? `sha256 ${exp.sha256}`
        : `sha256 ${got.sha256} (${got.size} bytes), expected ${exp.sha256} (${exp.size} bytes)`,
    });
  }
  for (const path of read.entries.keys()) {
    if (!manifest.entries.some((e) => e.path === path))
      checks.push({ name: `entry ${path}`, ok: false, detail: 'in the archive but not in the manifest' });
  }
  const same =
    read.inner !== undefined &&
    read.inner.backupId === manifest.backupId &&
    JSON.stringify(read.inner.entries) === JSON.stringify(manifest.entries);
  checks.push({
    name: 'manifest inside the archive',
    ok: same,
    detail: same
      ? 'matches the stored manifest'
      : read.inner
        ? 'differs from the stored manifest'
        : 'missing or unreadable',
  });
  if (options.archiveChecksum) {
    const archiveOk = digest.size === manifest.archive.size && digest.sha256 === manifest.archive.sha256;
    checks.push({
      name: 'archive checksum',
      ok: archiveOk,
      detail: archiveOk ? `sha256 ${digest.sha256}` : `sha256 ${digest.sha256}, expected ${manifest.archive.sha256}`,
    });
  }
  if (manifest.database && read.dbCheck) {
    const inspection = await read.dbCheck;
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

async function checkEveryEntry(
  runtime: Runtime,
  manifest: Manifest,
  checks: Check[],
  scratch: string,
  onBytes?: (n: number) => void,
): Promise<void> {
  const opened = await openArchive(runtime.store, manifest.archive.key, {
    limits: archiveLimits(manifest),
    encrypted: manifest.archive.encryption !== null,
    identities: manifest.archive.encryption ? await runtime.identities() : [],
    ...(onBytes ? { onBytes } : {}),
  });
  const read = await readEveryEntry(opened, manifest, checks, scratch);
  await compareWithManifest(read, manifest, opened.digest, checks, { archiveChecksum: true });
}

const AGE_MAGIC = Buffer.from('age-encryption.org/v1\n');
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

export interface FileVerification {
  file: string;
  ok: boolean;
  encrypted: boolean;
  /** The backup the archive holds, by the manifest it was checked against. */
  backupId: string | null;
  /** Which manifest the entries were compared with. */
  manifest: 'given' | 'inside the archive' | null;
  size: number;
  sha256: string;
  durationMs: number;
  problems: string[];
  checks: Check[];
}

/**
 * Verifies an archive that is in no store (copied by hand, downloaded from a bucket): every
 * entry against the stored manifest when one is given (and the archive's own size and
 * sha256), else against the manifest the archive carries; the database's check and JSON
 * state as for `verify --full`. Nothing is recorded anywhere.
 */
export async function verifyArchiveFile(
  file: string,
  options: { manifest?: Manifest; identities: () => Promise<string[]>; onBytes?: (n: number) => void },
): Promise<FileVerification> {
  const started = Date.now();
  const head = Buffer.alloc(AGE_MAGIC.length);
  let fd: FileHandle;
  try {
    fd = await open(file, 'r');
  } catch (err) {
    throw new LifeboatError('INVALID_REQUEST', `cannot read archive ${file}: ${(err as Error).message}`, {
      hint: 'give the path of a .tar.gz or .tar.gz.age archive',
      retryable: false,
    });
  }
  try {
    await fd.read(head, 0, head.length, 0);
  } finally {
    await fd.close();
  }
  const encrypted = head.equals(AGE_MAGIC);
  if (!encrypted && !head.subarray(0, 2).equals(GZIP_MAGIC)) {
    throw new LifeboatError('VERIFY_FAILED', `${file} is neither a gzip archive nor an age-encrypted one`, {
      hint: 'a Lifeboat archive starts with gzip or age magic bytes; is this the archive, or its manifest?',
      retryable: false,
    });
  }
  if (options.manifest && (options.manifest.archive.encryption !== null) !== encrypted) {
    throw new LifeboatError(
      'VERIFY_FAILED',
      `${file} is ${encrypted ? '' : 'not '}encrypted, but manifest ${options.manifest.backupId} says it is${encrypted ? ' not' : ''}`,
      { hint: 'is this the manifest of this archive?', retryable: false },
    );
  }
  const identities = encrypted ? await options.identities() : [];
  if (encrypted && identities.length === 0) {
    throw new LifeboatError('ENCRYPTION_ERROR', `${file} is encrypted and no age identity is configured`, {
      hint: 'set encryption.identityFile in lifeboat.yaml to the age key that decrypts it',
      retryable: false,
    });
  }
  const checks: Check[] = [];
  const scratch = await mkdtemp(join(tmpdir(), 'lifeboat-verify-'));
  let opened: OpenedArchive | undefined;
  let against: Manifest | undefined = options.manifest;
  try {
    opened = readArchiveStream(createReadStream(file, { highWaterMark: 1 << 20 }), {
      // Without a manifest the sizes are unknown: no entry may pass the limit an unlisted one has.
      limits: options.manifest ? archiveLimits(options.manifest) : {},
      encrypted,
      identities,
      ...(options.onBytes ? { onBytes: options.onBytes } : {}),
    });
    const read = await readEveryEntry(opened, options.manifest, checks, scratch);
    against ??= read.inner;
    if (against)
      await compareWithManifest(read, against, opened.digest, checks, { archiveChecksum: Boolean(options.manifest) });
    else if (read.damaged) checks.push(read.damaged);
    else
      checks.push({
        name: 'manifest inside the archive',
        ok: false,
        detail: 'missing or unreadable, and none was given (--manifest <file>)',
      });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const failed = checks.filter((c) => !c.ok);
  return {
    file,
    ok: failed.length === 0,
    encrypted,
    backupId: against?.backupId ?? null,
    manifest: options.manifest ? 'given' : against ? 'inside the archive' : null,
    size: opened.digest.size,
    sha256: opened.digest.sha256,
    durationMs: Date.now() - started,
    problems: failed.map((c) => `${c.name}: ${c.detail}`),
    checks,
  };
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
    } catch (err) {
      // An archive that does not decrypt is damaged when it is not the one the manifest
      // describes (a flipped byte in its age header); else the identity is wrong, which is no
      // fault of the backup's.
      if (!(err instanceof LifeboatError && err.code === 'ENCRYPTION_ERROR')) throw err;
      const checksum: Check[] = [];
      await checkArchiveChecksum(runtime, manifest, checksum, () => {});
      if (checksum.every((c) => c.ok)) throw err;
      checks.push({ name: 'archive readable', ok: false, detail: err.message }, ...checksum);
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
