import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parallelGzip } from './gzip.js';

async function compress(input: Buffer, chunk: number, options: Parameters<typeof parallelGzip>[1] = {}) {
  async function* source() {
    // Uneven chunks that straddle block boundaries, and a reused buffer: the compressor must copy.
    const scratch = Buffer.alloc(chunk);
    for (let i = 0; i < input.length; i += chunk) {
      const n = input.copy(scratch, 0, i, i + chunk);
      yield scratch.subarray(0, n);
    }
  }
  const out: Buffer[] = [];
  for await (const b of parallelGzip(source(), options)) out.push(b);
  return Buffer.concat(out);
}

/** Order-book-like text: compressible, with matches that reach across block boundaries. */
function ledger(bytes: number): Buffer {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const line = `{"id":"o${i}","symbol":"S${i % 97}/USDT","side":"${i % 3 ? 'buy' : 'sell'}","qty":"${(i * 7919) % 5000}.0","price":"${100 + (i % 13)}.${i % 100}"}\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

describe('parallelGzip', () => {
  it.each([
    ['nothing', 0, 1000],
    ['less than a block', 50_000, 7_777],
    ['exactly one block', 64 * 1024, 64 * 1024],
    ['many blocks in uneven chunks', 3 * 64 * 1024 + 12_345, 70_001],
  ])('writes one gzip stream that gunzip and Node read back byte for byte: %s', async (_name, bytes, chunk) => {
    const input = Buffer.concat([ledger(Math.floor(bytes / 2)), randomBytes(bytes - Math.floor(bytes / 2))]);
    const gz = await compress(input, chunk, { blockSize: 64 * 1024, concurrency: 3 });
    expect(gunzipSync(gz).equals(input)).toBe(true);
    // The system's gzip checks the CRC and length in the trailer too, and finds one member.
    expect(execFileSync('gzip', ['-dc'], { input: gz, maxBuffer: 1 << 26 }).equals(input)).toBe(true);
    expect(execFileSync('gzip', ['-t'], { input: gz }).length).toBe(0);
  });

  it('is no larger than single-threaded gzip at the same level (each block sees the 32 KiB before it)', async () => {
    const input = ledger(4 * 1024 * 1024);
    const parallel = await compress(input, 1 << 16, { level: 6, blockSize: 256 * 1024 });
    const single = gzipSync(input, { level: 6 });
    // A cut costs a flush marker and a fresh Huffman table: some tens of bytes per block.
    expect(parallel.length).toBeLessThanOrEqual(single.length + 16 * 40);
    // Without the primed window each block would start cold and cost far more.
    expect(parallel.length).toBeLessThan(single.length * 1.01);
  });

  it('refuses a level outside 1-9', async () => {
    await expect(compress(Buffer.from('x'), 1, { level: 0 })).rejects.toThrow(/gzip level must be 1-9, not 0/);
  });
});
