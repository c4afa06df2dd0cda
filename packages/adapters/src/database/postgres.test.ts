// Behaviour of the PostgreSQL engine against a real server: dumps whose row counts are exact, also under concurrent inserts, and that restore.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateTarget } from '@lifeboat/demo-data';
import { LifeboatError, TARGET_TABLES } from '@lifeboat/domain';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabaseEngine } from './index.js';
import { PostgresEngine } from './postgres.js';

const run = promisify(execFile);
/** A server where this test may create and drop databases. */
const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const scratch = mkdtempSync(join(tmpdir(), 'lb-postgres-'));
const created: string[] = [];
let admin: pg.Client;
let counter = 0;
const freshDir = (): string => {
  const dir = join(scratch, `d${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

function urlFor(db: string, password?: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${db}`;
  if (password) u.password = password;
  return u.toString();
}

/** A new, empty database, dropped after the file's tests. */
async function freshDatabase(): Promise<{ name: string; url: string }> {
  const name = `lb_test_${randomBytes(6).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  created.push(name);
  return { name, url: urlFor(name) };
}

async function countTables(url: string): Promise<Record<string, number>> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const counts: Record<string, number> = {};
    for (const table of TARGET_TABLES) {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
      counts[table] = Number(rows[0]!.n);
    }
    return counts;
  } finally {
    await client.end();
  }
}

async function restore(file: string, url: string): Promise<void> {
  await run('pg_restore', ['--no-owner', '--no-privileges', '--exit-on-error', `--dbname=${url}`, file]);
}

beforeAll(async () => {
  admin = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (err) {
    // Never skip: a missing server is a broken test machine, and it says so.
    throw new Error(
      `PostgreSQL is not reachable at ${ADMIN_URL} (${(err as Error).message}); the PostgreSQL engine tests need a real server. ` +
        'Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or point TEST_POSTGRES_URL at one.',
    );
  }
});

afterAll(async () => {
  if (admin) {
    for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end().catch(() => {});
  }
  rmSync(scratch, { recursive: true, force: true });
});

describe('PostgresEngine', () => {
  it('dumps a generated database with exact row counts, and pg_restore lists the dump', async () => {
    const db = await freshDatabase();
    const target = await generateTarget(freshDir(), { sizeBytes: 512 * 1024, db: 'postgres', postgresUrl: db.url });
    const engine = new PostgresEngine(db.url);
    const out = freshDir();

    const snap = await engine.snapshot(out);

    expect(snap.name).toBe(`${db.name}.dump`);
    expect(snap.file).toBe(join(out, `${db.name}.dump`));
    expect(existsSync(snap.file)).toBe(true);
    expect(existsSync(`${snap.file}.partial`)).toBe(false);
    expect(snap.size).toBeGreaterThan(0);
    expect(snap.method).toBe('pg_dump-snapshot');
    expect(snap.position).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const { rows } = await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    expect(await snap.facts).toMatchObject({ engine: 'postgres', format: 'pg_dump-custom', version: rows[0]!.v });
    expect((await snap.facts).tables).toEqual(target.rowCounts);
    expect((await snap.facts).integrity.ok).toBe(true);
    expect((await snap.facts).integrity.detail).toMatch(/^pg_restore --list: \d+ TOC entries$/);

    const inspection = await engine.inspect(snap.file);
    expect(inspection.integrity).toEqual((await snap.facts).integrity);
    expect(inspection.tables).toBeUndefined();
  });

  it('writes a dump that restores into a fresh database with the same row counts', async () => {
    const db = await freshDatabase();
    const target = await generateTarget(freshDir(), {
      sizeBytes: 256 * 1024,
      seed: 2,
      db: 'postgres',
      postgresUrl: db.url,
    });
    const snap = await new PostgresEngine(db.url).snapshot(freshDir());

    const copy = await freshDatabase();
    await restore(snap.file, copy.url);

    expect(await countTables(copy.url)).toEqual(target.rowCounts);
  });

  it('holds exactly the rows it counted while another client keeps inserting', async () => {
    const db = await freshDatabase();
    const target = await generateTarget(freshDir(), {
      sizeBytes: 512 * 1024,
      seed: 3,
      db: 'postgres',
      postgresUrl: db.url,
    });
    const writer = new pg.Client(db.url);
    await writer.connect();
    let stop = false;
    let inserted = 0;
    // Each order and its fill commit together, as the trading system writes them.
    const writing = (async () => {
      while (!stop) {
        const n = ++inserted;
        const id = `writer_${String(n).padStart(9, '0')}`;
        await writer.query('BEGIN');
        await writer.query(
          `INSERT INTO orders (id, client_order_id, account, strategy, symbol, side, type, quantity, price, status, filled_quantity, mode, created_at, updated_at)
           VALUES ($1, $2, 'main', 'WRITER', 'BTC/USDT', 'buy', 'limit', 0.001, 110000, 'FILLED', 0.001, 'live', now(), now())`,
          [id, `SOFIA-WRITER-${n}`],
        );
        await writer.query(
          `INSERT INTO fills (trade_id, order_id, client_order_id, symbol, side, quantity, price, fee, fee_asset, timestamp)
           VALUES ($1, $2, $3, 'BTC/USDT', 'buy', 0.001, 110000, 0.11, 'USDT', now())`,
          [`writer_trd_${n}`, id, `SOFIA-WRITER-${n}`],
        );
        await writer.query('COMMIT');
      }
    })();
    try {
      while (inserted < 20) await new Promise((r) => setTimeout(r, 10));

      const snap = await new PostgresEngine(db.url).snapshot(freshDir());
      const atCut = inserted;
      // Keep writing a little after the cut, so the source moves past the snapshot.
      await new Promise((r) => setTimeout(r, 100));
      stop = true;
      await writing;

      const counted = (await snap.facts).tables;
      expect(counted.orders).toBeGreaterThan(target.rowCounts.orders!);
      expect(counted.orders).toBeLessThanOrEqual(target.rowCounts.orders! + atCut);
      expect(counted.fills! - target.rowCounts.fills!).toBe(counted.orders! - target.rowCounts.orders!);
      const live = await countTables(db.url);
      expect(live.orders).toBeGreaterThan(counted.orders!);

      const copy = await freshDatabase();
      await restore(snap.file, copy.url);
      expect(await countTables(copy.url)).toEqual(counted);
    } finally {
      stop = true;
      await writing.catch(() => {});
      await writer.end();
    }
  });

  it('keeps the password out of its location and its errors, and still connects with it', async () => {
    const db = await freshDatabase();
    await generateTarget(freshDir(), { sizeBytes: 64 * 1024, db: 'postgres', postgresUrl: db.url });
    const password = `pw-${randomBytes(8).toString('hex')}`;
    // The local server trusts local connections, so any password is accepted: enough to
    // follow where the password travels.
    const engine = new PostgresEngine(urlFor(db.name, password));
    expect(engine.location).toBe(urlFor(db.name));
    expect(engine.location).not.toContain(password);
    const snap = await engine.snapshot(freshDir());
    expect((await snap.facts).integrity.ok).toBe(true);

    const missing = new PostgresEngine(urlFor('lb_test_does_not_exist', password));
    const err = await missing.snapshot(freshDir()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err).toMatchObject({ code: 'DATABASE_ERROR' });
    expect((err as LifeboatError).message).toContain('lb_test_does_not_exist');
    expect((err as LifeboatError).message).not.toContain(password);
  });

  it('reports a file that is not a dump as failing pg_restore --list, and a missing one as an error', async () => {
    const engine = new PostgresEngine(ADMIN_URL);
    const file = join(freshDir(), 'trading.dump');
    writeFileSync(file, 'not a dump\n'.repeat(100));
    const inspection = await engine.inspect(file);
    expect(inspection.integrity.ok).toBe(false);
    expect(inspection.integrity.detail).toMatch(/pg_restore/);

    const err = await engine.inspect(join(freshDir(), 'missing.dump')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DATABASE_ERROR' });
  });

  it('takes its URL from the configured environment variable, and names the variable when it is unset', () => {
    const engine = createDatabaseEngine({ engine: 'postgres', urlEnv: 'SOFIA_DB_URL' }, '/srv/sofia', {
      SOFIA_DB_URL: 'postgres://sofia:s3cret@db.internal:5432/trading',
    });
    expect(engine.engine).toBe('postgres');
    expect(engine.location).toBe('postgres://sofia@db.internal:5432/trading');

    const direct = createDatabaseEngine(
      { engine: 'postgres', urlEnv: 'UNUSED', url: 'postgres://localhost/trading' },
      '/',
      {},
    );
    expect(direct.location).toBe('postgres://localhost/trading');

    const err = (() => {
      try {
        createDatabaseEngine({ engine: 'postgres', urlEnv: 'SOFIA_DB_URL' }, '/srv/sofia', {});
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err).toMatchObject({ code: 'INVALID_CONFIG' });
    expect((err as LifeboatError).message).toContain('SOFIA_DB_URL');
  });
});
