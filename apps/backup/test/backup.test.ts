import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  backup,
  extractBackup,
  listBackups,
  pruneBackups,
  readCatalog,
  readManifest,
  resolveBackupId,
  silentLogger,
  verifyBackup,
} from '../src/index.js';
import { type Fixture, fixture } from './helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let fx: Fixture | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
});

function allFiles(root: string, prefix = ''): string[] {
  if (!existsSync(join(root, prefix))) return [];
  return readdirSync(join(root, prefix), { withFileTypes: true }).flatMap((e) => {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    return e.isDirectory() ? allFiles(root, rel) : [rel];
  });
}

describe('backup of a SQLite target', () => {
  it('commits a manifest whose entries match the target and restore byte-identically', async () => {
    fx = await fixture({ encrypt: true });

    const result = await backup({ target: 'demo', reason: 'test' }, { runtime: fx.runtime, log: silentLogger });
    expect(result.encrypted).toBe(true);
    expect(result.omitted).toEqual([]);
    expect(result.verification).toBe('quick');

    const manifest = await readManifest(fx.runtime, 'demo', result.backupId);
    expect(manifest.backupId).toBe(result.backupId);
    expect(manifest.database?.integrity.ok).toBe(true);
    expect(manifest.database?.tables).toEqual(fx.target.rowCounts);
    const sources = manifest.entries.map((e) => e.source).sort();
    expect(sources).toEqual(fx.target.files.slice().sort());
    for (const e of manifest.entries.filter((x) => x.role !== 'database')) {
      expect(e.sha256).toBe(sha(readFileSync(join(fx.target.dir, e.source))));
    }
    expect(manifest.entries.find((e) => e.source === '.env')?.secret).toBe(true);

    const full = await verifyBackup(fx.runtime, 'demo', result.backupId, 'full', { log: silentLogger });
    expect(full.problems).toEqual([]);
    expect(full.ok).toBe(true);

    const out = join(fx.dir, 'restored');
    await extractBackup(fx.runtime, 'demo', result.backupId, out);
    expect(allFiles(out).sort()).toEqual(fx.target.files.slice().sort());
    for (const f of fx.target.files) {
      if (f === 'trading.db') continue;
      expect(sha(readFileSync(join(out, f))), f).toBe(sha(readFileSync(join(fx.target.dir, f))));
    }
    expect(statSync(join(out, '.env')).mode & 0o777).toBe(0o600);
    const db = new Database(join(out, 'trading.db'), { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    for (const [table, rows] of Object.entries(manifest.database?.tables ?? {})) {
      expect((db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n).toBe(rows);
    }
    db.close();

    const listed = await listBackups(fx.runtime, 'demo');
    expect(listed.map((b) => b.backupId)).toEqual([result.backupId]);
    expect(listed[0]?.verification).toMatchObject({ level: 'full', ok: true });
  });

  it('leaves secrets out without a recipient, says so, and stores none of their values', async () => {
    fx = await fixture();
    const result = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger });
    expect(result.encrypted).toBe(false);
    expect(result.omitted.map((o) => o.source).sort()).toEqual(['.env', '.env.testnet']);
    const manifest = await readManifest(fx.runtime, 'demo', result.backupId);
    expect(manifest.entries.some((e) => e.secret)).toBe(false);
    expect(manifest.omitted.every((o) => o.reason.includes('no encryption recipient'))).toBe(true);
    const store = join(fx.dir, 'store');
    const archive = readFileSync(join(store, manifest.archive.key));
    const everything = Buffer.concat([
      gunzipSync(archive),
      ...allFiles(store).map((f) => readFileSync(join(store, f))),
    ]);
    for (const value of Object.values(fx.target.secrets)) expect(everything.includes(Buffer.from(value))).toBe(false);
  });

  it('stores no secret value in plain text when encrypting', async () => {
    fx = await fixture({ encrypt: true });
    const result = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger });
    expect(result.encrypted).toBe(true);
    const storeRoot = fx.runtime.store.location.replace('file://', '');
    for (const f of allFiles(storeRoot)) {
      const bytes = readFileSync(join(storeRoot, f));
      for (const value of Object.values(fx.target.secrets)) expect(bytes.includes(Buffer.from(value)), f).toBe(false);
    }
  });
});

describe('consistency under load', () => {
  it('completes a backup while another process inserts orders, with a consistent database', async () => {
    fx = await fixture({ sizeBytes: 2 * 1024 * 1024 });
    const dbPath = join(fx.target.dir, 'trading.db');
    const before = fx.target.rowCounts.orders as number;
    // A separate process writes orders as fast as it can, in WAL mode, as a trading bot would.
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const D = require('better-sqlite3');
         const db = new D(${JSON.stringify(dbPath)});
         db.pragma('journal_mode = WAL');
         db.pragma('busy_timeout = 5000');
         const ins = db.prepare("INSERT INTO orders (id, client_order_id, exchange_order_id, account, strategy, symbol, side, type, quantity, price, status, filled_quantity, mode, created_at, updated_at) VALUES (?, ?, NULL, 'main', 'load', 'BTC/USDT', 'buy', 'limit', '0.01', '50000', 'NEW', '0', 'live', ?, ?)");
         let i = 0;
         process.stdout.write('ready\\n');
         for (;;) { const t = new Date().toISOString(); ins.run('load-' + i, 'SOFIA-load-' + Date.now() + '-' + i, t, t); i++; }`,
      ],
      { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        writer.stdout.once('data', () => resolve());
        writer.once('exit', (code) => reject(new Error(`writer exited with ${code}`)));
      });
      await new Promise((r) => setTimeout(r, 200));
      const result = await backup({ target: 'demo', kind: 'database' }, { runtime: fx.runtime, log: silentLogger });
      const manifest = await readManifest(fx.runtime, 'demo', result.backupId);
      expect(manifest.database?.integrity).toEqual({ ok: true, detail: 'ok' });
      expect(manifest.database?.tables.orders).toBeGreaterThan(before);
      const out = join(fx.dir, 'restored');
      await extractBackup(fx.runtime, 'demo', result.backupId, out);
      const db = new Database(join(out, 'trading.db'), { readonly: true });
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect((db.prepare('SELECT COUNT(*) AS n FROM orders').get() as { n: number }).n).toBe(
        manifest.database?.tables.orders,
      );
      db.close();
    } finally {
      writer.kill('SIGKILL');
    }
  });
});

describe('verification', () => {
  it('names the entry whose byte was flipped', async () => {
    fx = await fixture();
    const result = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger });
    const manifest = await readManifest(fx.runtime, 'demo', result.backupId);
    const archivePath = join(fx.dir, 'store', manifest.archive.key);
    // Flip one byte inside the kill-switch state entry, keeping tar and gzip framing valid.
    const tar = gunzipSync(readFileSync(archivePath));
    const at = tar.indexOf(Buffer.from('"state"'));
    expect(at).toBeGreaterThan(0);
    tar[at + 2] = (tar[at + 2] as number) ^ 0x01;
    await writeFile(archivePath, gzipSync(tar));
    const record = await verifyBackup(fx.runtime, 'demo', result.backupId, 'full', { log: silentLogger });
    expect(record.ok).toBe(false);
    expect(record.problems.some((p) => p.startsWith('entry state/kill_switch_state.json: sha256'))).toBe(true);
    const quick = await verifyBackup(fx.runtime, 'demo', result.backupId, 'quick', { log: silentLogger });
    expect(quick.ok).toBe(false);
    const listed = await listBackups(fx.runtime, 'demo');
    expect(listed[0]?.verification).toMatchObject({ ok: false });
  });

  it('names the entry being read when an encrypted archive is damaged', async () => {
    fx = await fixture({ encrypt: true, sizeBytes: 8 * 1024 * 1024 });
    const result = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger });
    const manifest = await readManifest(fx.runtime, 'demo', result.backupId);
    const archivePath = join(fx.dir, 'store', manifest.archive.key);
    const bytes = readFileSync(archivePath);
    const flip = Math.floor(bytes.length / 2);
    bytes[flip] = (bytes[flip] as number) ^ 0x40;
    await writeFile(archivePath, bytes);
    const record = await verifyBackup(fx.runtime, 'demo', result.backupId, 'full', { log: silentLogger });
    expect(record.ok).toBe(false);
    expect(record.problems.join('\n')).toMatch(/^entry database\/trading\.db: /m);
  });

  it('refuses to extract a damaged backup and writes nothing', async () => {
    fx = await fixture();
    const result = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger });
    const manifest = await readManifest(fx.runtime, 'demo', result.backupId);
    const archivePath = join(fx.dir, 'store', manifest.archive.key);
    const tar = gunzipSync(readFileSync(archivePath));
    const at = tar.indexOf(Buffer.from('"state"')) + 2;
    tar[at] = (tar[at] as number) ^ 0x01;
    await writeFile(archivePath, gzipSync(tar));
    const out = join(fx.dir, 'restored');
    await expect(extractBackup(fx.runtime, 'demo', result.backupId, out)).rejects.toMatchObject({
      code: 'VERIFY_FAILED',
    });
    expect(readdirSync(fx.dir).filter((f) => f.includes('restored'))).toEqual([]);
  });
});

describe('requests and the catalog', () => {
  it('fails at once on a payload that does not parse, naming the field', async () => {
    fx = await fixture();
    await expect(
      backup({ target: 'demo', kind: 'everything' }, { runtime: fx.runtime, log: silentLogger }),
    ).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      retryable: false,
      message: expect.stringContaining('kind'),
    });
    await expect(backup({ target: 'nope' }, { runtime: fx.runtime, log: silentLogger })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('makes one backup per scheduled slot', async () => {
    fx = await fixture();
    const slot = '2025-11-25T02:00:00.000Z';
    const a = await backup({ target: 'demo', scheduledAt: slot }, { runtime: fx.runtime, log: silentLogger });
    const b = await backup({ target: 'demo', scheduledAt: slot }, { runtime: fx.runtime, log: silentLogger });
    expect(b.backupId).toBe(a.backupId);
    expect(b.deduplicated).toBe(true);
    expect(await listBackups(fx.runtime, 'demo')).toHaveLength(1);
  });

  it('prunes by GFS rules and never deletes the newest verified backup', async () => {
    fx = await fixture({ config: { retention: { keepDaily: 2 }, backup: { verifyAfter: 'none' } } });
    const days = ['2025-11-01T02:00:00Z', '2025-11-02T02:00:00Z', '2025-11-03T02:00:00Z', '2025-11-04T02:00:00Z'];
    const ids: string[] = [];
    for (const d of days) {
      const r = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger, now: () => new Date(d) });
      ids.push(r.backupId);
    }
    // Only the oldest was ever verified: it must survive although no daily rule keeps it.
    await verifyBackup(fx.runtime, 'demo', ids[0] as string, 'quick', { log: silentLogger });
    const dry = await pruneBackups(fx.runtime, 'demo', {
      dryRun: true,
      log: silentLogger,
      now: new Date('2025-11-05T00:00:00Z'),
    });
    expect(dry.plan.delete.map((d) => d.backupId)).toEqual([ids[1]]);
    expect(dry.plan.keep.find((k) => k.backupId === ids[0])?.reasons).toContain('newest verified backup');
    expect(await listBackups(fx.runtime, 'demo')).toHaveLength(4);
    await pruneBackups(fx.runtime, 'demo', { dryRun: false, log: silentLogger, now: new Date('2025-11-05T00:00:00Z') });
    expect((await listBackups(fx.runtime, 'demo')).map((b) => b.backupId)).toEqual([ids[0], ids[2], ids[3]]);
    const left = allFiles(join(fx.dir, 'store')).filter((f) => f.includes(ids[1] as string));
    expect(left).toEqual([]);
  });

  it('leaves nothing that looks like a backup when the archive cannot be written', async () => {
    fx = await fixture();
    const controller = new AbortController();
    controller.abort();
    await expect(
      backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger, signal: controller.signal }),
    ).rejects.toThrow();
    expect(await listBackups(fx.runtime, 'demo')).toEqual([]);
    const stored = allFiles(join(fx.dir, 'store')).filter((f) => !f.startsWith('.incomplete'));
    expect(stored).toEqual([]);
  });
});

describe('what the target throws at a backup', () => {
  it('never keeps a torn copy of a state file rewritten in place during the backup', async () => {
    fx = await fixture();
    const state = join(fx.target.dir, 'kill_switch_state.json');
    // A writer that truncates and rewrites the file, as `json.dump(open(p, 'w'))` does.
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('fs');
         const events = Array.from({ length: 3000 }, (_, i) => ({ trigger: 'manual', reason: 'drill ' + i, timestamp: new Date().toISOString(), metadata: {}, activated: i % 2 === 0 }));
         const body = JSON.stringify({ state: 'ON', events, last_updated: new Date().toISOString() });
         process.stdout.write('ready\\n');
         for (;;) { const fd = fs.openSync(${JSON.stringify(state)}, 'w'); for (let i = 0; i < body.length; i += 4096) fs.writeSync(fd, body.slice(i, i + 4096)); fs.closeSync(fd); }`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve) => writer.stdout.once('data', () => resolve()));
      for (let i = 0; i < 6; i++) {
        const r = await backup({ target: 'demo', kind: 'state' }, { runtime: fx.runtime, log: silentLogger });
        const record = await verifyBackup(fx.runtime, 'demo', r.backupId, 'full', { log: silentLogger });
        // Either the copy is whole (it parses) or the backup says plainly that it could not get one.
        if (!record.ok) expect(r.warnings.join('\n')).toContain('kill_switch_state.json');
        else expect(record.problems).toEqual([]);
      }
    } finally {
      writer.kill('SIGKILL');
    }
  });

  it('backs up more files than the process may hold open at once', async () => {
    fx = await fixture({ config: { backup: { verifyAfter: 'none' } } });
    await mkdir(join(fx.target.dir, 'reports', 'many'), { recursive: true });
    for (let i = 0; i < 400; i++) await writeFile(join(fx.target.dir, 'reports', 'many', `r${i}.json`), `{"n":${i}}`);
    const cli = join(import.meta.dirname, '..', '..', 'cli', 'bin', 'lifeboat.js');
    await writeFile(
      join(fx.dir, 'lifeboat.yaml'),
      'store:\n  type: fs\n  path: store\ntargets:\n  demo:\n    root: target\n',
    );
    const r = spawnSync(
      'bash',
      ['-c', `ulimit -n 128 && exec "${process.execPath}" "${cli}" backup --json --config lifeboat.yaml`],
      {
        cwd: fx.dir,
        encoding: 'utf8',
        env: { ...process.env, LIFEBOAT_REDIS_URL: '' },
      },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).entries).toBeGreaterThan(400);
  });

  it('keeps two files whose names differ only by the role folder apart', async () => {
    fx = await fixture({
      encrypt: true,
      config: { targets: { demo: { root: 'target', files: { state: ['kill_switch_state.json', 'state/**'] } } } },
    });
    await mkdir(join(fx.target.dir, 'state'));
    await writeFile(join(fx.target.dir, 'state', 'kill_switch_state.json'), '{"state":"AUTO"}');
    const r = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger });
    const record = await verifyBackup(fx.runtime, 'demo', r.backupId, 'full', { log: silentLogger });
    expect(record.problems).toEqual([]);
    const out = join(fx.dir, 'restored');
    await extractBackup(fx.runtime, 'demo', r.backupId, out);
    expect(readFileSync(join(out, 'state', 'kill_switch_state.json'), 'utf8')).toBe('{"state":"AUTO"}');
    expect(readFileSync(join(out, 'kill_switch_state.json'), 'utf8')).toBe(
      readFileSync(join(fx.target.dir, 'kill_switch_state.json'), 'utf8'),
    );
  });

  it('accepts a database path written as ./trading.db', async () => {
    fx = await fixture({
      config: { targets: { demo: { root: 'target', database: { engine: 'sqlite', path: './trading.db' } } } },
    });
    const r = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger });
    const manifest = await readManifest(fx.runtime, 'demo', r.backupId);
    expect(manifest.entries.find((e) => e.role === 'database')?.source).toBe('trading.db');
    expect(manifest.entries.filter((e) => e.source === 'trading.db')).toHaveLength(1);
  });

  it('names a symbolic link it did not follow', async () => {
    fx = await fixture();
    await symlink(join(fx.target.dir, 'logs'), join(fx.target.dir, 'logs-link'));
    await rm(join(fx.target.dir, 'reports'), { recursive: true });
    await symlink(join(fx.dir), join(fx.target.dir, 'reports'));
    const r = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger });
    const manifest = await readManifest(fx.runtime, 'demo', r.backupId);
    expect(manifest.omitted).toContainEqual({
      source: 'reports',
      role: 'reports',
      reason: 'symbolic link (not followed)',
    });
  });

  it('refuses a database backup of a target without a database', async () => {
    fx = await fixture({ config: { targets: { demo: { root: 'target', database: null } } } });
    await expect(
      backup({ target: 'demo', kind: 'database' }, { runtime: fx.runtime, log: silentLogger }),
    ).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
    });
    const r = await backup({ target: 'demo' }, { runtime: fx.runtime, log: silentLogger });
    expect((await readManifest(fx.runtime, 'demo', r.backupId)).database).toBeNull();
  });
});

describe('the catalog under damage', () => {
  it('treats one slot written two ways as the same slot', async () => {
    fx = await fixture();
    const a = await backup(
      { target: 'demo', scheduledAt: '2025-11-25T02:00:00Z' },
      { runtime: fx.runtime, log: silentLogger },
    );
    const b = await backup(
      { target: 'demo', scheduledAt: '2025-11-25T04:00:00.000+02:00' },
      { runtime: fx.runtime, log: silentLogger },
    );
    expect(b.backupId).toBe(a.backupId);
  });

  it('lists around a manifest that does not read, and "latest" skips a backup that failed verification', async () => {
    fx = await fixture();
    const good = await backup(
      { target: 'demo' },
      { runtime: fx.runtime, log: silentLogger, now: () => new Date('2025-11-01T00:00:00Z') },
    );
    const bad = await backup(
      { target: 'demo' },
      { runtime: fx.runtime, log: silentLogger, now: () => new Date('2025-11-02T00:00:00Z') },
    );
    const broken = await backup(
      { target: 'demo' },
      { runtime: fx.runtime, log: silentLogger, now: () => new Date('2025-11-03T00:00:00Z') },
    );
    await writeFile(join(fx.dir, 'store', 'demo', 'backups', broken.backupId, 'manifest.json'), '{"format":');
    const archive = join(fx.dir, 'store', (await readManifest(fx.runtime, 'demo', bad.backupId)).archive.key);
    await writeFile(archive, Buffer.concat([readFileSync(archive), Buffer.from('x')]));
    await verifyBackup(fx.runtime, 'demo', bad.backupId, 'quick', { log: silentLogger });

    const catalog = await readCatalog(fx.runtime, 'demo');
    expect(catalog.backups.map((b) => b.backupId)).toEqual([good.backupId, bad.backupId]);
    expect(catalog.unreadable).toEqual([
      { backupId: broken.backupId, problem: expect.stringContaining('not a valid Lifeboat manifest') },
    ]);
    expect(await resolveBackupId(fx.runtime, 'demo', 'latest')).toBe(good.backupId);
  });
});
