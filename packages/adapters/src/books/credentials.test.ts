import { describe, expect, it } from 'vitest';
import { withTargetCredentials } from './index.js';

const db = { engine: 'postgres' as const, urlEnv: 'DATABASE_URL' };
const env = { DATABASE_URL: 'postgres://trader:s3cr%40t@db.internal:5432/trading' };

describe('a scratch database named in job data without its password', () => {
  it("takes the target's password for the same server and user", () => {
    const url = withTargetCredentials('postgres://trader@db.internal:5432/trading_sandbox_1', db, env);
    expect(new URL(url).password).toBe('s3cr%40t');
    expect(new URL(url).pathname).toBe('/trading_sandbox_1');
  });

  it('takes nothing for another server, another user, a URL with its own password, or a file', () => {
    for (const spec of [
      'postgres://trader@elsewhere:5432/trading_sandbox_1',
      'postgres://reader@db.internal:5432/trading_sandbox_1',
      'postgres://trader@db.internal:6543/trading_sandbox_1',
      'postgres://trader:other@db.internal:5432/trading_sandbox_1',
      '/var/lib/sandbox/trading.db',
    ]) {
      expect(withTargetCredentials(spec, db, env)).toBe(spec);
    }
    expect(
      withTargetCredentials('postgres://trader@db.internal/x', { engine: 'sqlite', path: 'trading.db' }, env),
    ).toBe('postgres://trader@db.internal/x');
    expect(withTargetCredentials('postgres://trader@db.internal/x', db, {})).toBe('postgres://trader@db.internal/x');
  });
});
