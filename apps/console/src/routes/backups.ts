// Backups: the list with each one's latest verification, a manifest, a backup enqueued on
// the `backup` queue, a verification, and how fresh the newest verified backup is.
import { randomUUID } from 'node:crypto';
import { listBackups, readManifest, verifyBackup } from '@lifeboat/backup';
import type { FastifyInstance } from 'fastify';
import {
  AnyObject,
  BackupList,
  BackupTrigger,
  Enqueued,
  errors,
  Freshness,
  RecordId,
  TargetParams,
  VerifyBody,
  withParams,
} from '../schemas.js';
import { type ConsoleContext, targetOf } from '../server.js';

type P = { target: string };
type PB = P & { backupId: string };

export async function backupRoutes(api: FastifyInstance, ctx: ConsoleContext): Promise<void> {
  api.get<{ Params: P }>(
    '/targets/:target/backups',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['backups'],
        summary: 'Committed backups, oldest first, with their latest verification',
        params: TargetParams,
        response: { 200: BackupList, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => ({ backups: await listBackups(ctx.runtime, targetOf(ctx, req.params.target).name) }),
  );

  api.get<{ Params: PB }>(
    '/targets/:target/backups/:backupId',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['backups'],
        summary: "A backup's manifest (docs/FORMAT.md)",
        params: withParams({ backupId: RecordId }),
        response: { 200: AnyObject, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => readManifest(ctx.runtime, targetOf(ctx, req.params.target).name, req.params.backupId),
  );

  api.post<{ Params: P; Body: { kind: 'full' | 'database' | 'state' | 'pre-change'; reason: string } }>(
    '/targets/:target/backups',
    {
      config: { permission: 'operate', action: 'backup.trigger' },
      schema: {
        tags: ['backups'],
        summary: 'Enqueues a backup; follow it at /api/jobs/backup/{jobId}',
        params: TargetParams,
        body: BackupTrigger,
        response: { 202: Enqueued, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req, reply) => {
      const target = targetOf(ctx, req.params.target).name;
      const jobId = `backup:${target}:console:${randomUUID()}`;
      const request = {
        target,
        kind: req.body.kind,
        reason: req.body.reason,
        requestedBy: `console:${req.principal?.name}`,
      };
      const { created } = await ctx.bus.enqueue('backup', request, { jobId });
      req.auditDetails = { jobId, kind: request.kind, reason: request.reason };
      return reply.code(202).send({ queue: 'backup', jobId, created });
    },
  );

  api.post<{ Params: PB; Body: { level: 'quick' | 'full' } }>(
    '/targets/:target/backups/:backupId/verify',
    {
      config: { permission: 'operate', action: 'backup.verify' },
      schema: {
        tags: ['backups'],
        summary: 'Verifies a backup now (quick: the archive checksum; full: every entry) and stores the record',
        params: withParams({ backupId: RecordId }),
        body: VerifyBody,
        response: { 200: AnyObject, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => {
      const target = targetOf(ctx, req.params.target).name;
      const record = await verifyBackup(ctx.runtime, target, req.params.backupId, req.body.level, { log: ctx.log });
      req.auditDetails = { backupId: req.params.backupId, level: req.body.level, ok: record.ok };
      return record;
    },
  );

  api.get<{ Params: P }>(
    '/targets/:target/freshness',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['backups'],
        summary: 'Age of the newest verified backup against the order-history RPO target',
        params: TargetParams,
        response: { 200: Freshness, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => {
      const target = targetOf(ctx, req.params.target).name;
      const backups = await listBackups(ctx.runtime, target);
      const rpoTargetSeconds = ctx.runtime.loaded.config.drills.targets.rpo.orderHistory;
      const verified = backups.filter((b) => b.verification?.ok === true).at(-1) ?? null;
      const newest = backups.at(-1) ?? null;
      const ageSeconds = verified ? (ctx.now().getTime() - Date.parse(verified.createdAt)) / 1000 : null;
      return {
        newestVerified: verified
          ? { backupId: verified.backupId, createdAt: verified.createdAt, verifiedAt: verified.verification?.at }
          : null,
        newestBackup: newest ? { backupId: newest.backupId, createdAt: newest.createdAt } : null,
        ageSeconds,
        rpoTargetSeconds,
        status: ageSeconds === null ? 'NONE' : ageSeconds <= rpoTargetSeconds ? 'OK' : 'STALE',
      };
    },
  );
}
