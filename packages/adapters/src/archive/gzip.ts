// gzip on every core, pigz's way: the stream is cut into blocks that are deflated at once on
// libuv's thread pool, each primed with the 32 KiB before it (so matches reach back across
// the cut and the archive is no larger than a single-threaded gzip's) and ended with a sync
// flush (so the blocks join, byte-aligned, into one deflate stream). The result is one
// ordinary gzip member: gunzip, `tar -xzf` and Node's own gunzip read it unchanged.
import { availableParallelism } from 'node:os';
import { constants, crc32, deflateRaw } from 'node:zlib';

/** The window deflate can reach back into: the dictionary each block is primed with. */
const WINDOW = 32 * 1024;

export interface ParallelGzipOptions {
  /** 1 (fastest) to 9 (smallest); 6 is gzip's own default. */
  level?: number;
  /** Bytes of input per block; larger blocks cost memory, smaller ones add 5 bytes of flush marker each. */
  blockSize?: number;
  /** Blocks compressed at once; by default one per core and one more so no core waits. */
  concurrency?: number;
}

// RFC 1952: magic, deflate, no flags, no mtime (archives of the same bytes are the same bytes),
// no extra flags, OS unknown.
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]);
// The empty final block (BFINAL=1, fixed Huffman, end-of-block code) that closes the stream.
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

function deflateBlock(block: Buffer, dictionary: Buffer | undefined, level: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflateRaw(
      block,
      {
        level,
        finishFlush: constants.Z_SYNC_FLUSH,
        chunkSize: block.length + (block.length >> 6) + 1024,
        ...(dictionary ? { dictionary } : {}),
      },
      (err, out) => (err ? reject(err) : resolve(out)),
    );
  });
}

/** Compresses `source` into one gzip stream, several blocks at a time. */
export async function* parallelGzip(
  source: AsyncIterable<Uint8Array>,
  options: ParallelGzipOptions = {},
): AsyncGenerator<Buffer> {
  const level = options.level ?? 6;
  const blockSize = options.blockSize ?? 1024 * 1024;
  const concurrency = options.concurrency ?? availableParallelism() + 1;
  if (!Number.isInteger(level) || level < 1 || level > 9) throw new RangeError(`gzip level must be 1-9, not ${level}`);
  if (blockSize < WINDOW) throw new RangeError(`gzip block size must be at least ${WINDOW} bytes`);

  let crc = 0;
  let size = 0;
  let tail: Buffer | undefined;
  const pending: Promise<Buffer>[] = [];
  // Blocks are started in order and yielded in order; compression of the next ones goes on
  // meanwhile. A failed block rejects when its turn comes; the ones after it are abandoned.
  const start = (block: Buffer) => {
    crc = crc32(block, crc);
    size += block.length;
    const dictionary = tail;
    tail = Buffer.from(block.subarray(Math.max(0, block.length - WINDOW)));
    const p = deflateBlock(block, dictionary, level);
    p.catch(() => {}); // handled when awaited in turn
    pending.push(p);
  };

  yield HEADER;
  // Every chunk is copied into a block of its own, so a source that reuses its buffers is safe.
  let block = Buffer.allocUnsafe(blockSize);
  let filled = 0;
  for await (const chunk of source) {
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(blockSize - filled, chunk.length - offset);
      block.set(chunk.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === blockSize) {
        start(block);
        block = Buffer.allocUnsafe(blockSize);
        filled = 0;
        while (pending.length >= concurrency) yield await (pending.shift() as Promise<Buffer>);
      }
    }
  }
  if (filled) start(block.subarray(0, filled));
  while (pending.length) yield await (pending.shift() as Promise<Buffer>);

  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(size % 2 ** 32, 4);
  yield Buffer.concat([FINAL_BLOCK, trailer]);
}
