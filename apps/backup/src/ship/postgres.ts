// Continuous protection of a PostgreSQL target beyond archive_command: the archive holds a
// segment once the server closes it (archive_timeout at the soonest, and only when a process
// per segment keeps up), so the shipper streams the WAL as the server flushes it. pg_receivewal
// writes it into a spool directory; every interval the shipper uploads what the receiver has
// flushed since the last round as a piece of its segment (docs/FORMAT.md §10). The store is the
// only state: a shipper started again asks the store how much of each segment it holds.
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createReceiverSlot,
  decodeSegment,
  encodeSegment,
  pgReceivewalFor,
  type Receiver,
  type ResolvedTarget,
  type Runtime,
  resolvePath,
  startReceiver,
  WalPositionProbe,
} from '@lifeboat/adapters';
import { LifeboatError, layout, parseWalFileName, segmentNumber, walSegmentName } from '@lifeboat/domain';
import type { Logger } from '../context.js';
import { postgresUrl } from '../handlers/basebackup.js';
import { readWalRecord } from '../handlers/wal.js';
import {
  listStreamedPieces,
  PG_STREAM_PIECE_FORMAT,
  type PgStreamPieceHeader,
  streamPieceKey,
} from '../handlers/wal-stream.js';
import type { ShipStats } from './sqlite.js';

const LOCK_FILE = '.lifeboat-ship.pid';
/** At most this much of a segment goes into one piece (a backlog ships over several rounds). */
const MAX_PIECE_BYTES = 16 << 20;
/** A receiver that ended is started again after this long. */
const RESTART_AFTER_MS = 5_000;
/** Rounds between removals of streamed segments the archive now holds. */
const TIDY_EVERY = 30;
/**
 * A streamed segment's pieces outlive its archived copy by this long. A restore that counts only
 * what was archived or streamed by an earlier moment (`--archived-by`, as a drill's disaster
 * does while the server goes on) reads a segment archived after that moment from its pieces,
 * and reads it more than once (the replay, then the end of recovery): removed in between, the
 * second read would be shorter than the first and the scratch server would stop.
 */
export const STREAM_KEEP_AFTER_ARCHIVED_MS = 15 * 60_000;

export interface PostgresShipperOptions {
  runtime: Runtime;
  target: ResolvedTarget;
  log: Logger;
  /** Where the target's database URL variable is read (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Instead of the configured (or default) spool: a drill's receiver of its own. */
  spoolDir?: string;
  /** How the receiver is named in pg_stat_replication (default `lifeboat-ship-<target>`). */
  applicationName?: string;
}

/** The default spool: one per configuration file and target, so two configurations never share one. */
export function defaultSpoolDir(configPath: string, target: string): string {
  const tag = createHash('sha256').update(configPath).digest('hex').slice(0, 12);
  return join(tmpdir(), `lifeboat-ship-${tag}`, target, 'pg_wal');
}

export class PostgresShipper {
  readonly stats: ShipStats = {
    stream: 'postgres',
    bytesShipped: 0,
    segments: 0,
    lastSegmentAt: null,
    pendingSince: null,
    generation: null,
  };
  /** Bytes of each segment the store holds from its start. */
  #shipped = new Map<string, number>();
  /** The server's flush position at each round not yet covered by what was shipped. */
  #samples: Array<{ at: Date; position: number }> = [];
  #receiver: Receiver | null = null;
  #startedAt = 0;
  #probe!: WalPositionProbe;
  #url = '';
  #spool = '';
  #command = 'pg_receivewal';
  #segmentSize = 0;
  #round = 0;
  #stopped = false;
  readonly applicationName: string;

  constructor(private readonly o: PostgresShipperOptions) {
    this.applicationName = (o.applicationName ?? `lifeboat-ship-${o.target.name}`).slice(0, 63);
  }

  #now(): Date {
    return (this.o.now ?? (() => new Date()))();
  }

  get spoolDir(): string {
    return this.#spool;
  }

  async start(): Promise<void> {
    const { runtime, target } = this.o;
    const spec = target.config.ship.postgres;
    this.#url = postgresUrl(runtime, target, this.o.env ?? process.env);
    this.#spool = this.o.spoolDir
      ? this.o.spoolDir
      : spec.spoolDir
        ? resolvePath(runtime.loaded.baseDir, spec.spoolDir)
        : defaultSpoolDir(runtime.loaded.path, target.name);
    this.#probe = new WalPositionProbe(this.#url, this.applicationName);
    const facts = await this.#probe.facts();
    this.#segmentSize = facts.segmentSize;
    this.#command = pgReceivewalFor(facts.major);
    await mkdir(this.#spool, { recursive: true, mode: 0o700 });
    await this.#lock();
    if (spec.slot) await createReceiverSlot(this.#url, { slot: spec.slot, command: this.#command });
    await this.#spawn();
    // The first round ships what the server had flushed when the shipper started, not less.
    const wanted = (await this.#probe.read()).server;
    const deadline = Date.now() + 15_000;
    for (;;) {
      const p = await this.#probe.read();
      if ((p.received ?? (await this.#spoolReach())) >= wanted) break;
      if (!this.#receiver) throw this.#receiverFailed();
      if (Date.now() > deadline) {
        this.o.log.warn({ target: target.name }, 'ship postgres: the receiver has not caught up after 15 s');
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** How far the spool holds the log, by its newest file (when the server does not show the receiver's position). */
  async #spoolReach(): Promise<number> {
    const size = this.#segmentSize;
    const newest = (await readdir(this.#spool).catch(() => [] as string[]))
      .filter((f) => parseWalFileName(f.replace(/\.partial$/, ''))?.kind === 'segment')
      .sort()
      .at(-1);
    if (!newest) return 0;
    const file = parseWalFileName(newest.replace(/\.partial$/, '')) as NonNullable<ReturnType<typeof parseWalFileName>>;
    const start = segmentNumber(file, size) * size;
    if (!newest.endsWith('.partial')) return start + size;
    const bytes = await readFile(join(this.#spool, newest)).catch(() => Buffer.alloc(0));
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    return start + end;
  }

  /**
   * One shipper per spool: two receivers writing into one directory would ruin it. The lock
   * names the shipper and its receiver; a shipper killed outright (SIGKILL) leaves its receiver
   * running, and the next one ends it before starting its own.
   */
  async #lock(): Promise<void> {
    const file = join(this.#spool, LOCK_FILE);
    const [held, receiver] = (await readFile(file, 'utf8').catch(() => ''))
      .trim()
      .split(/\s+/)
      .map((x) => Number(x) || 0);
    if (held && held !== process.pid && alive(held)) {
      throw new LifeboatError(
        'CONFLICT',
        `another shipper (pid ${held}) streams the WAL of target ${this.o.target.name} into ${this.#spool}`,
        { hint: 'one `lifeboat ship` per target, or give this one targets.<t>.ship.postgres.spoolDir of its own' },
      );
    }
    if (receiver && alive(receiver) && (await isReceiverOf(receiver, this.#spool))) {
      this.o.log.warn(
        { target: this.o.target.name, pid: receiver },
        'ship postgres: ending the receiver a killed shipper left',
      );
      process.kill(receiver, 'SIGTERM');
      for (let i = 0; i < 50 && alive(receiver); i++) await new Promise((r) => setTimeout(r, 100));
      if (alive(receiver)) process.kill(receiver, 'SIGKILL');
    }
    await writeFile(file, `${process.pid}\n`);
    this.#locked = true;
  }

  #locked = false;

  #lastError = '';

  #receiverFailed(): LifeboatError {
    return new LifeboatError(
      'TARGET_ERROR',
      `pg_receivewal for target ${this.o.target.name} ended: ${this.#lastError || 'no message'}`,
      { hint: 'the user needs the REPLICATION attribute and a `replication` line in pg_hba.conf', retryable: true },
    );
  }

  /**
   * A receiver streams from the newest segment in its spool, else from where the server writes
   * now. The segments between the archive's end and now (archive_command behind, or a shipper
   * started late) would be in neither place: an empty `.partial` of the first segment not
   * archived makes the receiver start there.
   */
  async #prime(): Promise<void> {
    const files = await readdir(this.#spool).catch(() => [] as string[]);
    if (files.some((f) => parseWalFileName(f.replace(/\.partial$/, ''))?.kind === 'segment')) return;
    const at = await this.#probe.firstUnarchived();
    if (!at) return;
    const last = parseWalFileName(at.lastArchived);
    const current = parseWalFileName(at.current);
    if (last?.kind !== 'segment' || current?.kind !== 'segment' || last.timeline !== current.timeline) return;
    const next = segmentNumber(last, this.#segmentSize) + 1;
    if (next > segmentNumber(current, this.#segmentSize)) return;
    const name = walSegmentName(last.timeline, next, this.#segmentSize);
    await writeFile(join(this.#spool, `${name}.partial`), '');
    this.o.log.info(
      { target: this.o.target.name, from: name },
      'ship postgres: streaming from the first segment not archived',
    );
  }

  /**
   * A receiver pads a new segment file to its full size before it writes WAL into it; one that
   * ran out of room while padding leaves a `.partial` of neither 0 bytes nor the segment's size,
   * which every receiver after it refuses ("should be 0 or …"), so the stream would stay stopped
   * after the disk had room again. Such a file holds only the padding's zeros: it is removed, and
   * the next receiver begins that segment again. One holding anything else is left, and said.
   */
  async #dropHalfPadded(): Promise<void> {
    for (const f of await readdir(this.#spool).catch(() => [] as string[])) {
      if (!f.endsWith('.partial') || parseWalFileName(f.slice(0, -'.partial'.length))?.kind !== 'segment') continue;
      const path = join(this.#spool, f);
      const bytes = await readFile(path).catch(() => null);
      if (!bytes || bytes.length === 0 || bytes.length === this.#segmentSize) continue;
      if (bytes.some((b) => b !== 0)) {
        this.o.log.warn(
          { target: this.o.target.name, file: path, bytes: bytes.length },
          'ship postgres: a segment file of the wrong size holds WAL; the receiver will refuse it',
        );
        continue;
      }
      await rm(path, { force: true });
      this.o.log.info(
        { target: this.o.target.name, file: path, bytes: bytes.length },
        'ship postgres: removed a segment file the receiver could not finish padding (disk full?)',
      );
    }
  }

  async #spawn(): Promise<void> {
    await this.#dropHalfPadded();
    await this.#prime();
    const slot = this.o.target.config.ship.postgres.slot;
    const r = startReceiver(this.#url, {
      dir: this.#spool,
      applicationName: this.applicationName,
      command: this.#command,
      ...(slot ? { slot } : {}),
    });
    this.#receiver = r;
    if (r.child.pid) await writeFile(join(this.#spool, LOCK_FILE), `${process.pid} ${r.child.pid}\n`);
    this.#startedAt = Date.now();
    void r.exited.then(async (code) => {
      if (this.#receiver === r) this.#receiver = null;
      if (this.#stopped) return;
      this.#lastError = r.stderr().trim().split('\n').slice(-2).join(' | ') || `exit code ${code}`;
      const full = /No space left on device/.test(this.#lastError);
      this.o.log.error(
        {
          target: this.o.target.name,
          code,
          stderr: this.#lastError,
          ...(full ? { hint: `the disk of the spool ${this.#spool} is full: the stream waits until it has room` } : {}),
        },
        'ship postgres: receiver ended',
      );
      // WAL recycled before the receiver had it (no slot, a long outage): started again from
      // an empty spool it begins at the server's current segment. What it missed is in the archive.
      if (/has already been removed/.test(this.#lastError)) {
        for (const f of await readdir(this.#spool).catch(() => [] as string[])) {
          if (parseWalFileName(f.replace(/\.partial$/, ''))) await rm(join(this.#spool, f), { force: true });
        }
      }
    });
    // A receiver that cannot start (refused, not installed) says so at once.
    await new Promise((r) => setTimeout(r, 200));
    if (!this.#receiver) throw this.#receiverFailed();
  }

  async tick(): Promise<void> {
    if (this.#stopped) return;
    if (!this.#receiver && Date.now() - this.#startedAt > RESTART_AFTER_MS) {
      this.o.log.info({ target: this.o.target.name }, 'ship postgres: starting the receiver again');
      await this.#spawn().catch(() => {});
    }
    const now = this.#now();
    let positions = await this.#probe.read();
    this.#samples.push({ at: now, position: positions.server });
    // The receiver is a moment behind the server (it flushes, then reports): a round waits for it
    // to reach where the server stood at the round's start, a little, rather than ship a round late.
    const wait = Date.now() + Math.min(250, this.o.target.config.ship.intervalMs / 2);
    while (
      this.#receiver &&
      positions.received !== null &&
      positions.received < positions.server &&
      Date.now() < wait
    ) {
      await new Promise((r) => setTimeout(r, 20));
      const again = await this.#probe.read();
      positions = { server: positions.server, received: again.received };
    }
    await this.#shipUpTo(positions.received, now);
    // The oldest change not yet shipped: the first sample beyond what the store holds.
    // Up to the next 8-byte boundary: where the next record would begin. The zeros between are
    // the end of the last record or nothing, and a restore pads a segment with zeros anyway.
    const shippedTo = Math.ceil(this.#shippedPosition() / 8) * 8;
    this.#samples = this.#samples.filter((s) => s.position > shippedTo);
    this.stats.pendingSince = this.#samples[0]?.at ?? null;
    if (++this.#round % TIDY_EVERY === 0) {
      // Tried again TIDY_EVERY rounds later; nothing is lost meanwhile, the store only holds more.
      await this.#tidy().catch((err: unknown) =>
        this.o.log.warn(
          { target: this.o.target.name, err: { message: (err as Error).message } },
          'ship postgres: removing streamed segments the archive holds failed',
        ),
      );
    }
  }

  /** The byte position up to which the stream holds every segment it has begun. */
  #shippedPosition(): number {
    let best = 0;
    for (const [name, bytes] of this.#shipped) {
      const parsed = parseWalFileName(name);
      if (!parsed) continue;
      best = Math.max(best, segmentNumber(parsed, this.#segmentSize) * this.#segmentSize + bytes);
    }
    return best;
  }

  /**
   * Ships what the receiver has flushed. With the receiver's flush position (the server shows
   * it to superusers and pg_read_all_stats), exactly up to it; without, up to what reads the
   * same twice, 10 ms apart, and stands on valid WAL pages: a read racing a write may see a
   * later page before an earlier one, never both reads the same way.
   */
  async #shipUpTo(received: number | null, now: Date): Promise<void> {
    const size = this.#segmentSize;
    const files = (await readdir(this.#spool).catch(() => [] as string[]))
      .map((f) => ({ file: f, name: f.replace(/\.partial$/, '') }))
      .filter((f) => parseWalFileName(f.name)?.kind === 'segment')
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const { file, name } of files) {
      const segno = segmentNumber(parseWalFileName(name) as NonNullable<ReturnType<typeof parseWalFileName>>, size);
      // A segment the receiver closed (renamed from .partial) is whole.
      const whole = file === name;
      const available = whole ? size : received === null ? size : Math.min(size, Math.max(0, received - segno * size));
      const shipped = await this.#shippedOf(name);
      if (available <= shipped) continue;
      const want = Math.min(available - shipped, MAX_PIECE_BYTES);
      let payload: Buffer;
      let handle: Awaited<ReturnType<typeof open>> | undefined;
      try {
        handle = await open(join(this.#spool, file), 'r');
        const read = async () => {
          const buf = Buffer.alloc(want);
          const { bytesRead } = await (handle as NonNullable<typeof handle>).read(buf, 0, want, shipped);
          return buf.subarray(0, bytesRead);
        };
        payload = await read();
        if (!whole && received === null) {
          await new Promise((r) => setTimeout(r, 10));
          payload = payload.subarray(0, settledLength(payload, await read(), segno * size + shipped));
        } else if (payload.length !== want) continue;
      } catch (err) {
        // Renamed from .partial as it closed: the next round finds it under its own name.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      } finally {
        await handle?.close();
      }
      if (payload.length === 0) continue;
      const header: PgStreamPieceHeader = {
        format: PG_STREAM_PIECE_FORMAT,
        segment: name,
        segmentSize: size,
        offset: shipped,
        length: payload.length,
        shippedAt: now.toISOString(),
        ...(shipped === 0 && payload.length >= 32 ? { systemIdentifier: payload.readBigUInt64LE(24).toString() } : {}),
      };
      const body = await encodeSegment({ ...header }, payload, this.o.runtime.recipients);
      await this.o.runtime.store.put(streamPieceKey(this.o.runtime, this.o.target.name, name, shipped, now), body);
      this.#shipped.set(name, shipped + payload.length);
      this.stats.bytesShipped += payload.length;
      this.stats.segments++;
      this.stats.lastSegmentAt = now;
    }
    // The spool keeps the newest whole segment (where a receiver started again goes on) and the one being written.
    const whole = files.filter((f) => f.file === f.name && (this.#shipped.get(f.name) ?? 0) >= size);
    for (const f of whole.slice(0, -1)) await unlink(join(this.#spool, f.file)).catch(() => {});
    for (const name of [...this.#shipped.keys()]) {
      if (!files.some((f) => f.name === name)) this.#shipped.delete(name);
    }
  }

  /** How much of a segment the store holds from its start: asked once per segment, then kept. */
  async #shippedOf(name: string): Promise<number> {
    const known = this.#shipped.get(name);
    if (known !== undefined) return known;
    let covered = 0;
    const prefix = layout.streamPostgresSegmentPrefix(this.o.target.name, name);
    const pieces: Array<{ offset: number; key: string }> = [];
    for await (const o of this.o.runtime.store.list(prefix)) {
      const m = /^(\d{12})-/.exec(o.key.slice(prefix.length));
      if (m) pieces.push({ offset: Number(m[1]), key: o.key });
    }
    pieces.sort((a, b) => a.offset - b.offset);
    for (const p of pieces) {
      if (p.offset > covered) break;
      // The header says how long it is; the key only where it starts.
      const { header } = await decodeSegment(
        await this.o.runtime.store.getBytes(p.key),
        p.key.endsWith('.age'),
        () => this.o.runtime.identities(),
        `streamed WAL piece ${p.key}`,
      );
      covered = Math.max(covered, p.offset + Number((header as unknown as PgStreamPieceHeader).length));
    }
    // Nothing streamed, but archived (the stream of it tidied away): nothing to send again.
    if (covered === 0 && (await readWalRecord(this.o.runtime, this.o.target.name, name))) {
      covered = this.#segmentSize;
    }
    this.#shipped.set(name, covered);
    return covered;
  }

  /**
   * Streamed segments the archive has held for STREAM_KEEP_AFTER_ARCHIVED_MS, older than the one
   * being written, are of no more use. Their first piece goes first: a reader racing the removal
   * finds no segment rather than a shorter one.
   */
  async #tidy(): Promise<void> {
    const { runtime, target } = this.o;
    const streamed = await listStreamedPieces(runtime, target.name);
    const newest = [...streamed.keys()].sort().at(-1);
    const archivedBefore = this.#now().getTime() - STREAM_KEEP_AFTER_ARCHIVED_MS;
    for (const [name, pieces] of streamed) {
      if (name === newest) continue;
      const record = await readWalRecord(runtime, target.name, name);
      if (!record || Date.parse(record.pushedAt) > archivedBefore) continue;
      for (const p of [...pieces].sort((a, b) => a.offset - b.offset)) await runtime.store.delete(p.key);
    }
  }

  /** Ends the receiver; ships nothing more (Shipping.stop runs a last round first). */
  async stop(): Promise<void> {
    this.#stopped = true;
    const r = this.#receiver;
    this.#receiver = null;
    if (r) {
      r.child.kill('SIGTERM');
      const ended = await Promise.race([r.exited.then(() => true), new Promise((x) => setTimeout(x, 5_000, false))]);
      if (!ended) r.child.kill('SIGKILL');
    }
    await this.#probe?.close();
    if (this.#locked) await rm(join(this.#spool, LOCK_FILE), { force: true }).catch(() => {});
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether a process is a pg_receivewal writing into `spool` (a pid may have been reused since). */
async function isReceiverOf(pid: number, spool: string): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const args = cmdline.split('\0');
  return (args[0] ?? '').endsWith('pg_receivewal') && args.includes(`--directory=${spool}`);
}

/** PostgreSQL's WAL page size (XLOG_BLCKSZ as built by default). */
const WAL_PAGE = 8192;

/**
 * How much of `first` (read at byte `position` of the log) is settled: the bytes the second read
 * agrees with, without the zeros after the last byte written, and only over pages whose header
 * names their own position (a page of zeros before a written one is a write not yet seen).
 */
export function settledLength(first: Buffer, second: Buffer, position: number): number {
  let end = Math.min(first.length, second.length);
  for (let i = 0; i < end; i++) {
    if (first[i] !== second[i]) {
      end = i;
      break;
    }
  }
  while (end > 0 && first[end - 1] === 0) end--;
  // Each page begins with its header: magic (2 bytes), info (2), timeline (4), its own address (8).
  const firstPage = Math.ceil(position / WAL_PAGE) * WAL_PAGE;
  for (let page = firstPage; page - position < end; page += WAL_PAGE) {
    const at = page - position;
    if (at + 16 > first.length || Number(first.readBigUInt64LE(at + 8)) !== page) return at;
  }
  return end;
}
