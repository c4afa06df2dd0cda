// The scheduler's leader on the local Redis: one leader among replicas, BullMQ job
// schedulers matching lifeboat.yaml, and alerts (to a real webhook receiver) for a schedule
// that never fires and for a backup older than the RPO target.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BullMqJobBus, loadConfig, RedisLockProvider, WebhookAlertSender } from '@lifeboat/adapters';
import { silentLogger } from '@lifeboat/backup';
import { getTestStack, uniqueName } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DrillScheduler } from '../src/scheduler.js';

let dir: string;
let bus: BullMqJobBus;
let locks: RedisLockProvider;
let server: ReturnType<typeof createServer>;
let hookUrl: string;
const received: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  const stack = await getTestStack();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-scheduler-'));
  await writeFile(
    join(dir, 'lifeboat.yaml'),
    [
      'store: { type: fs, path: store }',
      'targets:',
      '  demo: { root: target }',
      'drills:',
      '  schedule:',
      "    cold-restore: '0 3 30 FEB *'",
      '    reconciliation: off',
      '',
    ].join('\n'),
  );
  const prefix = uniqueName('lbs');
  bus = new BullMqJobBus({ url: stack.redis.url, prefix });
  locks = new RedisLockProvider({ url: stack.redis.url, prefix });
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  hookUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
});

afterAll(async () => {
  await bus.close();
  await locks.close();
  server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the drill scheduler', () => {
  it('has one leader, which upserts the schedules and alerts on what cannot run', async () => {
    const make = (holder: string) =>
      new DrillScheduler({
        bus,
        locks,
        log: silentLogger,
        load: () => loadConfig(join(dir, 'lifeboat.yaml')),
        alerts: () => new WebhookAlertSender(hookUrl),
        holder,
        newestBackupAt: async () => null,
      });
    const first = make('replica 1');
    const second = make('replica 2');
    await first.tick();
    await second.tick();
    expect(first.leader).toBe(true);
    expect(second.leader).toBe(false);

    const schedules = await bus.schedules('drill');
    // reconciliation is off, and cold-restore's 30 February never comes: neither is scheduled.
    expect(schedules.map((s) => s.id).sort()).toEqual(
      [
        'annual-audit',
        'backup-verify',
        'database-restore',
        'full-simulation',
        'kill-switch',
        'multi-region-failover',
        'rpo-under-load',
        'shadow-failover',
        'vendor-connectivity-loss',
      ].map((d) => `drill:demo:${d}`),
    );
    expect(received.map((a) => a.kind).sort()).toEqual(['backup_stale', 'schedule_never_fires']);
    expect(received.find((a) => a.kind === 'schedule_never_fires')).toMatchObject({
      drill: 'cold-restore',
      target: 'demo',
    });
    expect(String(received.find((a) => a.kind === 'backup_stale')?.text)).toContain('demo has no backup at all');

    // Another round alerts nothing new: once per problem.
    await first.tick();
    expect(received).toHaveLength(2);

    // The leader leaves; the other replica takes over.
    await first.stop();
    await second.tick();
    expect(second.leader).toBe(true);
    await second.stop();
  });
});
