// One contract for every LockProvider: the same cases run against a real Redis from the test
// stack and against lock files in a temp directory, plus the cases only one backend has.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Lease, LifeboatError, type LockProvider } from '@lifeboat/domain';
import { getTestStack, uniqueName } from '@lifeboat/testkit';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLockProvider, FileLockProvider, type FileLockRecord, RedisLockProvider } from './index.js';

interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A provider as another process would have it. */
  provider(): LockProvider;
  /** Removes the lock behind its holder's back, as an expiry or an operator would. */
  remove(name: string): Promise<void>;
  /** Puts another holder's grant in the lock. */
  overwrite(name: string, holder: string, token: number): Promise<void>;
}

const redisBackend = (): Backend => {
  const prefix = uniqueName('locktest');
  let url = '';
  let admin: Redis | undefined;
  const providers: RedisLockProvider[] = [];
  const key = (name: string) => `${prefix}:lock:${name}`;
  return {
    name: 'redis',
    async setup() {
      // Fails the run (never skips) with how to start Redis when it is missing.
      url = (await getTestStack()).redis.url;
      admin = new Redis(url, { maxRetriesPerRequest: 1 });
    },
    async teardown() {
      await Promise.all(providers.map((p) => p.close()));
      if (admin) {
        const keys = await admin.keys(`${prefix}:*`);
        if (keys.length > 0) await admin.del(...keys);
        await admin.quit();
      }
    },
    provider() {
      const provider = new RedisLockProvider({ url, prefix });
      providers.push(provider);
      return provider;
    },
    async remove(name) {
      await admin?.del(key(name));
    },
    async overwrite(name, holder, token) {
      await admin?.set(key(name), JSON.stringify({ holder, token, since: new Date().toISOString() }), 'PX', 60_000);
    },
  };
};

const fileBackend = (): Backend => {
  let dir = '';
  return {
    name: 'file',
    async setup() {
      dir = await mkdtemp(join(tmpdir(), 'lifeboat-lock-'));
    },
    async teardown() {
      await rm(dir, { recursive: true, force: true });
    },
    provider() {
      return new FileLockProvider({ dir });
    },
    async remove(name) {
      await rm(join(dir, `${name}.lock`), { force: true });
    },
    async overwrite(name, holder, token) {
      const record: FileLockRecord = {
        holder,
        token,
        since: new Date().toISOString(),
        pid: process.pid,
        host: hostname(),
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      };
      await writeFile(join(dir, `${name}.lock`), JSON.stringify(record));
    },
  };
};

let held: Lease[] = [];

afterAll(async () => {
  // getTestStack() memoises one stack per file; closing it stops what it started here.
  await (await getTestStack().catch(() => undefined))?.close();
});

afterEach(async () => {
  await Promise.all(held.map((l) => l.release()));
  held = [];
});

async function take(provider: LockProvider, name: string, holder: string, ttlMs = 5000): Promise<Lease> {
  const lease = await provider.acquire(name, holder, ttlMs);
  held.push(lease);
  return lease;
}

async function refusal(promise: Promise<unknown>): Promise<LifeboatError> {
  const err = await promise.then(
    (lease) => {
      if (lease && typeof (lease as Lease).release === 'function') held.push(lease as Lease);
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LifeboatError);
  return err as LifeboatError;
}

async function untilLost(lease: Lease, withinMs = 3000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!lease.lost && Date.now() < deadline) await sleep(25);
  expect(lease.lost).toBe(true);
}

describe.each([redisBackend(), fileBackend()])('$name lock', (backend) => {
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());

  it('refuses a second acquire with CONFLICT naming the holder, since when and its token', async () => {
    const target = uniqueName('target');
    const name = `restore:${target}`;
    const first = await take(backend.provider(), name, 'restore run-1 on ops-host', 5000);

    const err = await refusal(backend.provider().acquire(name, 'restore run-2', 5000));

    expect(err.code).toBe('CONFLICT');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(
      new RegExp(
        `^restore of ${target} is already running: held by restore run-1 on ops-host since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(token ${first.token}\\)$`,
      ),
    );
    expect(err.hint).toBeTruthy();
    expect(first.lost).toBe(false);
  });

  it('grants strictly increasing tokens across acquire and release cycles', async () => {
    const name = uniqueName('restore');
    const providers = [backend.provider(), backend.provider()];
    const tokens: number[] = [];
    for (let i = 0; i < 6; i++) {
      const lease = await take(providers[i % 2]!, name, `holder-${i}`);
      tokens.push(lease.token);
      await lease.release();
    }

    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!);
  });

  it('can be acquired again once released, and a released lease no longer asserts', async () => {
    const name = uniqueName('restore');
    const first = await take(backend.provider(), name, 'first');
    await first.release();
    await first.release();

    const second = await take(backend.provider(), name, 'second');

    expect(second.holder).toBe('second');
    expect(second.token).toBeGreaterThan(first.token);
    expect(() => first.assertHeld()).toThrow(LifeboatError);
    expect(() => second.assertHeld()).not.toThrow();
  });

  it('outlives its ttl while renewed', async () => {
    const name = uniqueName('restore');
    const lease = await take(backend.provider(), name, 'long restore', 300);

    await sleep(1000);

    expect(lease.lost).toBe(false);
    expect(() => lease.assertHeld()).not.toThrow();
    const err = await refusal(backend.provider().acquire(name, 'second', 300));
    expect(err.code).toBe('CONFLICT');
    expect(err.message).toContain('held by long restore');
  });

  it('is lost once its lock is deleted and taken by another holder, and assertHeld then throws CONFLICT', async () => {
    const name = uniqueName('restore');
    const first = await take(backend.provider(), name, 'stalled', 300);

    await backend.remove(name);
    const second = await take(backend.provider(), name, 'newcomer', 5000);
    await untilLost(first);

    expect(second.token).toBeGreaterThan(first.token);
    let err: unknown;
    try {
      first.assertHeld();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err).toMatchObject({ code: 'CONFLICT' });
    expect((err as LifeboatError).message).toContain(`token ${first.token}`);
  });

  it('is lost once another holder overwrites its lock', async () => {
    const name = uniqueName('restore');
    const first = await take(backend.provider(), name, 'stalled', 300);

    await backend.overwrite(name, 'intruder', first.token + 100);
    await untilLost(first);

    expect(() => first.assertHeld()).toThrow(/was lost/);
  });

  it("does not delete the new holder's lock when a lost lease is released", async () => {
    const name = uniqueName('restore');
    const first = await take(backend.provider(), name, 'stalled', 300);
    await backend.remove(name);
    const second = await take(backend.provider(), name, 'newcomer', 5000);
    await untilLost(first);

    await first.release();

    const err = await refusal(backend.provider().acquire(name, 'third', 5000));
    expect(err.message).toContain(`held by newcomer since ${(second as Lease & { since: string }).since}`);
    expect(err.message).toContain(`(token ${second.token})`);
    await second.release();
    const third = await take(backend.provider(), name, 'third');
    expect(third.token).toBeGreaterThan(second.token);
  });

  it('keeps different lock names apart', async () => {
    const a = await take(backend.provider(), uniqueName('restore'), 'a');
    const b = await take(backend.provider(), uniqueName('restore'), 'b');

    expect(a.lost || b.lost).toBe(false);
  });
});

describe('redis lock only', () => {
  const clients: Redis[] = [];
  let url = '';

  beforeAll(async () => {
    url = (await getTestStack()).redis.url;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
  });

  it('marks a lease lost once Redis has been out of reach for its ttl', async () => {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    client.on('error', () => {});
    clients.push(client);
    await client.connect();
    const provider = new RedisLockProvider({ client, prefix: uniqueName('locktest') });
    const lease = await take(provider, uniqueName('restore'), 'cut off', 300);

    client.disconnect();
    await untilLost(lease);

    expect(() => lease.assertHeld()).toThrow(/was lost/);
  });

  it('uses the keys <prefix>:lock:<name> and <prefix>:lock:<name>:fence', async () => {
    const client = new Redis(url);
    clients.push(client);
    const prefix = uniqueName('locktest');
    const name = uniqueName('restore');
    const lease = await take(new RedisLockProvider({ client, prefix }), name, 'keys', 5000);

    const value = JSON.parse((await client.get(`${prefix}:lock:${name}`)) ?? 'null') as Record<string, unknown>;
    expect(value).toMatchObject({ holder: 'keys', token: lease.token });
    expect(Number(await client.get(`${prefix}:lock:${name}:fence`))).toBe(lease.token);
    const ttl = await client.pttl(`${prefix}:lock:${name}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(5000);

    await lease.release();
    expect(await client.exists(`${prefix}:lock:${name}`)).toBe(0);
    await client.del(`${prefix}:lock:${name}:fence`);
  });
});

describe('file lock only', () => {
  let dir = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-lock-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const stale = (overrides: Partial<FileLockRecord>): FileLockRecord => ({
    holder: 'crashed restore',
    token: 41,
    since: new Date(Date.now() - 3_600_000).toISOString(),
    pid: process.pid,
    host: hostname(),
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    ...overrides,
  });

  async function deadPid(): Promise<number> {
    const child = spawn('/bin/true');
    await new Promise((done) => child.once('exit', done));
    return child.pid!;
  }

  it('takes over a lock whose lease has expired, with a larger token', async () => {
    const provider = new FileLockProvider({ dir });
    const name = uniqueName('restore');
    await writeFile(
      provider.lockPath(name),
      JSON.stringify(stale({ expiresAt: new Date(Date.now() - 1000).toISOString() })),
    );

    const lease = await take(provider, name, 'next restore');

    expect(lease.token).toBeGreaterThan(41);
    const record = JSON.parse(await readFile(provider.lockPath(name), 'utf8')) as FileLockRecord;
    expect(record).toMatchObject({ holder: 'next restore', token: lease.token, pid: process.pid, host: hostname() });
  });

  it('takes over a lock whose process is gone from this host', async () => {
    const provider = new FileLockProvider({ dir });
    const name = uniqueName('restore');
    await writeFile(provider.lockPath(name), JSON.stringify(stale({ pid: await deadPid() })));

    const lease = await take(provider, name, 'next restore');

    expect(lease.token).toBeGreaterThan(41);
  });

  it('leaves a live lock of another host alone while its lease runs, whatever its pid', async () => {
    const provider = new FileLockProvider({ dir });
    const name = uniqueName('restore');
    await writeFile(provider.lockPath(name), JSON.stringify(stale({ pid: await deadPid(), host: 'other-host' })));

    const err = await refusal(provider.acquire(name, 'next restore', 5000));

    expect(err.message).toContain('held by crashed restore');
  });

  it('treats an unreadable lock file as being written until it is old, then takes it over', async () => {
    const provider = new FileLockProvider({ dir });
    const name = uniqueName('restore');
    const path = provider.lockPath(name);
    await writeFile(path, '');

    expect((await refusal(provider.acquire(name, 'next', 5000))).code).toBe('CONFLICT');

    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const lease = await take(provider, name, 'next');
    expect(lease.holder).toBe('next');
  });

  it('names the holder of a lock file its creator is still writing, once written', async () => {
    const provider = new FileLockProvider({ dir });
    const name = uniqueName('restore');
    const path = provider.lockPath(name);
    await writeFile(path, '');
    // A live holder (this process) whose record lands 300 ms after the file.
    setTimeout(() => void writeFile(path, JSON.stringify(stale({ holder: 'first restore', token: 7 }))), 300);

    const err = await refusal(provider.acquire(name, 'second restore', 5000));

    expect(err.message).toContain('held by first restore');
    expect(err.message).toContain('(token 7)');
  });

  it('keeps its counter in <name>.fence and leaves no temp or stale files behind', async () => {
    const sub = await mkdtemp(join(dir, 'fence-'));
    const provider = new FileLockProvider({ dir: sub });
    await writeFile(provider.lockPath('prod'), JSON.stringify(stale({ expiresAt: new Date(0).toISOString() })));

    const lease = await take(provider, 'prod', 'restore', 300);
    await sleep(500);
    expect((await readFile(provider.fencePath('prod'), 'utf8')).trim()).toBe(String(lease.token));
    // A renewal may be writing its temp file right now; none may be left once released.
    expect(await readdir(sub)).toEqual(expect.arrayContaining(['prod.fence', 'prod.lock']));
    await lease.release();
    expect(await readdir(sub)).toEqual(['prod.fence']);
  });

  it('refuses a lock name that is not a plain file name', async () => {
    const err = await refusal(new FileLockProvider({ dir }).acquire('../etc/passwd', 'x', 1000));
    expect(err.code).toBe('INVALID_REQUEST');
  });
});

describe('createLockProvider', () => {
  it('gives the Redis lock when a URL is given, else the file lock', async () => {
    const { url } = (await getTestStack()).redis;
    const redis = createLockProvider({ redisUrl: url, dir: tmpdir(), prefix: 'x' });
    const file = createLockProvider({ dir: join(tmpdir(), 'lifeboat-locks') });
    try {
      expect(redis).toBeInstanceOf(RedisLockProvider);
      expect(redis).toMatchObject({ prefix: 'x' });
      expect(file).toBeInstanceOf(FileLockProvider);
    } finally {
      await redis.close();
    }
  });
});
