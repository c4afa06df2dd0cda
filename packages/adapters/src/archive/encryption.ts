// age encryption of archive streams (npm age-encryption, the format of the `age` command),
// and the identity files that decrypt them.
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { LifeboatError } from '@lifeboat/domain/errors';
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';

type Bytes = AsyncIterable<Uint8Array>;

function toWeb(source: Bytes): WebReadableStream<Uint8Array> {
  return Readable.toWeb(Readable.from(source, { objectMode: false })) as WebReadableStream<Uint8Array>;
}

/** Encrypts a byte stream to every recipient (`age1…`). */
export async function* encryptStream(source: Bytes, recipients: readonly string[]): AsyncGenerator<Uint8Array> {
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  const out = await e.encrypt(toWeb(source) as unknown as ReadableStream<Uint8Array>);
  yield* Readable.fromWeb(out as unknown as WebReadableStream<Uint8Array>);
}

/** Decrypts an age byte stream with the identities (`AGE-SECRET-KEY-1…`). */
export async function* decryptStream(source: Bytes, identities: readonly string[]): AsyncGenerator<Uint8Array> {
  if (identities.length === 0) {
    throw new LifeboatError('INVALID_CONFIG', 'the archive is encrypted and no age identity is configured', {
      hint: 'set encryption.identityFile in lifeboat.yaml, or LIFEBOAT_AGE_IDENTITY_FILE',
    });
  }
  const d = new Decrypter();
  for (const id of identities) d.addIdentity(id);
  let out: ReadableStream<Uint8Array>;
  try {
    out = await d.decrypt(toWeb(source) as unknown as ReadableStream<Uint8Array>);
  } catch (err) {
    throw new LifeboatError('ENCRYPTION_ERROR', `cannot decrypt the archive: ${(err as Error).message}`, {
      hint: 'is the identity file the one matching the recipients in the manifest?',
    });
  }
  try {
    yield* Readable.fromWeb(out as unknown as WebReadableStream<Uint8Array>);
  } catch (err) {
    if (err instanceof LifeboatError) throw err;
    throw new LifeboatError('VERIFY_FAILED', `encrypted archive is damaged: ${(err as Error).message}`);
  }
}

/** Reads the identities of an age identity file: one `AGE-SECRET-KEY-1…` per line, `#` comments. */
export async function readIdentityFile(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `cannot read age identity file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      { hint: 'check encryption.identityFile in lifeboat.yaml, or LIFEBOAT_AGE_IDENTITY_FILE' },
    );
  }
  const ids = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith('AGE-SECRET-KEY-'));
  if (ids.length === 0) {
    throw new LifeboatError('INVALID_CONFIG', `age identity file ${path} holds no AGE-SECRET-KEY line`);
  }
  return ids;
}

/** A new X25519 key pair, as the `age-keygen` command writes it. */
export async function generateAgeKeyPair(): Promise<{ identity: string; recipient: string; file: string }> {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const file = `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`;
  return { identity, recipient, file };
}
