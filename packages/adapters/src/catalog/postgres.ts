// The catalog of distributed mode: the store's records as PostgreSQL tables, for the console
// and for SQL. The store stays the source of truth: every row is rebuilt from an object, and
// `lifeboat catalog sync` makes the tables match the store again.
import type { ObjectStore } from '@lifeboat/domain';
import { AuditEntry, LifeboatError, layout, parseAuditKey } from '@lifeboat/domain';
import pg from 'pg';
import { parseUrl } from '../database/postgres.js';
import { type AuditEventRow, type CatalogRecord, isCatalogKey, recordFromObject } from './records.js';

/** Migrations in order; each runs once, in a transaction, under an advisory lock. */
const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
CREATE TABLE lifeboat_backups (
  key text PRIMARY KEY,
  target text NOT NULL,
  backup_id text NOT NULL,
  created_at timestamptz NOT NULL,
  kind text NOT NULL,
  bytes bigint,
  encrypted boolean NOT NULL,
  verified_at timestamptz,
  verified_level text,
  verified_ok boolean,
  doc jsonb NOT NULL
);
CREATE UNIQUE INDEX lifeboat_backups_target_id ON lifeboat_backups (target, backup_id);
CREATE TABLE lifeboat_restores (
  key text PRIMARY KEY,
  target text NOT NULL,
  scenario text NOT NULL,
  outcome text NOT NULL,
  started_at timestamptz NOT NULL,
  backup_id text,
  to_ready_ms bigint,
  ready_to_trade boolean NOT NULL,
  doc jsonb NOT NULL
);
CREATE TABLE lifeboat_reconciliations (
  key text PRIMARY KEY,
  target text NOT NULL,
  at timestamptz NOT NULL,
  verdict text NOT NULL,
  ready_to_trade boolean NOT NULL,
  of_copy boolean NOT NULL,
  doc jsonb NOT NULL
);
CREATE TABLE lifeboat_drills (
  key text PRIMARY KEY,
  target text NOT NULL,
  drill_id text NOT NULL,
  drill text NOT NULL,
  started_at timestamptz NOT NULL,
  verdict text NOT NULL,
  rto_seconds double precision,
  rpo_seconds double precision,
  doc jsonb NOT NULL
);
CREATE TABLE lifeboat_audit_events (
  id text PRIMARY KEY,
  target text NOT NULL,
  at timestamptz NOT NULL,
  event text NOT NULL,
  detail text NOT NULL,
  source_key text NOT NULL
);
CREATE INDEX lifeboat_audit_events_target_at ON lifeboat_audit_events (target, at);`,
  },
  {
    version: 2,
    // The audit trail's mirror (docs/FORMAT.md §8): the columns are for SQL, `entry` is the
    // entry as stored, so verification can recompute its hash and check the columns against it.
    sql: `
CREATE TABLE lifeboat_audit_log (
  seq bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  target text,
  outcome text NOT NULL,
  details jsonb NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  entry jsonb NOT NULL
);
CREATE INDEX lifeboat_audit_log_at ON lifeboat_audit_log (at);
CREATE INDEX lifeboat_audit_log_target_at ON lifeboat_audit_log (target, at);`,
  },
];

/** The table each record kind lives in (verifications update their backup's row). */
const TABLES = {
  backup: 'lifeboat_backups',
  restore: 'lifeboat_restores',
  reconciliation: 'lifeboat_reconciliations',
  drill: 'lifeboat_drills',
} as const;

const MIGRATION_LOCK = 74_112_001;

export interface SyncResult {
  objects: number;
  rows: Record<keyof typeof TABLES | 'audit_events', number>;
  removed: number;
  /**
   * The audit trail: entries in the store, rows added for those the catalog lacked, and
   * entries left out because they do not parse as entries (`lifeboat audit verify` names them).
   */
  auditLog: { entries: number; added: number; skipped: number };
}

/** A row of lifeboat_audit_log: the columns, and the entry as stored. */
export interface AuditLogRow {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  outcome: string;
  details: unknown;
  prev_hash: string;
  hash: string;
  entry: unknown;
}

export class PostgresCatalog {
  readonly location: string;

  constructor(private readonly url: string) {
    this.location = parseUrl(url).safe;
  }

  async #with<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 10_000 });
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (err) {
      throw new LifeboatError(
        'DATABASE_ERROR',
        `the catalog database ${this.location} does not answer: ${(err as Error).message}`,
        {
          hint: 'check LIFEBOAT_CATALOG_URL',
          cause: err,
        },
      );
    }
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** Applies the migrations not applied yet; returns the versions it applied. */
  async migrate(): Promise<number[]> {
    return this.#with(async (c) => {
      await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      try {
        await c.query(
          'CREATE TABLE IF NOT EXISTS lifeboat_schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
        );
        const done = new Set(
          (await c.query<{ version: number }>('SELECT version FROM lifeboat_schema_migrations')).rows.map(
            (r) => r.version,
          ),
        );
        const applied: number[] = [];
        for (const m of MIGRATIONS) {
          if (done.has(m.version)) continue;
          await c.query('BEGIN');
          try {
            await c.query(m.sql);
            await c.query('INSERT INTO lifeboat_schema_migrations (version) VALUES ($1)', [m.version]);
            await c.query('COMMIT');
          } catch (err) {
            await c.query('ROLLBACK').catch(() => {});
            throw err;
          }
          applied.push(m.version);
        }
        return applied;
      } finally {
        await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
      }
    });
  }

  /** Reads one object of the store into the catalog (after it was written); other keys are ignored. */
  async ingest(store: ObjectStore, key: string): Promise<boolean> {
    if (!isCatalogKey(key)) return false;
    const record = recordFromObject(key, await store.getBytes(key));
    if (!record) return false;
    await this.#with((c) => upsert(c, record));
    return true;
  }

  /**
   * Makes the tables match the store's records for these targets: every record upserted, rows
   * of vanished objects removed; and adds the audit entries the catalog lacks (all targets').
   */
  async sync(store: ObjectStore, targets: readonly string[]): Promise<SyncResult> {
    const records: CatalogRecord[] = [];
    let objects = 0;
    for (const target of targets) {
      for await (const o of store.list(`${target}/`)) {
        if (!isCatalogKey(o.key)) continue;
        objects++;
        const record = recordFromObject(o.key, await store.getBytes(o.key));
        if (record) records.push(record);
      }
    }
    // Backups before their verifications, so a verification finds its row.
    records.sort((a, b) => (a.kind === 'verification' ? 1 : 0) - (b.kind === 'verification' ? 1 : 0));
    return this.#with(async (c) => {
      await c.query('BEGIN');
      let result: Omit<SyncResult, 'auditLog'>;
      try {
        const rows: SyncResult['rows'] = { backup: 0, restore: 0, reconciliation: 0, drill: 0, audit_events: 0 };
        const keys = new Set<string>();
        const eventIds = new Set<string>();
        for (const r of records) {
          await upsert(c, r);
          if (r.kind === 'verification') continue;
          keys.add(r.row.key);
          rows[r.kind]++;
          if ('events' in r) {
            for (const e of r.events) eventIds.add(e.id);
            rows.audit_events += r.events.length;
          }
        }
        let removed = 0;
        for (const table of Object.values(TABLES)) {
          const gone = await c.query(`DELETE FROM ${table} WHERE target = ANY($1) AND NOT (key = ANY($2))`, [
            [...targets],
            [...keys],
          ]);
          removed += gone.rowCount ?? 0;
        }
        const goneEvents = await c.query(
          'DELETE FROM lifeboat_audit_events WHERE target = ANY($1) AND NOT (id = ANY($2))',
          [[...targets], [...eventIds]],
        );
        removed += goneEvents.rowCount ?? 0;
        await c.query('COMMIT');
        result = { objects, rows, removed };
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
      return { ...result, auditLog: await copyMissingAudit(c, store) };
    });
  }

  /** Adds an audit entry as stored; false when a row of its seq exists already (that row is left as it is). */
  async appendAudit(entry: AuditEntry): Promise<boolean> {
    return this.#with((c) => insertAudit(c, entry));
  }

  /** Every row of the audit log, in seq order. */
  async auditEntries(): Promise<AuditLogRow[]> {
    return this.#with(async (c) => {
      const { rows } = await c.query<Omit<AuditLogRow, 'seq' | 'at'> & { seq: string; at: Date }>(
        `SELECT seq, at, actor, action, target, outcome, details, prev_hash, hash, entry
         FROM lifeboat_audit_log ORDER BY seq`,
      );
      return rows.map((r) => ({ ...r, seq: Number(r.seq), at: r.at.toISOString() }));
    });
  }

  /** Row counts per table, for a target (or all). */
  async counts(target?: string): Promise<Record<string, number>> {
    return this.#with(async (c) => {
      const out: Record<string, number> = {};
      for (const table of [...Object.values(TABLES), 'lifeboat_audit_events']) {
        const { rows } = await c.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${table}${target ? ' WHERE target = $1' : ''}`,
          target ? [target] : [],
        );
        out[table] = Number(rows[0]?.n ?? 0);
      }
      return out;
    });
  }
}

async function upsert(c: pg.Client, record: CatalogRecord): Promise<void> {
  if (record.kind === 'verification') {
    const v = record.row;
    // The newest verification of a backup is the one its row shows.
    await c.query(
      `UPDATE lifeboat_backups SET verified_at = $3, verified_level = $4, verified_ok = $5
       WHERE target = $1 AND backup_id = $2 AND (verified_at IS NULL OR verified_at <= $3)`,
      [v.target, v.backup_id, v.at, v.level, v.ok],
    );
    return;
  }
  const row = record.row as unknown as Record<string, unknown>;
  const table = TABLES[record.kind];
  const columns = Object.keys(row);
  const values = columns.map((k) => (k === 'doc' ? JSON.stringify(row[k]) : row[k]));
  const updates = columns.filter((k) => k !== 'key').map((k) => `${k} = excluded.${k}`);
  await c.query(
    `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})
     ON CONFLICT (key) DO UPDATE SET ${updates.join(', ')}`,
    values,
  );
  if ('events' in record) for (const e of record.events) await upsertEvent(c, e);
}

async function upsertEvent(c: pg.Client, e: AuditEventRow): Promise<void> {
  await c.query(
    `INSERT INTO lifeboat_audit_events (id, target, at, event, detail, source_key) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (id) DO UPDATE SET at = excluded.at, event = excluded.event, detail = excluded.detail`,
    [e.id, e.target, e.at, e.event, e.detail, e.source_key],
  );
}

/**
 * Adds the store's audit entries the catalog lacks. Only missing ones: a row that differs from
 * the store is evidence for `lifeboat audit verify`, so no row is rewritten or removed here.
 * Each insert stands alone (they are idempotent), so one entry the catalog refuses costs only itself.
 */
async function copyMissingAudit(c: pg.Client, store: ObjectStore): Promise<SyncResult['auditLog']> {
  const keys: Array<{ key: string; seq: number }> = [];
  for await (const o of store.list(layout.auditPrefix)) {
    const seq = parseAuditKey(o.key);
    if (seq !== null) keys.push({ key: o.key, seq });
  }
  const { rows } = await c.query<{ seq: string }>('SELECT seq FROM lifeboat_audit_log');
  const present = new Set(rows.map((r) => Number(r.seq)));
  let added = 0;
  let skipped = 0;
  for (const { key, seq } of keys) {
    if (present.has(seq)) continue;
    try {
      const parsed = AuditEntry.safeParse(JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8')));
      if (parsed.success && parsed.data.seq === seq && (await insertAudit(c, parsed.data))) added++;
      else skipped++;
    } catch {
      skipped++;
    }
  }
  return { entries: keys.length, added, skipped };
}

/** Inserts one audit entry, its columns taken from the entry; `entry` keeps it whole. */
async function insertAudit(c: pg.Client, entry: AuditEntry): Promise<boolean> {
  const result = await c.query(
    `INSERT INTO lifeboat_audit_log (seq, at, actor, action, target, outcome, details, prev_hash, hash, entry)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (seq) DO NOTHING`,
    [
      entry.seq,
      entry.at,
      entry.actor,
      entry.action,
      entry.target ?? null,
      entry.outcome,
      JSON.stringify(entry.details),
      entry.prevHash,
      entry.hash,
      JSON.stringify(entry),
    ],
  );
  return (result.rowCount ?? 0) > 0;
}

/** The catalog named by LIFEBOAT_CATALOG_URL, migrated; null when it is not set (embedded mode keeps the store alone). */
export async function openCatalogFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<PostgresCatalog | null> {
  const url = env.LIFEBOAT_CATALOG_URL;
  if (!url) return null;
  const catalog = new PostgresCatalog(url);
  await catalog.migrate();
  return catalog;
}

/**
 * Reads records just written into the catalog; a failure is logged, never fatal (the store
 * has the record, and `lifeboat catalog sync` repairs the tables).
 */
export async function ingestAll(
  catalog: PostgresCatalog | null,
  store: ObjectStore,
  keys: ReadonlyArray<string | null | undefined>,
  log: { warn(obj: object, msg?: string): void },
): Promise<void> {
  if (!catalog) return;
  for (const key of keys) {
    if (!key) continue;
    await catalog
      .ingest(store, key)
      .catch((err: Error) =>
        log.warn({ key, err: { message: err.message } }, 'catalog: record not ingested (run `lifeboat catalog sync`)'),
      );
  }
}
