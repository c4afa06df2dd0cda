// SQLite's write-ahead log, read as SQLite writes it (https://sqlite.org/fileformat2.html#walformat):
// a 32-byte header, then frames of a 24-byte header and one page each. Frames chain their
// checksums from the header's; a frame whose salts differ from the header's, or whose
// checksum does not follow, is not part of the log (it is left over from before a restart, or
// still being written). A frame with a non-zero "database size" ends a transaction.
import { type FileHandle, open } from 'node:fs/promises';

export const WAL_HEADER_BYTES = 32;
export const FRAME_HEADER_BYTES = 24;

export interface WalHeader {
  /** Checksums over big-endian (0x377f0683) or little-endian (0x377f0682) words. */
  bigEndian: boolean;
  pageSize: number;
  checkpointSeq: number;
  salt1: number;
  salt2: number;
  /** The header's own checksum: where frame 1's chain starts. */
  checksum: [number, number];
  /** The 32 bytes, kept to rebuild the log on restore. */
  bytes: Buffer;
}

/** SQLite's WAL checksum over 8-byte words, continuing from `seed`. */
export function walChecksum(data: Buffer, bigEndian: boolean, seed: [number, number]): [number, number] {
  let s0 = seed[0] >>> 0;
  let s1 = seed[1] >>> 0;
  const read = bigEndian ? (o: number) => data.readUInt32BE(o) : (o: number) => data.readUInt32LE(o);
  for (let o = 0; o + 8 <= data.length; o += 8) {
    s0 = (s0 + read(o) + s1) >>> 0;
    s1 = (s1 + read(o + 4) + s0) >>> 0;
  }
  return [s0, s1];
}

export function parseWalHeader(bytes: Buffer): WalHeader | null {
  if (bytes.length < WAL_HEADER_BYTES) return null;
  const magic = bytes.readUInt32BE(0);
  if (magic !== 0x377f0682 && magic !== 0x377f0683) return null;
  const bigEndian = magic === 0x377f0683;
  const checksum: [number, number] = [bytes.readUInt32BE(24), bytes.readUInt32BE(28)];
  const computed = walChecksum(bytes.subarray(0, 24), bigEndian, [0, 0]);
  if (computed[0] !== checksum[0] || computed[1] !== checksum[1]) return null;
  const pageSize = bytes.readUInt32BE(8);
  return {
    bigEndian,
    pageSize: pageSize === 1 ? 65536 : pageSize,
    checkpointSeq: bytes.readUInt32BE(12),
    salt1: bytes.readUInt32BE(16),
    salt2: bytes.readUInt32BE(20),
    checksum,
    bytes: Buffer.from(bytes.subarray(0, WAL_HEADER_BYTES)),
  };
}

export interface WalFrames {
  header: WalHeader;
  /** The first frame read (1-based). */
  firstFrame: number;
  /** The last frame read, which ends a transaction; firstFrame - 1 when none was. */
  lastFrame: number;
  /** The frames, whole (frame header and page), up to and including the last commit. */
  bytes: Buffer;
  /** The chain's checksum after the last frame (where the next frame's starts). */
  checksum: [number, number];
  /** Database size in pages after the last commit read (0 when none was read). */
  dbPages: number;
}

/** The frame header's fields. */
export function frameHeader(frame: Buffer): {
  pgno: number;
  dbPages: number;
  salt1: number;
  salt2: number;
  checksum: [number, number];
} {
  return {
    pgno: frame.readUInt32BE(0),
    dbPages: frame.readUInt32BE(4),
    salt1: frame.readUInt32BE(8),
    salt2: frame.readUInt32BE(12),
    checksum: [frame.readUInt32BE(16), frame.readUInt32BE(20)],
  };
}

/**
 * Reads the committed frames of a log from frame `from` (1-based) on: as far as the chain
 * holds, cut back to the last frame that ends a transaction. `seed` is the checksum after
 * frame `from - 1` (the header's for frame 1). At most `maxBytes` of frames are returned
 * (always ending at a commit, unless one transaction alone is larger).
 */
export async function readCommittedFrames(
  file: FileHandle,
  header: WalHeader,
  from: number,
  seed: [number, number],
  maxBytes = 64 << 20,
): Promise<WalFrames> {
  const frameBytes = FRAME_HEADER_BYTES + header.pageSize;
  const { size } = await file.stat();
  const start = WAL_HEADER_BYTES + (from - 1) * frameBytes;
  const available = Math.max(0, Math.floor((size - start) / frameBytes));
  const chunkFrames = Math.max(1, Math.floor((4 << 20) / frameBytes));
  let checksum = seed;
  let committed = { frames: 0, checksum: seed, dbPages: 0 };
  const parts: Buffer[] = [];
  let read = 0;
  for (let i = 0; i < available; ) {
    const n = Math.min(chunkFrames, available - i);
    const buf = Buffer.allocUnsafe(n * frameBytes);
    const { bytesRead } = await file.read(buf, 0, buf.length, start + i * frameBytes);
    const whole = Math.floor(bytesRead / frameBytes);
    let ok = 0;
    for (let f = 0; f < whole; f++) {
      const frame = buf.subarray(f * frameBytes, (f + 1) * frameBytes);
      const h = frameHeader(frame);
      if (h.salt1 !== header.salt1 || h.salt2 !== header.salt2) break;
      const next = walChecksum(
        frame.subarray(FRAME_HEADER_BYTES),
        header.bigEndian,
        walChecksum(frame.subarray(0, 8), header.bigEndian, checksum),
      );
      if (next[0] !== h.checksum[0] || next[1] !== h.checksum[1]) break;
      checksum = next;
      ok++;
      if (h.dbPages !== 0) committed = { frames: i + ok, checksum, dbPages: h.dbPages };
    }
    parts.push(buf.subarray(0, ok * frameBytes));
    read += ok * frameBytes;
    i += ok;
    if (ok < n) break;
    if (read >= maxBytes && committed.frames > 0) break;
  }
  const bytes = Buffer.concat(parts).subarray(0, committed.frames * frameBytes);
  return {
    header,
    firstFrame: from,
    lastFrame: from - 1 + committed.frames,
    bytes,
    checksum: committed.checksum,
    dbPages: committed.dbPages,
  };
}

/** Reads the header of the log beside a database, or null when there is none (or it is empty or being reset). */
export async function readWalHeader(walPath: string): Promise<WalHeader | null> {
  let file: FileHandle;
  try {
    file = await open(walPath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const buf = Buffer.alloc(WAL_HEADER_BYTES);
    const { bytesRead } = await file.read(buf, 0, WAL_HEADER_BYTES, 0);
    return parseWalHeader(buf.subarray(0, bytesRead));
  } finally {
    await file.close();
  }
}

/**
 * Writes frames into a database file: each page at its place, and the file cut to the size
 * the last commit gives. This is a checkpoint done by hand, on a copy nobody else has open.
 */
export async function applyFrames(db: FileHandle, frames: Buffer, pageSize: number): Promise<number> {
  const frameBytes = FRAME_HEADER_BYTES + pageSize;
  let dbPages = 0;
  for (let o = 0; o + frameBytes <= frames.length; o += frameBytes) {
    const h = frameHeader(frames.subarray(o, o + FRAME_HEADER_BYTES));
    await db.write(frames, o + FRAME_HEADER_BYTES, pageSize, (h.pgno - 1) * pageSize);
    if (h.dbPages !== 0) dbPages = h.dbPages;
  }
  if (dbPages > 0) await db.truncate(dbPages * pageSize);
  return dbPages;
}
