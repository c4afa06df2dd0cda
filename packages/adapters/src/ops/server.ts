// Every app's ops server (Fastify): /health (the process is up), /ready (it can do its work)
// and /metrics (Prometheus text from the app's registry).
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface OpsServerOptions {
  app: string;
  registry: Registry;
  /** Resolves to null when ready, or to the reason it is not. */
  readiness: () => Promise<string | null>;
  version: string;
}

export function createOpsServer(options: OpsServerOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  const status = {
    type: 'object',
    properties: {
      status: { type: 'string' },
      app: { type: 'string' },
      version: { type: 'string' },
      reason: { type: 'string' },
    },
  } as const;
  app.get('/health', { schema: { response: { 200: status } } }, async () => ({
    status: 'ok',
    app: options.app,
    version: options.version,
  }));
  app.get('/ready', { schema: { response: { 200: status, 503: status } } }, async (_req, reply) => {
    const reason = await options.readiness().catch((err: Error) => err.message);
    if (reason)
      return reply.code(503).send({ status: 'not ready', app: options.app, version: options.version, reason });
    return { status: 'ready', app: options.app, version: options.version };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', options.registry.contentType);
    return options.registry.metrics();
  });
  return app;
}
