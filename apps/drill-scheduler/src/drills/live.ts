// The drills that need the trading process itself: a copy of the target, restored from the
// newest backup into a sandbox and run in shadow mode behind a read-only proxy to the venue
// (it can neither send nor cancel an order), through which the kill switch is thrown, the
// process killed and restarted, or the exchange cut.
// Only the kill-switch drill of a target that opted in touches production.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandTargetControl, createKillSwitch, HttpFileKillSwitch, withTargetCredentials } from '@lifeboat/adapters';
import type { KillSwitchClient, RestoreResult, TargetControl } from '@lifeboat/domain';
import type { SandboxProcess } from '../context.js';
import { check, StepFailed } from '../recorder.js';
import { type DrillRun, type Measured, newestBackup, restoreIntoSandbox, seconds } from './common.js';
import { freePort, ReadOnlyVenueProxy } from './proxy.js';

const POLL_MS = 100;

export interface SandboxCopy {
  sandbox: SandboxProcess;
  control: TargetControl;
  killSwitch: KillSwitchClient;
  apiUrl: string;
  /** The read-only proxy to production's venue; null for a copy trading on a venue of its own. */
  proxy: ReadOnlyVenueProxy | null;
  /** The copy's books: its SQLite file, or its scratch database's URL without the password. */
  database: string | null;
}

/**
 * A copy of the target from the newest backup, started in shadow mode against the sandbox's
 * exchange URL through a proxy the drill can cut. `armed`: the copy's kill switch is turned
 * OFF first, so the drill can watch it engage (harmless: shadow mode sends nothing).
 */
async function startCopy(run: DrillRun, armed: boolean): Promise<SandboxCopy> {
  if (!run.target.config.drills.sandbox) throw noSandbox(run);
  const { backup } = await newestBackup(run);
  const restored = await restoreIntoSandbox(run, 'server-loss', backup.backupId);
  if (restored.outcome !== 'COMPLETED') {
    throw new StepFailed(
      'sandbox-copy',
      `restoring backup ${backup.backupId} into a sandbox failed at ${restored.failedStep}: ${restored.error?.message}`,
    );
  }
  return startCopyFrom(run, restored, armed);
}

function noSandbox(run: DrillRun): StepFailed {
  return new StepFailed(
    'sandbox-copy',
    `targets.${run.target.name}.drills.sandbox is not configured: this drill runs a copy of the target, and needs the commands that start and stop one`,
  );
}

/**
 * Starts a copy of the target from a sandbox a server-loss restore filled (config, database,
 * state): in shadow mode behind the read-only proxy, or — given a venue of its own
 * (`exchangeUrl`, the rpo-under-load drill's) — live on that venue, with no proxy.
 */
export async function startCopyFrom(
  run: DrillRun,
  restored: RestoreResult,
  armed: boolean,
  options: { mode?: 'live' | 'shadow'; exchangeUrl?: string; env?: Record<string, string> } = {},
): Promise<SandboxCopy> {
  const spec = run.target.config.drills.sandbox;
  if (!spec) throw noSandbox(run);
  const root = restored.destination.root;
  let proxy: ReadOnlyVenueProxy | null = null;
  if (!options.exchangeUrl) {
    const p = await ReadOnlyVenueProxy.start(spec.exchangeUrl);
    proxy = p;
    run.cleanups.push(async () => {
      await p.close();
      run.rec.evidence.venueProxy = { forwarded: p.forwarded, refusedChanges: p.refused };
    });
  }
  const exchangeUrl = options.exchangeUrl ?? (proxy as ReadOnlyVenueProxy).url;
  const port = await freePort();
  const sandbox: SandboxProcess = { root, port, exchangeUrl };
  const apiUrl = `http://127.0.0.1:${port}`;
  const killSwitch = new HttpFileKillSwitch({
    apiUrl,
    stateFile: join(root, run.target.config.killSwitchFile),
    timeoutMs: 2000,
  });
  if (armed) await killSwitch.deactivate(`drill ${run.drill}: armed, to watch it engage`);
  const db = restored.destination.database;
  const control =
    run.ctx.sandboxControlFor?.(run.target, sandbox) ??
    new CommandTargetControl({
      start: spec.start,
      startShadow: spec.startShadow,
      stop: spec.stop,
      cwd: root,
      timeoutMs: spec.timeoutMs,
      healthTimeoutMs: spec.healthTimeoutMs,
      healthUrl: `${apiUrl}/health`,
      env: {
        ...run.env,
        LIFEBOAT_SANDBOX_ROOT: root,
        LIFEBOAT_SANDBOX_PORT: String(port),
        LIFEBOAT_SANDBOX_EXCHANGE_URL: exchangeUrl,
        ...options.env,
        ...(db && /^postgres(ql)?:\/\//i.test(db)
          ? { LIFEBOAT_SANDBOX_DATABASE_URL: withTargetCredentials(db, run.target.config.database, run.env) }
          : {}),
      },
    });
  // Stopped before the sandbox goes (cleanups run last-in, first-out).
  run.cleanups.push(async () => {
    await control.stop();
  });
  const started = await control.start(options.mode ?? 'shadow');
  check(started.exitCode === 0, 'sandbox-copy', `the copy did not start (exit ${started.exitCode}): ${started.output}`);
  const health = await control.waitHealthy(spec.healthTimeoutMs);
  check(health.healthy, 'sandbox-copy', `the copy is not healthy: ${health.detail}`);
  Object.assign(run.rec.evidence, { sandbox: { root, port, backupId: restored.backupId, exchange: exchangeUrl } });
  return { sandbox, control, killSwitch, apiUrl, proxy, database: db };
}

export async function healthOf(
  apiUrl: string,
): Promise<{ mode?: string; kill_switch?: string; status?: string } | null> {
  try {
    const r = await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(2000) });
    return (await r.json()) as { mode?: string; kill_switch?: string; status?: string };
  } catch {
    return null;
  }
}

/** Polls until the target's API reports the kill switch ON (health and switch both), or the time runs out. */
async function untilHalted(ks: KillSwitchClient, apiUrl: string, timeoutMs: number): Promise<number | null> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const reading = await ks.status().catch(() => null);
    const health = await healthOf(apiUrl);
    if (reading?.state === 'ON' && reading.via === 'api' && health?.kill_switch === 'ON') return Date.now();
    await sleep(POLL_MS);
  }
  return null;
}

export async function killSwitchDrill(run: DrillRun): Promise<Measured> {
  const limitMs = run.config.targets.rto.killSwitch * 2000;
  if (run.target.config.drills.killSwitchInProduction) return killSwitchInProduction(run, limitMs);
  const copy = await run.rec.step('sandbox-copy', async () => {
    const c = await startCopy(run, true);
    return { ...c, detail: `a copy on ${c.apiUrl} in shadow mode, kill switch OFF` };
  });
  const { rto } = await run.rec.step('activate', async () => {
    const t0 = Date.now();
    await copy.killSwitch.activate(`drill ${run.drill}`);
    const at = await untilHalted(copy.killSwitch, copy.apiUrl, limitMs);
    check(at !== null, 'activate', `the copy did not report the kill switch ON within ${limitMs / 1000} s`);
    const r = seconds(at - t0);
    return { rto: r, detail: `ON, confirmed by the copy's API after ${r} s`, evidence: { activatedAfterSeconds: r } };
  });
  return { rto_seconds: rto, rpo: {} };
}

/** The opted-in production drill: halt, confirm nothing works at the venue, and put the switch back. */
async function killSwitchInProduction(run: DrillRun, limitMs: number): Promise<Measured> {
  const ks = (run.ctx.killSwitchFor ?? createKillSwitch)(run.target);
  const apiUrl = run.target.config.api?.url.replace(/\/+$/, '') ?? '';
  const before = await ks.status();
  const { rto } = await run.rec.step('activate', async () => {
    check(apiUrl !== '', 'activate', `targets.${run.target.name}.api is needed to confirm the halt`);
    const t0 = Date.now();
    await ks.activate(`drill ${run.drill} (production, opted in)`);
    const at = await untilHalted(ks, apiUrl, limitMs);
    check(at !== null, 'activate', `the target did not report the kill switch ON within ${limitMs / 1000} s`);
    const r = seconds(at - t0);
    return { rto: r, detail: `ON, confirmed by the target's API after ${r} s`, evidence: { activatedAfterSeconds: r } };
  });
  await run.rec.step('no-working-orders', async () => {
    await sleep(1000);
    const r = await fetch(`${apiUrl}/exchange/orders?status=open`, { signal: AbortSignal.timeout(10_000) });
    const open = ((await r.json()) as { orders?: unknown[] }).orders ?? [];
    check(open.length === 0, 'no-working-orders', `${open.length} order(s) still working at the venue after the halt`);
    return { detail: 'no order of the account works at the venue' };
  });
  await run.rec.step('restore-switch', async () => {
    if (before.state === 'ON') return { detail: 'it was ON before the drill: left ON', skipped: true };
    const rec = await run.ctx.jobs.reconcile({
      target: run.target.name,
      recoveryType: `drill ${run.drill}`,
      apply: false,
      requestedBy: `drill:${run.request.requestedBy}`,
    });
    check(
      rec.report.ready_to_trade,
      'restore-switch',
      `left ON: the reconciliation says ${rec.report.verdict}, not ready to trade`,
    );
    await ks.deactivate(
      `drill ${run.drill}: back to the state before the drill (reconciliation ${rec.report.verdict})`,
    );
    return { detail: `OFF again after a ${rec.report.verdict} reconciliation`, evidence: { reportKey: rec.reportKey } };
  });
  return { rto_seconds: rto, rpo: {} };
}

export async function shadowFailover(run: DrillRun): Promise<Measured> {
  const copy = await run.rec.step('sandbox-copy', async () => {
    const c = await startCopy(run, false);
    return { ...c, detail: `a copy on ${c.apiUrl} in shadow mode` };
  });
  const crashedAt = await run.rec.step('kill-process', async () => {
    const stopped = await copy.control.stop();
    check(
      stopped.exitCode === 0,
      'kill-process',
      `the stop command failed (exit ${stopped.exitCode}): ${stopped.output}`,
    );
    const down = (await healthOf(copy.apiUrl)) === null;
    check(down, 'kill-process', 'the copy still answers after being stopped');
    return { at: Date.now(), detail: 'the copy is down' };
  });
  await run.rec.step('restart-shadow', async () => {
    const started = await copy.control.start('shadow');
    check(
      started.exitCode === 0,
      'restart-shadow',
      `the start command failed (exit ${started.exitCode}): ${started.output}`,
    );
    return { detail: `started in shadow mode (${seconds(started.durationMs)} s)` };
  });
  const { rto } = await run.rec.step('health', async () => {
    const limit = run.target.config.drills.sandbox?.healthTimeoutMs ?? 60_000;
    const health = await copy.control.waitHealthy(limit);
    check(health.healthy, 'health', `not healthy: ${health.detail}`);
    const body = (await healthOf(copy.apiUrl)) ?? {};
    check(body.mode === 'shadow', 'health', `healthy, but in ${body.mode ?? 'an unknown'} mode`);
    check(body.kill_switch === 'ON', 'health', `healthy, but the kill switch is ${body.kill_switch ?? 'unknown'}`);
    const r = seconds(Date.now() - crashedAt.at);
    return {
      rto: r,
      detail: `healthy in shadow mode, kill switch ON, ${r} s after the crash`,
      evidence: { health: body },
    };
  });
  return { rto_seconds: rto, rto_shadow_seconds: rto, rpo: {} };
}

export async function vendorConnectivityLoss(run: DrillRun): Promise<Measured> {
  const copy = await run.rec.step('sandbox-copy', async () => {
    const c = await startCopy(run, true);
    return { ...c, detail: `a copy on ${c.apiUrl} in shadow mode, kill switch OFF, exchange through ${c.proxy?.url}` };
  });
  const cutAt = await run.rec.step('cut-exchange', async () => {
    const proxy = copy.proxy as ReadOnlyVenueProxy;
    await proxy.cut();
    return { at: Date.now(), detail: `${proxy.url} refuses connections` };
  });
  const { rto } = await run.rec.step('kill-switch-engages', async () => {
    const limitMs = run.config.targets.rto.killSwitch * 2000;
    const at = await untilHalted(copy.killSwitch, copy.apiUrl, limitMs);
    check(at !== null, 'kill-switch-engages', `the kill switch did not engage within ${limitMs / 1000} s of the cut`);
    const reading = await copy.killSwitch.status();
    const last = reading.file?.events.at(-1);
    const r = seconds(at - cutAt.at);
    return {
      rto: r,
      detail: `ON ${r} s after the cut (trigger ${last?.trigger ?? 'unknown'}: ${last?.reason ?? ''})`,
      evidence: { killSwitchEvent: last ?? null },
    };
  });
  await run.rec.step('reconcile-fails-closed', async () => {
    // A report is needed: one that did not pass because the venue did not answer. An error
    // (a reconciler that could not reach the copy, a bad request) proves nothing.
    const r = await run.ctx.jobs.reconcile({
      target: run.target.name,
      recoveryType: `drill ${run.drill}`,
      ...(copy.database ? { internal: copy.database } : {}),
      exchange: copy.apiUrl,
      apply: false,
      store: false,
      requestedBy: `drill:${run.request.requestedBy}`,
    });
    const report = r.report;
    const unanswered = Object.keys(r.sourceErrors);
    const evidence = {
      reconciliation: {
        verdict: report.verdict,
        ready: report.ready_to_trade,
        checks: report.checks,
        sourceErrors: r.sourceErrors,
      },
    };
    Object.assign(run.rec.evidence, evidence);
    check(
      !report.ready_to_trade,
      'reconcile-fails-closed',
      `the reconciliation said ready to trade (${report.verdict}) with the exchange cut`,
    );
    check(
      unanswered.length > 0,
      'reconcile-fails-closed',
      `not ready (${report.verdict}), but not for want of the venue: every part of the snapshot arrived`,
    );
    return { detail: `${report.verdict}, not ready to trade; no answer for ${unanswered.join(', ')}`, evidence };
  });
  return { rto_seconds: rto, rpo: {} };
}
