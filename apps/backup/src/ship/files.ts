// Continuous protection of append-only files (shadow orders, audit logs): the bytes appended
// since the last round, whole lines only, shipped as numbered, checksummed segments. A file
// replaced (rotated: another inode) or cut shorter (truncated) starts a new epoch from byte 0.
// The store is the only state: a shipper started again goes on after the last segment when
// the file still holds it, byte for byte.
import { createHash } from 'node:crypto';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeSegment, encodeSegment, type ResolvedTarget, type Runtime } from '@lifeboat/adapters';
import { compactUtcMs, LifeboatError, layout, parseSegmentName } from '@lifeboat/domain';
import type { Logger } from '../context.js';
import { selectFiles } from '../select-files.js';
import type { ShipStats } from './sqlite.js';

export const FILE_SEGMENT_FORMAT = 'lifeboat.file-segment/v1';
/** Bytes of a file's tail kept in a segment's header to recognise the file again. */
const TAIL_BYTES = 64;
/** At most this much of one file goes into one segment (a large backlog ships over several rounds). */
const MAX_SEGMENT_BYTES = 16 << 20;

export interface FileSegmentHeader {
  format: typeof FILE_SEGMENT_FORMAT;
  path: string;
  seq: number;
  /** Changes when the file is rotated or truncated; offsets restart at 0. */
  epoch: string;
  offset: number;
  length: number;
  shippedAt: string;
  inode: number;
  /** sha256 of the TAIL_BYTES before offset + length (fewer at the start of a file). */
  tailSha256: string;
}

interface FileState {
  seq: number;
  epoch: string;
  inode: number;
  end: number;
}

/** A path as one key segment: base64url, so any name is a valid key. */
export function fileStreamKey(path: string): string {
  return Buffer.from(path, 'utf8').toString('base64url');
}

export class FileShipper {
  readonly stats: ShipStats = {
    stream: 'files',
    bytesShipped: 0,
    segments: 0,
    lastSegmentAt: null,
    pendingSince: null,
    generation: null,
  };
  #state = new Map<string, FileState>();
  #files: string[] = [];
  #round = 0;

  constructor(
    private readonly o: {
      runtime: Runtime;
      target: ResolvedTarget;
      log: Logger;
      now?: () => Date;
      /** Rounds between walks of the target's directory for new files. */
      rescanEvery?: number;
    },
  ) {}

  get #encrypted(): boolean {
    return this.o.runtime.recipients.length > 0;
  }

  async start(): Promise<void> {
    const { runtime, target } = this.o;
    const prefix = layout.streamFilesPrefix(target.name);
    const last = new Map<string, string>();
    for await (const obj of runtime.store.list(prefix)) {
      const [dir, name] = obj.key.slice(prefix.length).split('/');
      if (!dir || !name || !parseSegmentName(name)) continue;
      if (!last.has(dir) || (last.get(dir) as string) < obj.key) last.set(dir, obj.key);
    }
    for (const key of last.values()) {
      const { header } = await readFileSegment(runtime, key);
      const h = header as unknown as FileSegmentHeader;
      this.#state.set(h.path, { seq: h.seq, epoch: h.epoch, inode: h.inode, end: h.offset + h.length });
      // Taken up only if the file still holds the shipped bytes where they were.
      if (!(await this.#stillHolds(h))) {
        const s = this.#state.get(h.path) as FileState;
        s.end = -1;
      }
    }
  }

  async #stillHolds(h: FileSegmentHeader): Promise<boolean> {
    const abs = join(this.o.target.root, h.path);
    const st = await stat(abs).catch(() => null);
    if (!st || st.ino !== h.inode || st.size < h.offset + h.length) return false;
    const f = await open(abs, 'r');
    try {
      return (await tailSha(f, h.offset + h.length)) === h.tailSha256;
    } finally {
      await f.close();
    }
  }

  async tick(): Promise<void> {
    const { target } = this.o;
    if (this.#round++ % (this.o.rescanEvery ?? 10) === 0) {
      const db = target.config.database?.engine === 'sqlite' ? [target.config.database.path] : [];
      const selection = await selectFiles(target.root, target.config, db);
      // Secrets are never streamed: they go into a backup only, and only encrypted.
      this.#files = selection.files.filter((f) => f.appendOnly && !f.secret).map((f) => f.source);
    }
    for (const path of this.#files) {
      try {
        await this.#shipFile(path);
      } catch (err) {
        this.stats.pendingSince ??= (this.o.now ?? (() => new Date()))();
        this.o.log.error({ path, err: { message: (err as Error).message } }, 'ship files: not shipped');
      }
    }
  }

  async #shipFile(path: string): Promise<void> {
    const abs = join(this.o.target.root, path);
    const st = await stat(abs).catch(() => null);
    if (!st) return;
    const now = (this.o.now ?? (() => new Date()))();
    let s = this.#state.get(path);
    // A new file, one replaced by another (rotation), or one cut shorter: a new epoch from byte 0.
    if (!s || s.end < 0 || s.inode !== st.ino || st.size < s.end) {
      s = { seq: s?.seq ?? 0, epoch: `${compactUtcMs(now)}-${st.ino}`, inode: st.ino, end: 0 };
      this.#state.set(path, s);
    }
    if (st.size <= s.end) return;
    const f = await open(abs, 'r');
    try {
      const want = Math.min(st.size - s.end, MAX_SEGMENT_BYTES);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await f.read(buf, 0, want, s.end);
      // Whole lines only: a line being written is shipped once it ends.
      const cut = buf.subarray(0, bytesRead).lastIndexOf(10) + 1;
      if (cut === 0) return;
      const payload = buf.subarray(0, cut);
      const header: FileSegmentHeader = {
        format: FILE_SEGMENT_FORMAT,
        path,
        seq: s.seq + 1,
        epoch: s.epoch,
        offset: s.end,
        length: cut,
        shippedAt: now.toISOString(),
        inode: st.ino,
        tailSha256: await tailSha(f, s.end + cut),
      };
      const body = await encodeSegment({ ...header }, payload, this.o.runtime.recipients);
      await this.o.runtime.store.put(
        layout.streamFileSegment(
          this.o.target.name,
          fileStreamKey(path),
          header.seq,
          compactUtcMs(now),
          this.#encrypted,
        ),
        body,
      );
      s.seq = header.seq;
      s.end += cut;
      this.stats.bytesShipped += cut;
      this.stats.segments++;
      this.stats.lastSegmentAt = now;
      this.stats.pendingSince = null;
    } finally {
      await f.close();
    }
  }

  async stop(): Promise<void> {}
}

async function tailSha(f: FileHandle, end: number): Promise<string> {
  const start = Math.max(0, end - TAIL_BYTES);
  const buf = Buffer.alloc(end - start);
  await f.read(buf, 0, buf.length, start);
  return createHash('sha256').update(buf).digest('hex');
}

export async function readFileSegment(runtime: Runtime, key: string) {
  return decodeSegment(
    await runtime.store.getBytes(key),
    key.endsWith('.age'),
    () => runtime.identities(),
    `segment ${key}`,
  );
}

/**
 * A streamed file's content at a point in time: the epoch current then, its segments
 * concatenated from byte 0 (each checked; a missing one is a gap). Null when it was not streamed.
 */
export async function streamedFile(
  runtime: Runtime,
  target: string,
  path: string,
  at?: Date,
): Promise<{ content: Buffer; epoch: string; shippedAt: string; segments: number } | null> {
  const prefix = `${layout.streamFilesPrefix(target)}${fileStreamKey(path)}/`;
  const refs: Array<{ key: string; seq: number; shippedAt: Date }> = [];
  for await (const obj of runtime.store.list(prefix)) {
    const parsed = parseSegmentName(obj.key.slice(prefix.length));
    if (parsed && (!at || parsed.shippedAt.getTime() <= at.getTime())) refs.push({ key: obj.key, ...parsed });
  }
  refs.sort((a, b) => a.seq - b.seq);
  if (refs.length === 0) return null;
  // Walk back from the newest segment to the start of its epoch.
  const chain: Array<{ h: FileSegmentHeader; payload: Buffer }> = [];
  for (let i = refs.length - 1; i >= 0; i--) {
    const ref = refs[i] as { key: string };
    const { header, payload } = await readFileSegment(runtime, ref.key);
    const h = header as unknown as FileSegmentHeader;
    if (chain.length && h.epoch !== (chain[0] as { h: FileSegmentHeader }).h.epoch) break;
    chain.unshift({ h, payload });
    if (h.offset === 0) break;
  }
  let offset = 0;
  for (const { h } of chain) {
    if (h.offset !== offset) {
      throw new LifeboatError(
        'VERIFY_FAILED',
        `the stream of ${path} has a gap: segment ${h.seq} starts at byte ${h.offset}, expected ${offset}`,
      );
    }
    offset += h.length;
  }
  const last = chain.at(-1) as { h: FileSegmentHeader };
  return {
    content: Buffer.concat(chain.map((c) => c.payload)),
    epoch: last.h.epoch,
    shippedAt: last.h.shippedAt,
    segments: chain.length,
  };
}
