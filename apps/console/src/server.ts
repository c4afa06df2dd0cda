// The console: one Fastify app holding the control-plane API (schemas on every route, the
// OpenAPI document at /docs), the dashboard, the read-only queue board for admins, and
// /health, /ready, /metrics. Tokens decide who may call what; every state-changing call is
// appended to the audit trail before its answer is sent.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import type { Runtime } from '@lifeboat/adapters';
import {
  type AuditTrail,
  isLifeboatError,
  type JobBus,
  type KillSwitchClient,
  LifeboatError,
  QUEUES,
} from '@lifeboat/domain';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import { allows, FailureLimiter, type Permission, type Principal, type TokenStore } from './auth.js';
import { type BoardQueue, mountQueueBoard } from './board.js';
import { backupRoutes } from './routes/backups.js';
import { drillRoutes } from './routes/drills.js';
import { killSwitchRoutes } from './routes/kill-switch.js';
import { operationsRoutes } from './routes/operations.js';
import { reconciliationRoutes } from './routes/reconciliations.js';
import { restoreRoutes } from './routes/restores.js';
import { ErrorBody, Health } from './schemas.js';

export const VERSION = '0.1.0';

/** The subset of a pino logger the console uses. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ConsoleDeps {
  runtime: Runtime;
  /** Where work is enqueued: BullMQ (distributed) or the in-process bus with the handlers beside it (embedded). */
  bus: JobBus;
  mode: 'embedded' | 'distributed';
  tokens: TokenStore;
  /** Where state-changing calls are recorded; null only in tests that say so. */
  audit: AuditTrail | null;
  log: Logger;
  /** Recomputes the audit chain (store, and catalog when there is one). */
  verifyAudit?: () => Promise<{ ok: boolean }>;
  /** BullMQ queues for the admin's read-only board (distributed mode only). */
  boardQueues?: BoardQueue[];
  limiter?: FailureLimiter;
  /** The kill switch of a target; default: its API with the state file as fallback. */
  killSwitchFor?: (target: string) => KillSwitchClient;
  /** Resolves to null when ready, or to the reason it is not. */
  readiness?: () => Promise<string | null>;
  now?: () => Date;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** What a handler adds to the audit entry of this call (a reason, a job id). */
    auditDetails: Record<string, unknown>;
  }
  interface FastifyContextConfig {
    /** What the caller's role must allow; routes without one are public (health, docs, the dashboard's files). */
    permission?: Permission;
    /** The audit action of a state-changing route, e.g. `backup.trigger`. */
    action?: string;
  }
}

const HTTP_STATUS: Partial<Record<string, number>> = {
  INVALID_REQUEST: 400,
  INVALID_CONFIG: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  VERIFY_FAILED: 422,
  TIMEOUT: 504,
  STORE_UNREACHABLE: 503,
};

export const PUBLIC_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'public');

/** Where the caller presented a token: the Authorization header, or the board's session cookie. */
function presentedToken(req: FastifyRequest, cookieAllowed: boolean): string | null {
  const header = req.headers.authorization;
  if (header) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    return m ? (m[1] as string) : '';
  }
  if (!cookieAllowed) return null;
  const cookie = req.headers.cookie ?? '';
  const m = /(?:^|;\s*)lifeboat_session=([^;]+)/.exec(cookie);
  return m ? decodeURIComponent(m[1] as string) : null;
}

function sendError(reply: FastifyReply, status: number, code: string, message: string, hint?: string) {
  return reply.code(status).send({ error: { code, message, ...(hint ? { hint } : {}) } });
}

export async function buildConsole(deps: ConsoleDeps): Promise<FastifyInstance> {
  const limiter = deps.limiter ?? new FailureLimiter();
  const app = Fastify({
    logger: false,
    trustProxy: process.env.LIFEBOAT_CONSOLE_TRUST_PROXY === 'true',
    bodyLimit: 64 * 1024,
    ajv: { customOptions: { removeAdditional: false, useDefaults: true, coerceTypes: 'array', allErrors: false } },
    // A URL the router refuses (a bad escape, a parameter over its length) gets the API's error body too.
    frameworkErrors: (err, _req, reply) => sendError(reply, err.statusCode ?? 400, 'INVALID_REQUEST', err.message),
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('auditDetails', null as unknown as Record<string, unknown>);
  app.addSchema(ErrorBody);

  const registry = new Registry();
  const requests = new Counter({
    name: 'lifeboat_console_requests_total',
    help: 'API requests by route, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'lifeboat_console_auth_failures_total',
    help: 'Requests refused for a missing or unknown token (401) or a role that may not (403)',
    labelNames: ['status'],
    registers: [registry],
  });
  const auditFailures = new Counter({
    name: 'lifeboat_console_audit_failures_total',
    help: 'State-changing calls whose audit entry could not be written (the call was refused)',
    registers: [registry],
  });
  new Gauge({
    name: 'lifeboat_queue_jobs',
    help: 'Jobs per queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      for (const q of QUEUES) {
        const counts = await deps.bus.counts(q).catch(() => null);
        if (!counts) continue;
        for (const [state, n] of Object.entries(counts)) this.set({ queue: q, state }, n);
      }
    },
  });

  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        objectSrc: ["'none'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
      },
    },
    // The dashboard and the API are same-origin only.
    crossOriginResourcePolicy: { policy: 'same-origin' },
    referrerPolicy: { policy: 'no-referrer' },
    hsts: { maxAge: 31_536_000, includeSubDomains: true },
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Lifeboat console API',
        version: VERSION,
        description:
          'Backups, restores, reconciliations, drills and the kill switch of the targets Lifeboat protects. ' +
          'Every /api route needs `Authorization: Bearer <token>`; roles: viewer, operator, approver, admin.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    hideUntagged: false,
  });

  // Authentication and roles, before the body is even parsed.
  app.addHook('onRequest', async (req, reply) => {
    const permission = req.routeOptions.config?.permission;
    const board = req.url.startsWith('/admin/queues');
    if (!permission && !board) return;
    if (board && req.method !== 'GET' && req.method !== 'HEAD') {
      return sendError(reply, 403, 'FORBIDDEN', 'the queue board is read-only');
    }
    const address = req.ip;
    const wait = limiter.retryAfterMs(address);
    if (wait > 0) {
      reply.header('retry-after', String(Math.ceil(wait / 1000)));
      return sendError(reply, 429, 'RATE_LIMITED', 'too many failed authentications from this address; wait and retry');
    }
    const token = presentedToken(req, board);
    if (token === null) {
      authFailures.inc({ status: '401' });
      reply.header('www-authenticate', 'Bearer realm="lifeboat"');
      return sendError(reply, 401, 'UNAUTHENTICATED', 'this needs a token: Authorization: Bearer <token>');
    }
    const principal = token ? deps.tokens.authenticate(token) : null;
    if (!principal) {
      limiter.fail(address);
      authFailures.inc({ status: '401' });
      reply.header('www-authenticate', 'Bearer realm="lifeboat", error="invalid_token"');
      return sendError(reply, 401, 'UNAUTHENTICATED', 'the token is not accepted');
    }
    req.principal = principal;
    req.auditDetails = {};
    const needed: Permission = board ? 'admin' : (permission as Permission);
    if (!allows(principal.role, needed)) {
      authFailures.inc({ status: '403' });
      return sendError(
        reply,
        403,
        'FORBIDDEN',
        `${principal.name} (${principal.role}) may not do this: it needs ${needed}`,
      );
    }
  });

  // The audit entry of a state-changing call is written before the answer leaves: a call
  // that cannot be recorded is not acknowledged as done.
  app.addHook('onSend', async (req, reply, payload) => {
    const action = req.routeOptions.config?.action;
    if (!action || !req.principal || !deps.audit) return payload;
    const status = reply.statusCode;
    const params = (req.params ?? {}) as Record<string, unknown>;
    try {
      await deps.audit.append({
        actor: req.principal.name,
        action: `console.${action}`,
        ...(typeof params.target === 'string' ? { target: params.target } : {}),
        outcome: status < 400 ? 'ok' : status === 403 || status === 409 ? 'refused' : 'failed',
        details: {
          role: req.principal.role,
          method: req.method,
          route: req.routeOptions.url,
          status,
          ...req.auditDetails,
        },
      });
    } catch (err) {
      auditFailures.inc();
      deps.log.error({ err: { message: (err as Error).message }, action }, 'audit entry not written');
    }
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    if (req.routeOptions.url?.startsWith('/api')) {
      requests.inc({ route: req.routeOptions.url, method: req.method, status: String(reply.statusCode) });
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const e = err as Error & { validation?: unknown; validationContext?: string; statusCode?: number; code?: string };
    if (e.validation) {
      // ajv's message for a key too many does not say which: name it.
      const [first] = e.validation as Array<{ keyword?: string; params?: { additionalProperty?: unknown } }>;
      const extra =
        first?.keyword === 'additionalProperties' ? ` (${JSON.stringify(first.params?.additionalProperty)})` : '';
      return sendError(
        reply,
        400,
        'INVALID_REQUEST',
        `${e.validationContext ?? 'request'}: ${e.message.replace(/^(body|params|querystring)\/?\s*/, '')}${extra}`,
      );
    }
    if (isLifeboatError(err)) {
      const body = err.toJSON();
      return sendError(reply, HTTP_STATUS[err.code] ?? 500, err.code, body.message, body.hint);
    }
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return sendError(reply, e.statusCode, 'INVALID_REQUEST', e.message);
    }
    deps.log.error({ err: { message: e.message }, route: req.routeOptions.url }, 'console request failed');
    return sendError(reply, 500, 'INTERNAL', 'internal error; see the console log');
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, 404, 'NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`),
  );

  // Ops routes: public, as probes and scrapers have no token.
  app.get('/health', { schema: { hide: true, response: { 200: Health } } }, async () => ({
    status: 'ok',
    app: 'console',
    version: VERSION,
  }));
  app.get('/ready', { schema: { hide: true, response: { 200: Health, 503: Health } } }, async (_req, reply) => {
    const reason = await (deps.readiness ?? defaultReadiness(deps))().catch((err: Error) => err.message);
    if (reason) return reply.code(503).send({ status: 'not ready', app: 'console', version: VERSION, reason });
    return { status: 'ready', app: 'console', version: VERSION };
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  app.get('/docs', { schema: { hide: true } }, async () => app.swagger());

  // The dashboard: committed static files, no build step and no dev server.
  app.get('/', { schema: { hide: true } }, async (_req, reply) => {
    reply.type('text/html; charset=utf-8');
    return readFile(join(PUBLIC_DIR, 'index.html'));
  });
  app.get<{ Params: { file: string } }>(
    '/assets/:file',
    {
      schema: {
        hide: true,
        params: {
          type: 'object',
          properties: { file: { type: 'string', pattern: '^[A-Za-z0-9_-]+\\.(js|css|svg|png|ico)$' } },
        },
      },
    },
    async (req, reply) => {
      const ext = req.params.file.split('.').pop() as string;
      const types: Record<string, string> = {
        js: 'text/javascript; charset=utf-8',
        css: 'text/css; charset=utf-8',
        svg: 'image/svg+xml',
        png: 'image/png',
        ico: 'image/x-icon',
      };
      const body = await readFile(join(PUBLIC_DIR, req.params.file)).catch(() => null);
      if (!body) return sendError(reply, 404, 'NOT_FOUND', `no asset ${req.params.file}`);
      reply.type(types[ext] as string).header('cache-control', 'no-cache');
      return body;
    },
  );

  const ctx = { ...deps, now: deps.now ?? (() => new Date()) };
  await app.register(
    async (api) => {
      await operationsRoutes(api, ctx);
      await backupRoutes(api, ctx);
      await restoreRoutes(api, ctx);
      await reconciliationRoutes(api, ctx);
      await drillRoutes(api, ctx);
      await killSwitchRoutes(api, ctx);
    },
    { prefix: '/api' },
  );
  if (deps.boardQueues?.length) await mountQueueBoard(app, deps.boardQueues);
  return app;
}

export type ConsoleContext = ConsoleDeps & { now: () => Date };

function defaultReadiness(deps: ConsoleDeps): () => Promise<string | null> {
  return async () => {
    try {
      await deps.bus.counts('backup');
    } catch (err) {
      return `job bus: ${(err as Error).message}`;
    }
    try {
      for await (const _ of deps.runtime.store.list('_lifeboat/')) break;
    } catch (err) {
      return `object store: ${(err as Error).message}`;
    }
    return null;
  };
}

/** A target named in a path must be configured; its resolved form. */
export function targetOf(ctx: ConsoleContext, name: string) {
  if (!Object.hasOwn(ctx.runtime.loaded.config.targets, name)) {
    throw new LifeboatError('NOT_FOUND', `target "${name}" is not configured`, {
      hint: `configured targets: ${Object.keys(ctx.runtime.loaded.config.targets).join(', ') || 'none'}`,
    });
  }
  return ctx.runtime.target(name);
}
