// Replication: a committed backup copied to another location. The archive goes first, then is
// read back from the location and checked against the manifest's size and sha256; only then
// are the verification record and the manifest (the commit marker) written there. A copy that
// does not match is removed and the job fails: a location never lists a copy nobody checked.
import { measure, type Runtime } from '@lifeboat/adapters';
import {
  describeZodError,
  type JobBus,
  LifeboatError,
  layout,
  ReplicateRequest,
  type ReplicateResult,
  replicateJobId,
  type VerificationRecord,
} from '@lifeboat/domain';
import { type BackupContext, throttled } from '../context.js';
import { latestVerification, readManifest, verificationKey } from './catalog.js';

/** How a backup queues its copies on a job bus: one job per backup and location (a second ask finds the first). */
export function queueCopiesOn(bus: Pick<JobBus, 'enqueue'>): NonNullable<BackupContext['replicate']> {
  return (request) =>
    bus.enqueue('replicate', request, { jobId: replicateJobId(request.target, request.backupId, request.location) });
}

export function parseReplicateRequest(payload: unknown): ReplicateRequest {
  const parsed = ReplicateRequest.safeParse(payload);
  if (!parsed.success) throw new LifeboatError('INVALID_REQUEST', describeZodError(parsed.error, 'replicate request'));
  return parsed.data;
}

export async function replicate(payload: unknown, ctx: BackupContext): Promise<ReplicateResult> {
  const request = parseReplicateRequest(payload);
  const started = Date.now();
  const { target, backupId } = request;
  ctx.runtime.target(target);
  const source = ctx.runtime.at(request.from);
  const dest = ctx.runtime.at(request.location);
  const manifest = await readManifest(source, target, backupId);
  const done = (outcome: ReplicateResult['outcome']): ReplicateResult => ({
    target,
    backupId,
    location: dest.locationName,
    from: source.locationName,
    outcome,
    bytes: manifest.archive.size,
    sha256: manifest.archive.sha256,
    durationMs: Date.now() - started,
  });

  // A job run twice (a retry after the copy committed) finds the copy and stops there.
  if (await hasVerifiedCopy(dest, target, backupId, manifest.archive.sha256)) return done('present');

  const report = throttled(ctx.progress);
  const copy = measure(await source.store.get(manifest.archive.key), (bytes) =>
    report.push({ phase: `copy to ${dest.locationName}`, bytes, totalBytes: manifest.archive.size }),
  );
  await dest.store.put(manifest.archive.key, copy.stream, ctx.signal ? { signal: ctx.signal } : {});
  report.flush();
  const removeCopy = () => dest.store.delete(manifest.archive.key).catch(() => undefined);
  if (copy.digest.size !== manifest.archive.size || copy.digest.sha256 !== manifest.archive.sha256) {
    await removeCopy();
    throw new LifeboatError(
      'VERIFY_FAILED',
      `backup ${backupId} in ${source.locationName} (${source.store.location}) does not match its manifest: read ${copy.digest.size} bytes, sha256 ${copy.digest.sha256}; the manifest says ${manifest.archive.size} bytes, sha256 ${manifest.archive.sha256}`,
      { hint: `verify it with \`lifeboat verify ${backupId}\`; nothing was committed in ${dest.locationName}` },
    );
  }

  // What the location stored, read back: the copy is proven, not just sent.
  const check = Date.now();
  const stored = measure(await dest.store.get(manifest.archive.key), (bytes) =>
    report.push({ phase: `verify in ${dest.locationName}`, bytes, totalBytes: manifest.archive.size }),
  );
  for await (const _ of stored.stream) {
    // hashing happens in measure()
  }
  report.flush();
  const ok = stored.digest.size === manifest.archive.size && stored.digest.sha256 === manifest.archive.sha256;
  const at = new Date();
  const record: VerificationRecord = {
    backupId,
    level: 'quick',
    ok,
    at: at.toISOString(),
    durationMs: Date.now() - check,
    problems: ok
      ? []
      : [
          `archive checksum: the copy in ${dest.locationName} has ${stored.digest.size} bytes, sha256 ${stored.digest.sha256}; the manifest says ${manifest.archive.size} bytes, sha256 ${manifest.archive.sha256}`,
        ],
    checks: [
      {
        name: 'archive checksum',
        ok,
        detail: `copy from ${source.locationName} read back from ${dest.store.location}: ${stored.digest.size} bytes, sha256 ${stored.digest.sha256}`,
      },
    ],
  };
  if (!ok) {
    await removeCopy();
    throw new LifeboatError(
      'VERIFY_FAILED',
      `the copy of backup ${backupId} in ${dest.locationName} does not read back intact: ${record.problems[0]}`,
      {
        hint: 'nothing was committed there; the job is retried',
      },
    );
  }
  await dest.store.put(
    verificationKey(target, backupId, at, 'quick', true),
    Buffer.from(`${JSON.stringify(record, null, 2)}\n`),
  );
  // The manifest last, byte for byte the primary's: from here on the copy exists.
  await dest.store.put(
    layout.manifest(target, backupId),
    await source.store.getBytes(layout.manifest(target, backupId)),
  );
  ctx.log.info(
    { target, backupId, from: source.locationName, location: dest.locationName, bytes: stored.digest.size },
    'backup copied and verified',
  );
  return done('copied');
}

/** Whether a location holds a committed copy of a backup, with the given archive, that passed its last check. */
async function hasVerifiedCopy(dest: Runtime, target: string, backupId: string, sha256: string): Promise<boolean> {
  if (!(await dest.store.head(layout.manifest(target, backupId)))) return false;
  if ((await latestVerification(dest, target, backupId))?.ok !== true) return false;
  return (await readManifest(dest, target, backupId)).archive.sha256 === sha256;
}
