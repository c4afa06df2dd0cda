// A stream segment as stored: one JSON line (what it holds, and the sha256 of its payload),
// then the payload bytes; the whole gzip-compressed, then age-encrypted when recipients are
// configured. Small enough to build and read whole.
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { LifeboatError } from '@lifeboat/domain';
import { decryptStream, encryptStream } from '../archive/encryption.js';

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of source) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Encodes a segment: `header` gets `payloadSha256` and `payloadBytes` added. */
export async function encodeSegment(
  header: Record<string, unknown>,
  payload: Uint8Array,
  recipients: readonly string[],
): Promise<Buffer> {
  const line = Buffer.from(
    `${JSON.stringify({ ...header, payloadBytes: payload.length, payloadSha256: sha256(payload) })}\n`,
  );
  const zipped = gzipSync(Buffer.concat([line, payload]), { level: 6 });
  return recipients.length ? collect(encryptStream(once(zipped), recipients)) : zipped;
}

/** Decodes a segment and checks its payload against the sha256 in its header; `what` names it in errors. */
export async function decodeSegment(
  stored: Uint8Array,
  encrypted: boolean,
  identities: () => Promise<string[]>,
  what: string,
): Promise<{ header: Record<string, unknown>; payload: Buffer }> {
  let zipped: Buffer;
  try {
    zipped = encrypted ? await collect(decryptStream(once(stored), await identities())) : Buffer.from(stored);
  } catch (err) {
    if (err instanceof LifeboatError && err.code === 'INVALID_CONFIG') throw err;
    throw new LifeboatError('VERIFY_FAILED', `${what} does not decrypt: ${(err as Error).message}`);
  }
  let raw: Buffer;
  try {
    raw = gunzipSync(zipped);
  } catch (err) {
    throw new LifeboatError('VERIFY_FAILED', `${what} is damaged: ${(err as Error).message}`);
  }
  const nl = raw.indexOf(10);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(raw.subarray(0, nl).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new LifeboatError('VERIFY_FAILED', `${what} has no readable header`);
  }
  const payload = raw.subarray(nl + 1);
  if (payload.length !== header.payloadBytes || sha256(payload) !== header.payloadSha256) {
    throw new LifeboatError(
      'VERIFY_FAILED',
      `${what}: payload of ${payload.length} bytes, sha256 ${sha256(payload)}; its header says ${String(header.payloadBytes)} bytes, sha256 ${String(header.payloadSha256)}`,
    );
  }
  return { header, payload };
}
