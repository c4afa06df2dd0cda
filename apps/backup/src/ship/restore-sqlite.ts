// A SQLite database rebuilt from its stream: the newest generation's snapshot at or before the
// point in time, then its segments in order up to that point, each checked (sha256, then
// SQLite's own checksum chain, which also shows a missing segment) before its pages are
// written. Nothing is written to `dest` until the whole chain checked.
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import {
  applyFrames,
  decryptStream,
  FRAME_HEADER_BYTES,
  frameHeader,
  measure,
  parseWalHeader,
  type Runtime,
  walChecksum,
} from '@lifeboat/adapters';
import { LifeboatError, layout } from '@lifeboat/domain';
import { listGenerations, listSegments, readSegment, type SegmentHeader } from './sqlite.js';

export interface StreamRestoreResult {
  generation: string;
  snapshotAt: string;
  segments: number;
  frames: number;
  /** When the newest segment applied was shipped: the point the database is restored to. */
  recoveredTo: string;
}

/** The newest point the stream can restore to, or null when the target has no stream. */
export async function streamEnd(runtime: Runtime, target: string): Promise<Date | null> {
  const generation = (await listGenerations(runtime, target)).at(-1);
  if (!generation) return null;
  const last = (await listSegments(runtime, target, generation.generation)).at(-1);
  return last ? last.shippedAt : new Date(generation.createdAt);
}

export async function restoreSqliteFromStream(
  runtime: Runtime,
  target: string,
  dest: string,
  options: { at?: Date } = {},
): Promise<StreamRestoreResult> {
  const at = options.at;
  const generations = await listGenerations(runtime, target);
  const generation = at
    ? generations.filter((g) => Date.parse(g.createdAt) <= at.getTime()).at(-1)
    : generations.at(-1);
  if (!generation) {
    throw new LifeboatError(
      'NOT_FOUND',
      `target ${target} has no replicated database${at ? ` from before ${at.toISOString()}` : ''} in ${runtime.store.location}`,
      { hint: 'run `lifeboat ship` beside the target to replicate it continuously' },
    );
  }
  const segments = (await listSegments(runtime, target, generation.generation)).filter(
    (s) => !at || s.shippedAt.getTime() <= at.getTime(),
  );
  const tmp = `${dest}.lifeboat-stream-${process.pid}`;
  try {
    // The snapshot, checked against its record.
    const stored = await runtime.store.get(layout.streamSnapshot(target, generation.generation, generation.encrypted));
    const plain = generation.encrypted ? decryptStream(stored, await runtime.identities()) : stored;
    const raw = measure(Readable.from(plain).pipe(createGunzip()) as AsyncIterable<Uint8Array>);
    await pipeline(Readable.from(raw.stream), createWriteStream(tmp, { mode: 0o600 }));
    if (raw.digest.sha256 !== generation.sha256 || raw.digest.size !== generation.size) {
      throw new LifeboatError(
        'VERIFY_FAILED',
        `the snapshot of generation ${generation.generation} has ${raw.digest.size} bytes, sha256 ${raw.digest.sha256}; its record says ${generation.size} bytes, sha256 ${generation.sha256}`,
      );
    }
    // Every segment read and checked before any page is written.
    const chain: Array<{ header: SegmentHeader; payload: Buffer }> = [];
    let prev: SegmentHeader | null = null;
    for (const ref of segments) {
      const { header, payload } = await readSegment(runtime, ref.key);
      const h = header as unknown as SegmentHeader;
      const where = `generation ${generation.generation}, segment ${ref.seq}`;
      if (h.seq !== (prev ? prev.seq + 1 : 1)) {
        throw new LifeboatError(
          'VERIFY_FAILED',
          `${where}: expected segment ${prev ? prev.seq + 1 : 1}: the stream has a gap`,
        );
      }
      checkFrames(h, payload, prev, where);
      chain.push({ header: h, payload });
      prev = h;
    }
    const file = await open(tmp, 'r+');
    let frames = 0;
    try {
      for (const { header, payload } of chain) {
        await applyFrames(file, payload, header.pageSize);
        frames += header.lastFrame - header.firstFrame + 1;
      }
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, dest);
    return {
      generation: generation.generation,
      snapshotAt: generation.createdAt,
      segments: chain.length,
      frames,
      recoveredTo: prev?.shippedAt ?? generation.createdAt,
    };
  } finally {
    await rm(tmp, { force: true });
  }
}

/** A segment's frames follow the one before (same log, next frame) or start a new log at frame 1, and their checksums chain. */
function checkFrames(h: SegmentHeader, payload: Buffer, prev: SegmentHeader | null, where: string): void {
  const frameBytes = FRAME_HEADER_BYTES + h.pageSize;
  const count = h.lastFrame - h.firstFrame + 1;
  if (count < 1 || payload.length !== count * frameBytes) {
    throw new LifeboatError(
      'VERIFY_FAILED',
      `${where}: ${payload.length} bytes for frames ${h.firstFrame}..${h.lastFrame}`,
    );
  }
  let seed: [number, number];
  if (h.firstFrame === 1) {
    const walHeader = h.walHeader ? parseWalHeader(Buffer.from(h.walHeader, 'base64')) : null;
    if (!walHeader || walHeader.salt1 !== h.salt1 || walHeader.salt2 !== h.salt2) {
      throw new LifeboatError('VERIFY_FAILED', `${where}: starts a log without its header`);
    }
    seed = walHeader.checksum;
  } else {
    if (!prev || prev.salt1 !== h.salt1 || prev.salt2 !== h.salt2 || prev.lastFrame + 1 !== h.firstFrame) {
      throw new LifeboatError(
        'VERIFY_FAILED',
        `${where}: frames ${h.firstFrame}..${h.lastFrame} do not follow ${prev ? `frame ${prev.lastFrame} of the segment before` : 'the snapshot'}: the stream has a gap`,
      );
    }
    seed = prev.checksum;
  }
  for (let o = 0; o < payload.length; o += frameBytes) {
    const frame = payload.subarray(o, o + frameBytes);
    const fh = frameHeader(frame);
    seed = walChecksum(
      frame.subarray(FRAME_HEADER_BYTES),
      h.bigEndian,
      walChecksum(frame.subarray(0, 8), h.bigEndian, seed),
    );
    if (seed[0] !== fh.checksum[0] || seed[1] !== fh.checksum[1]) {
      throw new LifeboatError('VERIFY_FAILED', `${where}: frame ${h.firstFrame + o / frameBytes} fails its checksum`);
    }
  }
}
