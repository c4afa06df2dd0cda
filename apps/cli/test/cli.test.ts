import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '..', '..', '..');
const bin = join(repo, 'apps', 'cli', 'bin', 'lifeboat.js');

function lifeboat(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, LIFEBOAT_REDIS_URL: '', ...env },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
beforeAll(async () => {
  if (!existsSync(join(repo, 'apps', 'cli', 'dist', 'main.js'))) {
    throw new Error('apps/cli is not built: run `npm run build` (npm test does it first)');
  }
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lifeboat CLI', () => {
  it('lists every command in --help', () => {
    const r = lifeboat(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['demo', 'backup', 'backups', 'verify', 'extract', 'prune']) expect(r.stdout).toContain(cmd);
  });

  it('runs the README quick start: a verified backup, a byte-identical extracted copy, every drill', () => {
    const demo = join(dir, 'quickstart');
    const r = spawnSync('bash', [join(repo, 'scripts', 'quickstart.sh')], {
      cwd: repo,
      encoding: 'utf8',
      env: { ...process.env, LIFEBOAT_DEMO_DIR: demo, LIFEBOAT_DEMO_SIZE: '2MiB', LIFEBOAT_REDIS_URL: '' },
      timeout: 280_000,
    });
    expect(r.stderr + r.stdout).toContain('quickstart passed');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/OK: full verification of \d{8}T\d{6}Z-full-[0-9a-f]{4}/);
    expect(r.stdout).toContain('integrity_check of the extracted database: ok');
    // The secrets came back too: the demo encrypts, so .env is in the backup.
    expect(readFileSync(join(demo, 'restored', '.env'), 'utf8')).toBe(
      readFileSync(join(demo, 'target', '.env'), 'utf8'),
    );
    expect(statSync(join(demo, 'keys', 'age-identity.txt')).mode & 0o777).toBe(0o600);
    // The main job: every drill of the runbook against the live demo, the table and the page.
    expect(r.stdout).toContain('drill full-simulation of demo: PASS');
    expect(r.stdout).toMatch(/\| Database Restore +\| 15m 00s +\| [^|]*\d[^|]*s +\| .*PASS/);
    expect(readFileSync(join(demo, 'drill-report.html'), 'utf8')).toContain('id="runbook-table"');
  }, 300_000);

  describe('bad input gets one clear line and a non-zero exit', () => {
    let config: string;
    beforeAll(() => {
      const r = lifeboat(['demo', 'init', join(dir, 'errors'), '--size', '200KiB', '--no-encrypt', '--json']);
      expect(r.code).toBe(0);
      config = JSON.parse(r.stdout).config;
    });

    it('an unknown backup id', () => {
      const r = lifeboat(['verify', '20250101T000000Z-full-abcd', '--config', config]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain('backup 20250101T000000Z-full-abcd of target demo not found');
      const json = lifeboat(['verify', '20250101T000000Z-full-abcd', '--json', '--config', config]);
      expect(json.code).toBe(2);
      expect(JSON.parse(json.stdout).error).toMatchObject({ code: 'NOT_FOUND' });
    });

    it('verify --file: a loose archive passes, one with a flipped byte fails, and the options are checked', async () => {
      const made = lifeboat(['backup', '--config', config, '--json']);
      expect(made.code).toBe(0);
      const { backupId } = JSON.parse(made.stdout) as { backupId: string };
      const stored = join(dir, 'errors', 'store', 'demo', 'backups', backupId);
      const loose = join(dir, `copied-by-hand-${backupId}.tar.gz`);
      await writeFile(loose, readFileSync(join(stored, 'archive.tar.gz')));
      // No configuration needed for an unencrypted archive.
      const ok = lifeboat(['verify', '--file', loose, '--manifest', join(stored, 'manifest.json')]);
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      expect(ok.stdout).toContain(`OK: ${loose} (backup ${backupId})`);

      const bytes = readFileSync(loose);
      bytes[Math.floor(bytes.length / 3)] = (bytes[Math.floor(bytes.length / 3)] as number) ^ 0x10;
      await writeFile(loose, bytes);
      const bad = lifeboat(['verify', '--file', loose, '--json']);
      expect(bad.code).toBe(1);
      expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, file: loose });

      const both = lifeboat(['verify', backupId, '--file', loose]);
      expect(both.code).toBe(2);
      expect(both.stderr).toContain('give a backup id or --file, not both');
      const stray = lifeboat(['verify', backupId, '--manifest', 'm.json', '--config', config]);
      expect(stray.code).toBe(2);
      expect(stray.stderr).toContain('--manifest goes with --file');
    });

    it('a malformed lifeboat.yaml, naming the key', async () => {
      const bad = join(dir, 'bad.yaml');
      await writeFile(bad, 'store:\n  type: ftp\ntargets:\n  demo:\n    root: x\n');
      const r = lifeboat(['backups', 'list', '--config', bad]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('store.type');
      const yaml = join(dir, 'broken.yaml');
      await writeFile(yaml, 'store: [unclosed\n');
      const r2 = lifeboat(['backups', 'list', '--config', yaml]);
      expect(r2.code).toBe(2);
      expect(r2.stderr).toMatch(/broken\.yaml line \d+: not valid YAML/);
      const r3 = lifeboat(['backups', 'list', '--config', join(dir, 'missing.yaml')]);
      expect(r3.code).toBe(2);
      expect(r3.stderr).toContain('not found');
    });

    it('an unreachable store, naming the endpoint', async () => {
      const cfg = join(dir, 's3.yaml');
      await writeFile(
        cfg,
        `store:\n  type: s3\n  endpoint: http://127.0.0.1:9\n  bucket: lifeboat\ntargets:\n  demo:\n    root: ${join(dir, 'errors', 'target')}\n`,
      );
      const r = lifeboat(['backup', '--config', cfg], { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('http://127.0.0.1:9');
      expect(r.stderr).not.toContain('AWS_SECRET');
    });

    it('an unknown option or kind is a usage error', () => {
      expect(lifeboat(['backup', '--kind', 'everything', '--config', config]).code).toBe(2);
      expect(lifeboat(['frobnicate']).code).toBe(2);
    });

    it('extract refuses a destination that is not empty', () => {
      expect(lifeboat(['backup', '--config', config]).code).toBe(0);
      const r = lifeboat(['extract', 'latest', '--to', join(dir, 'errors', 'target'), '--config', config]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('is not an empty directory');
    });
  });

  it('a backup killed with SIGKILL leaves no manifest, is not listed, and its leftovers are pruned', async () => {
    const demo = join(dir, 'killed');
    const init = lifeboat(['demo', 'init', demo, '--size', '48MiB', '--no-encrypt', '--json']);
    expect(init.code).toBe(0);
    const config = join(demo, 'lifeboat.yaml');
    await writeFile(
      config,
      `${readFileSync(config, 'utf8')}\n`.replace(
        'verifyAfter: quick',
        'verifyAfter: quick\n  abandonedUploadMinutes: 0',
      ),
    );
    const child = spawn(process.execPath, [bin, 'backup', '--config', config], {
      cwd: repo,
      stdio: 'ignore',
      env: { ...process.env, LIFEBOAT_REDIS_URL: '' },
    });
    const incomplete = join(demo, 'store', '.incomplete');
    // Kill it once archive bytes are flowing into the store.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const files = existsSync(incomplete) ? readdirSync(incomplete) : [];
      if (files.some((f) => statSync(join(incomplete, f)).size > 256 * 1024)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const list = lifeboat(['backups', 'list', '--json', '--config', config]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).backups).toEqual([]);
    const manifests = spawnSync('find', [join(demo, 'store'), '-name', 'manifest.json'], {
      encoding: 'utf8',
    }).stdout.trim();
    expect(manifests).toBe('');
    const prune = lifeboat(['prune', '--json', '--config', config]);
    expect(prune.code).toBe(0);
    const leftovers = spawnSync('find', [join(demo, 'store'), '-type', 'f'], { encoding: 'utf8' }).stdout.trim();
    expect(leftovers).toBe('');
  });
});
