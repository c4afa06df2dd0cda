// A streaming ustar/pax writer and reader over async byte streams. Headers are encoded and
// decoded by the `tar` package; the framing is ours so that every entry is hashed as it
// passes, sizes are enforced exactly, and anything but plain files and directories is
// refused by name before a byte of it is written anywhere.
import { createHash } from 'node:crypto';
import { LifeboatError } from '@lifeboat/domain';
import { Header, Pax } from 'tar';

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
const MAX_EXTENDED_HEADER = 1 << 20;

export interface TarSourceEntry {
  path: string;
  size: number;
  mode: number;
  mtime: Date;
  /** Opens the entry's bytes; it must yield exactly `size` bytes (more are cut, fewer fail). */
  open(): AsyncIterable<Uint8Array>;
}

export interface TarWrittenEntry {
  path: string;
  size: number;
  sha256: string;
}

function headerBlocks(path: string, size: number, mode: number, mtime: Date, type: 'File' | 'Directory'): Buffer[] {
  const data = { path, mode, size, mtime, type, uid: 0, gid: 0, uname: 'lifeboat', gname: 'lifeboat' } as const;
  const header = new Header(data);
  const needPax = header.encode();
  const blocks: Buffer[] = [];
  if (needPax) blocks.push(new Pax({ path, size, mtime }).encode());
  blocks.push(header.block as Buffer);
  return blocks;
}

function padding(size: number): Buffer | null {
  const rest = size % BLOCK;
  return rest === 0 ? null : Buffer.alloc(BLOCK - rest);
}

/**
 * Yields a tar stream of the entries, then of `trailer()` (the in-archive manifest, built
 * from the entries' checksums). `onEntry` receives each entry's size and sha256 as it ends.
 */
export async function* writeTar(
  entries: Iterable<TarSourceEntry> | AsyncIterable<TarSourceEntry>,
  onEntry: (written: TarWrittenEntry) => void,
  trailer?: () => { path: string; body: Buffer } | Promise<{ path: string; body: Buffer }>,
): AsyncGenerator<Buffer> {
  for await (const entry of entries) {
    yield* headerBlocks(entry.path, entry.size, entry.mode, entry.mtime, 'File');
    const hash = createHash('sha256');
    let written = 0;
    for await (const chunk of entry.open()) {
      if (written >= entry.size) break;
      let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (written + buf.length > entry.size) buf = buf.subarray(0, entry.size - written);
      hash.update(buf);
      written += buf.length;
      yield buf;
    }
    if (written !== entry.size) {
      throw new LifeboatError(
        'TARGET_ERROR',
        `${entry.path}: the file shrank while it was being read (${written} of ${entry.size} bytes)`,
        { hint: 'something truncated or replaced it in place; run the backup again' },
      );
    }
    const pad = padding(entry.size);
    if (pad) yield pad;
    onEntry({ path: entry.path, size: entry.size, sha256: hash.digest('hex') });
  }
  if (trailer) {
    const { path, body } = await trailer();
    yield* headerBlocks(path, body.length, 0o644, new Date(), 'File');
    yield body;
    const pad = padding(body.length);
    if (pad) yield pad;
  }
  yield ZERO_BLOCK;
  yield ZERO_BLOCK;
}

/** Reads exact byte counts from an async stream of chunks. */
class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  /** Total bytes handed out so far. */
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.it.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    return true;
  }

  /** Exactly n bytes, or null at a clean end of stream; a partial read is an error. */
  async exact(n: number): Promise<Buffer | null> {
    while (this.buf.length < n) {
      if (!(await this.fill())) {
        if (this.buf.length === 0) return null;
        throw new LifeboatError(
          'VERIFY_FAILED',
          `archive is truncated at byte ${this.offset + this.buf.length} of the tar stream`,
        );
      }
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.offset += n;
    return out;
  }

  /** Yields n bytes in chunks as they arrive. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill())) {
        throw new LifeboatError('VERIFY_FAILED', `archive is truncated: ${left} bytes of an entry are missing`);
      }
      const take = Math.min(left, this.buf.length);
      const out = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      this.offset += take;
      left -= take;
      yield out;
    }
  }

  /** Drains the rest of the stream (so upstream checksums see every byte); returns its length. */
  async drain(): Promise<number> {
    let n = this.buf.length;
    this.buf = Buffer.alloc(0);
    while (await this.fill()) {
      n += this.buf.length;
      this.buf = Buffer.alloc(0);
    }
    return n;
  }
}

export interface TarReadEntry {
  path: string;
  type: 'File' | 'Directory';
  size: number;
  mode: number;
  mtime: Date | undefined;
  /** The entry's bytes; read it before asking for the next entry, or it is skipped. */
  body: AsyncIterable<Buffer>;
}

function unsafe(path: string, why: string): LifeboatError {
  return new LifeboatError('ARCHIVE_UNSAFE', `archive entry "${path}" refused: ${why}`, {
    hint: 'the archive was not made by Lifeboat or has been tampered with; nothing was written for it',
  });
}

/** True for a relative path with no `..`, `.`, empty, absolute or drive-letter parts. */
export function isSafeEntryPath(path: string): boolean {
  if (!path || path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.includes('\\') || path.includes('\0'))
    return false;
  const parts = path.replace(/\/+$/, '').split('/');
  return parts.every((p) => p !== '..' && p !== '.' && p !== '');
}

export interface TarLimits {
  /** The most bytes an entry may hold, by its path (undefined: no limit of its own). */
  entryBytes?: (path: string) => number | undefined;
  /** The most bytes all entries together may hold. */
  totalBytes?: number;
}

/**
 * Parses a tar stream into entries. Only regular files and directories with safe relative
 * paths pass; links, devices, FIFOs, unsafe paths and entries beyond the limits throw
 * ARCHIVE_UNSAFE naming the entry.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array>,
  limits: TarLimits = {},
): AsyncGenerator<TarReadEntry> {
  const reader = new ByteReader(source);
  let total = 0;
  let ex: Record<string, unknown> | undefined;
  let longPath: string | undefined;
  for (;;) {
    const block = await reader.exact(BLOCK);
    if (block === null) throw new LifeboatError('VERIFY_FAILED', 'archive ends without the tar end-of-archive marker');
    if (block.equals(ZERO_BLOCK)) {
      // End of archive: read whatever follows so the caller's checksums cover every byte.
      await reader.drain();
      return;
    }
    const damaged = () =>
      new LifeboatError('VERIFY_FAILED', `archive has a damaged tar header at byte ${reader.offset - BLOCK}`);
    let header: Header;
    try {
      header = new Header(block, 0, ex as never);
    } catch {
      // The parser throws on some damage before the checksum is looked at (a bad base-256 number).
      throw damaged();
    }
    if (!header.cksumValid) throw damaged();
    const size = header.size ?? 0;
    const type = header.type;
    if (type === 'ExtendedHeader' || type === 'GlobalExtendedHeader' || type === 'NextFileHasLongPath') {
      // Extended headers are read into memory, so their size is bounded.
      if (size > MAX_EXTENDED_HEADER)
        throw unsafe(header.path ?? '', `an extended header of ${size} bytes (limit ${MAX_EXTENDED_HEADER})`);
      const chunks: Buffer[] = [];
      for await (const c of reader.chunks(size)) chunks.push(c);
      await reader.exact((BLOCK - (size % BLOCK)) % BLOCK);
      const body = Buffer.concat(chunks).toString('utf8');
      if (type === 'NextFileHasLongPath') longPath = body.replace(/\0+$/, '');
      else if (type === 'ExtendedHeader') ex = { ...Pax.parse(body, ex as never) };
      continue;
    }
    // A leading "./" (GNU tar's `-C dir .`, pg_basebackup's pg_wal entries) names the same place without it.
    const path = (longPath ?? header.path ?? '').replace(/\0+$/, '').replace(/^(\.\/)+/, '');
    ex = undefined;
    longPath = undefined;
    if ((path === '' || path === '.') && type === 'Directory') {
      // The archive's own root: nothing to create (a directory entry has no body).
      continue;
    }
    if (type !== 'File' && type !== 'OldFile' && type !== 'ContiguousFile' && type !== 'Directory') {
      throw unsafe(path, `${type} entries are not allowed (only regular files and directories)`);
    }
    if (!isSafeEntryPath(path)) throw unsafe(path, 'absolute paths and ".." are not allowed');
    const isDir = type === 'Directory';
    const dataSize = isDir ? 0 : size;
    // A tar header declares its entry's size: a decompression bomb is refused here, before
    // any of its bytes is read or written.
    const cap = limits.entryBytes?.(path.replace(/\/+$/, ''));
    if (cap !== undefined && dataSize > cap)
      throw unsafe(path, `it holds ${dataSize} bytes, more than the ${cap} allowed`);
    total += dataSize;
    if (limits.totalBytes !== undefined && total > limits.totalBytes) {
      throw unsafe(path, `the archive would expand to more than the ${limits.totalBytes} bytes allowed`);
    }
    let remaining = dataSize;
    const body = (async function* () {
      for await (const c of reader.chunks(remaining)) {
        remaining -= c.length;
        yield c;
      }
    })();
    yield {
      path: path.replace(/\/+$/, ''),
      type: isDir ? 'Directory' : 'File',
      size: dataSize,
      mode: header.mode ?? 0o644,
      mtime: header.mtime,
      body,
    };
    // Whatever the caller did not read of the entry is skipped here.
    for await (const c of reader.chunks(remaining)) remaining -= c.length;
    await reader.exact((BLOCK - (dataSize % BLOCK)) % BLOCK);
  }
}
