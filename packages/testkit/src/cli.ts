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
