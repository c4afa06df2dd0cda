// `lifeboat demo start` and `demo stop`: the paper-trader and its simulated exchange over the
// demo directory, in the foreground or detached with pid files.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LifeboatError } from '@lifeboat/domain';
import { type GlobalOptions, openRuntime } from '../context.js';
import { EXIT, printJson } from '../output.js';

export interface DemoStartOptions extends GlobalOptions {
  rate?: string;
  mode: string;
  port?: string;
  exchangePort: string;
  /** With --detach: start just one of the two (restores restart the trader, not its venue). */
  only?: string;
  /** A copy of the target elsewhere (a drill's sandbox): its root, with pid files under <root>/.lifeboat-run. */
  root?: string;
  /** The exchange the copy talks to (default: the demo's, on --exchange-port). */
  exchangeUrl?: string;
  detach?: boolean;
  json?: boolean;
}

const PROCESSES = ['exchange', 'paper-trader'] as const;
type ProcessName = (typeof PROCESSES)[number];

function entry(name: ProcessName): string {
  const spec = name === 'exchange' ? '@lifeboat/paper-trader/exchange-main' : '@lifeboat/paper-trader/trader-main';
  const file = fileURLToPath(import.meta.resolve(spec));
  if (!existsSync(file)) {
    throw new LifeboatError('INTERNAL', `${name} is not built (${file} is missing)`, { hint: 'run `npm run build`' });
  }
  return file;
}

/** KEY=value lines of a dotenv file (no expansion; quotes stripped). */
function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m?.[1]) out[m[1]] = (m[2] ?? '').replace(/^(['"])(.*)\1$/, '$2');
  }
  return out;
}

/** Pid files and logs: `<demo>/run`, or `<root>/.lifeboat-run` for a copy elsewhere. */
function runDir(dir: string, copy = false): string {
  return join(dir, copy ? '.lifeboat-run' : 'run');
}

async function readPid(run: string, name: ProcessName): Promise<number | null> {
  const text = await readFile(join(run, `${name}.pid`), 'utf8').catch(() => null);
  const pid = text ? Number(text.trim()) : Number.NaN;
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits for a child's `... listening` JSON log line and returns the URL it names. */
function listening(child: ChildProcess, name: string, logFile?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new LifeboatError('TARGET_ERROR', `${name} did not start within 30 s${logFile ? ` (see ${logFile})` : ''}`),
        ),
      30_000,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(
        new LifeboatError(
          'TARGET_ERROR',
          `${name} exited with code ${code} while starting${logFile ? ` (see ${logFile})` : ''}`,
        ),
      );
    });
    if (!child.stdout) return;
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      try {
        const entryLine = JSON.parse(line) as { msg?: string; url?: string };
        if (entryLine.msg?.endsWith('listening') && entryLine.url) {
          clearTimeout(timer);
          resolve(entryLine.url);
        }
      } catch {
        // not a log line
      }
    });
  });
}

/** Waits until url answers, and the answer comes from our process (another may hold the port). */
async function pollHealthy(url: string, name: string, logFile: string, pid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (!alive(pid))
      throw new LifeboatError('TARGET_ERROR', `${name} exited while starting (see ${logFile}; is the port taken?)`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new LifeboatError('TARGET_ERROR', `${name} did not answer ${url} within 30 s (see ${logFile})`);
}

export async function demoStartCommand(options: DemoStartOptions): Promise<number> {
  const runtime = await openRuntime(options);
  const target = runtime.target(options.target);
  // The API port lifeboat.yaml names is where Lifeboat will look for the paper-trader.
  const configured = target.config.api?.url ? new URL(target.config.api.url).port : '';
  const opts = { ...options, port: options.port ?? (configured || '8023') };
  // A sandbox copy: its own root and pid files; never the demo's venue process.
  const copy = options.root ? resolve(options.root) : null;
  // Or a venue of the copy's own (the rpo-under-load drill's): a fresh exchange state under the copy's run directory.
  const venueCopy = copy !== null && options.only === 'exchange';
  if (copy && !venueCopy && (options.only !== 'paper-trader' || !options.port || !options.detach)) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      '--root starts a copy of the paper-trader (--detach --only paper-trader --port <n>) or a venue of its own (--detach --only exchange --exchange-port <n>)',
    );
  }
  if (venueCopy && !options.detach) throw new LifeboatError('INVALID_REQUEST', '--only needs --detach');
  const demoDir = copy ?? runtime.loaded.baseDir;
  const targetRoot = copy ?? target.root;
  const run = runDir(demoDir, copy !== null);
  if (opts.mode !== 'shadow' && opts.mode !== 'live') {
    throw new LifeboatError('INVALID_REQUEST', `--mode must be shadow or live, got "${opts.mode}"`);
  }
  const rate = opts.rate === undefined ? undefined : Number(opts.rate);
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0 && rate <= 500)) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `--rate must be between 0 and 500 orders per second, got "${opts.rate}"`,
    );
  }
  if (opts.only !== undefined && !PROCESSES.includes(opts.only as ProcessName)) {
    throw new LifeboatError('INVALID_REQUEST', `--only must be exchange or paper-trader, got "${opts.only}"`);
  }
  if (opts.only && !opts.detach) throw new LifeboatError('INVALID_REQUEST', '--only needs --detach');
  const selected = PROCESSES.filter((p) => !opts.only || p === opts.only);
  for (const name of selected) {
    const pid = await readPid(run, name);
    if (pid && alive(pid)) {
      throw new LifeboatError('CONFLICT', `${name} of this demo is already running (pid ${pid})`, {
        hint: 'stop it with `lifeboat demo stop`',
      });
    }
  }
  for (const [what, port] of (
    [
      ['--port', opts.port, 'paper-trader'],
      ['--exchange-port', opts.exchangePort, 'exchange'],
    ] as const
  ).filter(([, , name]) => selected.includes(name))) {
    if (!(await portFree(Number(port)))) {
      throw new LifeboatError('CONFLICT', `${what} ${port}: something already listens on 127.0.0.1:${port}`, {
        hint: 'stop it (`lifeboat demo stop`?) or choose another port',
      });
    }
  }
  const dotenv = parseDotenv(await readFile(join(targetRoot, '.env'), 'utf8').catch(() => ''));
  const apiKey = process.env.EXCHANGE_API_KEY ?? dotenv.EXCHANGE_API_KEY;
  const apiSecret = process.env.EXCHANGE_API_SECRET ?? dotenv.EXCHANGE_API_SECRET;
  if (!apiKey || !apiSecret) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `no exchange credentials: ${join(targetRoot, '.env')} has no EXCHANGE_API_KEY/EXCHANGE_API_SECRET`,
      {
        hint: 'create the demo with `lifeboat demo init`, or set EXCHANGE_API_KEY and EXCHANGE_API_SECRET',
      },
    );
  }
  const db = target.config.database;
  // A copy's PostgreSQL database (a sandbox's scratch one) comes from the environment, never the command line.
  const databaseUrl =
    db?.engine === 'postgres'
      ? copy
        ? process.env.LIFEBOAT_SANDBOX_DATABASE_URL
        : (db.url ?? process.env[db.urlEnv])
      : undefined;
  if (copy && !venueCopy && db?.engine === 'postgres' && !databaseUrl) {
    throw new LifeboatError('INVALID_REQUEST', 'a copy of a PostgreSQL target needs LIFEBOAT_SANDBOX_DATABASE_URL');
  }
  const exchangeEnv = {
    ...process.env,
    EXCHANGE_DIR: venueCopy ? join(run, 'venue') : join(demoDir, 'exchange'),
    EXCHANGE_PORT: opts.exchangePort,
    EXCHANGE_API_KEY: apiKey,
    EXCHANGE_API_SECRET: apiSecret,
  };
  const traderEnv = {
    ...process.env,
    TARGET_DIR: targetRoot,
    API_PORT: opts.port,
    EXCHANGE_URL: opts.exchangeUrl ?? `http://127.0.0.1:${opts.exchangePort}`,
    EXCHANGE_API_KEY: apiKey,
    EXCHANGE_API_SECRET: apiSecret,
    TRADING_MODE: opts.mode,
    ...(rate !== undefined ? { ORDER_RATE: String(rate) } : {}),
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  };

  if (opts.detach) {
    await mkdir(run, { recursive: true });
    const started: Record<string, { pid: number; log: string }> = {};
    try {
      for (const [name, env] of (
        [
          ['exchange', exchangeEnv],
          ['paper-trader', traderEnv],
        ] as const
      ).filter(([name]) => selected.includes(name))) {
        const log = join(run, `${name}.log`);
        const fd = openSync(log, 'a');
        const child = spawn(process.execPath, [entry(name)], { env, detached: true, stdio: ['ignore', fd, fd] });
        closeSync(fd);
        child.unref();
        const pid = child.pid as number;
        started[name] = { pid, log };
        await writeFile(join(run, `${name}.pid`), `${pid}\n`);
        const port = name === 'exchange' ? opts.exchangePort : opts.port;
        const health = name === 'exchange' ? `http://127.0.0.1:${port}/api/v3/ping` : `http://127.0.0.1:${port}/health`;
        await pollHealthy(health, name, log, pid);
      }
    } catch (err) {
      // Half a demo is no demo: stop what did start.
      for (const [name, p] of Object.entries(started)) {
        if (alive(p.pid)) process.kill(p.pid, 'SIGTERM');
        await rm(join(run, `${name}.pid`), { force: true });
      }
      throw err;
    }
    if (opts.json) printJson({ detached: true, demo: demoDir, processes: started });
    else {
      console.log(
        `paper-trader on http://127.0.0.1:${opts.port} (${opts.mode} mode), exchange on http://127.0.0.1:${opts.exchangePort}`,
      );
      console.log(`logs and pid files in ${run}; stop with: lifeboat demo stop --config ${runtime.loaded.path}`);
    }
    return EXIT.ok;
  }

  const exchange = spawn(process.execPath, [entry('exchange')], {
    env: exchangeEnv,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exchangeUrl = await listening(exchange, 'exchange');
  const trader = spawn(process.execPath, [entry('paper-trader')], {
    env: traderEnv,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const traderUrl = await listening(trader, 'paper-trader').catch((err) => {
    exchange.kill('SIGTERM');
    throw err;
  });
  console.error(`paper-trader on ${traderUrl} (${opts.mode} mode), exchange on ${exchangeUrl}; Ctrl-C stops both`);
  // Children's logs go on to our stdout, one JSON line each.
  for (const child of [exchange, trader]) child.stdout?.pipe(process.stdout);
  // Ctrl-C stops the trader first (it halts and cancels its working orders), then its venue.
  // If either one dies on its own, the other is stopped too and the command fails.
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    if (trader.exitCode === null && trader.signalCode === null) trader.kill('SIGTERM');
    else exchange.kill('SIGTERM');
  };
  trader.once('exit', (code, signal) => {
    if (!stopping) console.error(`paper-trader exited on its own (${signal ?? `code ${code}`}); stopping the exchange`);
    stopping = true;
    exchange.kill('SIGTERM');
  });
  exchange.once('exit', (code, signal) => {
    if (!stopping) {
      console.error(`exchange exited on its own (${signal ?? `code ${code}`}); stopping the paper-trader`);
      stop();
    }
  });
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const exited = (c: typeof trader) =>
    new Promise<number | null>((r) =>
      c.exitCode !== null || c.signalCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code)),
    );
  const [traderCode, exchangeCode] = await Promise.all([exited(trader), exited(exchange)]);
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  return traderCode === 0 && exchangeCode === 0 ? EXIT.ok : EXIT.failed;
}

export async function demoStopCommand(
  opts: GlobalOptions & { json?: boolean; only?: string; root?: string },
): Promise<number> {
  if (opts.only !== undefined && !PROCESSES.includes(opts.only as ProcessName)) {
    throw new LifeboatError('INVALID_REQUEST', `--only must be exchange or paper-trader, got "${opts.only}"`);
  }
  const runtime = await openRuntime(opts);
  const demoDir = opts.root ? resolve(opts.root) : runtime.loaded.baseDir;
  const run = runDir(demoDir, Boolean(opts.root));
  const stopped: Record<string, number | null> = {};
  // The trader first, so nothing trades against a venue that is going away.
  for (const name of (['paper-trader', 'exchange'] as const).filter((n) => !opts.only || n === opts.only)) {
    const pid = await readPid(run, name);
    stopped[name] = pid;
    if (!pid || !alive(pid)) {
      await rm(join(run, `${name}.pid`), { force: true });
      continue;
    }
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 15_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    await rm(join(run, `${name}.pid`), { force: true });
  }
  if (opts.json) printJson({ stopped });
  else {
    const names = Object.entries(stopped).filter(([, pid]) => pid !== null);
    console.log(
      names.length ? `stopped ${names.map(([n, pid]) => `${n} (pid ${pid})`).join(', ')}` : 'nothing was running',
    );
  }
  return EXIT.ok;
}
