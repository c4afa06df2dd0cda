import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '..', '..', '..');
const bin = join(repo, 'apps', 'cli', 'bin', 'lifeboat.js');

function lifeboat(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, LIFEBOAT_REDIS_URL: '' },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let dir: string;
let config: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-demo-run-'));
  const init = lifeboat(['demo', 'init', join(dir, 'demo'), '--size', '256KiB', '--json']);
  expect(init.code).toBe(0);
  config = JSON.parse(init.stdout).config;
});
afterAll(async () => {
  lifeboat(['demo', 'stop', '--config', config]);
  await rm(dir, { recursive: true, force: true });
});

describe('lifeboat demo start --detach / demo stop', () => {
  it('runs the paper-trader and its exchange in the background and stops them', async () => {
    const port = await freePort();
    const exchangePort = await freePort();
    const start = lifeboat([
      'demo',
      'start',
      '--detach',
      '--json',
      '--rate',
      '50',
      '--port',
      String(port),
      '--exchange-port',
      String(exchangePort),
      '--config',
      config,
    ]);
    expect(start.stderr).toBe('');
    expect(start.code).toBe(0);
    const { processes } = JSON.parse(start.stdout) as { processes: Record<string, { pid: number; log: string }> };
    expect(Object.keys(processes).sort()).toEqual(['exchange', 'paper-trader']);

    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ status: 'healthy', mode: 'live' });
    // Orders reach the venue.
    await new Promise((r) => setTimeout(r, 1500));
    const stats = (await (await fetch(`http://127.0.0.1:${exchangePort}/_lifeboat/stats`)).json()) as {
      ordersReceived: number;
    };
    expect(stats.ordersReceived).toBeGreaterThan(10);

    const again = lifeboat([
      'demo',
      'start',
      '--detach',
      '--port',
      String(port),
      '--exchange-port',
      String(exchangePort),
      '--config',
      config,
    ]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already running');

    const stop = lifeboat(['demo', 'stop', '--json', '--config', config]);
    expect(stop.code).toBe(0);
    for (const p of Object.values(processes)) expect(alive(p.pid)).toBe(false);
    expect(existsSync(join(dir, 'demo', 'run', 'paper-trader.pid'))).toBe(false);
    // It stopped cleanly, not by SIGKILL: the log says so and nothing secret is in it.
    const log = readFileSync(processes['paper-trader']?.log as string, 'utf8');
    const secret = /EXCHANGE_API_SECRET=(.*)/.exec(
      readFileSync(join(dir, 'demo', 'target', '.env'), 'utf8'),
    )?.[1] as string;
    expect(log).not.toContain(secret);
  });
});

describe('lifeboat demo start (foreground)', () => {
  it('trades until SIGINT, then stops the paper-trader and its exchange and exits 0', async () => {
    const port = await freePort();
    const exchangePort = await freePort();
    const child = spawn(
      process.execPath,
      [
        bin,
        'demo',
        'start',
        '--rate',
        '50',
        '--port',
        String(port),
        '--exchange-port',
        String(exchangePort),
        '--config',
        config,
      ],
      { cwd: repo, env: { ...process.env, LIFEBOAT_REDIS_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        if (stderr.includes('Ctrl-C stops both')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`demo start exited ${code} before it was up: ${stderr}`)));
    });
    // The API answers at once; it says "recovering" (503) until the books have caught up.
    let health: Record<string, unknown> = {};
    for (let i = 0; i < 100 && health.status !== 'healthy'; i++) {
      health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as Record<string, unknown>;
      if (health.status !== 'healthy') await new Promise((r) => setTimeout(r, 100));
    }
    expect(health).toMatchObject({ status: 'healthy', mode: 'live' });
    await new Promise((r) => setTimeout(r, 1500));
    const stats = (await (await fetch(`http://127.0.0.1:${exchangePort}/_lifeboat/stats`)).json()) as {
      ordersReceived: number;
    };
    expect(stats.ordersReceived).toBeGreaterThan(10);

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    // Both ports are free again: nothing was left running.
    for (const p of [port, exchangePort]) {
      await expect(fetch(`http://127.0.0.1:${p}/health`)).rejects.toThrow();
    }
    // The children's JSON logs came through, and say both stopped.
    expect(stdout).toContain('"msg":"exchange stopped"');
    expect(stdout).toContain('"msg":"stopped"');
  });
});
