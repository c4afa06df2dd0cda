import { describe, expect, it } from 'vitest';
import { matchesAny, matchesGlob } from './glob.js';
import { backupIdTime, isBackupId, makeBackupId, scheduledBackupJobId } from './ids.js';
import { BackupRequest } from './schemas/backup.js';
import { describeZodError, LifeboatConfig } from './schemas/config.js';
import { Manifest, SafeRelativePath } from './schemas/manifest.js';
import { formatBytes, parseSize } from './units.js';

describe('backup ids', () => {
  it('sort by time and read back their time', () => {
    const id = makeBackupId(new Date('2025-11-25T02:00:00.123Z'), 'full', '3f9a');
    expect(id).toBe('20251125T020000Z-full-3f9a');
    expect(isBackupId(id)).toBe(true);
    expect(backupIdTime(id)?.toISOString()).toBe('2025-11-25T02:00:00.000Z');
    expect(isBackupId('../etc')).toBe(false);
    expect(scheduledBackupJobId('prod', new Date('2025-11-25T02:00:00Z'))).toBe('backup:prod:20251125T020000Z');
  });
});

describe('globs', () => {
  it('match within a segment, across segments, and whole directories', () => {
    expect(matchesGlob('.env.testnet', '.env*')).toBe(true);
    expect(matchesGlob('reports/daily/x.json', 'reports/**')).toBe(true);
    expect(matchesGlob('reports/daily/x.json', 'reports')).toBe(true);
    expect(matchesGlob('logs/2025/audit.jsonl', 'logs/**/*.jsonl')).toBe(true);
    expect(matchesGlob('logs/audit.jsonl', 'logs/**/*.jsonl')).toBe(true);
    expect(matchesGlob('shadow_orders.jsonl', '*.jsonl')).toBe(true);
    expect(matchesGlob('a/shadow_orders.jsonl', '*.jsonl')).toBe(false);
    expect(matchesGlob('kill_switch_state.json', 'kill_switch_state.json')).toBe(true);
    expect(matchesGlob('kill_switch_stateXjson', 'kill_switch_state.json')).toBe(false);
    expect(matchesAny('config/.env', ['.env*', '**/.env*'])).toBe(true);
  });
});

describe('contracts', () => {
  it('a backup request names the bad field and normalises the schedule slot', () => {
    const bad = BackupRequest.safeParse({ target: 'Prod!', kind: 'all' });
    expect(bad.success).toBe(false);
    if (!bad.success) expect(describeZodError(bad.error)).toMatch(/^target: .*; kind: /);
    expect(BackupRequest.parse({ target: 'prod', scheduledAt: '2025-11-25T04:00:00+02:00' }).scheduledAt).toBe(
      '2025-11-25T02:00:00.000Z',
    );
    expect(BackupRequest.safeParse({ target: 'prod', extra: 1 }).success).toBe(false);
  });

  it('the configuration names the key that is wrong', () => {
    const r = LifeboatConfig.safeParse({
      store: { type: 's3', bucket: 'x' },
      targets: { demo: { root: 't', databse: {} } },
    });
    expect(r.success).toBe(false);
    if (!r.success) {
      const text = describeZodError(r.error, 'lifeboat.yaml');
      expect(text).toContain('store.bucket');
      expect(text).toContain('targets.demo');
      expect(text).toContain('databse');
    }
    const ok = LifeboatConfig.parse({ store: { type: 'fs', path: 's' }, targets: { demo: { root: 't' } } });
    expect(ok.retention.keepDaily).toBe(30);
    expect(ok.targets.demo?.database).toEqual({ engine: 'sqlite', path: 'trading.db' });
    expect(ok.targets.demo?.secrets).toContain('.env*');
  });

  it('locations have names of their own, a store each and an optional retention', () => {
    const base = { store: { type: 'fs', path: 'store' }, targets: { demo: { root: 't' } } };
    const ok = LifeboatConfig.parse({
      ...base,
      retention: { keepDaily: 7 },
      locations: {
        secondary: { type: 's3', bucket: 'sofia-backups', retention: { keepDaily: 30, keepMonthly: 12 } },
        tertiary: { type: 'fs', path: '/mnt/nas' },
      },
    });
    expect(Object.keys(ok.locations)).toEqual(['secondary', 'tertiary']);
    expect(ok.locations.secondary?.retention).toMatchObject({ keepDaily: 30, keepMonthly: 12 });
    expect(ok.locations.tertiary?.retention).toBeUndefined();
    const errors = (locations: unknown) => {
      const r = LifeboatConfig.safeParse({ ...base, locations });
      return r.success ? '' : describeZodError(r.error);
    };
    expect(errors({ primary: { type: 'fs', path: 'x' } })).toMatch(/"primary" is the name of `store`/);
    expect(errors({ 'Off Site': { type: 'fs', path: 'x' } })).toMatch(/location name is lowercase/);
    expect(errors({ nas: { type: 'fs', path: 'x', bucket: 'b' } })).toMatch(/^locations\.nas: .*bucket/);
    expect(errors({ nas: { type: 'fs', path: 'x', retention: { keepDaly: 3 } } })).toMatch(
      /^locations\.nas\.retention: .*keepDaly/,
    );
  });

  it('manifest paths may not climb out or be absolute', () => {
    for (const bad of ['/etc/passwd', '../x', 'a/../b', 'a//b', './a', 'C:/x', 'a\\b']) {
      expect(SafeRelativePath.safeParse(bad).success, bad).toBe(false);
    }
    expect(SafeRelativePath.safeParse('reports/daily/x.json').success).toBe(true);
    expect(Manifest.safeParse({ format: 'lifeboat.manifest/v2' }).success).toBe(false);
  });
});

describe('units', () => {
  it('parses and prints sizes', () => {
    expect(parseSize('10MiB')).toBe(10 * 1024 * 1024);
    expect(parseSize('1GiB')).toBe(1024 ** 3);
    expect(parseSize('1.5k')).toBe(1536);
    expect(() => parseSize('ten')).toThrow(/not a size/);
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(12)).toBe('12 B');
  });
});
