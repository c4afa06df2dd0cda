import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BullMqJobBus, S3ObjectStore } from '@lifeboat/adapters';
import { BackupResult, layout, parseStoredManifest } from '@lifeboat/domain';
import { generateTarget, getTestStack, stackStoreConfig, type TestStack, uniqueName } from '@lifeboat/testkit';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '..', '..', '..');
const main = join(repo, 'apps', 'backup', 'dist', 'main.js');

let stack: TestStack;
let dir: string;
let bucket: string;
let prefix: string;
let worker: ChildProcess;
let opsUrl: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  if (!existsSync(main)) throw new Error('apps/backup is not built: run `npm run build` (npm test does it first)');
  stack = await getTestStack();
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-worker-'));
  await generateTarget(join(dir, 'target'), { sizeBytes: 1024 * 1024, seed: 3 });
  bucket = await stack.s3.createBucket('worker');
  prefix = uniqueName('lbq');
  const config = join(dir, 'lifeboat.yaml');
  await writeFile(
    config,
    [
      'store:',
      '  type: s3',
      `  endpoint: ${stack.s3.endpoint}`,
      `  region: ${stack.s3.region}`,
      `  bucket: ${bucket}`,
      '  prefix: prod',
      '  partSizeMiB: 5',
      'targets:',
      '  demo:',
      '    root: target',
      '',
    ].join('\n'),
  );
  env = {
    ...process.env,
    LIFEBOAT_CONFIG: config,
    LIFEBOAT_REDIS_URL: stack.redis.url,
    LIFEBOAT_QUEUE_PREFIX: prefix,
    LIFEBOAT_OPS_PORT: '0',
    LIFEBOAT_OPS_HOST: '127.0.0.1',
    AWS_ACCESS_KEY_ID: stack.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
  };
  worker = spawn(process.execPath, [main], { cwd: dir, env, stdio: ['ignore', 'pipe', 'inherit'] });
  opsUrl = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: worker.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; ops?: string };
      if (entry.msg === 'backup worker started' && entry.ops) resolve(entry.ops);
    });
    worker.once('exit', (code) => reject(new Error(`backup worker exited early with code ${code}`)));
  });
});

afterAll(async () => {
  if (worker && worker.exitCode === null) worker.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('the backup worker as a separate process', () => {
  it('answers /health and /ready', async () => {
    expect((await fetch(`${opsUrl}/health`)).status).toBe(200);
    const ready = await fetch(`${opsUrl}/ready`);
    expect(await ready.json()).toMatchObject({ status: 'ready', app: 'backup' });
  });

  it('takes a queued backup and commits it to the S3 store', async () => {
    const bus = new BullMqJobBus({ url: stack.redis.url, prefix });
    try {
      const { jobId } = await bus.enqueue('backup', { target: 'demo', reason: 'worker test', requestedBy: 'test' });
      const result = BackupResult.parse(await bus.result('backup', jobId, { timeoutMs: 60_000 }));
      const store = new S3ObjectStore(stackStoreConfig(stack, bucket, 'prod'));
      const manifest = parseStoredManifest(
        JSON.parse(Buffer.from(await store.getBytes(layout.manifest('demo', result.backupId))).toString()),
      );
      expect(manifest.archive.size).toBe(result.bytes);
      expect((await store.head(manifest.archive.key))?.size).toBe(result.bytes);
      expect(manifest.database?.integrity.ok).toBe(true);
      const metrics = await (await fetch(`${opsUrl}/metrics`)).text();
      expect(metrics).toMatch(/lifeboat_backup_last_success_timestamp_seconds\{target="demo"\} \d+/);
    } finally {
      await bus.close();
    }
  });

  it('fails a payload that does not parse at once, without retrying it', async () => {
    const bus = new BullMqJobBus({ url: stack.redis.url, prefix });
    try {
      const { jobId } = await bus.enqueue('backup', { target: 'demo', kind: 'everything' });
      await expect(bus.result('backup', jobId, { timeoutMs: 30_000 })).rejects.toMatchObject({
        code: 'INVALID_REQUEST',
        message: expect.stringContaining('kind'),
      });
      const queue = new Queue('backup', { connection: { url: stack.redis.url }, prefix });
      const job = await queue.getJob(jobId);
      expect(job?.attemptsMade).toBe(1);
      await queue.close();
    } finally {
      await bus.close();
    }
  });

  it('serves the CLI in distributed mode', async () => {
    // Not spawnSync: the S3 server may run inside this test process and must keep answering.
    const cli = spawn(
      process.execPath,
      [join(repo, 'apps', 'cli', 'bin', 'lifeboat.js'), 'backup', '--json', '--reason', 'via cli'],
      {
        cwd: dir,
        env,
      },
    );
    let stdout = '';
    let stderr = '';
    cli.stdout.on('data', (c) => {
      stdout += c;
    });
    cli.stderr.on('data', (c) => {
      stderr += c;
    });
    const code = await new Promise((r) => cli.once('exit', r));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(BackupResult.parse(JSON.parse(stdout)).target).toBe('demo');
  });

  it('stops cleanly on SIGTERM', async () => {
    worker.kill('SIGTERM');
    const code = await new Promise((r) => worker.once('exit', r));
    expect(code).toBe(0);
  });
});
