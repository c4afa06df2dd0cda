// Shared set-up for commands: the configuration, the wired adapters, and the job bus —
// in-process by default, BullMQ when LIFEBOAT_REDIS_URL is set.
import { configPath, createJobBus, createLogger, createRuntime, loadConfig, type Runtime } from '@lifeboat/adapters';
import { backup, type Logger } from '@lifeboat/backup';
import type { JobBus } from '@lifeboat/domain';
import { reconcile } from '@lifeboat/reconciler';

export interface GlobalOptions {
  config?: string;
  target?: string;
}

export async function openRuntime(opts: GlobalOptions): Promise<Runtime> {
  return createRuntime(await loadConfig(configPath(opts.config)));
}

/** Logs go to stderr as JSON only when asked (LIFEBOAT_LOG_LEVEL); the CLI prints its own lines. */
export function cliLogger(): Logger {
  return createLogger('cli', { level: process.env.LIFEBOAT_LOG_LEVEL ?? 'silent', destination: process.stderr });
}

export function distributed(): boolean {
  return Boolean(process.env.LIFEBOAT_REDIS_URL);
}

/**
 * The bus a command enqueues on. Embedded mode also consumes the queue in this process with
 * the same handler the backup worker runs, so both modes take one code path.
 */
export async function openBus(runtime: Runtime): Promise<JobBus> {
  const bus = createJobBus();
  if (!distributed()) {
    const log = cliLogger();
    await bus.consume('backup', (payload, job) =>
      backup(payload, { runtime, log, progress: job.progress, signal: job.signal }),
    );
    await bus.consume('reconcile', (payload) => reconcile(payload, { runtime, log }));
  }
  return bus;
}
