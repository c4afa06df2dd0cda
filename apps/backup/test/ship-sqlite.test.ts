// Continuous replication of a SQLite database that is written to while it ships: the stream
// restored must equal the database (or, at a point in time, a prefix of what was written),
// across log restarts, and a damaged or missing segment must be refused.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, parseConfig, type Runtime } from '@lifeboat/adapters';
import {
  listGenerations,
  listSegments,
  pruneStreams,
  restoreSqliteFromStream,
  SqliteShipper,
  silentLogger,
} from '@lifeboat/backup';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
let runtime: Runtime;
let db: Database.Database;
const dbPath = () => join(dir, 'target', 'trading.db');

function rows(path: string): Array<{ id: number; at: number; note: string }> {
  const d = new Database(path, { readonly: true });
  try {
    expect(d.pragma('integrity_check', { simple: true })).toBe('ok');
    return d.prepare('SELECT id, at, note FROM orders ORDER BY id').all() as Array<{
      id: number;
      at: number;
      note: string;
    }>;
  } finally {
    d.close();
  }
}

/** The stream restored into a new file, read back. */
async function restoredRows(name: string) {
  await restoreSqliteFromStream(runtime, 'demo', join(dir, name));
  return rows(join(dir, name));
}

/** `n` orders, one transaction each, as a trading bot writes them. */
function write(n: number, start: number): void {
  const insert = db.prepare('INSERT INTO orders (id, at, note) VALUES (?, ?, ?)');
  for (let i = 0; i < n; i++) insert.run(start + i, Date.now(), `order ${start + i} ${'x'.repeat(200)}`);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-ship-sqlite-'));
  await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'target')));
  db = new Database(dbPath());
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, note TEXT NOT NULL)');
  runtime = createRuntime(
    parseConfig(
      { store: { type: 'fs', path: 'store' }, targets: { demo: { root: 'target' } } },
      join(dir, 'lifeboat.yaml'),
      dir,
    ),
  );
});

afterEach(async () => {
  db.close();
  await rm(dir, { recursive: true, force: true });
});

describe('SQLite continuous replication', () => {
  it('the restored stream equals the database, across log restarts', async () => {
    write(50, 1);
    // A small log limit: the shipper checkpoints (and SQLite restarts the log) many times.
    const shipper = new SqliteShipper({
      runtime,
      target: 'demo',
      path: dbPath(),
      log: silentLogger,
      checkpointBytes: 64 << 10,
    });
    await shipper.start();
    let next = 51;
    for (let round = 0; round < 30; round++) {
      write(20, next);
      next += 20;
      await shipper.tick();
    }
    await shipper.tick();
    await shipper.stop();
    expect(shipper.stats.segments).toBeGreaterThan(10);

    const restored = join(dir, 'restored.db');
    const result = await restoreSqliteFromStream(runtime, 'demo', restored);
    expect(result.segments).toBe(shipper.stats.segments);
    expect(rows(restored)).toEqual(rows(dbPath()));
    expect(rows(restored)).toHaveLength(next - 1);
  });

  it('restores to a point in time: exactly the orders committed before it, a prefix with no gap', async () => {
    const shipper = new SqliteShipper({
      runtime,
      target: 'demo',
      path: dbPath(),
      log: silentLogger,
      checkpointBytes: 64 << 10,
    });
    await shipper.start();
    const marks: Array<{ at: Date; count: number }> = [];
    let next = 1;
    for (let round = 0; round < 8; round++) {
      write(25, next);
      next += 25;
      await shipper.tick();
      marks.push({ at: shipper.stats.lastSegmentAt as Date, count: next - 1 });
      await new Promise((r) => setTimeout(r, 5));
    }
    await shipper.stop();
    const mark = marks[4] as { at: Date; count: number };
    const restored = join(dir, 'pit.db');
    const result = await restoreSqliteFromStream(runtime, 'demo', restored, { at: mark.at });
    expect(result.recoveredTo).toBe(mark.at.toISOString());
    expect(rows(restored).map((r) => r.id)).toEqual(Array.from({ length: mark.count }, (_, i) => i + 1));
  });

  it('refuses a stream with a missing segment, naming the gap', async () => {
    const shipper = new SqliteShipper({ runtime, target: 'demo', path: dbPath(), log: silentLogger });
    await shipper.start();
    for (let round = 0; round < 4; round++) {
      write(10, round * 10 + 1);
      await shipper.tick();
    }
    await shipper.stop();
    const generation = shipper.stats.generation as string;
    const segments = await listSegments(runtime, 'demo', generation);
    await runtime.store.delete((segments[2] as { key: string }).key);
    await expect(restoreSqliteFromStream(runtime, 'demo', join(dir, 'gap.db'))).rejects.toThrow(
      /segment 4: expected segment 3: the stream has a gap/,
    );
  });

  it('a shipper started again takes up where the stream ends: no gap, no segment twice', async () => {
    const first = new SqliteShipper({ runtime, target: 'demo', path: dbPath(), log: silentLogger });
    await first.start();
    write(30, 1);
    await first.tick();
    await first.stop();
    write(30, 31);
    const second = new SqliteShipper({ runtime, target: 'demo', path: dbPath(), log: silentLogger });
    await second.start();
    expect(second.stats.generation).toBe(first.stats.generation);
    await second.tick();
    await second.stop();
    const segments = await listSegments(runtime, 'demo', first.stats.generation as string);
    expect(segments.map((s) => s.seq)).toEqual([1, 2]);
    expect(await restoredRows('again.db')).toHaveLength(60);
  });

  it('a log that moved on while nobody held it starts a new generation', async () => {
    const first = new SqliteShipper({ runtime, target: 'demo', path: dbPath(), log: silentLogger });
    await first.start();
    write(10, 1);
    await first.tick();
    await first.stop();
    write(10, 11);
    db.pragma('wal_checkpoint(TRUNCATE)');
    write(10, 21);
    const second = new SqliteShipper({ runtime, target: 'demo', path: dbPath(), log: silentLogger });
    await second.start();
    expect(second.stats.generation).not.toBe(first.stats.generation);
    await second.tick();
    await second.stop();
    expect(await restoredRows('new.db')).toHaveLength(30);
  });

  it('retention keeps the generation a kept backup needs and deletes the ones that ended before it', async () => {
    const generations: string[] = [];
    for (let g = 0; g < 3; g++) {
      const shipper = new SqliteShipper({ runtime, target: 'demo', path: dbPath(), log: silentLogger });
      await shipper.start();
      write(10, g * 10 + 1);
      await shipper.tick();
      await shipper.stop();
      generations.push(shipper.stats.generation as string);
      // The log moves on while no shipper holds it: the next one starts a generation.
      db.pragma('wal_checkpoint(TRUNCATE)');
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(new Set(generations).size).toBe(3);
    const [, second, third] = await listGenerations(runtime, 'demo');
    // The oldest backup kept was taken while the second generation was current.
    const keepFrom = new Date(Date.parse(second?.createdAt as string) + 1);
    const dry = await pruneStreams(runtime, 'demo', keepFrom, { dryRun: true });
    expect(dry.generations).toEqual([generations[0]]);
    expect((await listGenerations(runtime, 'demo')).length).toBe(3);
    await pruneStreams(runtime, 'demo', keepFrom, { dryRun: false });
    expect((await listGenerations(runtime, 'demo')).map((g) => g.generation)).toEqual([
      second?.generation,
      third?.generation,
    ]);
    // And the newest is never deleted, however late the oldest kept backup.
    await pruneStreams(runtime, 'demo', new Date(Date.now() + 3600_000), { dryRun: false });
    expect((await listGenerations(runtime, 'demo')).map((g) => g.generation)).toEqual([third?.generation]);
    expect(await restoredRows('kept.db')).toHaveLength(30);
  });
});
