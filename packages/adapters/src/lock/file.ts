// The restore lock of embedded mode: a lock file created exclusively in a local directory,
// with a lease that is renewed while held, and a counter file for the fencing tokens.
//
// The fencing is local-only: the tokens grow across the grants of this directory, so they
// fence processes on this host (or sharing this directory), and nothing beyond it. A lock
// directory on a network filesystem gets no stronger guarantee than that filesystem's
// O_EXCL and rename; distributed mode uses the Redis lock instead.
import { randomBytes } from 'node:crypto';
import { type FileHandle, link, mkdir, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { type Lease, LifeboatError, type LockProvider } from '@lifeboat/domain';
import { fsyncDir, writeFileAtomic } from '../atomic-file.js';
import { heldError, validTtl } from './redis.js';

export interface FileLockProviderOptions {
  /** Directory of the lock files (created when missing). */
  dir: string;
}

/** What a lock file holds. */
export interface FileLockRecord {
  holder: string;
  token: number;
  since: string;
  pid: number;
  host: string;
  /** ISO instant after which anyone may take the lock over. */
  expiresAt: string;
}

/**
 * A lock file that cannot be parsed is being written by its creator (between the exclusive
 * create and the write) unless it is older than this: then its creator died in that gap.
 */
const UNREADABLE_GRACE_MS = 10_000;
/** How long an acquirer waits for a lock file just created to get its record, to name its holder. */
const RECORD_WAIT_MS = 2_000;
/**
 * A renewal that would land this close to the expiry it extends is given up: a taker may be
 * moving the expired file aside at that very moment.
 */
const EXPIRY_MARGIN_MS = 5;
/** Attempts when a lock file vanishes or is taken over between our reads. */
const ACQUIRE_ATTEMPTS = 3;

export class FileLockProvider implements LockProvider {
  readonly dir: string;
  readonly #host = hostname();

  constructor(options: FileLockProviderOptions) {
    this.dir = resolve(options.dir);
  }

  /** The lock file of name. */
  lockPath(name: string): string {
    return join(this.dir, `${validName(name)}.lock`);
  }

  /** The counter file holding the last token granted for name. */
  fencePath(name: string): string {
    return join(this.dir, `${validName(name)}.fence`);
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<Lease> {
    const ttl = validTtl(ttlMs);
    const path = this.lockPath(name);
    await mkdir(this.dir, { recursive: true });
    // Tokens of stale locks we saw: the next grant exceeds them even if the counter file was lost.
    let seenToken = 0;
    for (let attempt = 1; attempt <= ACQUIRE_ATTEMPTS; attempt++) {
      let handle: FileHandle;
      try {
        handle = await open(path, 'wx', 0o644);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(`create ${path}`, err);
        let existing = await readLock(path);
        // Its creator writes the record a moment after creating the file (the counter first):
        // given that moment, a refusal names the holder rather than "an unknown holder".
        for (let waited = 0; existing && !existing.record && waited < RECORD_WAIT_MS; waited += 25) {
          await new Promise((r) => setTimeout(r, 25));
          existing = await readLock(path);
        }
        if (!existing) continue;
        const stale = this.#staleness(existing);
        if (!stale) throw heldError(name, existing.record);
        seenToken = Math.max(seenToken, existing.record?.token ?? 0);
        // Only the file we judged: someone else may have taken it over and written a fresh one since.
        await moveAsideIf(path, (text) => text === existing.text);
        continue;
      }
      return await this.#fill(handle, name, path, holder, ttl, seenToken);
    }
    const current = await readLock(path);
    throw heldError(name, current?.record);
  }

  /** Closes nothing: leases stop their own timers on release. Here for symmetry with the Redis lock. */
  async close(): Promise<void> {}

  /** Writes our record into the lock file we just created, bumping the counter while we hold the lock. */
  async #fill(
    handle: FileHandle,
    name: string,
    path: string,
    holder: string,
    ttl: number,
    seenToken: number,
  ): Promise<FileLease> {
    let record: FileLockRecord;
    try {
      // Bumped only under the lock, so two acquirers never read the same counter value.
      const token = await this.#nextToken(name, seenToken);
      const now = Date.now();
      record = {
        holder,
        token,
        since: new Date(now).toISOString(),
        pid: process.pid,
        host: this.#host,
        expiresAt: new Date(now + ttl).toISOString(),
      };
      await handle.writeFile(`${JSON.stringify(record)}\n`, 'utf8');
      await handle.sync();
      await handle.close();
    } catch (err) {
      await handle.close().catch(() => {});
      await rm(path, { force: true }).catch(() => {});
      throw err instanceof LifeboatError ? err : fsError(`write ${path}`, err);
    }
    await fsyncDir(this.dir);
    return new FileLease(name, path, record, ttl);
  }

  async #nextToken(name: string, atLeast: number): Promise<number> {
    const fence = this.fencePath(name);
    let last = 0;
    try {
      const text = (await readFile(fence, 'utf8')).trim();
      if (!/^\d+$/.test(text)) {
        throw new LifeboatError(
          'INTERNAL',
          `lock: the fencing counter ${fence} holds "${text.slice(0, 40)}", not a number`,
          {
            hint: `write into it a number at least as large as any token granted so far, or delete it if no lock of ${name} is held`,
            retryable: false,
          },
        );
      }
      last = Number(text);
    } catch (err) {
      if (err instanceof LifeboatError) throw err;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(`read ${fence}`, err);
    }
    const token = Math.max(last, atLeast) + 1;
    await writeFileAtomic(fence, `${token}\n`).catch((err: unknown) => {
      throw fsError(`write ${fence}`, err);
    });
    return token;
  }

  /** Why an existing lock may be taken over, or undefined while it is held. */
  #staleness(existing: ExistingLock): string | undefined {
    const { record } = existing;
    if (!record) {
      return Date.now() - existing.mtimeMs > UNREADABLE_GRACE_MS
        ? `unreadable and older than ${UNREADABLE_GRACE_MS} ms`
        : undefined;
    }
    const expires = Date.parse(record.expiresAt);
    if (!Number.isFinite(expires) || expires <= Date.now()) return `expired at ${record.expiresAt}`;
    if (record.host === this.#host && !pidAlive(record.pid)) return `its process ${record.pid} is gone`;
    return undefined;
  }
}

class FileLease implements Lease {
  readonly name: string;
  readonly holder: string;
  readonly token: number;
  readonly since: string;
  readonly path: string;
  readonly #record: FileLockRecord;
  readonly #ttl: number;
  /** Expiry (epoch ms) last written to the file: past it, anyone may take the lock over. */
  #expiresAt: number;
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | undefined;
  #lostReason: string | undefined;
  #released = false;

  constructor(name: string, path: string, record: FileLockRecord, ttl: number) {
    this.name = name;
    this.path = path;
    this.holder = record.holder;
    this.token = record.token;
    this.since = record.since;
    this.#record = record;
    this.#ttl = ttl;
    this.#expiresAt = Date.parse(record.expiresAt);
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
    await this.#renewing;
    // Read first: a lock that is not ours is never touched, not even moved for a moment.
    const current = await readLock(this.path).catch(() => undefined);
    if (current?.record?.token !== this.token) return;
    // Moved aside and checked again, in case it expired and was taken over since the read.
    await moveAsideIf(this.path, (text) => parseRecord(text)?.token === this.token).catch(() => {});
  }

  #schedule(delayMs = this.#ttl / 3): void {
    if (this.#released || this.#lostReason !== undefined) return;
    this.#timer = setTimeout(
      () => {
        const started = Date.now();
        this.#renewing = this.#renew().finally(() => {
          this.#renewing = undefined;
          // Every ttl/3 from the start of the last renewal, however long its disk writes took.
          this.#schedule(this.#ttl / 3 - (Date.now() - started));
        });
      },
      Math.max(1, Math.floor(delayMs)),
    );
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    this.#checkExpiry();
    if (this.#released || this.#lostReason !== undefined) return;
    try {
      const expiresAt = Date.now() + this.#ttl;
      const text = `${JSON.stringify({ ...this.#record, expiresAt: new Date(expiresAt).toISOString() })}\n`;
      // No fsync: after a crash that loses this write, the holder is gone too and the lock is stale anyway.
      const renewed = await writeFileAtomic(this.path, text, {
        durable: false,
        beforeRename: () => this.#stillOurs(),
      });
      if (renewed) this.#expiresAt = expiresAt;
    } catch (err) {
      // A failed write leaves the old expiry in place; the lease is lost only once that passes.
      if (Date.now() >= this.#expiresAt) {
        this.#lose(`it could not be renewed before it expired (${errorText(err)})`);
      }
    }
  }

  /**
   * Whether the lock file may be replaced with our renewal, checked at the last moment before
   * the rename: it must still hold our token, and its expiry must not be so near that a taker
   * may be moving it aside right now (renaming over its new file would undo its takeover).
   */
  async #stillOurs(): Promise<boolean> {
    const current = await readLock(this.path);
    if (this.#released || this.#lostReason !== undefined) return false;
    if (!current) {
      this.#lose('its lock file was deleted');
      return false;
    }
    if (current.record?.token !== this.token) {
      const other = current.record ? `${current.record.holder} (token ${current.record.token})` : 'an unreadable file';
      this.#lose(`another holder has taken it: ${other}`);
      return false;
    }
    if (this.#expiresAt - Date.now() < EXPIRY_MARGIN_MS) {
      this.#lose(`it was not renewed before it expired at ${new Date(this.#expiresAt).toISOString()}`);
      return false;
    }
    return true;
  }

  /** A holder whose event loop stalled past the expiry may have been taken over. */
  #checkExpiry(): void {
    if (this.#released || this.#lostReason !== undefined) return;
    if (Date.now() >= this.#expiresAt) {
      this.#lose(`it was not renewed before it expired at ${new Date(this.#expiresAt).toISOString()}`);
    }
  }

  #lose(reason: string): void {
    this.#lostReason ??= reason;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

interface ExistingLock {
  text: string;
  record: FileLockRecord | undefined;
  mtimeMs: number;
}

/** The lock file as it is now, or undefined when there is none. */
async function readLock(path: string): Promise<ExistingLock | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { text, record: parseRecord(text), mtimeMs: info.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsError(`read ${path}`, err);
  }
}

function parseRecord(text: string): FileLockRecord | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<FileLockRecord> | null;
    if (
      typeof parsed?.holder === 'string' &&
      typeof parsed.token === 'number' &&
      typeof parsed.since === 'string' &&
      typeof parsed.pid === 'number' &&
      typeof parsed.host === 'string' &&
      typeof parsed.expiresAt === 'string'
    ) {
      return parsed as FileLockRecord;
    }
  } catch {
    // Empty (its creator is still writing it) or damaged.
  }
  return undefined;
}

/**
 * Removes the file at path if it holds what accept expects. Renaming first makes the check and
 * the removal one step for everyone else; a file that turns out not to be the one judged is
 * put back, unless yet another holder has created one meanwhile (whose lease then wins, and
 * the displaced holder finds out at its next renewal).
 */
async function moveAsideIf(path: string, accept: (text: string) => boolean): Promise<boolean> {
  const aside = `${path}.stale-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw fsError(`move ${path} aside`, err);
  }
  const accepted = accept(await readFile(aside, 'utf8').catch(() => ''));
  if (!accepted) await link(aside, path).catch(() => {});
  // The aside copy is our own bookkeeping, not the target's data: nothing is lost by removing it.
  await unlink(aside).catch(() => {});
  return accepted;
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function validName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(name) || name.length > 200) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `lock name "${name.slice(0, 60)}" must be letters, digits, '.', '_', ':' or '-' (it names a file)`,
    );
  }
  return name;
}

function fsError(step: string, err: unknown): LifeboatError {
  return new LifeboatError('INTERNAL', `lock: cannot ${step}: ${errorText(err)}`, {
    hint: 'check that the lock directory exists and is writable by this user',
    cause: err,
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
