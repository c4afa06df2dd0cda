import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { archiveLimits, LifeboatError, UNLISTED_ENTRY_LIMIT } from '@lifeboat/domain';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../object-store/fs.js';
import { generateAgeKeyPair } from './encryption.js';
import { extractEntries } from './extract.js';
import { openArchive, readArchiveStream, writeArchive } from './pipeline.js';
import { type TarSourceEntry, writeTar } from './tar.js';

async function* chunks(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function bufferEntry(path: string, body: Buffer, mode = 0o644): TarSourceEntry {
  return {
    path,
    size: body.length,
    mode,
    mtime: new Date('2025-08-29T10:00:00Z'),
    open: async function* () {
      // Hand the bytes out in uneven chunks, as a file stream would.
      for (let i = 0; i < body.length; i += 70_001) yield body.subarray(i, i + 70_001);
    },
  };
}

let dir: string;
let store: FsObjectStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-archive-'));
  store = new FsObjectStore(join(dir, 'store'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const files: Record<string, Buffer> = {
  'database/trading.db': randomBytes(3 * 1024 * 1024 + 17),
  'state/kill_switch_state.json': Buffer.from('{"state":"OFF","events":[],"last_updated":"2025-08-29T10:00:00Z"}\n'),
  'state/shadow_orders.jsonl': Buffer.from('{"order_id":"a"}\n{"order_id":"b"}\n'),
  'reports/daily/2025-08-28.json': Buffer.from('{"pnl":"12.50"}'),
  'config/.env': Buffer.from('EXCHANGE_API_SECRET=s3cr3t-value\n'),
  [`audit/${'deep/'.repeat(30)}audit.jsonl`]: Buffer.from('{"event":"start"}\n'),
  'state/empty.json': Buffer.alloc(0),
};

async function writeAll(key: string, recipients: string[] = []) {
  return writeArchive(store, key, {
    entries: Object.entries(files).map(([p, b]) => bufferEntry(p, b)),
    recipients,
    trailer: (written) => ({ path: 'manifest.json', body: Buffer.from(JSON.stringify({ entries: written })) }),
  });
}

async function listDir(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(root, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listDir(root, rel)));
    else out.push(rel);
  }
  return out.sort();
}

describe('archive pipeline', () => {
  it('writes an archive that GNU tar lists and extracts byte for byte, manifest last', async () => {
    const written = await writeAll('t/archive.tar.gz');
    expect(written.entries.map((e) => e.path)).toEqual(Object.keys(files));
    for (const e of written.entries) expect(e.sha256).toBe(sha(files[e.path] as Buffer));

    const archivePath = join(dir, 'store', 't', 'archive.tar.gz');
    const stored = readFileSync(archivePath);
    expect(stored.length).toBe(written.size);
    expect(sha(stored)).toBe(written.sha256);

    const listed = execFileSync('tar', ['-tzf', archivePath], { encoding: 'utf8' }).trim().split('\n');
    expect(listed).toEqual([...Object.keys(files), 'manifest.json']);

    const out = join(dir, 'gnu');
    await mkdir(out);
    execFileSync('tar', ['-xzf', archivePath, '-C', out]);
    for (const [p, body] of Object.entries(files)) expect(sha(await readFile(join(out, p)))).toBe(sha(body));
  });

  it('encrypts so that the age command decrypts and tar extracts', async () => {
    const keys = await generateAgeKeyPair();
    const identityFile = join(dir, 'identity.txt');
    await writeFile(identityFile, keys.file, { mode: 0o600 });
    await writeAll('t/archive.tar.gz.age', [keys.recipient]);
    const archivePath = join(dir, 'store', 't', 'archive.tar.gz.age');
    const raw = readFileSync(archivePath);
    expect(raw.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    // The secret must not be readable in the stored bytes.
    expect(raw.includes(Buffer.from('s3cr3t-value'))).toBe(false);

    const out = join(dir, 'age-out');
    await mkdir(out);
    const tarball = join(dir, 'decrypted.tar.gz');
    execFileSync('age', ['--decrypt', '-i', identityFile, '-o', tarball, archivePath]);
    execFileSync('tar', ['-xzf', tarball, '-C', out]);
    expect(sha(await readFile(join(out, 'config/.env')))).toBe(sha(files['config/.env'] as Buffer));
    expect(sha(await readFile(join(out, 'database/trading.db')))).toBe(sha(files['database/trading.db'] as Buffer));
  });

  it('reads back every entry with its checksum, decrypting with the identity', async () => {
    const keys = await generateAgeKeyPair();
    const written = await writeAll('t/a.tar.gz.age', [keys.recipient]);
    const opened = await openArchive(store, 't/a.tar.gz.age', { encrypted: true, identities: [keys.identity] });
    const seen: Record<string, string> = {};
    for await (const entry of opened.entries) {
      const chunks: Buffer[] = [];
      for await (const c of entry.body) chunks.push(c);
      seen[entry.path] = sha(Buffer.concat(chunks));
    }
    for (const [p, body] of Object.entries(files)) expect(seen[p]).toBe(sha(body));
    expect(opened.digest).toEqual({ size: written.size, sha256: written.sha256 });
  });

  it('refuses to decrypt without an identity, or with the wrong one', async () => {
    const keys = await generateAgeKeyPair();
    const other = await generateAgeKeyPair();
    await writeAll('t/a.tar.gz.age', [keys.recipient]);
    const drain = async (identities: string[]) => {
      const opened = await openArchive(store, 't/a.tar.gz.age', { encrypted: true, identities });
      for await (const _ of opened.entries) {
        // read through
      }
    };
    await expect(drain([])).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    await expect(drain([other.identity])).rejects.toMatchObject({ code: 'ENCRYPTION_ERROR' });
  });

  it('fails when a file shrinks while it is archived, and leaves no object', async () => {
    const liar: TarSourceEntry = { ...bufferEntry('state/x', Buffer.alloc(10)), size: 20 };
    await expect(writeArchive(store, 't/bad.tar.gz', { entries: [liar] })).rejects.toThrow(/shrank/);
    expect(await store.head('t/bad.tar.gz')).toBeNull();
  });

  it('reports a flipped byte in the compressed stream as a damaged archive', async () => {
    await writeAll('t/archive.tar.gz');
    const archivePath = join(dir, 'store', 't', 'archive.tar.gz');
    const bytes = readFileSync(archivePath);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0xff;
    const opened = readArchiveStream(chunks(bytes), { encrypted: false });
    const read = async () => {
      for await (const e of opened.entries)
        for await (const _ of e.body) {
          // read through
        }
    };
    await expect(read()).rejects.toBeInstanceOf(LifeboatError);
  });
});

describe('extraction safety', () => {
  async function gnuTarball(build: (src: string) => Promise<string[]>, extraArgs: string[] = []): Promise<Buffer> {
    const src = await mkdtemp(join(dir, 'src-'));
    const names = await build(src);
    const out = join(dir, `evil-${Date.now()}.tar.gz`);
    execFileSync('tar', ['-czf', out, ...extraArgs, '-C', src, ...names]);
    return readFileSync(out);
  }

  async function rawTar(entries: Array<[string, Buffer]>): Promise<Buffer> {
    const raw: Buffer[] = [];
    for await (const block of writeTar(
      entries.map(([p, b]) => bufferEntry(p, b)),
      () => {},
    ))
      raw.push(block);
    return Buffer.concat(raw);
  }

  async function extractInto(tarball: Buffer, dest: string) {
    const opened = readArchiveStream(chunks(tarball), { encrypted: false });
    return extractEntries(opened.entries, dest);
  }

  it('refuses entries with ".." and writes nothing outside the destination', async () => {
    // GNU tar will not write "..", so the hostile archive is made with raw headers.
    const raw: Buffer[] = [];
    for await (const block of writeTar([bufferEntry('a/../../escape.txt', Buffer.from('owned'))], () => {}))
      raw.push(block);
    const tarball = gzipSync(Buffer.concat(raw));
    const dest = join(dir, 'dest');
    await mkdir(dest);
    await expect(extractInto(tarball, dest)).rejects.toMatchObject({
      code: 'ARCHIVE_UNSAFE',
      message: expect.stringContaining('a/../../escape.txt'),
    });
    expect(await readdir(dest)).toEqual([]);
    expect(existsSync(join(dir, 'escape.txt'))).toBe(false);
  });

  it('refuses absolute paths', async () => {
    const victim = join(dir, 'victim.txt');
    await writeFile(victim, 'original');
    const tarball = await gnuTarball(async () => [victim], ['--absolute-names']);
    const dest = join(dir, 'dest');
    await mkdir(dest);
    await expect(extractInto(tarball, dest)).rejects.toMatchObject({ code: 'ARCHIVE_UNSAFE' });
    expect(readFileSync(victim, 'utf8')).toBe('original');
  });

  it('refuses symbolic links and hard links, naming the entry', async () => {
    const symlinked = await gnuTarball(async (src) => {
      await symlink('/etc/passwd', join(src, 'link'));
      return ['link'];
    });
    const dest = join(dir, 'dest');
    await mkdir(dest);
    await expect(extractInto(symlinked, dest)).rejects.toThrow(/"link" refused: SymbolicLink/);
    const hardlinked = await gnuTarball(async (src) => {
      await writeFile(join(src, 'f'), 'x');
      execFileSync('ln', [join(src, 'f'), join(src, 'g')]);
      return ['f', 'g'];
    });
    const dest2 = join(dir, 'dest2');
    await mkdir(dest2);
    await expect(extractInto(hardlinked, dest2)).rejects.toThrow(/"g" refused: Link/);
    expect(existsSync(join(dest2, 'g'))).toBe(false);
  });

  it('refuses a decompression bomb at its tar header, before a byte of it is written', async () => {
    // 64 MiB of zeros compress to about 64 KiB; the manifest said the entry held 1 KiB.
    const bomb = gzipSync(Buffer.concat([await rawTar([['database/trading.db', Buffer.alloc(64 << 20)]])]));
    expect(bomb.length).toBeLessThan(1 << 20);
    const limits = archiveLimits({ entries: [{ path: 'database/trading.db', size: 1024 }] as never });
    const dest = join(dir, 'dest');
    await mkdir(dest);
    const opened = readArchiveStream(chunks(bomb), { encrypted: false, limits });
    await expect(extractEntries(opened.entries, dest)).rejects.toMatchObject({
      code: 'ARCHIVE_UNSAFE',
      message: expect.stringContaining(
        '"database/trading.db" refused: it holds 67108864 bytes, more than the 1024 allowed',
      ),
    });
    expect(await readdir(dest)).toEqual([]);
  });

  it('refuses entries the manifest does not list once they pass the unlisted limit, and an archive larger than its manifest in all', async () => {
    const limits = { entryBytes: () => 10, totalBytes: 25 };
    const many = gzipSync(
      await rawTar([
        ['a', Buffer.alloc(10)],
        ['b', Buffer.alloc(10)],
        ['c', Buffer.alloc(10)],
      ]),
    );
    const dest = join(dir, 'dest');
    await mkdir(dest);
    const opened = readArchiveStream(chunks(many), { encrypted: false, limits });
    await expect(extractEntries(opened.entries, dest)).rejects.toThrow(
      /"c" refused: the archive would expand to more than the 25 bytes allowed/,
    );
    expect(await readdir(dest)).toEqual(['a', 'b']);
    expect(archiveLimits({ entries: [] }).entryBytes('manifest.json')).toBe(UNLISTED_ENTRY_LIMIT);
  });

  it('refuses a mapping that points outside the destination', async () => {
    await writeAll('t/archive.tar.gz');
    const opened = await openArchive(store, 't/archive.tar.gz', { encrypted: false });
    const dest = join(dir, 'dest');
    await mkdir(dest);
    await expect(extractEntries(opened.entries, dest, { map: () => '../outside' })).rejects.toMatchObject({
      code: 'ARCHIVE_UNSAFE',
    });
    expect(existsSync(join(dir, 'outside'))).toBe(false);
  });

  it('extracts a safe archive completely', async () => {
    await writeAll('t/archive.tar.gz');
    const opened = await openArchive(store, 't/archive.tar.gz', { encrypted: false });
    const dest = join(dir, 'dest');
    await mkdir(dest);
    const out = await extractEntries(opened.entries, dest);
    expect(out.map((f) => f.path).sort()).toEqual([...Object.keys(files), 'manifest.json'].sort());
    expect(await listDir(dest)).toEqual([...Object.keys(files), 'manifest.json'].sort());
  });

  it("keeps each file's modification time from the archive", async () => {
    const src = await mkdtemp(join(dir, 'src-'));
    writeFileSync(join(src, 'report.json'), '{}');
    const then = new Date('2024-02-29T12:34:56Z');
    utimesSync(join(src, 'report.json'), then, then);
    const out = join(dir, `times-${Date.now()}.tar.gz`);
    execFileSync('tar', ['-czf', out, '-C', src, 'report.json']);
    const dest = await mkdtemp(join(dir, 'dest-'));
    await extractInto(readFileSync(out), dest);
    expect(statSync(join(dest, 'report.json')).mtime.toISOString()).toBe(then.toISOString());
  });
});
