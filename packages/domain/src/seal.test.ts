// The manifest seal: the bytes it covers (canonical JSON without the seal), and which edits
// and which missing seals a reader refuses, with and without a key.
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Sha256Hex } from './audit.js';
import { LifeboatConfig } from './schemas/config.js';
import { Manifest, parseStoredManifest } from './schemas/manifest.js';
import { type ManifestKey, manifestSealProblem, sealedText, sealManifest } from './schemas/seal.js';

const sha256hex: Sha256Hex = (s) => createHash('sha256').update(s, 'utf8').digest('hex');
const keyOf = (secret: string, name = 'LIFEBOAT_MANIFEST_KEY'): ManifestKey => ({
  name,
  hmac: (text) => createHmac('sha256', secret).update(text, 'utf8').digest('hex'),
});
const KEY = keyOf('0123456789abcdef0123456789abcdef');

function manifest(): Manifest {
  return Manifest.parse({
    format: 'lifeboat.manifest/v1',
    backupId: '20251125T020000Z-full-3f9a',
    target: 'demo',
    kind: 'full',
    reason: 'nightly',
    requestedBy: 'cron',
    createdAt: '2025-11-25T02:00:00.000Z',
    completedAt: '2025-11-25T02:00:04.000Z',
    host: 'db-1',
    tool: { name: 'lifeboat', version: '0.1.0' },
    consistency: { method: 'sqlite-backup-api', appendOnlyOffsets: { 'shadow_orders.jsonl': 120 } },
    entries: [
      {
        path: 'database/trading.db',
        source: 'trading.db',
        role: 'database',
        size: 4096,
        sha256: 'a'.repeat(64),
        secret: false,
        mode: 0o644,
      },
      {
        path: 'state/shadow_orders.jsonl',
        source: 'shadow_orders.jsonl',
        role: 'state',
        size: 120,
        sha256: 'b'.repeat(64),
        secret: false,
        appendOnlyOffset: 120,
      },
    ],
    omitted: [],
    warnings: [],
    database: {
      engine: 'sqlite',
      version: '3.45.0',
      path: 'database/trading.db',
      format: 'sqlite',
      tables: { orders: 3, fills: 2 },
      integrity: { ok: true, detail: 'ok' },
    },
    archive: {
      key: 'demo/backups/20251125T020000Z-full-3f9a/archive.tar.gz',
      compression: 'gzip',
      encryption: null,
      size: 2048,
      sha256: 'c'.repeat(64),
    },
  });
}

/** A manifest as JSON, with the fields the tests edit. */
type Stored = Record<string, unknown> & {
  entries: Array<{ size: number; sha256: string }>;
  archive: { sha256: string };
  database: { tables: Record<string, number> };
  seal?: { sha256: string; hmac?: { key: string; sha256: string } };
};

/** As a store holds it: pretty-printed JSON, read back. */
const stored = (m: unknown): Stored => JSON.parse(JSON.stringify(m, null, 2));

describe('the manifest seal', () => {
  it('covers the canonical JSON of the manifest without its seal: keys sorted at every depth, no whitespace', () => {
    const text = sealedText({ b: 1, a: { d: [2, { f: true, e: null }], c: 'x' }, seal: { sha256: 'ignored' } });
    expect(text).toBe('{"a":{"c":"x","d":[2,{"e":null,"f":true}]},"b":1}');
    const m = manifest();
    const sealed = sealManifest(m, sha256hex, null);
    expect(sealed.seal).toEqual({ sha256: sha256hex(sealedText(m as unknown as Record<string, unknown>)) });
    expect(sealedText(sealed as unknown as Record<string, unknown>)).toBe(
      sealedText(m as unknown as Record<string, unknown>),
    );
    expect(sealedText(sealed as unknown as Record<string, unknown>)).not.toMatch(/\s/);
    expect(
      sealedText(sealed as unknown as Record<string, unknown>).startsWith('{"archive":{"compression":"gzip"'),
    ).toBe(true);
  });

  it('holds however the stored JSON is laid out or its keys ordered', () => {
    const sealed = sealManifest(manifest(), sha256hex, KEY);
    const reordered = Object.fromEntries(Object.entries(stored(sealed)).reverse());
    expect(manifestSealProblem(reordered, sha256hex, KEY)).toBeNull();
    expect(manifestSealProblem(JSON.parse(JSON.stringify(sealed)), sha256hex, KEY)).toBeNull();
    // The schema keeps the seal; the stored manifest parses with it.
    expect(parseStoredManifest(stored(sealed)).seal).toEqual(sealed.seal);
  });

  it('refuses a manifest edited after it was sealed: entries, the archive checksum, anything', () => {
    const sealed = stored(sealManifest(manifest(), sha256hex, null));
    const edits: Array<(m: Stored) => void> = [
      (m) => {
        const e = m.entries[0] as Stored['entries'][number];
        e.size = 5000;
        e.sha256 = 'd'.repeat(64);
      },
      (m) => {
        m.archive.sha256 = 'e'.repeat(64);
      },
      (m) => {
        m.database.tables.orders = 4;
      },
      (m) => {
        m.entries.pop();
      },
      (m) => {
        m.extra = 'added';
      },
    ];
    for (const edit of edits) {
      const m = structuredClone(sealed);
      edit(m);
      expect(manifestSealProblem(m, sha256hex, null)).toMatch(/^its checksum does not match/);
      expect(manifestSealProblem(m, sha256hex, KEY)).toMatch(/^its checksum does not match/);
    }
  });

  it('with a key: a matching HMAC passes; another key, a recomputed checksum or no HMAC is refused', () => {
    const sealed = stored(sealManifest(manifest(), sha256hex, KEY));
    expect(sealed.seal).toMatchObject({ hmac: { key: 'LIFEBOAT_MANIFEST_KEY' } });
    // The key itself is never in the manifest.
    expect(JSON.stringify(sealed)).not.toContain('0123456789abcdef');
    expect(manifestSealProblem(sealed, sha256hex, KEY)).toBeNull();
    // Without a key the checksum is still checked, and the HMAC is not.
    expect(manifestSealProblem(sealed, sha256hex, null)).toBeNull();

    expect(manifestSealProblem(sealed, sha256hex, keyOf('another key, just as long'))).toMatch(
      /^its HMAC does not match the key in LIFEBOAT_MANIFEST_KEY/,
    );
    // Edited, and the checksum made again to match: only the HMAC tells.
    const forged = structuredClone(sealed);
    forged.archive.sha256 = 'f'.repeat(64);
    (forged.seal as NonNullable<Stored['seal']>).sha256 = sha256hex(sealedText(forged));
    expect(manifestSealProblem(forged, sha256hex, null)).toBeNull();
    expect(manifestSealProblem(forged, sha256hex, KEY)).toMatch(/^its HMAC does not match/);
    // Sealed without the key.
    const unkeyed = stored(sealManifest(manifest(), sha256hex, null));
    expect(manifestSealProblem(unkeyed, sha256hex, KEY)).toMatch(/^its seal carries no HMAC/);
  });

  it('a manifest without a seal (written before seals) reads without a key and is refused with one', () => {
    const old = stored(manifest());
    expect(old.seal).toBeUndefined();
    expect(manifestSealProblem(old, sha256hex, null)).toBeNull();
    expect(manifestSealProblem(old, sha256hex, KEY)).toMatch(/^it is not sealed, and a manifest key is configured/);
    // A seal stripped from a sealed manifest is the same thing.
    const { seal: _stripped, ...stripped } = stored(sealManifest(manifest(), sha256hex, KEY));
    expect(manifestSealProblem(stripped, sha256hex, KEY)).toMatch(/^it is not sealed/);
  });

  it('refuses a seal that does not parse, and anything but an object', () => {
    const m = stored(manifest());
    expect(manifestSealProblem({ ...m, seal: { sha256: 'x' } }, sha256hex, null)).toBe('its seal does not parse');
    expect(manifestSealProblem({ ...m, seal: { sha256: 'a'.repeat(64), note: 'trust me' } }, sha256hex, null)).toBe(
      'its seal does not parse',
    );
    expect(manifestSealProblem([m], sha256hex, null)).toBe('it is not a JSON object');
    expect(Manifest.safeParse({ ...m, seal: { sha256: 'a'.repeat(64), hmac: { key: 'K' } } }).success).toBe(false);
  });

  it('the configuration names the key by its environment variable, never holds it', () => {
    const base = { store: { type: 'fs', path: 's' }, targets: { demo: { root: 't' } } };
    expect(LifeboatConfig.parse(base).backup.manifestKeyEnv).toBeUndefined();
    expect(
      LifeboatConfig.parse({ ...base, backup: { manifestKeyEnv: 'LIFEBOAT_MANIFEST_KEY' } }).backup.manifestKeyEnv,
    ).toBe('LIFEBOAT_MANIFEST_KEY');
    expect(LifeboatConfig.safeParse({ ...base, backup: { manifestKeyEnv: 'hunter2 hunter2!' } }).success).toBe(false);
  });
});
