// `lifeboat backup`, `backups list`, `verify`, `extract`, `prune`: the backup catalog from the CLI.
import { randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  type BackupSummary,
  extractBackup,
  pruneBackups,
  readCatalog,
  resolveBackupId,
  verifyArchiveFile,
  verifyBackup,
} from '@lifeboat/backup';
import {
  BackupRequest,
  BackupResult,
  describeZodError,
  LifeboatError,
  Manifest,
  scheduledBackupJobId,
} from '@lifeboat/domain';
import { cliLogger, distributed, type GlobalOptions, openBus, openRuntime } from '../context.js';
import { EXIT, formatBytes, formatDuration, printJson, progressPrinter } from '../output.js';

export async function backupCommand(
  opts: GlobalOptions & { kind: string; reason: string; json?: boolean; scheduledAt?: string },
): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  const parsed = BackupRequest.safeParse({
    target,
    kind: opts.kind,
    reason: opts.reason,
    requestedBy: `cli:${process.env.USER ?? 'unknown'}`,
    ...(opts.scheduledAt ? { scheduledAt: opts.scheduledAt } : {}),
  });
  if (!parsed.success) throw new LifeboatError('INVALID_REQUEST', describeZodError(parsed.error, 'backup'));
  const request = parsed.data;
  const bus = await openBus(runtime);
  const progress = progressPrinter(!opts.json && process.stderr.isTTY === true);
  try {
    const jobId = request.scheduledAt
      ? scheduledBackupJobId(target, new Date(request.scheduledAt))
      : `backup:${target}:${randomUUID()}`;
    await bus.enqueue('backup', request, { jobId });
    if (!opts.json)
      process.stderr.write(`backup of ${target} queued (${distributed() ? 'BullMQ' : 'embedded'}, job ${jobId})\n`);
    // A job nobody picks up would wait silently: say so once, then keep waiting.
    let heard = false;
    const notice =
      distributed() && !opts.json
        ? setTimeout(() => {
            if (!heard)
              process.stderr.write('still queued after 10 s: is a backup worker running on this Redis and prefix?\n');
          }, 10_000)
        : undefined;
    const raw = await bus
      .result('backup', jobId, {
        onProgress: (p) => {
          heard = true;
          progress.update(p);
        },
        timeoutMs: 6 * 3600_000,
      })
      .finally(() => clearTimeout(notice));
    progress.done();
    const result = BackupResult.parse(raw);
    if (opts.json) printJson(result);
    else {
      console.log(
        `backup ${result.backupId}: ${result.entries} entries, ${formatBytes(result.sourceBytes)} → ${formatBytes(result.bytes)}` +
          `${result.encrypted ? ' (encrypted)' : ''} in ${formatDuration(result.durationMs)}` +
          `${result.verification !== 'none' ? `, ${result.verification} verification passed` : ''}` +
          `${result.deduplicated ? ' (already made for this slot)' : ''}`,
      );
      for (const o of result.omitted) console.log(`  left out ${o.source}: ${o.reason}`);
      for (const w of result.warnings) console.log(`  warning: ${w}`);
    }
    return EXIT.ok;
  } finally {
    progress.done();
    await bus.close();
  }
}

function verificationLabel(b: BackupSummary): string {
  if (!b.verification) return 'unverified';
  return `${b.verification.ok ? 'verified' : 'FAILED'} (${b.verification.level})`;
}

export async function listCommand(opts: GlobalOptions & { json?: boolean }): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  const { backups, unreadable } = await readCatalog(runtime, target);
  if (opts.json) {
    printJson({ target, store: runtime.store.location, backups, unreadable });
    return EXIT.ok;
  }
  for (const u of unreadable) console.error(`warning: ${u.problem}`);
  if (backups.length === 0) {
    console.log(`no backups of ${target} in ${runtime.store.location}`);
    return EXIT.ok;
  }
  console.log(`backups of ${target} in ${runtime.store.location}:`);
  for (const b of backups) {
    console.log(
      `  ${b.backupId}  ${b.kind.padEnd(10)} ${formatBytes(b.bytes).padStart(10)}  ${String(b.entries).padStart(4)} entries` +
        `  ${b.encrypted ? 'encrypted' : 'plain    '}  ${verificationLabel(b)}${b.warnings ? `  ${b.warnings} warning(s)` : ''}`,
    );
  }
  return EXIT.ok;
}

export async function verifyCommand(
  id: string | undefined,
  opts: GlobalOptions & { full?: boolean; json?: boolean; file?: string; manifest?: string },
): Promise<number> {
  if (opts.file !== undefined) {
    if (id !== undefined) throw new LifeboatError('INVALID_REQUEST', 'verify: give a backup id or --file, not both');
    return verifyFileCommand(opts.file, opts);
  }
  if (opts.manifest !== undefined) throw new LifeboatError('INVALID_REQUEST', 'verify: --manifest goes with --file');
  if (id === undefined) {
    throw new LifeboatError('INVALID_REQUEST', 'verify: which backup? Give an id, "latest", or --file <archive>');
  }
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  const backupId = await resolveBackupId(runtime, target, id);
  const level = opts.full ? 'full' : 'quick';
  const progress = progressPrinter(!opts.json && process.stderr.isTTY === true);
  const record = await verifyBackup(runtime, target, backupId, level, { log: cliLogger(), progress: progress.update });
  progress.done();
  if (opts.json) printJson(record);
  else {
    console.log(
      `${record.ok ? 'OK' : 'FAILED'}: ${level} verification of ${backupId} in ${formatDuration(record.durationMs)}`,
    );
    for (const c of record.checks)
      if (!c.ok || level === 'quick') console.log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
    if (record.ok && level === 'full') console.log(`  ${record.checks.length} checks passed`);
  }
  return record.ok ? EXIT.ok : EXIT.failed;
}

async function readManifestFile(path: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new LifeboatError('INVALID_REQUEST', `cannot read manifest ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new LifeboatError('INVALID_REQUEST', `manifest ${path} is not JSON: ${(err as Error).message}`);
  }
  const parsed = Manifest.safeParse(json);
  if (!parsed.success) throw new LifeboatError('INVALID_REQUEST', describeZodError(parsed.error, `manifest ${path}`));
  return parsed.data;
}

/** `verify --file`: an archive in no store; the configuration is read only for an identity to decrypt it. */
async function verifyFileCommand(file: string, opts: GlobalOptions & { json?: boolean; manifest?: string }) {
  const manifest = opts.manifest === undefined ? undefined : await readManifestFile(opts.manifest);
  const progress = progressPrinter(!opts.json && process.stderr.isTTY === true);
  const total = (await stat(file).catch(() => undefined))?.size;
  const result = await verifyArchiveFile(resolve(file), {
    ...(manifest ? { manifest } : {}),
    identities: async () => (await openRuntime(opts)).identities(),
    onBytes: (bytes) => progress.update({ phase: 'verify-file', bytes, ...(total ? { totalBytes: total } : {}) }),
  }).finally(() => progress.done());
  if (opts.json) printJson(result);
  else {
    const what = result.backupId ? `backup ${result.backupId}` : 'an archive with no readable manifest';
    console.log(`${result.ok ? 'OK' : 'FAILED'}: ${file} (${what}) in ${formatDuration(result.durationMs)}`);
    const against =
      result.manifest === 'given'
        ? `entries checked against ${opts.manifest}`
        : result.manifest
          ? 'entries checked against the manifest inside it'
          : 'no manifest to check the entries against';
    const read = result.sha256
      ? `${formatBytes(result.size)}, sha256 ${result.sha256}`
      : `the read stopped after ${formatBytes(result.size)}`;
    console.log(`  ${read}${result.encrypted ? ', encrypted' : ''}; ${against}`);
    for (const c of result.checks) if (!c.ok) console.log(`  FAIL ${c.name}: ${c.detail}`);
    if (result.ok) console.log(`  ${result.checks.length} checks passed`);
    if (result.ok && result.manifest !== 'given')
      console.log("  the archive's own size and sha256 are not checked: give the stored manifest with --manifest");
  }
  return result.ok ? EXIT.ok : EXIT.failed;
}

export async function extractCommand(
  id: string,
  opts: GlobalOptions & { to: string; json?: boolean },
): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  const backupId = await resolveBackupId(runtime, target, id);
  const progress = progressPrinter(!opts.json && process.stderr.isTTY === true);
  const result = await extractBackup(runtime, target, backupId, opts.to, progress.update).finally(() =>
    progress.done(),
  );
  if (opts.json) printJson(result);
  else
    console.log(
      `extracted ${backupId}: ${result.files.length} files, ${formatBytes(result.bytes)} into ${result.destination} (checksums match the manifest)`,
    );
  return EXIT.ok;
}

export async function pruneCommand(opts: GlobalOptions & { dryRun?: boolean; json?: boolean }): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  const result = await pruneBackups(runtime, target, { dryRun: Boolean(opts.dryRun), log: cliLogger() });
  if (opts.json) {
    printJson(result);
    return EXIT.ok;
  }
  const verb = result.dryRun ? 'would delete' : 'deleted';
  console.log(`retention for ${target}: keep ${result.plan.keep.length}, ${verb} ${result.plan.delete.length}`);
  for (const k of result.plan.keep) console.log(`  keep   ${k.backupId}  ${k.reasons.join(', ')}`);
  for (const d of result.plan.delete)
    console.log(`  ${result.dryRun ? 'delete' : 'gone  '} ${d.backupId}  ${d.reasons.join(', ')}`);
  if (result.abandoned.length)
    console.log(`  ${verb} ${result.abandoned.length} objects of backups that never committed`);
  return EXIT.ok;
}
