// The audit trail's pure rules: canonical JSON, entry hashes, and what chain verification
// finds when an entry is edited, removed, repeated or rechained.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  AuditEntry,
  AuditEvent,
  auditHash,
  canonicalJson,
  GENESIS_HASH,
  type Sha256Hex,
  verifyAuditChain,
} from './audit.js';
import { layout, parseAuditKey } from './layout.js';

const sha256hex: Sha256Hex = (s) => createHash('sha256').update(s, 'utf8').digest('hex');

/** A valid chain of n entries, as plain objects (what a store would hold). */
function chain(n: number): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  let prevHash = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const body = {
      seq,
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
      actor: 'restore-worker',
      action: seq % 2 ? 'backup.completed' : 'kill_switch.activate',
      ...(seq % 3 ? { target: 'demo' } : {}),
      outcome: 'ok',
      details: { n: seq, nested: { b: 2, a: [1, { y: true, x: null }] } },
      prevHash,
    };
    const hash = auditHash(body, sha256hex);
    out.push({ ...body, hash });
    prevHash = hash;
  }
  return out;
}

/** Recomputes an entry's hash after an edit, as a careful forger would. */
function rehash(entry: Record<string, unknown>): Record<string, unknown> {
  return { ...entry, hash: auditHash(entry, sha256hex) };
}

describe('canonical JSON', () => {
  it('sorts keys at every depth, drops undefined keys and has no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { f: 1, e: undefined }], c: 'x' }, z: undefined })).toBe(
      '{"a":{"c":"x","d":[3,{"f":1}]},"b":1}',
    );
  });

  it('gives the same text whatever order the keys were written in', () => {
    expect(canonicalJson({ x: 1, y: { q: 2, p: 3 } })).toBe(canonicalJson({ y: { p: 3, q: 2 }, x: 1 }));
  });

  it('writes what JSON.stringify writes for scalars, dates and holes', () => {
    expect(canonicalJson(['a"b', 1.5, -0, true, null, undefined, Number.NaN])).toBe(
      '["a\\"b",1.5,0,true,null,null,null]',
    );
    expect(canonicalJson(new Date('2026-01-01T00:00:00Z'))).toBe('"2026-01-01T00:00:00.000Z"');
    expect(canonicalJson(undefined)).toBe('null');
  });
});

describe('audit entries', () => {
  it('default an event to outcome ok and no details', () => {
    expect(AuditEvent.parse({ actor: 'ops', action: 'backup.completed' })).toEqual({
      actor: 'ops',
      action: 'backup.completed',
      outcome: 'ok',
      details: {},
    });
    expect(AuditEvent.safeParse({ actor: '', action: 'x' }).success).toBe(false);
    expect(AuditEvent.safeParse({ actor: 'ops', action: 'x', outcome: 'maybe' }).success).toBe(false);
  });

  it('hash every field but the hash itself, in any key order', () => {
    const [entry] = chain(1) as [Record<string, unknown>];
    expect(AuditEntry.parse(entry)).toEqual(entry);
    const reordered = Object.fromEntries(Object.entries(entry).reverse());
    expect(auditHash(reordered, sha256hex)).toBe(entry.hash);
    expect(auditHash({ ...entry, actor: 'someone else' }, sha256hex)).not.toBe(entry.hash);
  });

  it('are kept one per key, in seq order', () => {
    expect(layout.auditEntry(42)).toBe('_lifeboat/audit/000000000042.json');
    expect(parseAuditKey(layout.auditEntry(42))).toBe(42);
    expect(parseAuditKey(layout.auditHead)).toBeNull();
    expect(layout.auditEntry(9) < layout.auditEntry(10)).toBe(true);
  });
});

describe('verifying an audit chain', () => {
  it('accepts an intact chain and names its head, and an empty one', () => {
    const entries = chain(6);
    expect(verifyAuditChain(entries, sha256hex)).toEqual({
      ok: true,
      count: 6,
      head: { seq: 6, hash: entries[5]?.hash },
    });
    expect(verifyAuditChain([], sha256hex)).toEqual({ ok: true, count: 0, head: null });
  });

  it('names an edited entry by its recomputed hash', () => {
    const entries = chain(6);
    entries[3] = { ...entries[3], details: { n: 4, nested: 'changed' } };
    expect(verifyAuditChain(entries, sha256hex)).toEqual({
      ok: false,
      count: 6,
      firstBroken: { seq: 4, reason: 'hash does not match its content (edited?)' },
    });
  });

  it('finds an edit whose hash was recomputed, at the next link', () => {
    const entries = chain(6);
    entries[3] = rehash({ ...entries[3], actor: 'intruder' });
    const result = verifyAuditChain(entries, sha256hex);
    expect(result).toMatchObject({ ok: false, firstBroken: { seq: 5 } });
    expect(!result.ok && result.firstBroken.reason).toContain("prevHash is not entry 4's hash");
  });

  it('names a removed entry, and a run of them', () => {
    const entries = chain(8);
    expect(verifyAuditChain([...entries.slice(0, 4), ...entries.slice(5)], sha256hex)).toMatchObject({
      ok: false,
      count: 7,
      firstBroken: { seq: 5, reason: 'entry 5 missing' },
    });
    expect(verifyAuditChain([...entries.slice(0, 2), ...entries.slice(5)], sha256hex)).toMatchObject({
      firstBroken: { seq: 3, reason: 'entries 3-5 missing' },
    });
    expect(verifyAuditChain(entries.slice(1), sha256hex)).toMatchObject({
      firstBroken: { seq: 1, reason: 'entry 1 missing' },
    });
  });

  it('names an entry that appears twice', () => {
    const entries = chain(8);
    const twice = [...entries.slice(0, 7), entries[6], entries[7]];
    expect(verifyAuditChain(twice, sha256hex)).toMatchObject({
      ok: false,
      firstBroken: { seq: 7, reason: 'entry 7 appears twice' },
    });
  });

  it('names the field of an entry that does not parse', () => {
    const entries = chain(5);
    entries[2] = { ...entries[2], outcome: 'maybe' };
    const result = verifyAuditChain(entries, sha256hex);
    expect(result).toMatchObject({ ok: false, firstBroken: { seq: 3 } });
    expect(!result.ok && result.firstBroken.reason).toMatch(/^does not parse: field "outcome"/);

    const extra = chain(2);
    extra[1] = { ...extra[1], note: 'added later' };
    expect(verifyAuditChain(extra, sha256hex)).toMatchObject({
      firstBroken: { seq: 2, reason: 'does not parse: unexpected field "note"' },
    });

    const noSeq = chain(3);
    const { seq: _seq, ...rest } = noSeq[1] as Record<string, unknown>;
    noSeq[1] = rest;
    expect(verifyAuditChain(noSeq, sha256hex)).toMatchObject({
      firstBroken: {
        seq: 2,
        reason: 'does not parse: field "seq": Invalid input: expected number, received undefined',
      },
    });
  });

  it('refuses a first entry not chained to the genesis hash', () => {
    const [first] = chain(1) as [Record<string, unknown>];
    const result = verifyAuditChain([rehash({ ...first, prevHash: 'f'.repeat(64) })], sha256hex);
    expect(result).toMatchObject({ ok: false, firstBroken: { seq: 1 } });
    expect(!result.ok && result.firstBroken.reason).toContain('genesis');
  });

  it('reports the lowest broken seq when there are several breaks', () => {
    const entries = chain(10);
    entries[8] = { ...entries[8], actor: 'x' };
    entries[2] = { ...entries[2], actor: 'y' };
    expect(verifyAuditChain(entries, sha256hex)).toMatchObject({ firstBroken: { seq: 3 } });
  });
});
