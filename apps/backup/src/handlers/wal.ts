// Continuous archiving of a PostgreSQL target: archive_command's `lifeboat wal push` stores
// each WAL file compressed (and encrypted when configured) with a record written last,
// restore_command's `lifeboat wal fetch` puts one back after checking it, and `wal verify`
// follows the chain for gaps. PostgreSQL runs push and fetch once per file, so this module
// loads only the light adapters (docs/FORMAT.md §10).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { decryptStream, encryptStream, type LightRuntime, parallelGzip } from '@lifeboat/adapters/light';
import { describeZodError } from '@lifeboat/domain/config';
import { inStep, LifeboatError } from '@lifeboat/domain/errors';
import { layout } from '@lifeboat/domain/layout';
import {
  BaseBackupManifest,
  DEFAULT_WAL_SEGMENT_SIZE,
  followChain,
  manifestSealProblem,
  parseLsn,
  parseTimelineHistory,
  parseWalFileName,
  segmentBefore,
  segmentNumber,
  segmentOf,
  type TimelineSwitch,
  timelineGaps,
  WAL_RECORD_FORMAT,
  WAL_VERIFY_FORMAT,
  type WalArchiveIndex,
  type WalFileName,
  WalRecord,
  type WalVerifyReport,
  walSegmentName,
} from '@lifeboat/domain/wal';
import { readStreamedSegment, type StreamedSegment } from './wal-stream.js';

const sha256hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** The part of a Runtime WAL archiving uses (a full Runtime is one). */
export type WalRuntime = LightRuntime;

export interface WalPushResult {
  target: string;
  name: string;
  kind: WalFileName['kind'];
  objectKey: string;
  recordKey: string;
  size: number;
  sha256: string;
  storedSize: number;
  /** The same file was archived before: nothing was written. */
  alreadyArchived: boolean;
  durationMs: number;
}

export interface WalFetchResult {
  target: string;
  name: string;
  /** Where the file came from: the archive, or (a segment not archived yet) the shipper's stream. */
  source: 'archive' | 'stream';
  /** From the stream: how many bytes from the segment's start were streamed (the rest is zeros). */
  streamedBytes?: number;
  size: number;
  sha256: string;
  durationMs: number;
}

/** Checks that a name is one PostgreSQL archives; INVALID_REQUEST otherwise. */
export function walFileName(name: string): WalFileName {
  const parsed = parseWalFileName(name);
  if (!parsed) {
    throw new LifeboatError('INVALID_REQUEST', `"${name}" is not the name of a file PostgreSQL archives`, {
      hint: 'a segment (000000010000000000000003), a timeline history (00000002.history), a backup history (….00000028.backup) or a .partial segment',
    });
  }
  return parsed;
}

/** The target, which must have a PostgreSQL database: WAL belongs to one. */
function postgresTarget(runtime: WalRuntime, name: string) {
  const target = runtime.target(name);
  if (target.config.database?.engine !== 'postgres') {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `target ${target.name} has no PostgreSQL database: WAL archiving is for PostgreSQL targets`,
      { hint: `set targets.${target.name}.database.engine: postgres in ${runtime.loaded.path}` },
    );
  }
  return target;
}

/** The stored record of a WAL file, or null when it is not archived. A record that does not parse is damage. */
export async function readWalRecord(runtime: WalRuntime, target: string, name: string): Promise<WalRecord | null> {
  const key = layout.walRecord(target, name);
  let bytes: Uint8Array;
  try {
    bytes = await runtime.store.getBytes(key);
  } catch (err) {
    if (err instanceof LifeboatError && err.code === 'NOT_FOUND') return null;
    throw err;
  }
  return parseRecord(bytes, key);
}

function parseRecord(bytes: Uint8Array, key: string): WalRecord {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new LifeboatError('VERIFY_FAILED', `WAL record ${key} is not JSON`, {
      hint: 'the store is damaged here: move the record aside and push the file again',
    });
  }
  const parsed = WalRecord.safeParse(json);
  if (!parsed.success) throw new LifeboatError('VERIFY_FAILED', describeZodError(parsed.error, key));
  return parsed.data;
}

/** Passes bytes through, counting and hashing them. */
function hashing(source: AsyncIterable<Uint8Array>) {
  const hash = createHash('sha256');
  const digest = { size: 0, sha256: '' };
  const stream = (async function* () {
    for await (const chunk of source) {
      hash.update(chunk);
      digest.size += chunk.length;
      yield chunk;
    }
    digest.sha256 = hash.digest('hex');
  })();
  return { stream, digest };
}

async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const h = hashing(createReadStream(path, { highWaterMark: 1 << 20 }));
  for await (const _ of h.stream) {
    // read through
  }
  return h.digest;
}

/**
 * What a segment's first page (XLogLongPageHeaderData) says: its timeline, position, the
 * cluster's system identifier and the segment size. A file whose header does not match its
 * name is not that segment, whatever it is called.
 */
async function segmentHeader(path: string, file: WalFileName, size: number) {
  let handle: FileHandle | undefined;
  const buf = Buffer.alloc(40);
  try {
    handle = await open(path, 'r');
    await handle.read(buf, 0, 40, 0);
  } finally {
    await handle?.close();
  }
  return checkSegmentHeader(buf, file, size, path);
}

/** The checks of segmentHeader on a segment's first bytes; `what` names the file in errors. */
export function checkSegmentHeader(buf: Uint8Array, file: WalFileName, size: number, what: string) {
  const b = Buffer.from(buf.buffer, buf.byteOffset, Math.min(buf.byteLength, 40));
  const wrong = (why: string) =>
    new LifeboatError('VERIFY_FAILED', `${what} is not WAL segment ${file.name}: ${why}`, {
      hint: 'archive_command must pass %p, the file PostgreSQL names, unchanged',
    });
  if (b.length < 40) throw wrong(`it holds ${b.length} bytes, less than a page header`);
  const info = b.readUInt16LE(2);
  const timeline = b.readUInt32LE(4);
  const pageAddr = Number(b.readBigUInt64LE(8));
  const systemIdentifier = b.readBigUInt64LE(24).toString();
  const segmentSize = b.readUInt32LE(32);
  // XLP_LONG_HEADER: the first page of every segment carries the long header.
  if ((info & 0x0002) === 0) throw wrong('its first page has no long header');
  if (segmentSize !== size) throw wrong(`it holds ${size} bytes, its header says segments are ${segmentSize}`);
  if (timeline !== file.timeline) throw wrong(`its header is of timeline ${timeline}`);
  if (pageAddr !== segmentNumber(file, segmentSize) * segmentSize) {
    throw wrong(`its header places it at byte ${pageAddr} of the log`);
  }
  return { systemIdentifier, segmentSize };
}

/**
 * archive_command: stores one WAL file. Idempotent: a file archived before with the same
 * sha256 is success, with another sha256 an error naming both (PostgreSQL's rule: never
 * overwrite an archived file with different contents). The object is written first and the
 * record last, so a crash leaves either an archived file or none.
 */
export async function pushWal(
  runtime: WalRuntime,
  target: string,
  path: string,
  options: { now?: () => Date; compressionLevel?: number } = {},
): Promise<WalPushResult> {
  const started = Date.now();
  const t = postgresTarget(runtime, target);
  const source = resolve(path);
  const file = walFileName(basename(source));
  const { store } = runtime;
  const recordKey = layout.walRecord(t.name, file.name);
  let size: number;
  try {
    const info = await stat(source);
    if (!info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
    size = info.size;
  } catch (err) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `cannot read WAL file ${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { hint: 'archive_command runs in the data directory: pass %p as PostgreSQL gives it' },
    );
  }
  const header =
    file.kind === 'segment' || file.kind === 'partial' ? await segmentHeader(source, file, size) : undefined;

  let existing: WalRecord | null;
  try {
    existing = await readWalRecord(runtime, t.name, file.name);
  } catch (err) {
    throw inStep(`push ${file.name}: read its record`, err);
  }
  if (existing) {
    const local = await hashFile(source);
    if (local.sha256 !== existing.sha256 || local.size !== existing.size) {
      throw new LifeboatError(
        'CONFLICT',
        `WAL file ${file.name} is already archived with different contents: archived sha256 ${existing.sha256} (${existing.size} bytes), this file sha256 ${local.sha256} (${local.size} bytes)`,
        {
          hint: `an archived file is never overwritten. Is another cluster archiving to target ${t.name} (a new initdb, a restored copy with archive_command on)? Give it its own target, or move ${layout.walPrefix(t.name)} aside`,
          retryable: false,
        },
      );
    }
    const object = await store.head(existing.object);
    if (object && object.size === existing.storedSize) {
      return {
        target: t.name,
        name: file.name,
        kind: file.kind,
        objectKey: existing.object,
        recordKey,
        size: existing.size,
        sha256: existing.sha256,
        storedSize: existing.storedSize,
        alreadyArchived: true,
        durationMs: Date.now() - started,
      };
    }
    // The record outlived its object (damage, or a hand-made deletion): store the file again.
  }

  const encrypted = runtime.recipients.length > 0;
  const objectKey = layout.walObject(t.name, file.name, encrypted);
  const raw = hashing(createReadStream(source, { highWaterMark: 1 << 20 }));
  // backup.compressionLevel, 6 by default: a segment closed by archive_timeout is mostly
  // zeros, which level 6 stores in 17 KiB and level 1 in 74 KiB, for 25 ms more.
  let body: AsyncIterable<Uint8Array> = parallelGzip(raw.stream, {
    level: options.compressionLevel ?? runtime.loaded.config.backup.compressionLevel,
  });
  if (encrypted) body = encryptStream(body, runtime.recipients);
  const stored = hashing(body);
  try {
    await store.put(objectKey, stored.stream);
  } catch (err) {
    throw inStep(`push ${file.name}: write ${objectKey}`, err);
  }
  if (raw.digest.size !== size) {
    throw new LifeboatError(
      'TARGET_ERROR',
      `${source} changed size while it was archived (${size} → ${raw.digest.size})`,
      {
        hint: 'PostgreSQL never changes a file it is archiving: is something else writing to pg_wal?',
      },
    );
  }
  const record: WalRecord = {
    format: WAL_RECORD_FORMAT,
    name: file.name,
    kind: file.kind,
    timeline: file.timeline,
    size: raw.digest.size,
    sha256: raw.digest.sha256,
    object: objectKey,
    storedSize: stored.digest.size,
    storedSha256: stored.digest.sha256,
    compression: 'gzip',
    encryption: encrypted ? { type: 'age', recipients: [...runtime.recipients] } : null,
    ...(header ?? {}),
    pushedAt: (options.now?.() ?? new Date()).toISOString(),
    host: hostname(),
  };
  try {
    await store.put(recordKey, Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
  } catch (err) {
    throw inStep(`push ${file.name}: write its record ${recordKey}`, err);
  }
  return {
    target: t.name,
    name: file.name,
    kind: file.kind,
    objectKey,
    recordKey,
    size: record.size,
    sha256: record.sha256,
    storedSize: record.storedSize,
    alreadyArchived: false,
    durationMs: Date.now() - started,
  };
}

/** A stored gzip object (maybe age-encrypted) and what it must read back as. */
export interface StoredObjectRef {
  key: string;
  /** The stored object. */
  storedSize: number;
  storedSha256: string;
  /** Its contents, decrypted and decompressed. */
  size: number;
  sha256: string;
  encrypted: boolean;
}

/**
 * The contents of a stored object: read, decrypted, decompressed, with the stored and the
 * original size and sha256 checked once the stream has ended. A mismatch throws
 * VERIFY_FAILED at the end of the stream, so a caller writes into a staging place.
 */
export async function* readStoredObject(
  runtime: WalRuntime,
  ref: StoredObjectRef,
  what: string,
): AsyncGenerator<Uint8Array> {
  const stored = hashing(await runtime.store.get(ref.key));
  let plain: AsyncIterable<Uint8Array> = stored.stream;
  if (ref.encrypted) plain = decryptStream(plain, await runtime.identities());
  const raw = hashing(gunzip(plain, what));
  yield* raw.stream;
  if (stored.digest.size !== ref.storedSize || stored.digest.sha256 !== ref.storedSha256) {
    throw new LifeboatError(
      'VERIFY_FAILED',
      `${what}: stored object ${ref.key} has sha256 ${stored.digest.sha256} (${stored.digest.size} bytes), expected ${ref.storedSha256} (${ref.storedSize} bytes)`,
      { hint: 'the stored copy is damaged' },
    );
  }
  if (raw.digest.size !== ref.size || raw.digest.sha256 !== ref.sha256) {
    throw new LifeboatError(
      'VERIFY_FAILED',
      `${what}: decompressed to sha256 ${raw.digest.sha256} (${raw.digest.size} bytes), expected ${ref.sha256} (${ref.size} bytes)`,
      { hint: 'the stored copy is damaged' },
    );
  }
}

/** The bytes of an archived WAL file as PostgreSQL wrote them, checked against its record. */
export function readArchivedWal(runtime: WalRuntime, record: WalRecord): AsyncGenerator<Uint8Array> {
  return readStoredObject(
    runtime,
    {
      key: record.object,
      storedSize: record.storedSize,
      storedSha256: record.storedSha256,
      size: record.size,
      sha256: record.sha256,
      encrypted: record.encryption !== null,
    },
    `WAL file ${record.name}`,
  );
}

/** The tar stream of a base backup, checked against its manifest. */
export function readBaseBackup(runtime: WalRuntime, manifest: BaseBackupManifest): AsyncGenerator<Uint8Array> {
  const a = manifest.archive;
  return readStoredObject(
    runtime,
    {
      key: a.key,
      storedSize: a.size,
      storedSha256: a.sha256,
      size: a.tarSize,
      sha256: a.tarSha256,
      encrypted: a.encryption !== null,
    },
    `base backup ${manifest.id}`,
  );
}

/** gunzip over async iterables; a damaged stream is VERIFY_FAILED naming what it was. */
async function* gunzip(source: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<Uint8Array> {
  const z = createGunzip({ chunkSize: 1 << 20 });
  const input = Readable.from(source, { objectMode: false });
  input.on('error', (err) => z.destroy(err));
  input.pipe(z);
  try {
    yield* z as AsyncIterable<Uint8Array>;
  } catch (err) {
    if (err instanceof LifeboatError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code?.startsWith('Z_') || /gzip|header check|unexpected end/i.test(e.message)) {
      throw new LifeboatError('VERIFY_FAILED', `${what} is damaged: ${e.message}`, {
        hint: 'the stored copy does not decompress',
      });
    }
    throw err;
  } finally {
    input.destroy();
  }
}

/**
 * restore_command: writes an archived file to `dest`, checked, through `<dest>.lifeboat-tmp`
 * and a rename, so PostgreSQL never sees half a file. A file that is not archived is
 * NOT_FOUND: PostgreSQL asks for files that do not exist (the next timeline's history, the
 * segment after the last) and takes a failure as "there is none". A segment not archived
 * but streamed by the shipper comes from the stream: its streamed bytes, then zeros, where
 * the replay finds the end of the log.
 */
export async function fetchWal(
  runtime: WalRuntime,
  target: string,
  name: string,
  destPath: string,
  options: { archivedBy?: Date } = {},
): Promise<WalFetchResult> {
  const started = Date.now();
  const file = walFileName(name);
  const t = runtime.target(target);
  let record = await readWalRecord(runtime, t.name, file.name);
  // What was archived after `archivedBy` is taken as never archived: what a server that died then had left.
  const late = record && options.archivedBy && Date.parse(record.pushedAt) > options.archivedBy.getTime();
  if (late) record = null;
  // A segment the archive does not hold (yet) may have been streamed: the one being written when the server died.
  const streamed =
    !record && file.kind === 'segment'
      ? await readStreamedSegment(
          runtime,
          t.name,
          file.name,
          options.archivedBy ? { shippedBy: options.archivedBy } : {},
        )
      : null;
  if (streamed) checkSegmentHeader(streamed.bytes, file, streamed.segmentSize, `streamed WAL of ${file.name}`);
  if (!record && !streamed) {
    throw new LifeboatError(
      'NOT_FOUND',
      late
        ? `WAL file ${file.name} of target ${t.name} was archived after ${options.archivedBy?.toISOString()}, and was not streamed by then`
        : `WAL file ${file.name} is not archived for target ${t.name}`,
      { retryable: false },
    );
  }
  const dest = resolve(destPath);
  const staging = join(dirname(dest), `.${basename(dest)}.lifeboat-tmp`);
  await rm(staging, { force: true });
  let handle: FileHandle | undefined;
  const content: AsyncIterable<Uint8Array> = record
    ? readArchivedWal(runtime, record)
    : (async function* () {
        yield (streamed as StreamedSegment).bytes;
      })();
  try {
    handle = await open(staging, 'wx', 0o600);
    for await (const chunk of content) {
      let offset = 0;
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
        offset += bytesWritten;
      }
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(staging, dest);
  } catch (err) {
    await handle?.close().catch(() => {});
    await rm(staging, { force: true }).catch(() => {});
    if (err instanceof LifeboatError) throw err;
    throw inStep(`fetch ${file.name} into ${dest}`, err);
  }
  if (record) {
    return {
      target: t.name,
      name: file.name,
      source: 'archive',
      size: record.size,
      sha256: record.sha256,
      durationMs: Date.now() - started,
    };
  }
  const s = streamed as StreamedSegment;
  return {
    target: t.name,
    name: file.name,
    source: 'stream',
    size: s.bytes.length,
    sha256: createHash('sha256').update(s.bytes).digest('hex'),
    streamedBytes: s.covered,
    durationMs: Date.now() - started,
  };
}

/** A whole archived file in memory: for the small ones (timeline histories). */
export async function readArchivedWalBytes(runtime: WalRuntime, record: WalRecord): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of readArchivedWal(runtime, record)) chunks.push(c);
  return Buffer.concat(chunks);
}

export interface BaseBackupListing {
  manifests: BaseBackupManifest[];
  /** Manifests that do not read or parse: damage to report, never fatal to a listing. */
  problems: string[];
}

/** The committed base backups of a target (those with a manifest), oldest first. */
export async function listBaseBackups(runtime: WalRuntime, target: string): Promise<BaseBackupListing> {
  const manifests: BaseBackupManifest[] = [];
  const problems: string[] = [];
  const sealKey = runtime.manifestKey();
  for await (const o of runtime.store.list(layout.baseBackupsPrefix(target))) {
    if (!o.key.endsWith('/manifest.json')) continue;
    try {
      const json = JSON.parse(Buffer.from(await runtime.store.getBytes(o.key)).toString('utf8'));
      const parsed = BaseBackupManifest.safeParse(json);
      // Sealed as a backup manifest is (docs/FORMAT.md §3): one whose seal does not hold is not believed.
      const refused = parsed.success ? manifestSealProblem(json, sha256hex, sealKey) : null;
      if (!parsed.success) problems.push(describeZodError(parsed.error, o.key));
      else if (refused) problems.push(`${o.key} refused: ${refused}`);
      else manifests.push(parsed.data);
    } catch (err) {
      problems.push(`${o.key}: ${(err as Error).message}`);
    }
  }
  manifests.sort((a, b) => a.completedAt.localeCompare(b.completedAt));
  return { manifests, problems };
}

export interface WalArchive {
  index: WalArchiveIndex;
  /** Every archived file by name (a file is archived when its record exists). */
  names: ReadonlySet<string>;
  /** Stored objects by key, with their sizes: to check records against. */
  objects: ReadonlyMap<string, number>;
  /** Keys under the WAL prefix that are neither a record nor an object. */
  strays: string[];
  /** Where the segment size came from. */
  segmentSizeFrom: 'records' | 'base backup' | 'default';
  /** Timeline history files that could not be read. */
  problems: string[];
  /** The record of an archived file (read once, then kept). */
  record(name: string): Promise<WalRecord>;
}

/**
 * Lists a target's archived WAL: which segments of which timelines, and the history of each
 * timeline switch. The segment size comes from a segment record, else from a base backup,
 * else PostgreSQL's default.
 */
export async function readWalArchive(
  runtime: WalRuntime,
  target: string,
  baseBackups: readonly BaseBackupManifest[] = [],
): Promise<WalArchive> {
  const prefix = layout.walPrefix(target);
  const names = new Set<string>();
  const objects = new Map<string, number>();
  const strays: string[] = [];
  for await (const o of runtime.store.list(prefix)) {
    const rest = o.key.slice(prefix.length);
    const m = /^(.+)\.json$/.exec(rest);
    if (m && parseWalFileName(m[1] as string)) names.add(m[1] as string);
    else if (/\.gz(\.age)?$/.test(rest) && parseWalFileName(rest.replace(/\.gz(\.age)?$/, '')))
      objects.set(o.key, o.size);
    else strays.push(o.key);
  }
  const cache = new Map<string, Promise<WalRecord>>();
  const record = (name: string) => {
    let r = cache.get(name);
    if (!r) {
      r = readWalRecord(runtime, target, name).then((found) => {
        if (!found) throw new LifeboatError('NOT_FOUND', `WAL record of ${name} vanished while it was read`);
        return found;
      });
      cache.set(name, r);
    }
    return r;
  };
  const parsed = [...names].map((n) => parseWalFileName(n) as WalFileName);
  const sampleSegment = parsed.filter((p) => p.kind === 'segment').at(-1);
  let segmentSize = DEFAULT_WAL_SEGMENT_SIZE;
  let segmentSizeFrom: WalArchive['segmentSizeFrom'] = 'default';
  const fromRecord = sampleSegment ? (await record(sampleSegment.name).catch(() => null))?.segmentSize : undefined;
  if (fromRecord) {
    segmentSize = fromRecord;
    segmentSizeFrom = 'records';
  } else if (baseBackups.length) {
    segmentSize = (baseBackups.at(-1) as BaseBackupManifest).postgres.walSegmentSize;
    segmentSizeFrom = 'base backup';
  }
  const segments = new Map<number, Set<number>>();
  const histories = new Map<number, TimelineSwitch[]>();
  const problems: string[] = [];
  for (const p of parsed) {
    if (p.kind === 'segment') {
      let segno: number;
      try {
        segno = segmentNumber(p, segmentSize);
      } catch (err) {
        problems.push((err as Error).message);
        continue;
      }
      const set = segments.get(p.timeline) ?? new Set<number>();
      segments.set(p.timeline, set);
      set.add(segno);
    } else if (p.kind === 'history') {
      try {
        const text = (await readArchivedWalBytes(runtime, await record(p.name))).toString('utf8');
        histories.set(p.timeline, parseTimelineHistory(text));
      } catch (err) {
        problems.push(`timeline history ${p.name}: ${(err as Error).message}`);
      }
    }
  }
  return { index: { segmentSize, segments, histories }, names, objects, strays, segmentSizeFrom, problems, record };
}

/** The first and last segment a base backup's replay needs, as segment numbers. */
export function baseBackupSegments(manifest: BaseBackupManifest, segmentSize: number) {
  return {
    start: segmentOf(parseLsn(manifest.wal.startLsn), segmentSize),
    end: segmentBefore(parseLsn(manifest.wal.endLsn), segmentSize),
  };
}

/** Runs `work` over items, at most `limit` at once, in order of the results. */
async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i] as T);
    }
  });
  await Promise.all(runners);
  return out;
}

/**
 * Checks a target's WAL archive: every record has its object (quick) and, with `full`, the
 * object decrypts and decompresses to the recorded checksum; gaps in each timeline; and for
 * each base backup, the newest point a replay from it reaches.
 */
export async function verifyWal(
  runtime: WalRuntime,
  target: string,
  options: { full?: boolean; now?: () => Date } = {},
): Promise<WalVerifyReport> {
  const t = runtime.target(target);
  const bases = await listBaseBackups(runtime, t.name);
  const archive = await readWalArchive(runtime, t.name, bases.manifests);
  const { index } = archive;
  const problems = [...bases.problems, ...archive.problems];
  const notes: string[] = [];

  const names = [...archive.names].sort();
  const records = new Map<string, WalRecord>();
  const referenced = new Set<string>();
  await mapLimit(names, 16, async (name) => {
    let record: WalRecord;
    try {
      record = await archive.record(name);
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message}`);
      return;
    }
    if (record.name !== name) {
      problems.push(`${layout.walRecord(t.name, name)} describes ${record.name}`);
      return;
    }
    records.set(name, record);
    referenced.add(record.object);
    const size = archive.objects.get(record.object);
    if (size === undefined) {
      problems.push(`${name}: its object ${record.object} is missing`);
      return;
    }
    if (size !== record.storedSize) {
      problems.push(`${name}: its object ${record.object} holds ${size} bytes, the record says ${record.storedSize}`);
      return;
    }
    if (options.full) {
      try {
        for await (const _ of readArchivedWal(runtime, record)) {
          // read through: the checksums are checked at the end
        }
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
  });

  const systems = new Set([...records.values()].map((r) => r.systemIdentifier).filter((s) => s !== undefined));
  if (systems.size > 1) {
    problems.push(
      `the archive holds WAL of ${systems.size} database systems (${[...systems].join(', ')}): two clusters archive to target ${t.name}`,
    );
  }
  const sizes = new Set([...records.values()].map((r) => r.segmentSize).filter((s) => s !== undefined));
  if (sizes.size > 1) problems.push(`segments of different sizes in one archive: ${[...sizes].join(', ')} bytes`);
  const unrecorded = [...archive.objects.keys()].filter((k) => !referenced.has(k));
  if (unrecorded.length) {
    notes.push(
      `${unrecorded.length} object(s) without a record (a push that did not finish; the next push of that file replaces it): ${unrecorded.slice(0, 5).join(', ')}${unrecorded.length > 5 ? ', …' : ''}`,
    );
  }
  if (archive.strays.length) notes.push(`keys that are not WAL files: ${archive.strays.slice(0, 5).join(', ')}`);
  if (bases.manifests.length === 0) notes.push('no base backup yet: nothing can be restored from this WAL alone');

  const pushedAt = (name: string | undefined) => (name ? (records.get(name)?.pushedAt ?? null) : null);
  const timelines = [...index.segments.entries()]
    .sort(([a], [b]) => a - b)
    .map(([timeline, set]) => {
      const sorted = [...set].sort((a, b) => a - b);
      const last = walSegmentName(timeline, sorted.at(-1) as number, index.segmentSize);
      return {
        timeline,
        first: walSegmentName(timeline, sorted[0] as number, index.segmentSize),
        last,
        segments: sorted.length,
        lastPushedAt: pushedAt(last),
      };
    });
  const gaps = timelineGaps(index);

  const baseBackups = bases.manifests.map((m) => {
    const { start, end } = baseBackupSegments(m, index.segmentSize);
    const chain = followChain(index, m.wal.timeline, start);
    const reached = chain.last?.segno ?? -1;
    return {
      id: m.id,
      timeline: m.wal.timeline,
      startSegment: m.wal.startSegment,
      endSegment: m.wal.endSegment,
      completedAt: m.completedAt,
      restorable: reached >= end,
      latestSegment: chain.last?.name ?? null,
      latestPushedAt: pushedAt(chain.last?.name),
      blockedAt: chain.unreachable > 0 ? chain.firstMissing.name : null,
    };
  });
  for (const b of baseBackups) {
    if (!b.restorable)
      problems.push(`base backup ${b.id} cannot be restored: WAL up to ${b.endSegment} is not all archived`);
  }
  problems.sort();
  return {
    format: WAL_VERIFY_FORMAT,
    target: t.name,
    checkedAt: (options.now?.() ?? new Date()).toISOString(),
    level: options.full ? 'full' : 'quick',
    segmentSize: index.segmentSize,
    timelines,
    gaps,
    histories: names.filter((n) => n.endsWith('.history')),
    baseBackups,
    problems,
    notes,
    ok: problems.length === 0 && gaps.length === 0 && baseBackups.every((b) => b.blockedAt === null),
  };
}
