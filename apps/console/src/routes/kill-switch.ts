// The kill switch from the console: its state and history; activation by an operator; and
// deactivation only as two different people — a request by an operator, an approval by a
// different approver — and only after a passing reconciliation newer than the activation.
import { randomUUID } from 'node:crypto';
import { createKillSwitch } from '@lifeboat/adapters';
import { compactUtc, type KillSwitchReading, LifeboatError, layout } from '@lifeboat/domain';
import { deactivationEvidence, lastActivation } from '@lifeboat/restore';
import type { FastifyInstance } from 'fastify';
import {
  EmptyBody,
  errors,
  KillSwitchView,
  ReasonBody,
  DeactivationRequest as RequestSchema,
  TargetParams,
  withParams,
} from '../schemas.js';
import { type ConsoleContext, targetOf } from '../server.js';

type P = { target: string };

/** A request not approved within this time lapses; the next operator asks again. */
export const REQUEST_TTL_MS = 4 * 3600_000;

interface StoredRequest {
  id: string;
  requestedBy: string;
  reason: string;
  requestedAt: string;
  approvedBy?: string;
  approvedAt?: string;
  reconciliation?: string;
}

type RequestStatus = 'pending' | 'approved' | 'expired' | 'superseded';

export async function killSwitchRoutes(api: FastifyInstance, ctx: ConsoleContext): Promise<void> {
  const switchOf = (name: string) => ctx.killSwitchFor?.(name) ?? createKillSwitch(targetOf(ctx, name));
  const store = ctx.runtime.store;

  async function requests(target: string): Promise<StoredRequest[]> {
    const prefix = layout.killSwitchRequestsPrefix(target);
    const keys: string[] = [];
    for await (const o of store.list(prefix)) if (o.key.endsWith('.json')) keys.push(o.key);
    keys.sort();
    const out: StoredRequest[] = [];
    for (const key of keys.slice(-50)) {
      try {
        out.push(JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8')) as StoredRequest);
      } catch {
        // An unreadable request cannot be approved; it is left out of the list.
      }
    }
    return out;
  }

  const statusOf = (r: StoredRequest, reading: KillSwitchReading): RequestStatus => {
    if (r.approvedBy) return 'approved';
    const activatedAt = lastActivation(reading);
    // A halt after the request, or a switch already OFF, makes the request moot.
    if (reading.state === 'OFF' || (activatedAt && Date.parse(activatedAt) > Date.parse(r.requestedAt)))
      return 'superseded';
    if (ctx.now().getTime() - Date.parse(r.requestedAt) > REQUEST_TTL_MS) return 'expired';
    return 'pending';
  };

  async function view(target: string, reading?: KillSwitchReading) {
    const r = reading ?? (await switchOf(target).status());
    return {
      target,
      state: r.state,
      via: r.via,
      ...(r.fallback ? { fallback: r.fallback } : {}),
      events: [...(r.file?.events ?? [])].reverse(),
      requests: (await requests(target)).reverse().map((q) => ({ ...q, status: statusOf(q, r) })),
    };
  }

  api.get<{ Params: P }>(
    '/targets/:target/kill-switch',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['kill switch'],
        summary: 'State (unknown reads as ON), event history newest first, and deactivation requests',
        params: TargetParams,
        response: { 200: KillSwitchView, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => view(targetOf(ctx, req.params.target).name),
  );

  api.post<{ Params: P; Body: { reason: string } }>(
    '/targets/:target/kill-switch/activate',
    {
      config: { permission: 'operate', action: 'kill_switch.activate' },
      schema: {
        tags: ['kill switch'],
        summary: 'Halts trading: the API (which cancels working orders), else the state file',
        params: TargetParams,
        body: ReasonBody,
        response: { 200: KillSwitchView, ...errors(400, 401, 403, 404, 429) },
      },
    },
    async (req) => {
      const target = targetOf(ctx, req.params.target).name;
      req.auditDetails = { reason: req.body.reason };
      const reading = await switchOf(target).activate(
        `${req.body.reason} (by ${req.principal?.name} via the console)`,
        {
          by: req.principal?.name,
          via: 'lifeboat-console',
        },
      );
      req.auditDetails.state = reading.state;
      req.auditDetails.via = reading.via;
      return view(target, reading);
    },
  );

  api.post<{ Params: P; Body: { reason: string } }>(
    '/targets/:target/kill-switch/deactivation-requests',
    {
      config: { permission: 'operate', action: 'kill_switch.request_deactivation' },
      schema: {
        tags: ['kill switch'],
        summary:
          'Asks for trading to resume; a different person with the approver role must approve. Refused while no passing reconciliation is newer than the activation.',
        params: TargetParams,
        body: ReasonBody,
        response: { 201: RequestSchema, ...errors(400, 401, 403, 404, 409, 429) },
      },
    },
    async (req, reply) => {
      const target = targetOf(ctx, req.params.target).name;
      req.auditDetails = { reason: req.body.reason };
      const reading = await switchOf(target).status();
      if (reading.state === 'OFF') throw new LifeboatError('CONFLICT', `the kill switch of ${target} is already OFF`);
      // Said now, so nobody waits for an approval that cannot be given.
      const rec = await deactivationEvidence(ctx.runtime, target, reading);
      const at = ctx.now();
      const request: StoredRequest = {
        id: `${compactUtc(at)}-${randomUUID().slice(0, 8)}`,
        requestedBy: req.principal?.name as string,
        reason: req.body.reason,
        requestedAt: at.toISOString(),
      };
      await store.put(layout.killSwitchRequest(target, request.id), Buffer.from(JSON.stringify(request, null, 2)));
      req.auditDetails.request = request.id;
      req.auditDetails.reconciliation = rec.key;
      return reply.code(201).send({ ...request, status: 'pending' });
    },
  );

  api.post<{ Params: P & { id: string }; Body: Record<string, never> }>(
    '/targets/:target/kill-switch/deactivation-requests/:id/approve',
    {
      config: { permission: 'approve', action: 'kill_switch.deactivate' },
      schema: {
        tags: ['kill switch'],
        summary:
          'Approves a pending request by someone else and deactivates the switch, if a passing reconciliation is newer than the activation',
        params: withParams({ id: { type: 'string', pattern: '^[0-9TZ]+-[0-9a-f]{8}$' } }),
        body: EmptyBody,
        response: { 200: KillSwitchView, ...errors(400, 401, 403, 404, 409, 429) },
      },
    },
    async (req) => {
      const target = targetOf(ctx, req.params.target).name;
      const key = layout.killSwitchRequest(target, req.params.id);
      if (!(await store.head(key)))
        throw new LifeboatError('NOT_FOUND', `deactivation request ${req.params.id} not found`);
      const request = JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8')) as StoredRequest;
      req.auditDetails = { request: request.id, requestedBy: request.requestedBy, reason: request.reason };
      const approver = req.principal?.name as string;
      if (request.requestedBy === approver) {
        throw new LifeboatError('CONFLICT', `${approver} made this request; a different person must approve it`, {
          hint: 'deactivation takes two people: an operator asks, an approver approves',
        });
      }
      const ks = switchOf(target);
      const reading = await ks.status();
      const status = statusOf(request, reading);
      if (status !== 'pending') throw new LifeboatError('CONFLICT', `deactivation request ${request.id} is ${status}`);
      const rec = await deactivationEvidence(ctx.runtime, target, reading);
      // The target's API keeps only a reason: who asked and who approved go into it, so the
      // target's own history says so too (the file fallback also keeps them as metadata).
      const reason = `${request.reason} (requested by ${request.requestedBy}, approved by ${approver}; reconciliation ${rec.key})`;
      const after = await ks.deactivate(reason, {
        by: approver,
        requestedBy: request.requestedBy,
        via: 'lifeboat-console',
        reconciliation: rec.key,
      });
      const approved: StoredRequest = {
        ...request,
        approvedBy: approver,
        approvedAt: ctx.now().toISOString(),
        reconciliation: rec.key,
      };
      await store.put(key, Buffer.from(JSON.stringify(approved, null, 2)));
      req.auditDetails.reconciliation = rec.key;
      req.auditDetails.state = after.state;
      return view(target, after);
    },
  );
}
