// The audit trail's contract: who did what, to which target, with what outcome, kept as a
// hash chain so that editing, removing or reordering any entry shows (docs/FORMAT.md §8).
import { z } from 'zod';

export const AUDIT_OUTCOMES = ['ok', 'refused', 'failed'] as const;
export const AuditOutcome = z.enum(AUDIT_OUTCOMES);
export type AuditOutcome = z.infer<typeof AuditOutcome>;

const Hash = z.string().regex(/^[0-9a-f]{64}$/, 'a hash is 64 lowercase hex digits');

const eventFields = {
  /** A console token's name, an OS user, or an app such as "restore-worker". */
  actor: z.string().min(1),
  /** Dotted: "backup.completed", "kill_switch.activate", "api.request". */
  action: z.string().min(1),
  target: z.string().min(1).optional(),
};

/** What a caller records; the trail adds the sequence number, the time and the hashes. */
export const AuditEvent = z
  .object({
    ...eventFields,
    outcome: AuditOutcome.default('ok'),
    details: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type AuditEventInput = z.input<typeof AuditEvent>;
export type AuditEvent = z.infer<typeof AuditEvent>;

/**
 * One stored entry. Strict, with no defaults: a field added to or dropped from a stored entry
 * is a change to it, not something to smooth over.
 */
export const AuditEntry = z
  .object({
    seq: z.number().int().min(1),
    at: z.iso.datetime({ offset: true }),
    ...eventFields,
    outcome: AuditOutcome,
    details: z.record(z.string(), z.unknown()),
    /** The previous entry's hash; GENESIS_HASH for entry 1. */
    prevHash: Hash,
    /** sha256 of the canonical JSON of every other field. */
    hash: Hash,
  })
  .strict();
export type AuditEntry = z.infer<typeof AuditEntry>;

/** The prevHash of entry 1. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * sha256 of a UTF-8 string as 64 lowercase hex digits. The domain does no I/O and imports no
 * crypto, so callers pass one in (the adapters' `sha256hex`).
 */
export type Sha256Hex = (text: string) => string;

/**
 * JSON with every object's keys sorted (by UTF-16 code units, JavaScript's default sort) and
 * no whitespace; keys whose value is undefined are dropped, as JSON.stringify drops them. The
 * same value always gives the same text, whatever order its keys were written or stored in.
 */
export function canonicalJson(value: unknown): string {
  return canonical(value) ?? 'null';
}

function canonical(value: unknown): string | undefined {
  let v = value;
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    v = (v as { toJSON(): unknown }).toJSON();
  }
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? JSON.stringify(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      throw new TypeError('canonicalJson: a bigint has no JSON form');
    case 'object':
      break;
    default:
      return undefined;
  }
  if (Array.isArray(v)) return `[${v.map((item) => canonical(item) ?? 'null').join(',')}]`;
  const record = v as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const text = canonical(record[key]);
    if (text !== undefined) parts.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${parts.join(',')}}`;
}

/** An entry's hash: sha256 of the canonical JSON of every field but `hash` (ignored when present). */
export function auditHash(
  entry: Omit<AuditEntry, 'hash'> | Readonly<Record<string, unknown>>,
  sha256hex: Sha256Hex,
): string {
  const { hash: _ignored, ...rest } = entry as Record<string, unknown>;
  return sha256hex(canonicalJson(rest));
}

export type AuditChainResult =
  | { ok: true; count: number; head: { seq: number; hash: string } | null }
  | { ok: false; count: number; firstBroken: { seq: number; reason: string } };

/**
 * Checks entries given in stored order (ascending seq): each parses, seqs run 1, 2, 3… with
 * no gap or repeat, each prevHash is the previous entry's hash, and each hash matches the
 * entry's content. Stops at the first break, which is the lowest seq that is wrong. Hashes
 * are recomputed from the entries as given, so pass what was read, not a parsed copy.
 */
export function verifyAuditChain(entries: readonly unknown[], sha256hex: Sha256Hex): AuditChainResult {
  const count = entries.length;
  let prev: { seq: number; hash: string } | null = null;
  const broken = (seq: number, reason: string): AuditChainResult => ({
    ok: false,
    count,
    firstBroken: { seq, reason },
  });
  for (const raw of entries) {
    const expected = (prev?.seq ?? 0) + 1;
    const parsed = AuditEntry.safeParse(raw);
    if (!parsed.success) {
      const rawSeq = (raw as { seq?: unknown } | null)?.seq;
      const seq = Number.isSafeInteger(rawSeq) && (rawSeq as number) >= 1 ? (rawSeq as number) : expected;
      return broken(seq, `does not parse: ${describeIssue(parsed.error.issues[0])}`);
    }
    const entry = parsed.data;
    if (entry.seq < expected) {
      return broken(
        entry.seq,
        entry.seq === prev?.seq
          ? `entry ${entry.seq} appears twice`
          : `entry ${entry.seq} is out of order (it comes after entry ${prev?.seq})`,
      );
    }
    if (entry.seq > expected) {
      const missing =
        entry.seq - 1 === expected ? `entry ${expected} missing` : `entries ${expected}-${entry.seq - 1} missing`;
      return broken(expected, missing);
    }
    if (auditHash(raw as Record<string, unknown>, sha256hex) !== entry.hash) {
      return broken(entry.seq, 'hash does not match its content (edited?)');
    }
    const prevHash = prev?.hash ?? GENESIS_HASH;
    if (entry.prevHash !== prevHash) {
      return broken(
        entry.seq,
        prev
          ? `prevHash is not entry ${prev.seq}'s hash (one of the two was rewritten)`
          : 'prevHash of entry 1 is not the genesis hash (64 zeros)',
      );
    }
    prev = { seq: entry.seq, hash: entry.hash };
  }
  return { ok: true, count, head: prev };
}

function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'invalid';
  if (issue.code === 'unrecognized_keys') return `unexpected field ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  const field = issue.path.length ? issue.path.map(String).join('.') : 'the entry';
  return `field "${field}": ${issue.message}`;
}
