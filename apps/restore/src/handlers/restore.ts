// The restore handler: one recovery plan for one target, kill switch first, one restore per
// target at a time, every step timed. A failed step stops the plan with the kill switch ON
// and the last good state in place; the result names the step and the cause.
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import {
  createKillSwitch,
  createTargetControl,
  HttpFileKillSwitch,
  parseUrl,
  type ResolvedTarget,
} from '@lifeboat/adapters';
import {
  compactUtc,
  describeZodError,
  formatBytes,
  type Lease,
  LifeboatError,
  LockHeldError,
  layout,
  RestoreRequest,
  type RestoreResult,
  SCENARIO_RTO_MS,
} from '@lifeboat/domain';
import type { RestoreContext } from '../context.js';
import { runPlan } from '../plan.js';
import { planFor } from '../scenarios.js';
import { type Destination, isReady, type RunState } from '../steps.js';

/** How long a restore's lock lives without renewal; renewed every third of it. */
const LOCK_TTL_MS = 30_000;
/** How often a run waiting out an earlier run's lease tries again. */
const LEASE_POLL_MS = 1000;

/**
 * The target's restore lock. Held by an earlier run of this very request whose worker died
 * (BullMQ runs a stalled job again), its lease is waited out — it lapses within LOCK_TTL_MS —
 * and this run goes on; held by any other restore, the request is refused, and not retried:
 * a second restore retried after the first one finished would restore twice.
 */
async function acquireRestoreLock(ctx: RestoreContext, name: string, holder: string): Promise<Lease> {
  const deadline = Date.now() + LOCK_TTL_MS + 5 * LEASE_POLL_MS;
  let waiting = false;
  for (;;) {
    try {
      return await ctx.locks.acquire(name, holder, LOCK_TTL_MS);
    } catch (err) {
      if (!(err instanceof LockHeldError)) throw err;
      const earlier = err.holder !== undefined && ctx.isEarlierRun?.(err.holder) === true;
      if (!earlier || Date.now() >= deadline) {
        throw new LockHeldError(err.message, err.holder, { ...(err.hint ? { hint: err.hint } : {}), retryable: false });
      }
      if (!waiting) {
        ctx.log.warn(
          { lock: name, holder: err.holder },
          'restore: waiting for the lease of an earlier run of this job to lapse',
        );
        waiting = true;
      }
      await new Promise((r) => setTimeout(r, LEASE_POLL_MS));
    }
  }
}

/**
 * A full disk where the restore writes (staging beside the destination, then the destination),
 * as an error that says where and how much room it needs; any other error unchanged.
 */
function noSpaceLeft(err: unknown, s: RunState): unknown {
  // The system error may sit under a step's own wrapping.
  let full: Error | undefined;
  for (let e = err; e instanceof Error && !full; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') full = e;
  }
  if (!full) return err;
  const bytes = s.manifest?.entries.reduce((n, e) => n + e.size, 0);
  return new LifeboatError('TARGET_ERROR', `no space left on the disk of ${dirname(s.dest.root)}: ${full.message}`, {
    hint: `the restore stages the backup's files${bytes ? ` (${formatBytes(bytes)})` : ''} beside ${s.dest.root} before it swaps them in: free that much there, or restore with --to sandbox:<dir> onto a larger disk`,
    cause: err,
  });
}

export function parseRestoreRequest(payload: unknown): RestoreRequest {
  const parsed = RestoreRequest.safeParse(payload);
  if (!parsed.success) throw new LifeboatError('INVALID_REQUEST', describeZodError(parsed.error, 'restore request'));
  return parsed.data;
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  return readdir(dir).then(
    (e) => e.length === 0,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return true;
      throw err;
    },
  );
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

async function destinationFor(
  request: RestoreRequest,
  target: ResolvedTarget,
  baseDir: string,
  env: NodeJS.ProcessEnv,
  stamp: string,
): Promise<Destination> {
  const db = target.config.database;
  const pgUrl = db?.engine === 'postgres' ? (db.url ?? env[db.urlEnv]) : undefined;
  if (db?.engine === 'postgres' && !pgUrl) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `the PostgreSQL URL is not set: environment variable ${db.urlEnv} is empty`,
    );
  }
  if (request.destination === 'production') {
    const sqlite = db?.engine === 'sqlite' ? (isAbsolute(db.path) ? db.path : resolve(target.root, db.path)) : null;
    return {
      kind: 'production',
      root: target.root,
      sqlite,
      postgresUrl: pgUrl ?? null,
      databaseLabel: sqlite ?? (pgUrl ? parseUrl(pgUrl).safe : null),
    };
  }
  const named = request.destination.startsWith('sandbox:') ? request.destination.slice('sandbox:'.length) : null;
  const root = named ? resolve(baseDir, named) : await mkdtemp(join(tmpdir(), `lifeboat-sandbox-${target.name}-`));
  // A sandbox never touches production: never the target's root, never its database.
  if (resolve(root) === resolve(target.root) || resolve(root).startsWith(`${resolve(target.root)}/`)) {
    throw new LifeboatError('INVALID_REQUEST', `sandbox ${root} is inside the production target ${target.root}`);
  }
  if (!(await isEmptyOrMissing(root))) {
    // Bad input, not a passing fault: a retry finds the same files there.
    throw new LifeboatError('CONFLICT', `sandbox ${root} is not empty`, {
      hint: 'name a new or empty directory',
      retryable: false,
    });
  }
  const sqlite = db?.engine === 'sqlite' ? resolve(root, isAbsolute(db.path) ? basename(db.path) : db.path) : null;
  const scratch = pgUrl
    ? withDatabase(pgUrl, `${new URL(pgUrl).pathname.slice(1)}_sandbox_${stamp}`.slice(0, 63))
    : null;
  return {
    kind: 'sandbox',
    root,
    sqlite,
    postgresUrl: scratch,
    databaseLabel: sqlite ?? (scratch ? parseUrl(scratch).safe : null),
  };
}

/**
 * Removes what earlier runs to this destination left in staging when they never finished (a
 * worker killed mid-restore): a whole backup, decrypted secrets among it. Called holding the
 * target's lock, so no other run is using it.
 */
async function removeStaleStaging(staging: string, stem: string, log: RestoreContext['log']): Promise<void> {
  const dir = dirname(staging);
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.startsWith(stem) && n !== basename(staging))) {
    const left = join(dir, name);
    await rm(left, { recursive: true, force: true }).then(
      () => log.warn({ staging: left }, 'restore: removed the staging of an earlier run that did not finish'),
      // Left for a person: it must not stop the recovery.
      (err: Error) => log.warn({ staging: left, err: { message: err.message } }, 'restore: cannot remove old staging'),
    );
  }
}

export async function restore(payload: unknown, ctx: RestoreContext): Promise<RestoreResult> {
  const request = parseRestoreRequest(payload);
  const now = ctx.now ?? (() => new Date());
  const env = ctx.env ?? process.env;
  const started = now();
  const stamp = compactUtc(started);
  const target = ctx.runtime.target(request.target);
  if (request.scenario === 'app-crash' && request.destination !== 'production') {
    throw new LifeboatError(
      'INVALID_REQUEST',
      'app-crash restarts the production target; a sandbox has nothing to restart',
      {
        hint: 'use --scenario db-corruption or server-loss with --to sandbox',
      },
    );
  }
  // A location named in the request that is not configured is a mistake, not a location that is down.
  for (const name of [...(request.from ? [request.from] : []), ...request.avoid]) ctx.runtime.at(name);
  const dest = await destinationFor(request, target, ctx.runtime.loaded.baseDir, env, stamp);
  const stagingStem = `.${basename(dest.root)}.lifeboat-restore-`;
  const staging = join(dirname(dest.root), `${stagingStem}${stamp}`);
  const killSwitch =
    dest.kind === 'production'
      ? (ctx.killSwitchFor ?? createKillSwitch)(target)
      : // A sandbox's switch is its own state file; the production API is never called.
        new HttpFileKillSwitch({ timeoutMs: 1000, stateFile: resolve(dest.root, target.config.killSwitchFile) });
  const control =
    dest.kind === 'production'
      ? (ctx.controlFor ?? ((t) => createTargetControl(t, ctx.runtime.loaded.baseDir, env)))(target)
      : null;
  const state: RunState = {
    ctx,
    request,
    target,
    dest,
    stamp,
    killSwitch,
    control,
    staging,
    backupId: null,
    manifest: null,
    source: null,
    extracted: null,
    stagedSqlite: null,
    stagedPostgres: null,
    movedAside: [],
    healthyAt: null,
    reconciliation: null,
    killSwitchState: 'unknown',
  };
  const steps = planFor(request.scenario, state);
  const log = ctx.log;

  let lease: Lease | null = null;
  if (!request.dryRun) {
    lease = await acquireRestoreLock(
      ctx,
      `restore:${target.name}`,
      ctx.holder ?? `${request.requestedBy}@${process.pid}`,
    );
    // Every step first checks the lease: a holder that lost it stops before touching anything.
    for (const s of steps) {
      const run = s.run;
      s.run = async () => {
        lease?.assertHeld();
        return run().catch((err: unknown) => {
          throw noSpaceLeft(err, state);
        });
      };
    }
  }
  log.info(
    {
      target: target.name,
      scenario: request.scenario,
      destination: dest.kind,
      root: dest.root,
      dryRun: request.dryRun,
      token: lease?.token,
    },
    'restore: start',
  );
  try {
    if (!request.dryRun) {
      if (dest.kind === 'production') await removeStaleStaging(staging, stagingStem, log);
      await mkdir(staging, { recursive: true });
    }
    const run = await runPlan(steps, { now, dryRun: request.dryRun, ...(ctx.onStep ? { onStep: ctx.onStep } : {}) });
    const ended = now();
    const report = state.reconciliation?.report ?? null;
    const ready = !run.failed && isReady(state);
    const toHealthy = state.healthyAt ? state.healthyAt.getTime() - started.getTime() : null;
    const reconcileEnd = run.steps.find((s) => s.name === 'reconcile')?.endedAt;
    const toReady = ready && reconcileEnd ? Date.parse(reconcileEnd) - started.getTime() : null;
    const result: RestoreResult = {
      target: target.name,
      scenario: request.scenario,
      destination: { kind: dest.kind, root: dest.root, database: dest.databaseLabel },
      backupId: state.backupId,
      location: state.source?.locationName ?? null,
      dryRun: request.dryRun,
      outcome: request.dryRun ? 'PLANNED' : run.failed ? 'FAILED' : 'COMPLETED',
      failedStep: run.failed?.name ?? null,
      error: run.failed?.error ?? null,
      steps: run.steps,
      startedAt: started.toISOString(),
      endedAt: ended.toISOString(),
      rto: {
        targetMs: SCENARIO_RTO_MS[request.scenario],
        toHealthyShadowMs: toHealthy,
        toReadyMs: toReady,
        withinTarget: toReady === null ? null : toReady <= SCENARIO_RTO_MS[request.scenario],
      },
      readyToTrade: ready,
      killSwitch: state.killSwitchState,
      movedAside: state.movedAside,
      reconciliation: report
        ? {
            verdict: report.verdict,
            readyToTrade: report.ready_to_trade,
            reportKey: state.reconciliation?.reportKey ?? null,
          }
        : null,
      fencingToken: lease?.token ?? null,
    };
    // The record of what was done, beside the backups (a dry run changed nothing: none).
    if (!request.dryRun) {
      await ctx.runtime.store
        .put(
          layout.restoreRecord(target.name, stamp, request.scenario),
          Buffer.from(
            `${JSON.stringify({ ...result, requestedBy: request.requestedBy, reason: request.reason }, null, 1)}\n`,
          ),
        )
        .catch((err: Error) => log.warn({ err: { message: err.message } }, 'restore: the record was not stored'));
    }
    log[run.failed ? 'error' : 'info'](
      {
        target: target.name,
        scenario: request.scenario,
        outcome: result.outcome,
        failedStep: result.failedStep,
        rto: result.rto,
        movedAside: result.movedAside,
      },
      'restore: done',
    );
    return result;
  } finally {
    // Staging may hold decrypted secrets: it never outlives the run.
    await rm(staging, { recursive: true, force: true });
    await lease?.release();
  }
}
