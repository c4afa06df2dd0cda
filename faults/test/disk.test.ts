// Disk faults: a restore into a disk that cannot hold it, a backup whose staging directory
// fills up, and a filesystem store whose disk is full. Each full disk is a size-limited tmpfs
// mounted for the test (this needs root, as on the project's machines and in CI) and unmounted
// after the file whatever happened (faults/test/harness.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { RestoreResult } from '@lifeboat/domain';
import { type CliRun, checksums, initDemo, lifeboat } from '@lifeboat/testkit';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { fillUntil, mountTmpfs, scratchDir, unmount } from './harness.js';
import { Tally, trials } from './record.js';

// Whole restores with real processes: tens of seconds on a loaded 2-core machine.
vi.setConfig({ testTimeout: 600_000, hookTimeout: 300_000 });

/** Every file under dir (relative paths), for "nothing left behind". */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not a JSON answer (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(0, 2000)}`);
  }
}

let dir: string;
let config: string;
let backupId: string;

beforeAll(async () => {
  dir = await scratchDir('lifeboat-fault-disk-');
  // A 2 MiB SQLite target in a filesystem store, its archive encrypted with age; its
  // control commands stop and start a paper-trader that is not running (which is fine).
  config = (await initDemo(join(dir, 'demo'), { size: '2MiB' })).config;
  const backup = await lifeboat(['backup', '--config', config, '--json']);
  expect(backup.code, backup.stderr).toBe(0);
  backupId = json<{ backupId: string }>(backup).backupId;
});

/** The demo's configuration with `edit` applied, as a file of its own beside it (same relative paths). */
async function configWith(name: string, edit: (text: string) => string): Promise<string> {
  const file = join(dir, 'demo', name);
  const text = await readFile(config, 'utf8');
  const edited = edit(text);
  if (edited === text) throw new Error(`the demo's configuration changed shape: ${name} would be the same file`);
  await writeFile(file, edited);
  return file;
}

const listed = async (file: string) =>
  json<{ backups: Array<{ backupId: string }> }>(await lifeboat(['backups', 'list', '--config', file, '--json']))
    .backups.map((b) => b.backupId)
    .sort();

describe('a restore into a disk that cannot hold it', () => {
  it('fails naming the full disk; the target as it was, the kill switch ON, nothing half-written left', async () => {
    const disk = join(dir, 'disk');
    await mountTmpfs(disk, '8m');
    const target = join(disk, 'target');
    execFileSync('cp', ['-a', join(dir, 'demo', 'target'), target]);
    const onDisk = await configWith('disk.yaml', (t) => t.replace(/^(\s+)root: target$/m, `$1root: ${target}`));
    const tally = new Tally();
    const n = trials(3, 1);
    // Room for nothing, for the smaller files but not the database, for nearly all of it.
    const room = [64 * 1024, 768 * 1024, 1536 * 1024];
    for (let trial = 1; trial <= n; trial++) {
      const free = room[(trial - 1) % room.length] as number;
      const filler = await fillUntil(disk, free);
      // The kill switch going ON is the one change a failed restore makes, by design.
      const before = checksums(target, (rel) => rel === 'kill_switch_state.json');
      const around = readdirSync(disk).sort();
      const run = await lifeboat([
        'restore',
        '--config',
        onDisk,
        '--scenario',
        'db-corruption',
        '--backup',
        backupId,
        '--yes',
        '--json',
      ]);
      const result = json<RestoreResult>(run);
      const after = checksums(target, (rel) => rel === 'kill_switch_state.json');
      const killSwitch = JSON.parse(readFileSync(join(target, 'kill_switch_state.json'), 'utf8')).state;
      const left = readdirSync(disk).sort();
      const intact = JSON.stringify(after) === JSON.stringify(before);
      const lost = result.outcome !== 'FAILED' || !intact || killSwitch !== 'ON' || left.join() !== around.join();
      const outcome = lost
        ? 'the target changed, the kill switch off, or staging left behind'
        : `failed at ${result.failedStep}, naming the full disk; target unchanged, kill switch ON, nothing left behind`;
      tally.add(outcome, lost);
      console.log(
        `restore onto a full disk trial ${trial}/${n}: ${Math.round(free / 1024)} KiB free; ${outcome}; error: ${result.error?.message} (${result.error?.hint})`,
      );
      expect(run.code).toBe(1);
      expect(result.outcome).toBe('FAILED');
      expect(result.error?.code).toBe('TARGET_ERROR');
      expect(result.error?.message).toContain(`no space left on the disk of ${disk}`);
      expect(result.error?.hint).toMatch(/free that much there, or restore with --to sandbox/);
      expect(result.movedAside).toEqual([]);
      expect(after).toEqual(before);
      expect(killSwitch).toBe('ON');
      // No staging directory, no temporary file: only the target and the filler.
      expect(left).toEqual(around);
      expect(files(target).filter((f) => /lifeboat-tmp|\.tmp$|\.partial|corrupted-/.test(f))).toEqual([]);
      await rm(filler);
    }
    tally.record(
      'disk',
      'restore into a disk that cannot hold it (db-corruption)',
      'exit 1, failed step named, TARGET_ERROR "no space left on the disk of <dir>" with how much room it needs; the target byte for byte as before (sha256 of every file but the kill switch state); the kill switch ON; no staging directory or temporary file left; nothing moved aside',
    );
    expect(tally.lost).toBe(0);
    unmount(disk);
  });
});

describe('a backup whose staging directory fills up', () => {
  it('fails clearly: no manifest, nothing listed, the staging directory emptied', async () => {
    const tally = new Tally();
    const n = trials(3, 1);
    // Too small for the copied files, then for the database snapshot.
    const sizes = ['64k', '1m', '512k'];
    const before = await listed(config);
    const stored = files(join(dir, 'demo', 'store', 'demo'));
    for (let trial = 1; trial <= n; trial++) {
      const size = sizes[(trial - 1) % sizes.length] as string;
      const staging = join(dir, `staging-${trial}`);
      await mountTmpfs(staging, size);
      const file = await configWith('staging.yaml', (t) =>
        t.replace(/^backup:$/m, `backup:\n  stagingDir: ${staging}`),
      );
      const run = await lifeboat(['backup', '--config', file, '--json']);
      const error = json<{ error?: { code: string; message: string; hint?: string } }>(run).error;
      const after = await listed(file);
      const storedAfter = files(join(dir, 'demo', 'store', 'demo'));
      const leftInStaging = files(staging);
      const lost = run.code === 0 || after.join() !== before.join() || storedAfter.join() !== stored.join();
      const outcome = lost
        ? 'a backup listed, or something left in the store'
        : `failed in ${/^(\w+ \w+):/.exec(error?.message ?? '')?.[1] ?? 'an unnamed step'}, naming the full disk; nothing stored or listed`;
      tally.add(outcome, lost);
      console.log(
        `backup with a ${size} staging directory trial ${trial}/${n}: ${outcome}; error: ${error?.message} (${error?.hint})`,
      );
      expect(run.code).toBe(1);
      expect(`${error?.message} ${error?.hint}`).toMatch(/no space left on device|disk is full/i);
      expect(`${error?.message} ${error?.hint}`).toMatch(new RegExp(`${staging}|room for a copy`));
      expect(after).toEqual(before);
      expect(storedAfter).toEqual(stored);
      expect(leftInStaging).toEqual([]);
      unmount(staging);
    }
    tally.record(
      'disk',
      'backup staging directory full (backup.stagingDir)',
      'exit 1 with an error naming the lack of space and the step (cut files, or the database snapshot); `lifeboat backups list` unchanged; no object added to the store; the staging directory left empty',
    );
    expect(tally.lost).toBe(0);
  });
});

describe('a filesystem store whose disk is full', () => {
  it('fails naming the store and its full disk; nothing half-written is listed or left in the store', async () => {
    const tally = new Tally();
    const n = trials(3, 1);
    for (let trial = 1; trial <= n; trial++) {
      // Room for the audit trail and a manifest, not for the 0.5 MiB archive.
      const store = join(dir, `store-${trial}`);
      await mountTmpfs(store, '256k');
      const file = await configWith('full-store.yaml', (t) => t.replace(/^(\s+)path: store$/m, `$1path: ${store}`));
      const run = await lifeboat(['backup', '--config', file, '--json']);
      const error = json<{ error?: { code: string; message: string; hint?: string } }>(run).error;
      const after = await listed(file);
      const left = files(store).filter((f) => !f.startsWith('_lifeboat/'));
      const lost = run.code === 0 || after.length > 0 || left.length > 0;
      const outcome = lost
        ? 'a backup listed, or a partial object left'
        : 'failed naming the store and its full disk; nothing listed or left';
      tally.add(outcome, lost);
      console.log(
        `backup into a full store trial ${trial}/${n}: ${outcome}; error: ${error?.message} (${error?.hint})`,
      );
      expect(run.code).toBe(1);
      expect(error?.code).toBe('STORE_ERROR');
      expect(error?.message).toMatch(/ENOSPC|no space left/);
      expect(error?.hint).toBe(`the disk holding ${store} is full`);
      expect(after).toEqual([]);
      // Only the audit trail's own records (written before the archive) may be there.
      expect(left).toEqual([]);
      unmount(store);
    }
    tally.record(
      'disk',
      'filesystem store disk full during a backup',
      'exit 1, STORE_ERROR naming the write and "the disk holding <store> is full"; `lifeboat backups list` empty; no object but the audit trail in the store (no archive, no `.incomplete/` part)',
    );
    expect(tally.lost).toBe(0);
  });
});
