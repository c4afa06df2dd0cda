import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, open, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BullMqJobBus } from '@lifeboat/adapters';
import { type BackupResult, drillSchedules, type Manifest, type RestoreResult } from '@lifeboat/domain';
import {
  checksums,
  type DemoTarget,
  generateTarget,
  getTestStack,
  initDemo,
  lifeboat,
  startWorker,
  type TestStack,
  uniqueName,
} from '@lifeboat/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { appMain, exec, type LoggedProcess, runLogged, scratchDir, sleep, stop, track } from './harness.js';
import { Tally, trials } from './record.js';

// Whole restores and lease expiries with real processes: minutes in full, not seconds.
vi.setConfig({ testTimeout: 900_000, hookTimeout: 300_000 });

/** The drill-scheduler's leader lease without renewal (apps/drill-scheduler: LEASE_MS). */
const LEADER_LEASE_MS = 30_000;
/** How often the drill-schedulers look for the lease here (LIFEBOAT_SCHEDULER_TICK_MS). */
const TICK_MS = 200;

let stack: TestStack;

beforeAll(async () => {
  stack = await getTestStack();
});

const runApp = (app: 'backup' | 'drill-scheduler', args: string[], env: NodeJS.ProcessEnv) =>
  runLogged([appMain(app), ...args], env);

describe.concurrent('two restores of one target at once', () => {
  let dir: string;
  let demo: DemoTarget;
  let root: string;
  let store: string;
  let env: NodeJS.ProcessEnv;
  let bus: BullMqJobBus;
  let manifest: Manifest;
  let damagedDb: string;
  const KS = 'kill_switch_state.json';
  const pidFile = () => join(dir, 'demo', 'run', 'paper-trader.pid');

  beforeAll(async () => {
    dir = await scratchDir('lifeboat-fault-concurrency-');
    demo = await initDemo(join(dir, 'demo'));
    root = join(dir, 'demo', 'target');
    store = join(dir, 'demo', 'store');
    // Only the venue runs: each restore starts the trading system itself, in shadow mode.
    const venue = await lifeboat([
      'demo',
      'start',
      '--config',
      demo.config,
      '--detach',
      '--only',
      'exchange',
      '--exchange-port',
      String(demo.exchangePort),
    ]);
    expect(venue.code, venue.stderr).toBe(0);
    const made = await lifeboat(['backup', '--config', demo.config, '--json']);
    expect(made.code, made.stderr).toBe(0);
    const backupId = (JSON.parse(made.stdout) as BackupResult).backupId;
    manifest = JSON.parse(readFileSync(join(store, 'demo', 'backups', backupId, 'manifest.json'), 'utf8')) as Manifest;
    // The trading system down with its database damaged (db-corruption).
    const db = await open(join(root, 'trading.db'), 'r+');
    await db.write(Buffer.alloc(8192, 0x5a), 0, 8192, 16_384);
    await db.close();
    await cp(root, join(dir, 'damaged'), { recursive: true });
    damagedDb = checksums(root)['trading.db'] as string;
    const prefix = uniqueName('lbfc');
    env = {
      ...process.env,
      LIFEBOAT_CONFIG: demo.config,
      LIFEBOAT_REDIS_URL: stack.redis.url,
      LIFEBOAT_QUEUE_PREFIX: prefix,
      LIFEBOAT_OPS_PORT: '0',
      LIFEBOAT_OPS_HOST: '127.0.0.1',
    };
    bus = new BullMqJobBus({ url: stack.redis.url, prefix });
    // Two restore workers on one queue: each takes one of a trial's two jobs.
    for (const { child } of await Promise.all([startWorker('restore', env), startWorker('restore', env)])) {
      track(child);
    }
  });

  afterAll(async () => {
    await bus?.close();
    await demo?.stop();
  });

  async function stopTrader(): Promise<void> {
    const r = await lifeboat(['demo', 'stop', '--only', 'paper-trader', '--config', demo.config]);
    if (r.code !== 0) throw new Error(`demo stop failed: ${r.stderr}`);
  }

  function traderRunning(): boolean {
    if (!existsSync(pidFile())) return false;
    try {
      process.kill(Number(readFileSync(pidFile(), 'utf8').trim()), 0);
      return true;
    } catch {
      return false;
    }
  }

  /** Production damaged again, as before the first trial, with nothing running on it. */
  async function reset(): Promise<void> {
    if (traderRunning()) await stopTrader();
    await rm(root, { recursive: true, force: true });
    await cp(join(dir, 'damaged'), root, { recursive: true });
  }

  /** The kill switch state file, sampled every 50 ms: the states it went through, in order. */
  function watchKillSwitch(): { stop: () => Promise<string[]> } {
    const seen: string[] = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        let state: string;
        try {
          state = (JSON.parse(readFileSync(join(root, KS), 'utf8')) as { state: string }).state;
        } catch (err) {
          state = `unreadable (${(err as NodeJS.ErrnoException).code ?? 'bad JSON'})`;
        }
        if (seen.at(-1) !== state) seen.push(state);
        await sleep(50);
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
        return seen;
      },
    };
  }

  const restoreRecords = () =>
    existsSync(join(store, 'demo', 'restores')) ? readdirSync(join(store, 'demo', 'restores')) : [];
  const stagings = () => readdirSync(dirname(root)).filter((n) => n.startsWith(`.${basename(root)}.lifeboat-restore-`));

  /** Two restores started together, by two CLI processes (embedded mode: the lock file) or as two jobs for two workers (the Redis lease). */
  async function pair(
    mode: 'cli' | 'workers',
    i: number,
  ): Promise<{ winner: RestoreResult | null; refusals: string[]; others: string[] }> {
    const refusals: string[] = [];
    const others: string[] = [];
    const results: RestoreResult[] = [];
    if (mode === 'cli') {
      const args = ['restore', '--config', demo.config, '--scenario', 'db-corruption', '--yes', '--json'];
      const runs = await Promise.all([lifeboat(args), lifeboat(args)]);
      for (const r of runs) {
        if (r.code === 0) results.push(JSON.parse(r.stdout) as RestoreResult);
        else if (r.code === 2 && /already running/.test(r.stderr)) refusals.push(r.stderr.trim());
        else others.push(`exit ${r.code}: ${r.stdout.slice(0, 300)} ${r.stderr.slice(-1000)}`);
      }
    } else {
      const request = {
        target: 'demo',
        scenario: 'db-corruption',
        destination: 'production',
        reconcile: false,
        reason: `fault trial ${i}`,
        requestedBy: 'faults',
      };
      // Enqueued as `lifeboat restore` does in distributed mode (the bus's default attempts).
      const jobs = ['a', 'b'].map((x) => `restore:demo:fault-pair-${i}-${x}`);
      await Promise.all(jobs.map((jobId) => bus.enqueue('restore', request, { jobId })));
      const settled = await Promise.allSettled(
        jobs.map((jobId) => bus.result('restore', jobId, { timeoutMs: 300_000 })),
      );
      for (const [k, s] of settled.entries()) {
        if (s.status === 'fulfilled') results.push(s.value as RestoreResult);
        else if (/already running/.test((s.reason as Error).message)) {
          refusals.push((s.reason as Error).message);
          // Refused once, never retried: a retry after the winner finished would restore twice.
          const { attemptsMade } = await bus.status('restore', jobs[k] as string);
          if (attemptsMade !== 1) others.push(`the refused job ran ${attemptsMade} attempts`);
        } else others.push((s.reason as Error).message);
      }
    }
    const [winner, ...more] = results;
    for (const r of more) others.push(`a second restore ran too: ${r.outcome}, token ${r.fencingToken}`);
    return { winner: winner ?? null, refusals, others };
  }

  it('exactly one runs, the other is refused naming the restore in progress; production restored once, kill switch ON throughout', async () => {
    const tally = new Tally();
    const n = trials(10, 2);
    for (let i = 1; i <= n; i++) {
      const mode = i % 2 === 1 ? 'cli' : 'workers';
      await reset();
      const records = restoreRecords().length;
      const ks = watchKillSwitch();
      const t0 = Date.now();
      const { winner, refusals, others } = await pair(mode, i);
      const took = Date.now() - t0;
      const states = await ks.stop();
      const problems: string[] = [...others];
      if (!winner) problems.push('no restore ran');
      if (refusals.length !== 1) problems.push(`${refusals.length} refusals`);
      const refusal = refusals[0] ?? '';
      if (winner) {
        if (winner.outcome !== 'COMPLETED')
          problems.push(`the restore ended ${winner.outcome}: ${winner.error?.message}`);
        // The refusal names the holder, and its token is the restore that ran.
        const holder =
          mode === 'cli'
            ? /held by lifeboat restore \(cli, pid \d+/
            : /held by restore worker \S+ job restore:demo:fault-pair-/;
        if (!holder.test(refusal)) problems.push(`the refusal does not name the holder: ${refusal}`);
        if (!refusal.includes(`(token ${winner.fencingToken})`))
          problems.push(`the refusal names another token than ${winner.fencingToken}: ${refusal}`);
        const restored = winner.steps.find((s) => s.name === 'restore-database')?.evidence.tables;
        if (JSON.stringify(restored) !== JSON.stringify(manifest.database?.tables)) {
          problems.push(
            `restored tables ${JSON.stringify(restored)}, the backup has ${JSON.stringify(manifest.database?.tables)}`,
          );
        }
      }
      // Production: the database sound, the damaged one kept aside once, one restore recorded.
      const now = checksums(root);
      const aside = Object.keys(now).filter((k) => /^trading\.db\.corrupted-[0-9TZ]+$/.test(k));
      if (aside.length !== 1 || now[aside[0] as string] !== damagedDb)
        problems.push(`moved aside: ${aside.join(', ') || 'nothing'}`);
      const { stdout } = await exec('sqlite3', ['-readonly', join(root, 'trading.db'), 'PRAGMA integrity_check;']);
      if (stdout.trim() !== 'ok') problems.push(`trading.db: ${stdout.trim().slice(0, 200)}`);
      const recorded = restoreRecords().length - records;
      if (recorded !== 1) problems.push(`${recorded} restore records`);
      if (stagings().length) problems.push(`staging left: ${stagings().join(', ')}`);
      // Once ON, the kill switch never went back.
      const firstOn = states.indexOf('ON');
      if (firstOn < 0 || states.slice(firstOn).some((s) => s !== 'ON'))
        problems.push(`kill switch went ${states.join(' → ')}`);
      const outcome =
        mode === 'cli'
          ? 'two CLI processes: one restored production, the other exited 2 "already running", naming it'
          : 'two jobs on two restore workers: one restored production, the other failed "already running", naming it, after one attempt';
      console.log(
        `restore pair trial ${i}/${n} (${mode}): ${took} ms; ran token ${winner?.fencingToken ?? '-'}; refused: ${refusal.split('\n')[0]?.slice(0, 220)}; ` +
          `kill switch ${states.join(' → ')}; moved aside ${aside.length}` +
          (problems.length ? `; PROBLEMS: ${problems.join('; ')}` : ''),
      );
      tally.add(problems.length ? `${outcome}, but ${problems.join('; ')}` : outcome, problems.length > 0);
    }
    tally.record(
      'concurrency',
      'two restores of one target at once',
      'two `lifeboat restore` processes (the lock file) or two jobs on two restore workers (the Redis lease), started together on a damaged production: one completes, the other is refused "already running" naming the holder and its fencing token (a job: failed after one attempt, not retried); the database restored (integrity ok, the backup’s row counts), the damaged one moved aside once, one restore record, no staging left; the kill switch, sampled every 50 ms, never leaves ON once ON',
    );
    expect(tally.lost).toBe(0);
  });
});

describe.concurrent('two drill-schedulers on one Redis prefix', () => {
  let dir: string;
  let redis: Redis;
  const expected = drillSchedules().length;

  beforeAll(async () => {
    dir = await scratchDir('lifeboat-fault-leader-');
    await generateTarget(join(dir, 'target'), { sizeBytes: 64 * 1024, seed: 5 });
    redis = new Redis(stack.redis.url);
  });

  afterAll(() => {
    redis?.disconnect();
  });

  interface Lease {
    holder: string;
    token: number;
  }

  /** One trial: both started at once, the leader SIGKILLed a moment later, the other takes over. */
  async function trial(i: number, n: number): Promise<{ outcome: string; lost: boolean; takeoverMs: number | null }> {
    const prefix = uniqueName('lbfl');
    const config = join(dir, `lifeboat-${i}.yaml`);
    // Each trial its own store: nothing of one trial's is seen by another running beside it.
    await writeFile(config, `store:\n  type: fs\n  path: store-${i}\ntargets:\n  demo:\n    root: target\n`);
    const env = {
      ...process.env,
      LIFEBOAT_CONFIG: config,
      LIFEBOAT_REDIS_URL: stack.redis.url,
      LIFEBOAT_QUEUE_PREFIX: prefix,
      LIFEBOAT_OPS_PORT: '0',
      LIFEBOAT_OPS_HOST: '127.0.0.1',
      LIFEBOAT_SCHEDULER_TICK_MS: String(TICK_MS),
    };
    const bus = new BullMqJobBus({ url: stack.redis.url, prefix });
    const key = `${prefix}:lock:drill-scheduler:leader`;
    // The lease in Redis, sampled every 50 ms: every holder it had, in order.
    const holders: Array<Lease & { at: number }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const v = await redis.get(key).catch(() => null);
        const lease = v ? (JSON.parse(v) as Lease) : null;
        if (lease && holders.at(-1)?.token !== lease.token) holders.push({ ...lease, at: Date.now() });
        await sleep(50);
      }
    })();
    const procs = [runApp('drill-scheduler', [], env), runApp('drill-scheduler', [], env)];
    const problems: string[] = [];
    let takeoverMs: number | null = null;
    try {
      await Promise.all(procs.map((p) => p.logged('drill-scheduler worker started', 120_000)));
      const schedules = async () => {
        const list = await bus.schedules('drill');
        return { ids: list.map((s) => s.id), delayed: await redis.zcard(`${prefix}:drill:delayed`) };
      };
      const synced = async (what: string) => {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const s = await schedules();
          if (s.ids.length === expected && s.delayed === expected) return s;
          if (Date.now() > deadline) {
            problems.push(
              `${what}: ${s.ids.length} schedulers, ${s.delayed} next firings queued, expected ${expected} of each`,
            );
            return s;
          }
          await sleep(100);
        }
      };
      const before = await synced('before the kill');
      if (new Set(before.ids).size !== before.ids.length)
        problems.push(`duplicate schedulers: ${before.ids.join(', ')}`);
      // Both running side by side for a while, the lease renewed at least once.
      await sleep(1000 + Math.round(Math.random() * 10_000));
      const leaders = procs.filter((p) => p.lines.some((l) => l.entry.msg === 'drill scheduler: leader'));
      if (leaders.length !== 1) problems.push(`${leaders.length} processes became leader`);
      const leader = leaders[0] ?? (procs[0] as LoggedProcess);
      const other = procs.find((p) => p !== leader) as LoggedProcess;
      const current = holders.at(-1);
      if (!current?.holder.endsWith(`pid ${leader.child.pid}`)) problems.push(`the lease names ${current?.holder}`);
      if (holders.length !== 1) problems.push(`the lease changed hands ${holders.length - 1} times before the kill`);
      const killedAt = Date.now();
      await stop(leader.child, 'SIGKILL');
      const took = await other.logged('drill scheduler: leader', LEADER_LEASE_MS + 15_000).catch((err: Error) => {
        problems.push(err.message);
        return null;
      });
      if (took) {
        takeoverMs = took.at - killedAt;
        if (takeoverMs > LEADER_LEASE_MS + 2 * TICK_MS + 1000) problems.push(`took over after ${takeoverMs} ms`);
        const value = await redis.get(key);
        const next = value ? (JSON.parse(value) as Lease) : null;
        if (!next?.holder.endsWith(`pid ${other.child.pid}`))
          problems.push(`the lease names ${next?.holder} after the takeover`);
        if (!next || next.token <= (current?.token ?? 0))
          problems.push(`the new lease ${JSON.stringify(next)} after ${JSON.stringify(current)}`);
        const after = await synced('after the takeover');
        if (JSON.stringify([...after.ids].sort()) !== JSON.stringify([...before.ids].sort())) {
          problems.push(`schedulers before [${before.ids.join(', ')}], after [${after.ids.join(', ')}]`);
        }
      }
      // At no moment two holders: each new holder appeared only once the one before was killed.
      for (const h of holders.slice(1))
        if (h.at < killedAt) problems.push(`${h.holder} held the lease before the kill`);
      const code = await stop(other.child, 'SIGTERM');
      if (code !== 0) problems.push(`the survivor exited ${code} on SIGTERM`);
      if (await redis.exists(key)) problems.push('the survivor left its lease behind after a clean stop');
    } finally {
      sampling = false;
      await sampler;
      for (const p of procs) await stop(p.child, 'SIGKILL');
      await bus.close();
    }
    const outcome = problems.length
      ? `problems: ${problems.join('; ')}`
      : 'one leader, one set of schedulers; the other took over once the lease lapsed';
    console.log(
      `drill-scheduler trial ${i}/${n}: holders ${holders.map((h) => `token ${h.token}`).join(' → ')}; takeover ${takeoverMs ?? '-'} ms` +
        (problems.length ? `; PROBLEMS: ${problems.join('; ')}` : ''),
    );
    return { outcome, lost: problems.length > 0, takeoverMs };
  }

  it('exactly one leader, one set of job schedulers, and the other takes over within the lease when the leader is killed', async () => {
    const tally = new Tally();
    const n = trials(10, 2);
    const times: number[] = [];
    // Trials run five at a time: most of a trial is waiting for the killed leader's lease to lapse.
    for (let first = 1; first <= n; first += 5) {
      const batch = Array.from({ length: Math.min(5, n - first + 1) }, (_, k) => first + k);
      for (const t of await Promise.all(batch.map((i) => trial(i, n)))) {
        tally.add(t.outcome, t.lost);
        if (t.takeoverMs !== null) times.push(t.takeoverMs);
      }
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)] ?? 0;
    console.log(`drill-scheduler takeover: min ${times[0]} ms, median ${median} ms, max ${times.at(-1)} ms`);
    tally.record(
      'concurrency',
      'two drill-schedulers on one Redis prefix, the leader killed',
      `two started together: one logs leader and holds the Redis lease (sampled every 50 ms, never two holders), ${expected} BullMQ job schedulers with one queued firing each, not doubled; the leader SIGKILLed after 1–11 s, the other leads within the ${LEADER_LEASE_MS / 1000} s lease (takeover measured: ${times[0]}–${times.at(-1)} ms, median ${median} ms) with a larger token and the same schedulers; a SIGTERM then releases the lease`,
    );
    expect(tally.lost).toBe(0);
  });
});

describe.concurrent('a backup CronJob fired twice for one scheduled time', () => {
  let dir: string;
  let storeDir: string;

  beforeAll(async () => {
    dir = await scratchDir('lifeboat-fault-once-');
    await generateTarget(join(dir, 'target'), { sizeBytes: 256 * 1024, seed: 9 });
    await writeFile(
      join(dir, 'lifeboat.yaml'),
      'store:\n  type: fs\n  path: store\ntargets:\n  demo:\n    root: target\n',
    );
    storeDir = join(dir, 'store', 'demo', 'backups');
  });

  /** The committed backups, with the slot each was made for. */
  function manifests(): Array<{ id: string; scheduledAt?: string }> {
    if (!existsSync(storeDir)) return [];
    return readdirSync(storeDir)
      .filter((id) => existsSync(join(storeDir, id, 'manifest.json')))
      .map((id) => ({
        id,
        scheduledAt: (JSON.parse(readFileSync(join(storeDir, id, 'manifest.json'), 'utf8')) as Manifest).scheduledAt,
      }));
  }

  it('two `main.js once` for one LIFEBOAT_SCHEDULED_AT at once: one backup, the other exits 0 finding it', async () => {
    const tally = new Tally();
    const n = trials(10, 2);
    for (let i = 1; i <= n; i++) {
      // Odd trials on one host with no Redis (the lock file), even ones with LIFEBOAT_REDIS_URL (the Redis lock).
      const lock = i % 2 === 1 ? 'lock file' : 'Redis lock';
      const slot = new Date(Date.UTC(2025, 10, 1, 2) + i * 3_600_000).toISOString();
      const env = {
        ...process.env,
        LIFEBOAT_CONFIG: join(dir, 'lifeboat.yaml'),
        LIFEBOAT_SCHEDULED_AT: slot,
        LIFEBOAT_REDIS_URL: lock === 'Redis lock' ? stack.redis.url : '',
        LIFEBOAT_QUEUE_PREFIX: uniqueName('lbfo'),
      };
      const runs = [runApp('backup', ['once'], env), runApp('backup', ['once'], env)];
      const codes = await Promise.all(runs.map((r) => r.exited));
      const problems: string[] = [];
      const results = runs.map(
        (r) => r.lines.find((l) => l.entry.msg === 'backup once: done')?.entry.result as BackupResult | undefined,
      );
      codes.forEach((c, k) => {
        if (c !== 0) problems.push(`run ${k + 1} exited ${c}: ${runs[k]?.output().slice(-1500)}`);
      });
      const made = manifests().filter((m) => m.scheduledAt === slot);
      if (made.length !== 1) problems.push(`${made.length} backups for ${slot}: ${made.map((m) => m.id).join(', ')}`);
      const fresh = results.filter((r) => r && !r.deduplicated);
      const found = results.filter((r) => r?.deduplicated);
      if (fresh.length !== 1 || found.length !== 1)
        problems.push(`${fresh.length} made, ${found.length} found existing`);
      if (found[0] && found[0].backupId !== made[0]?.id) problems.push(`the second names ${found[0].backupId}`);
      // No backup directory without its manifest: the run that found the slot taken wrote nothing.
      const strays = readdirSync(storeDir).filter((id) => !existsSync(join(storeDir, id, 'manifest.json')));
      if (strays.length) problems.push(`objects with no manifest: ${strays.join(', ')}`);
      const waited = runs.some((r) =>
        r.lines.some((l) => /another run is making the backup/.test(String(l.entry.msg))),
      );
      const outcome = problems.length
        ? `problems: ${problems.join('; ')}`
        : waited
          ? `${lock}: one backup; the other waited for it and exited 0 ("backup for this slot exists")`
          : `${lock}: one backup; the other, started after it, exited 0 ("backup for this slot exists")`;
      console.log(
        `once pair trial ${i}/${n} (${lock}): exits ${codes.join(', ')}; backups for the slot ${made.map((m) => m.id).join(', ')}; ${outcome}`,
      );
      tally.add(outcome, problems.length > 0);
    }
    tally.record(
      'concurrency',
      'backup CronJob fired twice for one scheduled time',
      'two `node apps/backup/dist/main.js once` with one LIFEBOAT_SCHEDULED_AT started together (with and without Redis): both exit 0, one manifest for the slot, the other run reports the same backup as deduplicated, no archive without a manifest',
    );
    expect(tally.lost).toBe(0);
  });
});
