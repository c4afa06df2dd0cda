// The simulated exchange's process: a Binance-compatible venue over its own state directory,
// configured from the environment, that stops cleanly on SIGTERM and SIGINT.
import { isLifeboatError, LifeboatError } from '@lifeboat/domain';
import pino from 'pino';
import { parseUnits } from './decimal.js';
import { createExchangeServer, type ExchangeServerOptions } from './server.js';

const log = pino(
  {
    name: 'exchange',
    level: process.env.LIFEBOAT_LOG_LEVEL ?? 'info',
    base: { app: 'exchange' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['secret', '*.secret', 'apiSecret', '*.apiSecret', 'env', '*.env'], censor: '[redacted]' },
  },
  pino.destination({ dest: 1, sync: true }),
);

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new LifeboatError('INVALID_CONFIG', `${name} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return n;
}

function required(env: NodeJS.ProcessEnv, name: string, hint: string): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new LifeboatError('INVALID_CONFIG', `${name} is not set`, { hint });
  }
  return value;
}

/** "USDT=2000000,BTC=1": the balances a new account starts with. */
function balances(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    const m = /^\s*([A-Z0-9]{1,20})\s*=\s*([0-9.]+)\s*$/.exec(part);
    if (!m?.[1] || !m[2]) {
      throw new LifeboatError('INVALID_CONFIG', `EXCHANGE_INITIAL_BALANCES: "${part}" is not ASSET=amount`, {
        hint: 'write it like USDT=2000000,BTC=1',
      });
    }
    try {
      parseUnits(m[2]);
    } catch {
      throw new LifeboatError('INVALID_CONFIG', `EXCHANGE_INITIAL_BALANCES: ${m[1]} amount "${m[2]}" is not a decimal`);
    }
    out[m[1]] = m[2];
  }
  return out;
}

function config(env: NodeJS.ProcessEnv): { options: ExchangeServerOptions; port: number; host: string } {
  const initialBalances = balances(env.EXCHANGE_INITIAL_BALANCES);
  return {
    port: integer(env, 'EXCHANGE_PORT', 8024, 0, 65535),
    host: env.EXCHANGE_HOST || '127.0.0.1',
    options: {
      dir: required(env, 'EXCHANGE_DIR', 'set it to the exchange state directory, e.g. <demo>/exchange'),
      account: {
        apiKey: required(env, 'EXCHANGE_API_KEY', 'the API key clients sign with (the demo .env has one)'),
        secret: required(env, 'EXCHANGE_API_SECRET', 'the secret clients sign with (the demo .env has one)'),
        ...(initialBalances ? { initialBalances } : {}),
      },
      seed: integer(env, 'EXCHANGE_SEED', 1, 0, 2 ** 32 - 1),
      tickMs: integer(env, 'EXCHANGE_TICK_MS', 100, 0, 60_000),
      logger: log,
    },
  };
}

async function main(): Promise<void> {
  const { options, port, host } = config(process.env);
  let server: ReturnType<typeof createExchangeServer>;
  try {
    server = createExchangeServer(options);
  } catch (err) {
    throw new LifeboatError('TARGET_ERROR', `open exchange state in ${options.dir}: ${(err as Error).message}`, {
      cause: err,
      hint: 'is another exchange process using this directory, or is exchange.db damaged?',
    });
  }
  const url = await server.listen(port, host).catch(async (err: Error) => {
    await server.close();
    throw new LifeboatError('INVALID_CONFIG', `listen on ${host}:${port}: ${err.message}`, {
      hint: 'pick another EXCHANGE_PORT',
    });
  });
  log.info({ url, dir: options.dir, seed: server.engine.seed }, 'exchange listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'exchange stopping');
    await server.close();
    log.info({}, 'exchange stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  const message = isLifeboatError(err) ? err.describe() : (err as Error).message;
  log.error({ err: isLifeboatError(err) ? err.toJSON() : { message } }, message);
  process.exit(isLifeboatError(err) && err.code === 'INVALID_CONFIG' ? 2 : 1);
});
