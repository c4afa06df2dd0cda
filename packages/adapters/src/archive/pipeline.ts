// The archive pipeline: entries → tar → gzip → (age) → object store, in one streaming pass
// that computes every entry's sha256 and the archive's size and sha256 as the bytes go by;
// and the reverse for reading. No temporary copy of the archive is ever made.
import { createHash } from 'node:crypto';
import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { type ByteStream, LifeboatError, type ObjectStore } from '@lifeboat/domain';
import { decryptStream, encryptStream } from './encryption.js';
import { parallelGzip } from './gzip.js';
import {
  readTar,
  type TarLimits,
  type TarReadEntry,
  type TarSourceEntry,
  type TarWrittenEntry,
  writeTar,
} from './tar.js';

export interface Digest {
  size: number;
  sha256: string;
}

/** Passes a stream through, counting and hashing it; `digest` is final once it has ended. */
export function measure(
  source: AsyncIterable<Uint8Array>,
  onBytes?: (total: number) => void,
  options = { hash: true },
) {
  const hash = options.hash ? createHash('sha256') : undefined;
  const digest: Digest = { size: 0, sha256: '' };
  const stream = (async function* () {
    for await (const chunk of source) {
      hash?.update(chunk);
      digest.size += chunk.length;
      onBytes?.(digest.size);
      yield chunk;
    }
    digest.sha256 = hash?.digest('hex') ?? '';
  })();
  return { stream, digest };
}

/** Runs a Node transform over an async iterable, propagating errors from either side. */
function through(source: AsyncIterable<Uint8Array>, transform: NodeJS.ReadWriteStream): AsyncIterable<Uint8Array> {
  // A small read-ahead keeps a damaged region close to the entry being read when it shows.
  return pipeline(Readable.from(source, { objectMode: false, highWaterMark: 64 << 10 }), transform, () => {
    // errors surface through the returned stream's iteration
  }) as unknown as AsyncIterable<Uint8Array>;
}

export interface ArchiveProgress {
  /** Bytes of tar stream produced (the backup's content). */
  sourceBytes: number;
  /** Bytes written to the store. */
  archiveBytes: number;
}

export interface WriteArchiveOptions {
  entries: Iterable<TarSourceEntry> | AsyncIterable<TarSourceEntry>;
  /** The last entry, built once every other entry's checksum is known (the manifest). */
  trailer?: (
    written: readonly TarWrittenEntry[],
  ) => { path: string; body: Buffer } | Promise<{ path: string; body: Buffer }>;
  compressionLevel?: number;
  /** age recipients; none means an unencrypted archive. */
  recipients?: readonly string[];
  onProgress?: (p: ArchiveProgress) => void;
  signal?: AbortSignal;
}

export interface WrittenArchive extends Digest {
  entries: TarWrittenEntry[];
  sourceBytes: number;
}

/** Streams the entries into one archive object at `key`. */
export async function writeArchive(
  store: ObjectStore,
  key: string,
  options: WriteArchiveOptions,
): Promise<WrittenArchive> {
  const written: TarWrittenEntry[] = [];
  const progress: ArchiveProgress = { sourceBytes: 0, archiveBytes: 0 };
  const trailer = options.trailer;
  const tar = measure(
    writeTar(options.entries, (e) => written.push(e), trailer ? () => trailer(written) : undefined),
    (n) => {
      progress.sourceBytes = n;
    },
    // Entries are hashed one by one in writeTar; the tar stream itself is only counted.
    { hash: false },
  );
  let stream: AsyncIterable<Uint8Array> = parallelGzip(tar.stream, { level: options.compressionLevel ?? 6 });
  if (options.recipients?.length) stream = encryptStream(stream, options.recipients);
  const out = measure(stream, (n) => {
    progress.archiveBytes = n;
    options.onProgress?.(progress);
  });
  await store.put(key, out.stream, options.signal ? { signal: options.signal } : {});
  return { ...out.digest, entries: written, sourceBytes: tar.digest.size };
}

export interface OpenArchiveOptions {
  encrypted: boolean;
  identities?: readonly string[];
  /** Called with the running count of stored bytes read. */
  onBytes?: (total: number) => void;
  /** Sizes the entries may have (the manifest's): larger ones are refused before they are read. */
  limits?: TarLimits;
}

export interface OpenedArchive {
  entries: AsyncGenerator<TarReadEntry>;
  /** Size and sha256 of the stored object; complete once `entries` is exhausted. */
  digest: Digest;
}

async function* damagedAsVerifyFailure(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* source;
  } catch (err) {
    if (err instanceof LifeboatError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code?.startsWith('Z_') || /gzip|header check|unexpected end/i.test(e.message)) {
      throw new LifeboatError('VERIFY_FAILED', `archive is damaged: ${e.message}`, {
        hint: 'the stored archive does not decompress; use another backup',
      });
    }
    throw err;
  }
}

/** Reads the entries of a stored archive, decrypting when it is encrypted. */
export function readArchiveStream(source: ByteStream, options: OpenArchiveOptions): OpenedArchive {
  const raw = measure(source, options.onBytes);
  let plain: AsyncIterable<Uint8Array> = raw.stream;
  if (options.encrypted) plain = decryptStream(plain, options.identities ?? []);
  // Output in 256 KiB pieces, not the default 16 KiB: each piece is a turn through the thread
  // pool, and a gigabyte in small turns spent most of a restore waiting on them.
  const tarStream = damagedAsVerifyFailure(through(plain, createGunzip({ chunkSize: 256 << 10 })));
  return { entries: readTar(tarStream, options.limits), digest: raw.digest };
}

/** Opens the archive object at `key` for reading. */
export async function openArchive(
  store: ObjectStore,
  key: string,
  options: OpenArchiveOptions,
): Promise<OpenedArchive> {
  return readArchiveStream(await store.get(key), options);
}
