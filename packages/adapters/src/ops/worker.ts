// The part every worker process shares: its ops server on LIFEBOAT_OPS_HOST/PORT, a
// "<app> worker started" line, and a graceful stop on SIGTERM/SIGINT (finish the current
// job, close what is open, exit 0).
import { isLifeboatError } from '@lifeboat/domain';
import type { Registry } from 'prom-client';
import { createOpsServer } from './server.js';

interface WorkerLog {
  info(obj: object, msg?: string): void;
}

export interface ServeWorkerOptions {
  app: string;
  queue: string;
  version: string;
  registry: Registry;
  /** Where the store is, for the start line. */
  store: string;
  log: WorkerLog;
  defaultPort: number;
  readiness: () => Promise<string | null>;
  /** Closed in order on SIGTERM/SIGINT (the consumer first, so the current job finishes). */
  close: Array<() => Promise<unknown>>;
}

export async function serveWorker(options: ServeWorkerOptions): Promise<void> {
  const ops = createOpsServer({
    app: options.app,
    registry: options.registry,
    version: options.version,
    readiness: options.readiness,
  });
  const address = await ops.listen({
    host: process.env.LIFEBOAT_OPS_HOST ?? '0.0.0.0',
    port: Number(process.env.LIFEBOAT_OPS_PORT ?? options.defaultPort),
  });
  options.log.info({ ops: address, store: options.store, queue: options.queue }, `${options.app} worker started`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    options.log.info({ signal }, 'stopping: finishing the current job');
    for (const close of options.close) await close();
    await ops.close();
    options.log.info({}, 'stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/**
 * How a worker process ends when it cannot start: one log line naming what is wrong, and
 * exit 2 for configuration or usage (a retry cannot help), 1 otherwise.
 */
export function exitOnStartupFailure(log: { error(obj: object, msg?: string): void }): (err: unknown) => never {
  return (err) => {
    const message = isLifeboatError(err) ? err.describe() : (err as Error).message;
    log.error({ err: isLifeboatError(err) ? err.toJSON() : { message } }, message);
    process.exit(isLifeboatError(err) && ['INVALID_CONFIG', 'INVALID_REQUEST', 'NOT_FOUND'].includes(err.code) ? 2 : 1);
  };
}
