// The kill switch of a Sofia-compatible target: its HTTP API first, its state file when the
// API does not answer, because a halt matters most exactly when the target is down.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { KillSwitchClient, KillSwitchReading } from '@lifeboat/domain';
// Subpaths, not the whole domain: `kill-switch activate` loads this before anything else.
import { LifeboatError } from '@lifeboat/domain/errors';
import {
  changeKillSwitch,
  effectiveKillSwitchState,
  KillSwitchFile,
  type KillSwitchState,
} from '@lifeboat/domain/kill-switch';
import { writeFileAtomic } from '../atomic-file.js';
import type { ResolvedTarget } from '../config/load.js';

export interface HttpFileKillSwitchOptions {
  /** The target's API (`http://host:port`); without it every call goes to the state file. */
  apiUrl?: string;
  /** Each API request's timeout; kept short so a hung target does not delay the halt. */
  timeoutMs: number;
  /** Absolute path of `kill_switch_state.json`. */
  stateFile: string;
  fetch?: typeof fetch;
  now?: () => Date;
}

/** The `trigger` of events this client writes into the file itself (the API records its own). */
export const KILL_SWITCH_FILE_TRIGGER = 'lifeboat';

const BODY_IN_MESSAGE = 200;
const SECRET = /(secret|password|api[_-]?key)\s*[=:]\s*\S+/gi;

type ApiAnswer = { ok: true; body: unknown } | { ok: false; fallback: string };

export class HttpFileKillSwitch implements KillSwitchClient {
  readonly stateFile: string;
  readonly #apiUrl: string | undefined;
  /** Credentials written into the API URL, sent as Basic auth: fetch refuses URLs that carry them. */
  readonly #authorization: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #now: () => Date;

  constructor(options: HttpFileKillSwitchOptions) {
    this.stateFile = resolve(options.stateFile);
    const api = splitCredentials(options.apiUrl?.replace(/\/+$/, '') || undefined);
    this.#apiUrl = api.url;
    this.#authorization = api.authorization;
    this.#timeoutMs = options.timeoutMs;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? (() => new Date());
  }

  async status(): Promise<KillSwitchReading> {
    const answer = await this.#call('GET', '/kill-switch', undefined, { fallBackOn4xx: true });
    if (answer.ok) return fromApi(answer.body);
    const current = await this.#readFile();
    const file = KillSwitchFile.safeParse(current.value);
    return {
      state: effectiveKillSwitchState(current.value),
      file: file.success ? file.data : null,
      via: 'file',
      fallback: answer.fallback,
    };
  }

  activate(reason: string, metadata: Record<string, unknown> = {}): Promise<KillSwitchReading> {
    return this.#change('ON', '/kill-switch/activate', reason, metadata);
  }

  deactivate(reason: string, metadata: Record<string, unknown> = {}): Promise<KillSwitchReading> {
    return this.#change('OFF', '/kill-switch/deactivate', reason, metadata);
  }

  async #change(
    state: KillSwitchState,
    path: string,
    reason: string,
    metadata: Record<string, unknown>,
  ): Promise<KillSwitchReading> {
    // Sofia's API takes only a reason; the metadata reaches the file when the file is written.
    const answer = await this.#call('POST', path, { reason }, { fallBackOn4xx: false });
    if (answer.ok) return fromApi(answer.body);
    const current = await this.#readFile();
    const next = changeKillSwitch(current.value, {
      state,
      trigger: KILL_SWITCH_FILE_TRIGGER,
      reason,
      metadata,
      at: this.#now(),
    });
    try {
      await writeFileAtomic(this.stateFile, `${JSON.stringify(next, null, 2)}\n`);
    } catch (err) {
      throw new LifeboatError(
        'TARGET_ERROR',
        `kill switch: the API was not usable (${answer.fallback}) and the state file ${this.stateFile} could not be written: ${errorText(err)}`,
        { hint: 'check that the target directory exists and is writable by this user', cause: err },
      );
    }
    return { state: next.state, file: next, via: 'file', fallback: answer.fallback };
  }

  /** One API request; a target that is down or failing (no answer, 5xx) is a reason to use the file. */
  async #call(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    options: { fallBackOn4xx: boolean },
  ): Promise<ApiAnswer> {
    if (!this.#apiUrl) return { ok: false, fallback: 'no API URL configured for the target' };
    const url = `${this.#apiUrl}${path}`;
    const shown = `${method} ${url}`;
    let status: number;
    let text: string;
    try {
      const response = await this.#fetch(url, {
        method,
        headers: {
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.#authorization ? { authorization: this.#authorization } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        // The signal also bounds reading the body: a target that answers headers and stalls is down too.
        signal: AbortSignal.timeout(Math.max(1, Math.ceil(this.#timeoutMs))),
      });
      status = response.status;
      text = await response.text();
    } catch (err) {
      return { ok: false, fallback: `${shown} did not answer: ${describeFetchError(err, this.#timeoutMs)}` };
    }
    if (status >= 500) return { ok: false, fallback: `${shown} answered ${status}: ${excerpt(text)}` };
    if (status < 200 || status >= 300) {
      if (options.fallBackOn4xx) return { ok: false, fallback: `${shown} answered ${status}: ${excerpt(text)}` };
      throw new LifeboatError('TARGET_ERROR', `kill switch: ${shown} answered ${status}: ${excerpt(text)}`, {
        hint: 'the target refused the request (it is up, so the state file was left alone); see its logs',
        retryable: false,
      });
    }
    try {
      return { ok: true, body: JSON.parse(text) as unknown };
    } catch {
      // The change was accepted; an unreadable answer only means its state is unknown, which reads as ON.
      return { ok: true, body: null };
    }
  }

  async #readFile(): Promise<{ value: unknown }> {
    let text: string;
    try {
      text = await readFile(this.stateFile, 'utf8');
    } catch {
      // Missing or unreadable: nothing to keep, and the switch reads as ON.
      return { value: null };
    }
    try {
      return { value: JSON.parse(text) as unknown };
    } catch {
      return { value: null };
    }
  }
}

/** The kill switch of a configured target: its API (if any) and its state file under its root. */
export function createKillSwitch(target: ResolvedTarget): HttpFileKillSwitch {
  const api = target.config.api;
  return new HttpFileKillSwitch({
    stateFile: resolve(target.root, target.config.killSwitchFile),
    timeoutMs: api?.timeoutMs ?? 2000,
    ...(api?.url ? { apiUrl: api.url } : {}),
  });
}

function fromApi(body: unknown): KillSwitchReading {
  const file = KillSwitchFile.safeParse(body);
  return { state: effectiveKillSwitchState(body), file: file.success ? file.data : null, via: 'api' };
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  return withoutCredentials(fetchErrorText(err, timeoutMs));
}

function fetchErrorText(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  const code = e?.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED)';
  if (code) return `${e.cause?.message ?? 'network error'} (${code})`;
  return errorText(err);
}

/** fetch quotes a URL's user and password back in some of its errors. */
function withoutCredentials(text: string): string {
  return text.replace(/:\/\/[^/@\s]+@/g, '://');
}

function excerpt(text: string): string {
  const flat = text
    .replace(/\s+/g, ' ')
    .trim()
    .replace(SECRET, (_m, key: string) => `${key}=[redacted]`);
  if (!flat) return '(empty body)';
  return flat.length > BODY_IN_MESSAGE ? `${flat.slice(0, BODY_IN_MESSAGE)}…` : flat;
}

/** The URL without user and password (which are never shown), and those as a Basic auth header. */
function splitCredentials(url: string | undefined): { url?: string; authorization?: string } {
  if (!url) return {};
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new LifeboatError('INVALID_CONFIG', `kill switch: the target's API URL is not a URL`, { retryable: false });
  }
  if (!parsed.username && !parsed.password) return { url };
  const user = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  parsed.username = '';
  parsed.password = '';
  return {
    url: parsed.toString().replace(/\/+$/, ''),
    authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
  };
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
