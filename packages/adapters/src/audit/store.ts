// The audit trail kept in the object store, one object per entry, appended under a lock so
// that processes on any number of hosts extend one chain (docs/FORMAT.md §8).
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import {
  AuditEntry,
  AuditEvent,
  type AuditEventInput,
  type AuditTrail,
  auditHash,
  GENESIS_HASH,
  isLifeboatError,
  type Lease,
  LifeboatError,
  type LockProvider,
  layout,
  type ObjectStore,
  parseAuditKey,
  type Sha256Hex,
} from '@lifeboat/domain';
import type { PostgresCatalog } from '../catalog/postgres.js';

/** sha256 of a UTF-8 string as lowercase hex: what the domain's audit functions are given. */
export const sha256hex: Sha256Hex = (text) => createHash('sha256').update(text, 'utf8').digest('hex');

export const AUDIT_LOCK = 'audit-trail';
/** An append holds the lock for a few requests; a holder that died frees it this soon. */
const LOCK_TTL_MS = 10_000;
/** Longer than one lease, so an append outwaits a holder that died with the lock. */
const DEFAULT_LOCK_WAIT_MS = 15_000;
const FIRST_BACKOFF_MS = 5;
const MAX_BACKOFF_MS = 200;
/** Entries read at once when listing. */
const READ_CONCURRENCY = 16;

export interface AuditLogger {
  warn(obj: object, msg?: string): void;
}

export interface StoreAuditTrailOptions {
  store: ObjectStore;
  /** Serializes appends across processes; a trail that is only read needs none. */
  locks?: LockProvider;
  /** Distributed mode's catalog: each entry is also inserted there once it is in the store. */
  catalog?: PostgresCatalog | null;
  log?: AuditLogger;
  /** Names this process in lock messages (default `<host>:<pid>`). */
  holder?: string;
  /** How long an append waits for the lock while others append (default 15 s). */
  lockWaitMs?: number;
  now?: () => Date;
}

interface Head {
  seq: number;
  hash: string;
}

const silent: AuditLogger = { warn() {} };

export class StoreAuditTrail implements AuditTrail {
  readonly store: ObjectStore;
  readonly catalog: PostgresCatalog | null;
  readonly #locks: LockProvider | undefined;
  readonly #log: AuditLogger;
  readonly #holder: string;
  readonly #lockWaitMs: number;
  readonly #now: () => Date;

  constructor(options: StoreAuditTrailOptions) {
    this.store = options.store;
    this.catalog = options.catalog ?? null;
    this.#locks = options.locks;
    this.#log = options.log ?? silent;
    this.#holder = options.holder ?? `audit ${hostname()}:${process.pid}`;
    this.#lockWaitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
    this.#now = options.now ?? (() => new Date());
  }

  async append(input: AuditEventInput): Promise<AuditEntry> {
    const parsed = AuditEvent.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new LifeboatError(
        'INVALID_REQUEST',
        `audit event: ${issue?.path.join('.') || 'event'}: ${issue?.message ?? 'invalid'}`,
      );
    }
    const event = parsed.data;
    const lease = await this.#acquire();
    let entry: AuditEntry;
    try {
      entry = await this.#appendHeld(event, lease);
    } finally {
      await lease.release();
    }
    if (this.catalog) {
      await this.catalog
        .appendAudit(entry)
        .catch((err: Error) =>
          this.#log.warn(
            { seq: entry.seq, err: { message: err.message } },
            'audit: entry not mirrored to the catalog (run `lifeboat catalog sync`)',
          ),
        );
    }
    return entry;
  }

  async list(options: { afterSeq?: number; limit?: number } = {}): Promise<AuditEntry[]> {
    const afterSeq = options.afterSeq ?? 0;
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const keys: Array<{ key: string; seq: number }> = [];
    if (limit <= 0) return [];
    for await (const o of this.store.list(layout.auditPrefix)) {
      const seq = parseAuditKey(o.key);
      if (seq === null || seq <= afterSeq) continue;
      keys.push({ key: o.key, seq });
      if (keys.length >= limit) break;
    }
    return mapLimit(keys, READ_CONCURRENCY, async ({ key, seq }) => {
      const raw = await readJson(this.store, key).catch((err: unknown) => {
        if (err instanceof SyntaxError) return null;
        throw err;
      });
      const result = AuditEntry.safeParse(raw);
      if (!result.success || result.data.seq !== seq) {
        throw new LifeboatError('VERIFY_FAILED', `audit entry ${seq} (${key}) is not a valid entry`, {
          hint: 'run `lifeboat audit verify` to see what is wrong with the trail',
        });
      }
      return result.data;
    });
  }

  /** The newest entry's seq and hash, or null for an empty trail. */
  async head(): Promise<Head | null> {
    const pointer = await this.#pointer();
    if (pointer && !(await this.store.head(layout.auditEntry(pointer.seq + 1)))) return pointer;
    return this.#scan();
  }

  /**
   * Takes the lock, waiting with growing, jittered pauses while other processes append, or
   * while the lock cannot be reached for a moment (Redis restarting): the entry of a job that
   * finished then must not be lost.
   */
  async #acquire(): Promise<Lease> {
    const locks = this.#locks;
    if (!locks) {
      throw new LifeboatError(
        'INVALID_REQUEST',
        'audit trail: this trail was opened to be read; appending needs a lock',
      );
    }
    const started = Date.now();
    let backoff = FIRST_BACKOFF_MS;
    for (;;) {
      try {
        return await locks.acquire(AUDIT_LOCK, this.#holder, LOCK_TTL_MS);
      } catch (err) {
        if (!isLifeboatError(err) || !(err.code === 'CONFLICT' || err.retryable)) throw err;
        const waited = Date.now() - started;
        if (waited + backoff > this.#lockWaitMs) {
          if (err.code !== 'CONFLICT') throw err;
          throw new LifeboatError(
            'CONFLICT',
            `audit trail: the lock ${AUDIT_LOCK} stayed taken for ${waited} ms (${err.message})`,
            {
              hint: `many processes are appending, or one that died holds it for up to ${LOCK_TTL_MS / 1000} s; try again`,
              cause: err,
              retryable: true,
            },
          );
        }
        await sleep(backoff * (0.5 + Math.random()));
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  async #appendHeld(event: AuditEvent, lease: Lease): Promise<AuditEntry> {
    const free = async (h: Head | null) => !(await this.store.head(layout.auditEntry((h?.seq ?? 0) + 1)));
    let head = await this.#pointer();
    // No pointer, one that disagrees with the entries, or one left behind by a crash between
    // the entry and the pointer: the listing is the truth.
    if (!head || !(await free(head))) {
      head = await this.#scan();
      // Entries are never overwritten: one already there means the listing missed it.
      if (!(await free(head))) {
        throw new LifeboatError(
          'CONFLICT',
          `audit trail: entry ${(head?.seq ?? 0) + 1} already exists though the listing ends before it; nothing was written`,
          {
            hint: 'try again, and run `lifeboat audit verify` if it persists',
            retryable: true,
          },
        );
      }
    }
    const seq = (head?.seq ?? 0) + 1;
    const key = layout.auditEntry(seq);
    // Round-tripped through JSON, so the hash is over exactly what is stored and read back.
    const body = JSON.parse(
      JSON.stringify({
        seq,
        at: this.#now().toISOString(),
        actor: event.actor,
        action: event.action,
        ...(event.target !== undefined ? { target: event.target } : {}),
        outcome: event.outcome,
        details: event.details,
        prevHash: head?.hash ?? GENESIS_HASH,
      }),
    ) as Omit<AuditEntry, 'hash'>;
    const entry: AuditEntry = { ...body, hash: auditHash(body, sha256hex) };
    lease.assertHeld();
    await this.store.put(key, Buffer.from(`${JSON.stringify(entry)}\n`, 'utf8'));
    try {
      await this.store.put(
        layout.auditHead,
        Buffer.from(`${JSON.stringify({ seq: entry.seq, hash: entry.hash })}\n`, 'utf8'),
      );
    } catch (err) {
      // The entry is written, which is what counts; the next append finds the head by listing.
      this.#log.warn({ seq, err: { message: (err as Error).message } }, 'audit: HEAD.json not updated');
    }
    return entry;
  }

  /** HEAD.json when it names an entry that exists with that hash; null otherwise. */
  async #pointer(): Promise<Head | null> {
    let pointer: Partial<Head>;
    try {
      pointer = (await readJson(this.store, layout.auditHead)) as Partial<Head>;
    } catch (err) {
      if (isLifeboatError(err) && err.code === 'NOT_FOUND') return null;
      if (err instanceof SyntaxError) return null;
      throw err;
    }
    if (!Number.isSafeInteger(pointer?.seq) || typeof pointer?.hash !== 'string') return null;
    const head = { seq: pointer.seq as number, hash: pointer.hash };
    const entry = await readJson(this.store, layout.auditEntry(head.seq)).catch(() => null);
    const found = entry as Partial<Head> | null;
    if (found?.seq === head.seq && found.hash === head.hash) return head;
    this.#log.warn({ pointer: head }, 'audit: HEAD.json disagrees with the entries; finding the head by listing');
    return null;
  }

  /** The newest entry by listing every key. */
  async #scan(): Promise<Head | null> {
    let last: { key: string; seq: number } | null = null;
    for await (const o of this.store.list(layout.auditPrefix)) {
      const seq = parseAuditKey(o.key);
      if (seq !== null) last = { key: o.key, seq };
    }
    if (!last) return null;
    const result = AuditEntry.safeParse(await readJson(this.store, last.key).catch(() => null));
    if (!result.success || result.data.seq !== last.seq) {
      throw new LifeboatError(
        'VERIFY_FAILED',
        `audit trail: the newest entry ${last.key} is not a valid entry, so nothing can be chained to it`,
        { hint: 'run `lifeboat audit verify`; the trail has been damaged or edited' },
      );
    }
    return { seq: result.data.seq, hash: result.data.hash };
  }
}

/** Reads and parses a small JSON object of the store. */
export async function readJson(store: ObjectStore, key: string): Promise<unknown> {
  return JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8')) as unknown;
}

/** Maps items with at most `limit` calls running at once, keeping their order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
