// Drills: the history, a drill run now (the `drill` queue), a report as JSON or its HTML
// page, the upcoming schedule, and the runbook's performance table from the latest runs.
import { randomUUID } from 'node:crypto';
import { DRILLS, type DrillName, drillSchedules, LifeboatError, layout, upcomingDrills } from '@lifeboat/domain';
import { drillHistory } from '@lifeboat/drill-scheduler';
import type { FastifyInstance } from 'fastify';
import {
  AnyObject,
  DrillList,
  DrillTrigger,
  Enqueued,
  errors,
  Performance,
  RecordId,
  Schedule,
  TargetParams,
  withParams,
} from '../schemas.js';
import { type ConsoleContext, targetOf } from '../server.js';

type P = { target: string };

export async function drillRoutes(api: FastifyInstance, ctx: ConsoleContext): Promise<void> {
  api.get<{ Params: P }>(
    '/targets/:target/drills',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['drills'],
        summary: 'Drill runs, oldest first, with measured RTO and RPO against their targets',
        params: TargetParams,
        response: { 200: DrillList, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => ({ drills: await drillHistory(ctx.runtime.store, targetOf(ctx, req.params.target).name) }),
  );

  api.post<{ Params: P; Body: { drill: DrillName } }>(
    '/targets/:target/drills',
    {
      config: { permission: 'operate', action: 'drill.run' },
      schema: {
        tags: ['drills'],
        summary: 'Runs a drill now (against a sandbox); follow it at /api/jobs/drill/{jobId}',
        params: TargetParams,
        body: DrillTrigger,
        response: { 202: Enqueued, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req, reply) => {
      const target = targetOf(ctx, req.params.target).name;
      const jobId = `drill:${target}:${req.body.drill}:${randomUUID()}`;
      const request = { drill: req.body.drill, target, requestedBy: `console:${req.principal?.name}` };
      const { created } = await ctx.bus.enqueue('drill', request, { jobId, attempts: 1 });
      req.auditDetails = { jobId, drill: req.body.drill };
      return reply.code(202).send({ queue: 'drill', jobId, created });
    },
  );

  api.get<{ Params: P & { id: string } }>(
    '/targets/:target/drills/:id',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['drills'],
        summary: 'A drill report (lifeboat.drill-report/v1)',
        params: withParams({ id: RecordId }),
        response: { 200: AnyObject, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => {
      const target = targetOf(ctx, req.params.target).name;
      return JSON.parse(
        Buffer.from(await readDrillObject(ctx, layout.drillReport(target, req.params.id), req.params.id)).toString(
          'utf8',
        ),
      );
    },
  );

  api.get<{ Params: P & { id: string } }>(
    '/targets/:target/drills/:id/html',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['drills'],
        summary: "A drill report's HTML page",
        params: withParams({ id: RecordId }),
        produces: ['text/html'],
        response: { 200: { type: 'string' }, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req, reply) => {
      const target = targetOf(ctx, req.params.target).name;
      const html = await readDrillObject(ctx, layout.drillHtml(target, req.params.id), req.params.id);
      // The stored page carries its own styles and no script.
      reply
        .type('text/html; charset=utf-8')
        .header(
          'content-security-policy',
          "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        );
      return Buffer.from(html);
    },
  );

  api.get<{ Params: P; Querystring: { count: number; from?: string } }>(
    '/targets/:target/drill-schedule',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['drills'],
        summary: 'The next scheduled drills (UTC), from lifeboat.yaml or the default schedule',
        params: TargetParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            count: { type: 'integer', minimum: 1, maximum: 200, default: 20 },
            from: { type: 'string', format: 'date-time' },
          },
        },
        response: { 200: Schedule, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => {
      targetOf(ctx, req.params.target);
      const from = req.query.from ? new Date(req.query.from) : ctx.now();
      const schedules = drillSchedules(ctx.runtime.loaded.config.drills);
      const cron = new Map(schedules.map((s) => [s.drill, s.cron.source]));
      const { runs } = upcomingDrills(schedules, from, req.query.count);
      return { runs: runs.map((r) => ({ drill: r.drill, at: r.at, cron: cron.get(r.drill) ?? '' })) };
    },
  );

  api.get<{ Params: P }>(
    '/targets/:target/performance',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['drills'],
        summary: "The runbook's performance table: Scenario, Target RTO, Actual RTO, Status, from the latest drills",
        params: TargetParams,
        response: { 200: Performance, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => {
      const target = targetOf(ctx, req.params.target).name;
      const newest = new Map<string, Awaited<ReturnType<typeof drillHistory>>[number]>();
      for (const h of await drillHistory(ctx.runtime.store, target)) newest.set(h.drill, h);
      const rto = ctx.runtime.loaded.config.drills.targets.rto;
      return {
        rows: Object.values(DRILLS)
          .filter((d) => d.rto !== null)
          .map((d) => {
            const run = newest.get(d.name);
            return {
              drill: d.name,
              scenario: d.scenario,
              targetRtoSeconds: rto[d.rto as keyof typeof rto],
              actualRtoSeconds: run?.rto_seconds ?? null,
              status: run ? run.verdict : 'NOT RUN',
              drillId: run?.id ?? null,
              at: run?.started_at ?? null,
            };
          }),
      };
    },
  );
}

async function readDrillObject(ctx: ConsoleContext, key: string, id: string): Promise<Uint8Array> {
  if (!(await ctx.runtime.store.head(key))) throw new LifeboatError('NOT_FOUND', `drill report ${id} not found`);
  return ctx.runtime.store.getBytes(key);
}
