// Who may call the console: bearer tokens with a role, kept only as SHA-256 hashes (a
// tokens file or the environment), compared in constant time; and a limit on failed
// sign-ins per client address.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { LifeboatError } from '@lifeboat/domain';

export const ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What each role may do. admin may do everything; approver does not trigger work, operator does not approve. */
export type Permission = 'read' | 'operate' | 'approve' | 'admin';
const GRANTS: Readonly<Record<Role, readonly Permission[]>> = {
  viewer: ['read'],
  operator: ['read', 'operate'],
  approver: ['read', 'approve'],
  admin: ['read', 'operate', 'approve', 'admin'],
};

export function allows(role: Role, permission: Permission): boolean {
  return GRANTS[role].includes(permission);
}

export interface Principal {
  /** The person or system the token was issued to; two-person rules compare these. */
  name: string;
  role: Role;
}

interface TokenEntry extends Principal {
  hash: Buffer;
}

/** Tokens are random, so one SHA-256 is enough (a slow password hash buys nothing against 256 bits). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new token (`lbt_` + 43 base64url characters: 256 bits) and the line that grants it. */
export function issueToken(name: string, role: Role): { token: string; line: string } {
  const token = `lbt_${randomBytes(32).toString('base64url')}`;
  return { token, line: `${name} ${role} sha256:${hashToken(token)}` };
}

/** `alice:operator:sha256:<hex>` as its three fields. */
function colonForm(line: string): string[] {
  const p = line.split(':');
  return p.length === 4 && p[2] === 'sha256' ? [p[0] as string, p[1] as string, `sha256:${p[3]}`] : p;
}

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;

/**
 * Parses token grants, one per line or comma-separated: `<name> <role> sha256:<64 hex>`
 * (also `<name>:<role>:sha256:<hex>`). Blank lines and `#` comments are ignored. A bad line
 * is an error naming its number, never skipped: a typo must not lock someone out silently.
 */
export function parseTokenGrants(text: string, source: string): TokenEntry[] {
  const out: TokenEntry[] = [];
  const lines = text.split(/\r?\n|,/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const parts = /\s/.test(line) ? line.split(/\s+/) : colonForm(line);
    const [name, role, hash] = parts;
    const where = `${source}, entry ${i + 1}`;
    if (parts.length !== 3 || !name || !role || !hash) {
      throw new LifeboatError('INVALID_CONFIG', `${where}: expected "<name> <role> sha256:<hex>"`, {
        hint: 'make one with `lifeboat console token --name <name> --role <role>`',
      });
    }
    if (!NAME.test(name)) throw new LifeboatError('INVALID_CONFIG', `${where}: name "${name}" is not a plain name`);
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new LifeboatError('INVALID_CONFIG', `${where}: role "${role}" is not one of ${ROLES.join(', ')}`);
    }
    const m = /^sha256:([0-9a-f]{64})$/.exec(hash);
    if (!m) {
      throw new LifeboatError('INVALID_CONFIG', `${where}: the token must be given as sha256:<64 lowercase hex>`, {
        hint: 'tokens are never kept in clear; store the hash that `lifeboat console token` prints',
      });
    }
    if (out.some((e) => e.name === name))
      throw new LifeboatError('INVALID_CONFIG', `${where}: "${name}" appears twice`);
    out.push({ name, role: role as Role, hash: Buffer.from(m[1] as string, 'hex') });
  }
  return out;
}

export class TokenStore {
  readonly #entries: TokenEntry[];

  constructor(entries: TokenEntry[]) {
    this.#entries = entries;
  }

  get size(): number {
    return this.#entries.length;
  }

  /**
   * The principal a token belongs to, or null. Every grant is compared, in constant time,
   * whatever matched, so the time taken says nothing about which hash came close.
   */
  authenticate(token: string): Principal | null {
    const presented = createHash('sha256').update(token, 'utf8').digest();
    let found: TokenEntry | null = null;
    for (const e of this.#entries) {
      if (timingSafeEqual(presented, e.hash) && !found) found = e;
    }
    return found ? { name: found.name, role: found.role } : null;
  }
}

/** Tokens from LIFEBOAT_CONSOLE_TOKENS (grants inline) and LIFEBOAT_CONSOLE_TOKENS_FILE (a file of grants). */
export async function loadTokens(env: NodeJS.ProcessEnv = process.env, file?: string): Promise<TokenStore> {
  const entries: TokenEntry[] = [];
  const inline = env.LIFEBOAT_CONSOLE_TOKENS;
  if (inline?.trim()) entries.push(...parseTokenGrants(inline, 'LIFEBOAT_CONSOLE_TOKENS'));
  const path = file ?? env.LIFEBOAT_CONSOLE_TOKENS_FILE;
  if (path) {
    const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new LifeboatError('INVALID_CONFIG', `console tokens file ${path}: ${err.code ?? err.message}`, {
        hint: 'set LIFEBOAT_CONSOLE_TOKENS_FILE to a readable file of "<name> <role> sha256:<hex>" lines',
      });
    });
    for (const e of parseTokenGrants(text, path)) {
      if (entries.some((x) => x.name === e.name)) {
        throw new LifeboatError('INVALID_CONFIG', `${path}: "${e.name}" is also granted in LIFEBOAT_CONSOLE_TOKENS`);
      }
      entries.push(e);
    }
  }
  return new TokenStore(entries);
}

/**
 * Failed authentications per client address in a sliding window: after `max` failures the
 * address is refused (429) until the oldest failure leaves the window, even with a good token,
 * so guessing gains nothing by being fast.
 */
export class FailureLimiter {
  readonly #failures = new Map<string, number[]>();

  constructor(
    private readonly max = 10,
    private readonly windowMs = 60_000,
  ) {}

  /** Milliseconds until the address may try again; 0 when it may now. */
  retryAfterMs(address: string, now = Date.now()): number {
    const recent = this.#recent(address, now);
    if (recent.length < this.max) return 0;
    return (recent[0] as number) + this.windowMs - now;
  }

  fail(address: string, now = Date.now()): void {
    const recent = this.#recent(address, now);
    recent.push(now);
    this.#failures.set(address, recent);
    // Keep memory bounded under a flood of addresses: forget the quietest first.
    if (this.#failures.size > 10_000) {
      const first = this.#failures.keys().next().value;
      if (first !== undefined) this.#failures.delete(first);
    }
  }

  #recent(address: string, now: number): number[] {
    const list = (this.#failures.get(address) ?? []).filter((t) => t > now - this.windowMs);
    if (list.length === 0) this.#failures.delete(address);
    return list;
  }
}
