// Continuous replication of a SQLite target: a generation is a snapshot of the database file
// and the log frames after it, shipped every interval as numbered, checksummed segments. The
// store is the only state: a shipper that was killed reads where the newest generation ends
// and goes on from there, or starts a new generation when the log moved on without it.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import {
  decodeSegment,
  encodeSegment,
  encryptStream,
  measure,
  type Runtime,
  SqliteWalSource,
  type WalFrames,
  type WalHeader,
} from '@lifeboat/adapters';
import { compactUtcMs, LifeboatError, layout, parseSegmentName } from '@lifeboat/domain';
import type { Logger } from '../context.js';

export const SQLITE_SEGMENT_FORMAT = 'lifeboat.sqlite-wal-segment/v1';
export const SQLITE_SNAPSHOT_FORMAT = 'lifeboat.sqlite-snapshot/v1';

/** Where the stream stands: the last frame shipped and the chain's checksum after it. */
interface Position {
  generation: string;
  /** The last segment's number (0: none yet). */
  seq: number;
  salt1: number;
  salt2: number;
  pageSize: number;
  lastFrame: number;
  checksum: [number, number];
  /** Salts not known yet: the first segment of a generation takes the log's. */
  fresh: boolean;
}

export interface SegmentHeader {
  format: typeof SQLITE_SEGMENT_FORMAT;
  generation: string;
  seq: number;
  shippedAt: string;
  salt1: number;
  salt2: number;
  pageSize: number;
  bigEndian: boolean;
  firstFrame: number;
  lastFrame: number;
  /** The log's header (base64) when the segment starts a log (frame 1). */
  walHeader?: string;
  /** The chain's checksum after the last frame. */
  checksum: [number, number];
  dbPages: number;
}

export interface ShipStats {
  stream: string;
  bytesShipped: number;
  segments: number;
  /** When the newest segment was stored. */
  lastSegmentAt: Date | null;
  /** Since when frames have waited unshipped (null: none wait). */
  pendingSince: Date | null;
  generation: string | null;
}

export interface SqliteShipperOptions {
  runtime: Runtime;
  target: string;
  /** The database file. */
  path: string;
  log: Logger;
  /** The log is checkpointed (and may restart) once it is larger than this. */
  checkpointBytes?: number;
  now?: () => Date;
}

export class SqliteShipper {
  readonly stats: ShipStats = {
    stream: 'sqlite',
    bytesShipped: 0,
    segments: 0,
    lastSegmentAt: null,
    pendingSince: null,
    generation: null,
  };
  #source: SqliteWalSource;
  #pos: Position | null = null;
  #o: Required<Omit<SqliteShipperOptions, 'runtime' | 'log'>> & Pick<SqliteShipperOptions, 'runtime' | 'log'>;

  constructor(options: SqliteShipperOptions) {
    this.#o = { checkpointBytes: 4 << 20, now: () => new Date(), ...options };
    this.#source = new SqliteWalSource(options.path);
  }

  get #encrypted(): boolean {
    return this.#o.runtime.recipients.length > 0;
  }

  /** Opens the database and takes up the stream where the store says it ends (or starts a generation). */
  async start(): Promise<void> {
    this.#source.open();
    this.#source.hold();
    const resumed = await this.#resume();
    if (resumed) {
      this.#pos = resumed;
      this.stats.generation = resumed.generation;
      this.#o.log.info(
        { target: this.#o.target, generation: resumed.generation, seq: resumed.seq, frame: resumed.lastFrame },
        'ship sqlite: resumed',
      );
      return;
    }
    await this.#newGeneration();
  }

  /** One round: ship the frames committed since the last, then let the held snapshot move on. */
  async tick(): Promise<void> {
    if (!this.#pos) throw new LifeboatError('INTERNAL', 'the shipper is not started');
    const shipped = await this.#shipAvailable();
    if (!shipped) return;
    this.#source.hold();
    // The file keeps its size when the log restarts: the log's length is its frames.
    const pos = this.#pos;
    if (pos.pageSize && pos.lastFrame * (pos.pageSize + 24) > this.#o.checkpointBytes) {
      const done = await this.#source.checkpoint(async () => {
        // No writer can add a frame now: what is read here ends the log, and it is stored
        // before the checkpoint may let SQLite restart the log (a failure here changes nothing).
        const last = await this.#readNext();
        if (last === null) throw new LifeboatError('INTERNAL', 'the log changed under the write lock');
        await this.#upload(last);
      });
      // The restart made now, and its first frame shipped at once: a shipper killed from here
      // on finds the new log's salts in its last segment and takes up from there.
      if (done && this.#source.touch()) await this.#shipAvailable();
    }
  }

  /** Ships what is there; false when the log changed under the read (retried next round) or the store failed. */
  async #shipAvailable(): Promise<boolean> {
    const frames = await this.#readNext();
    if (frames === null) return false;
    if (frames.lastFrame < frames.firstFrame) return true;
    try {
      await this.#upload(frames);
      return true;
    } catch (err) {
      // Nothing moves on: the held snapshot keeps the frames in the log until the store answers.
      this.stats.pendingSince ??= this.#o.now();
      this.#o.log.error(
        { target: this.#o.target, err: { message: (err as Error).message } },
        'ship sqlite: upload failed',
      );
      return false;
    }
  }

  /** The frames after the position, from the log as it is now; null when the log changed while read. */
  async #readNext(): Promise<WalFrames | null> {
    const pos = this.#pos as Position;
    const header = await this.#source.header();
    if (!header) return null;
    let from = pos.lastFrame + 1;
    let seed = pos.checksum;
    if (pos.fresh || header.salt1 !== pos.salt1 || header.salt2 !== pos.salt2) {
      // A new log. The snapshot held since the last round kept SQLite from restarting it
      // before every frame of the old one was shipped, so the stream goes on at frame 1.
      from = 1;
      seed = header.checksum;
    }
    const frames = await this.#source.frames(header, from, seed);
    if (frames && frames.lastFrame >= frames.firstFrame) this.stats.pendingSince ??= this.#o.now();
    return frames;
  }

  async #upload(frames: WalFrames): Promise<void> {
    const pos = this.#pos as Position;
    if (frames.lastFrame < frames.firstFrame) return;
    const now = this.#o.now();
    const seq = pos.seq + 1;
    const h = frames.header;
    const header: SegmentHeader = {
      format: SQLITE_SEGMENT_FORMAT,
      generation: pos.generation,
      seq,
      shippedAt: now.toISOString(),
      salt1: h.salt1,
      salt2: h.salt2,
      pageSize: h.pageSize,
      bigEndian: h.bigEndian,
      firstFrame: frames.firstFrame,
      lastFrame: frames.lastFrame,
      ...(frames.firstFrame === 1 ? { walHeader: h.bytes.toString('base64') } : {}),
      checksum: frames.checksum,
      dbPages: frames.dbPages,
    };
    const body = await encodeSegment({ ...header }, frames.bytes, this.#o.runtime.recipients);
    const key = layout.streamSegment(this.#o.target, pos.generation, seq, compactUtcMs(now), this.#encrypted);
    await this.#o.runtime.store.put(key, body);
    this.#pos = {
      ...pos,
      seq,
      salt1: h.salt1,
      salt2: h.salt2,
      pageSize: h.pageSize,
      lastFrame: frames.lastFrame,
      checksum: frames.checksum,
      fresh: false,
    };
    this.stats.bytesShipped += frames.bytes.length;
    this.stats.segments++;
    this.stats.lastSegmentAt = now;
    this.stats.pendingSince = null;
  }

  /**
   * A new generation: the database file copied while the held snapshot keeps the log from
   * restarting; the segments after it start at frame 1 of the log, so every page a concurrent
   * checkpoint may have changed under the copy is written again on restore.
   */
  async #newGeneration(): Promise<void> {
    const { runtime, target } = this.#o;
    const started = this.#o.now();
    // Milliseconds in the name: generations sort by when they began, even two in one second.
    const generation = `${compactUtcMs(started)}-${randomBytes(3).toString('hex')}`;
    const raw = measure(createReadStream(this.#o.path, { highWaterMark: 1 << 20 }));
    const gz = Readable.from(raw.stream).pipe(createGzip({ level: 6 }));
    const body = this.#encrypted ? encryptStream(gz, runtime.recipients) : gz;
    await runtime.store.put(layout.streamSnapshot(target, generation, this.#encrypted), body);
    const record = {
      format: SQLITE_SNAPSHOT_FORMAT,
      generation,
      target,
      createdAt: started.toISOString(),
      size: raw.digest.size,
      sha256: raw.digest.sha256,
      encrypted: this.#encrypted,
    };
    await runtime.store.put(
      layout.streamSnapshotRecord(target, generation),
      Buffer.from(`${JSON.stringify(record, null, 1)}\n`),
    );
    this.#pos = { generation, seq: 0, salt1: 0, salt2: 0, pageSize: 0, lastFrame: 0, checksum: [0, 0], fresh: true };
    this.stats.generation = generation;
    this.#o.log.info({ target, generation, bytes: raw.digest.size }, 'ship sqlite: new generation');
  }

  /**
   * Where the newest generation ends, if the log still holds that place: the same salts and
   * the same checksum at the last frame shipped. Otherwise null (a new generation is needed:
   * frames may have gone into the database file and out of the log while nobody held it).
   */
  async #resume(): Promise<Position | null> {
    const { runtime, target } = this.#o;
    const newest = await newestGeneration(runtime, target);
    if (!newest) return null;
    const segments = await listSegments(runtime, target, newest);
    const last = segments.at(-1);
    if (!last) return null;
    const { header } = await readSegment(runtime, last.key);
    const h = header as unknown as SegmentHeader;
    const wal = await this.#source.header();
    const moved = (why: string) => {
      this.#o.log.warn(
        {
          target,
          generation: newest,
          seq: h.seq,
          frame: h.lastFrame,
          why,
          shipped: [h.salt1, h.salt2],
          log: wal ? [wal.salt1, wal.salt2] : null,
        },
        'ship sqlite: cannot resume',
      );
      return null;
    };
    if (!wal || wal.salt1 !== h.salt1 || wal.salt2 !== h.salt2) {
      return moved('the log was restarted since the last segment (a checkpoint ran while no shipper held it)');
    }
    if (!(await this.#source.frameChecksumIs(wal, h.lastFrame, h.checksum))) {
      return moved(`frame ${h.lastFrame} of the log is not the one shipped`);
    }
    return {
      generation: newest,
      seq: h.seq,
      salt1: h.salt1,
      salt2: h.salt2,
      pageSize: h.pageSize,
      lastFrame: h.lastFrame,
      checksum: h.checksum,
      fresh: false,
    };
  }

  async stop(): Promise<void> {
    this.#source.close();
  }
}

/** The newest generation whose snapshot committed, or null. */
export async function newestGeneration(runtime: Runtime, target: string): Promise<string | null> {
  return (await listGenerations(runtime, target)).at(-1)?.generation ?? null;
}

export interface GenerationInfo {
  generation: string;
  createdAt: string;
  encrypted: boolean;
  size: number;
  sha256: string;
}

/** Generations with a committed snapshot, oldest first. */
export async function listGenerations(runtime: Runtime, target: string): Promise<GenerationInfo[]> {
  const out: GenerationInfo[] = [];
  const prefix = layout.streamSqlitePrefix(target);
  for await (const o of runtime.store.list(prefix)) {
    const rest = o.key.slice(prefix.length);
    const m = /^([^/]+)\/snapshot\.json$/.exec(rest);
    if (!m) continue;
    const record = JSON.parse(Buffer.from(await runtime.store.getBytes(o.key)).toString('utf8'));
    out.push({
      generation: m[1] as string,
      createdAt: record.createdAt,
      encrypted: Boolean(record.encrypted),
      size: record.size,
      sha256: record.sha256,
    });
  }
  return out.sort((a, b) => (a.generation < b.generation ? -1 : 1));
}

export interface SegmentRef {
  key: string;
  seq: number;
  shippedAt: Date;
  encrypted: boolean;
}

/** A generation's segments in order. */
export async function listSegments(runtime: Runtime, target: string, generation: string): Promise<SegmentRef[]> {
  const out: SegmentRef[] = [];
  for await (const o of runtime.store.list(layout.streamSegmentsPrefix(target, generation))) {
    const parsed = parseSegmentName(o.key.slice(o.key.lastIndexOf('/') + 1));
    if (parsed) out.push({ key: o.key, ...parsed });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

export async function readSegment(runtime: Runtime, key: string) {
  return decodeSegment(
    await runtime.store.getBytes(key),
    key.endsWith('.age'),
    () => runtime.identities(),
    `segment ${key}`,
  );
}

export type { WalHeader };
