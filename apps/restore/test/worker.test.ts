// The restore and reconciler workers as separate processes on the local Redis: `lifeboat
// restore` in distributed mode queues the plan, the restore worker runs it (with a Redis
// lease), and its reconcile step goes through the job bus to the reconciler worker.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BullMqJobBus } from '@lifeboat/adapters';
import type { RestoreResult } from '@lifeboat/domain';
import { freePort, getTestStack, lifeboat, startWorker, type TestStack, uniqueName } from '@lifeboat/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Whole recoveries with real processes: minutes on a loaded 2-core machine, not seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

let stack: TestStack;
let dir: string;
let config: string;
let port: number;
let exchangePort: number;
const workers: ChildProcess[] = [];
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  stack = await getTestStack();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-restore-worker-'));
  port = await freePort();
  exchangePort = await freePort();
  const init = await lifeboat([
    'demo',
    'init',
    join(dir, 'demo'),
    '--size',
    '256KiB',
    '--port',
    String(port),
    '--exchange-port',
    String(exchangePort),
    '--json',
  ]);
  expect(init.code, init.stderr).toBe(0);
  config = JSON.parse(init.stdout).config;
  const start = await lifeboat([
    'demo',
    'start',
    '--config',
    config,
    '--detach',
    '--rate',
    '40',
    '--exchange-port',
    String(exchangePort),
  ]);
  expect(start.code, start.stderr).toBe(0);
  await new Promise((r) => setTimeout(r, 1000));
  expect((await lifeboat(['backup', '--config', config])).code).toBe(0);
  env = {
    ...process.env,
    LIFEBOAT_CONFIG: config,
    LIFEBOAT_REDIS_URL: stack.redis.url,
    LIFEBOAT_QUEUE_PREFIX: uniqueName('lbr'),
    LIFEBOAT_OPS_PORT: '0',
    LIFEBOAT_OPS_HOST: '127.0.0.1',
  };
  for (const app of ['reconciler', 'restore'] as const) workers.push((await startWorker(app, env)).child);
});

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null) w.kill('SIGTERM');
  await lifeboat(['demo', 'stop', '--config', config]);
  await rm(dir, { recursive: true, force: true });
});

describe('restores through the BullMQ workers', () => {
  it('runs app-crash and db-corruption queued by the CLI, reconciling through the reconciler worker', async () => {
    const pid = Number(readFileSync(join(dir, 'demo', 'run', 'paper-trader.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    const crash = await lifeboat(
      ['restore', '--config', config, '--scenario', 'app-crash', '--yes', '--json', '--sign-off', 'test'],
      {
        LIFEBOAT_REDIS_URL: env.LIFEBOAT_REDIS_URL,
        LIFEBOAT_QUEUE_PREFIX: env.LIFEBOAT_QUEUE_PREFIX,
      },
    );
    const crashed = JSON.parse(crash.stdout) as RestoreResult;
    expect(crashed.outcome, crash.stderr).toBe('COMPLETED');
    expect(crashed.fencingToken).toBeGreaterThan(0);
    expect(crashed.reconciliation?.reportKey).toMatch(/^demo\/reports\/reconciliation\//);
    expect(crashed.killSwitch).toBe('ON');

    const corrupt = await lifeboat(['restore', '--config', config, '--scenario', 'db-corruption', '--yes', '--json'], {
      LIFEBOAT_REDIS_URL: env.LIFEBOAT_REDIS_URL,
      LIFEBOAT_QUEUE_PREFIX: env.LIFEBOAT_QUEUE_PREFIX,
    });
    const restored = JSON.parse(corrupt.stdout) as RestoreResult;
    expect(restored.outcome, corrupt.stderr).toBe('COMPLETED');
    expect(restored.fencingToken).toBeGreaterThan(crashed.fencingToken as number);
    expect(restored.movedAside[0]).toMatch(/trading\.db\.corrupted-/);
    expect(JSON.parse(readFileSync(join(dir, 'demo', 'target', 'kill_switch_state.json'), 'utf8')).state).toBe('ON');
  });
});

describe('the restore lease, as a queued job meets it', () => {
  const request = (reason: string) => ({
    target: 'demo',
    scenario: 'app-crash',
    destination: 'production',
    reconcile: false,
    reason,
    requestedBy: 'test',
  });
  /** Writes the target's lease as a holder that then stopped renewing it would have left it. */
  async function leaseHeldBy(redis: Redis, holder: string, ttlMs: number): Promise<string> {
    const key = `${env.LIFEBOAT_QUEUE_PREFIX}:lock:restore:demo`;
    const holding = { holder, token: 1, since: new Date().toISOString() };
    expect(await redis.set(key, JSON.stringify(holding), 'PX', ttlMs, 'NX')).toBe('OK');
    return key;
  }

  it('a run of a job whose earlier run died waits out that run’s lease, then restores', async () => {
    const redis = new Redis(stack.redis.url);
    const bus = new BullMqJobBus({ url: stack.redis.url, prefix: env.LIFEBOAT_QUEUE_PREFIX as string });
    try {
      const jobId = `restore:demo:${uniqueName('rerun')}`;
      // As the dead worker's run of this very job left it: renewed no more, 4 s to live.
      await leaseHeldBy(redis, `restore worker gone-host:1 job ${jobId}`, 4000);
      const t0 = Date.now();
      await bus.enqueue('restore', request('a stalled job run again'), { jobId, attempts: 1 });
      const result = (await bus.result('restore', jobId, { timeoutMs: 120_000 })) as RestoreResult;
      expect(result.outcome).toBe('COMPLETED');
      // Its first step could not start before the dead run's lease lapsed.
      expect(Date.parse(result.steps[0]?.startedAt as string) - t0).toBeGreaterThanOrEqual(3000);
    } finally {
      await bus.close();
      redis.disconnect();
    }
  });

  it('a job refused because another restore holds the target fails at once, after one attempt', async () => {
    const redis = new Redis(stack.redis.url);
    const bus = new BullMqJobBus({ url: stack.redis.url, prefix: env.LIFEBOAT_QUEUE_PREFIX as string });
    const key = await leaseHeldBy(redis, 'lifeboat restore (cli, pid 1, ops-host)', 60_000);
    try {
      const jobId = `restore:demo:${uniqueName('refused')}`;
      // The bus's default attempts: a held lock is not a fault a retry should wait out.
      await bus.enqueue('restore', request('while another restore runs'), { jobId });
      const refused = await bus.result('restore', jobId, { timeoutMs: 60_000 }).then(
        () => null,
        (err: Error) => err,
      );
      expect(refused?.message).toMatch(
        /^restore of demo is already running: held by lifeboat restore \(cli, pid 1, ops-host\) since .* \(token 1\)$/,
      );
      expect((await bus.status('restore', jobId)).attemptsMade).toBe(1);
    } finally {
      await redis.del(key);
      await bus.close();
      redis.disconnect();
    }
  });
});
