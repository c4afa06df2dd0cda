// `lifeboat ship` as a real process beside a real writer: killed with SIGKILL mid-stream and
// started again, it takes up the stream where the store says it ends — the same generation,
// segments numbered on with no gap and none twice — and the stream restores the database
// and the append-only file exactly.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, loadConfig } from '@lifeboat/adapters';
import { listGenerations, listSegments, restoreSqliteFromStream, streamedFile } from '@lifeboat/backup';
import { LIFEBOAT_BIN, lifeboat, REPO_ROOT } from '@lifeboat/testkit';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 60_000 });

let dir: string;
let config: string;
const children: ChildProcess[] = [];

/** 100 orders a second, each one a transaction and a line in shadow_orders.jsonl, as a trading bot writes them. */
const WRITER = `
const Database = require('better-sqlite3');
const { appendFileSync } = require('node:fs');
const [db, log] = process.argv.slice(1);
const d = new Database(db);
d.pragma('journal_mode = WAL');
d.exec('CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, note TEXT NOT NULL)');
const insert = d.prepare('INSERT INTO orders (id, at, note) VALUES (?, ?, ?)');
let id = 0;
const timer = setInterval(() => {
  id++;
  insert.run(id, Date.now(), 'order ' + id + ' ' + 'x'.repeat(300));
  appendFileSync(log, JSON.stringify({ id, at: Date.now() }) + '\\n');
}, 10);
process.on('SIGTERM', () => { clearInterval(timer); d.close(); process.exit(0); });
`;

/** A shipper process, resolved once it says it ships (its signal handlers are in place by then). */
async function startShip(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [LIFEBOAT_BIN, 'ship', '--config', config, '--interval', '200'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (c) => {
      stderr += c;
      if (stderr.includes('shipping demo')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`lifeboat ship exited ${code}: ${stderr}`)));
  });
  return child;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Segments of the target's newest generation so far. */
async function segmentCount(): Promise<number> {
  const runtime = createRuntime(await loadConfig(config));
  const generation = (await listGenerations(runtime, 'demo')).at(-1);
  return generation ? (await listSegments(runtime, 'demo', generation.generation)).length : 0;
}

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-ship-cli-'));
  await mkdir(join(dir, 'target'));
  config = join(dir, 'lifeboat.yaml');
  await writeFile(
    config,
    'store: { type: fs, path: store }\ntargets:\n  demo:\n    root: target\n    database: { engine: sqlite, path: trading.db }\n',
  );
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('lifeboat ship', () => {
  it('killed with SIGKILL and started again, resumes with no gap and no segment twice; the stream restores exactly', async () => {
    const db = join(dir, 'target', 'trading.db');
    const log = join(dir, 'target', 'shadow_orders.jsonl');
    const writer = spawn(process.execPath, ['-e', WRITER, db, log], { cwd: REPO_ROOT, stdio: 'ignore' });
    children.push(writer);
    await sleep(500);

    const first = await startShip();
    await until('three segments', async () => (await segmentCount()) >= 3);
    await sleep(Math.random() * 300);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const shippedBefore = await segmentCount();
    const second = await startShip();
    await until('two more segments', async () => (await segmentCount()) >= shippedBefore + 2);
    writer.kill('SIGTERM');
    await new Promise((r) => writer.once('exit', r));
    second.kill('SIGTERM');
    const code = await new Promise((r) => second.once('exit', r));
    expect(code).toBe(0);

    const runtime = createRuntime(await loadConfig(config));
    const generations = await listGenerations(runtime, 'demo');
    expect(generations).toHaveLength(1);
    const segments = await listSegments(runtime, 'demo', (generations[0] as { generation: string }).generation);
    expect(segments.length).toBeGreaterThanOrEqual(shippedBefore + 2);
    expect(segments.map((s) => s.seq)).toEqual(segments.map((_, i) => i + 1));

    const restored = join(dir, 'restored.db');
    await restoreSqliteFromStream(runtime, 'demo', restored);
    const read = (path: string) => {
      const d = new Database(path, { readonly: true });
      try {
        return d.prepare('SELECT id, at, note FROM orders ORDER BY id').all();
      } finally {
        d.close();
      }
    };
    const live = read(db);
    expect(live.length).toBeGreaterThan(50);
    expect(read(restored)).toEqual(live);

    const file = await streamedFile(runtime, 'demo', 'shadow_orders.jsonl');
    expect(file?.content.toString('utf8')).toBe(readFileSync(log, 'utf8'));
  });

  it('--once ships one round and prints what it shipped', async () => {
    const run = await lifeboat(['ship', '--once', '--json', '--config', config]);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { streams: Array<{ stream: string; segments: number }> };
    expect(result.streams.map((s) => s.stream)).toEqual(['sqlite', 'files']);
    const bad = await lifeboat(['ship', '--once', '--interval', '5', '--config', config]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--interval is in milliseconds, at least 100');
  });
});
