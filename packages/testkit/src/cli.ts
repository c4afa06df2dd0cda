// Running the built `lifeboat` command from tests, and finding free ports for the processes
// they start. Spawned asynchronously: a test's S3 server may live in the test's own process.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dirname, '..', '..', '..');
export const LIFEBOAT_BIN = join(REPO_ROOT, 'apps', 'cli', 'bin', 'lifeboat.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `lifeboat <args>` (embedded mode unless env sets LIFEBOAT_REDIS_URL). */
export function lifeboat(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LIFEBOAT_BIN, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, LIFEBOAT_REDIS_URL: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A TCP port nothing listens on right now (on 127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface DemoTarget {
  /** The demo's lifeboat.yaml. */
  config: string;
  exchangePort: number;
  /** Starts the paper-trader and its exchange in the background (`demo start --detach`). */
  start(env?: NodeJS.ProcessEnv): Promise<void>;
  /** Stops them; safe to call when they were never started. */
  stop(): Promise<void>;
}

/** `lifeboat demo init <dir>` on free ports (a small SQLite target unless told otherwise). */
export async function initDemo(
  dir: string,
  options: { size?: string; args?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<DemoTarget> {
  const exchangePort = await freePort();
  const init = await lifeboat(
    [
      'demo',
      'init',
      dir,
      '--size',
      options.size ?? '256KiB',
      '--port',
      String(await freePort()),
      '--exchange-port',
      String(exchangePort),
      ...(options.args ?? []),
      '--json',
    ],
    options.env,
  );
  if (init.code !== 0) throw new Error(`lifeboat demo init failed (${init.code}): ${init.stderr}`);
  const config = (JSON.parse(init.stdout) as { config: string }).config;
  return {
    config,
    exchangePort,
    async start(env = {}) {
      const run = await lifeboat(
        ['demo', 'start', '--config', config, '--detach', '--exchange-port', String(exchangePort)],
        env,
      );
      if (run.code !== 0) throw new Error(`lifeboat demo start failed (${run.code}): ${run.stderr}`);
    },
    async stop() {
      await lifeboat(['demo', 'stop', '--config', config]);
    },
  };
}
