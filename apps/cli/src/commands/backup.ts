// `lifeboat backup`, `backups list`, `verify`, `extract`, `prune`: the backup catalog from the CLI.
import { randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Runtime, sha256hex } from '@lifeboat/adapters';
import {
  type BackupSummary,
  copyJobs,
  extractBackup,
  type LocationCatalog,
  type PruneResult,
  planCopies,
  pruneBackups,
  readCatalog,
  readLocations,
  resolveBackupId,
  verifyArchiveFile,
  verifyBackup,
} from '@lifeboat/backup';
import {
  BackupRequest,
  BackupResult,
  describeZodError,
  type JobBus,
  LifeboatError,
  Manifest,
  manifestSealProblem,
  ReplicateResult,
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
    if (!opts.json) {
      console.log(
        `backup ${result.backupId}: ${result.entries} entries, ${formatBytes(result.sourceBytes)} → ${formatBytes(result.bytes)}` +
          `${result.encrypted ? ' (encrypted)' : ''} in ${formatDuration(result.durationMs)}` +
          `${result.verification !== 'none' ? `, ${result.verification} verification passed` : ''}` +
          `${result.deduplicated ? ' (already made for this slot)' : ''}`,
      );
      for (const o of result.omitted) console.log(`  left out ${o.source}: ${o.reason}`);
      for (const w of result.warnings) console.log(`  warning: ${w}`);
    }
    // The copies to the other locations: waited for, so the command ends with them made (or failed).
    const copies = await waitForCopies(bus, result.replication, !opts.json);
    if (opts.json) printJson({ ...result, copies });
    return copies.some((c) => c.outcome === 'failed') ? EXIT.failed : EXIT.ok;
  } finally {
    progress.done();
    await bus.close();
  }
}

interface CopyOutcome {
  location: string;
  jobId: string;
  outcome: 'copied' | 'present' | 'failed';
  error?: string;
}

async function waitForCopies(bus: JobBus, queued: BackupResult['replication'], print: boolean): Promise<CopyOutcome[]> {
  const out: CopyOutcome[] = [];
  for (const q of queued) {
    try {
      const r = ReplicateResult.parse(await bus.result('replicate', q.jobId, { timeoutMs: 6 * 3600_000 }));
      out.push({ ...q, outcome: r.outcome });
      if (print)
        console.log(
          `  ${r.outcome === 'copied' ? 'copied' : 'already'} in ${q.location}: ${formatBytes(r.bytes)}, checksum verified${r.outcome === 'copied' ? ` in ${formatDuration(r.durationMs)}` : ''}`,
        );
    } catch (err) {
      out.push({ ...q, outcome: 'failed', error: (err as Error).message });
      if (print) console.log(`  copy to ${q.location} FAILED: ${(err as Error).message}`);
    }
  }
  return out;
}

function verificationLabel(b: BackupSummary): string {
  if (!b.verification) return 'unverified';
  return `${b.verification.ok ? 'verified' : 'FAILED'} (${b.verification.level})`;
}

/** The state of one backup's copy in one location. */
type CopyState = 'verified' | 'unverified' | 'failed' | 'missing' | 'unknown';

function copyState(location: LocationCatalog, backupId: string): CopyState {
  if (!location.reachable) return 'unknown';
  const b = location.backups.find((x) => x.backupId === backupId);
  if (!b) return 'missing';
  return b.verification ? (b.verification.ok ? 'verified' : 'failed') : 'unverified';
}

export async function listCommand(opts: GlobalOptions & { json?: boolean }): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  const locations = await readLocations(runtime, target);
  const primary = locations[0] as LocationCatalog;
  // With nowhere else to look, a primary that does not answer is an error, as it always was.
  if (!locations.some((l) => l.reachable)) await readCatalog(runtime, target);
  // Every backup any location holds, described by the first location that has it.
  const byId = new Map<string, BackupSummary>();
  for (const l of locations) for (const b of l.backups) if (!byId.has(b.backupId)) byId.set(b.backupId, b);
  const backups = [...byId.values()]
    .sort((a, b) => (a.backupId < b.backupId ? -1 : 1))
    .map((b) => ({ ...b, copies: Object.fromEntries(locations.map((l) => [l.name, copyState(l, b.backupId)])) }));
  const unreadable = locations.flatMap((l) => l.unreadable.map((u) => ({ ...u, location: l.name })));
  if (opts.json) {
    printJson({
      target,
      store: primary.store,
      locations: locations.map((l) => ({
        name: l.name,
        store: l.store,
        reachable: l.reachable,
        ...(l.problem ? { problem: l.problem } : {}),
      })),
      backups,
      unreadable,
    });
    return EXIT.ok;
  }
  for (const u of unreadable) console.error(`warning: ${u.location}: ${u.problem}`);
  for (const l of locations)
    if (!l.reachable) console.error(`warning: location ${l.name} (${l.store}) unreachable: ${l.problem}`);
  if (backups.length === 0) {
    console.log(`no backups of ${target} in ${locations.map((l) => l.store).join(', ')}`);
    return EXIT.ok;
  }
  const several = locations.length > 1;
  console.log(
    `backups of ${target} in ${several ? locations.map((l) => `${l.name} (${l.store})`).join(', ') : primary.store}:`,
  );
  for (const b of backups) {
    const copies = several
      ? `  ${locations.map((l) => `${l.name}:${b.copies[l.name] === 'verified' ? 'ok' : b.copies[l.name]}`).join(' ')}`
      : '';
    console.log(
      `  ${b.backupId}  ${b.kind.padEnd(10)} ${formatBytes(b.bytes).padStart(10)}  ${String(b.entries).padStart(4)} entries` +
        `  ${b.encrypted ? 'encrypted' : 'plain    '}  ${verificationLabel(b)}${b.warnings ? `  ${b.warnings} warning(s)` : ''}${copies}`,
    );
  }
  return EXIT.ok;
}

export async function verifyCommand(
  id: string | undefined,
  opts: GlobalOptions & { full?: boolean; json?: boolean; file?: string; manifest?: string; location?: string },
): Promise<number> {
  if (opts.file !== undefined) {
    if (id !== undefined) throw new LifeboatError('INVALID_REQUEST', 'verify: give a backup id or --file, not both');
    return verifyFileCommand(opts.file, opts);
  }
  if (opts.manifest !== undefined) throw new LifeboatError('INVALID_REQUEST', 'verify: --manifest goes with --file');
  if (id === undefined) {
    throw new LifeboatError('INVALID_REQUEST', 'verify: which backup? Give an id, "latest", or --file <archive>');
  }
  const runtime = atLocation(await openRuntime(opts), opts.location);
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

/** The runtime over `--location`'s store (the primary when none is given). */
function atLocation(runtime: Runtime, location: string | undefined): Runtime {
  return location ? runtime.at(location) : runtime;
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
  // No configuration is read here, so the seal's checksum is checked and its HMAC is not.
  const problem = manifestSealProblem(json, sha256hex, null);
  if (problem) throw new LifeboatError('VERIFY_FAILED', `manifest ${path} refused: ${problem}`);
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
  opts: GlobalOptions & { to: string; json?: boolean; location?: string },
): Promise<number> {
  const runtime = atLocation(await openRuntime(opts), opts.location);
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

export async function pruneCommand(
  opts: GlobalOptions & { dryRun?: boolean; json?: boolean; location?: string },
): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  // Each location by its own retention, the primary first; one that is down stops nothing else.
  const names = opts.location ? [runtime.at(opts.location).locationName] : runtime.locations.map((l) => l.name);
  const results: PruneResult[] = [];
  const failures: Array<{ location: string; error: string }> = [];
  for (const name of names) {
    try {
      results.push(await pruneBackups(runtime.at(name), target, { dryRun: Boolean(opts.dryRun), log: cliLogger() }));
    } catch (err) {
      if (names.length === 1) throw err;
      failures.push({ location: name, error: (err as Error).message });
    }
  }
  if (opts.json) {
    printJson({ target, dryRun: Boolean(opts.dryRun), locations: results, failures });
    return failures.length ? EXIT.failed : EXIT.ok;
  }
  const verb = opts.dryRun ? 'would delete' : 'deleted';
  for (const result of results) {
    const where = names.length > 1 || opts.location ? ` in ${result.location}` : '';
    console.log(
      `retention for ${target}${where}: keep ${result.plan.keep.length}, ${verb} ${result.plan.delete.length}`,
    );
    for (const k of result.plan.keep) console.log(`  keep   ${k.backupId}  ${k.reasons.join(', ')}`);
    for (const d of result.plan.delete)
      console.log(`  ${result.dryRun ? 'delete' : 'gone  '} ${d.backupId}  ${d.reasons.join(', ')}`);
    if (result.abandoned.length)
      console.log(`  ${verb} ${result.abandoned.length} objects of backups that never committed`);
    if (result.streams && (result.streams.generations.length || result.streams.fileSegments))
      console.log(
        `  streams: ${verb} ${result.streams.generations.length} database generation(s) and ${result.streams.fileSegments} file segment(s) that ended before the oldest backup kept`,
      );
    if (result.wal) {
      const w = result.wal;
      if (w.keptFromSegment)
        console.log(
          `  wal: ${verb} ${w.baseBackups.length} base backup(s) and ${w.segments} WAL file(s) before ${w.keptFromSegment}, where the oldest base backup kept starts`,
        );
      for (const id of w.baseBackups) console.log(`  ${result.dryRun ? 'delete' : 'gone  '} base backup ${id}`);
      if (w.note) console.log(`  wal: ${w.note}`);
    }
  }
  for (const f of failures) console.error(`retention for ${target} in ${f.location} not applied: ${f.error}`);
  return failures.length ? EXIT.failed : EXIT.ok;
}

/** `backups replicate`: queues the copies each other location lacks (after it was down, or was added). */
export async function replicateCommand(
  opts: GlobalOptions & { to?: string; dryRun?: boolean; json?: boolean },
): Promise<number> {
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  if (runtime.locations.length < 2) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `${runtime.loaded.path} configures no location besides the primary store`,
      {
        hint: 'add one under `locations:` (README, "Backup locations")',
      },
    );
  }
  if (opts.to) {
    const to = runtime.at(opts.to);
    if (to.locationName === runtime.locationName) {
      throw new LifeboatError('INVALID_REQUEST', '--to names the primary: copies go from the primary to the others');
    }
  }
  const now = new Date();
  const plans = planCopies(await readLocations(runtime, target), now).filter((p) => !opts.to || p.location === opts.to);
  const jobs = copyJobs(target, plans, now);
  const outcomes: Array<{ location: string; backupId: string; outcome: string; error?: string }> = [];
  if (!opts.dryRun && jobs.length) {
    const bus = await openBus(runtime);
    try {
      for (const j of jobs) await bus.enqueue('replicate', j.request, { jobId: j.jobId });
      for (const j of jobs) {
        const raw = await bus.result('replicate', j.jobId, { timeoutMs: 6 * 3600_000 }).then(
          (r) => ReplicateResult.parse(r),
          (err: Error) => err,
        );
        const base = { location: j.request.location, backupId: j.request.backupId };
        outcomes.push(
          raw instanceof Error ? { ...base, outcome: 'failed', error: raw.message } : { ...base, outcome: raw.outcome },
        );
        if (!opts.json) {
          console.log(
            raw instanceof Error
              ? `  FAILED ${j.request.backupId} → ${j.request.location}: ${raw.message}`
              : `  ${raw.outcome === 'copied' ? 'copied' : 'present'} ${j.request.backupId} → ${j.request.location} (${formatBytes(raw.bytes)}, ${formatDuration(raw.durationMs)}, checksum verified)`,
          );
        }
      }
    } finally {
      await bus.close();
    }
  }
  const failed = outcomes.some((o) => o.outcome === 'failed') || plans.some((p) => !p.reachable);
  if (opts.json) {
    printJson({
      target,
      dryRun: Boolean(opts.dryRun),
      locations: plans.map((p) => ({
        location: p.location,
        reachable: p.reachable,
        ...(p.problem ? { problem: p.problem } : {}),
        missing: p.missing.map((b) => b.backupId),
        lagSeconds: p.lagSeconds,
      })),
      copies: outcomes,
    });
  } else {
    for (const p of plans) {
      if (!p.reachable) console.log(`${p.location}: unreachable (${p.problem ?? 'no answer'}); nothing copied`);
      else if (p.missing.length === 0) console.log(`${p.location}: up to date`);
      else if (opts.dryRun)
        console.log(`${p.location}: would copy ${p.missing.length}: ${p.missing.map((b) => b.backupId).join(', ')}`);
    }
  }
  return failed ? EXIT.failed : EXIT.ok;
}
