// Who am I, which targets, queue health, any job's status, the audit trail, and the board's
// session cookie.
import { LifeboatError, QUEUES, type QueueName } from '@lifeboat/domain';
import type { FastifyInstance } from 'fastify';
import { BOARD_PATH } from '../board.js';
import {
  AuditEntries,
  AuditVerification,
  EmptyBody,
  errors,
  JobParams,
  JobStatus,
  Me,
  Queues,
  Targets,
} from '../schemas.js';
import type { ConsoleContext } from '../server.js';

export async function operationsRoutes(api: FastifyInstance, ctx: ConsoleContext): Promise<void> {
  api.get(
    '/me',
    {
      config: { permission: 'read' },
      schema: { tags: ['access'], summary: 'The signed-in principal', response: { 200: Me, ...errors(401, 429) } },
    },
    async (req) => ({ name: req.principal?.name, role: req.principal?.role }),
  );

  api.post(
    '/session',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['access'],
        summary: "Sets the queue board's session cookie (HttpOnly, SameSite=Strict, only sent to the board)",
        body: EmptyBody,
        response: { 204: { type: 'null' }, ...errors(401, 429) },
      },
    },
    async (req, reply) => {
      const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
      const secure = req.protocol === 'https' ? '; Secure' : '';
      reply.header(
        'set-cookie',
        `lifeboat_session=${encodeURIComponent(token)}; Path=${BOARD_PATH}; HttpOnly; SameSite=Strict; Max-Age=28800${secure}`,
      );
      return reply.code(204).send();
    },
  );

  api.delete(
    '/session',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['access'],
        summary: "Clears the queue board's session cookie (the dashboard calls it on sign-out)",
        response: { 204: { type: 'null' }, ...errors(401, 429) },
      },
    },
    async (req, reply) => {
      const secure = req.protocol === 'https' ? '; Secure' : '';
      reply.header(
        'set-cookie',
        `lifeboat_session=; Path=${BOARD_PATH}; HttpOnly; SameSite=Strict; Max-Age=0${secure}`,
      );
      return reply.code(204).send();
    },
  );

  api.get(
    '/targets',
    {
      config: { permission: 'read' },
      schema: { tags: ['targets'], summary: 'Configured targets', response: { 200: Targets, ...errors(401, 429) } },
    },
    async () => ({
      targets: Object.entries(ctx.runtime.loaded.config.targets).map(([name, t]) => ({
        name,
        engine: t.database?.engine ?? null,
      })),
    }),
  );

  api.get(
    '/queues',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['queues'],
        summary: 'Queue health: jobs per state',
        response: { 200: Queues, ...errors(401, 429) },
      },
    },
    async () => ({
      mode: ctx.mode,
      queues: await Promise.all(QUEUES.map(async (name) => ({ name, ...(await ctx.bus.counts(name)) }))),
    }),
  );

  api.get<{ Params: { queue: QueueName; jobId: string } }>(
    '/jobs/:queue/:jobId',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['queues'],
        summary: "A job's state, progress, and result or failure",
        params: JobParams,
        response: { 200: JobStatus, ...errors(400, 401, 404, 429) },
      },
    },
    async (req) => {
      const status = await ctx.bus.status(req.params.queue, req.params.jobId);
      if (status.state === 'unknown') {
        throw new LifeboatError('NOT_FOUND', `job ${req.params.queue}/${req.params.jobId} not found`, {
          hint: 'finished jobs are kept for 24 hours',
        });
      }
      return status;
    },
  );

  api.get<{ Querystring: { afterSeq?: number; limit?: number } }>(
    '/audit',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['audit'],
        summary: 'Audit trail entries, oldest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            afterSeq: { type: 'integer', minimum: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
        },
        response: { 200: AuditEntries, ...errors(400, 401, 404, 429) },
      },
    },
    async (req) => {
      if (!ctx.audit) throw new LifeboatError('NOT_FOUND', 'no audit trail is configured');
      return {
        entries: await ctx.audit.list({
          ...(req.query.afterSeq !== undefined ? { afterSeq: req.query.afterSeq } : {}),
          limit: req.query.limit ?? 100,
        }),
      };
    },
  );

  api.get(
    '/audit/verify',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['audit'],
        summary: 'Recomputes the hash chain and names the first broken entry',
        response: { 200: AuditVerification, ...errors(401, 404, 429) },
      },
    },
    async () => {
      if (!ctx.verifyAudit) throw new LifeboatError('NOT_FOUND', 'no audit trail is configured');
      return ctx.verifyAudit();
    },
  );
}
