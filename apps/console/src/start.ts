// Starts the console for a loaded configuration: BullMQ when LIFEBOAT_REDIS_URL is set (the
// workers run elsewhere), else embedded (the handlers run here, on the in-process bus). The
// process (main.ts) and `lifeboat console` both start it this way.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  auditedHandler,
  BullMqJobBus,
  createAuditTrail,
  InProcessJobBus,
  type Runtime,
  verifyAuditTrail,
} from '@lifeboat/adapters';
import { type Consumer, type JobBus, LifeboatError, QUEUES } from '@lifeboat/domain';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { issueToken, loadTokens, type TokenStore } from './auth.js';
import { consumeEmbedded } from './embedded.js';
import { buildConsole, type Logger } from './server.js';

export interface StartOptions {
  runtime: Runtime;
  log: Logger;
  port: number;
  host: string;
  env?: NodeJS.ProcessEnv;
  /**
   * With no token configured, make an admin token, keep its hash in the embedded tokens file
   * and hand it to `onNewToken` once (embedded mode: a newcomer can sign in at once).
   */
  bootstrapToken?: boolean;
  onNewToken?: (token: string, file: string) => void;
}

export interface RunningConsole {
  app: FastifyInstance;
  url: string;
  mode: 'embedded' | 'distributed';
  close(): Promise<void>;
}

/** Where embedded mode keeps token grants when LIFEBOAT_CONSOLE_TOKENS_FILE is not set. */
export function embeddedTokensFile(runtime: Runtime): string {
  return join(runtime.loaded.baseDir, '.lifeboat', 'console-tokens');
}

async function tokensFor(options: StartOptions, env: NodeJS.ProcessEnv, distributed: boolean): Promise<TokenStore> {
  const file = env.LIFEBOAT_CONSOLE_TOKENS_FILE ?? (distributed ? undefined : embeddedTokensFile(options.runtime));
  const present = async () =>
    file
      ? readFile(file).then(
          () => true,
          () => false,
        )
      : false;
  if (file && !(await present()) && options.bootstrapToken && !env.LIFEBOAT_CONSOLE_TOKENS?.trim()) {
    const { token, line } = issueToken('admin', 'admin');
    await mkdir(dirname(file), { recursive: true });
    await writeFile(
      file,
      `# Console tokens: <name> <role> sha256:<hash>. Add more with \`lifeboat console token\`.\n${line}\n`,
      { mode: 0o600, flag: 'wx' },
    );
    options.onNewToken?.(token, file);
  }
  // A file named in the environment must be readable; the embedded default is read when it exists.
  const read = Boolean(env.LIFEBOAT_CONSOLE_TOKENS_FILE) || (await present());
  const tokens = await loadTokens(env, file && read ? file : undefined);
  if (tokens.size === 0) {
    throw new LifeboatError('INVALID_CONFIG', 'the console has no tokens: nobody could sign in', {
      hint: 'set LIFEBOAT_CONSOLE_TOKENS_FILE (lines from `lifeboat console token --name <n> --role <r>`) or LIFEBOAT_CONSOLE_TOKENS',
    });
  }
  return tokens;
}

export async function startConsole(options: StartOptions): Promise<RunningConsole> {
  const env = options.env ?? process.env;
  const { runtime, log } = options;
  const redisUrl = env.LIFEBOAT_REDIS_URL?.trim();
  const prefix = env.LIFEBOAT_QUEUE_PREFIX?.trim() || 'lifeboat';
  const tokens = await tokensFor(options, env, Boolean(redisUrl));
  const audit = await createAuditTrail(runtime, { env, log });
  let bus: JobBus;
  let consumers: Consumer[] = [];
  const boardQueues: Queue[] = [];
  if (redisUrl) {
    bus = new BullMqJobBus({
      url: redisUrl,
      prefix,
      onError: (err) => log.error({ err: { message: err.message } }, 'redis connection error'),
    });
    for (const name of QUEUES) {
      const q = new Queue(name, { connection: { url: redisUrl, maxRetriesPerRequest: null }, prefix });
      q.on('error', (err) => log.error({ err: { message: err.message }, queue: name }, 'queue board: redis error'));
      boardQueues.push(q);
    }
  } else {
    bus = new InProcessJobBus();
    consumers = await consumeEmbedded(bus, runtime, log, (queue, handler) =>
      auditedHandler(audit.trail, queue, handler, { actor: `${queue}-worker (embedded)`, log }),
    );
  }
  const app = await buildConsole({
    runtime,
    bus,
    mode: redisUrl ? 'distributed' : 'embedded',
    tokens,
    audit: audit.trail,
    verifyAudit: () => verifyAuditTrail({ store: runtime.store, catalog: audit.catalog }),
    log,
    boardQueues,
  });
  const address = await app.listen({ port: options.port, host: options.host });
  return {
    app,
    url: address,
    mode: redisUrl ? 'distributed' : 'embedded',
    close: async () => {
      await app.close();
      for (const c of consumers) await c.close();
      await bus.close();
      for (const q of boardQueues) await q.close();
      await audit.close();
    },
  };
}
