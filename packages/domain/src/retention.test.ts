import { describe, expect, it } from 'vitest';
import { planRetention, protectOnlyCopies, type RetentionCandidate, wantedBy } from './retention.js';
import { RetentionPolicy } from './schemas/config.js';

const policy = (p: Partial<RetentionPolicy>) => RetentionPolicy.parse({ keepDaily: 0, ...p });

/** One backup a day at 02:00 UTC for `days` days ending on `last`, plus extras. */
function daily(days: number, last = '2025-11-30', verified = true): RetentionCandidate[] {
  const end = new Date(`${last}T02:00:00Z`).getTime();
  return Array.from({ length: days }, (_, i) => {
    const createdAt = new Date(end - i * 86_400_000);
    return { backupId: createdAt.toISOString().slice(0, 10), createdAt, verified };
  });
}

const now = new Date('2025-12-01T00:00:00Z');

describe('retention plan', () => {
  it('keeps 30 daily backups by default, the runbook rule, and deletes the rest', () => {
    const plan = planRetention(daily(45), RetentionPolicy.parse({}), now);
    expect(plan.keep).toHaveLength(30);
    expect(plan.delete).toHaveLength(15);
    expect(plan.keep.at(-1)?.backupId).toBe('2025-11-01');
    expect(plan.delete[0]?.reasons).toEqual(['no rule keeps it']);
  });

  it('keeps the newest of each day when a day has several', () => {
    const a = { backupId: 'a', createdAt: new Date('2025-11-30T01:00:00Z'), verified: true };
    const b = { backupId: 'b', createdAt: new Date('2025-11-30T13:00:00Z'), verified: true };
    const plan = planRetention([a, b], policy({ keepDaily: 1 }), now);
    expect(plan.keep.map((k) => k.backupId)).toEqual(['b']);
    expect(plan.keep[0]?.reasons).toEqual(['daily 2025-11-30', 'newest verified backup']);
  });

  it('combines daily, weekly and monthly rules and names each rule that keeps a backup', () => {
    const plan = planRetention(daily(120), policy({ keepDaily: 7, keepWeekly: 4, keepMonthly: 3 }), now);
    const kept = new Map(plan.keep.map((k) => [k.backupId, k.reasons]));
    expect(kept.get('2025-11-30')).toContain('daily 2025-11-30');
    expect(kept.get('2025-11-30')).toContain('weekly 2025-W48');
    expect(kept.get('2025-11-30')).toContain('monthly 2025-11');
    // The newest backup of October and of September are the months' keepers.
    expect(kept.get('2025-10-31')).toEqual(['monthly 2025-10']);
    expect(kept.get('2025-09-30')).toEqual(['monthly 2025-09']);
    // Four ISO weeks: W48 (Sunday 30th), W47, W46, W45, each by its newest (Sunday) backup.
    expect([...kept].filter(([, r]) => r.some((x) => x.startsWith('weekly'))).map(([id]) => id)).toEqual([
      '2025-11-30',
      '2025-11-23',
      '2025-11-16',
      '2025-11-09',
    ]);
    expect(plan.keep).toHaveLength(7 + 3 + 2);
  });

  it('never deletes the newest verified backup, even when no rule keeps it', () => {
    const backups = daily(5, '2025-11-30', false);
    const old = backups.at(-1) as RetentionCandidate;
    old.verified = true;
    const plan = planRetention(backups, policy({ keepDaily: 2 }), now);
    expect(plan.keep.find((k) => k.backupId === old.backupId)?.reasons).toEqual(['newest verified backup']);
    expect(plan.delete.map((d) => d.backupId)).toEqual(['2025-11-28', '2025-11-27']);
  });

  it('keeps the newest backup when the policy keeps nothing and none is verified', () => {
    const plan = planRetention(daily(3, '2025-11-30', false), policy({}), now);
    expect(plan.keep.map((k) => [k.backupId, k.reasons])).toEqual([
      ['2025-11-30', ['newest backup (none is verified)']],
    ]);
  });

  it('respects Object Lock retention that has not ended', () => {
    const backups = daily(3);
    (backups[2] as RetentionCandidate).lockedUntil = new Date('2026-01-01T00:00:00Z');
    (backups[1] as RetentionCandidate).lockedUntil = new Date('2025-11-01T00:00:00Z');
    const plan = planRetention(backups, policy({ keepLast: 1 }), now);
    expect(plan.keep.map((k) => k.backupId)).toEqual(['2025-11-30', '2025-11-28']);
    expect(plan.delete.map((d) => d.backupId)).toEqual(['2025-11-29']);
  });

  it('keepLast counts backups, not days', () => {
    const plan = planRetention(daily(10), policy({ keepLast: 3 }), now);
    expect(plan.keep.map((k) => k.reasons[0])).toEqual(['last 1 of 3', 'last 2 of 3', 'last 3 of 3']);
  });
});

describe('retention across locations', () => {
  // Primary keeps 7 daily; the secondary 30 daily; a yearly archive (the NAS) 7 yearly.
  const all = daily(10);
  const ids = (xs: Iterable<{ backupId: string } | string>) =>
    [...xs].map((x) => (typeof x === 'string' ? x : x.backupId)).sort();

  it('a location wants the copies its own retention would keep', () => {
    // The secondary holds the three oldest; all ten are offered: it wants the seven it lacks.
    expect(ids(wantedBy(all.slice(7), all, policy({ keepDaily: 30 }), now))).toEqual(ids(all.slice(0, 7)));
    // A yearly archive holding the newest wants none of the older ones of the same year.
    expect(ids(wantedBy(all.slice(0, 1), all, policy({ keepYearly: 7 }), now))).toEqual([]);
    // ... and wants the newest when it holds only an older one.
    expect(ids(wantedBy(all.slice(9), all, policy({ keepYearly: 7 }), now))).toEqual(['2025-11-30']);
  });

  it('keeps the only verified copy another location still wants, and lets the copied ones go', () => {
    const plan = planRetention(all, policy({ keepDaily: 7 }), now);
    expect(ids(plan.delete)).toEqual(['2025-11-21', '2025-11-22', '2025-11-23']);
    // The secondary has verified copies of 21 and 22 only; it keeps 30 daily, so it wants 23 too.
    const secondary = { name: 'secondary', policy: policy({ keepDaily: 30 }), backups: all.slice(8) };
    const out = protectOnlyCopies(plan, new Set(ids(all)), [secondary], now);
    expect(ids(out.delete)).toEqual(['2025-11-21', '2025-11-22']);
    const kept = out.keep.find((k) => k.backupId === '2025-11-23');
    expect(kept?.reasons).toEqual(['only verified copy: secondary keeps it once its copy is made']);
    expect(out.keep).toHaveLength(8);
  });

  it('a copy elsewhere that failed its verification does not count', () => {
    const plan = planRetention(all, policy({ keepDaily: 9 }), now);
    const damaged = { ...(all[9] as RetentionCandidate), verified: false };
    const secondary = { name: 'secondary', policy: policy({ keepDaily: 30 }), backups: [damaged] };
    const out = protectOnlyCopies(plan, new Set(ids(all)), [secondary], now);
    expect(out.delete).toEqual([]);
    expect(out.keep.find((k) => k.backupId === '2025-11-21')?.reasons[0]).toMatch(/^only verified copy/);
  });

  it('a location that cannot be listed proves no copy: nothing verified here goes', () => {
    const plan = planRetention(all, policy({ keepDaily: 7 }), now);
    const out = protectOnlyCopies(plan, new Set(ids(all)), [{ name: 'nas', policy: policy({}), backups: null }], now);
    expect(out.delete).toEqual([]);
    expect(out.keep.find((k) => k.backupId === '2025-11-21')?.reasons).toEqual([
      'nas cannot be listed: no other copy is proven',
    ]);
  });

  it('an unverified or damaged copy here follows the plan; a location wanting nothing changes nothing', () => {
    const plan = planRetention(all, policy({ keepDaily: 7 }), now);
    const verifiedHere = new Set(ids(all.slice(0, 7)));
    const secondary = { name: 'secondary', policy: policy({ keepDaily: 30 }), backups: [] };
    expect(protectOnlyCopies(plan, verifiedHere, [secondary], now)).toEqual(plan);
    const yearly = { name: 'nas', policy: policy({ keepYearly: 7 }), backups: all.slice(0, 1) };
    expect(protectOnlyCopies(plan, new Set(ids(all)), [yearly], now)).toEqual(plan);
  });
});
