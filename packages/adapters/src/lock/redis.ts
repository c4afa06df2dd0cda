// The restore lock of distributed mode: a Redis key with a lease, renewed while held, and a
// per-lock counter that gives every grant a larger fencing token.
import { type Lease, LifeboatError, LockHeldError, type LockProvider } from '@lifeboat/domain';
import { Redis } from 'ioredis';

export interface RedisLockProviderOptions {
  /** `redis://[user:password@]host:port[/db]`; the provider owns (and closes) this connection. */
  url?: string;
  /** A connection owned by the caller, used instead of url. */
  client?: Redis;
  /** Namespace of the keys (default `lifeboat`). */
  prefix?: string;
}

/** Extends the lease only while the key still holds this grant's value. 1: renewed, 0: gone, -1: another holder. */
const RENEW = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if v ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

/** Deletes the key only while it holds this grant's value, so a late release never frees another holder's lock. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Attempts when the key expires between a refused SET and the GET that names its holder. */
const ACQUIRE_ATTEMPTS = 3;
const CONNECT_TIMEOUT_MS = 3000;

interface Holding {
  holder: string;
  token: number;
  since: string;
}

export class RedisLockProvider implements LockProvider {
  readonly prefix: string;
  readonly #client: Redis;
  readonly #owned: boolean;
  readonly #where: string;

  constructor(options: RedisLockProviderOptions) {
    this.prefix = options.prefix ?? 'lifeboat';
    if (options.client) {
      this.#client = options.client;
      this.#owned = false;
      this.#where = 'Redis';
    } else if (options.url) {
      if (!/^rediss?:\/\//.test(options.url)) {
        throw new LifeboatError(
          'INVALID_CONFIG',
          `Redis URL ${redactUrl(options.url)} is not a redis:// or rediss:// URL`,
          {
            hint: 'set LIFEBOAT_REDIS_URL like redis://127.0.0.1:6379',
          },
        );
      }
      this.#client = new Redis(options.url, {
        // Connects on the first command: a provider that is never used opens nothing.
        lazyConnect: true,
        connectTimeout: CONNECT_TIMEOUT_MS,
        maxRetriesPerRequest: 1,
        retryStrategy: (times) => Math.min(times * 250, 2000),
      });
      // Errors reach callers through the commands that fail; without a listener ioredis also logs them as unhandled.
      this.#client.on('error', () => {});
      this.#owned = true;
      this.#where = `Redis at ${redactUrl(options.url)}`;
    } else {
      throw new LifeboatError('INVALID_CONFIG', 'the Redis lock needs a url or a client', { retryable: false });
    }
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<Lease> {
    const ttl = validTtl(ttlMs);
    const key = `${this.prefix}:lock:${name}`;
    for (let attempt = 1; ; attempt++) {
      // A token taken by an attempt that then loses leaves a gap; tokens only need to grow.
      const token = await this.#call('take a fencing token', () => this.#client.incr(`${key}:fence`));
      const holding: Holding = { holder, token, since: new Date().toISOString() };
      const value = JSON.stringify(holding);
      const set = await this.#call('take the lock', () => this.#client.set(key, value, 'PX', ttl, 'NX'));
      if (set === 'OK') {
        return new RedisLease(name, holding, ttl, {
          renew: async () => Number(await this.#client.eval(RENEW, 1, key, value, ttl)),
          release: async () => {
            await this.#client.eval(RELEASE, 1, key, value);
          },
        });
      }
      const current = await this.#call('read the lock', () => this.#client.get(key));
      if (current === null && attempt < ACQUIRE_ATTEMPTS) continue;
      throw heldError(name, parseHolding(current));
    }
  }

  /** Closes the connection when the provider opened it. */
  async close(): Promise<void> {
    if (!this.#owned) return;
    if (this.#client.status === 'wait' || this.#client.status === 'end') {
      this.#client.disconnect();
      return;
    }
    await this.#client.quit().catch(() => this.#client.disconnect());
  }

  /** Runs one Redis command, naming the step and the server when it fails. */
  async #call<T>(step: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw new LifeboatError('INTERNAL', `lock: cannot ${step} in ${this.#where}: ${errorText(err)}`, {
        hint: 'is Redis running, and is LIFEBOAT_REDIS_URL right? (`redis-cli -u <url> ping` answers PONG)',
        cause: err,
      });
    }
  }
}

/** The two scripts a lease runs, bound to its key and value. */
interface LeaseOps {
  /** 1: renewed, 0: the key is gone, -1: another holder's value is in it. */
  renew(): Promise<number>;
  release(): Promise<void>;
}

class RedisLease implements Lease {
  readonly name: string;
  readonly holder: string;
  readonly token: number;
  readonly since: string;
  readonly #ops: LeaseOps;
  readonly #ttl: number;
  #timer: NodeJS.Timeout | undefined;
  /** When the last successful renewal was sent: the key lives at least ttl past it. */
  #confirmedAt: number;
  #lostReason: string | undefined;
  #released = false;

  constructor(name: string, holding: Holding, ttl: number, ops: LeaseOps) {
    this.#ops = ops;
    this.name = name;
    this.holder = holding.holder;
    this.token = holding.token;
    this.since = holding.since;
    this.#ttl = ttl;
    // The SET was sent before this point, so counting from now only errs towards "lost" later than it could.
    this.#confirmedAt = performance.now();
    this.#schedule();
  }

  get lost(): boolean {
    this.#checkExpiry();
    return this.#lostReason !== undefined;
  }

  assertHeld(): void {
    this.#checkExpiry();
    if (this.#lostReason !== undefined) {
      throw new LifeboatError('CONFLICT', `lock ${this.name} (token ${this.token}) was lost: ${this.#lostReason}`, {
        hint: 'another restore may be running; stop here and start again once it is done',
        retryable: true,
      });
    }
    if (this.#released) {
      throw new LifeboatError('CONFLICT', `lock ${this.name} (token ${this.token}) was released`, { retryable: false });
    }
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      await this.#ops.release();
    } catch {
      // Redis is unreachable: the key expires on its own within the ttl, and a release
      // failing inside a `finally` must not hide the error that got us there.
    }
  }

  #schedule(): void {
    if (this.#released || this.#lostReason !== undefined) return;
    this.#timer = setTimeout(() => void this.#renew(), Math.max(1, Math.floor(this.#ttl / 3)));
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    if (this.#released || this.#lostReason !== undefined) return;
    const sentAt = performance.now();
    try {
      const result = await this.#ops.renew();
      if (this.#released) return;
      if (result === 1) this.#confirmedAt = sentAt;
      else this.#lose(result === 0 ? 'the lock expired or was deleted' : 'another holder has taken it');
    } catch (err) {
      // One failed renewal is not a lost lock: the key lives on until the ttl has passed.
      if (performance.now() - this.#confirmedAt >= this.#ttl) {
        this.#lose(`it could not be renewed within its ttl of ${this.#ttl} ms (${errorText(err)})`);
      }
    }
    this.#schedule();
  }

  /** A holder whose event loop stalled past the ttl cannot know it still holds the lock. */
  #checkExpiry(): void {
    if (this.#released || this.#lostReason !== undefined) return;
    if (performance.now() - this.#confirmedAt >= this.#ttl) {
      this.#lose(`it was not renewed within its ttl of ${this.#ttl} ms`);
    }
  }

  #lose(reason: string): void {
    this.#lostReason ??= reason;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

export function heldError(name: string, current: Partial<Holding> | undefined): LockHeldError {
  const who = current?.holder ?? 'an unknown holder';
  const since = current?.since ?? 'an unknown time';
  const token = current?.token ?? '?';
  return new LockHeldError(`${guarded(name)}: held by ${who} since ${since} (token ${token})`, current?.holder, {
    hint: 'wait for it to finish; a holder that died frees the lock when its lease expires',
    retryable: true,
  });
}

/** Why a lock is refused, in words: `restore of demo is already running`, `backup of demo for <slot> …`. */
function guarded(name: string): string {
  const [kind, subject, ...rest] = name.split(':');
  if ((kind === 'restore' || kind === 'backup') && subject)
    return `${kind} of ${subject}${rest.length ? ` for ${rest.join(':')}` : ''} is already running`;
  return `lock ${name} is already held`;
}

function parseHolding(value: string | null): Partial<Holding> | undefined {
  if (value === null) return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<Holding>;
    return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export function validTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs < 3) {
    throw new LifeboatError('INVALID_REQUEST', `lock ttl must be a number of milliseconds of 3 or more, not ${ttlMs}`);
  }
  return Math.ceil(ttlMs);
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return '<unparsable url>';
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
