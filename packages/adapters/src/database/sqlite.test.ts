// Behaviour of the SQLite engine: one-step online snapshots of a live database, also while another process writes, and checks of snapshot files.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateTarget } from '@lifeboat/demo-data';
import { LifeboatError } from '@lifeboat/domain';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createDatabaseEngine } from './index.js';
import { SqliteEngine } from './sqlite.js';

const scratch = mkdtempSync(join(tmpdir(), 'lb-sqlite-'));
let counter = 0;
const freshDir = (): string => {
  const dir = join(scratch, `d${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function countOrders(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM orders').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** The SQLite header says 1 (rollback journal) or 2 (WAL) in bytes 18 and 19. */
function journalFormat(file: string): number {
  return readFileSync(file).subarray(18, 19)[0]!;
}

/**
 * A separate process that switches the database to WAL and commits an order with its fill,
 * one transaction at a time, numbered 1, 2, 3, … until it is killed.
 */
const WRITER = `
const Database = require(process.env.LB_BETTER_SQLITE3);
const db = new Database(process.env.LB_DB);
db.pragma('journal_mode = WAL');
db.pragma('busy_timeout = 10000');
const order = db.prepare("INSERT INTO orders (id, client_order_id, account, strategy, symbol, side, type, quantity, price, status, filled_quantity, mode, created_at, updated_at) VALUES (?, ?, 'main', 'WRITER', 'BTC/USDT', 'buy', 'limit', '0.00100000', '110000.00000000', 'FILLED', '0.00100000', 'live', ?, ?)");
const fill = db.prepare("INSERT INTO fills (trade_id, order_id, client_order_id, symbol, side, quantity, price, fee, fee_asset, timestamp) VALUES (?, ?, ?, 'BTC/USDT', 'buy', '0.00100000', '110000.00000000', '0.11000000', 'USDT', ?)");
const one = db.transaction((n) => {
  const id = 'writer_' + String(n).padStart(9, '0');
  const at = new Date().toISOString();
  order.run(id, 'SOFIA-WRITER-' + n, at, at);
  fill.run('writer_trd_' + n, id, 'SOFIA-WRITER-' + n, at);
});
let n = 0;
one(++n);
process.stdout.write('ready\\n');
for (;;) one(++n);
`;

function startWriter(file: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', WRITER], {
    env: { ...process.env, LB_DB: file, LB_BETTER_SQLITE3: createRequire(import.meta.url).resolve('better-sqlite3') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`the writer process exited early (code ${code}): ${stderr}`)));
  });
}

describe('SqliteEngine', () => {
  it('snapshots a generated target with its row counts, and the copy passes its integrity check', async () => {
    const target = await generateTarget(freshDir(), { sizeBytes: 1024 * 1024, seed: 5 });
    const engine = new SqliteEngine(join(target.dir, 'trading.db'));
    expect(engine.location).toBe(join(target.dir, 'trading.db'));
    const out = freshDir();

    const snap = await engine.snapshot(out);

    expect(snap.file).toBe(join(out, 'trading.db'));
    expect(snap.name).toBe('trading.db');
    expect(snap.size).toBe(statSync(snap.file).size);
    expect(snap.method).toBe('sqlite-backup-api');
    expect(await snap.facts).toMatchObject({
      engine: 'sqlite',
      format: 'sqlite',
      integrity: { ok: true, detail: 'ok' },
    });
    expect((await snap.facts).version).toMatch(/^3\.\d+\.\d+/);
    expect((await snap.facts).tables).toEqual(target.rowCounts);
    expect(await engine.inspect(snap.file)).toEqual({
      integrity: { ok: true, detail: 'ok' },
      tables: target.rowCounts,
    });
    expect(existsSync(`${snap.file}.partial`)).toBe(false);
  });

  it('completes a consistent snapshot while another process inserts orders continuously', async () => {
    const target = await generateTarget(freshDir(), { sizeBytes: 2 * 1024 * 1024, seed: 6 });
    const source = join(target.dir, 'trading.db');
    const before = target.rowCounts.orders!;
    await startWriter(source);
    // Let the WAL fill with commits the snapshot must either include whole or leave out.
    await new Promise((r) => setTimeout(r, 200));

    for (let round = 0; round < 3; round++) {
      const out = freshDir();
      const started = Date.now();
      const snap = await engine(source).snapshot(out);
      expect(Date.now() - started).toBeLessThan(10_000);

      expect((await snap.facts).integrity).toEqual({ ok: true, detail: 'ok' });
      const orders = (await snap.facts).tables.orders!;
      expect(orders).toBeGreaterThan(before);
      // Self-contained: a rollback-journal file, nothing beside it.
      expect(journalFormat(snap.file)).toBe(1);
      expect(existsSync(`${snap.file}-wal`)).toBe(false);
      expect(existsSync(`${snap.file}-shm`)).toBe(false);

      // A cut between two commits: the writer's orders form an unbroken prefix 1..k, each
      // with the fill committed in the same transaction.
      const db = new Database(snap.file, { readonly: true });
      try {
        const written = db.prepare("SELECT id FROM orders WHERE strategy = 'WRITER' ORDER BY id").all() as {
          id: string;
        }[];
        expect(written.length).toBe(orders - before);
        expect(written.at(-1)!.id).toBe(`writer_${String(written.length).padStart(9, '0')}`);
        const fills = db.prepare("SELECT count(*) AS n FROM fills WHERE trade_id LIKE 'writer_trd_%'").get() as {
          n: number;
        };
        expect(fills.n).toBe(written.length);
        expect((await snap.facts).tables.fills).toBe(target.rowCounts.fills! + written.length);
      } finally {
        db.close();
      }

      // The writer kept committing after the cut: the snapshot really ran under load.
      let live = countOrders(source);
      for (let i = 0; i < 50 && live <= orders; i++) {
        await new Promise((r) => setTimeout(r, 100));
        live = countOrders(source);
      }
      expect(live).toBeGreaterThan(orders);
    }
  });

  it('reports a copy with damaged pages as failing its integrity check', async () => {
    const target = await generateTarget(freshDir(), { sizeBytes: 1024 * 1024, seed: 8 });
    const damaged = join(freshDir(), 'trading.db');
    copyFileSync(join(target.dir, 'trading.db'), damaged);
    // Garbage over pages in the middle of the file; the header and schema on page 1 stay
    // readable, so this is a damaged database rather than no database at all.
    const size = statSync(damaged).size;
    const fd = openSync(damaged, 'r+');
    try {
      const garbage = Buffer.alloc(16 * 4096);
      for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) & 0xff;
      writeSync(fd, garbage, 0, garbage.length, Math.floor(size / 2 / 4096) * 4096);
    } finally {
      closeSync(fd);
    }

    const inspection = await new SqliteEngine(damaged).inspect(damaged);

    expect(inspection.integrity.ok).toBe(false);
    expect(inspection.integrity.detail).not.toBe('ok');
    expect(inspection.integrity.detail.length).toBeGreaterThan(0);
  });

  it('refuses to inspect a file that is not a database, naming the file', async () => {
    const file = join(freshDir(), 'notes.db');
    writeFileSync(file, 'these are not the pages you are looking for\n'.repeat(200));
    const err = await new SqliteEngine(file).inspect(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err).toMatchObject({ code: 'DATABASE_ERROR' });
    expect((err as LifeboatError).message).toContain(file);

    // SQLite itself would open an empty file as a healthy, empty database.
    const empty = join(freshDir(), 'empty.db');
    writeFileSync(empty, '');
    await expect(new SqliteEngine(empty).inspect(empty)).rejects.toMatchObject({ code: 'DATABASE_ERROR' });
  });

  it('fails a snapshot of a missing database with DATABASE_ERROR and a hint', async () => {
    const missing = join(freshDir(), 'trading.db');
    const err = await new SqliteEngine(missing).snapshot(freshDir()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err).toMatchObject({ code: 'DATABASE_ERROR', message: `SQLite database ${missing} not found` });
    expect((err as LifeboatError).hint).toBeTruthy();
  });

  it('fails a snapshot of a file that is not a database, naming it', async () => {
    const file = join(freshDir(), 'trading.db');
    writeFileSync(file, 'x'.repeat(8192));
    const err = await new SqliteEngine(file).snapshot(freshDir()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DATABASE_ERROR' });
    expect((err as LifeboatError).message).toContain(file);
  });

  it('resolves a configured path against the target root', () => {
    const engine = createDatabaseEngine({ engine: 'sqlite', path: 'data/trading.db' }, '/srv/sofia');
    expect(engine.engine).toBe('sqlite');
    expect(engine.location).toBe('/srv/sofia/data/trading.db');
    expect(createDatabaseEngine({ engine: 'sqlite', path: '/var/lib/trading.db' }, '/srv/sofia').location).toBe(
      '/var/lib/trading.db',
    );
  });
});

const engine = (file: string): SqliteEngine => new SqliteEngine(file);
