// Restores: a recovery scenario enqueued on the `restore` queue (sandbox by default; a
// production restore needs the target's name typed as confirmation), its live timeline as
// server-sent events, and the stored results.
import { randomUUID } from 'node:crypto';
import { describeZodError, type JobStatus, LifeboatError, layout, RestoreRequest } from '@lifeboat/domain';
import type { FastifyInstance } from 'fastify';
import {
  Enqueued,
  errors,
  JobStatus as JobStatusSchema,
  RecordList,
  RestoreTrigger,
  TargetParams,
  withParams,
} from '../schemas.js';
import { type ConsoleContext, targetOf } from '../server.js';
import { listRecords } from './records.js';

type P = { target: string };
interface TriggerBody {
  scenario: 'app-crash' | 'db-corruption' | 'server-loss';
  backupId: string;
  pointInTime?: string;
  destination: 'sandbox' | 'production';
  dryRun: boolean;
  reason: string;
  confirm?: string;
}

const JobId = { type: 'string', pattern: '^restore:[A-Za-z0-9._-]+:[A-Za-z0-9:-]+$', maxLength: 300 } as const;

/** How often the event stream looks at the job; a restore's steps take seconds, not milliseconds. */
const POLL_MS = 250;

export async function restoreRoutes(api: FastifyInstance, ctx: ConsoleContext): Promise<void> {
  api.post<{ Params: P; Body: TriggerBody }>(
    '/targets/:target/restores',
    {
      config: { permission: 'operate', action: 'restore.trigger' },
      schema: {
        tags: ['restores'],
        summary:
          'Enqueues a recovery scenario; follow it at /api/targets/{target}/restores/jobs/{jobId}[/events]. ' +
          'A production restore needs "confirm" set to the target name.',
        params: TargetParams,
        body: RestoreTrigger,
        response: { 202: Enqueued, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req, reply) => {
      const target = targetOf(ctx, req.params.target).name;
      const b = req.body;
      if (b.destination === 'production' && !b.dryRun && b.confirm !== target) {
        throw new LifeboatError('INVALID_REQUEST', `a production restore of ${target} needs "confirm": "${target}"`, {
          hint: 'try dryRun: true first to see what each step would touch',
        });
      }
      const jobId = `restore:${target}:${randomUUID()}`;
      const request = {
        target,
        scenario: b.scenario,
        backup: b.backupId,
        ...(b.pointInTime ? { pointInTime: b.pointInTime } : {}),
        destination: b.destination,
        dryRun: b.dryRun,
        reason: b.reason,
        requestedBy: `console:${req.principal?.name}`,
      };
      // What the worker would refuse is refused here: JSON Schema's date-time takes times ISO 8601 does not.
      const parsed = RestoreRequest.safeParse(request);
      if (!parsed.success)
        throw new LifeboatError('INVALID_REQUEST', describeZodError(parsed.error, 'restore request'));
      // A restore is never retried by itself: a second attempt after a partial one is a decision for a person.
      const { created } = await ctx.bus.enqueue('restore', request, { jobId, attempts: 1 });
      req.auditDetails = {
        jobId,
        scenario: b.scenario,
        destination: b.destination,
        dryRun: b.dryRun,
        reason: b.reason,
      };
      return reply.code(202).send({ queue: 'restore', jobId, created });
    },
  );

  api.get<{ Params: P }>(
    '/targets/:target/restores',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['restores'],
        summary: 'Stored restore results, oldest first',
        params: TargetParams,
        response: { 200: RecordList, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => {
      const target = targetOf(ctx, req.params.target).name;
      return {
        items: await listRecords(ctx.runtime.store, layout.restoresPrefix(target), (r) => ({
          scenario: r.scenario,
          outcome: r.outcome,
          destination: (r.destination as { kind?: string } | undefined)?.kind,
          backupId: r.backupId,
          readyToTrade: r.readyToTrade,
          rtoMs: (r.rto as { toReadyMs?: number | null } | undefined)?.toReadyMs ?? null,
          startedAt: r.startedAt,
        })),
      };
    },
  );

  api.get<{ Params: P & { jobId: string } }>(
    '/targets/:target/restores/jobs/:jobId',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['restores'],
        summary: "A queued restore's state, its timeline so far, and its result once finished",
        params: withParams({ jobId: JobId }),
        response: { 200: JobStatusSchema, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => restoreStatus(ctx, req.params.target, req.params.jobId),
  );

  api.get<{ Params: P & { jobId: string } }>(
    '/targets/:target/restores/jobs/:jobId/events',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['restores'],
        summary:
          'The live timeline as server-sent events: `status` on every change (the job status, its timeline inside), then `done` with the result',
        params: withParams({ jobId: JobId }),
        produces: ['text/event-stream'],
        response: { 200: { type: 'string', description: 'text/event-stream' }, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req, reply) => {
      // Fails with 404 before the stream opens when there is no such job.
      let status = await restoreStatus(ctx, req.params.target, req.params.jobId);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-content-type-options': 'nosniff',
        connection: 'keep-alive',
      });
      let closed = false;
      req.raw.on('close', () => {
        closed = true;
      });
      const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      let last = '';
      let ticks = 0;
      while (!closed) {
        const key = JSON.stringify(status);
        if (key !== last) {
          send('status', status);
          last = key;
        } else if (++ticks % 60 === 0) {
          res.write(': keep-alive\n\n');
        }
        if (status.state === 'completed' || status.state === 'failed' || status.state === 'unknown') {
          send('done', status);
          break;
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
        status = await ctx.bus.status('restore', req.params.jobId).catch(() => status);
      }
      res.end();
    },
  );
}

async function restoreStatus(ctx: ConsoleContext, targetName: string, jobId: string): Promise<JobStatus> {
  const target = targetOf(ctx, targetName).name;
  if (!jobId.startsWith(`restore:${target}:`)) {
    throw new LifeboatError('NOT_FOUND', `job ${jobId} is not a restore of ${target}`);
  }
  const status = await ctx.bus.status('restore', jobId);
  if (status.state === 'unknown') {
    throw new LifeboatError('NOT_FOUND', `restore job ${jobId} not found`, {
      hint: 'finished jobs are kept for 24 hours',
    });
  }
  return status;
}
