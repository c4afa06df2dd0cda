import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { generateTarget, getTestStack, type TestStack } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '..', '..', '..');
const cli = join(repo, 'apps', 'cli', 'bin', 'lifeboat.js');

let stack: TestStack;
let dir: string;
let bucket: string;
let s3: S3Client;
let env: NodeJS.ProcessEnv;

/** Runs the CLI without blocking this process (the S3 server may live in it). */
function lifeboat(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { cwd: dir, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => {
    stdout += c;
  });
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

async function keys(): Promise<string[]> {
  const out = await s3.send(new ListObjectsCommand({ Bucket: bucket }));
  return (out.Contents ?? []).map((o) => o.Key as string).sort();
}

beforeAll(async () => {
  stack = await getTestStack();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-crash-'));
  // Random-looking rows compress about 4:1, so this makes an archive of several 5 MiB parts.
  await generateTarget(join(dir, 'target'), { sizeBytes: 64 * 1024 * 1024, seed: 5 });
  bucket = await stack.s3.createBucket('crash');
  s3 = new S3Client({
    endpoint: stack.s3.endpoint,
    region: stack.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: stack.s3.accessKeyId, secretAccessKey: stack.s3.secretAccessKey },
  });
  await writeFile(
    join(dir, 'lifeboat.yaml'),
    [
      'store:',
      '  type: s3',
      `  endpoint: ${stack.s3.endpoint}`,
      `  region: ${stack.s3.region}`,
      `  bucket: ${bucket}`,
      '  partSizeMiB: 5',
      'targets:',
      '  demo:',
      '    root: target',
      'backup:',
      '  abandonedUploadMinutes: 0',
      '',
    ].join('\n'),
  );
  env = {
    ...process.env,
    LIFEBOAT_REDIS_URL: '',
    LIFEBOAT_CONFIG: join(dir, 'lifeboat.yaml'),
    AWS_ACCESS_KEY_ID: stack.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
  };
});

afterAll(async () => {
  s3?.destroy();
  await rm(dir, { recursive: true, force: true });
});

describe('a backup killed with SIGKILL during a multipart upload to S3', () => {
  it('leaves no manifest, is not listed, and its upload is cleaned up by the next prune', async () => {
    const child = spawn(process.execPath, [cli, 'backup'], { cwd: dir, env, stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    const deadline = Date.now() + 60_000;
    let marker: string | undefined;
    while (!marker && Date.now() < deadline && child.exitCode === null) {
      marker = (await keys()).find((k) => k.endsWith('.upload-in-progress.json'));
      if (!marker) await new Promise((r) => setTimeout(r, 10));
    }
    expect(marker, 'the backup should have started a multipart upload').toBeDefined();
    child.kill('SIGKILL');
    await exited;

    const left = await keys();
    expect(left.filter((k) => k.endsWith('manifest.json'))).toEqual([]);
    expect(left).toContain(marker);

    const list = await lifeboat(['backups', 'list', '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).backups).toEqual([]);

    const prune = await lifeboat(['prune', '--json']);
    expect(prune.stderr).toBe('');
    expect(prune.code).toBe(0);
    expect(JSON.parse(prune.stdout).locations[0].abandoned).toContain(marker?.replace('.upload-in-progress.json', ''));
    expect(await keys()).toEqual([]);

    // And the next backup goes through.
    const next = await lifeboat(['backup', '--json']);
    expect(next.code).toBe(0);
    expect((await keys()).filter((k) => k.endsWith('manifest.json'))).toHaveLength(1);
  });
});
