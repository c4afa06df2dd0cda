// What every fault file needs around its real processes: scratch directories, child processes
// and small disks (tmpfs) that are all gone after the file, however its tests ended; a signal
// sent and its exit awaited; a process whose JSON log lines can be waited for.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@lifeboat/testkit';
import { afterAll } from 'vitest';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const exec = promisify(execFile);

const children = new Set<ChildProcess>();
const dirs: string[] = [];
const mounts: string[] = [];

// Registered before any hook of the file that imports this, so (after-hooks run last-first) it
// runs after them: their own clean-up first, then whatever is still running, then the small
// disks, then the files.
afterAll(async () => {
  await Promise.all([...children].map((c) => stop(c, 'SIGKILL')));
  for (const d of [...mounts].reverse()) unmount(d);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/**
 * Mounts a tmpfs of `size` (mount's syntax: 64k, 8m) on dir, unmounted after the file; fails
 * saying why when it cannot (it needs root, as on the project's machines and in CI).
 */
export async function mountTmpfs(dir: string, size: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`cannot mount a ${size} tmpfs on ${dir} (the disk faults need root): ${stderr || err}`);
  }
  mounts.push(dir);
}

/** Unmounts a tmpfs mountTmpfs mounted (at once, or when its last user goes if busy). */
export function unmount(dir: string): void {
  const i = mounts.indexOf(dir);
  if (i < 0) return;
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // Busy (a process a failed test left behind): detach it now, it goes when the last user does.
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
  mounts.splice(i, 1);
}

/** Fills the filesystem of dir until `free` bytes are left; returns the filler file. */
export async function fillUntil(dir: string, free: number): Promise<string> {
  const s = statfsSync(dir);
  const filler = join(dir, 'filler');
  await writeFile(filler, Buffer.alloc(Math.max(0, s.bavail * s.bsize - free)));
  return filler;
}

/** Kills the process after the file if it is still running. */
export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** A new directory under the system's temporary one, removed after the file. */
export async function scratchDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** Sends the signal and waits until the process has gone; its exit code (null when killed). */
export async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill(signal);
  return exited;
}

/** The entry script of a built app. */
export const appMain = (app: string) => join(REPO_ROOT, 'apps', app, 'dist', 'main.js');

/** A Node process with its output kept and its JSON log lines (either stream) parsed as they come. */
export interface LoggedProcess {
  child: ChildProcess;
  lines: Array<{ at: number; entry: Record<string, unknown> }>;
  /** stdout and stderr as they came. */
  output: () => string;
  stdout: () => string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** The first line whose msg is `msg` (waits for it; fails if the process exits first). */
  logged(msg: string, timeoutMs: number): Promise<{ at: number; entry: Record<string, unknown> }>;
}

/** Runs `node <args…>` from the repository root, tracked. */
export function runLogged(args: string[], env: NodeJS.ProcessEnv): LoggedProcess {
  const child = track(spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }));
  const lines: LoggedProcess['lines'] = [];
  let out = '';
  let stdout = '';
  const waiters = new Set<() => void>();
  const take = (stream: NodeJS.ReadableStream, isStdout: boolean) =>
    createInterface({ input: stream }).on('line', (line) => {
      out += `${line}\n`;
      if (isStdout) stdout += `${line}\n`;
      try {
        const entry = JSON.parse(line) as unknown;
        if (entry && typeof entry === 'object' && !Array.isArray(entry))
          lines.push({ at: Date.now(), entry: entry as Record<string, unknown> });
      } catch {
        // not a log line
      }
      for (const w of waiters) w();
    });
  take(child.stdout as NodeJS.ReadableStream, true);
  take(child.stderr as NodeJS.ReadableStream, false);
  // 'close', not 'exit': by then every line of output has been read.
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      for (const w of waiters) w();
      resolve(code);
    }),
  );
  const what = args.map((a) => a.replace(`${REPO_ROOT}/`, '')).join(' ');
  return {
    child,
    lines,
    output: () => out,
    stdout: () => stdout,
    exited,
    logged(msg, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => l.entry.msg === msg);
          if (hit) settle(() => resolve(hit));
          else if (child.exitCode !== null || child.signalCode !== null)
            settle(() => reject(new Error(`${what} exited before logging "${msg}": ${out.slice(-2000)}`)));
        };
        const timer = setTimeout(
          () => settle(() => reject(new Error(`${what} did not log "${msg}" within ${timeoutMs} ms`))),
          timeoutMs,
        );
        const settle = (fn: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          fn();
        };
        waiters.add(check);
        check();
      });
    },
  };
}
