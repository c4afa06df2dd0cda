// Target control with real /bin/sh commands and a real HTTP server standing in for the target's /health.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LifeboatError, TargetConfig } from '@lifeboat/domain';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandTargetControl, createTargetControl, OUTPUT_LINES } from './index.js';

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-control-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function control(cwd: string, overrides: Partial<ConstructorParameters<typeof CommandTargetControl>[0]> = {}) {
  return new CommandTargetControl({
    start: 'echo live > marker',
    startShadow: 'echo shadow > marker',
    stop: 'echo stopped > marker',
    cwd,
    timeoutMs: 10_000,
    ...overrides,
  });
}

/** Whether pid is a running process (a zombie waiting for its parent counts as gone). */
async function running(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return !/^\d+ \(.*\) Z/.test(stat);
}

async function errorOf(promise: Promise<unknown>): Promise<LifeboatError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LifeboatError);
  return err as LifeboatError;
}

/** A /health that answers 503 recovering until flip() is called, then 200 healthy. */
async function healthServer(): Promise<{ url: string; flip(): void; served: number[]; close(): Promise<void> }> {
  let healthy = false;
  const served: number[] = [];
  const server: Server = createServer((req, res) => {
    if (req.url !== '/health') {
      res.writeHead(404).end();
      return;
    }
    served.push(healthy ? 200 : 503);
    res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: healthy ? 'healthy' : 'recovering', mode: 'shadow', kill_switch: 'ON' }));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  const close = async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  };
  cleanups.push(close);
  return {
    url: `http://127.0.0.1:${port}`,
    flip: () => {
      healthy = true;
    },
    served,
    close,
  };
}

describe('CommandTargetControl', () => {
  it('runs the live, shadow and stop commands with /bin/sh in its working directory', async () => {
    const dir = await tempDir();
    const target = control(dir, { stop: 'echo stopped > marker; echo "stopped in $(pwd)"' });

    const live = await target.start('live');
    expect(await readFile(join(dir, 'marker'), 'utf8')).toBe('live\n');
    expect(live).toMatchObject({ command: 'echo live > marker', exitCode: 0, output: '' });
    expect(live.durationMs).toBeGreaterThanOrEqual(0);

    await target.start('shadow');
    expect(await readFile(join(dir, 'marker'), 'utf8')).toBe('shadow\n');

    const stopped = await target.stop();
    expect(await readFile(join(dir, 'marker'), 'utf8')).toBe('stopped\n');
    expect(stopped.output).toBe(`stopped in ${dir}`);
  });

  it('passes its environment to the commands', async () => {
    const dir = await tempDir();
    const target = control(dir, { start: 'echo "$SOFIA_MODE"', env: { ...process.env, SOFIA_MODE: 'paper' } });

    expect((await target.start('live')).output).toBe('paper');
  });

  it('throws TARGET_ERROR naming the command, its exit code and its last output line when it fails', async () => {
    const dir = await tempDir();
    const target = control(dir, {
      stop: 'echo "stopping sofia"; echo "unit sofia-trading not loaded" >&2; exit 5',
    });

    const err = await errorOf(target.stop());

    expect(err.code).toBe('TARGET_ERROR');
    expect(err.message).toContain('echo "stopping sofia"');
    expect(err.message).toContain('exited with code 5');
    expect(err.message).toMatch(/unit sofia-trading not loaded$/);
  });

  it('kills a command that outlives its timeout, with its process group, and throws TIMEOUT', async () => {
    const dir = await tempDir();
    // The shell waits on a child, so the child is only gone if the whole group was killed.
    const target = control(dir, { start: 'sleep 5 & echo $! > sleep.pid; echo waiting; wait', timeoutMs: 300 });

    const started = performance.now();
    const err = await errorOf(target.start('live'));
    const elapsed = performance.now() - started;

    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toContain('sleep 5 & echo $! > sleep.pid');
    expect(err.message).toContain('300 ms');
    expect(elapsed).toBeLessThan(3000);
    const pid = Number((await readFile(join(dir, 'sleep.pid'), 'utf8')).trim());
    expect(pid).toBeGreaterThan(0);
    let alive = await running(pid);
    for (let i = 0; alive && i < 20; i++) {
      await sleep(50);
      alive = await running(pid);
    }
    expect(alive).toBe(false);
  });

  it('returns when the shell exits, without waiting for a daemon it started that keeps its output open', async () => {
    const dir = await tempDir();
    const target = control(dir, { start: 'sleep 5 & echo $! > daemon.pid; echo started' });

    const started = performance.now();
    const outcome = await target.start('live');
    const elapsed = performance.now() - started;
    const pid = Number((await readFile(join(dir, 'daemon.pid'), 'utf8')).trim());
    cleanups.push(async () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    });

    expect(outcome.output).toBe('started');
    expect(elapsed).toBeLessThan(2000);
    expect(await running(pid)).toBe(true);
  });

  it('redacts secrets in its output and in its errors', async () => {
    const dir = await tempDir();
    const target = control(dir, {
      start: 'echo "API_KEY=abc123 loaded"; echo "db password: hunter2"; echo "client_secret=s3cr3t"',
      stop: 'echo "login failed for password=hunter2"; exit 1',
    });

    const outcome = await target.start('live');
    expect(outcome.output).not.toMatch(/abc123|hunter2|s3cr3t/);
    expect(outcome.output).toContain('API_KEY=[redacted]');
    expect(outcome.output).toContain('password=[redacted]');

    const err = await errorOf(target.stop());
    expect(err.message).not.toContain('hunter2');
    expect(err.message).toContain('password=[redacted]');
  });

  it(`keeps only the last ${OUTPUT_LINES} lines of output`, async () => {
    const dir = await tempDir();
    const target = control(dir, { start: 'seq 1 500' });

    const lines = (await target.start('live')).output.split('\n');

    expect(lines).toHaveLength(OUTPUT_LINES);
    expect(lines[0]).toBe(String(500 - OUTPUT_LINES + 1));
    expect(lines.at(-1)).toBe('500');
  });

  it('names a missing working directory instead of running the command elsewhere', async () => {
    const dir = await tempDir();
    const target = control(join(dir, 'gone'));

    const err = await errorOf(target.start('live'));

    expect(err.code).toBe('TARGET_ERROR');
    expect(err.message).toContain(join(dir, 'gone'));
  });

  it('waits until the target flips from 503 recovering to 200 healthy', async () => {
    const dir = await tempDir();
    const health = await healthServer();
    const target = control(dir, { healthUrl: `${health.url}/health` });
    setTimeout(() => health.flip(), 700).unref();

    const outcome = await target.waitHealthy(5000);

    expect(outcome.healthy).toBe(true);
    expect(outcome.durationMs).toBeGreaterThanOrEqual(600);
    expect(outcome.durationMs).toBeLessThan(3000);
    expect(outcome.body).toMatchObject({ status: 'healthy' });
    // Polled while it recovered, and answered the first 200.
    expect(health.served[0]).toBe(503);
    expect(health.served.filter((s) => s === 200)).toHaveLength(1);
  });

  it('gives up with healthy:false and the last answer when the target stays unhealthy', async () => {
    const dir = await tempDir();
    const health = await healthServer();
    const target = control(dir, { healthUrl: `${health.url}/health` });

    const outcome = await target.waitHealthy(800);

    expect(outcome.healthy).toBe(false);
    expect(outcome.durationMs).toBeGreaterThanOrEqual(750);
    expect(outcome.durationMs).toBeLessThan(2500);
    expect(outcome.detail).toContain('503');
    expect(outcome.detail).toContain('recovering');
    expect(outcome.body).toMatchObject({ status: 'recovering' });
  });

  it('gives up with healthy:false when nothing listens on the health URL', async () => {
    const dir = await tempDir();
    const health = await healthServer();
    await health.close();
    const target = control(dir, { healthUrl: `${health.url}/health` });

    const outcome = await target.waitHealthy(400);

    expect(outcome.healthy).toBe(false);
    expect(outcome.detail).toMatch(/refused/i);
  });

  it('is not healthy without a health URL', async () => {
    const outcome = await control(await tempDir()).waitHealthy(1000);

    expect(outcome).toEqual({ healthy: false, durationMs: 0, detail: 'no health URL configured' });
  });
});

describe('createTargetControl', () => {
  const controlConfig = { start: 'echo live', startShadow: 'pwd', stop: 'echo stop' };

  it('is null for a target without control commands', () => {
    const config = TargetConfig.parse({ root: '/srv/sofia' });
    expect(createTargetControl({ name: 'demo', config, root: '/srv/sofia' }, '/etc/lifeboat')).toBeNull();
  });

  it("runs in control.cwd resolved against the config's directory", async () => {
    const base = await tempDir();
    await mkdir(join(base, 'ops'));
    const config = TargetConfig.parse({ root: join(base, 'root'), control: { ...controlConfig, cwd: 'ops' } });

    const target = createTargetControl({ name: 'demo', config, root: join(base, 'root') }, base);

    expect((await target?.start('shadow'))?.output).toBe(join(base, 'ops'));
  });

  it("runs in the target's root, or in the config's directory while the root does not exist", async () => {
    const base = await tempDir();
    const root = join(base, 'sofia');
    const config = TargetConfig.parse({ root, control: controlConfig });
    const target = createTargetControl({ name: 'demo', config, root }, base);

    expect((await target?.start('shadow'))?.output).toBe(base);
    await mkdir(root);
    expect((await target?.start('shadow'))?.output).toBe(root);
  });

  it("polls the target API's /health and carries the configured timeouts", async () => {
    const base = await tempDir();
    const health = await healthServer();
    health.flip();
    const config = TargetConfig.parse({
      root: base,
      api: { url: `${health.url}/` },
      control: { ...controlConfig, healthTimeoutMs: 1234 },
    });

    const target = createTargetControl({ name: 'demo', config, root: base }, base);

    expect(target?.healthTimeoutMs).toBe(1234);
    expect(await target?.waitHealthy(2000)).toMatchObject({ healthy: true });
  });
});
