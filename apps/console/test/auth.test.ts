// Token grants and the console's first start: grants are parsed strictly (a bad line names
// itself), tokens are kept only as hashes, and an embedded console with no grant makes one
// admin token, shown once, with which the dashboard's API answers.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configPath, createRuntime, loadConfig } from '@lifeboat/adapters';
import { afterAll, describe, expect, it } from 'vitest';
import { FailureLimiter, hashToken, issueToken, loadTokens, parseTokenGrants, TokenStore } from '../src/auth.js';
import { embeddedTokensFile, startConsole } from '../src/start.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('token grants', () => {
  it('accepts "<name> <role> sha256:<hex>" lines and the colon form, and authenticates only the right token', () => {
    const a = issueToken('olga', 'operator');
    const b = issueToken('anna', 'approver');
    expect(a.token).toMatch(/^lbt_[A-Za-z0-9_-]{43}$/);
    expect(a.line).toBe(`olga operator sha256:${hashToken(a.token)}`);
    const colon = `anna:approver:sha256:${hashToken(b.token)}`;
    const store = new TokenStore(parseTokenGrants(`# people\n${a.line}\n\n${colon}`, 'grants'));
    expect(store.size).toBe(2);
    expect(store.authenticate(a.token)).toEqual({ name: 'olga', role: 'operator' });
    expect(store.authenticate(b.token)).toEqual({ name: 'anna', role: 'approver' });
    expect(store.authenticate(`${a.token}x`)).toBeNull();
    expect(store.authenticate(hashToken(a.token))).toBeNull();
  });

  it('refuses a bad grant, naming the entry and what is wrong, instead of skipping it', () => {
    const good = issueToken('olga', 'operator').line;
    expect(() => parseTokenGrants(`${good}\nvera reader sha256:${'a'.repeat(64)}`, 'tokens.txt')).toThrow(
      /tokens.txt, entry 2: role "reader" is not one of viewer, operator, approver, admin/,
    );
    expect(() => parseTokenGrants('vera viewer lbt_plaintexttoken', 'tokens.txt')).toThrow(
      /entry 1: the token must be given as sha256:<64 lowercase hex>/,
    );
    expect(() => parseTokenGrants(`${good}\n${good}`, 'tokens.txt')).toThrow(/"olga" appears twice/);
    expect(() => parseTokenGrants('just-a-name', 'tokens.txt')).toThrow(/expected "<name> <role> sha256:<hex>"/);
  });

  it('reads grants from the environment and a file, and says which file cannot be read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-tokens-'));
    dirs.push(dir);
    const a = issueToken('olga', 'operator');
    const b = issueToken('vera', 'viewer');
    await writeFile(join(dir, 'grants'), `${b.line}\n`);
    const store = await loadTokens({
      LIFEBOAT_CONSOLE_TOKENS: a.line,
      LIFEBOAT_CONSOLE_TOKENS_FILE: join(dir, 'grants'),
    });
    expect(store.authenticate(b.token)?.name).toBe('vera');
    expect(store.authenticate(a.token)?.name).toBe('olga');
    await expect(loadTokens({ LIFEBOAT_CONSOLE_TOKENS_FILE: join(dir, 'missing') })).rejects.toThrow(
      /console tokens file .*missing: ENOENT/,
    );
  });

  it('limits failures per address in a sliding window', () => {
    const limiter = new FailureLimiter(3, 1000);
    for (let i = 0; i < 3; i++) limiter.fail('1.2.3.4', 10_000 + i);
    expect(limiter.retryAfterMs('1.2.3.4', 10_010)).toBe(990);
    expect(limiter.retryAfterMs('5.6.7.8', 10_010)).toBe(0);
    expect(limiter.retryAfterMs('1.2.3.4', 11_001)).toBe(0);
  });
});

describe('first start', () => {
  it('an embedded console with no grant makes an admin token once, keeps only its hash, and answers with it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-console-first-'));
    dirs.push(dir);
    await writeFile(
      join(dir, 'lifeboat.yaml'),
      'store:\n  type: fs\n  path: ./store\ntargets:\n  demo:\n    root: ./target\n',
    );
    const runtime = createRuntime(await loadConfig(configPath(join(dir, 'lifeboat.yaml'))));
    const silent = { info() {}, warn() {}, error() {} };
    let shown: string | null = null;
    const first = await startConsole({
      runtime,
      log: silent,
      port: 0,
      host: '127.0.0.1',
      env: {},
      bootstrapToken: true,
      onNewToken: (token) => {
        shown = token;
      },
    });
    try {
      expect(first.mode).toBe('embedded');
      expect(shown).toMatch(/^lbt_/);
      const grants = await readFile(embeddedTokensFile(runtime), 'utf8');
      expect(grants).not.toContain(shown as unknown as string);
      expect(grants).toContain(`admin admin sha256:${hashToken(shown as unknown as string)}`);
      const me = await fetch(`${first.url}/api/me`, { headers: { authorization: `Bearer ${shown}` } });
      expect(await me.json()).toEqual({ name: 'admin', role: 'admin' });
    } finally {
      await first.close();
    }
    // The second start reuses the file and shows nothing.
    let again: string | null = null;
    const second = await startConsole({
      runtime,
      log: silent,
      port: 0,
      host: '127.0.0.1',
      env: {},
      bootstrapToken: true,
      onNewToken: (t) => {
        again = t;
      },
    });
    await second.close();
    expect(again).toBeNull();
    // Without a grant and without being asked to make one, it refuses to start: nobody could sign in.
    await rm(embeddedTokensFile(runtime));
    await expect(startConsole({ runtime, log: silent, port: 0, host: '127.0.0.1', env: {} })).rejects.toThrow(
      /the console has no tokens: nobody could sign in/,
    );
  });
});
