// `lifeboat wal push|fetch|verify|basebackup|restore`: continuous archiving of a PostgreSQL
// target. PostgreSQL runs push (archive_command) and fetch (restore_command) once per WAL
// file, so those load only the configuration, the store and the WAL module: no job bus, no
// database drivers, no S3 SDK for a directory store. The others load what they need.
import type { WalVerifyReport } from '@lifeboat/domain';
import { LifeboatError } from '@lifeboat/domain/errors';
import type { GlobalOptions } from '../context.js';
import { EXIT, formatBytes, formatDuration, printJson } from '../output.js';

async function lightRuntime(opts: GlobalOptions) {
  const { configPath, loadConfig, openLightRuntime, resolveTarget } = await import('@lifeboat/adapters/light');
  const loaded = await loadConfig(configPath(opts.config));
  const target = resolveTarget(loaded, opts.target).name;
  return { runtime: await openLightRuntime(loaded), target };
}

export async function walPushCommand(path: string, opts: GlobalOptions & { json?: boolean }): Promise<number> {
  const [{ pushWal }, { runtime, target }] = await Promise.all([import('@lifeboat/backup/wal'), lightRuntime(opts)]);
  const result = await pushWal(runtime, target, path);
  if (opts.json) printJson(result);
  // The archiver's output goes to the server log: a line per segment only for a person at a terminal.
  else if (process.stdout.isTTY) {
    console.log(
      result.alreadyArchived
        ? `${result.name} was already archived (same sha256)`
        : `${result.name} archived: ${formatBytes(result.size)} → ${formatBytes(result.storedSize)} in ${formatDuration(result.durationMs)}`,
    );
  }
  return EXIT.ok;
}

export async function walFetchCommand(
  name: string,
  dest: string,
  opts: GlobalOptions & { json?: boolean; archivedBy?: string },
): Promise<number> {
  const archivedBy = opts.archivedBy === undefined ? undefined : new Date(opts.archivedBy);
  if (archivedBy && Number.isNaN(archivedBy.getTime())) {
    throw new LifeboatError('INVALID_REQUEST', `--archived-by "${opts.archivedBy}" is not an ISO time`);
  }
  const [{ fetchWal }, { runtime, target }] = await Promise.all([import('@lifeboat/backup/wal'), lightRuntime(opts)]);
  try {
    const result = await fetchWal(runtime, target, name, dest, archivedBy ? { archivedBy } : {});
    if (opts.json) printJson(result);
    return EXIT.ok;
  } catch (err) {
    // PostgreSQL asks for files that do not exist (the next timeline, the segment after the
    // last): one quiet line and exit 1, which it takes as "there is none".
    if (err instanceof LifeboatError && err.code === 'NOT_FOUND') {
      console.error(`lifeboat: ${err.message}`);
      if (opts.json) printJson({ error: err.toJSON() });
      return EXIT.failed;
    }
    throw err;
  }
}

export async function walVerifyCommand(opts: GlobalOptions & { full?: boolean; json?: boolean }): Promise<number> {
  const [{ verifyWal }, { runtime, target }] = await Promise.all([import('@lifeboat/backup/wal'), lightRuntime(opts)]);
  const report = await verifyWal(runtime, target, { full: opts.full === true });
  if (opts.json) printJson(report);
  else printVerify(report);
  return report.ok ? EXIT.ok : EXIT.failed;
}

function printVerify(r: WalVerifyReport): void {
  console.log(
    `WAL archive of ${r.target} (${r.level} check, ${formatBytes(r.segmentSize)} segments): ${r.ok ? 'OK' : 'PROBLEMS'}`,
  );
  if (r.timelines.length === 0) console.log('  no WAL segment archived');
  for (const t of r.timelines) {
    console.log(
      `  timeline ${t.timeline}: ${t.segments} segment(s), ${t.first} … ${t.last}${t.lastPushedAt ? `, newest archived ${t.lastPushedAt}` : ''}`,
    );
  }
  for (const g of r.gaps) {
    console.log(
      `  GAP on timeline ${g.timeline}: ${g.from === g.to ? g.from : `${g.from} … ${g.to}`} missing (${g.missing})`,
    );
  }
  for (const b of r.baseBackups) {
    const reach = b.restorable
      ? `restorable up to ${b.latestSegment}${b.latestPushedAt ? ` (archived ${b.latestPushedAt})` : ''}`
      : `NOT restorable: WAL through ${b.endSegment} is not all archived`;
    console.log(
      `  base backup ${b.id}: ${reach}${b.blockedAt ? `; blocked at ${b.blockedAt}, newer WAL unreachable` : ''}`,
    );
  }
  for (const p of r.problems) console.log(`  problem: ${p}`);
  for (const n of r.notes) console.log(`  note: ${n}`);
}

export async function walBasebackupCommand(opts: GlobalOptions & { json?: boolean }): Promise<number> {
  const [{ openRuntime, cliLogger }, { takeBaseBackup }] = await Promise.all([
    import('../context.js'),
    import('@lifeboat/backup'),
  ]);
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  if (!opts.json) process.stderr.write(`base backup of ${target} (pg_basebackup) …\n`);
  const result = await takeBaseBackup(runtime, target, { log: cliLogger() });
  if (opts.json) printJson(result);
  else {
    console.log(
      `base backup ${result.id}: ${formatBytes(result.tarBytes)} → ${formatBytes(result.bytes)}${result.encrypted ? ' (encrypted)' : ''} in ${formatDuration(result.durationMs)}`,
    );
    console.log(`  WAL ${result.startSegment} … ${result.endSegment} (${result.startLsn} … ${result.endLsn}) archived`);
  }
  return EXIT.ok;
}

export async function walRestoreCommand(
  opts: GlobalOptions & { toDir: string; pointInTime?: string; json?: boolean },
): Promise<number> {
  const [{ openRuntime, cliLogger }, { restorePostgresToPoint, stopCommand }] = await Promise.all([
    import('../context.js'),
    import('@lifeboat/restore'),
  ]);
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target).name;
  const at = opts.pointInTime ?? 'latest';
  if (!opts.json) process.stderr.write(`restoring ${target} to ${at} into ${opts.toDir} …\n`);
  const server = await restorePostgresToPoint(runtime, target, { at, dir: opts.toDir, log: cliLogger() });
  const stop = stopCommand(server);
  if (opts.json) {
    const { stop: _stop, url: _url, ...facts } = server;
    printJson({ ...facts, url: server.safeUrl, stopCommand: stop });
  } else {
    console.log(`scratch server of ${target} running: ${server.safeUrl} (the target's own password)`);
    console.log(
      `  from base backup ${server.baseBackupId}, replayed to ${server.target}: last transaction ${server.recoveredTo ?? 'none replayed'}${server.lastSegment ? `, last segment ${server.lastSegment}` : ''}`,
    );
    console.log(`  data directory ${server.dataDir}, log ${server.logFile}; took ${formatDuration(server.durationMs)}`);
    console.log(`  stop it with: ${stop}`);
  }
  return EXIT.ok;
}
