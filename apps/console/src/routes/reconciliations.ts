// Reconciliations of a target's own books with its exchange: run (the `reconcile` queue),
// list the stored reports, show one.
import { randomUUID } from 'node:crypto';
import { LifeboatError, layout } from '@lifeboat/domain';
import type { FastifyInstance } from 'fastify';
import {
  AnyObject,
  Enqueued,
  errors,
  ReconcileTrigger,
  RecordId,
  RecordList,
  TargetParams,
  withParams,
} from '../schemas.js';
import { type ConsoleContext, targetOf } from '../server.js';
import { listRecords, readRecord } from './records.js';

type P = { target: string };

export async function reconciliationRoutes(api: FastifyInstance, ctx: ConsoleContext): Promise<void> {
  api.post<{ Params: P; Body: { apply: boolean; signOff: boolean } }>(
    '/targets/:target/reconciliations',
    {
      config: { permission: 'operate', action: 'reconcile.run' },
      schema: {
        tags: ['reconciliations'],
        summary:
          "Enqueues a reconciliation of the target's books with its exchange; with apply, corrections are made " +
          "(and signOff: true accepts them under the caller's name). Follow it at /api/jobs/reconcile/{jobId}.",
        params: TargetParams,
        body: ReconcileTrigger,
        response: { 202: Enqueued, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req, reply) => {
      const target = targetOf(ctx, req.params.target).name;
      if (req.body.signOff && !req.body.apply) {
        throw new LifeboatError('INVALID_REQUEST', 'signOff accepts corrections: it needs apply: true');
      }
      const jobId = `reconcile:${target}:console:${randomUUID()}`;
      const request = {
        target,
        recoveryType: 'manual',
        apply: req.body.apply,
        ...(req.body.signOff ? { signOff: req.principal?.name } : {}),
        requestedBy: `console:${req.principal?.name}`,
      };
      const { created } = await ctx.bus.enqueue('reconcile', request, { jobId });
      req.auditDetails = { jobId, apply: req.body.apply, signOff: req.body.signOff };
      return reply.code(202).send({ queue: 'reconcile', jobId, created });
    },
  );

  api.get<{ Params: P }>(
    '/targets/:target/reconciliations',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['reconciliations'],
        summary: "Stored reports of the target's own books, oldest first",
        params: TargetParams,
        response: { 200: RecordList, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => {
      const target = targetOf(ctx, req.params.target).name;
      return {
        items: await listRecords(ctx.runtime.store, layout.reconciliationsPrefix(target), (r) => ({
          timestamp: r.timestamp,
          verdict: r.verdict,
          ready_to_trade: r.ready_to_trade,
          recovery_type: r.recovery_type,
        })),
      };
    },
  );

  api.get<{ Params: P & { id: string } }>(
    '/targets/:target/reconciliations/:id',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['reconciliations'],
        summary: 'One reconciliation report (the runbook template fields and every item)',
        params: withParams({ id: RecordId }),
        response: { 200: AnyObject, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => {
      const target = targetOf(ctx, req.params.target).name;
      return readRecord(
        ctx.runtime.store,
        layout.reconciliationsPrefix(target),
        req.params.id,
        'reconciliation report',
      );
    },
  );
}
