// The steps restore plans are made of. Each is small, names what it touches, and records its
// evidence; the scenarios (scenarios.ts) put them in the runbook's order.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import {
  inspectDatabaseFile,
  openBooksSource,
  parseUrl,
  type ResolvedTarget,
  type Runtime,
  sha256,
  writeFileAtomic,
} from '@lifeboat/adapters';
import {
  extractBackup,
  readCatalog,
  readManifest,
  restoreSqliteFromStream,
  streamEnd,
  streamedFile,
} from '@lifeboat/backup';
import {
  changeKillSwitch,
  effectiveKillSwitchState,
  type KillSwitchClient,
  LifeboatError,
  type Manifest,
  type ReconcileJobResult,
  type RestoreRequest,
  type TargetControl,
} from '@lifeboat/domain';
import type { RestoreContext } from './context.js';
import { checkSqliteFile, restorePostgresStaging, swapPostgres, swapSqlite } from './database.js';
import type { PlanStep, StepOutcome } from './plan.js';
import { NO_STREAM_HINT, rollForwardPostgres } from './roll-forward-postgres.js';

/** Where a restore writes: production paths, or a sandbox that never touches them. */
export interface Destination {
  kind: 'production' | 'sandbox';
  root: string;
  /** The SQLite file, or the PostgreSQL URL (with its password, never logged). */
  sqlite: string | null;
  postgresUrl: string | null;
  /** For messages: the SQLite path or the URL without a password. */
  databaseLabel: string | null;
}

/** Everything the steps of one run share. */
export interface RunState {
  ctx: RestoreContext;
  request: RestoreRequest;
  target: ResolvedTarget;
  dest: Destination;
  stamp: string;
  killSwitch: KillSwitchClient;
  control: TargetControl | null;
  /** Scratch space beside the destination (same filesystem, so renames are atomic). */
  staging: string;
  backupId: string | null;
  manifest: Manifest | null;
  /** The location the backup comes from, once picked. */
  source: Runtime | null;
  extracted: string | null;
  stagedSqlite: string | null;
  stagedPostgres: string | null;
  /** What the staged database holds, for the timeline: the backup's copy, or that rolled forward to when. */
  databaseSource?: string;
  movedAside: string[];
  healthyAt: Date | null;
  reconciliation: ReconcileJobResult | null;
  killSwitchState: string;
}

const step = (name: string, description: string, touches: string[], run: () => Promise<StepOutcome>): PlanStep => ({
  name,
  description,
  touches,
  run,
});

function killSwitchFile(s: RunState, root = s.dest.root): string {
  return resolve(root, s.target.config.killSwitchFile);
}

/** P0: trading halted before anything is touched. */
export function activateKillSwitch(s: RunState): PlanStep {
  const production = s.dest.kind === 'production';
  return step(
    'activate-kill-switch',
    'halt trading: the kill switch ON (the target API, else its state file)',
    production ? [s.target.config.api?.url ?? killSwitchFile(s)] : [],
    async () => {
      if (!production) return { skipped: true, outcome: 'sandbox: the production kill switch is not touched' };
      const r = await s.killSwitch.activate(`lifeboat restore ${s.request.scenario}: ${s.request.reason}`, {
        scenario: s.request.scenario,
        requested_by: s.request.requestedBy,
      });
      s.killSwitchState = r.state;
      return {
        outcome: `kill switch ${r.state} via ${r.via}${r.fallback ? ` (${r.fallback})` : ''}`,
        evidence: { state: r.state, via: r.via, ...(r.fallback ? { fallback: r.fallback } : {}) },
      };
    },
  );
}

/** Server loss: the old host may still be half alive; ask its API, but write nothing locally yet. */
export function activateKillSwitchRemote(s: RunState): PlanStep {
  const url = s.target.config.api?.url;
  return step(
    'activate-kill-switch',
    'halt trading on the lost host if it still answers; the restored state carries ON either way',
    url ? [url] : [],
    async () => {
      if (s.dest.kind !== 'production')
        return { skipped: true, outcome: 'sandbox: the production kill switch is not touched' };
      if (!url) return { skipped: true, outcome: 'no target API configured; the restored state will carry ON' };
      try {
        const res = await fetch(`${url.replace(/\/+$/, '')}/kill-switch/activate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ reason: `lifeboat restore server-loss: ${s.request.reason}` }),
          signal: AbortSignal.timeout(s.target.config.api?.timeoutMs ?? 2000),
        });
        return {
          outcome: `the old host answered ${res.status}; trading halted there`,
          evidence: { status: res.status },
        };
      } catch (err) {
        return {
          outcome: `the old host does not answer (${(err as Error).message}); the restored state will carry ON`,
          evidence: { unreachable: true },
        };
      }
    },
  );
}

export function readLastState(s: RunState): PlanStep {
  return step(
    'read-last-state',
    'read the last known state: the kill switch, and the orders open in the books',
    [killSwitchFile(s), s.dest.databaseLabel ?? '(no database)'],
    async () => {
      const ks = await s.killSwitch.status();
      let openOrders: number | null = null;
      let books = 'no database configured';
      const source = s.dest.sqlite ?? s.dest.postgresUrl;
      if (source) {
        const store = openBooksSource(source, s.target.config.reconcile?.profile);
        try {
          const read = await store.read();
          openOrders = read.orders.filter((o) => o.status === 'NEW' || o.status === 'PARTIAL').length;
          books = `${read.orders.length} orders, ${openOrders} open`;
        } catch (err) {
          throw new LifeboatError('DATABASE_ERROR', `the books cannot be read: ${(err as Error).message}`, {
            hint: 'a damaged database needs --scenario db-corruption',
          });
        } finally {
          await store.close();
        }
      }
      return {
        outcome: `kill switch ${ks.state}; ${books}`,
        evidence: { killSwitch: ks.state, events: ks.file?.events.length ?? 0, openOrders },
      };
    },
  );
}

export function stopTarget(s: RunState): PlanStep {
  return step('stop-target', 'stop the trading system', s.control ? ['target process'] : [], async () => {
    if (s.dest.kind !== 'production') return { skipped: true, outcome: 'sandbox: nothing runs there' };
    if (!s.control) throw noControl(s);
    const r = await s.control.stop();
    return { outcome: `stopped (${r.command}, exit ${r.exitCode}, ${r.durationMs} ms)`, evidence: { ...r } };
  });
}

function noControl(s: RunState): LifeboatError {
  return new LifeboatError('INVALID_CONFIG', `target ${s.target.name} has no control commands`, {
    hint: `set targets.${s.target.name}.control.{start,startShadow,stop} in lifeboat.yaml`,
  });
}

export function startShadow(s: RunState, restart: boolean): PlanStep {
  return step(
    restart ? 'restart-shadow' : 'start-shadow',
    `${restart ? 'restart' : 'start'} the trading system in shadow mode (orders recorded, none sent)`,
    s.control ? ['target process'] : [],
    async () => {
      if (s.dest.kind !== 'production') return { skipped: true, outcome: 'sandbox: the target is not started' };
      if (!s.control) throw noControl(s);
      const commands = [];
      if (restart) commands.push(await s.control.stop());
      commands.push(await s.control.start('shadow'));
      return { outcome: commands.map((c) => `${c.command} (exit ${c.exitCode})`).join('; '), evidence: { commands } };
    },
  );
}

export function healthCheck(s: RunState): PlanStep {
  return step(
    'health-check',
    'wait until the target answers healthy',
    s.target.config.api ? [`${s.target.config.api.url}/health`] : [],
    async () => {
      if (s.dest.kind !== 'production') return { skipped: true, outcome: 'sandbox: the target is not started' };
      if (!s.control) throw noControl(s);
      const timeout = s.target.config.control?.healthTimeoutMs ?? 60_000;
      const h = await s.control.waitHealthy(timeout);
      if (!h.healthy) {
        throw new LifeboatError('TARGET_ERROR', `the target did not answer healthy within ${timeout} ms: ${h.detail}`, {
          hint: 'look at its logs; the kill switch stays ON',
        });
      }
      s.healthyAt = (s.ctx.now ?? (() => new Date()))();
      // The kill switch must still be ON after the start (the target reads its state file).
      const ks = await s.killSwitch.status();
      s.killSwitchState = ks.state;
      if (ks.state !== 'ON') {
        const again = await s.killSwitch.activate('lifeboat restore: the target came up with the kill switch off', {});
        s.killSwitchState = again.state;
      }
      return {
        outcome: `healthy after ${h.durationMs} ms; kill switch ${s.killSwitchState}`,
        evidence: { health: h.body ?? h.detail, killSwitch: s.killSwitchState },
      };
    },
  );
}

export function selectBackup(s: RunState): PlanStep {
  const { runtime } = s.ctx;
  const order = s.request.from ? [runtime.at(s.request.from)] : runtime.locations.map((l) => runtime.at(l.name));
  return step(
    'select-backup',
    'pick the backup: the one named, the newest at the point in time, or the newest usable, from the first location that has a usable copy',
    order.map((l) => `${l.locationName}: ${l.store.location}`),
    async () => {
      const notes: string[] = [];
      for (const location of order) {
        const name = location.locationName;
        if (s.request.avoid.includes(name)) {
          notes.push(`${name}: skipped, unavailable by request`);
          continue;
        }
        let picked: { id: string; manifest: Manifest } | string;
        try {
          picked = await pickIn(s, location);
        } catch (err) {
          // A location that is down is passed over; the others may have a copy.
          notes.push(`${name} (${location.store.location}) unreachable: ${(err as Error).message}`);
          continue;
        }
        if (typeof picked === 'string') {
          notes.push(`${name}: ${picked}`);
          continue;
        }
        s.manifest = picked.manifest;
        s.backupId = picked.id;
        s.source = location;
        const passed = notes.length ? ` after ${notes.join('; ')}` : '';
        return {
          outcome: `backup ${picked.id} (${picked.manifest.kind}, taken ${picked.manifest.createdAt}) from ${name}${passed}`,
          evidence: {
            backupId: picked.id,
            location: name,
            store: location.store.location,
            skipped: notes,
            createdAt: picked.manifest.createdAt,
            archiveSha256: picked.manifest.archive.sha256,
            tables: picked.manifest.database?.tables ?? null,
          },
        };
      }
      const what =
        s.request.backup !== 'latest'
          ? `backup ${s.request.backup}`
          : s.request.pointInTime
            ? `a usable backup at or before ${s.request.pointInTime}`
            : `a usable backup${s.target.config.database ? ' with a database' : ''}`;
      throw new LifeboatError('NOT_FOUND', `no location has ${what} of ${s.target.name}: ${notes.join('; ')}`, {
        hint: '`lifeboat backups list` shows which location holds what; make one with `lifeboat backup`',
      });
    },
  );
}

/**
 * The backup a location offers for this request, or why it offers none. The primary's
 * backups count unless they failed verification; another location's copies count only when
 * verified (a copy is committed only after its check, so that is every copy not since found
 * damaged).
 */
async function pickIn(s: RunState, location: Runtime): Promise<{ id: string; manifest: Manifest } | string> {
  const primary = location.locations.find((l) => l.name === location.locationName)?.primary === true;
  const needsDatabase = Boolean(s.target.config.database);
  const catalog = await readCatalog(location, s.target.name);
  const usable = catalog.backups.filter(
    (b) =>
      (primary ? b.verification?.ok !== false : b.verification?.ok === true) &&
      (!needsDatabase || b.database !== null) &&
      (s.request.scenario !== 'server-loss' || b.kind === 'full'),
  );
  let id: string | undefined;
  if (s.request.backup !== 'latest') {
    id = usable.find((b) => b.backupId === s.request.backup)?.backupId;
    // A manifest refused (damaged, its seal broken) says why, rather than that there is none.
    const refused = catalog.unreadable.find((u) => u.backupId === s.request.backup);
    if (!id) return refused ? refused.problem : `no usable copy of backup ${s.request.backup}`;
  } else if (s.request.pointInTime) {
    const at = Date.parse(s.request.pointInTime);
    id = usable.filter((b) => Date.parse(b.createdAt) <= at).at(-1)?.backupId;
    if (!id) return `no usable backup at or before ${s.request.pointInTime}`;
  } else {
    id = usable.at(-1)?.backupId;
    if (!id) return `no usable backup${needsDatabase ? ' with a database' : ''}`;
  }
  return { id, manifest: await readManifest(location, s.target.name, id) };
}

export function fetchAndVerify(s: RunState): PlanStep {
  return step(
    'fetch-and-verify',
    'fetch the archive, decrypt it and check every entry against the manifest, into staging',
    [s.staging],
    async () => {
      if (!s.backupId) throw new LifeboatError('INTERNAL', 'no backup selected');
      const dir = join(s.staging, 'files');
      const r = await extractBackup(s.source ?? s.ctx.runtime, s.target.name, s.backupId, dir);
      s.extracted = dir;
      return {
        outcome: `${r.files.length} files, ${r.bytes} bytes, every checksum equal to the manifest`,
        evidence: {
          files: r.files.map((f) => ({ path: f.path, sha256: f.sha256, size: f.size })),
          archiveSha256: s.manifest?.archive.sha256,
        },
      };
    },
  );
}

function databaseEntry(s: RunState): { source: string } | null {
  const e = s.manifest?.entries.find((x) => x.role === 'database');
  return e ? { source: e.source } : null;
}

export function restoreDatabaseStaging(s: RunState): PlanStep {
  return step(
    'restore-database',
    'restore the database into staging and check it: integrity, and row counts equal to the manifest',
    [s.dest.postgresUrl ? `a new database beside ${s.dest.databaseLabel}` : s.staging],
    async () => {
      const entry = databaseEntry(s);
      const facts = s.manifest?.database;
      if (!entry || !facts || !s.extracted)
        throw new LifeboatError('NOT_FOUND', `backup ${s.backupId} holds no database`);
      const file = join(s.extracted, entry.source);
      if (facts.engine === 'sqlite') {
        const checked = await checkSqliteFile(file, facts.tables);
        s.stagedSqlite = file;
        s.databaseSource = `backup ${s.backupId} as taken (${s.manifest?.createdAt})`;
        return {
          outcome: `SQLite integrity ${checked.integrity.detail}; row counts equal to the manifest`,
          evidence: { integrity: checked.integrity, tables: checked.tables },
        };
      }
      if (!s.dest.postgresUrl)
        throw new LifeboatError(
          'INVALID_CONFIG',
          'the backup holds a PostgreSQL dump but the target database is not PostgreSQL',
        );
      const staged = await restorePostgresStaging(s.dest.postgresUrl, file, s.stamp, facts.tables);
      s.stagedPostgres = staged.name;
      s.databaseSource = `backup ${s.backupId}'s dump alone (taken ${s.manifest?.createdAt})`;
      return {
        outcome: `pg_restore into ${staged.name}; row counts equal to the manifest`,
        evidence: { database: staged.name, tables: staged.checked.tables },
      };
    },
  );
}

/**
 * Continuous protection: the staged database and append-only files brought forward to the
 * point in time, or to the newest point there is. SQLite and the files come from the stream
 * (`lifeboat ship`); PostgreSQL from its base backup and archived WAL, replayed in a scratch
 * server (roll-forward-postgres.ts). The stream is used only where it goes past the backup,
 * and a file only where its streamed bytes begin with the backup's own (else it is another
 * file: rotated since, say).
 */
export function rollForward(s: RunState): PlanStep {
  return step(
    'roll-forward',
    'bring the database and the append-only files forward to the point in time, or the newest point there is: SQLite and the files from the continuous stream, PostgreSQL by replaying its base backup and archived WAL in a scratch server',
    [
      s.staging,
      ...(s.dest.postgresUrl
        ? [
            'a scratch PostgreSQL server on 127.0.0.1 (base backup + archived WAL)',
            `the staging database beside ${s.dest.databaseLabel}`,
          ]
        : []),
    ],
    async () => {
      if (!s.request.stream) return { skipped: true, outcome: 'the request asked for the backup alone (--no-stream)' };
      if (!s.manifest || !s.extracted) throw new LifeboatError('INTERNAL', 'nothing extracted');
      // Streams live in the primary store, as the records do.
      const runtime = s.ctx.runtime;
      const target = s.target.name;
      const at = s.request.pointInTime ? new Date(s.request.pointInTime) : undefined;
      const backupAt = Date.parse(s.manifest.createdAt);
      /** What was rolled forward, and what was not and why. */
      const done: string[] = [];
      const notes: string[] = [];
      const evidence: Record<string, unknown> = {};
      // A store that does not answer (the primary down: the backup came from another location)
      // leaves the backup as it is, and says so.
      let reachable = true;
      if (s.stagedSqlite) {
        const end = await streamEnd(runtime, target).catch((err: Error) => {
          if (!(err instanceof LifeboatError && err.code === 'STORE_UNREACHABLE')) throw err;
          reachable = false;
          notes.push(`not rolled forward: the stream's store does not answer (${err.message})`);
          return null;
        });
        if (end && end.getTime() > backupAt) {
          const file = `${s.stagedSqlite}.stream`;
          const r = await restoreSqliteFromStream(runtime, target, file, at ? { at } : {}).catch((err: Error) => {
            throw new LifeboatError(
              err instanceof LifeboatError ? err.code : 'VERIFY_FAILED',
              `the continuous stream does not restore: ${err.message}`,
              { hint: NO_STREAM_HINT },
            );
          });
          if (Date.parse(r.recoveredTo) > backupAt) {
            const checked = await inspectDatabaseFile('sqlite', file);
            if (!checked.integrity.ok) {
              throw new LifeboatError(
                'VERIFY_FAILED',
                `the database rebuilt from the stream fails its integrity check: ${checked.integrity.detail}`,
              );
            }
            // In the place of the backup's copy: the swap (or the new host's files) take it from there.
            await rename(file, s.stagedSqlite);
            done.push(`database to ${r.recoveredTo} (generation ${r.generation}, ${r.segments} segments)`);
            evidence.database = { ...r, tables: checked.tables };
            s.databaseSource = `backup ${s.backupId} + the stream to ${r.recoveredTo}`;
          }
        }
      }
      if (s.stagedPostgres && s.dest.postgresUrl) {
        const r = await rollForwardPostgres({
          runtime,
          target,
          env: s.ctx.env ?? process.env,
          log: s.ctx.log,
          ...(s.request.pointInTime ? { at: s.request.pointInTime } : {}),
          backup: {
            createdAt: s.manifest.createdAt,
            ...(s.manifest.consistency.method === 'pg_dump-snapshot' && s.manifest.consistency.position
              ? { position: s.manifest.consistency.position }
              : {}),
          },
          destinationUrl: s.dest.postgresUrl,
          stagedName: s.stagedPostgres,
          stamp: s.stamp,
          dir: join(s.staging, 'roll-forward'),
        });
        evidence.database = r.evidence;
        if (r.result === 'rolled') {
          done.push(r.detail);
          s.databaseSource = `base backup ${r.baseBackupId} + WAL to ${r.recoveredTo}, in place of backup ${s.backupId}'s dump`;
        } else {
          if (r.result === 'unreachable') reachable = false;
          notes.push(r.detail);
        }
      }
      const files: Array<{ path: string; bytes: number; shippedAt: string }> = [];
      for (const e of s.manifest.entries) {
        if (!reachable || e.appendOnlyOffset === undefined || e.secret) continue;
        const streamed = await streamedFile(runtime, target, e.source, at);
        if (!streamed || streamed.content.length <= e.size) continue;
        if (sha256(streamed.content.subarray(0, e.size)) !== e.sha256) continue;
        await writeFile(join(s.extracted, e.source), streamed.content, { mode: (e.mode ?? 0o644) & 0o777 });
        files.push({ path: e.source, bytes: streamed.content.length - e.size, shippedAt: streamed.shippedAt });
      }
      if (files.length) {
        done.push(`${files.length} append-only file(s) (+${files.reduce((n, f) => n + f.bytes, 0)} bytes)`);
        evidence.files = files;
      }
      if (done.length === 0) {
        return { skipped: true, outcome: notes.length ? notes.join('; ') : 'no stream goes past the backup', evidence };
      }
      return { outcome: `rolled forward: ${[...done, ...notes].join('; ')}`, evidence };
    },
  );
}

export function swapDatabase(s: RunState): PlanStep {
  return step(
    'swap-database',
    'move the damaged database aside (never deleted) and rename the restored one into its place',
    [s.dest.databaseLabel ?? '(no database)'],
    async () => {
      if (s.stagedSqlite && s.dest.sqlite) {
        await mkdir(dirname(s.dest.sqlite), { recursive: true });
        const aside = await swapSqlite(s.stagedSqlite, s.dest.sqlite, s.stamp);
        s.movedAside.push(...aside);
        return {
          outcome: `${aside.length ? `moved aside ${aside.map((p) => basename(p)).join(', ')}` : 'no database was there'}; the database now holds ${s.databaseSource}`,
          evidence: { movedAside: aside, database: s.dest.sqlite, databaseSource: s.databaseSource },
        };
      }
      if (s.stagedPostgres && s.dest.postgresUrl) {
        const aside = await swapPostgres(s.dest.postgresUrl, s.stagedPostgres, s.stamp);
        if (aside) s.movedAside.push(`postgres database ${aside}`);
        return {
          outcome: `${aside ? `renamed the damaged database to ${aside}` : 'no database was there'}; the database now holds ${s.databaseSource}`,
          evidence: { movedAside: aside, databaseSource: s.databaseSource },
        };
      }
      throw new LifeboatError('INTERNAL', 'no restored database to swap in');
    },
  );
}

/** Writes the kill switch ON into a state file, keeping its history (the backup's, or the live one's). */
async function killSwitchOnInFile(file: string, fromFile: string, s: RunState): Promise<string> {
  const current = await readFile(fromFile, 'utf8').then(
    (t) => {
      try {
        return JSON.parse(t) as unknown;
      } catch {
        return null;
      }
    },
    () => null,
  );
  const next = changeKillSwitch(current, {
    state: 'ON',
    trigger: 'lifeboat-restore',
    reason: `restored by lifeboat (${s.request.scenario}${s.backupId ? `, backup ${s.backupId}` : ''}); trading stays halted until reconciliation passes`,
    metadata: { backup_id: s.backupId, scenario: s.request.scenario },
    at: (s.ctx.now ?? (() => new Date()))(),
  });
  await writeFileAtomic(file, `${JSON.stringify(next, null, 2)}\n`);
  s.killSwitchState = effectiveKillSwitchState(next);
  return `${effectiveKillSwitchState(current)} → ON (${next.events.length} events kept)`;
}

/** db-corruption: the files on disk are not damaged; only missing ones come from the backup. */
export function restoreStateFiles(s: RunState): PlanStep {
  return step(
    'restore-state',
    'restore the state files that are missing, and set the kill switch ON in the state the target will read',
    [s.dest.root],
    async () => {
      if (!s.extracted || !s.manifest) throw new LifeboatError('INTERNAL', 'nothing extracted');
      const restored: string[] = [];
      const kept: string[] = [];
      const ksRel = s.target.config.killSwitchFile;
      for (const e of s.manifest.entries.filter((x) => x.role === 'state' && x.source !== ksRel)) {
        const live = resolve(s.dest.root, e.source);
        if (existsSync(live)) kept.push(e.source);
        else {
          await mkdir(dirname(live), { recursive: true });
          await rename(join(s.extracted, e.source), live);
          restored.push(e.source);
        }
      }
      const live = killSwitchFile(s);
      const from = existsSync(live) ? live : join(s.extracted, ksRel);
      const change = await killSwitchOnInFile(live, from, s);
      return {
        outcome: `kill switch ${change}; restored ${restored.length ? restored.join(', ') : 'nothing'}; kept the live ${kept.length ? kept.join(', ') : 'nothing'}`,
        evidence: { restored, keptLive: kept, killSwitch: s.killSwitchState },
      };
    },
  );
}

/** Server loss: everything from the backup, the kill switch ON in it, then renamed into place. */
export function checkDestinationEmpty(s: RunState): PlanStep {
  return step('check-destination', 'the destination must be empty or missing (a new host)', [s.dest.root], async () => {
    const entries = await readdir(s.dest.root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    if (entries.length) {
      throw new LifeboatError('CONFLICT', `${s.dest.root} is not empty (${entries.length} entries)`, {
        hint: 'server-loss restores onto an empty host; use db-corruption to repair a target in place, or --to sandbox',
      });
    }
    return { outcome: `${s.dest.root} is empty` };
  });
}

export function killSwitchOnInStaging(s: RunState): PlanStep {
  return step(
    'kill-switch-in-restored-state',
    'set the kill switch ON in the restored state file, keeping its history',
    [s.staging],
    async () => {
      if (!s.extracted) throw new LifeboatError('INTERNAL', 'nothing extracted');
      const file = killSwitchFile(s, s.extracted);
      const change = await killSwitchOnInFile(file, file, s);
      return { outcome: `kill switch ${change}`, evidence: { file: relative(s.extracted, file), killSwitch: 'ON' } };
    },
  );
}

export function swapInFiles(s: RunState): PlanStep {
  return step(
    'swap-in',
    'rename the restored files into place (and the database, for PostgreSQL)',
    [s.dest.root, ...(s.dest.postgresUrl ? [s.dest.databaseLabel ?? ''] : [])],
    async () => {
      if (!s.extracted) throw new LifeboatError('INTERNAL', 'nothing extracted');
      if (s.stagedPostgres && s.dest.postgresUrl) {
        const aside = await swapPostgres(s.dest.postgresUrl, s.stagedPostgres, s.stamp);
        if (aside) s.movedAside.push(`postgres database ${aside}`);
        // The dump is not part of the target's files.
        const entry = databaseEntry(s);
        if (entry) await rm(join(s.extracted, entry.source), { force: true });
      }
      if (existsSync(s.dest.root)) await rmdir(s.dest.root);
      await mkdir(dirname(s.dest.root), { recursive: true });
      await rename(s.extracted, s.dest.root);
      s.extracted = null;
      return {
        outcome: `restored files in ${s.dest.root}${s.databaseSource ? `; the database holds ${s.databaseSource}` : ''}`,
        evidence: {
          root: s.dest.root,
          movedAside: [...s.movedAside],
          ...(s.databaseSource ? { databaseSource: s.databaseSource } : {}),
        },
      };
    },
  );
}

export function reconcileStep(s: RunState, full: boolean): PlanStep {
  return step(
    'reconcile',
    `${full ? 'full ' : ''}reconciliation of the books with the exchange; corrections applied, reported`,
    [s.dest.databaseLabel ?? '(no database)', 'the exchange (read only)'],
    async () => {
      if (!s.request.reconcile) return { skipped: true, outcome: 'not asked to reconcile: not ready to trade' };
      if (s.dest.kind === 'sandbox' && !s.dest.sqlite && !s.dest.postgresUrl) {
        // Never the production books in their place: corrections would be applied to them.
        return { skipped: true, outcome: 'the sandbox has no database to reconcile: not ready to trade' };
      }
      if (!s.target.config.exchange && !s.target.config.api) {
        return {
          skipped: true,
          outcome: `no exchange source configured (targets.${s.target.name}.exchange): not reconciled, so not ready to trade`,
        };
      }
      // Job data never holds a password: the reconciler takes the target's own for the scratch database.
      const sandboxSource =
        s.dest.kind === 'sandbox'
          ? (s.dest.sqlite ?? (s.dest.postgresUrl ? parseUrl(s.dest.postgresUrl).safe : null))
          : null;
      const result = await s.ctx.reconcile({
        target: s.target.name,
        recoveryType: s.dest.kind === 'sandbox' ? `${s.request.scenario} (sandbox)` : s.request.scenario,
        ...(sandboxSource ? { internal: sandboxSource } : {}),
        // A sandbox's books are its own copy: correcting them shows what production would need.
        apply: true,
        ...(s.request.signOff ? { signOff: s.request.signOff } : {}),
        requestedBy: `restore:${s.request.requestedBy}`,
      });
      s.reconciliation = result;
      const r = result.report;
      return {
        outcome: `${r.verdict}: ${r.discrepancies.length} discrepancies, ${r.actions_taken.length} corrections; ${r.ready_to_trade ? 'ready to trade' : 'not ready to trade'}`,
        evidence: {
          verdict: r.verdict,
          readyToTrade: r.ready_to_trade,
          checks: r.checks,
          reportKey: result.reportKey,
          ...(result.notStored ? { notStored: result.notStored } : {}),
          discrepancies: r.discrepancies.slice(0, 20),
        },
      };
    },
  );
}

export function readyToTrade(s: RunState): PlanStep {
  return step(
    'ready-to-trade',
    'decide: ready to trade only when reconciliation passed; the kill switch stays ON either way',
    [],
    async () => {
      const r = s.reconciliation?.report;
      if (!r) return { skipped: true, outcome: 'no reconciliation ran' };
      if (r.ready_to_trade && !isReady(s)) {
        return {
          outcome: `not ready to trade: the ${r.verdict} report could not be stored (${s.reconciliation?.notStored}), so it cannot let the kill switch go; reconcile again once the store answers`,
          evidence: { readyToTrade: false, notStored: s.reconciliation?.notStored },
        };
      }
      return {
        outcome: r.ready_to_trade
          ? 'ready to trade: an operator deactivates the kill switch with `lifeboat kill-switch deactivate --reason …`'
          : `not ready to trade (${r.verdict}${r.verdict === 'PASS_WITH_CORRECTIONS' ? ': corrections need --sign-off' : ''}); trading stays halted`,
        evidence: { readyToTrade: r.ready_to_trade },
      };
    },
  );
}

/**
 * Whether the run ends ready to trade: the reconciliation says so and, for production, its
 * report is stored (the kill switch is let go only on a stored report). A sandbox's report is
 * never evidence for production, stored or not.
 */
export function isReady(s: RunState): boolean {
  const result = s.reconciliation;
  if (!result?.report.ready_to_trade) return false;
  return s.dest.kind === 'sandbox' || result.notStored === undefined;
}
