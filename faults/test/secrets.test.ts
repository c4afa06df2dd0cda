import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { generateAgeKeyPair } from '@lifeboat/adapters';
import type { BackupResult, Manifest, RestoreResult } from '@lifeboat/domain';
import {
  checksums,
  type DemoTarget,
  generateTarget,
  getTestStack,
  initDemo,
  LIFEBOAT_BIN,
  lifeboat,
  type TestStack,
  uniqueName,
} from '@lifeboat/testkit';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { appMain, exec, type LoggedProcess, runLogged, scratchDir, sleep } from './harness.js';
import { Tally, trials } from './record.js';

vi.setConfig({ testTimeout: 600_000, hookTimeout: 300_000 });

let stack: TestStack;

beforeAll(async () => {
  stack = await getTestStack();
});

/** The values of a .env file longer than 8 characters (shorter ones, like `live`, are no secret). */
function envValues(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l))
    .map((l) => l.slice(l.indexOf('=') + 1).trim())
    .filter((v) => v.length > 8);
}

/** The `AGE-SECRET-KEY-…` line of an identity file. */
function secretKey(identityFile: string): string {
  const key = readFileSync(identityFile, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('AGE-SECRET-KEY-'));
  if (!key) throw new Error(`no secret key in ${identityFile}`);
  return key.trim();
}

/** Which of `secrets` occur in the bytes, or in them decompressed when they are a gzip stream. */
function secretsIn(bytes: Buffer, secrets: string[]): string[] {
  const views = [bytes];
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      views.push(gunzipSync(bytes));
    } catch {
      // not a whole gzip stream: the raw bytes are what there is
    }
  }
  return secrets.filter((s) => views.some((v) => v.includes(s)));
}

/** Every file under a directory, by path relative to it. */
function walk(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const visit = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else out.set(relative(root, p), readFileSync(p));
    }
  };
  if (existsSync(root)) visit(root);
  return out;
}

/** Every object of a bucket, with its bytes. */
async function bucketObjects(bucket: string): Promise<Map<string, Buffer>> {
  const s3 = new S3Client({
    endpoint: stack.s3.endpoint,
    region: stack.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: stack.s3.accessKeyId, secretAccessKey: stack.s3.secretAccessKey },
  });
  const out = new Map<string, Buffer>();
  try {
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
        out.set(
          o.Key as string,
          Buffer.from(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()),
        );
      }
      token = page.NextContinuationToken;
    } while (token);
  } finally {
    s3.destroy();
  }
  return out;
}

/** Every value under a BullMQ prefix in Redis (strings, hashes, lists, sets, sorted sets, streams), as text. */
async function redisText(redis: Redis, prefix: string): Promise<{ keys: number; text: string }> {
  const parts: string[] = [];
  let keys = 0;
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    for (const key of batch) {
      keys += 1;
      const type = await redis.type(key);
      parts.push(key);
      if (type === 'string') parts.push((await redis.get(key)) ?? '');
      else if (type === 'hash') parts.push(...Object.entries(await redis.hgetall(key)).flat());
      else if (type === 'list') parts.push(...(await redis.lrange(key, 0, -1)));
      else if (type === 'set') parts.push(...(await redis.smembers(key)));
      else if (type === 'zset') parts.push(...(await redis.zrange(key, '0', '-1')));
      else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
    }
  } while (cursor !== '0');
  return { keys, text: parts.join('\n') };
}

/**
 * A generated target with a credentials file its config marks secret (besides the .env files),
 * its database in WAL mode so `lifeboat ship` can stream it, and the secrets to look for.
 */
async function secretTarget(dir: string, seed: number): Promise<{ root: string; secrets: string[] }> {
  const root = join(dir, 'target');
  await generateTarget(root, { sizeBytes: 256 * 1024, seed });
  const token = `tok_${uniqueName('cred')}_${seed}`;
  await mkdir(join(root, 'credentials'));
  await writeFile(join(root, 'credentials', 'exchange.json'), `${JSON.stringify({ apiToken: token })}\n`, {
    mode: 0o600,
  });
  await exec('sqlite3', [join(root, 'trading.db'), 'PRAGMA journal_mode=WAL;']);
  const secrets = [...envValues(join(root, '.env')), ...envValues(join(root, '.env.testnet')), token];
  return { root, secrets: [...new Set(secrets)] };
}

/** The target's part of lifeboat.yaml: the credentials file is config, and secret. */
const TARGET_YAML = [
  'targets:',
  '  demo:',
  '    root: target',
  '    database: { engine: sqlite, path: trading.db }',
  "    files: { config: ['.env*', 'credentials/*'] }",
  "    secrets: ['.env*', '**/.env*', 'credentials/*']",
  '    ship: { intervalMs: 200 }',
];

/**
 * `lifeboat ship` in the foreground while the trading database and the shadow-order log are
 * written to, then SIGTERM (which ships what is left): the segments it made, and its output.
 */
async function shipWhileWriting(
  root: string,
  env: NodeJS.ProcessEnv,
): Promise<{ sqlite: number; files: number; output: string; code: number | null }> {
  const ship = runLogged([LIFEBOAT_BIN, 'ship', '--interval', '200', '--json'], env);
  // Logged (LIFEBOAT_LOG_LEVEL) once its first round is shipped and SIGTERM is handled.
  await ship.logged('ship: started', 120_000);
  const db = new Database(join(root, 'trading.db'));
  try {
    db.exec('CREATE TABLE IF NOT EXISTS fault_notes (id INTEGER PRIMARY KEY, note TEXT)');
    for (let k = 0; k < 10; k++) {
      db.prepare('INSERT INTO fault_notes (note) VALUES (?)').run(`note ${k} ${'x'.repeat(200)}`);
      await writeFile(
        join(root, 'shadow_orders.jsonl'),
        `${JSON.stringify({ fault: k, at: new Date().toISOString() })}\n`,
        { flag: 'a' },
      );
      await sleep(150);
    }
    await sleep(1000);
    ship.child.kill('SIGTERM');
    const code = await ship.exited;
    let streams: Array<{ stream: string; segments: number }> = [];
    try {
      streams = (JSON.parse(ship.stdout()) as { streams: typeof streams }).streams;
    } catch {
      // reported below as no segments
    }
    const count = (s: string) => streams.filter((x) => x.stream === s).reduce((n, x) => n + x.segments, 0);
    return { sqlite: count('sqlite'), files: count('files'), output: ship.output(), code };
  } finally {
    db.close();
  }
}

describe.concurrent('a wrong or missing age key', () => {
  let dir: string;
  let demo: DemoTarget;
  let root: string;
  let demoDir: string;
  let backupId: string;
  let material: string[];
  const KS = 'kill_switch_state.json';

  beforeAll(async () => {
    dir = await scratchDir('lifeboat-fault-keys-');
    demoDir = join(dir, 'demo');
    demo = await initDemo(demoDir);
    root = join(demoDir, 'target');
    const made = await lifeboat(['backup', '--config', demo.config, '--json']);
    expect(made.code, made.stderr).toBe(0);
    const result = JSON.parse(made.stdout) as BackupResult;
    expect(result.encrypted).toBe(true);
    backupId = result.backupId;
    material = [secretKey(join(demoDir, 'keys', 'age-identity.txt')), ...envValues(join(root, '.env'))];
  });

  afterAll(async () => {
    await demo?.stop();
  });

  /** lifeboat.yaml of the demo with another identity file (beside it, so every other path holds). */
  async function configWith(name: string, identityFile: string): Promise<string> {
    const file = join(demoDir, `${name}.yaml`);
    const text = readFileSync(demo.config, 'utf8').replace(/identityFile: .*/, `identityFile: ${identityFile}`);
    await writeFile(file, text);
    return file;
  }

  const stagings = () => readdirSync(dirname(root)).filter((n) => n.startsWith(`.${basename(root)}.lifeboat-restore-`));

  it('verify --full and a production restore fail clearly, write nothing to production, leave the kill switch ON and print no key', async () => {
    const tally = new Tally();
    const n = trials(5, 1);
    for (let i = 1; i <= n; i++) {
      const wrong = await generateAgeKeyPair();
      await writeFile(join(demoDir, 'keys', `wrong-${i}.txt`), wrong.file, { mode: 0o600 });
      const cases = [
        {
          name: 'wrong key',
          config: await configWith(`wrong-${i}`, `keys/wrong-${i}.txt`),
          says: /cannot decrypt the archive: no identity matched/,
        },
        {
          name: 'missing key',
          config: await configWith(`missing-${i}`, `keys/absent-${i}.txt`),
          says: new RegExp(
            `cannot read age identity file ${join(demoDir, 'keys', `absent-${i}.txt`).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`,
          ),
        },
      ];
      for (const c of cases) {
        const problems: string[] = [];
        const keys = [...material, wrong.identity];
        const before = checksums(root, (rel) => rel === KS);
        const verify = await lifeboat(['verify', backupId, '--full', '--json', '--config', c.config]);
        const vText = `${verify.stdout}\n${verify.stderr}`;
        if (verify.code === 0) problems.push('verify --full passed');
        if (!c.says.test(vText)) problems.push(`verify said: ${vText.trim().slice(0, 300)}`);
        const restore = await lifeboat([
          'restore',
          '--config',
          c.config,
          '--scenario',
          'db-corruption',
          '--yes',
          '--json',
        ]);
        const rText = `${restore.stdout}\n${restore.stderr}`;
        let result: RestoreResult | null = null;
        try {
          result = JSON.parse(restore.stdout) as RestoreResult;
        } catch {
          problems.push(`restore printed no result (exit ${restore.code}): ${rText.slice(0, 500)}`);
        }
        if (restore.code !== 1) problems.push(`restore exited ${restore.code}`);
        if (result) {
          if (result.outcome !== 'FAILED' || result.failedStep !== 'fetch-and-verify') {
            problems.push(`restore ${result.outcome} at ${result.failedStep}`);
          }
          if (!c.says.test(result.error?.message ?? '')) problems.push(`restore error: ${result.error?.message}`);
          if (result.movedAside.length) problems.push(`moved aside ${result.movedAside.join(', ')}`);
        }
        // Production: every file as it was but the kill switch, which a failed restore leaves ON.
        const after = checksums(root, (rel) => rel === KS);
        const changed = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter(
          (k) => before[k] !== after[k],
        );
        if (changed.length) problems.push(`production changed: ${changed.join(', ')}`);
        const state = (JSON.parse(readFileSync(join(root, KS), 'utf8')) as { state: string }).state;
        if (state !== 'ON') problems.push(`kill switch ${state}`);
        if (stagings().length) problems.push(`staging left (it may hold decrypted secrets): ${stagings().join(', ')}`);
        const leaked = keys.filter((k) => vText.includes(k) || rText.includes(k));
        if (leaked.length) problems.push(`${leaked.length} secrets printed`);
        // A key problem is not the backup's: it is not marked failed, and `latest` still means it.
        const list = await lifeboat(['backups', 'list', '--json', '--config', demo.config]);
        const listed = (
          JSON.parse(list.stdout) as { backups: Array<{ backupId: string; verification: { ok: boolean } | null }> }
        ).backups;
        const mine = listed.find((b) => b.backupId === backupId);
        if (mine?.verification?.ok !== true)
          problems.push(`the backup is now listed ${JSON.stringify(mine?.verification)}`);
        const outcome = problems.length
          ? `${c.name}: problems: ${problems.join('; ')}`
          : `${c.name}: verify exits ${verify.code}, restore exits 1 at fetch-and-verify naming ${c.name === 'wrong key' ? 'the key that does not open the archive' : 'the identity file'}; production untouched, kill switch ON, no key printed`;
        console.log(
          `key trial ${i}/${n} (${c.name}): verify exit ${verify.code}, restore exit ${restore.code}: ${(result?.error?.message ?? rText).slice(0, 200)}; ${outcome}`,
        );
        tally.add(outcome, problems.length > 0);
      }
    }
    // The right key still opens it.
    const right = await lifeboat(['verify', backupId, '--full', '--config', demo.config]);
    expect(right.code, right.stderr).toBe(0);
    tally.record(
      'secrets',
      'wrong or missing age key on verify and restore',
      'an encrypted backup read with a fresh age identity, and with an identity file that does not exist: `verify --full` exits non-zero and `restore --scenario db-corruption` to production exits 1 at fetch-and-verify, each saying the key does not open the archive or naming the identity file; every production file unchanged but the kill switch, left ON as a failed restore documents; no staging left; no secret key or .env value in any output; the backup not marked failed, and the right key then verifies it',
    );
    expect(tally.lost).toBe(0);
  });
});

describe.concurrent('encryption on: no secret in the store, the logs or Redis', () => {
  it('a full backup and the shipped stream, in an S3 bucket through a worker and in a directory, hold no secret in clear', async () => {
    const tally = new Tally();
    const n = trials(5, 1);
    const redis = new Redis(stack.redis.url);
    try {
      for (let i = 1; i <= n; i++) {
        // Odd trials: an S3 bucket, the backup through a backup worker on Redis. Even: a directory, embedded.
        const distributed = i % 2 === 1;
        const dir = await scratchDir('lifeboat-fault-secrets-on-');
        const { root, secrets } = await secretTarget(dir, 100 + i);
        const keys = await generateAgeKeyPair();
        await writeFile(join(dir, 'identity.txt'), keys.file, { mode: 0o600 });
        const bucket = distributed ? await stack.s3.createBucket('faultsec') : '';
        const store = distributed
          ? [
              'store:',
              '  type: s3',
              `  endpoint: ${stack.s3.endpoint}`,
              `  region: ${stack.s3.region}`,
              `  bucket: ${bucket}`,
              '  prefix: prod',
              '  forcePathStyle: true',
            ]
          : ['store:', '  type: fs', '  path: store'];
        await writeFile(
          join(dir, 'lifeboat.yaml'),
          [
            ...store,
            'encryption:',
            `  recipients: [${keys.recipient}]`,
            '  identityFile: identity.txt',
            ...TARGET_YAML,
            '',
          ].join('\n'),
        );
        const prefix = uniqueName('lbfs');
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          LIFEBOAT_CONFIG: join(dir, 'lifeboat.yaml'),
          LIFEBOAT_LOG_LEVEL: 'debug',
          AWS_ACCESS_KEY_ID: stack.s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
          LIFEBOAT_REDIS_URL: '',
        };
        const logs: string[] = [];
        let worker: LoggedProcess | null = null;
        if (distributed) {
          Object.assign(env, {
            LIFEBOAT_REDIS_URL: stack.redis.url,
            LIFEBOAT_QUEUE_PREFIX: prefix,
            LIFEBOAT_OPS_PORT: '0',
            LIFEBOAT_OPS_HOST: '127.0.0.1',
          });
          worker = runLogged([appMain('backup')], env);
          await worker.logged('backup worker started', 120_000);
        }
        const problems: string[] = [];
        const backup = await lifeboat(['backup', '--json'], env);
        logs.push(backup.stdout + backup.stderr);
        if (backup.code !== 0) problems.push(`backup exited ${backup.code}: ${backup.stderr.slice(-500)}`);
        // The stream runs in the CLI in both modes, beside the target.
        const shipped = await shipWhileWriting(root, { ...env, LIFEBOAT_REDIS_URL: '' });
        logs.push(shipped.output);
        if (shipped.code !== 0) problems.push(`ship exited ${shipped.code}`);
        if (shipped.sqlite === 0 || shipped.files === 0)
          problems.push(`shipped ${shipped.sqlite} database and ${shipped.files} file segments`);
        let jobData = { keys: 0, text: '' };
        if (worker) {
          jobData = await redisText(redis, prefix);
          worker.child.kill('SIGTERM');
          await worker.exited;
          logs.push(worker.output());
        }
        const objects = distributed ? await bucketObjects(bucket) : walk(join(dir, 'store'));
        const age = secretKey(join(dir, 'identity.txt'));
        // Values that are also in the configuration or the environment given (127.0.0.1 in a URL) are no secret of the .env.
        const configured = `${readFileSync(join(dir, 'lifeboat.yaml'), 'utf8')}\n${Object.values(env).join('\n')}`;
        const looked = [...secrets.filter((s) => !configured.includes(s)), age];
        for (const [key, bytes] of objects) {
          const found = secretsIn(bytes, looked);
          if (found.length) problems.push(`object ${key} holds ${found.length} secrets`);
        }
        const inLogs = looked.filter((s) => logs.some((l) => l.includes(s)));
        if (inLogs.length) problems.push(`${inLogs.length} secrets in the logs`);
        const inRedis = looked.filter((s) => jobData.text.includes(s));
        if (inRedis.length) problems.push(`${inRedis.length} secrets in Redis`);
        // The secrets were stored, encrypted: the manifest lists them, and `age` opens the archive to them.
        const manifestKey = [...objects.keys()].find((k) => /\/backups\/[^/]+\/manifest\.json$/.test(k));
        const manifest = manifestKey ? (JSON.parse((objects.get(manifestKey) as Buffer).toString()) as Manifest) : null;
        const secretEntries =
          manifest?.entries
            .filter((e) => e.secret)
            .map((e) => e.source)
            .sort() ?? [];
        if (JSON.stringify(secretEntries) !== JSON.stringify(['.env', '.env.testnet', 'credentials/exchange.json'])) {
          problems.push(`secret entries in the manifest: ${secretEntries.join(', ')}`);
        }
        const unencrypted = [...objects.keys()].filter(
          (k) => /\/(backups|stream)\//.test(k) && /\.(gz|seg|db)$/.test(k),
        );
        if (unencrypted.length) problems.push(`not encrypted: ${unencrypted.join(', ')}`);
        const archiveKey = [...objects.keys()].find((k) => k.endsWith('.tar.gz.age'));
        if (archiveKey) {
          const file = join(dir, 'archive.tar.gz.age');
          await writeFile(file, objects.get(archiveKey) as Buffer);
          const { stdout } = await exec('bash', [
            '-c',
            'age -d -i "$1" "$2" | tar -xzO "$3"',
            '_',
            join(dir, 'identity.txt'),
            file,
            'config/.env',
          ]);
          if (stdout !== readFileSync(join(root, '.env'), 'utf8')) problems.push('the archive does not give back .env');
        } else problems.push('no encrypted archive in the store');
        const where = distributed ? 'S3 bucket, backup worker' : 'directory, embedded';
        const outcome = problems.length
          ? `${where}: problems: ${problems.join('; ')}`
          : `${where}: no secret in the store${worker ? ', the debug logs or the job data in Redis' : ' or the debug logs'}`;
        console.log(
          `encrypted trial ${i}/${n} (${where}): ${objects.size} objects (${shipped.sqlite} database and ${shipped.files} file segments shipped), ` +
            `${logs.map((l) => l.length).join(' + ')} bytes of output and debug logs (CLI, ship${worker ? ', worker' : ''})${worker ? `, ${jobData.keys} Redis keys` : ''}; ${looked.length} secrets looked for` +
            `${secrets.length + 1 - looked.length ? ` (${secrets.length + 1 - looked.length} skipped: also in the configuration)` : ''}; ${outcome}`,
        );
        tally.add(outcome, problems.length > 0);
      }
    } finally {
      redis.disconnect();
    }
    tally.record(
      'secrets',
      'secrets with encryption on',
      'a generated target (two .env files, a credentials file its config marks secret) backed up in full and streamed by `lifeboat ship` while written to, into an S3 bucket through a backup worker and into a directory: every object of the store, raw and gunzipped where only gzip, the CLI, ship and worker logs at debug level and every value under the BullMQ prefix in Redis, searched for each .env value over 8 characters, the credential and the age secret key: none found; the manifest lists the three as secret entries and `age -d | tar` gives .env back',
    );
    expect(tally.lost).toBe(0);
  });
});

describe.concurrent('encryption off: no secret stored at all', () => {
  it('the backup leaves out every secret file and says so; neither the archive nor the stream holds one', async () => {
    const tally = new Tally();
    const n = trials(5, 1);
    for (let i = 1; i <= n; i++) {
      const s3 = i % 2 === 0;
      const dir = await scratchDir('lifeboat-fault-secrets-off-');
      const { root, secrets } = await secretTarget(dir, 200 + i);
      const bucket = s3 ? await stack.s3.createBucket('faultplain') : '';
      const store = s3
        ? [
            'store:',
            '  type: s3',
            `  endpoint: ${stack.s3.endpoint}`,
            `  region: ${stack.s3.region}`,
            `  bucket: ${bucket}`,
            '  forcePathStyle: true',
          ]
        : ['store:', '  type: fs', '  path: store'];
      await writeFile(join(dir, 'lifeboat.yaml'), [...store, ...TARGET_YAML, ''].join('\n'));
      const env: NodeJS.ProcessEnv = {
        LIFEBOAT_CONFIG: join(dir, 'lifeboat.yaml'),
        LIFEBOAT_LOG_LEVEL: 'debug',
        AWS_ACCESS_KEY_ID: stack.s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
      };
      const problems: string[] = [];
      const backup = await lifeboat(['backup', '--json'], env);
      if (backup.code !== 0) problems.push(`backup exited ${backup.code}: ${backup.stderr.slice(-500)}`);
      const shipped = await shipWhileWriting(root, { ...process.env, ...env, LIFEBOAT_REDIS_URL: '' });
      if (shipped.code !== 0 || shipped.files === 0)
        problems.push(`ship exited ${shipped.code}, ${shipped.files} file segments: ${shipped.output.slice(-1500)}`);
      const objects = s3 ? await bucketObjects(bucket) : walk(join(dir, 'store'));
      const configured = readFileSync(join(dir, 'lifeboat.yaml'), 'utf8');
      const looked = secrets.filter((s) => !configured.includes(s));
      for (const [key, bytes] of objects) {
        const found = secretsIn(bytes, looked);
        if (found.length) problems.push(`object ${key} holds ${found.length} secrets`);
      }
      const logs = [backup.stdout, backup.stderr, shipped.output];
      if (looked.some((s) => logs.some((l) => l.includes(s)))) problems.push('a secret in the logs');
      // The archive's own entry list (real tar), and the manifest's account of what was left out.
      const archiveKey = [...objects.keys()].find((k) => k.endsWith('.tar.gz'));
      let entries: string[] = [];
      if (archiveKey) {
        const file = join(dir, 'archive.tar.gz');
        await writeFile(file, objects.get(archiveKey) as Buffer);
        entries = (await exec('tar', ['-tzf', file])).stdout.split('\n').filter(Boolean);
        const stored = entries.filter((e) => /(^|\/)\.env|credentials\//.test(e));
        if (stored.length) problems.push(`the archive holds ${stored.join(', ')}`);
        if (!entries.includes('manifest.json') || !entries.some((e) => e.startsWith('database/')))
          problems.push(`archive entries: ${entries.join(', ')}`);
      } else problems.push(`no archive among ${[...objects.keys()].join(', ')}`);
      const manifestKey = [...objects.keys()].find((k) => /\/backups\/[^/]+\/manifest\.json$/.test(k));
      const manifest = manifestKey ? (JSON.parse((objects.get(manifestKey) as Buffer).toString()) as Manifest) : null;
      const omitted = (manifest?.omitted ?? [])
        .filter((o) => /secret/.test(o.reason))
        .map((o) => o.source)
        .sort();
      if (JSON.stringify(omitted) !== JSON.stringify(['.env', '.env.testnet', 'credentials/exchange.json'])) {
        problems.push(`omitted as secret: ${omitted.join(', ') || 'nothing'}`);
      }
      if (manifest?.entries.some((e) => e.secret)) problems.push('a secret entry in the manifest');
      const result = backup.code === 0 ? (JSON.parse(backup.stdout) as BackupResult) : null;
      if (result && result.omitted.filter((o) => /secret/.test(o.reason)).length !== 3)
        problems.push(`the result says ${JSON.stringify(result.omitted)}`);
      const where = s3 ? 'S3 bucket' : 'directory';
      const outcome = problems.length
        ? `${where}: problems: ${problems.join('; ')}`
        : `${where}: the 3 secret files left out and listed under omitted ("${manifest?.omitted[0]?.reason}"); no secret in the store or the logs`;
      console.log(
        `plain trial ${i}/${n} (${where}): ${entries.length} archive entries, ${objects.size} objects, ${shipped.files} file segments, ${looked.length} secrets looked for; ${outcome}`,
      );
      tally.add(outcome, problems.length > 0);
    }
    tally.record(
      'secrets',
      'secrets with encryption off',
      'the same target with no encryption recipient, backed up and streamed into a directory and an S3 bucket: the archive’s entry list (`tar -tzf`) has no .env or credentials file, every object (raw and gunzipped) and the debug logs hold none of their values, and the manifest and the backup result list the three under `omitted` with the reason',
    );
    expect(tally.lost).toBe(0);
  });
});
