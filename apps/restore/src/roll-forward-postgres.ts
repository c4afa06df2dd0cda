// A restored PostgreSQL database rolled forward through point-in-time recovery: the target's
// base backup and archived WAL replayed in a scratch server (postgres-pitr.ts) to the point in
// time, or to the end of the archive; when that goes past the backup, the scratch server's
// database is dumped and restored over the staging database, in place of the backup's dump.
// Production is never touched: the scratch server listens on 127.0.0.1 and archives nothing,
// and the one database dropped is the staging database this restore made.
import { mkdir } from 'node:fs/promises';
import { PostgresEngine, type Runtime } from '@lifeboat/adapters';
import { listBaseBackups } from '@lifeboat/backup';
import { LifeboatError, parseLsn } from '@lifeboat/domain';
import pg from 'pg';
import type { Logger } from './context.js';
import { replacePostgresStaging } from './database.js';
import { restorePostgresToPoint, type ScratchServer, stopCommand } from './postgres-pitr.js';

/** The way out of any roll-forward failure, given with each. */
export const NO_STREAM_HINT = '`lifeboat restore --no-stream` restores the backup alone';

export interface PostgresRollForwardRequest {
  runtime: Runtime;
  target: string;
  /** Where the target's database URL is read: the scratch server takes its user, password and database. */
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** The point in time (ISO), or undefined for the end of the archive. */
  at?: string;
  /** The backup restored into staging: when it was taken, and the WAL position of its dump when known. */
  backup: { createdAt: string; position?: string };
  /** The destination's URL, and the staging database the backup's dump was restored into beside it. */
  destinationUrl: string;
  stagedName: string;
  stamp: string;
  /** Where the scratch server's dump is written: inside the restore's staging, removed with it. */
  dir: string;
}

/**
 * `rolled`: the staging database now holds the scratch server's copy; `dump`: it still holds
 * the backup's dump; `unreachable`: the store did not answer, so nothing else rolls forward.
 * `detail` is one line for the timeline.
 */
export type PostgresRollForward =
  | {
      result: 'rolled';
      detail: string;
      evidence: Record<string, unknown>;
      baseBackupId: string;
      recoveredTo: string;
    }
  | { result: 'dump' | 'unreachable'; detail: string; evidence: Record<string, unknown> };

const isUnreachable = (err: unknown): err is LifeboatError =>
  err instanceof LifeboatError && err.code === 'STORE_UNREACHABLE';

function unreachable(err: LifeboatError): PostgresRollForward {
  return {
    result: 'unreachable',
    detail: `not rolled forward: the WAL archive's store does not answer (${err.message})`,
    evidence: { source: 'dump', unreachable: err.message },
  };
}

/** Any failure, with the way out added to its hint; a LifeboatError keeps its code. */
function failed(err: unknown, message: string): LifeboatError {
  const cause = err instanceof LifeboatError ? err : null;
  return new LifeboatError(cause?.code ?? 'INTERNAL', `${message}: ${(err as Error).message}`, {
    hint: cause?.hint ? `${NO_STREAM_HINT}; ${cause.hint}` : NO_STREAM_HINT,
    cause: err,
  });
}

export async function rollForwardPostgres(r: PostgresRollForwardRequest): Promise<PostgresRollForward> {
  let bases: Awaited<ReturnType<typeof listBaseBackups>>;
  try {
    bases = await listBaseBackups(r.runtime, r.target);
  } catch (err) {
    if (isUnreachable(err)) return unreachable(err);
    throw failed(err, 'the base backups cannot be listed');
  }
  if (bases.manifests.length === 0) {
    return {
      result: 'dump',
      detail: `database: the backup's dump alone (target ${r.target} has no base backup to replay WAL from; \`lifeboat wal basebackup\` takes one)`,
      evidence: { source: 'dump', baseBackupId: null, ...(bases.problems.length ? { problems: bases.problems } : {}) },
    };
  }

  const point = r.at ?? 'latest';
  // Only the WAL archived by now: a target still writing (a sandbox restore while production
  // trades, or the restore's own staging database on the target's server) keeps archiving,
  // and a replay to the end of the archive would chase it, never to end.
  const archivedBy = new Date().toISOString();
  let server: ScratchServer;
  try {
    server = await restorePostgresToPoint(r.runtime, r.target, { at: point, env: r.env, log: r.log, archivedBy });
  } catch (err) {
    if (isUnreachable(err)) return unreachable(err);
    const code = err instanceof LifeboatError ? err.code : null;
    throw failed(
      err,
      code === 'VERIFY_FAILED' || code === 'NOT_FOUND'
        ? `the WAL archive cannot be replayed to ${r.at ?? 'its end'}`
        : `the point-in-time recovery to ${r.at ?? 'the end of the WAL archive'} failed`,
    );
  }
  const replay = {
    baseBackupId: server.baseBackupId,
    recoveredTo: server.recoveredTo,
    lastSegment: server.lastSegment,
    replayedTo: server.target,
    archivedBy,
    replayMs: server.durationMs,
  };
  try {
    const notPast = (why: string): PostgresRollForward => ({
      result: 'dump',
      detail: `database: the backup's dump alone (${why})`,
      evidence: { source: 'dump', ...replay },
    });
    if (server.recoveredTo === null || Date.parse(server.recoveredTo) <= Date.parse(r.backup.createdAt)) {
      return notPast(
        `base backup ${server.baseBackupId} and the WAL after it reach ${server.recoveredTo ?? 'no commit'}, not past the backup, taken ${r.backup.createdAt}`,
      );
    }
    // A backup starts (createdAt) a moment before its dump's cut: to the end of the archive,
    // the replay must also pass that cut, or the copy could lack commits the dump holds. To a
    // point in time, the replay stopping before the cut is what was asked for.
    if (r.at === undefined && r.backup.position) {
      const replayed = await replayEnd(server.url);
      const end = replayed === null ? null : lsn(replayed);
      const cut = lsn(r.backup.position);
      if (end !== null && cut !== null && end < cut) {
        return notPast(`the replay ends at WAL position ${replayed}, before the backup's dump at ${r.backup.position}`);
      }
    }

    await mkdir(r.dir, { recursive: true });
    const dump = await new PostgresEngine(server.url).snapshot(r.dir);
    const facts = await dump.facts;
    if (!facts.integrity.ok) {
      throw new LifeboatError(
        'VERIFY_FAILED',
        `the dump of the scratch server does not read back: ${facts.integrity.detail}`,
      );
    }
    const staged = await replacePostgresStaging(
      r.destinationUrl,
      r.stagedName,
      r.stamp,
      dump.file,
      facts.tables,
      `the scratch server recovered to ${server.recoveredTo}`,
    );
    return {
      result: 'rolled',
      baseBackupId: server.baseBackupId,
      recoveredTo: server.recoveredTo,
      detail: `database to ${server.recoveredTo} (base backup ${server.baseBackupId} + WAL through ${server.lastSegment ?? 'its own end'})`,
      evidence: { source: 'base backup + WAL', ...replay, dumpBytes: dump.size, tables: staged.checked.tables },
    };
  } catch (err) {
    throw failed(err, `rolling forward to ${server.recoveredTo ?? point}`);
  } finally {
    // The data directory is a full copy of the target's cluster: it never outlives the step.
    await server
      .stop({ remove: true })
      .catch((err: Error) =>
        r.log.warn(
          { err: { message: err.message }, dataDir: server.dataDir, stop: stopCommand(server) },
          'restore: the scratch server did not stop; stop it and remove its data directory by hand',
        ),
      );
  }
}

function lsn(text: string): number | null {
  try {
    return parseLsn(text);
  } catch {
    return null;
  }
}

/** Where the replay ended: pg_last_wal_replay_lsn() stays there after promotion. */
async function replayEnd(url: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
    return rows[0]?.lsn ?? null;
  } catch {
    // Not known: the dump that follows says soon enough whether the server answers.
    return null;
  } finally {
    await client.end().catch(() => {});
  }
}
