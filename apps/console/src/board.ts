// The admin's queue board (Bull Board), read-only, with job payloads and results reduced to
// the fields that say what a job is about: the board must not become a way to read data.
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';

export type BoardQueue = Queue;

export const BOARD_PATH = '/admin/queues';

/** Fields of a payload that identify a job and carry nothing sensitive; the rest is redacted. */
const SHOWN = new Set(['target', 'kind', 'scenario', 'drill', 'destination', 'dryRun', 'apply', 'recoveryType']);

export function redactPayload(data: unknown): unknown {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return '[redacted]';
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    out[k] = SHOWN.has(k) && (typeof v === 'string' || typeof v === 'boolean') ? v : '[redacted]';
  }
  return out;
}

export async function mountQueueBoard(app: FastifyInstance, queues: readonly Queue[]): Promise<void> {
  const server = new FastifyAdapter();
  server.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: queues.map((q) => {
      const adapter = new BullMQAdapter(q, { readOnlyMode: true });
      adapter.setFormatter('data', redactPayload);
      adapter.setFormatter('returnValue', redactPayload);
      return adapter;
    }),
    serverAdapter: server,
    options: { uiConfig: { boardTitle: 'Lifeboat queues' } },
  });
  await app.register(async (scope) => {
    // Bull Board's page has inline styles; it still runs no inline script and loads nothing from elsewhere.
    scope.addHook('onSend', async (_req, reply, payload) => {
      // Its page links a web font from elsewhere, which the policy below refuses: leave it out.
      const type = String(reply.getHeader('content-type') ?? '');
      if (type.startsWith('text/html') && typeof payload === 'string') {
        payload = payload.replace(/<link[^>]+fonts\.googleapis\.com[^>]*>/g, '');
      }
      reply.header(
        'content-security-policy',
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'",
      );
      return payload;
    });
    await scope.register(server.registerPlugin(), { prefix: BOARD_PATH });
  });
}
