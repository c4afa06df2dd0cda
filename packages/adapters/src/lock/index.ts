// The restore lock: Redis in distributed mode, a lock file in embedded mode.
import { FileLockProvider } from './file.js';
import { RedisLockProvider } from './redis.js';

export { FileLockProvider, type FileLockProviderOptions, type FileLockRecord } from './file.js';
export { RedisLockProvider, type RedisLockProviderOptions } from './redis.js';

export interface LockProviderOptions {
  /** When set, the lock lives in this Redis (distributed mode). */
  redisUrl?: string;
  /** Directory of the lock files otherwise (embedded mode). */
  dir: string;
  /** Namespace of the Redis keys (default `lifeboat`); the file lock has its own directory instead. */
  prefix?: string;
}

/** The Redis lock when a URL is given, else the file lock; close() it when done. */
export function createLockProvider(options: LockProviderOptions): RedisLockProvider | FileLockProvider {
  const url = options.redisUrl?.trim();
  if (url) return new RedisLockProvider({ url, ...(options.prefix ? { prefix: options.prefix } : {}) });
  return new FileLockProvider({ dir: options.dir });
}
