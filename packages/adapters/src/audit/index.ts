// The audit trail: entries in the object store under a lock, mirrored to the catalog in
// distributed mode, verified end to end, and a wrapper that records every job a worker runs.
import { join } from 'node:path';
import { openCatalogFromEnv, type PostgresCatalog } from '../catalog/postgres.js';
import type { Runtime } from '../config/runtime.js';
import { createLockProvider } from '../lock/index.js';
import { type AuditLogger, StoreAuditTrail } from './store.js';

export type { AuditLogRow } from '../catalog/postgres.js';
export { type AuditedHandlerOptions, auditedHandler, summarize } from './handler.js';
export { AUDIT_LOCK, type AuditLogger, StoreAuditTrail, type StoreAuditTrailOptions, sha256hex } from './store.js';
export { type AuditDifference, type AuditVerifyReport, verifyAuditTrail } from './verify.js';

export interface AuditTrailHandle {
  trail: StoreAuditTrail;
  /** The catalog entries are mirrored to, when LIFEBOAT_CATALOG_URL is set and answered. */
  catalog: PostgresCatalog | null;
  /** Closes the lock's connection. */
  close(): Promise<void>;
}

/**
 * The trail of a runtime's store: appends are serialized by the Redis lock when
 * LIFEBOAT_REDIS_URL is set (processes on many hosts), else by a lock file beside the
 * configuration (one host). A catalog that does not answer at start is logged and left out:
 * the store is the record, and `lifeboat catalog sync` fills the catalog in later.
 */
export async function createAuditTrail(
  runtime: Pick<Runtime, 'store' | 'loaded'>,
  options: { env?: NodeJS.ProcessEnv; log?: AuditLogger; holder?: string } = {},
): Promise<AuditTrailHandle> {
  const env = options.env ?? process.env;
  let catalog: PostgresCatalog | null = null;
  try {
    catalog = await openCatalogFromEnv(env);
  } catch (err) {
    options.log?.warn(
      { err: { message: (err as Error).message } },
      'audit: the catalog does not answer; entries go to the store only (run `lifeboat catalog sync` later)',
    );
  }
  const locks = createLockProvider({
    redisUrl: env.LIFEBOAT_REDIS_URL,
    dir: join(runtime.loaded.baseDir, '.lifeboat', 'locks'),
    prefix: env.LIFEBOAT_QUEUE_PREFIX ?? 'lifeboat',
  });
  const trail = new StoreAuditTrail({
    store: runtime.store,
    locks,
    catalog,
    ...(options.log ? { log: options.log } : {}),
    ...(options.holder ? { holder: options.holder } : {}),
  });
  return { trail, catalog, close: () => locks.close() };
}
