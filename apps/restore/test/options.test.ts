import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RestoreResult } from '@lifeboat/domain';
import { checksums, lifeboat } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Whole recoveries with real processes: minutes on a loaded 2-core machine, not seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

let dir: string;
let config: string;
let target: string;
const backups: Array<{ id: string; at: string }> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-restore-options-'));
  // Nothing listens on this port: the target's API is down throughout.
  const init = await lifeboat(['demo', 'init', join(dir, 'demo'), '--size', '256KiB', '--port', '9', '--json']);
  expect(init.code, init.stderr).toBe(0);
  config = JSON.parse(init.stdout).config;
  target = join(dir, 'demo', 'target');
  for (let i = 0; i < 2; i++) {
    const b = await lifeboat(['backup', '--config', config, '--json']);
    expect(b.code, b.stderr).toBe(0);
    const r = JSON.parse(b.stdout) as { backupId: string; createdAt?: string };
    backups.push({ id: r.backupId, at: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 1100));
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lifeboat restore options', () => {
  it('--dry-run prints every step and what it touches, and changes nothing', async () => {
    const before = checksums(target);
    const run = await lifeboat(['restore', '--config', config, '--scenario', 'db-corruption', '--dry-run', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const plan = JSON.parse(run.stdout) as RestoreResult;
    expect(plan.outcome).toBe('PLANNED');
    expect(plan.steps.map((s) => s.name)).toEqual([
      'activate-kill-switch',
      'stop-target',
      'select-backup',
      'fetch-and-verify',
      'restore-database',
      'roll-forward',
      'swap-database',
      'restore-state',
      'start-shadow',
      'health-check',
      'reconcile',
      'ready-to-trade',
    ]);
    expect(plan.steps.every((s) => s.status === 'NOT_STARTED')).toBe(true);
    expect(plan.steps.find((s) => s.name === 'swap-database')?.touches).toEqual([join(target, 'trading.db')]);
    expect(checksums(target)).toEqual(before);
  });

  it('--to sandbox restores the newest backup at --point-in-time into a scratch directory, never touching production', async () => {
    const before = checksums(target);
    const sandbox = join(dir, 'sandbox');
    const run = await lifeboat([
      'restore',
      '--config',
      config,
      '--scenario',
      'server-loss',
      '--to',
      `sandbox:${sandbox}`,
      '--point-in-time',
      backups[0]?.at as string,
      '--json',
    ]);
    const result = JSON.parse(run.stdout) as RestoreResult;
    expect(result.outcome, JSON.stringify(result.steps.filter((s) => s.status === 'FAILED'))).toBe('COMPLETED');
    expect(result.backupId).toBe(backups[0]?.id);
    expect(result.destination).toMatchObject({ kind: 'sandbox', root: sandbox });
    // Production steps are skipped with the reason; the sandbox gets the files and the switch ON.
    for (const name of ['activate-kill-switch', 'start-shadow', 'health-check']) {
      expect(result.steps.find((s) => s.name === name)?.status).toBe('SKIPPED');
    }
    expect(JSON.parse(readFileSync(join(sandbox, 'kill_switch_state.json'), 'utf8')).state).toBe('ON');
    expect(readFileSync(join(sandbox, '.env'), 'utf8')).toBe(readFileSync(join(target, '.env'), 'utf8'));
    expect(checksums(target)).toEqual(before);
  });

  it('refuses bad input with exit 2, naming the option', async () => {
    const bad = await lifeboat(['restore', '--config', config, '--scenario', 'meteor', '--yes']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--scenario');
    const noConfirm = await lifeboat(['restore', '--config', config, '--scenario', 'db-corruption']);
    expect(noConfirm.code).toBe(2);
    expect(noConfirm.stderr).toContain('--yes');
    const sandboxCrash = await lifeboat(['restore', '--config', config, '--scenario', 'app-crash', '--to', 'sandbox']);
    expect(sandboxCrash.code).toBe(2);
    expect(sandboxCrash.stderr).toContain('sandbox has nothing to restart');
    const pit = await lifeboat([
      'restore',
      '--config',
      config,
      '--scenario',
      'db-corruption',
      '--point-in-time',
      '2001-01-01T00:00:00Z',
      '--to',
      'sandbox',
    ]);
    expect(pit.stderr).toContain('no usable backup');
  });

  it('kill-switch deactivate is refused without a passing reconciliation newer than the halt', async () => {
    const on = await lifeboat(['kill-switch', 'activate', '--config', config, '--reason', 'drill', '--json']);
    expect(on.code, on.stderr).toBe(0);
    expect(JSON.parse(on.stdout)).toMatchObject({ state: 'ON', via: 'file' });
    const refused = await lifeboat(['kill-switch', 'deactivate', '--config', config, '--reason', 'resume']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/kill switch stays ON: (no reconciliation|the newest)/);
    expect(JSON.parse(readFileSync(join(target, 'kill_switch_state.json'), 'utf8')).state).toBe('ON');
    const noReason = await lifeboat(['kill-switch', 'deactivate', '--config', config]);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain('--reason');
    const audit = readFileSync(join(target, 'logs', 'audit.jsonl'), 'utf8');
    expect(audit).toContain('"event":"kill_switch_activate"');
  });
});
