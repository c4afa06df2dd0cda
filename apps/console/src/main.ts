// The console's process: the API, the dashboard and the queue board on LIFEBOAT_CONSOLE_PORT
// (default 9200), with /health, /ready and /metrics on the same port. Distributed with
// LIFEBOAT_REDIS_URL (the four workers run beside it), embedded otherwise.
import { configPath, createLogger, createRuntime, exitOnStartupFailure, loadConfig } from '@lifeboat/adapters';
import { startConsole } from './start.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const log = createLogger('console');

async function main(): Promise<void> {
  const runtime = createRuntime(await loadConfig(configPath()));
  const running = await startConsole({
    runtime,
    log,
    port: Number(process.env.LIFEBOAT_CONSOLE_PORT ?? 9200),
    host: process.env.LIFEBOAT_CONSOLE_HOST ?? '0.0.0.0',
  });
  log.info({ url: running.url, mode: running.mode, store: runtime.store.location }, 'console started');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    await running.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch(exitOnStartupFailure(log));
