// `verify --file`: archives handed over outside any store, checked as `verify --full` checks a stored one.
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, readManifest, silentLogger, verifyArchiveFile } from '../src/index.js';
import { type Fixture, fixture } from './helpers.js';

let fx: Fixture | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
});

/** Backs the fixture up and copies its archive out of the store, as a person would by hand. */
async function looseArchive(f: Fixture) {
  const { backupId } = await backup({ target: 'demo', reason: 'test' }, { runtime: f.runtime, log: silentLogger });
  const manifest = await readManifest(f.runtime, 'demo', backupId);
  const file = join(f.dir, `handed-over-${backupId}${manifest.archive.encryption ? '.tar.gz.age' : '.tar.gz'}`);
  await copyFile(join(f.dir, 'store', manifest.archive.key), file);
  return { backupId, manifest, file };
}

const noIdentity = async () => [];

describe('verify --file', () => {
  it('checks every entry of a loose archive against the manifest it carries, and the archive checksum with --manifest', async () => {
    fx = await fixture();
    const { backupId, manifest, file } = await looseArchive(fx);

    const inside = await verifyArchiveFile(file, { identities: noIdentity });
    expect(inside.problems).toEqual([]);
    expect(inside).toMatchObject({ ok: true, backupId, manifest: 'inside the archive', encrypted: false });
    const names = inside.checks.map((c) => c.name);
    for (const e of manifest.entries) expect(names).toContain(`entry ${e.path}`);
    expect(names).toEqual(expect.arrayContaining(['database integrity', 'database row counts']));
    // The manifest inside has no archive checksum: only a stored one can give it.
    expect(names).not.toContain('archive checksum');

    const given = await verifyArchiveFile(file, { manifest, identities: noIdentity });
    expect(given).toMatchObject({
      ok: true,
      manifest: 'given',
      size: manifest.archive.size,
      sha256: manifest.archive.sha256,
    });
    expect(given.checks.find((c) => c.name === 'archive checksum')?.ok).toBe(true);
  });

  it('catches a flipped byte in the compressed archive', async () => {
    fx = await fixture();
    const { file } = await looseArchive(fx);
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] as number) ^ 0x01;
    await writeFile(file, bytes);
    const result = await verifyArchiveFile(file, { identities: noIdentity });
    expect(result.ok).toBe(false);
    expect(result.problems.length).toBeGreaterThan(0);
  });

  it('names the entry whose bytes changed when the archive itself still decompresses', async () => {
    fx = await fixture();
    const { manifest, file } = await looseArchive(fx);
    // Change one byte inside the database's file content and compress again: gzip is whole,
    // only the entry's checksum can tell.
    const tar = gunzipSync(await readFile(file));
    const dbAt = tar.indexOf(Buffer.from('database/trading.db'));
    expect(dbAt).toBeGreaterThanOrEqual(0);
    tar[dbAt + 512 + 4096 + 100] = (tar[dbAt + 512 + 4096 + 100] as number) ^ 0x01;
    await writeFile(file, gzipSync(tar));

    const result = await verifyArchiveFile(file, { identities: noIdentity });
    expect(result.ok).toBe(false);
    const db = result.checks.find((c) => c.name === 'entry database/trading.db');
    expect(db?.ok).toBe(false);
    expect(db?.detail).toMatch(/expected [0-9a-f]{64}/);
    // Against the stored manifest the archive's own checksum differs too.
    const given = await verifyArchiveFile(file, { manifest, identities: noIdentity });
    expect(given.checks.find((c) => c.name === 'archive checksum')?.ok).toBe(false);
  });

  it('decrypts with the configured identity, and refuses an encrypted archive without one', async () => {
    fx = await fixture({ encrypt: true });
    const runtime = fx.runtime;
    const { backupId, file } = await looseArchive(fx);
    const ok = await verifyArchiveFile(file, { identities: () => runtime.identities() });
    expect(ok).toMatchObject({ ok: true, encrypted: true, backupId });
    await expect(verifyArchiveFile(file, { identities: noIdentity })).rejects.toMatchObject({
      code: 'ENCRYPTION_ERROR',
      message: expect.stringContaining('no age identity is configured'),
    });
  });

  it('fails against the manifest of another backup, and refuses a file that is no archive', async () => {
    fx = await fixture();
    const first = await looseArchive(fx);
    const second = await looseArchive(fx);
    const crossed = await verifyArchiveFile(first.file, { manifest: second.manifest, identities: noIdentity });
    expect(crossed.ok).toBe(false);
    expect(crossed.checks.find((c) => c.name === 'manifest inside the archive')?.ok).toBe(false);

    const notArchive = join(fx.dir, 'manifest.json');
    await writeFile(notArchive, JSON.stringify(first.manifest));
    await expect(verifyArchiveFile(notArchive, { identities: noIdentity })).rejects.toMatchObject({
      code: 'VERIFY_FAILED',
      message: expect.stringContaining('neither a gzip archive nor an age-encrypted one'),
    });
  });
});
