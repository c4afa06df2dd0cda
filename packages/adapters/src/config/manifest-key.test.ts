// The manifest key comes from the variable the configuration names, and a bad one says so
// without ever printing the value.
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { manifestKeyFrom } from './manifest-key.js';

describe('the manifest key', () => {
  it('is none when no variable is named, and signs with the variable’s value when one is', () => {
    expect(manifestKeyFrom(undefined, { LIFEBOAT_MANIFEST_KEY: 'x'.repeat(32) })).toBeNull();
    const value = 'a'.repeat(16) + 'b'.repeat(16);
    const key = manifestKeyFrom('LIFEBOAT_MANIFEST_KEY', { LIFEBOAT_MANIFEST_KEY: value });
    expect(key?.name).toBe('LIFEBOAT_MANIFEST_KEY');
    expect(key?.hmac('{"a":1}')).toBe(createHmac('sha256', value).update('{"a":1}').digest('hex'));
  });

  it('a named variable that is unset or too short is a configuration error that never shows the value', () => {
    expect(() => manifestKeyFrom('LIFEBOAT_MANIFEST_KEY', {})).toThrow(
      expect.objectContaining({
        code: 'INVALID_CONFIG',
        message: expect.stringContaining('backup.manifestKeyEnv names LIFEBOAT_MANIFEST_KEY, which is not set'),
      }),
    );
    try {
      manifestKeyFrom('LIFEBOAT_MANIFEST_KEY', { LIFEBOAT_MANIFEST_KEY: 'hunter2' });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toContain('shorter than 16 characters');
      expect(JSON.stringify(err) + String(err)).not.toContain('hunter2');
    }
  });
});
