// Base backups of a PostgreSQL target for point-in-time recovery: pg_basebackup's tar stream
// through gzip (and age) into the store, and a manifest written last, once the WAL the
// backup needs is archived (docs/FORMAT.md §10).
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  encryptStream,
  parallelGzip,
  pgBasebackupFor,
  type ResolvedTarget,
  type Runtime,
  readServerFacts,
  sha256hex,
  streamBaseBackup,
} from '@lifeboat/adapters';
import {
  BASE_BACKUP_FORMAT,
  BaseBackupManifest,
  compactUtc,
  describeZodError,
  inStep,
  LifeboatError,
  layout,
  makeBaseBackupId,
  parseLsn,
  sealManifest,
  segmentBefore,
  segmentOf,
  walSegmentName,
} from '@lifeboat/domain';
import { type Logger, silentLogger, TOOL_VERSION } from '../context.js';
import { readWalRecord } from './wal.js';

export interface BaseBackupOptions {
  log?: Logger;
  now?: () => Date;
  /** Where the target's database URL variable is read (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the backup's last WAL segment to reach the store (default 60 s). */
  walWaitMs?: number;
}

export interface BaseBackupResult {
  id: string;
  target: string;
  manifestKey: string;
  archiveKey: string;
  /** The stored archive, and the tar stream it holds. */
  bytes: number;
  tarBytes: number;
  encrypted: boolean;
  startSegment: string;
  endSegment: string;
  startLsn: string;
  endLsn: string;
  durationMs: number;
}

/** The target's connection URL, from its configuration or, usually, the variable it names. */
export function postgresUrl(runtime: Pick<Runtime, 'loaded'>, target: ResolvedTarget, env: NodeJS.ProcessEnv): string {
  const db = target.config.database;
  if (db?.engine !== 'postgres') {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `target ${target.name} has no PostgreSQL database: base backups are for PostgreSQL targets`,
      { hint: `set targets.${target.name}.database.engine: postgres in ${runtime.loaded.path}` },
    );
  }
  const url = db.url ?? env[db.urlEnv];
  if (!url) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `the PostgreSQL URL of target ${target.name} is not set: ${db.urlEnv} is empty`,
      {
        hint: `export ${db.urlEnv}=postgres://user:password@host:5432/dbname (the user needs the REPLICATION attribute)`,
      },
    );
  }
  return url;
}

const ARCHIVING_HINT =
  'postgresql.conf needs wal_level = replica, archive_mode = on and archive_command = \'lifeboat wal push %p --config … --target …\' (README, "PostgreSQL continuous archiving")';

/**
 * Takes a base backup of a target's PostgreSQL server. Checks first that continuous
 * archiving is on and not failing (a base backup without its WAL restores nothing); commits
 * only once the WAL from the backup's start to its end is in the store.
 */
export async function takeBaseBackup(
  runtime: Runtime,
  target: string,
  options: BaseBackupOptions = {},
): Promise<BaseBackupResult> {
  const started = Date.now();
  const log = options.log ?? silentLogger;
  const now = options.now ?? (() => new Date());
  const t = runtime.target(target);
  const url = postgresUrl(runtime, t, options.env ?? process.env);
  const { store } = runtime;
  // Read first: a key configured but not set stops the base backup before it starts.
  const sealKey = runtime.manifestKey();

  let facts: Awaited<ReturnType<typeof readServerFacts>>;
  try {
    facts = await readServerFacts(url);
  } catch (err) {
    throw inStep(`base backup of ${t.name}: connect`, err);
  }
  if (facts.inRecovery) {
    throw new LifeboatError('INVALID_REQUEST', `the server of target ${t.name} is a standby`, {
      hint: 'take base backups from the primary, whose archive_command archives the WAL',
    });
  }
  if (facts.walLevel === 'minimal' || facts.archiveMode === 'off') {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `continuous archiving is off on the server of target ${t.name} (wal_level = ${facts.walLevel}, archive_mode = ${facts.archiveMode})`,
      { hint: ARCHIVING_HINT },
    );
  }
  const { lastFailedAt, lastFailedWal, lastArchivedAt } = facts.archiver;
  if (lastFailedAt && (!lastArchivedAt || lastFailedAt > lastArchivedAt)) {
    throw new LifeboatError(
      'TARGET_ERROR',
      `archiving is failing on the server of target ${t.name}: its last attempt, ${lastFailedWal} at ${lastFailedAt.toISOString()}, failed`,
      {
        hint: 'see the server log for the archive_command error; a base backup would wait for archiving that does not happen',
      },
    );
  }
  if (facts.archiveCommand !== null && !/\bwal\s+push\b/.test(facts.archiveCommand)) {
    log.warn({ archiveCommand: facts.archiveCommand }, 'archive_command does not look like `lifeboat wal push`');
  }

  const createdAt = now();
  const id = makeBaseBackupId(compactUtc(createdAt), randomBytes(2).toString('hex'));
  const encrypted = runtime.recipients.length > 0;
  const archiveKey = layout.baseBackupArchive(t.name, id, encrypted);
  let committed = false;
  try {
    // 1. pg_basebackup's tar stream, compressed (and encrypted) on its way to the store.
    const backup = streamBaseBackup(url, { label: `lifeboat ${id}`, command: pgBasebackupFor(facts.major) });
    let stream: AsyncIterable<Uint8Array> = parallelGzip(backup.stream, {
      level: runtime.loaded.config.backup.compressionLevel,
    });
    if (encrypted) stream = encryptStream(stream, runtime.recipients);
    const digest = { size: 0, sha256: '' };
    const hash = createHash('sha256');
    const measured = (async function* () {
      for await (const chunk of stream) {
        hash.update(chunk);
        digest.size += chunk.length;
        yield chunk;
      }
      digest.sha256 = hash.digest('hex');
    })();
    log.info({ id, target: t.name }, 'base backup started');
    try {
      await store.put(archiveKey, measured);
    } catch (err) {
      throw inStep(`base backup of ${t.name}: write ${archiveKey}`, err);
    }
    const completedAt = now();
    const taken = backup.facts();

    // 2. The WAL from start to end must be in the store: with -X none the server has waited
    // for archive_command, and it is ours only if archive_command pushes to this target.
    const segmentSize = facts.walSegmentSize;
    const first = segmentOf(parseLsn(taken.startLsn), segmentSize);
    const last = segmentBefore(parseLsn(taken.endLsn), segmentSize);
    const names: string[] = [];
    for (let s = first; s <= last; s++) names.push(walSegmentName(taken.timeline, s, segmentSize));
    const deadline = Date.now() + (options.walWaitMs ?? 60_000);
    for (const name of names) {
      for (;;) {
        const record = await readWalRecord(runtime, t.name, name);
        if (record) {
          if (facts.systemIdentifier && record.systemIdentifier && record.systemIdentifier !== facts.systemIdentifier) {
            throw new LifeboatError(
              'CONFLICT',
              `archived WAL segment ${name} of target ${t.name} belongs to database system ${record.systemIdentifier}, the server is ${facts.systemIdentifier}`,
              {
                hint: `another cluster archived into ${layout.walPrefix(t.name)}: give this one its own target, or move that WAL aside`,
              },
            );
          }
          break;
        }
        if (Date.now() > deadline) {
          throw new LifeboatError(
            'TARGET_ERROR',
            `base backup of ${t.name}: WAL segment ${name}, which the backup needs, is not in the store`,
            {
              hint: `is archive_command \`lifeboat wal push %p --target ${t.name}\` with this store's configuration? ${ARCHIVING_HINT}`,
            },
          );
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }

    // 3. The commit point: the manifest, written last.
    const manifest = BaseBackupManifest.safeParse({
      format: BASE_BACKUP_FORMAT,
      id,
      target: t.name,
      createdAt: createdAt.toISOString(),
      completedAt: completedAt.toISOString(),
      host: hostname(),
      tool: { name: 'lifeboat', version: TOOL_VERSION },
      method: 'pg_basebackup -Ft -X none',
      label: taken.label,
      postgres: {
        version: facts.version,
        versionNum: facts.versionNum,
        major: facts.major,
        systemIdentifier:
          facts.systemIdentifier ?? (await readWalRecord(runtime, t.name, names[0] as string))?.systemIdentifier ?? '0',
        walSegmentSize: segmentSize,
      },
      wal: {
        timeline: taken.timeline,
        startLsn: taken.startLsn,
        endLsn: taken.endLsn,
        checkpointLsn: taken.checkpointLsn,
        startSegment: names[0],
        endSegment: names.at(-1),
      },
      startTime: taken.startTime,
      archive: {
        key: archiveKey,
        compression: 'gzip',
        encryption: encrypted ? { type: 'age', recipients: [...runtime.recipients] } : null,
        size: digest.size,
        sha256: digest.sha256,
        tarSize: taken.tarSize,
        tarSha256: taken.tarSha256,
      },
    });
    if (!manifest.success)
      throw new LifeboatError('INTERNAL', describeZodError(manifest.error, 'base backup manifest'));
    const manifestKey = layout.baseBackupManifest(t.name, id);
    try {
      const sealed = sealManifest(manifest.data, sha256hex, sealKey);
      await store.put(manifestKey, Buffer.from(`${JSON.stringify(sealed, null, 2)}\n`));
    } catch (err) {
      throw inStep(`base backup of ${t.name}: write manifest`, err);
    }
    committed = true;
    log.info({ id, target: t.name, bytes: digest.size, tarBytes: taken.tarSize }, 'base backup committed');
    return {
      id,
      target: t.name,
      manifestKey,
      archiveKey,
      bytes: digest.size,
      tarBytes: taken.tarSize,
      encrypted,
      startSegment: names[0] as string,
      endSegment: names.at(-1) as string,
      startLsn: taken.startLsn,
      endLsn: taken.endLsn,
      durationMs: Date.now() - started,
    };
  } finally {
    // Without its manifest the archive is garbage.
    if (!committed) await store.delete(archiveKey).catch(() => undefined);
  }
}
