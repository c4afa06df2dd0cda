// The paper-trader's process: the trading service over a target directory, configured from
// the environment (and the target's .env for the exchange keys); stops cleanly on SIGTERM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { createApi } from './api.js';
import { auditLog } from './audit.js';
import { Books } from './books.js';
import { ExchangeClient } from './exchange-client.js';
import { KillSwitch } from './kill-switch.js';
import { Trader, type TradingMode } from './trader.js';

const log = pino(
  {
    name: 'paper-trader',
    base: { app: 'paper-trader' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: ['secret', '*.secret'],
  },
  pino.destination({ dest: 1, sync: true }),
);

function fail(message: string): never {
  log.error({}, message);
  process.exit(2);
}

function dotenv(dir: string): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const line of readFileSync(join(dir, '.env'), 'utf8').split(/\r?\n/)) {
      const m = /^\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
      if (m?.[1]) out[m[1]] = m[2] ?? '';
    }
    return out;
  } catch {
    return {};
  }
}

async function main(): Promise<void> {
  const env = process.env;
  const targetDir = env.TARGET_DIR ?? fail('TARGET_DIR is not set (the trading system’s working directory)');
  const fileEnv = dotenv(targetDir);
  const apiKey = env.EXCHANGE_API_KEY ?? fileEnv.EXCHANGE_API_KEY ?? fail('EXCHANGE_API_KEY is not set (nor in .env)');
  const secret =
    env.EXCHANGE_API_SECRET ?? fileEnv.EXCHANGE_API_SECRET ?? fail('EXCHANGE_API_SECRET is not set (nor in .env)');
  const mode = (env.TRADING_MODE ?? 'live') as TradingMode;
  if (mode !== 'live' && mode !== 'shadow') fail(`TRADING_MODE must be live or shadow, got "${mode}"`);
  const rate = Number(env.ORDER_RATE ?? 20);
  if (!(rate > 0 && rate <= 500)) fail(`ORDER_RATE must be between 0 and 500, got "${env.ORDER_RATE}"`);
  const port = Number(env.API_PORT ?? 8023);
  const host = env.API_HOST ?? '127.0.0.1';

  const audit = auditLog(targetDir);
  const killSwitch = new KillSwitch(targetDir, audit);
  const books = await Books.open(targetDir, env.DATABASE_URL || undefined);
  const venue = new ExchangeClient(env.EXCHANGE_URL ?? 'http://127.0.0.1:8024', apiKey, secret);
  const venueLossHaltMs = Number(env.VENUE_LOSS_HALT_MS ?? 5000);
  if (!(venueLossHaltMs >= 0))
    fail(`VENUE_LOSS_HALT_MS must be a number of milliseconds ≥ 0, got "${env.VENUE_LOSS_HALT_MS}"`);
  const trader = new Trader(books, venue, killSwitch, audit, {
    targetDir,
    mode,
    rate,
    venueLossHaltMs,
    log: (msg, detail) => log.warn(detail ?? {}, msg),
  });
  // The API is up before recovery runs, so the kill switch can be thrown while the books
  // catch up with the venue; /health says "recovering" (503) until they have.
  const app = createApi({ books, venue, killSwitch, trader, version: '0.1.0', gitSha: env.GIT_SHA ?? 'unknown' });
  const url = await app.listen({ port, host });
  log.info({ url, mode, rate, kill_switch: killSwitch.state, database: books.engine }, 'paper-trader listening');
  const recovering = Date.now();
  await trader.start();
  log.info({ ms: Date.now() - recovering }, 'recovered; trading loop running');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    await app.close();
    await trader.stop();
    await books.close();
    log.info({}, 'stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  log.error({ error: (err as Error).message }, 'paper-trader failed to start');
  process.exit(1);
});
