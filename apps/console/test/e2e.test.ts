// The console in distributed mode, for real: the console and the four workers as separate
// processes on the local Redis, an S3 store, the audit trail mirrored to a PostgreSQL
// catalog, and a demo target trading live. Everything is driven over HTTP as an operator
// would: a backup, a sandbox restore with its live timeline, the kill switch's two-person
// rule, the queue board; then one audit entry is edited in the store and in the catalog, and
// `lifeboat audit verify` names it.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, loadConfig } from '@lifeboat/adapters';
import { layout } from '@lifeboat/domain';
import {
  type DemoTarget,
  getTestStack,
  initDemo,
  lifeboat,
  startWorker,
  type TestStack,
  uniqueName,
} from '@lifeboat/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { issueToken } from '../src/auth.js';
import { consoleClient } from './client.js';

vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const WORKERS = ['backup', 'restore', 'reconciler', 'drill-scheduler'] as const;
const people = { vera: 'viewer', olga: 'operator', anna: 'approver', adam: 'admin' } as const;
const tokens = Object.fromEntries(Object.entries(people).map(([n, r]) => [n, issueToken(n, r)]));

let stack: TestStack;
let dir: string;
let config: string;
let demo: DemoTarget | undefined;
let catalogUrl: string;
let env: NodeJS.ProcessEnv;
let base: string;
const children: ChildProcess[] = [];

const client = consoleClient(() => base);
const api = (who: keyof typeof people, path: string, body?: object) =>
  client.call(tokens[who]?.token as string, path, body);
const finished = (queue: string, jobId: string) => client.finished(tokens.vera?.token as string, queue, jobId);

beforeAll(async () => {
  stack = await getTestStack();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-console-e2e-'));
  catalogUrl = await stack.postgres.createDatabase('console');
  demo = await initDemo(join(dir, 'demo'));
  config = demo.config;
  const doc = YAML.parse(readFileSync(config, 'utf8'));
  doc.store = {
    type: 's3',
    endpoint: stack.s3.endpoint,
    region: stack.s3.region,
    bucket: await stack.s3.createBucket('console'),
    prefix: 'prod',
  };
  writeFileSync(config, YAML.stringify(doc));
  env = {
    ...process.env,
    LIFEBOAT_CONFIG: config,
    LIFEBOAT_REDIS_URL: stack.redis.url,
    LIFEBOAT_QUEUE_PREFIX: uniqueName('lbc'),
    LIFEBOAT_OPS_PORT: '0',
    LIFEBOAT_OPS_HOST: '127.0.0.1',
    LIFEBOAT_CONSOLE_PORT: '0',
    LIFEBOAT_CONSOLE_HOST: '127.0.0.1',
    LIFEBOAT_CONSOLE_TOKENS: Object.values(tokens)
      .map((t) => t.line)
      .join('\n'),
    AWS_ACCESS_KEY_ID: stack.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
    LIFEBOAT_CATALOG_URL: catalogUrl,
  };
  await demo.start();
  for (const app of WORKERS) children.push((await startWorker(app, env)).child);
  const consoleProcess = await startWorker('console', env);
  children.push(consoleProcess.child);
  base = consoleProcess.ops;
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await demo?.stop();
  if (catalogUrl) await stack.postgres.dropDatabase(catalogUrl);
  await rm(dir, { recursive: true, force: true });
});

describe('the console with the workers, Redis, PostgreSQL and S3', () => {
  let backupId: string;

  it('answers its probes, and a backup triggered through the API is listed with its manifest', async () => {
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await fetch(`${base}/ready`)).status).toBe(200);
    const queued = await api('olga', '/api/targets/demo/backups', { kind: 'full', reason: 'e2e' });
    expect(queued.status, JSON.stringify(queued.json)).toBe(202);
    const done = await finished('backup', queued.json.jobId);
    expect(done.state, JSON.stringify(done)).toBe('completed');
    backupId = done.result.backupId;
    const list = await api('vera', '/api/targets/demo/backups');
    expect(list.json.backups.map((b: { backupId: string }) => b.backupId)).toContain(backupId);
    const manifest = await api('vera', `/api/targets/demo/backups/${backupId}`);
    expect(manifest.json).toMatchObject({ backupId, target: 'demo', reason: 'e2e' });
    expect(manifest.json.entries.some((e: { role: string }) => e.role === 'database')).toBe(true);
    const queues = await api('vera', '/api/queues');
    expect(queues.json.mode).toBe('distributed');
    expect(queues.json.queues.find((q: { name: string }) => q.name === 'backup').completed).toBeGreaterThanOrEqual(1);
  });

  it('a sandbox restore triggered through the API shows its timeline as it runs, then its result', async () => {
    const queued = await api('olga', '/api/targets/demo/restores', {
      scenario: 'db-corruption',
      backupId,
      destination: 'sandbox',
    });
    expect(queued.status, JSON.stringify(queued.json)).toBe(202);
    const res = await fetch(`${base}/api/targets/demo/restores/jobs/${encodeURIComponent(queued.json.jobId)}/events`, {
      headers: { authorization: `Bearer ${tokens.olga?.token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    // biome-ignore lint/suspicious/noExplicitAny: job status events, checked field by field below
    const events: Array<{ event: string; data: any }> = [];
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let cut = buffer.indexOf('\n\n');
      while (cut >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.+)$/m.exec(block)?.[1];
        const data = /^data: (.+)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
        cut = buffer.indexOf('\n\n');
      }
    }
    const done = events.at(-1);
    expect(done?.event).toBe('done');
    expect(done?.data.state, JSON.stringify(done?.data)).toBe('completed');
    const result = done?.data.result;
    expect(result.destination.kind).toBe('sandbox');
    // The timeline grew while the restore ran: several status events, each with the steps so far.
    const timelines = events
      .filter((e) => e.event === 'status' && e.data.progress?.timeline)
      .map((e) => e.data.progress.timeline);
    expect(timelines.length).toBeGreaterThan(1);
    const names = result.steps.map((s: { name: string }) => s.name);
    expect(timelines.at(-1).map((s: { name: string }) => s.name)).toEqual(
      names.filter((n: string) => timelines.at(-1).some((s: { name: string }) => s.name === n)),
    );
    expect(timelines[0].length).toBeLessThan(timelines.at(-1).length);
    const status = await api('vera', `/api/targets/demo/restores/jobs/${encodeURIComponent(queued.json.jobId)}`);
    expect(status.json.state).toBe('completed');
    const stored = await api('vera', '/api/targets/demo/restores');
    expect(
      stored.json.items.some((i: { summary: { scenario: string } }) => i.summary.scenario === 'db-corruption'),
    ).toBe(true);
    await rm(result.destination.root, { recursive: true, force: true });
  });

  it('one person cannot deactivate the kill switch, nor anyone before a passing reconciliation', async () => {
    const on = await api('olga', '/api/targets/demo/kill-switch/activate', { reason: 'e2e halt' });
    expect(on.status, JSON.stringify(on.json)).toBe(200);
    expect(on.json.state).toBe('ON');
    expect(on.json.via).toBe('api');

    const early = await api('olga', '/api/targets/demo/kill-switch/deactivation-requests', { reason: 'resume' });
    expect(early.status).toBe(409);
    expect(early.json.error.message).toMatch(/kill switch stays ON/);

    const rec = await api('olga', '/api/targets/demo/reconciliations', {});
    expect(rec.status).toBe(202);
    const recDone = await finished('reconcile', rec.json.jobId);
    expect(recDone.state, JSON.stringify(recDone.error)).toBe('completed');
    expect(recDone.result.report.ready_to_trade, JSON.stringify(recDone.result.report.checks)).toBe(true);
    const reports = await api('vera', '/api/targets/demo/reconciliations');
    const newest = reports.json.items.at(-1);
    expect((await api('vera', `/api/targets/demo/reconciliations/${newest.id}`)).json.ready_to_trade).toBe(true);

    // One person: an admin may both ask and approve, but not their own request.
    const own = await api('adam', '/api/targets/demo/kill-switch/deactivation-requests', { reason: 'resume alone' });
    expect(own.status, JSON.stringify(own.json)).toBe(201);
    const alone = await api('adam', `/api/targets/demo/kill-switch/deactivation-requests/${own.json.id}/approve`, {});
    expect(alone.status).toBe(409);
    expect((await api('vera', '/api/targets/demo/kill-switch')).json.state).toBe('ON');

    const asked = await api('olga', '/api/targets/demo/kill-switch/deactivation-requests', {
      reason: 'books reconciled',
    });
    expect(asked.status).toBe(201);
    const approved = await api(
      'anna',
      `/api/targets/demo/kill-switch/deactivation-requests/${asked.json.id}/approve`,
      {},
    );
    expect(approved.status, JSON.stringify(approved.json)).toBe(200);
    expect(approved.json.state).toBe('OFF');
    // The target's own history says who asked, who approved, and on what evidence.
    expect(approved.json.events[0]).toMatchObject({ activated: false });
    expect(approved.json.events[0].reason).toBe(
      `books reconciled (requested by olga, approved by anna; reconciliation ${newest.key})`,
    );
  });

  it('shows the queue board to an admin only, with payloads redacted', async () => {
    const viewer = await fetch(`${base}/admin/queues/`, { headers: { authorization: `Bearer ${tokens.vera?.token}` } });
    expect(viewer.status, await viewer.text()).toBe(403);
    expect((await fetch(`${base}/admin/queues/`)).status).toBe(401);
    const session = await fetch(`${base}/api/session`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.adam?.token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(session.status).toBe(204);
    const cookie = (session.headers.get('set-cookie') ?? '').split(';')[0] as string;
    expect(session.headers.get('set-cookie')).toMatch(/HttpOnly; SameSite=Strict/);
    const page = await fetch(`${base}/admin/queues/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<div id="root">');
    // Nothing is loaded from elsewhere (its web font link is left out, as the policy would refuse it).
    expect(html).not.toContain('fonts.googleapis.com');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const jobs = await fetch(`${base}/admin/queues/api/queues?activeQueue=backup&status=completed&page=1`, {
      headers: { cookie },
    });
    expect(jobs.status).toBe(200);
    const body = (await jobs.json()) as {
      queues: Array<{ name: string; jobs: Array<{ data: Record<string, unknown> }> }>;
    };
    const backupJobs = body.queues.find((q) => q.name === 'backup')?.jobs ?? [];
    expect(backupJobs.length).toBeGreaterThan(0);
    expect(backupJobs[0]?.data).toMatchObject({
      target: 'demo',
      kind: 'full',
      reason: '[redacted]',
      requestedBy: '[redacted]',
    });
    // Read-only: nothing but GET gets through, even for an admin.
    const retry = await fetch(`${base}/admin/queues/api/queues/backup/retry/failed`, {
      method: 'PUT',
      headers: { cookie },
    });
    expect(retry.status).toBe(403);
    // Signing out clears the cookie.
    const out = await fetch(`${base}/api/session`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${tokens.adam?.token}` },
    });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^lifeboat_session=; Path=\/admin\/queues; .*Max-Age=0/);
  });

  it('every call above is in the audit trail, and editing one entry in the store or the catalog is named by `lifeboat audit verify`', async () => {
    const intact = await lifeboat(['audit', 'verify', '--json'], env);
    expect(intact.code, intact.stderr + intact.stdout).toBe(0);
    const report = JSON.parse(intact.stdout);
    expect(report.ok).toBe(true);
    const entries = (await api('vera', '/api/audit?limit=1000')).json.entries as Array<{
      seq: number;
      actor: string;
      action: string;
    }>;
    const actions = entries.map((e) => `${e.actor} ${e.action}`);
    expect(actions).toEqual(
      expect.arrayContaining([
        'olga console.backup.trigger',
        'olga console.restore.trigger',
        'olga console.kill_switch.activate',
        'anna console.kill_switch.deactivate',
      ]),
    );
    // The workers record what they did, too.
    expect(entries.some((e) => e.action === 'backup.completed')).toBe(true);
    expect(entries.some((e) => e.action === 'restore.completed')).toBe(true);

    // One entry edited in the store.
    const store = createRuntime(await loadConfig(config), env).store;
    const victim = entries.find((e) => e.action === 'console.kill_switch.deactivate') as { seq: number };
    const key = layout.auditEntry(victim.seq);
    const original = Buffer.from(await store.getBytes(key));
    const edited = JSON.parse(original.toString('utf8'));
    edited.actor = 'olga';
    await store.put(key, Buffer.from(JSON.stringify(edited)));
    const broken = await lifeboat(['audit', 'verify', '--json'], env);
    expect(broken.code).not.toBe(0);
    expect(JSON.parse(broken.stdout)).toMatchObject({ ok: false, firstBroken: { seq: victim.seq, where: 'store' } });
    await store.put(key, original);
    expect((await lifeboat(['audit', 'verify', '--json'], env)).code).toBe(0);

    // One row edited in the catalog.
    const client = new pg.Client({ connectionString: catalogUrl });
    await client.connect();
    try {
      await client.query(
        `UPDATE lifeboat_audit_log SET entry = jsonb_set(entry, '{details,reason}', '"edited"') WHERE seq = $1`,
        [victim.seq],
      );
    } finally {
      await client.end();
    }
    const catalogBroken = await lifeboat(['audit', 'verify', '--json'], env);
    expect(catalogBroken.code).not.toBe(0);
    expect(JSON.parse(catalogBroken.stdout)).toMatchObject({
      ok: false,
      firstBroken: { seq: victim.seq, where: 'catalog' },
    });
  });
});
