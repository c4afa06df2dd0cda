// The apps' workers as separate processes, and the state of a directory, for the tests that
// run them for real.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from './cli.js';

export type WorkerApp = 'backup' | 'restore' | 'reconciler' | 'drill-scheduler' | 'console';

/**
 * Starts `apps/<app>/dist/main.js` and resolves once it logs that it started, with its ops
 * address (the console's own address, where its ops routes are too).
 */
export function startWorker(app: WorkerApp, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; ops: string }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'apps', app, 'dist', 'main.js')], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; ops?: string; url?: string };
        const started = app === 'console' ? 'console started' : `${app} worker started`;
        const address = entry.ops ?? entry.url;
        if (entry.msg === started && address) resolve({ child, ops: address });
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`${app} worker exited early with code ${code}`)));
  });
}

/** sha256 of every file under root, by relative path (those `skip` names left out). */
export function checksums(root: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const rel = relative(root, p);
      if (e.isDirectory()) walk(p);
      else if (!skip(rel)) out[rel] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(root);
  return out;
}
