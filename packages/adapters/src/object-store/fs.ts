// An ObjectStore over a local directory: writes land in `<root>/.incomplete/` and are
// renamed into place once complete and fsynced, so a reader never sees half an object.
//
// Layout of an unfinished write (a crash leaves these behind; cleanupIncomplete removes them):
//   <root>/.incomplete/<id>.json   {"key": "<key>", "startedAt": "<iso>", "pid": <n>}, written first
//   <root>/.incomplete/<id>.part   the bytes so far
import { randomUUID } from 'node:crypto';
import type { Dirent } from 'node:fs';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ByteStream, ObjectInfo, ObjectStore, PutOptions } from '@lifeboat/domain';
// A subpath, not the whole domain: `wal push` runs once per WAL segment and opens this store.
import { LifeboatError } from '@lifeboat/domain/errors';

/** The directory, under the store's root, that holds writes in progress. */
export const INCOMPLETE_DIR = '.incomplete';
/** The suffix of the S3 store's in-progress markers; reserved so no backend can hold such a key. */
export const UPLOAD_MARKER_SUFFIX = '.upload-in-progress.json';

const KEY_HINT = 'keys are relative paths with forward slashes, like "demo/backups/<id>/manifest.json"';

// Control characters have no place in a key and would garble messages and file names.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

function invalidKey(kind: 'key' | 'prefix', value: string, reason: string): LifeboatError {
  return new LifeboatError('INVALID_REQUEST', `invalid object ${kind} ${JSON.stringify(value)}: ${reason}`, {
    hint: KEY_HINT,
  });
}

/** Checks that a key is a plain relative path that stays inside the store; returns it unchanged. */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw invalidKey('key', String(key), 'it is empty');
  if (Buffer.byteLength(key) > 1024) throw invalidKey('key', key, 'it is longer than 1024 bytes');
  if (key.includes('\\')) throw invalidKey('key', key, 'it contains a backslash');
  if (CONTROL_CHARS.test(key)) throw invalidKey('key', key, 'it contains a control character');
  if (key.startsWith('/') || /^[A-Za-z]:/.test(key)) throw invalidKey('key', key, 'it is an absolute path');
  const segments = key.split('/');
  for (const segment of segments) {
    if (segment === '') throw invalidKey('key', key, 'it has an empty path segment');
    if (segment === '.' || segment === '..') throw invalidKey('key', key, `it has a "${segment}" path segment`);
  }
  if (segments[0] === INCOMPLETE_DIR)
    throw invalidKey('key', key, `"${INCOMPLETE_DIR}/" is reserved for writes in progress`);
  if (key.endsWith(UPLOAD_MARKER_SUFFIX)) throw invalidKey('key', key, `"${UPLOAD_MARKER_SUFFIX}" is reserved`);
  return key;
}

/**
 * Checks a listing prefix: '' or any start of a valid key ('demo/', 'demo/backups/2025').
 * Its complete segments follow the key rules; the last, partial one may be anything printable.
 */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw invalidKey('prefix', String(prefix), 'it is not a string');
  if (prefix === '') return prefix;
  if (prefix.includes('\\')) throw invalidKey('prefix', prefix, 'it contains a backslash');
  if (CONTROL_CHARS.test(prefix)) throw invalidKey('prefix', prefix, 'it contains a control character');
  if (prefix.startsWith('/') || /^[A-Za-z]:/.test(prefix)) throw invalidKey('prefix', prefix, 'it is an absolute path');
  const complete = prefix.split('/').slice(0, -1);
  for (const segment of complete) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw invalidKey('prefix', prefix, `it has a "${segment}" path segment`);
    }
  }
  return prefix;
}

/** Orders keys as S3 does (by UTF-8 bytes), so every backend lists in the same order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Yields a body's chunks, stopping as soon as signal aborts, even while the source is
 * waiting; stopping early also stops the source (a Node Readable is destroyed).
 */
export async function* readChunks(body: ByteStream | Uint8Array, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  signal?.throwIfAborted();
  if (body instanceof Uint8Array) {
    yield body;
    return;
  }
  const iterator = body[Symbol.asyncIterator]();
  let finished = false;
  let waiting = false;
  try {
    while (true) {
      waiting = true;
      const next = signal ? await nextOrAbort(iterator, signal) : await iterator.next();
      waiting = false;
      if (next.done) {
        finished = true;
        return;
      }
      // Readable.from(['text']) yields strings; accept them rather than fail on a type technicality.
      const chunk: unknown = next.value;
      yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
    }
  } finally {
    if (!finished) {
      // A source still busy in next() would make an awaited return() wait for it; don't.
      const closing = iterator.return?.();
      if (waiting) closing?.catch(() => {});
      else await closing?.catch(() => {});
    }
  }
}

/**
 * The iterator's next result, or the abort reason once signal aborts. A listener per call,
 * removed when the call settles: racing every chunk against one long-lived promise would
 * keep every chunk reachable from that promise until the end of the stream.
 */
function nextOrAbort<T>(iterator: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T>> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    iterator.next().then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

interface SystemError extends Error {
  code?: string;
  syscall?: string;
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as SystemError).code : undefined;
}

function isMissing(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Makes a directory's entries (a rename into it) durable; platforms that cannot fsync a directory skip it. */
async function fsyncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = errorCode(err);
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw err;
  } finally {
    await handle?.close().catch(() => {});
  }
}

interface IncompleteRecord {
  key: string;
  startedAt: string;
  pid: number;
}

export class FsObjectStore implements ObjectStore {
  /** Absolute path of the store's directory. */
  readonly root: string;
  readonly location: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.location = pathToFileURL(this.root).href;
  }

  async check(): Promise<void> {
    // Writing and removing a probe is the only honest test of "writable" (access() says yes to root).
    const probe = join(this.root, INCOMPLETE_DIR, `check-${randomUUID()}.probe`);
    try {
      await mkdir(dirname(probe), { recursive: true });
      await writeFile(probe, '');
      await rm(probe, { force: true });
    } catch (err) {
      throw new LifeboatError('STORE_UNREACHABLE', `store directory ${this.root} is not usable: ${describe(err)}`, {
        hint: 'create the directory or fix its permissions, or point store.path somewhere writable',
        cause: err,
      });
    }
  }

  async put(key: string, body: ByteStream | Uint8Array, options: PutOptions = {}): Promise<{ size: number }> {
    validateKey(key);
    const { signal, onProgress } = options;
    signal?.throwIfAborted();
    const target = this.pathOf(key);
    const id = randomUUID();
    const tempDir = join(this.root, INCOMPLETE_DIR);
    const recordPath = join(tempDir, `${id}.json`);
    const partPath = join(tempDir, `${id}.part`);
    let handle: FileHandle | undefined;
    try {
      await mkdir(tempDir, { recursive: true });
      // The record goes first, so a crash at any later point leaves a key for cleanupIncomplete to match.
      const record: IncompleteRecord = { key, startedAt: new Date().toISOString(), pid: process.pid };
      await writeFile(recordPath, JSON.stringify(record));
      handle = await open(partPath, 'wx');
      let size = 0;
      for await (const chunk of readChunks(body, signal)) {
        let offset = 0;
        while (offset < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
          offset += bytesWritten;
        }
        size += chunk.byteLength;
        onProgress?.(size);
      }
      await handle.sync();
      await handle.close();
      handle = undefined;
      signal?.throwIfAborted();
      await this.moveIntoPlace(partPath, target);
      await rm(recordPath, { force: true });
      return { size };
    } catch (err) {
      await handle?.close().catch(() => {});
      await rm(partPath, { force: true }).catch(() => {});
      await rm(recordPath, { force: true }).catch(() => {});
      throw this.storeError(err, `writing ${key}`, signal);
    }
  }

  async get(key: string): Promise<ByteStream> {
    validateKey(key);
    let handle: FileHandle | undefined;
    try {
      handle = await open(this.pathOf(key), 'r');
      // Opening a directory succeeds on Linux; it is still not an object.
      if (!(await handle.stat()).isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
      return handle.createReadStream();
    } catch (err) {
      await handle?.close().catch(() => {});
      if (isMissing(err) || errorCode(err) === 'EISDIR') throw this.notFound(key);
      throw this.storeError(err, `reading ${key}`);
    }
  }

  async getBytes(key: string): Promise<Uint8Array> {
    validateKey(key);
    try {
      return await readFile(this.pathOf(key));
    } catch (err) {
      if (isMissing(err) || errorCode(err) === 'EISDIR') throw this.notFound(key);
      throw this.storeError(err, `reading ${key}`);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key);
    try {
      const info = await stat(this.pathOf(key));
      return info.isFile() ? { key, size: info.size, lastModified: info.mtime } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw this.storeError(err, `reading the size of ${key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    // Start at the deepest directory the prefix names; everything else cannot match.
    const start = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    yield* this.walk(start, prefix);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (isMissing(err)) return;
      // A directory at the key's path (a key that is only a prefix of others) is not an object either.
      const info = await stat(path).catch(() => undefined);
      if (info?.isDirectory()) return;
      throw this.storeError(err, `deleting ${key}`);
    }
    await this.pruneEmptyDirs(dirname(path));
  }

  async cleanupIncomplete(prefix: string, olderThanMs: number): Promise<string[]> {
    validatePrefix(prefix);
    const tempDir = join(this.root, INCOMPLETE_DIR);
    let names: string[];
    try {
      names = await readdir(tempDir);
    } catch (err) {
      if (isMissing(err)) return [];
      throw this.storeError(err, 'listing incomplete writes');
    }
    const now = Date.now();
    const removed: string[] = [];
    // Group by write id: a write is its record (.json) and its bytes (.part); either may be missing.
    const ids = new Map<string, string[]>();
    for (const name of names) {
      const id = name.replace(/\.(json|part)$/, '');
      ids.set(id, [...(ids.get(id) ?? []), name]);
    }
    for (const [id, files] of ids) {
      const key = await this.readRecordKey(join(tempDir, `${id}.json`));
      // Without a record the intended key is unknown: only a cleanup of the whole store may take it.
      if (key === undefined ? prefix !== '' : !key.startsWith(prefix)) continue;
      let newest = 0;
      for (const name of files) {
        const info = await stat(join(tempDir, name)).catch(() => undefined);
        if (info) newest = Math.max(newest, info.mtimeMs);
      }
      // The newest write time, not the start: a slow upload still writing is not abandoned.
      if (newest === 0 || now - newest < olderThanMs) continue;
      for (const name of files) await rm(join(tempDir, name), { force: true });
      removed.push(key ?? `${INCOMPLETE_DIR}/${files[0]}`);
    }
    return removed.sort(compareKeys);
  }

  private pathOf(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  private notFound(key: string): LifeboatError {
    return new LifeboatError('NOT_FOUND', `object ${key} not found in ${this.location}`, {
      hint: 'is the key right? list the store to see what it holds',
    });
  }

  private storeError(err: unknown, step: string, signal?: AbortSignal): unknown {
    if (err instanceof LifeboatError) return err;
    if (signal?.aborted && err === signal.reason) return err;
    // Only file-system errors are the store's; an error from the caller's body stream passes through.
    if (!(err instanceof Error) || (err as SystemError).syscall === undefined) return err;
    const code = errorCode(err);
    const hint =
      code === 'ENOSPC'
        ? `the disk holding ${this.root} is full`
        : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
          ? `check that this process may write to ${this.root}`
          : 'check the store directory and its disk';
    return new LifeboatError('STORE_ERROR', `${step} in ${this.location} failed: ${describe(err)}`, {
      hint,
      cause: err,
    });
  }

  private async moveIntoPlace(partPath: string, target: string): Promise<void> {
    // A concurrent delete may prune the target's directory between mkdir and rename; try again then.
    for (let attempt = 1; ; attempt++) {
      await mkdir(dirname(target), { recursive: true });
      try {
        await rename(partPath, target);
        break;
      } catch (err) {
        if (errorCode(err) !== 'ENOENT' || attempt >= 3) throw err;
      }
    }
    await fsyncDir(dirname(target));
  }

  private async pruneEmptyDirs(dir: string): Promise<void> {
    // Keeps the tree tidy after deletes; stops at the first directory that still holds something.
    while (dir.startsWith(this.root + sep)) {
      try {
        await rmdir(dir);
      } catch {
        return;
      }
      dir = dirname(dir);
    }
  }

  private async readRecordKey(path: string): Promise<string | undefined> {
    try {
      const record = JSON.parse(await readFile(path, 'utf8')) as Partial<IncompleteRecord>;
      return typeof record.key === 'string' ? record.key : undefined;
    } catch {
      return undefined;
    }
  }

  private async *walk(dirKey: string, prefix: string): AsyncGenerator<ObjectInfo> {
    let entries: Dirent[];
    try {
      entries = await readdir(join(this.root, ...dirKey.split('/').filter(Boolean)), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw this.storeError(err, `listing ${dirKey || '/'}`);
    }
    // A directory sorts as "<name>/", which is where its keys fall among its siblings' keys.
    const named = entries
      .filter((entry) => !(dirKey === '' && entry.name === INCOMPLETE_DIR))
      .filter((entry) => entry.isFile() || entry.isDirectory())
      .map((entry) => ({ entry, key: `${dirKey}${entry.name}${entry.isDirectory() ? '/' : ''}` }))
      .sort((a, b) => compareKeys(a.key, b.key));
    for (const { entry, key } of named) {
      if (entry.isDirectory()) {
        if (key.startsWith(prefix) || prefix.startsWith(key)) yield* this.walk(key, prefix);
        continue;
      }
      if (!key.startsWith(prefix)) continue;
      const info = await stat(this.pathOf(key)).catch((err: unknown) => {
        if (isMissing(err)) return undefined; // deleted while we listed
        throw this.storeError(err, `listing ${key}`);
      });
      if (info?.isFile()) yield { key, size: info.size, lastModified: info.mtime };
    }
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = errorCode(err);
  return code && !err.message.startsWith(code) ? `${code}: ${err.message}` : err.message;
}
