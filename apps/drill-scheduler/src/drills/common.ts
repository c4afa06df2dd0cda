// What every drill shares: the run it is part of, the backup it starts from, and the RPO
// read from what a restore brought back.
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { openBooksSource, type ResolvedTarget, resolvePath, withTargetCredentials } from '@lifeboat/adapters';
import { type BackupSummary, listBackups } from '@lifeboat/backup';
import { compactUtc, type DrillName, type DrillRequest, type DrillsConfig, type RestoreResult } from '@lifeboat/domain';
import type { DrillContext } from '../context.js';
import { type Recorder, StepFailed } from '../recorder.js';
import { dropScratchDatabase } from './scratch.js';

export interface DrillRun {
  ctx: DrillContext;
  request: DrillRequest;
  drill: DrillName;
  target: ResolvedTarget;
  config: DrillsConfig;
  rec: Recorder;
  /** The instant the disaster is taken to strike: the drill's start. */
  disasterAt: Date;
  env: NodeJS.ProcessEnv;
  now: () => Date;
  /** Cleanups to run whatever happens (sandbox directories, scratch databases, processes). */
  cleanups: Array<() => Promise<void>>;
}

/** What a drill measured, in seconds; absent where it does not apply. */
export interface Measured {
  rto_seconds: number | null;
  rto_shadow_seconds?: number | null;
  rpo: { orderHistory?: number | null; auditLogs?: number | null; reports?: number | null };
}

export const seconds = (ms: number): number => Math.round(ms) / 1000;

/** The newest backup of the target, taking one when there is none (a first drill on a new target). */
export async function newestBackup(
  run: DrillRun,
  { usable = true }: { usable?: boolean } = {},
): Promise<{ backup: BackupSummary; taken: boolean }> {
  // As a real recovery picks it (`--backup latest`): the newest not known to be damaged.
  const existing = (await listBackups(run.ctx.runtime, run.target.name))
    .filter((b) => !usable || b.verification?.ok !== false)
    .at(-1);
  if (existing) return { backup: existing, taken: false };
  const made = await run.ctx.jobs.backup({
    target: run.target.name,
    kind: 'full',
    reason: `drill ${run.drill}: the target had no backup`,
    requestedBy: `drill:${run.request.requestedBy}`,
  });
  const backup = (await listBackups(run.ctx.runtime, run.target.name)).find((b) => b.backupId === made.backupId);
  if (!backup) throw new Error(`backup ${made.backupId} was made but is not in the catalog`);
  return { backup, taken: true };
}

/** A sandbox restore of the newest backup, cleaned up when the drill ends. */
export async function restoreIntoSandbox(
  run: DrillRun,
  scenario: 'db-corruption' | 'server-loss',
  backupId: string,
  /** Locations the restore is to take as down (the failover drill's primary). */
  avoid: readonly string[] = [],
): Promise<RestoreResult> {
  const shared = run.config.sandboxDir
    ? join(
        resolvePath(run.ctx.runtime.loaded.baseDir, run.config.sandboxDir),
        `${run.target.name}-${run.drill}-${compactUtc(run.disasterAt)}`,
      )
    : null;
  if (!shared && run.ctx.sharedSandboxRequired) {
    throw new StepFailed(
      'restore',
      'drills.sandboxDir is not set: in distributed mode the restore worker makes the sandbox, the reconciler reads it and this worker removes it, so it must be a directory all three share',
    );
  }
  // Removed whatever happens, even when the restore job itself fails half-way.
  if (shared) run.cleanups.push(() => rm(shared, { recursive: true, force: true }));
  const result = await run.ctx.jobs.restore({
    target: run.target.name,
    scenario,
    backup: backupId,
    destination: shared ? `sandbox:${shared}` : 'sandbox',
    ...(avoid.length ? { avoid: [...avoid] } : {}),
    // The drill reconciles on its own, after measuring what the restore alone kept.
    reconcile: false,
    reason: `drill ${run.drill}`,
    requestedBy: `drill:${run.request.requestedBy}`,
  });
  run.cleanups.push(() => removeSandbox(run, result));
  return result;
}

async function removeSandbox(run: DrillRun, result: RestoreResult): Promise<void> {
  if (result.destination.kind !== 'sandbox') return;
  await rm(result.destination.root, { recursive: true, force: true });
  const db = result.destination.database;
  if (db && /^postgres(ql)?:\/\//i.test(db)) {
    await dropScratchDatabase(withTargetCredentials(db, run.target.config.database, run.env)).catch((err: Error) =>
      run.ctx.log.warn({ err: { message: err.message } }, 'drill: scratch database not dropped'),
    );
  }
}

/** Disaster time − the newest order in the restored books, in seconds (null with no order at all). */
export async function orderHistoryRpo(
  run: DrillRun,
  result: RestoreResult,
): Promise<{ rpo: number | null; newest: string | null }> {
  const db = result.destination.database;
  if (!db) return { rpo: null, newest: null };
  const books = openBooksSource(
    withTargetCredentials(db, run.target.config.database, run.env),
    run.target.config.reconcile?.profile,
  );
  try {
    const newest = await books.newestOrderAt();
    return { rpo: newest === null ? null : seconds(run.disasterAt.getTime() - Date.parse(newest)), newest };
  } finally {
    await books.close();
  }
}

/** Disaster time − the newest audit event restored (`timestamp` of the last line of each JSONL file under logs/). */
export async function auditLogRpo(run: DrillRun, root: string): Promise<{ rpo: number | null; newest: string | null }> {
  let newest: number | null = null;
  for (const file of await filesUnder(join(root, 'logs'))) {
    if (!file.endsWith('.jsonl')) continue;
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    for (let i = lines.length - 1; i >= 0 && i >= lines.length - 20; i--) {
      try {
        const at = Date.parse((JSON.parse(lines[i] as string) as { timestamp?: string }).timestamp ?? '');
        if (!Number.isNaN(at)) {
          newest = Math.max(newest ?? at, at);
          break;
        }
      } catch {
        // A torn last line: look at the one before.
      }
    }
  }
  return {
    rpo: newest === null ? null : seconds(run.disasterAt.getTime() - newest),
    newest: newest === null ? null : new Date(newest).toISOString(),
  };
}

/** Disaster time − the newest report file restored (by its modification time, which the archive keeps). */
export async function reportsRpo(
  run: DrillRun,
  root: string,
): Promise<{ rpo: number | null; newest: string | null; file: string | null }> {
  let newest: number | null = null;
  let newestFile: string | null = null;
  for (const file of await filesUnder(join(root, 'reports'))) {
    const m = (await stat(file)).mtimeMs;
    if (newest === null || m > newest) {
      newest = m;
      newestFile = relative(root, file);
    }
  }
  return {
    rpo: newest === null ? null : seconds(run.disasterAt.getTime() - newest),
    newest: newest === null ? null : new Date(newest).toISOString(),
    file: newestFile,
  };
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const e of entries) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}
