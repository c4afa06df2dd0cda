// The backup procedure: one consistent cut of a target (database, state, reports, config,
// audit logs) streamed into one archive, described by a manifest that is written last.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { type TarSourceEntry, writeArchive } from '@lifeboat/adapters';
import {
  BackupRequest,
  BackupResult,
  type DatabaseSnapshot,
  describeZodError,
  inStep,
  LifeboatError,
  layout,
  MANIFEST_FORMAT,
  type Manifest,
  type ManifestEntry,
  makeBackupId,
} from '@lifeboat/domain';
import { type BackupContext, contextDefaults, throttled } from '../context.js';
import { archivePathFor, type SelectedFile, selectFiles } from '../select-files.js';
import { listBackups } from './catalog.js';
import { verifyBackup } from './verify.js';

interface CutFile extends SelectedFile {
  path: string;
  size: number;
  mode: number;
  mtime: Date;
  /** Opened at the cut, so the bytes read are the ones that existed then. */
  handle: FileHandle;
}

function readRange(handle: FileHandle, size: number): AsyncIterable<Uint8Array> {
  if (size === 0) return (async function* () {})();
  return createReadStream('', { fd: handle, start: 0, end: size - 1, autoClose: false, highWaterMark: 1 << 20 });
}

export function parseBackupRequest(payload: unknown): BackupRequest {
  const parsed = BackupRequest.safeParse(payload);
  if (!parsed.success) {
    throw new LifeboatError('INVALID_REQUEST', describeZodError(parsed.error, 'backup request'));
  }
  return parsed.data;
}

/** Runs one backup. Bad input fails at once; a crash at any point leaves no manifest. */
export async function backup(payload: unknown, ctx: BackupContext): Promise<BackupResult> {
  const request = parseBackupRequest(payload);
  const { now, host, version } = contextDefaults(ctx);
  const started = Date.now();
  const { runtime, log } = ctx;
  const target = runtime.target(request.target);
  const store = runtime.store;

  if (request.scheduledAt) {
    const existing = (await listBackups(runtime, target.name)).find((b) => b.scheduledAt === request.scheduledAt);
    if (existing) {
      log.info({ backupId: existing.backupId, scheduledAt: request.scheduledAt }, 'backup for this slot exists');
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
        verification: 'none',
        deduplicated: true,
      });
    }
  }

  const abandonedMs = runtime.loaded.config.backup.abandonedUploadMinutes * 60_000;
  try {
    const removed = await store.cleanupIncomplete(layout.backupsPrefix(target.name), abandonedMs);
    if (removed.length) log.warn({ removed }, 'removed abandoned uploads of earlier backups');
  } catch (err) {
    throw inStep('check store', err);
  }

  const includeDatabase = request.kind !== 'state';
  const includeFiles = request.kind !== 'database';
  const engine = includeDatabase ? runtime.engineFor(target) : null;
  const recipients = runtime.recipients;
  const encrypted = recipients.length > 0;

  const staging = await mkdtemp(join(ctx.stagingDir ?? tmpdir(), 'lifeboat-backup-'));
  const cut: CutFile[] = [];
  let archiveKey: string | undefined;
  let committed = false;
  try {
    // 1. Choose the files and open them: the cut for files is the moment they are opened.
    const dbSource =
      target.config.database?.engine === 'sqlite' ? target.config.database.path.split(sep).join('/') : undefined;
    const selection = includeFiles
      ? await selectFiles(target.root, target.config, dbSource ? [dbSource] : []).catch((err) => {
          throw new LifeboatError('TARGET_ERROR', `cannot read target directory ${target.root}: ${err.message}`, {
            hint: `check targets.${target.name}.root in ${runtime.loaded.path}`,
          });
        })
      : { files: [], skipped: [] };
    const omitted: Manifest['omitted'] = [...selection.skipped];
    for (const f of selection.files) {
      if (f.secret && !encrypted) {
        omitted.push({ source: f.source, role: f.role, reason: 'secret, and no encryption recipient is configured' });
        continue;
      }
      const handle = await open(join(target.root, f.source), 'r');
      const st = await handle.stat();
      cut.push({
        ...f,
        path: archivePathFor(f.role, f.source),
        size: st.size,
        mode: st.mode & 0o777,
        mtime: st.mtime,
        handle,
      });
    }
    if (omitted.some((o) => o.reason.startsWith('secret'))) {
      log.warn(
        { omitted: omitted.filter((o) => o.reason.startsWith('secret')).map((o) => o.source) },
        'secret files left out: configure encryption.recipients to include them',
      );
    }
    const createdAt = now();
    const backupId = makeBackupId(createdAt, request.kind, randomBytes(2).toString('hex'));
    ctx.progress?.({ phase: 'snapshot', detail: backupId });

    // 2. The database snapshot, right after the files' cut.
    let snapshot: DatabaseSnapshot | null = null;
    if (engine) {
      try {
        snapshot = await engine.snapshot(staging);
      } catch (err) {
        throw inStep('snapshot database', err);
      }
      if (!snapshot.facts.integrity.ok) {
        log.warn({ detail: snapshot.facts.integrity.detail }, 'the database snapshot fails its integrity check');
      }
    }
    const dbEntryPath = snapshot ? `database/${snapshot.name}` : undefined;
    // A SQLite file comes back with its own permissions; a dump is private.
    const dbMode = dbSource
      ? await stat(join(target.root, dbSource)).then(
          (s) => s.mode & 0o777,
          () => 0o600,
        )
      : 0o600;
    const dbSourceName = snapshot ? (dbSource ?? snapshot.name) : undefined;

    // 3. Stream everything into the archive; the manifest goes in last.
    const sources: TarSourceEntry[] = [];
    if (snapshot && dbEntryPath) {
      const snap = snapshot;
      sources.push({
        path: dbEntryPath,
        size: snap.size,
        mode: dbMode,
        mtime: createdAt,
        open: () => createReadStream(snap.file, { highWaterMark: 1 << 20 }),
      });
    }
    for (const f of cut) {
      sources.push({
        path: f.path,
        size: f.size,
        mode: f.mode,
        mtime: f.mtime,
        open: () => readRange(f.handle, f.size),
      });
    }
    const totalBytes = sources.reduce((n, s) => n + s.size, 0);
    archiveKey = layout.archive(target.name, backupId, encrypted);
    const manifestBase: Omit<Manifest, 'entries' | 'archive'> = {
      format: MANIFEST_FORMAT,
      backupId,
      target: target.name,
      kind: request.kind,
      reason: request.reason,
      requestedBy: request.requestedBy,
      ...(request.scheduledAt ? { scheduledAt: request.scheduledAt } : {}),
      createdAt: createdAt.toISOString(),
      host,
      tool: { name: 'lifeboat', version },
      consistency: {
        method: snapshot?.method ?? 'none',
        ...(snapshot?.position ? { position: snapshot.position } : {}),
        appendOnlyOffsets: Object.fromEntries(cut.filter((f) => f.appendOnly).map((f) => [f.source, f.size])),
      },
      omitted,
      database: snapshot && dbEntryPath ? { ...snapshot.facts, path: dbEntryPath } : null,
    };
    const archiveFacts = {
      key: archiveKey,
      compression: 'gzip' as const,
      encryption: encrypted ? { type: 'age' as const, recipients: [...recipients] } : null,
    };
    let entries: ManifestEntry[] = [];
    const buildEntries = (written: readonly { path: string; size: number; sha256: string }[]): ManifestEntry[] =>
      written.map((w) => {
        if (w.path === dbEntryPath) {
          return {
            path: w.path,
            source: dbSourceName as string,
            role: 'database',
            size: w.size,
            sha256: w.sha256,
            secret: false,
            mode: dbMode,
          };
        }
        const f = cut.find((c) => c.path === w.path) as CutFile;
        return {
          path: w.path,
          source: f.source,
          role: f.role,
          size: w.size,
          sha256: w.sha256,
          secret: f.secret,
          mode: f.mode,
          ...(f.appendOnly ? { appendOnlyOffset: f.size } : {}),
        };
      });
    const report = throttled(ctx.progress);
    let written: Awaited<ReturnType<typeof writeArchive>>;
    try {
      written = await writeArchive(store, archiveKey, {
        entries: sources,
        compressionLevel: runtime.loaded.config.backup.compressionLevel,
        recipients,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        trailer: (w) => {
          entries = buildEntries(w);
          const inner: Manifest = { ...manifestBase, entries, archive: archiveFacts };
          return { path: 'manifest.json', body: Buffer.from(`${JSON.stringify(inner, null, 2)}\n`) };
        },
        onProgress: (p) => report.push({ phase: 'archive', bytes: p.sourceBytes, totalBytes }),
      });
    } catch (err) {
      throw inStep('write archive', err);
    }
    report.flush();

    // 4. The commit point: the manifest, written last.
    const manifest: Manifest = {
      ...manifestBase,
      completedAt: now().toISOString(),
      entries,
      archive: { ...archiveFacts, size: written.size, sha256: written.sha256 },
    };
    const manifestKey = layout.manifest(target.name, backupId);
    try {
      await store.put(manifestKey, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    } catch (err) {
      throw inStep('write manifest', err);
    }
    committed = true;
    log.info(
      { backupId, target: target.name, bytes: written.size, sourceBytes: written.sourceBytes, entries: entries.length },
      'backup committed',
    );

    // 5. Prove the stored copy reads back as written.
    const level = runtime.loaded.config.backup.verifyAfter;
    if (level !== 'none') {
      ctx.progress?.({ phase: `verify-${level}` });
      const record = await verifyBackup(runtime, target.name, backupId, level, ctx);
      if (!record.ok) {
        throw new LifeboatError(
          'VERIFY_FAILED',
          `backup ${backupId} failed its ${level} verification: ${record.problems.join('; ')}`,
        );
      }
    }

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
      verification: level,
      deduplicated: false,
    });
  } catch (err) {
    // Nothing half-made may look complete: without a manifest the archive is garbage.
    if (!committed && archiveKey) await store.delete(archiveKey).catch(() => undefined);
    throw err;
  } finally {
    await Promise.all(cut.map((f) => f.handle.close().catch(() => undefined)));
    await rm(staging, { recursive: true, force: true });
  }
}
