import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateTarget } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const main = join(import.meta.dirname, '..', 'dist', 'main.js');
let dir: string;

function once(env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [main, 'once'], {
    cwd: dir,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

beforeAll(async () => {
  if (!existsSync(main)) throw new Error('apps/backup is not built: run `npm run build` (npm test does it first)');
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-once-'));
  await generateTarget(join(dir, 'target'), { sizeBytes: 256 * 1024, seed: 9 });
  await writeFile(
    join(dir, 'lifeboat.yaml'),
    'store:\n  type: fs\n  path: store\ntargets:\n  demo:\n    root: target\n',
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('backup once mode (a Kubernetes CronJob)', () => {
  it('makes one backup per scheduled slot and exits 0', () => {
    const env = { LIFEBOAT_CONFIG: join(dir, 'lifeboat.yaml'), LIFEBOAT_SCHEDULED_AT: '2025-11-25T02:00:00Z' };
    const first = once(env);
    expect(first.status).toBe(0);
    expect(first.stdout).toContain('"msg":"backup once: done"');
    // The CronJob fires twice for the same slot: still one backup.
    expect(once(env).status).toBe(0);
    expect(readdirSync(join(dir, 'store', 'demo', 'backups'))).toHaveLength(1);
  });

  it("names the slot from the CronJob's own schedule (LIFEBOAT_SCHEDULE): two pods for one slot make one backup", () => {
    const env = { LIFEBOAT_CONFIG: join(dir, 'lifeboat.yaml'), LIFEBOAT_SCHEDULE: '*/30 * * * *' };
    const slots = () =>
      readdirSync(join(dir, 'store', 'demo', 'backups')).map(
        (id) =>
          (
            JSON.parse(readFileSync(join(dir, 'store', 'demo', 'backups', id, 'manifest.json'), 'utf8')) as {
              scheduledAt?: string;
            }
          ).scheduledAt,
      );
    const before = slots();
    expect(once(env).status).toBe(0);
    const [slot] = slots().filter((s) => !before.includes(s));
    expect(new Date(slot as string).getUTCMinutes() % 30).toBe(0);
    expect(Date.now() - Date.parse(slot as string)).toBeLessThan(30 * 60_000);
    // A second pod for the slot finds the first one's backup (unless the half hour turned between them).
    expect(once(env).status).toBe(0);
    const added = slots().filter((s) => !before.includes(s));
    expect(added.length).toBe(new Set(added).size);
    if (Date.now() - Date.parse(slot as string) < 29 * 60_000) expect(added).toEqual([slot]);
    expect(once({ ...env, LIFEBOAT_SCHEDULE: 'every night' }).status).toBe(2);
  });

  it('exits 2 on a configuration error and 1 when the backup fails', async () => {
    await writeFile(join(dir, 'bad.yaml'), 'store:\n  type: fs\ntargets: {}\n');
    const bad = once({ LIFEBOAT_CONFIG: join(dir, 'bad.yaml') });
    expect(bad.status).toBe(2);
    expect(bad.stdout).toContain('store.path');
    await writeFile(
      join(dir, 'gone.yaml'),
      'store:\n  type: fs\n  path: store\ntargets:\n  demo:\n    root: no-such-dir\n',
    );
    const failed = once({ LIFEBOAT_CONFIG: join(dir, 'gone.yaml') });
    expect(failed.status).toBe(1);
    expect(failed.stdout).toContain('no-such-dir');
  });
});
