// Backups in three places, as the runbook keeps them: the primary (an S3 server of this
// test's own, so it can be stopped), a secondary bucket on the stack's S3 server, and a
// filesystem location standing for the off-site NAS. Every part is real: the CLI, the
// servers, the archives.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, loadConfig, type Runtime, sha256hex } from '@lifeboat/adapters';
import { replicate, silentLogger } from '@lifeboat/backup';
import { layout, type RestoreResult, sealManifest } from '@lifeboat/domain';
import { type CliRun, getTestStack, lifeboat, type PrivateS3, startPrivateS3, type TestStack } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { createBackupMetrics } from '../src/metrics.js';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let stack: TestStack;
let primary: PrivateS3;
let dir: string;
let config: string;
let env: NodeJS.ProcessEnv;

function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(-2000)}`);
  }
}

async function runtime(): Promise<Runtime> {
  return createRuntime(await loadConfig(config), { ...process.env, ...env });
}

async function keysIn(rt: Runtime, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of rt.store.list(prefix)) keys.push(o.key);
  return keys;
}

beforeAll(async () => {
  stack = await getTestStack();
  primary = await startPrivateS3();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-locations-'));
  const init = await lifeboat(['demo', 'init', join(dir, 'demo'), '--size', '256KiB', '--port', '9', '--json']);
  expect(init.code, init.stderr).toBe(0);
  config = json<{ config: string }>(init).config;
  const doc = parse(await readFile(config, 'utf8'));
  doc.store = {
    type: 's3',
    endpoint: primary.endpoint,
    region: primary.region,
    bucket: await primary.createBucket('primary'),
    accessKeyIdEnv: 'PRIMARY_S3_KEY',
    secretAccessKeyEnv: 'PRIMARY_S3_SECRET',
  };
  doc.retention = { keepDaily: 1 };
  doc.locations = {
    secondary: {
      type: 's3',
      endpoint: stack.s3.endpoint,
      region: stack.s3.region,
      bucket: await stack.s3.createBucket('secondary'),
      accessKeyIdEnv: 'SECONDARY_S3_KEY',
      secretAccessKeyEnv: 'SECONDARY_S3_SECRET',
      retention: { keepLast: 10, keepMonthly: 12 },
    },
    tertiary: { type: 'fs', path: 'nas', retention: { keepDaily: 0, keepYearly: 7 } },
  };
  await writeFile(config, stringify(doc));
  env = {
    PRIMARY_S3_KEY: primary.accessKeyId,
    PRIMARY_S3_SECRET: primary.secretAccessKey,
    SECONDARY_S3_KEY: stack.s3.accessKeyId,
    SECONDARY_S3_SECRET: stack.s3.secretAccessKey,
  };
});

afterAll(async () => {
  await primary?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Listed = {
  locations: Array<{ name: string; reachable: boolean; problem?: string }>;
  backups: Array<{ backupId: string; copies: Record<string, string> }>;
};

describe('backup locations', () => {
  let first: string;

  it('a backup commits in the primary and lands, checksum-verified, in every other location', async () => {
    const run = await lifeboat(['backup', '--config', config, '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    const result = json<{ backupId: string; copies: Array<{ location: string; outcome: string }> }>(run);
    first = result.backupId;
    expect(result.copies.map((c) => [c.location, c.outcome])).toEqual([
      ['secondary', 'copied'],
      ['tertiary', 'copied'],
    ]);

    const listed = json<Listed>(await lifeboat(['backups', 'list', '--config', config, '--json'], env));
    expect(listed.locations.map((l) => [l.name, l.reachable])).toEqual([
      ['primary', true],
      ['secondary', true],
      ['tertiary', true],
    ]);
    expect(listed.backups).toEqual([
      expect.objectContaining({
        backupId: first,
        copies: { primary: 'verified', secondary: 'verified', tertiary: 'verified' },
      }),
    ]);

    // Each copy is the primary's, byte for byte: the same manifest, and a verification record
    // of the archive read back from that location.
    const rt = await runtime();
    const manifest = Buffer.from(await rt.store.getBytes(layout.manifest('demo', first)));
    for (const name of ['secondary', 'tertiary']) {
      const there = rt.at(name);
      expect(Buffer.from(await there.store.getBytes(layout.manifest('demo', first)))).toEqual(manifest);
      const records = await keysIn(there, layout.verificationsPrefix('demo', first));
      expect(records).toHaveLength(1);
      const record = JSON.parse(Buffer.from(await there.store.getBytes(records[0] as string)).toString('utf8'));
      expect(record).toMatchObject({ ok: true, level: 'quick' });
      expect(record.checks[0].detail).toContain(`read back from ${there.store.location}`);
    }
    // And `verify --location` checks a copy where it lies.
    const verify = await lifeboat(['verify', first, '--location', 'secondary', '--config', config, '--json'], env);
    expect(verify.code, verify.stderr).toBe(0);
    expect(json<{ ok: boolean }>(verify).ok).toBe(true);
  });

  it('a copy that does not match the manifest is never committed in the location', async () => {
    const rt = await runtime();
    const backupId = `${first.slice(0, -4)}beef`;
    // A backup in the primary whose archive was damaged after it committed.
    const manifest = JSON.parse(Buffer.from(await rt.store.getBytes(layout.manifest('demo', first))).toString('utf8'));
    const archive = Buffer.from(await rt.store.getBytes(manifest.archive.key));
    const middle = archive.length >> 1;
    archive.writeUInt8((archive.readUInt8(middle) ^ 0xff) & 0xff, middle);
    manifest.backupId = backupId;
    manifest.archive.key = layout.archive('demo', backupId, true);
    await rt.store.put(manifest.archive.key, archive);
    // Sealed again: the manifest is sound, only the archive is not.
    await rt.store.put(
      layout.manifest('demo', backupId),
      Buffer.from(JSON.stringify(sealManifest(manifest, sha256hex, null))),
    );

    await expect(
      replicate({ target: 'demo', backupId, location: 'tertiary' }, { runtime: rt, log: silentLogger }),
    ).rejects.toMatchObject({ code: 'VERIFY_FAILED', message: expect.stringContaining('does not match its manifest') });
    expect(await keysIn(rt.at('tertiary'), layout.backupPrefix('demo', backupId))).toEqual([]);
    // Tidy up: this backup is not part of the rest of the story.
    for (const key of await keysIn(rt, layout.backupPrefix('demo', backupId))) await rt.store.delete(key);
  });

  it('retention runs per location and keeps the only verified copy another location still wants', async () => {
    // A second backup whose copies were never made (the other locations were down then).
    const rt = await runtime();
    const second = await lifeboat(['backup', '--config', config, '--json'], env);
    expect(second.code, second.stderr).toBe(0);
    const secondId = json<{ backupId: string }>(second).backupId;
    for (const name of ['secondary', 'tertiary']) {
      for (const key of await keysIn(rt.at(name), layout.backupPrefix('demo', secondId))) {
        await rt.at(name).store.delete(key);
      }
    }
    // A third, copied everywhere: the primary (keepDaily 1) now keeps only it.
    const third = await lifeboat(['backup', '--config', config, '--json'], env);
    expect(third.code, third.stderr).toBe(0);
    const thirdId = json<{ backupId: string }>(third).backupId;

    type Pruned = {
      locations: Array<{
        location: string;
        plan: { keep: Array<{ backupId: string; reasons: string[] }>; delete: Array<{ backupId: string }> };
      }>;
    };
    const plan = json<Pruned>(await lifeboat(['prune', '--dry-run', '--config', config, '--json'], env));
    const at = (name: string) => plan.locations.find((l) => l.location === name)?.plan;
    // Primary: the first has copies elsewhere and goes; the second's only verified copy is here
    // and the secondary's retention (the last 10) wants it: it stays, saying why.
    expect(at('primary')?.delete.map((d) => d.backupId)).toEqual([first]);
    expect(at('primary')?.keep.find((k) => k.backupId === secondId)?.reasons).toEqual([
      'only verified copy: secondary keeps it once its copy is made',
    ]);
    // Secondary keeps both it has (the last 10); tertiary (7 yearly) keeps the newest of the year.
    expect(at('secondary')?.delete).toEqual([]);
    expect(at('tertiary')?.delete.map((d) => d.backupId)).toEqual([first]);
    expect(at('tertiary')?.keep.map((k) => k.backupId)).toEqual([thirdId]);

    // The catch-up copies what the secondary lacks (the tertiary wants nothing older than it has).
    const caught = await lifeboat(['backups', 'replicate', '--config', config, '--json'], env);
    expect(caught.code, caught.stderr).toBe(0);
    expect(json<{ copies: Array<{ location: string; backupId: string; outcome: string }> }>(caught).copies).toEqual([
      { location: 'secondary', backupId: secondId, outcome: 'copied' },
    ]);

    const done = await lifeboat(['prune', '--config', config, '--json'], env);
    expect(done.code, done.stderr).toBe(0);
    const listed = json<Listed>(await lifeboat(['backups', 'list', '--config', config, '--json'], env));
    expect(Object.fromEntries(listed.backups.map((b) => [b.backupId, b.copies]))).toEqual({
      [first]: { primary: 'missing', secondary: 'verified', tertiary: 'missing' },
      [secondId]: { primary: 'missing', secondary: 'verified', tertiary: 'missing' },
      [thirdId]: { primary: 'verified', secondary: 'verified', tertiary: 'verified' },
    });
  });

  it('a metric gives each location its copy lag', async () => {
    const rt = await runtime();
    const metrics = createBackupMetrics();
    await metrics.refreshCopyLag(rt, 'demo');
    const lag = await metrics.copyLag.get();
    expect(lag.values.map((v) => [v.labels.location, v.value])).toEqual([
      ['secondary', 0],
      ['tertiary', 0],
    ]);
    // A backup whose copies are not made yet: the lag is how long it has waited.
    const backup = await lifeboat(['backup', '--config', config, '--json'], env);
    const id = json<{ backupId: string }>(backup).backupId;
    for (const key of await keysIn(rt.at('secondary'), layout.backupPrefix('demo', id))) {
      await rt.at('secondary').store.delete(key);
    }
    const later = new Date(Date.now() + 90_000);
    await metrics.refreshCopyLag(rt, 'demo', later);
    const after = Object.fromEntries((await metrics.copyLag.get()).values.map((v) => [v.labels.location, v.value]));
    expect(after.secondary).toBeGreaterThanOrEqual(90);
    expect(after.tertiary).toBe(0);
    expect((await metrics.missingCopies.get()).values.find((v) => v.labels.location === 'secondary')?.value).toBe(1);
  });

  it('with the primary stopped, the list and a restore use the secondary, saying why', async () => {
    await primary.stop();
    const listed = json<Listed>(await lifeboat(['backups', 'list', '--config', config, '--json'], env));
    expect(listed.locations.find((l) => l.name === 'primary')).toMatchObject({ reachable: false });
    expect(listed.backups.length).toBeGreaterThan(0);

    const sandbox = join(dir, 'sandbox');
    const run = await lifeboat(
      ['restore', '--config', config, '--scenario', 'server-loss', '--to', `sandbox:${sandbox}`, '--json'],
      env,
    );
    const result = json<RestoreResult>(run);
    expect(result.outcome, JSON.stringify(result.steps.filter((s) => s.status === 'FAILED'))).toBe('COMPLETED');
    expect(result.location).toBe('secondary');
    const select = result.steps.find((s) => s.name === 'select-backup');
    expect(select?.outcome).toMatch(/from secondary after primary \(.*\) unreachable/);
    expect(select?.evidence).toMatchObject({ location: 'secondary', skipped: [expect.stringContaining('primary')] });
    // The newest verified copy in the secondary is the newest backup it was given.
    const newest = listed.backups.filter((b) => b.copies.secondary === 'verified').at(-1);
    expect(result.backupId).toBe(newest?.backupId);
  });
});
