// Grandfather-father-son retention as a pure plan: backups in, keep/delete out, with the
// rules that kept each one. Buckets are UTC days, ISO weeks, months and years; a rule
// "keepDaily: 30" keeps the newest backup of each of the 30 most recent days that have one.
import type { RetentionPolicy } from './schemas/config.js';

export interface RetentionCandidate {
  backupId: string;
  createdAt: Date;
  /** Passed its latest verification. */
  verified: boolean;
  /** Object Lock retention end, if the store holds the backup under one. */
  lockedUntil?: Date | undefined;
}

export interface RetentionDecision {
  backupId: string;
  createdAt: Date;
  keep: boolean;
  /** Why it is kept (`daily 2025-11-25`, `newest verified`, …), or why it goes. */
  reasons: string[];
}

export interface RetentionPlan {
  keep: RetentionDecision[];
  delete: RetentionDecision[];
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

const BUCKETS: Array<{ rule: keyof RetentionPolicy; label: string; key: (d: Date) => string }> = [
  { rule: 'keepDaily', label: 'daily', key: (d) => d.toISOString().slice(0, 10) },
  { rule: 'keepWeekly', label: 'weekly', key: isoWeek },
  { rule: 'keepMonthly', label: 'monthly', key: (d) => d.toISOString().slice(0, 7) },
  { rule: 'keepYearly', label: 'yearly', key: (d) => d.toISOString().slice(0, 4) },
];

export function planRetention(
  backups: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
): RetentionPlan {
  const sorted = [...backups].sort(
    (a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.backupId < b.backupId ? 1 : -1),
  );
  const reasons = new Map<string, string[]>(sorted.map((b) => [b.backupId, []]));
  const why = (id: string, reason: string): void => {
    reasons.get(id)?.push(reason);
  };

  sorted.slice(0, policy.keepLast).forEach((b, i) => {
    why(b.backupId, `last ${i + 1} of ${policy.keepLast}`);
  });

  for (const { rule, label, key } of BUCKETS) {
    const limit = policy[rule];
    if (!limit) continue;
    const seen = new Set<string>();
    for (const b of sorted) {
      if (seen.size >= limit) break;
      const k = key(b.createdAt);
      if (seen.has(k)) continue;
      seen.add(k);
      why(b.backupId, `${label} ${k}`);
    }
  }

  const newestVerified = sorted.find((b) => b.verified);
  if (newestVerified) why(newestVerified.backupId, 'newest verified backup');
  else if (sorted[0]) why(sorted[0].backupId, 'newest backup (none is verified)');

  for (const b of sorted) {
    if (b.lockedUntil && b.lockedUntil.getTime() > now.getTime()) {
      why(b.backupId, `object lock until ${b.lockedUntil.toISOString()}`);
    }
  }

  const plan: RetentionPlan = { keep: [], delete: [] };
  for (const b of sorted) {
    const r = reasons.get(b.backupId) ?? [];
    const decision = {
      backupId: b.backupId,
      createdAt: b.createdAt,
      keep: r.length > 0,
      reasons: r.length ? r : ['no rule keeps it'],
    };
    (decision.keep ? plan.keep : plan.delete).push(decision);
  }
  return plan;
}

/** Another location's view, for the rules that span locations; `backups` is null when it cannot be listed. */
export interface OtherLocation {
  name: string;
  policy: RetentionPolicy;
  backups: readonly RetentionCandidate[] | null;
}

/**
 * Which of `extra` a location would keep if it had them: its own retention run over what it
 * holds plus them. This is what decides which backups a location should get a copy of.
 */
export function wantedBy(
  held: readonly RetentionCandidate[],
  extra: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
): Set<string> {
  const have = new Set(held.map((b) => b.backupId));
  const added = extra.filter((b) => !have.has(b.backupId));
  const ids = new Set(added.map((b) => b.backupId));
  const plan = planRetention([...held, ...added], policy, now);
  return new Set(plan.keep.filter((d) => ids.has(d.backupId)).map((d) => d.backupId));
}

/**
 * A location's plan with the rule that spans locations applied: its copy of a backup is not
 * deleted while it is the only verified copy and another location's retention would keep
 * that backup (the copy there is still to be made), or while another location cannot be
 * listed to prove it holds one. `verifiedHere` names the backups whose copy here passed its
 * latest verification; the others follow the plan as it is.
 */
export function protectOnlyCopies(
  plan: RetentionPlan,
  verifiedHere: ReadonlySet<string>,
  others: readonly OtherLocation[],
  now: Date,
): RetentionPlan {
  const leaving = plan.delete.filter((d) => verifiedHere.has(d.backupId));
  if (leaving.length === 0 || others.length === 0) return plan;
  const verifiedElsewhere = new Set<string>();
  for (const o of others) for (const b of o.backups ?? []) if (b.verified) verifiedElsewhere.add(b.backupId);
  const candidates = leaving
    .filter((d) => !verifiedElsewhere.has(d.backupId))
    .map((d) => ({ backupId: d.backupId, createdAt: d.createdAt, verified: true }));
  const held = new Map<string, string>();
  for (const o of others) {
    if (o.backups === null) {
      for (const c of candidates)
        if (!held.has(c.backupId)) held.set(c.backupId, `${o.name} cannot be listed: no other copy is proven`);
      continue;
    }
    // A copy there that is not verified (damaged since) is one it still needs.
    for (const id of wantedBy(
      o.backups.filter((b) => b.verified),
      candidates,
      o.policy,
      now,
    )) {
      if (!held.has(id)) held.set(id, `only verified copy: ${o.name} keeps it once its copy is made`);
    }
  }
  if (held.size === 0) return plan;
  const out: RetentionPlan = { keep: [...plan.keep], delete: [] };
  for (const d of plan.delete) {
    const reason = held.get(d.backupId);
    if (reason) out.keep.push({ ...d, keep: true, reasons: [reason] });
    else out.delete.push(d);
  }
  out.keep.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  return out;
}
