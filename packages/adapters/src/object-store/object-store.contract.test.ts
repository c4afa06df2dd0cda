// One contract for every ObjectStore backend: the same cases run against a directory and a
// real S3 server from the test stack, plus the checks only one backend has.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { type ByteStream, LifeboatError, type ObjectInfo, type ObjectStore } from '@lifeboat/domain';
import { getTestStack, stackStoreConfig, type TestStack, uniqueName } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore, INCOMPLETE_DIR, validateKey } from './fs.js';
import { createObjectStore } from './index.js';
import { S3ObjectStore } from './s3.js';

const MiB = 1024 * 1024;

interface Harness {
  store: ObjectStore;
  /** Everything the backend holds for this store, in-progress leftovers included. */
  rawKeys(): Promise<string[]>;
  /** Leaves behind what a process killed in the middle of writing key would leave. */
  simulateCrash(key: string): Promise<void>;
  /** How many parts key was stored in, where the backend tells (MinIO's and AWS's ETags end "-<parts>"; s3rver's do not). */
  partCount?(key: string): Promise<number | undefined>;
}

interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  create(): Promise<Harness>;
}

const fsBackend = (): Backend => {
  const dirs: string[] = [];
  return {
    name: 'fs',
    async setup() {},
    async teardown() {
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    },
    async create() {
      const root = await mkdtemp(join(tmpdir(), 'lifeboat-objstore-'));
      dirs.push(root);
      return {
        store: new FsObjectStore(root),
        async rawKeys() {
          const entries = await readdir(root, { recursive: true, withFileTypes: true });
          return entries
            .filter((e) => e.isFile())
            .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
            .sort();
        },
        async simulateCrash(key) {
          // What FsObjectStore.put leaves when its process dies mid-write (see fs.ts's header).
          const id = `crashed-${randomBytes(4).toString('hex')}`;
          await mkdir(join(root, INCOMPLETE_DIR), { recursive: true });
          const record = { key, startedAt: new Date().toISOString(), pid: 999_999 };
          await writeFile(join(root, INCOMPLETE_DIR, `${id}.json`), JSON.stringify(record));
          await writeFile(join(root, INCOMPLETE_DIR, `${id}.part`), randomBytes(1024));
        },
      };
    },
  };
};

const s3Backend = (): Backend => {
  let stack: TestStack;
  let bucket: string;
  let client: S3Client;
  const stores: S3ObjectStore[] = [];
  return {
    name: 's3',
    async setup() {
      stack = await getTestStack();
      bucket = await stack.s3.createBucket('objstore');
      client = new S3Client({
        endpoint: stack.s3.endpoint,
        region: stack.s3.region,
        forcePathStyle: true,
        credentials: { accessKeyId: stack.s3.accessKeyId, secretAccessKey: stack.s3.secretAccessKey },
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
    },
    async teardown() {
      for (const store of stores) store.destroy();
      client?.destroy();
      await stack?.close();
    },
    async create() {
      // A prefix without the trailing slash: the store must add it.
      const prefix = uniqueName('run');
      const store = new S3ObjectStore(stackStoreConfig(stack, bucket, prefix));
      stores.push(store);
      return {
        store,
        async partCount(key) {
          const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/${key}` }));
          const parts = /-(\d+)"?$/.exec(head.ETag ?? '')?.[1];
          return parts === undefined ? undefined : Number(parts);
        },
        async rawKeys() {
          const page = await client.send(new ListObjectsCommand({ Bucket: bucket, Prefix: `${prefix}/` }));
          return (page.Contents ?? []).map((o) => (o.Key ?? '').slice(prefix.length + 1)).sort();
        },
        async simulateCrash(key) {
          // What S3ObjectStore.put leaves when its process dies between parts (see s3.ts's header).
          const Key = `${prefix}/${key}`;
          const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }));
          await client.send(
            new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: 1, Body: randomBytes(5 * MiB) }),
          );
          const marker = { key: Key, uploadId: UploadId, startedAt: new Date().toISOString() };
          await client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: `${Key}.upload-in-progress.json`,
              Body: Buffer.from(JSON.stringify(marker)),
            }),
          );
        },
      };
    },
  };
};

async function collect(stream: ByteStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function listAll(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of store.list(prefix)) out.push(info);
  return out;
}

async function keysOf(store: ObjectStore, prefix: string): Promise<string[]> {
  return (await listAll(store, prefix)).map((o) => o.key);
}

/** Random bytes in chunks, hashing as they go, so the caller can compare without keeping them. */
function randomSource(totalBytes: number, chunkBytes = MiB): { stream: ByteStream; sha256: () => string } {
  const hash = createHash('sha256');
  async function* generate() {
    for (let sent = 0; sent < totalBytes; sent += chunkBytes) {
      const chunk = randomBytes(Math.min(chunkBytes, totalBytes - sent));
      hash.update(chunk);
      yield chunk;
    }
  }
  return { stream: generate(), sha256: () => hash.digest('hex') };
}

/** Sends some bytes, then fails, as a broken pipe or a crashing producer would. */
async function* failingAfter(bytes: number): AsyncGenerator<Uint8Array> {
  for (let sent = 0; sent < bytes; sent += MiB) yield randomBytes(MiB);
  throw new Error('source broke after sending some data');
}

/** Sends some bytes, then waits forever: a write that is still going on. */
async function* stallingAfter(bytes: number): AsyncGenerator<Uint8Array> {
  for (let sent = 0; sent < bytes; sent += MiB) yield randomBytes(MiB);
  await new Promise(() => {});
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const isLeftover = (key: string) => key.startsWith(`${INCOMPLETE_DIR}/`) || key.endsWith('.upload-in-progress.json');

for (const backend of [fsBackend(), s3Backend()]) {
  describe(`ObjectStore contract: ${backend.name}`, () => {
    beforeAll(() => backend.setup());
    afterAll(() => backend.teardown());

    it('round-trips bytes and streams', async () => {
      const { store } = await backend.create();
      const bytes = randomBytes(64 * 1024);
      expect(await store.put('a/bytes.bin', bytes)).toEqual({ size: bytes.length });
      expect(Buffer.from(await store.getBytes('a/bytes.bin')).equals(bytes)).toBe(true);
      expect(await store.put('a/stream.txt', Readable.from(['hello ', 'object ', 'store']))).toEqual({ size: 18 });
      expect((await collect(await store.get('a/stream.txt'))).toString()).toBe('hello object store');
      expect(await store.head('a/bytes.bin')).toMatchObject({ key: 'a/bytes.bin', size: bytes.length });
      expect(await store.put('a/empty', new Uint8Array(0))).toEqual({ size: 0 });
      expect((await store.getBytes('a/empty')).length).toBe(0);
    });

    it('streams a 12 MiB body through 5 MiB parts and reads back the same sha256', async () => {
      const { store, rawKeys, partCount } = await backend.create();
      const total = 12 * MiB + 12_345;
      const source = randomSource(total, 700 * 1024);
      const progress: number[] = [];
      const result = await store.put('big/archive.tar.gz', source.stream, { onProgress: (n) => progress.push(n) });
      expect(result.size).toBe(total);
      // Reported as the write goes (per chunk, or per part for S3), never backwards.
      expect(progress.length).toBeGreaterThan(1);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      expect(progress.at(-1)).toBe(total);
      const readBack = createHash('sha256');
      for await (const chunk of await store.get('big/archive.tar.gz')) readBack.update(chunk);
      expect(readBack.digest('hex')).toBe(source.sha256());
      expect(await store.head('big/archive.tar.gz')).toMatchObject({ size: total });
      expect(await rawKeys()).toEqual(['big/archive.tar.gz']);
      const parts = await partCount?.('big/archive.tar.gz');
      if (parts !== undefined) expect(parts).toBe(3);
    });

    it('overwrites an object whole', async () => {
      const { store } = await backend.create();
      await store.put('state.json', Buffer.from('{"v":1}'));
      await store.put('state.json', Buffer.from('{"v":2,"longer":true}'));
      expect(Buffer.from(await store.getBytes('state.json')).toString()).toBe('{"v":2,"longer":true}');
    });

    it('lists in key order and by prefix', async () => {
      const { store } = await backend.create();
      // '.' and ' ' sort before '/', so "a.b" and "a b" come before everything under "a/".
      const keys = ['b', 'a/c', 'a.b', 'a/b/deep', 'a b', 'A', 'a/b0', 'z/1'];
      for (const key of keys) await store.put(key, Buffer.from(key));
      expect(await keysOf(store, '')).toEqual(['A', 'a b', 'a.b', 'a/b/deep', 'a/b0', 'a/c', 'b', 'z/1']);
      expect(await keysOf(store, 'a/')).toEqual(['a/b/deep', 'a/b0', 'a/c']);
      expect(await keysOf(store, 'a/b')).toEqual(['a/b/deep', 'a/b0']);
      expect(await keysOf(store, 'a')).toEqual(['a b', 'a.b', 'a/b/deep', 'a/b0', 'a/c']);
      expect(await keysOf(store, 'nothing/')).toEqual([]);
      const [first] = await listAll(store, 'z/');
      expect(first).toMatchObject({ key: 'z/1', size: 3 });
      expect(first?.lastModified).toBeInstanceOf(Date);
    });

    it('hides a write in progress from list, get and head until it completes', async () => {
      const { store, rawKeys } = await backend.create();
      await store.put('done/one', Buffer.from('1'));
      const abort = new AbortController();
      // 6 MiB: past one part, so the S3 store has begun its multipart upload and written its marker.
      const writing = store.put('done/two', stallingAfter(6 * MiB), { signal: abort.signal });
      writing.catch(() => {});
      await waitFor(async () => (await rawKeys()).some(isLeftover));
      expect(await keysOf(store, '')).toEqual(['done/one']);
      expect(await store.head('done/two')).toBeNull();
      expect(await caught(store.getBytes('done/two'))).toMatchObject({ code: 'NOT_FOUND' });

      abort.abort();
      const err = await caught(writing);
      expect(err).toMatchObject({ name: 'AbortError' });
      await waitFor(async () => !(await rawKeys()).some(isLeftover));
      expect(await keysOf(store, '')).toEqual(['done/one']);
    });

    it('leaves nothing listed or readable when the source fails midway', async () => {
      const { store, rawKeys } = await backend.create();
      const err = await caught(store.put('broken/archive', failingAfter(7 * MiB)));
      // The body's own error comes back as it is: the store did not fail, its input did.
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toBe('source broke after sending some data');
      expect(await keysOf(store, '')).toEqual([]);
      expect(await store.head('broken/archive')).toBeNull();
      expect(await caught(store.get('broken/archive'))).toMatchObject({ code: 'NOT_FOUND' });
      expect(await rawKeys()).toEqual([]);
    });

    it('fails get and getBytes of a missing key with NOT_FOUND naming the key', async () => {
      const { store } = await backend.create();
      for (const read of [() => store.get('missing/manifest.json'), () => store.getBytes('missing/manifest.json')]) {
        const err = await caught(read());
        expect(err).toBeInstanceOf(LifeboatError);
        expect(err).toMatchObject({ code: 'NOT_FOUND', retryable: false });
        expect((err as LifeboatError).message).toContain('missing/manifest.json');
        expect((err as LifeboatError).hint).toBeTruthy();
      }
      expect(await store.head('missing/manifest.json')).toBeNull();
    });

    it('deletes idempotently', async () => {
      const { store } = await backend.create();
      await store.put('x/y', Buffer.from('y'));
      await store.delete('x/y');
      await store.delete('x/y');
      await store.delete('never/there');
      expect(await store.head('x/y')).toBeNull();
      expect(await keysOf(store, '')).toEqual([]);
    });

    it("removes a crashed upload's leftovers under the prefix once they are old enough", async () => {
      const { store, rawKeys, simulateCrash } = await backend.create();
      await store.put('t1/backups/kept', Buffer.from('complete'));
      await simulateCrash('t1/backups/20251125T020000Z-full-3f9a/archive.tar.gz');
      await simulateCrash('t2/backups/other/archive.tar.gz');
      expect((await rawKeys()).filter(isLeftover).length).toBeGreaterThan(0);
      expect(await keysOf(store, '')).toEqual(['t1/backups/kept']);

      // Younger than the threshold: a write that may still be going on is left alone.
      expect(await store.cleanupIncomplete('t1/', 60 * 60_000)).toEqual([]);

      expect(await store.cleanupIncomplete('t1/', 0)).toEqual(['t1/backups/20251125T020000Z-full-3f9a/archive.tar.gz']);
      expect(await keysOf(store, '')).toEqual(['t1/backups/kept']);
      // The other prefix's leftovers are still there until a cleanup covers them.
      expect((await rawKeys()).filter(isLeftover).length).toBeGreaterThan(0);
      expect(await store.cleanupIncomplete('', 0)).toEqual(['t2/backups/other/archive.tar.gz']);
      expect((await rawKeys()).filter(isLeftover)).toEqual([]);
      expect(await keysOf(store, '')).toEqual(['t1/backups/kept']);
      expect(await store.cleanupIncomplete('', 0)).toEqual([]);
    });

    it('rejects keys that could leave the store', async () => {
      const { store, rawKeys } = await backend.create();
      for (const key of ['../escape', 'a/../../escape', '/etc/passwd', 'a\\b', '']) {
        expect(await caught(store.put(key, Buffer.from('x')))).toMatchObject({ code: 'INVALID_REQUEST' });
        expect(await caught(store.getBytes(key))).toMatchObject({ code: 'INVALID_REQUEST' });
      }
      expect(await caught(listAll(store, '../'))).toMatchObject({ code: 'INVALID_REQUEST' });
      expect(await rawKeys()).toEqual([]);
    });
  });
}

describe('S3ObjectStore on a real S3 server', () => {
  let stack: TestStack;
  let bucket: string;
  const stores: S3ObjectStore[] = [];
  const open = (options: ConstructorParameters<typeof S3ObjectStore>[0]) => {
    const store = new S3ObjectStore(options);
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    stack = await getTestStack();
    bucket = await stack.s3.createBucket('objprefix');
  });
  afterAll(async () => {
    for (const store of stores) store.destroy();
    await stack?.close();
  });

  it('joins keys to the prefix the same way whether it is "", "prod" or "prod/"', async () => {
    const bare = open(stackStoreConfig(stack, bucket, 'prod'));
    const slashed = open(stackStoreConfig(stack, bucket, 'prod/'));
    const root = open(stackStoreConfig(stack, bucket, ''));
    expect(bare.location).toBe(`s3://${bucket}/prod/`);
    await bare.put('demo/manifest.json', Buffer.from('{}'));
    expect(await keysOf(slashed, '')).toEqual(['demo/manifest.json']);
    expect(await keysOf(root, '')).toEqual(['prod/demo/manifest.json']);
    expect(Buffer.from(await root.getBytes('prod/demo/manifest.json')).toString()).toBe('{}');
    const err = await caught(bare.getBytes('demo/other.json'));
    expect((err as LifeboatError).message).toContain(`s3://${bucket}/prod/demo/other.json`);
  });

  it('passes check() on a bucket that exists and names a missing bucket with STORE_ERROR', async () => {
    await open(stackStoreConfig(stack, bucket)).check();
    const missing = open(stackStoreConfig(stack, 'no-such-bucket-here'));
    const err = await caught(missing.check());
    expect(err).toMatchObject({ code: 'STORE_ERROR' });
    expect((err as LifeboatError).message).toContain('no-such-bucket-here');
    const putErr = await caught(missing.put('k', Buffer.from('x')));
    expect(putErr).toMatchObject({ code: 'STORE_ERROR' });
    expect((putErr as LifeboatError).message).toContain('no-such-bucket-here');
  });

  it('aborts the upload and removes its marker when the server rejects a part', async () => {
    // A proxy that passes everything to the S3 server but refuses part 2 of any upload.
    const proxy = await rejectingProxy(stack.s3.endpoint, (url) => /[?&]partNumber=2(&|$)/.test(url));
    try {
      const store = open({ ...stackStoreConfig(stack, bucket, 'partfail'), endpoint: proxy.endpoint });
      const err = await caught(store.put('big', randomSource(16 * MiB).stream));
      expect(err).toMatchObject({ code: 'STORE_ERROR' });
      expect((err as LifeboatError).message).toContain(`uploading part 2 of s3://${bucket}/partfail/big`);
      const direct = open(stackStoreConfig(stack, bucket, ''));
      expect(await keysOf(direct, 'partfail/')).toEqual([]);
      expect(proxy.seen.some((line) => line.startsWith('DELETE') && line.includes('.upload-in-progress.json'))).toBe(
        true,
      );
      expect(proxy.seen.some((line) => line.startsWith('DELETE') && line.includes('uploadId='))).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('fails fast with STORE_UNREACHABLE naming the endpoint when nothing listens there', async () => {
    const port = await closedPort();
    const endpoint = `http://127.0.0.1:${port}`;
    const store = open({ ...stackStoreConfig(stack, bucket), endpoint });
    const started = Date.now();
    for (const attempt of [() => store.check(), () => store.put('k', Buffer.from('x')), () => store.getBytes('k')]) {
      const err = await caught(attempt());
      expect(err).toMatchObject({ code: 'STORE_UNREACHABLE', retryable: true });
      expect((err as LifeboatError).message).toContain(endpoint);
      expect((err as LifeboatError).message).toContain(bucket);
      expect((err as LifeboatError).message).not.toContain(stack.s3.secretAccessKey);
    }
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('FsObjectStore', () => {
  it('names its directory as a file URL and fails check() with STORE_UNREACHABLE on a path that is a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-objstore-'));
    try {
      const store = new FsObjectStore(join(dir, 'store'));
      expect(store.location).toBe(`file://${join(dir, 'store')}`);
      await store.check();
      await writeFile(join(dir, 'a-file'), 'not a directory');
      const err = await caught(new FsObjectStore(join(dir, 'a-file')).check());
      expect(err).toMatchObject({ code: 'STORE_UNREACHABLE' });
      expect((err as LifeboatError).message).toContain(join(dir, 'a-file'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('validateKey', () => {
  it('accepts relative slash-separated keys', () => {
    for (const key of ['a', 'a/b.c', 'demo/backups/20251125T020000Z-full-3f9a/manifest.json', 'x/..y', 'a b/é']) {
      expect(validateKey(key)).toBe(key);
    }
  });

  it('rejects keys that escape, are absolute, use backslashes or take reserved names', () => {
    const bad = [
      '',
      '..',
      '../x',
      'a/../b',
      'a/..',
      './a',
      '/abs',
      'C:/x',
      'a\\b',
      'a//b',
      'a/',
      'a\nb',
      '.incomplete/x',
      'x.upload-in-progress.json',
    ];
    for (const key of bad) {
      expect(() => validateKey(key), key).toThrow(LifeboatError);
      try {
        validateKey(key);
      } catch (err) {
        expect((err as LifeboatError).code).toBe('INVALID_REQUEST');
      }
    }
  });
});

describe('createObjectStore', () => {
  it('resolves an fs path against the base directory', () => {
    const store = createObjectStore({ type: 'fs', path: 'data/store' }, '/srv/lifeboat');
    expect(store).toBeInstanceOf(FsObjectStore);
    expect(store.location).toBe('file:///srv/lifeboat/data/store');
  });

  it('builds an S3 store whose location carries no credentials', () => {
    const store = createObjectStore(
      {
        type: 's3',
        endpoint: 'http://127.0.0.1:9000',
        region: 'us-east-1',
        bucket: 'backups',
        prefix: 'prod',
        forcePathStyle: true,
        accessKeyIdEnv: 'MY_KEY',
        secretAccessKeyEnv: 'MY_SECRET',
        partSizeMiB: 16,
      },
      '/srv',
      { MY_KEY: 'AKIAEXAMPLE', MY_SECRET: 'very-secret' },
    );
    expect(store).toBeInstanceOf(S3ObjectStore);
    expect(store.location).toBe('s3://backups/prod/');
    expect(JSON.stringify(store.location)).not.toContain('very-secret');
    (store as S3ObjectStore).destroy();
  });
});

/** A port nothing listens on: bound by us, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** An HTTP proxy in front of an S3 server that answers 400 InvalidPart to requests matching refuse. */
async function rejectingProxy(
  target: string,
  refuse: (url: string) => boolean,
): Promise<{ endpoint: string; seen: string[]; close(): Promise<void> }> {
  const upstream = new URL(target);
  const seen: string[] = [];
  const server: Server = createHttpServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (refuse(req.url ?? '')) {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/xml' });
      res.end(
        '<?xml version="1.0"?><Error><Code>InvalidPart</Code><Message>refused by the test proxy</Message></Error>',
      );
      return;
    }
    // The Host header goes through unchanged so the request signature still matches.
    const forward = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
