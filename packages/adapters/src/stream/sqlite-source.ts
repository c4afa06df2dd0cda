// The live SQLite database a shipper copies: its log read as files, and the locks that keep
// SQLite from discarding log frames before they are copied (Litestream's approach).
//
// A reader holding a snapshot with frames in the log keeps SQLite from restarting the log, so
// frames it has not copied stay in the file. Two read connections take turns: the next
// snapshot is taken before the last is let go, so one is always held — but only ever moved
// forward after the frames before it were copied (see docs/FORMAT.md, "Continuous
// protection"). Checkpoints that shorten the log run under the write lock, after the last
// frames were read.
import { type FileHandle, open } from 'node:fs/promises';
import { LifeboatError } from '@lifeboat/domain';
import Database from 'better-sqlite3';
import {
  FRAME_HEADER_BYTES,
  frameHeader,
  readCommittedFrames,
  readWalHeader,
  WAL_HEADER_BYTES,
  type WalFrames,
  type WalHeader,
} from './wal.js';

export class SqliteWalSource {
  readonly path: string;
  readonly walPath: string;
  #write: Database.Database | null = null;
  #readers: Database.Database[] = [];
  /** The reader holding the current snapshot (index into #readers), or -1. */
  #held = -1;

  constructor(path: string) {
    this.path = path;
    this.walPath = `${path}-wal`;
  }

  open(): void {
    const connect = () => {
      try {
        const db = new Database(this.path, { fileMustExist: true });
        db.pragma('busy_timeout = 2000');
        return db;
      } catch (err) {
        throw new LifeboatError('NOT_FOUND', `cannot open the SQLite database ${this.path}: ${(err as Error).message}`);
      }
    };
    this.#write = connect();
    const mode = this.#write.pragma('journal_mode', { simple: true });
    if (mode !== 'wal') {
      this.close();
      throw new LifeboatError(
        'INVALID_CONFIG',
        `${this.path} is in journal mode "${String(mode)}": continuous replication reads the write-ahead log`,
        {
          hint: "the target should set `PRAGMA journal_mode = WAL` (the paper-trader does); Lifeboat never changes a target's journal mode",
        },
      );
    }
    this.#readers = [connect(), connect()];
  }

  /** Takes a new snapshot, then lets the previous one go: the log is held from here on. */
  hold(): void {
    const next = this.#held === 0 ? 1 : 0;
    const r = this.#readers[next] as Database.Database;
    r.exec('BEGIN');
    r.prepare('SELECT count(*) FROM sqlite_master').get();
    this.#release(this.#held);
    this.#held = next;
  }

  #release(i: number): void {
    const r = this.#readers[i];
    if (r?.inTransaction) r.exec('COMMIT');
  }

  header(): Promise<WalHeader | null> {
    return readWalHeader(this.walPath);
  }

  /** Committed frames from `from` on, or null when the log changed while they were read (read again). */
  async frames(header: WalHeader, from: number, seed: [number, number]): Promise<WalFrames | null> {
    let file: FileHandle;
    try {
      file = await open(this.walPath, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const frames = await readCommittedFrames(file, header, from, seed);
      // A restart rewrites the header before it overwrites frame 1: same salts after the read
      // means every frame read was the log's own.
      const after = await this.header();
      if (!after || after.salt1 !== header.salt1 || after.salt2 !== header.salt2) return null;
      return frames;
    } finally {
      await file.close();
    }
  }

  /** Whether frame `n` of the log is there with the given chain checksum (a shipper resuming checks where it stopped). */
  async frameChecksumIs(header: WalHeader, n: number, checksum: [number, number]): Promise<boolean> {
    const file = await open(this.walPath, 'r').catch(() => null);
    if (!file) return false;
    try {
      const buf = Buffer.alloc(FRAME_HEADER_BYTES);
      const at = WAL_HEADER_BYTES + (n - 1) * (FRAME_HEADER_BYTES + header.pageSize);
      const { bytesRead } = await file.read(buf, 0, FRAME_HEADER_BYTES, at);
      if (bytesRead < FRAME_HEADER_BYTES) return false;
      const h = frameHeader(buf);
      return (
        h.salt1 === header.salt1 &&
        h.salt2 === header.salt2 &&
        h.checksum[0] === checksum[0] &&
        h.checksum[1] === checksum[1]
      );
    } finally {
      await file.close();
    }
  }

  /**
   * A checkpoint that lets the log restart: under the write lock (no writer can add a frame),
   * `beforeRelease` reads the last frames, the snapshots are let go, a PASSIVE checkpoint
   * copies the log into the database, a new snapshot is taken, and the write lock goes.
   * Returns false, having changed nothing, when the write lock is not had within the busy
   * timeout (a long transaction of the target's): the next round tries again.
   */
  async checkpoint(beforeRelease: () => Promise<void>): Promise<boolean> {
    const w = this.#write as Database.Database;
    try {
      w.exec('BEGIN IMMEDIATE');
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_BUSY') return false;
      throw err;
    }
    try {
      await beforeRelease();
      this.#release(0);
      this.#release(1);
      this.#held = -1;
      (this.#readers[0] as Database.Database).pragma('wal_checkpoint(PASSIVE)');
      this.hold();
    } finally {
      w.exec('ROLLBACK');
    }
    return true;
  }

  /**
   * Rewrites the database's user_version with its own value, in a transaction of its own: a
   * write that changes nothing, after a checkpoint, makes SQLite restart the log now (as
   * Litestream's own write does) rather than at some later write of the target's — so the
   * shipper sees the restart while it runs and ships the new log's first frame at once.
   * Returns false when the write lock is busy.
   */
  touch(): boolean {
    const w = this.#write as Database.Database;
    try {
      w.exec('BEGIN IMMEDIATE');
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_BUSY') return false;
      throw err;
    }
    try {
      const version = Number(w.pragma('user_version', { simple: true }));
      w.pragma(`user_version = ${version}`);
      w.exec('COMMIT');
      return true;
    } catch (err) {
      if (w.inTransaction) w.exec('ROLLBACK');
      throw err;
    }
  }

  close(): void {
    for (const db of [...this.#readers, this.#write]) {
      try {
        if (db?.inTransaction) db.exec('ROLLBACK');
        db?.close();
      } catch {
        // closing what is already closed
      }
    }
    this.#readers = [];
    this.#write = null;
    this.#held = -1;
  }
}
