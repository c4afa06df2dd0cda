// Starts and stops a target through the shell commands configured for it (systemctl, docker,
// a script), and waits for its GET /health to answer healthy.
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CommandOutcome, type HealthOutcome, LifeboatError, type TargetControl } from '@lifeboat/domain';
import { type ResolvedTarget, resolvePath } from '../config/load.js';

export interface CommandTargetControlOptions {
  start: string;
  startShadow: string;
  stop: string;
  /** Working directory of the commands. */
  cwd: string;
  /** Used instead of cwd while cwd does not exist (a server-loss restore has not recreated the root yet). */
  fallbackCwd?: string;
  /** Longest a command may take before its process group is killed. */
  timeoutMs: number;
  /** What a caller passes to waitHealthy when it has no better figure (default 60 s). */
  healthTimeoutMs?: number;
  /** GET this until it answers 200 `{"status": "healthy"}`. */
  healthUrl?: string;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
}

/** Lines of a command's output kept as evidence. */
export const OUTPUT_LINES = 20;
const OUTPUT_BYTES = 64 * 1024;
const LINE_CHARS = 1000;
/** After SIGTERM, how long the group has before SIGKILL. */
const KILL_GRACE_MS = 2000;
/**
 * After the shell exits, how long to wait for its output pipes to close. A start command that
 * leaves a daemon behind holding the pipes must not make us wait for the daemon to end.
 */
const OUTPUT_SETTLE_MS = 200;
const HEALTH_POLL_MS = 250;
const HEALTH_REQUEST_MS = 2000;
/** Less time than this left is not worth another request. */
const MIN_PROBE_MS = 20;
const SECRET = /(secret|password|api[_-]?key)\s*[=:]\s*\S+/gi;

/** Replaces the value of anything that looks like `password=…`, `secret: …` or `api_key=…`. */
export function redactSecrets(text: string): string {
  return text.replace(SECRET, (_match, key: string) => `${key}=[redacted]`);
}

export class CommandTargetControl implements TargetControl {
  readonly healthTimeoutMs: number;
  readonly #commands: { start: string; startShadow: string; stop: string };
  readonly #cwd: string;
  readonly #fallbackCwd: string | undefined;
  readonly #timeoutMs: number;
  readonly #healthUrl: string | undefined;
  readonly #env: NodeJS.ProcessEnv;
  readonly #fetch: typeof fetch;

  constructor(options: CommandTargetControlOptions) {
    this.#commands = { start: options.start, startShadow: options.startShadow, stop: options.stop };
    this.#cwd = options.cwd;
    this.#fallbackCwd = options.fallbackCwd;
    this.#timeoutMs = options.timeoutMs;
    this.healthTimeoutMs = options.healthTimeoutMs ?? 60_000;
    this.#healthUrl = options.healthUrl;
    this.#env = options.env ?? process.env;
    this.#fetch = options.fetch ?? fetch;
  }

  start(mode: 'shadow' | 'live'): Promise<CommandOutcome> {
    return this.#run(mode === 'shadow' ? this.#commands.startShadow : this.#commands.start);
  }

  stop(): Promise<CommandOutcome> {
    return this.#run(this.#commands.stop);
  }

  async waitHealthy(timeoutMs: number): Promise<HealthOutcome> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const url = this.#healthUrl;
    if (!url) return { healthy: false, durationMs: 0, detail: 'no health URL configured' };
    const deadline = started + timeoutMs;
    let last: Probe = { healthy: false, answered: false, detail: 'no answer yet' };
    for (;;) {
      const budget = Math.ceil(Math.min(HEALTH_REQUEST_MS, deadline - performance.now()));
      const probe = await this.#probe(url, Math.max(1, budget));
      if (probe.healthy) return { healthy: true, durationMs: elapsed(), detail: probe.detail, body: probe.body };
      // A probe the deadline cut short says less than the answer before it.
      if (probe.answered || !last.answered || budget >= HEALTH_REQUEST_MS) last = probe;
      const left = deadline - performance.now();
      if (left <= 0) break;
      await sleep(Math.min(HEALTH_POLL_MS, left));
      if (deadline - performance.now() < MIN_PROBE_MS) break;
    }
    return {
      healthy: false,
      durationMs: elapsed(),
      detail: `not healthy within ${timeoutMs} ms; last: ${last.detail}`,
      ...(last.body === undefined ? {} : { body: last.body }),
    };
  }

  async #probe(url: string, timeoutMs: number): Promise<Probe> {
    const shown = `GET ${redactUrl(url)}`;
    let status: number;
    let text: string;
    try {
      const response = await this.#fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      status = response.status;
      text = await response.text();
    } catch (err) {
      return {
        healthy: false,
        answered: false,
        detail: `${shown} did not answer: ${describeFetchError(err, timeoutMs)}`,
      };
    }
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: keep the text as the evidence.
    }
    const healthy = status === 200 && (body as { status?: unknown } | null)?.status === 'healthy';
    return { healthy, answered: true, detail: `${shown} answered ${status}: ${excerpt(text)}`, body };
  }

  async #workingDir(): Promise<string> {
    if (await isDirectory(this.#cwd)) return this.#cwd;
    if (this.#fallbackCwd !== undefined && (await isDirectory(this.#fallbackCwd))) return this.#fallbackCwd;
    throw new LifeboatError('TARGET_ERROR', `target control: working directory ${this.#cwd} does not exist`, {
      hint: "create it, or set the target's control.cwd in lifeboat.yaml",
      retryable: false,
    });
  }

  async #run(command: string): Promise<CommandOutcome> {
    const shown = redactSecrets(command);
    const cwd = await this.#workingDir();
    const started = performance.now();
    const output = new OutputTail();
    // detached: the command leads its own process group, so a timeout kills what it started
    // too, and a target it starts does not share our terminal's signals.
    const child = spawn('/bin/sh', ['-c', command], {
      cwd,
      env: this.#env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => output.push(chunk));
    child.stderr.on('data', (chunk: string) => output.push(chunk));

    const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }>(
      (resolveEnd, rejectEnd) => {
        let timedOut = false;
        let killTimer: NodeJS.Timeout | undefined;
        const timer = setTimeout(() => {
          timedOut = true;
          killGroup(child.pid, 'SIGTERM');
          killTimer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
        }, this.#timeoutMs);
        child.once('error', (err) => {
          clearTimeout(timer);
          clearTimeout(killTimer);
          rejectEnd(
            new LifeboatError('TARGET_ERROR', `target control: cannot run \`${shown}\` in ${cwd}: ${err.message}`, {
              cause: err,
              retryable: false,
            }),
          );
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          clearTimeout(killTimer);
          // Whatever the shell left running after a timeout is part of what hung.
          if (timedOut) killGroup(child.pid, 'SIGKILL');
          resolveEnd({ code, signal, timedOut });
        });
      },
    );
    await outputSettled(child.stdout as Socket, child.stderr as Socket);

    const durationMs = Math.round(performance.now() - started);
    const lines = output.lines();
    const lastLine = lines.at(-1) ?? '(no output)';
    if (ended.timedOut) {
      throw new LifeboatError(
        'TIMEOUT',
        `target control: \`${shown}\` did not finish within ${this.#timeoutMs} ms and was killed with its process group; last output: ${lastLine}`,
        { hint: "see why it hangs, or raise the target's control.timeoutMs in lifeboat.yaml" },
      );
    }
    if (ended.code !== 0) {
      const how = ended.code === null ? `was killed by ${ended.signal}` : `exited with code ${ended.code}`;
      throw new LifeboatError('TARGET_ERROR', `target control: \`${shown}\` ${how}: ${lastLine}`, {
        hint: `run it by hand in ${cwd} to see its whole output`,
      });
    }
    return { command: shown, exitCode: 0, durationMs, output: lines.join('\n') };
  }
}

/**
 * The control of a configured target, or null when it has none. Commands run in control.cwd
 * (relative to the config's directory), else in the target's root, else (while the root does
 * not exist) in the config's directory.
 */
export function createTargetControl(
  target: ResolvedTarget,
  baseDir: string,
  env?: NodeJS.ProcessEnv,
): CommandTargetControl | null {
  const control = target.config.control;
  if (!control) return null;
  const apiUrl = target.config.api?.url.replace(/\/+$/, '');
  return new CommandTargetControl({
    start: control.start,
    startShadow: control.startShadow,
    stop: control.stop,
    ...(control.cwd ? { cwd: resolvePath(baseDir, control.cwd) } : { cwd: target.root, fallbackCwd: baseDir }),
    timeoutMs: control.timeoutMs,
    healthTimeoutMs: control.healthTimeoutMs,
    ...(apiUrl ? { healthUrl: `${apiUrl}/health` } : {}),
    ...(env ? { env } : {}),
  });
}

interface Probe {
  healthy: boolean;
  /** Whether the target answered at all (any status). */
  answered: boolean;
  detail: string;
  body?: unknown;
}

/** The end of a command's combined output, bounded however much it prints. */
class OutputTail {
  #text = '';
  #trimmed = false;

  push(chunk: string): void {
    this.#text += chunk;
    if (this.#text.length > OUTPUT_BYTES * 2) {
      this.#text = this.#text.slice(-OUTPUT_BYTES);
      this.#trimmed = true;
    }
  }

  lines(): string[] {
    const all = this.#text.split(/\r?\n/);
    // The first line after a trim is a fragment, possibly of a secret whose key was cut off.
    if (this.#trimmed) all.shift();
    while (all.length > 0 && all.at(-1)?.trim() === '') all.pop();
    return all.slice(-OUTPUT_LINES).map((line) => {
      const clean = redactSecrets(line);
      return clean.length > LINE_CHARS ? `${clean.slice(0, LINE_CHARS)}…` : clean;
    });
  }
}

async function outputSettled(...streams: Socket[]): Promise<void> {
  const open = streams.filter((s) => !s.closed);
  if (open.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const closed = Promise.all(open.map((s) => new Promise<void>((done) => s.once('close', () => done()))));
  const late = new Promise<'late'>((done) => {
    timer = setTimeout(() => done('late'), OUTPUT_SETTLE_MS);
  });
  const result = await Promise.race([closed, late]);
  clearTimeout(timer);
  if (result === 'late') {
    // A daemon the command started holds the pipes: keep draining them so it never blocks or
    // gets EPIPE while we run, but do not let them keep this process alive.
    for (const s of open) s.unref();
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  return withoutCredentials(fetchErrorText(err, timeoutMs));
}

function fetchErrorText(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${Math.round(timeoutMs)} ms`;
  const code = e?.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED)';
  if (code) return `${e.cause?.message ?? 'network error'} (${code})`;
  return err instanceof Error ? err.message : String(err);
}

/** fetch quotes a URL's user and password back in some of its errors. */
function withoutCredentials(text: string): string {
  return text.replace(/:\/\/[^/@\s]+@/g, '://');
}

function excerpt(text: string): string {
  const flat = redactSecrets(text.replace(/\s+/g, ' ').trim());
  if (!flat) return '(empty body)';
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '<unparsable url>';
  }
}
