// The console's API through app.inject (no open port): every route with and without the
// right role, the OpenAPI document checked by a real validator, sign-in limits, security
// headers, the two-person deactivation rule and the audit entry of every state-changing call.
// The target is a real demo target (SQLite, filesystem store) and the job handlers are the
// real ones; no service is mocked.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  configPath,
  createAuditTrail,
  createRuntime,
  InProcessJobBus,
  loadConfig,
  type Runtime,
  verifyAuditTrail,
} from '@lifeboat/adapters';
import { compactUtc, type JobBus, layout } from '@lifeboat/domain';
import { type DemoTarget, initDemo } from '@lifeboat/testkit';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureLimiter, issueToken, parseTokenGrants, type Role, TokenStore } from '../src/auth.js';
import { consumeEmbedded } from '../src/embedded.js';
import { buildConsole } from '../src/server.js';

const silent = { info() {}, warn() {}, error() {} };
const people: Record<string, Role> = {
  vera: 'viewer',
  olga: 'operator',
  oscar: 'operator',
  anna: 'approver',
  adam: 'admin',
};
const token: Record<string, string> = {};
const grants: string[] = [];
for (const [name, role] of Object.entries(people)) {
  const t = issueToken(name, role);
  token[name] = t.token;
  grants.push(t.line);
}
const tokens = new TokenStore(parseTokenGrants(grants.join('\n'), 'test grants'));
const auth = (name: string) => ({ authorization: `Bearer ${token[name]}` });

let dir: string;
let demo: DemoTarget;
let runtime: Runtime;
let audit: Awaited<ReturnType<typeof createAuditTrail>>;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-console-api-'));
  demo = await initDemo(join(dir, 'demo'));
  runtime = createRuntime(await loadConfig(configPath(demo.config)));
  audit = await createAuditTrail(runtime, { env: {}, log: silent });
  closers.push(() => audit.close());
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await rm(dir, { recursive: true, force: true });
});

async function consoleWith(options: { workers?: boolean; limiter?: FailureLimiter } = {}): Promise<FastifyInstance> {
  const bus: JobBus = new InProcessJobBus();
  if (options.workers) await consumeEmbedded(bus, runtime, silent);
  const app = await buildConsole({
    runtime,
    bus,
    mode: 'embedded',
    tokens,
    audit: audit.trail,
    verifyAudit: () => verifyAuditTrail({ store: runtime.store, catalog: audit.catalog }),
    log: silent,
    ...(options.limiter ? { limiter: options.limiter } : {}),
  });
  closers.push(async () => {
    await app.close();
    await bus.close();
  });
  return app;
}

/** Every /api route, what a call needs, and who may make it. */
const ROUTES: Array<{ method: 'GET' | 'POST' | 'DELETE'; url: string; route: string; body?: object; allowed: Role[] }> =
  [];
const everyone: Role[] = ['viewer', 'operator', 'approver', 'admin'];
const operators: Role[] = ['operator', 'admin'];
const approvers: Role[] = ['approver', 'admin'];
function route(method: 'GET' | 'POST' | 'DELETE', route: string, allowed: Role[], body?: object, url = route) {
  ROUTES.push({ method, route, url: url.replace(':target', 'demo'), allowed, ...(body ? { body } : {}) });
}
route('GET', '/api/me', everyone);
route('POST', '/api/session', everyone, {});
route('DELETE', '/api/session', everyone);
route('GET', '/api/targets', everyone);
route('GET', '/api/queues', everyone);
route('GET', '/api/jobs/:queue/:jobId', everyone, undefined, '/api/jobs/backup/none');
route('GET', '/api/audit', everyone);
route('GET', '/api/audit/verify', everyone);
route('GET', '/api/targets/:target/backups', everyone);
route('GET', '/api/targets/:target/backups/:backupId', everyone, undefined, '/api/targets/demo/backups/none');
route('POST', '/api/targets/:target/backups', operators, { kind: 'state', reason: 'role matrix' });
route(
  'POST',
  '/api/targets/:target/backups/:backupId/verify',
  operators,
  { level: 'quick' },
  '/api/targets/demo/backups/none/verify',
);
route('GET', '/api/targets/:target/freshness', everyone);
route('POST', '/api/targets/:target/restores', operators, { scenario: 'app-crash', dryRun: true });
route('GET', '/api/targets/:target/restores', everyone);
route(
  'GET',
  '/api/targets/:target/restores/jobs/:jobId',
  everyone,
  undefined,
  '/api/targets/demo/restores/jobs/restore:demo:none',
);
route(
  'GET',
  '/api/targets/:target/restores/jobs/:jobId/events',
  everyone,
  undefined,
  '/api/targets/demo/restores/jobs/restore:demo:none/events',
);
route('POST', '/api/targets/:target/reconciliations', operators, { apply: false });
route('GET', '/api/targets/:target/reconciliations', everyone);
route('GET', '/api/targets/:target/reconciliations/:id', everyone, undefined, '/api/targets/demo/reconciliations/none');
route('GET', '/api/targets/:target/drills', everyone);
route('POST', '/api/targets/:target/drills', operators, { drill: 'reconciliation' });
route('GET', '/api/targets/:target/drills/:id', everyone, undefined, '/api/targets/demo/drills/none');
route('GET', '/api/targets/:target/drills/:id/html', everyone, undefined, '/api/targets/demo/drills/none/html');
route('GET', '/api/targets/:target/drill-schedule', everyone);
route('GET', '/api/targets/:target/performance', everyone);
route('GET', '/api/targets/:target/kill-switch', everyone);
route('POST', '/api/targets/:target/kill-switch/activate', operators, { reason: 'role matrix' });
route('POST', '/api/targets/:target/kill-switch/deactivation-requests', operators, { reason: 'role matrix' });
route(
  'POST',
  '/api/targets/:target/kill-switch/deactivation-requests/:id/approve',
  approvers,
  {},
  '/api/targets/demo/kill-switch/deactivation-requests/20250101T000000Z-00000000/approve',
);

const personOf = (role: Role) => Object.keys(people).find((n) => people[n] === role) as string;

describe('access', () => {
  it('every /api route is in the role matrix below, and every route in the matrix exists', async () => {
    const app = await consoleWith();
    await app.ready();
    const doc = app.swagger() as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    expect(documented.sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.route}`).sort());
  });

  it('answers 401 without a token and with an unknown one, on every route', async () => {
    const app = await consoleWith({ limiter: new FailureLimiter(10_000) });
    for (const r of ROUTES) {
      const none = await app.inject({ method: r.method, url: r.url, ...(r.body ? { payload: r.body } : {}) });
      expect(none.statusCode, `${r.method} ${r.url}`).toBe(401);
      expect(none.json().error.code).toBe('UNAUTHENTICATED');
      expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
      const wrong = await app.inject({
        method: r.method,
        url: r.url,
        headers: { authorization: 'Bearer lbt_not-a-token' },
        ...(r.body ? { payload: r.body } : {}),
      });
      expect(wrong.statusCode, `${r.method} ${r.url}`).toBe(401);
    }
  });

  it('answers 403 to a role that may not, and lets the roles that may through, on every route', async () => {
    const app = await consoleWith();
    for (const r of ROUTES) {
      for (const role of everyone) {
        const res = await app.inject({
          method: r.method,
          url: r.url,
          headers: auth(personOf(role)),
          ...(r.body ? { payload: r.body } : {}),
        });
        const what = `${role} ${r.method} ${r.url}: ${res.body.slice(0, 300)}`;
        if (r.allowed.includes(role)) {
          expect([401, 403], what).not.toContain(res.statusCode);
          expect(res.statusCode, what).toBeLessThan(500);
        } else {
          expect(res.statusCode, what).toBe(403);
          expect(res.json().error.message).toContain(`${personOf(role)} (${role}) may not`);
        }
      }
    }
  });

  it('refuses an address after 10 failed authentications, even with a good token, and says when to retry', async () => {
    const app = await consoleWith({ limiter: new FailureLimiter(10, 60_000) });
    for (let i = 0; i < 10; i++) {
      const res = await app.inject({ url: '/api/me', headers: { authorization: `Bearer guess-${i}` } });
      expect(res.statusCode).toBe(401);
    }
    const limited = await app.inject({ url: '/api/me', headers: auth('vera') });
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    const elsewhere = await app.inject({ url: '/api/me', headers: auth('vera'), remoteAddress: '10.1.2.3' });
    expect(elsewhere.json()).toEqual({ name: 'vera', role: 'viewer' });
  });

  it('sets security headers on the API and the dashboard', async () => {
    const app = await consoleWith();
    for (const url of ['/', '/api/me']) {
      const res = await app.inject({ url, headers: auth('vera') });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['strict-transport-security']).toContain('max-age=');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
    }
  });

  it('names the field of a request that does not validate', async () => {
    const app = await consoleWith();
    const res = await app.inject({
      method: 'POST',
      url: '/api/targets/demo/restores',
      headers: auth('olga'),
      payload: { scenario: 'flood' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/scenario/);
    const unknown = await app.inject({ url: '/api/targets/nowhere/backups', headers: auth('vera') });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.message).toContain('target "nowhere" is not configured');
  });
});

describe('ops', () => {
  it('answers /health, /ready and /metrics without a token, with request, refusal and queue counts', async () => {
    const app = await consoleWith();
    expect((await app.inject({ url: '/health' })).json()).toMatchObject({ status: 'ok', app: 'console' });
    expect((await app.inject({ url: '/ready' })).json()).toMatchObject({ status: 'ready' });
    await app.inject({ url: '/api/me', headers: auth('vera') });
    await app.inject({
      method: 'POST',
      url: '/api/targets/demo/drills',
      headers: auth('vera'),
      payload: { drill: 'kill-switch' },
    });
    const metrics = (await app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/lifeboat_console_requests_total\{route="\/api\/me",method="GET",status="200"\} 1/);
    expect(metrics).toMatch(/lifeboat_console_auth_failures_total\{status="403"\} 1/);
    expect(metrics).toMatch(/lifeboat_queue_jobs\{queue="backup",state="waiting"\} 0/);
  });
});

describe('OpenAPI', () => {
  it('serves a document at /docs that a real OpenAPI validator accepts', async () => {
    const app = await consoleWith();
    const res = await app.inject({ url: '/docs' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });
  });
});

describe('operations', () => {
  it('a backup triggered through the API runs, is listed with its manifest, verifies, and makes the target fresh', async () => {
    const app = await consoleWith({ workers: true });
    const res = await app.inject({
      method: 'POST',
      url: '/api/targets/demo/backups',
      headers: auth('olga'),
      payload: { kind: 'full', reason: 'api test' },
    });
    expect(res.statusCode).toBe(202);
    const { jobId } = res.json();
    let status: { state: string; result: { backupId: string } | null } = { state: 'waiting', result: null };
    for (let i = 0; i < 600 && !['completed', 'failed'].includes(status.state); i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await app.inject({ url: `/api/jobs/backup/${jobId}`, headers: auth('vera') })).json();
    }
    expect(status.state, JSON.stringify(status)).toBe('completed');
    const backupId = status.result?.backupId as string;
    const list = (await app.inject({ url: '/api/targets/demo/backups', headers: auth('vera') })).json();
    expect(list.backups.map((b: { backupId: string }) => b.backupId)).toContain(backupId);
    const manifest = (await app.inject({ url: `/api/targets/demo/backups/${backupId}`, headers: auth('vera') })).json();
    expect(manifest).toMatchObject({ backupId, target: 'demo', kind: 'full', reason: 'api test' });
    expect(manifest.entries.length).toBeGreaterThan(0);

    const verify = await app.inject({
      method: 'POST',
      url: `/api/targets/demo/backups/${backupId}/verify`,
      headers: auth('olga'),
      payload: { level: 'full' },
    });
    expect(verify.statusCode, verify.body).toBe(200);
    expect(verify.json().ok).toBe(true);
    const fresh = (await app.inject({ url: '/api/targets/demo/freshness', headers: auth('vera') })).json();
    expect(fresh.newestVerified.backupId).toBe(backupId);
    expect(fresh.status).toBe('OK');
  });

  it('deactivation takes two people and a passing reconciliation newer than the activation', async () => {
    const app = await consoleWith();
    const ks = (name: string, path: string, payload: object = {}) =>
      app.inject({ method: 'POST', url: `/api/targets/demo/kill-switch/${path}`, headers: auth(name), payload });
    const activated = await ks('olga', 'activate', { reason: 'drill of the rule' });
    expect(activated.statusCode, activated.body).toBe(200);
    expect(activated.json().state).toBe('ON');

    // A passing reconciliation from before the activation does not count.
    const store = runtime.store;
    const writeReport = async (at: Date, ready: boolean) => {
      const verdict = ready ? 'PASS' : 'FAIL';
      const key = layout.reconciliation('demo', compactUtc(at), verdict);
      const report = {
        timestamp: at.toISOString(),
        verdict,
        ready_to_trade: ready,
        recovery_type: 'manual',
        checks: {},
      };
      await store.put(key, Buffer.from(JSON.stringify(report)));
      return key;
    };
    await writeReport(new Date(Date.now() - 3600_000), true);
    const early = await ks('olga', 'deactivation-requests', { reason: 'books fine' });
    expect(early.statusCode).toBe(409);
    expect(early.json().error.message).toMatch(/older than the activation/);

    // (A stored report stands in for a reconciler run here; the end-to-end test runs a real one.)
    await new Promise((r) => setTimeout(r, 5));
    const passing = await writeReport(new Date(), true);
    const asked = await ks('olga', 'deactivation-requests', { reason: 'books fine' });
    expect(asked.statusCode, asked.body).toBe(201);
    const { id } = asked.json();

    // The operator who asked cannot approve (no approver role), nor can an admin approve their own request.
    expect((await ks('olga', `deactivation-requests/${id}/approve`)).statusCode).toBe(403);
    const own = (await ks('adam', 'deactivation-requests', { reason: 'mine' })).json().id as string;
    const selfApproved = await ks('adam', `deactivation-requests/${own}/approve`);
    expect(selfApproved.statusCode).toBe(409);
    expect(selfApproved.json().error.message).toContain('a different person must approve it');
    expect((await app.inject({ url: '/api/targets/demo/kill-switch', headers: auth('vera') })).json().state).toBe('ON');

    const approved = await ks('anna', `deactivation-requests/${id}/approve`);
    expect(approved.statusCode, approved.body).toBe(200);
    const view = approved.json();
    expect(view.state).toBe('OFF');
    expect(view.events[0]).toMatchObject({
      activated: false,
      metadata: { by: 'anna', requestedBy: 'olga', reconciliation: passing },
    });
    expect(view.requests.find((r: { id: string }) => r.id === id)).toMatchObject({
      status: 'approved',
      approvedBy: 'anna',
    });
    expect(view.requests.find((r: { id: string }) => r.id === own).status).toBe('superseded');
    // An approved request cannot be used again.
    expect((await ks('adam', `deactivation-requests/${id}/approve`)).statusCode).toBe(409);

    const entries = (await app.inject({ url: '/api/audit?limit=1000', headers: auth('vera') })).json()
      .entries as Array<{
      actor: string;
      action: string;
      outcome: string;
      details: Record<string, unknown>;
    }>;
    const trail = entries
      .filter((e) => e.action.startsWith('console.kill_switch'))
      .map((e) => `${e.actor} ${e.action} ${e.outcome}`);
    expect(trail).toEqual(
      expect.arrayContaining([
        'olga console.kill_switch.activate ok',
        'olga console.kill_switch.request_deactivation refused',
        'olga console.kill_switch.request_deactivation ok',
        'adam console.kill_switch.deactivate refused',
        'anna console.kill_switch.deactivate ok',
      ]),
    );
    const verified = (await app.inject({ url: '/api/audit/verify', headers: auth('vera') })).json();
    expect(verified.ok, JSON.stringify(verified)).toBe(true);
  });
});
