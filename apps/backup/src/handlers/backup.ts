// The backup procedure: one consistent cut of a target (database, state, reports, config,
// audit logs) streamed into one archive, described by a manifest that is written last.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import {
  type ResolvedTarget,
  sha256hex,
  type TarSourceEntry,
  type TarWrittenEntry,
  writeArchive,
} from '@lifeboat/adapters';
import {
  BackupRequest,
  BackupResult,
  compactUtc,
  type DatabaseSnapshot,
  describeZodError,
  inStep,
  isLifeboatError,
  type Lease,
  LifeboatError,
  layout,
  MANIFEST_FORMAT,
  Manifest,
  type ManifestEntry,
  makeBackupId,
  sealManifest,
} from '@lifeboat/domain';
import { type BackupContext, contextDefaults, throttled } from '../context.js';
import { type CutFile, cutFiles } from '../cut.js';
import { archivePathFor, selectFiles } from '../select-files.js';
import { listBackups } from './catalog.js';
import { verifyBackup } from './verify.js';

export function parseBackupRequest(payload: unknown): BackupRequest {
  const parsed = BackupRequest.safeParse(payload);
  if (!parsed.success) {
    throw new LifeboatError('INVALID_REQUEST', describeZodError(parsed.error, 'backup request'));
  }
  return parsed.data;
}

/** Where a SQLite database sits relative to the target root (its own name when it lives elsewhere). */
function sqliteSource(target: ResolvedTarget): string | undefined {
  const db = target.config.database;
  if (db?.engine !== 'sqlite') return undefined;
  const rel = relative(target.root, resolve(target.root, db.path));
  return rel.startsWith('..') || isAbsolute(rel) ? basename(db.path) : rel.split(sep).join('/');
}

/**
 * The committed backup this request already has, unless it failed its verification: the one
 * for its schedule slot, or the one an earlier run of the same job committed before it died
 * (killed while verifying, say), so a job run again makes no second backup.
 */
async function existingFor(ctx: BackupContext, target: string, scheduledAt: string | undefined) {
  if (!scheduledAt && !ctx.jobId) return undefined;
  const slot = scheduledAt ? new Date(scheduledAt).getTime() : Number.NaN;
  return (await listBackups(ctx.runtime, target)).find(
    (b) =>
      b.verification?.ok !== false &&
      ((b.scheduledAt !== undefined && new Date(b.scheduledAt).getTime() === slot) ||
        (ctx.jobId !== undefined && b.jobId === ctx.jobId)),
  );
}

/** How long a schedule slot's lock lives without renewal; renewed every third of it. */
const SLOT_LOCK_TTL_MS = 30_000;
/** Pause between looks at a slot's lock while another run holds it. */
const SLOT_WAIT_MS = 1_000;

/**
 * Takes the lock of a schedule slot, waiting while another run holds it; null when no lock
 * could be had for another reason (logged): the lock guards against a rare overlap, and a
 * lock directory that cannot be written (a read-only config mount) must not cost the backup.
 */
async function takeSlot(ctx: BackupContext, target: string, scheduledAt: string): Promise<Lease | null> {
  if (!ctx.locks) return null;
  const name = `backup:${target}:${compactUtc(new Date(scheduledAt))}`;
  const holder = `backup ${contextDefaults(ctx).host} pid ${process.pid}`;
  let told = false;
  for (;;) {
    try {
      return await ctx.locks.acquire(name, holder, SLOT_LOCK_TTL_MS);
    } catch (err) {
      if (!isLifeboatError(err) || err.code !== 'CONFLICT') {
        ctx.log.warn(
          { scheduledAt, err: { message: (err as Error).message } },
          'the lock of this slot could not be taken; going on without it',
        );
        return null;
      }
    }
    if (!told) ctx.log.info({ scheduledAt }, 'another run is making the backup for this slot; waiting for it');
    told = true;
    ctx.signal?.throwIfAborted();
    await new Promise((r) => setTimeout(r, SLOT_WAIT_MS));
  }
}

/** Proves a committed backup reads back as written, to the level `backup.verifyAfter` asks; throws VERIFY_FAILED when it does not. */
async function verifyCommitted(
  ctx: BackupContext,
  target: string,
  backupId: string,
): Promise<BackupResult['verification']> {
  const level = ctx.runtime.loaded.config.backup.verifyAfter;
  if (level === 'none') return level;
  ctx.progress?.({ phase: `verify-${level}` });
  const record = await verifyBackup(ctx.runtime, target, backupId, level, ctx);
  if (!record.ok) {
    throw new LifeboatError(
      'VERIFY_FAILED',
      `backup ${backupId} failed its ${level} verification: ${record.problems.join('; ')}`,
    );
  }
  return level;
}

/** Runs one backup. Bad input fails at once; a crash at any point leaves no manifest. */
export async function backup(payload: unknown, ctx: BackupContext): Promise<BackupResult> {
  const request = parseBackupRequest(payload);
  // Two runs for one slot at once (a CronJob fired twice) take turns on the slot's lock: the
  // second finds the first one's backup instead of making another.
  const slot = request.scheduledAt ? await takeSlot(ctx, request.target, request.scheduledAt) : null;
  try {
    return await makeBackup(request, ctx, slot);
  } finally {
    await slot?.release();
  }
}

async function makeBackup(request: BackupRequest, ctx: BackupContext, slot: Lease | null): Promise<BackupResult> {
  const { now, host, version } = contextDefaults(ctx);
  const started = Date.now();
  const { runtime, log } = ctx;
  const target = runtime.target(request.target);
  const store = runtime.store;
  const settings = runtime.loaded.config.backup;
  // Read first: a key configured but not set stops the backup before anything is written.
  const sealKey = runtime.manifestKey();

  const includeDatabase = request.kind !== 'state';
  const includeFiles = request.kind !== 'database';
  if (request.kind === 'database' && !target.config.database) {
    throw new LifeboatError('INVALID_REQUEST', `target ${target.name} has no database to back up (kind "database")`, {
      hint: `set targets.${target.name}.database in ${runtime.loaded.path}, or use --kind state`,
    });
  }

  const existing = await existingFor(ctx, target.name, request.scheduledAt);
  if (existing) {
    log.info(
      { backupId: existing.backupId, scheduledAt: request.scheduledAt, jobId: ctx.jobId },
      ctx.jobId && existing.jobId === ctx.jobId ? 'backup for this job exists' : 'backup for this slot exists',
    );
    return BackupResult.parse({
      backupId: existing.backupId,
      target: target.name,
      manifestKey: layout.manifest(target.name, existing.backupId),
      bytes: existing.bytes,
      sourceBytes: existing.sourceBytes,
      durationMs: 0,
      entries: existing.entries,
      encrypted: existing.encrypted,
      omitted: [],
      // The run that made it may have died before proving it readable.
      verification: existing.verification ? 'none' : await verifyCommitted(ctx, target.name, existing.backupId),
      deduplicated: true,
      // The run that made it may have died before queueing its copies; the job ids make this idempotent.
      replication: await queueCopies(ctx, target.name, existing.backupId),
    });
  }

  try {
    const removed = await store.cleanupIncomplete(
      layout.backupsPrefix(target.name),
      settings.abandonedUploadMinutes * 60_000,
    );
    if (removed.length) log.warn({ removed }, 'removed abandoned uploads of earlier backups');
  } catch (err) {
    throw inStep('check store', err);
  }

  const engine = includeDatabase ? runtime.engineFor(target) : null;
  const recipients = runtime.recipients;
  const encrypted = recipients.length > 0;
  const stagingRoot = ctx.stagingDir ?? settings.stagingDir ?? tmpdir();
  const staging = await mkdtemp(resolve(runtime.loaded.baseDir, stagingRoot, 'lifeboat-backup-'));
  let archiveKey: string | undefined;
  let committed = false;
  let snapshotting: Promise<DatabaseSnapshot> | undefined;
  try {
    // 1. The cut: the files first (append-only ones by size, others copied), then the database.
    const dbSource = sqliteSource(target);
    const selection = includeFiles
      ? await selectFiles(target.root, target.config, dbSource ? [dbSource] : []).catch((err) => {
          throw new LifeboatError('TARGET_ERROR', `cannot read target directory ${target.root}: ${err.message}`, {
            hint: `check targets.${target.name}.root in ${runtime.loaded.path}`,
          });
        })
      : { files: [], skipped: [], warnings: [] };
    const omitted: Manifest['omitted'] = [...selection.skipped];
    const warnings = [...selection.warnings];
    const chosen = selection.files.filter((f) => {
      if (!f.secret || encrypted) return true;
      omitted.push({ source: f.source, role: f.role, reason: 'secret, and no encryption recipient is configured' });
      return false;
    });
    if (chosen.length < selection.files.length) {
      log.warn(
        { omitted: omitted.filter((o) => o.reason.startsWith('secret')).map((o) => o.source) },
        'secret files left out: configure encryption.recipients to include them',
      );
    }
    const createdAt = now();
    const backupId = makeBackupId(createdAt, request.kind, randomBytes(2).toString('hex'));
    ctx.progress?.({ phase: 'cut', detail: backupId });
    let cut: CutFile[];
    try {
      cut = await cutFiles(target.root, chosen, staging, (f) => archivePathFor(f.role, f.source), warnings);
    } catch (err) {
      throw inStep('cut files', err);
    }

    // The database is copied beside the archive: the cut files stream into it meanwhile, and
    // the database goes in after them. The cut's order is unchanged: files, then database.
    let snapshot: DatabaseSnapshot | null = null;
    let snapshotError: LifeboatError | undefined;
    if (engine) {
      ctx.progress?.({ phase: 'snapshot', detail: engine.location });
      snapshotting = engine.snapshot(staging).catch((err: unknown) => {
        snapshotError = inStep('snapshot database', err);
        throw snapshotError;
      });
      snapshotting.catch(() => {}); // awaited when the archive reaches it
    }
    for (const w of warnings) log.warn({ backupId }, w);
    // The snapshot's own checks (SQLite's integrity check and row counts) run beside the
    // archive; the manifests wait for them.
    const checkedFacts = async (): Promise<Manifest['database']> => {
      if (!snapshot) return null;
      let facts: Awaited<DatabaseSnapshot['facts']>;
      try {
        facts = await snapshot.facts;
      } catch (err) {
        throw inStep('check database snapshot', err);
      }
      if (!facts.integrity.ok) {
        const warning = `database: the snapshot fails its integrity check: ${facts.integrity.detail}`;
        warnings.push(warning);
        log.warn({ backupId }, warning);
      }
      return { ...facts, path: `database/${snapshot.name}` };
    };

    // 2. Everything streams into the archive; the manifest goes in last.
    const entryFor = new Map<string, Omit<ManifestEntry, 'size' | 'sha256'>>();
    for (const f of cut) {
      entryFor.set(f.path, {
        path: f.path,
        source: f.source,
        role: f.role,
        secret: f.secret,
        mode: f.mode,
        ...(f.appendOnly ? { appendOnlyOffset: f.size } : {}),
      });
    }
    // A SQLite file comes back with its own permissions; a dump is private. Its live size
    // stands in for the snapshot's in the progress until the copy is done.
    const live = dbSource ? await stat(resolve(target.root, dbSource)).catch(() => undefined) : undefined;
    const dbMode = live ? live.mode & 0o777 : 0o600;
    const pending = snapshotting;
    async function* sources(): AsyncGenerator<TarSourceEntry> {
      for (const f of cut) yield { path: f.path, size: f.size, mode: f.mode, mtime: f.mtime, open: f.open };
      if (!pending) return;
      const snap = await pending;
      snapshot = snap;
      const path = `database/${snap.name}`;
      entryFor.set(path, { path, source: dbSource ?? snap.name, role: 'database', secret: false, mode: dbMode });
      yield {
        path,
        size: snap.size,
        mode: dbMode,
        mtime: createdAt,
        open: () => createReadStream(snap.file, { highWaterMark: 1 << 20 }),
      };
    }
    const totalBytes = cut.reduce((n, f) => n + f.size, live?.size ?? 0);
    archiveKey = layout.archive(target.name, backupId, encrypted);
    // Built once the snapshot is known: the consistency method and position come from it.
    const manifestBase = () => ({
      format: MANIFEST_FORMAT,
      backupId,
      target: target.name,
      kind: request.kind,
      reason: request.reason,
      requestedBy: request.requestedBy,
      ...(request.scheduledAt ? { scheduledAt: request.scheduledAt } : {}),
      ...(ctx.jobId ? { jobId: ctx.jobId } : {}),
      createdAt: createdAt.toISOString(),
      host,
      tool: { name: 'lifeboat' as const, version },
      consistency: {
        method: snapshot?.method ?? ('none' as const),
        ...(snapshot?.position ? { position: snapshot.position } : {}),
        appendOnlyOffsets: Object.fromEntries(cut.filter((f) => f.appendOnly).map((f) => [f.source, f.size])),
      },
      omitted,
      warnings,
    });
    const archiveFacts = {
      key: archiveKey,
      compression: 'gzip' as const,
      encryption: encrypted ? { type: 'age' as const, recipients: [...recipients] } : null,
    };
    const toEntries = (written: readonly TarWrittenEntry[]): ManifestEntry[] =>
      written.map((w) => ({ ...(entryFor.get(w.path) as ManifestEntry), size: w.size, sha256: w.sha256 }));
    // Checked before anything is written: a manifest readers would reject must never be committed.
    const checked = (m: unknown): Manifest => {
      const parsed = Manifest.safeParse(m);
      if (!parsed.success) throw new LifeboatError('INTERNAL', describeZodError(parsed.error, 'manifest'));
      return parsed.data;
    };
    let entries: ManifestEntry[] = [];
    let database: Manifest['database'] = null;
    const report = throttled(ctx.progress);
    let written: Awaited<ReturnType<typeof writeArchive>>;
    try {
      written = await writeArchive(store, archiveKey, {
        entries: sources(),
        compressionLevel: settings.compressionLevel,
        recipients,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        trailer: async (w) => {
          entries = toEntries(w);
          database = await checkedFacts();
          const inner = checked({ ...manifestBase(), database, entries, archive: archiveFacts });
          return { path: 'manifest.json', body: Buffer.from(`${JSON.stringify(inner, null, 2)}\n`) };
        },
        onProgress: (p) => report.push({ phase: 'archive', bytes: p.sourceBytes, totalBytes }),
      });
    } catch (err) {
      throw snapshotError ?? inStep('write archive', err);
    }
    report.flush();

    // 3. The commit point: the manifest, written last, sealed (docs/FORMAT.md §3).
    const manifest = sealManifest(
      checked({
        ...manifestBase(),
        database,
        completedAt: now().toISOString(),
        entries,
        archive: { ...archiveFacts, size: written.size, sha256: written.sha256 },
      }),
      sha256hex,
      sealKey,
    );
    const manifestKey = layout.manifest(target.name, backupId);
    try {
      // A run that lost its slot's lock (stalled past the lease) may share the slot with another: it stops here.
      slot?.assertHeld();
      await store.put(manifestKey, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    } catch (err) {
      throw inStep('write manifest', err);
    }
    committed = true;
    log.info(
      { backupId, target: target.name, bytes: written.size, sourceBytes: written.sourceBytes, entries: entries.length },
      'backup committed',
    );

    // 4. Prove the stored copy reads back as written.
    const level = await verifyCommitted(ctx, target.name, backupId);

    return BackupResult.parse({
      backupId,
      target: target.name,
      manifestKey,
      bytes: written.size,
      sourceBytes: written.sourceBytes,
      durationMs: Date.now() - started,
      entries: entries.length,
      encrypted,
      omitted: omitted.map((o) => ({ source: o.source, reason: o.reason })),
      warnings,
      verification: level,
      deduplicated: false,
      replication: await queueCopies(ctx, target.name, backupId),
    });
  } catch (err) {
    // Nothing half-made may look complete: without a manifest the archive is garbage.
    if (!committed && archiveKey) await store.delete(archiveKey).catch(() => undefined);
    throw err;
  } finally {
    // A copy still being made must end before its directory goes.
    await snapshotting?.then(
      () => undefined,
      () => undefined,
    );
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Queues a copy of a committed backup to every other location. The backup stands whether or
 * not this works: a copy that could not be queued is logged, and `lifeboat backups replicate`
 * (or the next backup's catch-up) makes it later.
 */
async function queueCopies(ctx: BackupContext, target: string, backupId: string): Promise<BackupResult['replication']> {
  const others = ctx.runtime.locations.filter((l) => !l.primary);
  if (others.length === 0) return [];
  if (!ctx.replicate) {
    ctx.log.warn({ backupId, locations: others.map((l) => l.name) }, 'copies not queued: no replicate queue here');
    return [];
  }
  const queued: BackupResult['replication'] = [];
  for (const location of others) {
    try {
      const { jobId } = await ctx.replicate({ target, backupId, location: location.name, requestedBy: 'backup' });
      queued.push({ location: location.name, jobId });
    } catch (err) {
      ctx.log.error({ backupId, location: location.name, err: { message: (err as Error).message } }, 'copy not queued');
    }
  }
  return queued;
}
