// The test stack: a real PostgreSQL, Redis and S3 server for integration tests, taken from
// the environment, else testcontainers, else the local services (DESIGN.md §9).
//
// Precedence, per service: LIFEBOAT_TEST_POSTGRES_URL, LIFEBOAT_TEST_REDIS_URL and
// LIFEBOAT_TEST_S3_ENDPOINT (+ LIFEBOAT_TEST_S3_ACCESS_KEY, LIFEBOAT_TEST_S3_SECRET_KEY,
// optional LIFEBOAT_TEST_S3_REGION); else containers when a container runtime answers; else
// PostgreSQL and Redis on their default local ports and s3rver in this process.
// LIFEBOAT_TEST_STACK=local or =testcontainers skips the runtime probe and forces one.
// A service that cannot be had fails the run with what is missing and how to start it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3ObjectStoreOptions } from '@lifeboat/adapters';
import pg from 'pg';

export type StackSource = 'env' | 'testcontainers' | 'local';

export interface TestStack {
  /** 'env' when every service came from the environment, else how the rest were had. */
  source: StackSource;
  /** Where each service came from. */
  sources: { postgres: StackSource; redis: StackSource; s3: StackSource };
  postgres: {
    /** A database this user may create databases from (and is allowed to drop them). */
    url: string;
    /** Creates a fresh database with a unique name and returns its URL. */
    createDatabase(prefix: string): Promise<string>;
    /** Drops a database made by createDatabase (any other is refused). */
    dropDatabase(url: string): Promise<void>;
  };
  redis: { url: string };
  s3: {
    endpoint: string;
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
    /** Creates a fresh bucket with a unique name and returns the name. */
    createBucket(prefix: string): Promise<string>;
  };
  /** Stops what the stack started and drops databases still left; getTestStack() starts a new one after. */
  close(): Promise<void>;
}

const LOCAL_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const LOCAL_REDIS_URL = 'redis://127.0.0.1:6379';
const RUNTIME_PROBE_MS = 3_000;
const SERVICE_PROBE_MS = 3_000;
const IMAGES = {
  postgres: 'postgres:16-alpine',
  redis: 'redis:7-alpine',
  minio: 'minio/minio:RELEASE.2024-12-13T22-19-12Z',
};
const START_POSTGRES = 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';
const START_REDIS =
  'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log';

let current: Promise<TestStack> | undefined;

/** The process's test stack, started on first use. */
export function getTestStack(): Promise<TestStack> {
  current ??= startStack().catch((err: unknown) => {
    // A later call may find the services up (someone started them); don't memoise the failure.
    current = undefined;
    throw err;
  });
  return current;
}

/** A short, unique, lowercase name ([a-z][a-z0-9]*, at most 31 chars): valid as a database, bucket or queue name. */
export function uniqueName(prefix: string): string {
  let clean = prefix
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 20);
  if (!/^[a-z]/.test(clean)) clean = `t${clean}`.slice(0, 20);
  return `${clean}${randomBytes(5).toString('hex')}`;
}

/** Constructor options for an S3ObjectStore on the stack's S3 server. */
export function stackStoreConfig(stack: TestStack, bucket: string, prefix = ''): S3ObjectStoreOptions {
  return {
    endpoint: stack.s3.endpoint,
    region: stack.s3.region,
    bucket,
    prefix,
    forcePathStyle: true,
    credentials: { accessKeyId: stack.s3.accessKeyId, secretAccessKey: stack.s3.secretAccessKey },
    partSizeBytes: 5 * 1024 * 1024,
  };
}

interface S3Service {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

interface Started<T> {
  value: T;
  source: StackSource;
  stop?: () => Promise<void>;
}

async function startStack(): Promise<TestStack> {
  const env = process.env;
  const forced = env.LIFEBOAT_TEST_STACK;
  if (forced !== undefined && forced !== 'local' && forced !== 'testcontainers') {
    throw new Error(`test stack: LIFEBOAT_TEST_STACK=${forced} is not "local" or "testcontainers"`);
  }
  const s3FromEnv = s3ServiceFromEnv(env);
  const needsMore = !env.LIFEBOAT_TEST_POSTGRES_URL || !env.LIFEBOAT_TEST_REDIS_URL || !s3FromEnv;
  let mode: 'testcontainers' | 'local' = 'local';
  if (needsMore) mode = forced ?? ((await containerRuntimeAnswers()) ? 'testcontainers' : 'local');

  const [postgres, redis, s3] = await Promise.allSettled([
    env.LIFEBOAT_TEST_POSTGRES_URL
      ? checkPostgres(env.LIFEBOAT_TEST_POSTGRES_URL, 'env')
      : mode === 'testcontainers'
        ? containerPostgres()
        : checkPostgres(LOCAL_POSTGRES_URL, 'local'),
    env.LIFEBOAT_TEST_REDIS_URL
      ? checkRedis(env.LIFEBOAT_TEST_REDIS_URL, 'env')
      : mode === 'testcontainers'
        ? containerRedis()
        : checkRedis(LOCAL_REDIS_URL, 'local'),
    s3FromEnv ? checkS3(s3FromEnv) : mode === 'testcontainers' ? containerMinio() : startS3rver(),
  ]);
  const results = [postgres, redis, s3];
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [errorText(r.reason)] : []));
  if (postgres.status === 'rejected' || redis.status === 'rejected' || s3.status === 'rejected') {
    await Promise.allSettled(results.map((r) => (r.status === 'fulfilled' ? r.value.stop?.() : undefined)));
    throw new Error(`test stack: cannot run integration tests without these services:\n- ${failures.join('\n- ')}`);
  }
  return assemble(postgres.value, redis.value, s3.value);
}

function assemble(postgres: Started<string>, redis: Started<string>, s3: Started<S3Service>): TestStack {
  const adminUrl = postgres.value;
  const created = new Set<string>();
  const s3Client = new S3Client({
    endpoint: s3.value.endpoint,
    region: s3.value.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.value.accessKeyId, secretAccessKey: s3.value.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 2,
  });
  const sources = { postgres: postgres.source, redis: redis.source, s3: s3.source };
  const all = Object.values(sources);
  const source: StackSource = all.every((s) => s === 'env')
    ? 'env'
    : all.includes('testcontainers')
      ? 'testcontainers'
      : 'local';

  const stack: TestStack = {
    source,
    sources,
    postgres: {
      url: adminUrl,
      async createDatabase(prefix) {
        const name = uniqueName(prefix);
        await withClient(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
        created.add(name);
        const url = new URL(adminUrl);
        url.pathname = `/${name}`;
        return url.toString();
      },
      async dropDatabase(url) {
        const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
        if (!created.has(name)) {
          throw new Error(`test stack: refusing to drop database "${name}": createDatabase() did not make it`);
        }
        // FORCE ends sessions a test left open (a pool not yet closed) instead of failing.
        await withClient(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
        created.delete(name);
      },
    },
    redis: { url: redis.value },
    s3: {
      ...s3.value,
      async createBucket(prefix) {
        const name = uniqueName(prefix);
        await s3Client.send(new CreateBucketCommand({ Bucket: name }));
        return name;
      },
    },
    async close() {
      if (current && (await current.catch(() => undefined)) === stack) current = undefined;
      for (const name of created) {
        await withClient(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).catch(
          () => {},
        );
      }
      created.clear();
      s3Client.destroy();
      await Promise.allSettled([postgres.stop?.(), redis.stop?.(), s3.stop?.()]);
    },
  };
  return stack;
}

async function withClient<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: SERVICE_PROBE_MS });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

function errorText(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map(errorText).join('; ');
  if (err instanceof Error) return err.message || (err as { code?: string }).code || err.name;
  return String(err);
}

async function containerRuntimeAnswers(): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    // A socket that accepts but never answers hangs the probe for 20 s or more: race it.
    const probe = getContainerRuntimeClient().then(
      () => true,
      () => false,
    );
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), RUNTIME_PROBE_MS);
      timer.unref();
    });
    return await Promise.race([probe, timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

async function checkPostgres(url: string, source: StackSource): Promise<Started<string>> {
  try {
    await withClient(url, (client) => client.query('SELECT 1'));
  } catch (err) {
    const how =
      source === 'env'
        ? 'fix LIFEBOAT_TEST_POSTGRES_URL or start that server'
        : `start it with \`${START_POSTGRES}\`, or set LIFEBOAT_TEST_POSTGRES_URL`;
    throw new Error(`PostgreSQL does not answer at ${redact(url)} (${errorText(err)}): ${how}`);
  }
  return { value: url, source };
}

async function checkRedis(url: string, source: StackSource): Promise<Started<string>> {
  const { Redis } = await import('ioredis');
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: SERVICE_PROBE_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // Without a listener, ioredis reports connection errors as unhandled 'error' events.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    const how =
      source === 'env'
        ? 'fix LIFEBOAT_TEST_REDIS_URL or start that server'
        : `start it with \`${START_REDIS}\`, or set LIFEBOAT_TEST_REDIS_URL`;
    throw new Error(`Redis does not answer at ${redact(url)} (${errorText(err)}): ${how}`);
  } finally {
    client.disconnect();
  }
  return { value: url, source };
}

function s3ServiceFromEnv(env: NodeJS.ProcessEnv): S3Service | undefined {
  const endpoint = env.LIFEBOAT_TEST_S3_ENDPOINT;
  if (!endpoint) return undefined;
  const accessKeyId = env.LIFEBOAT_TEST_S3_ACCESS_KEY;
  const secretAccessKey = env.LIFEBOAT_TEST_S3_SECRET_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error(
      'test stack: LIFEBOAT_TEST_S3_ENDPOINT is set but LIFEBOAT_TEST_S3_ACCESS_KEY and LIFEBOAT_TEST_S3_SECRET_KEY are not both set',
    );
  }
  return { endpoint, region: env.LIFEBOAT_TEST_S3_REGION || 'us-east-1', accessKeyId, secretAccessKey };
}

async function checkS3(service: S3Service): Promise<Started<S3Service>> {
  // Any HTTP answer (even 403 to an anonymous request) proves the server is there.
  try {
    await fetch(service.endpoint, { signal: AbortSignal.timeout(SERVICE_PROBE_MS) });
  } catch (err) {
    throw new Error(
      `S3 server does not answer at ${redact(service.endpoint)} (${errorText(err)}): fix LIFEBOAT_TEST_S3_ENDPOINT or start that server`,
    );
  }
  return { value: service, source: 'env' };
}

/** An S3 server of a test's own: it can be stopped (a location going down) without touching the stack's. */
export interface PrivateS3 {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  createBucket(prefix: string): Promise<string>;
  /** Stops the server; its port then refuses connections. */
  stop(): Promise<void>;
}

/** Starts s3rver in this process on a free port (on every machine: it is an npm dependency). */
export async function startPrivateS3(): Promise<PrivateS3> {
  const started = await startS3rver();
  const { value } = started;
  const client = new S3Client({
    endpoint: value.endpoint,
    region: value.region,
    forcePathStyle: true,
    credentials: { accessKeyId: value.accessKeyId, secretAccessKey: value.secretAccessKey },
    maxAttempts: 1,
  });
  let stopped = false;
  return {
    ...value,
    async createBucket(prefix) {
      const name = uniqueName(prefix);
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      client.destroy();
      await started.stop?.();
    },
  };
}

async function startS3rver(): Promise<Started<S3Service>> {
  const directory = await mkdtemp(join(tmpdir(), 'lifeboat-s3rver-'));
  try {
    const { default: S3rver } = await import('s3rver');
    // port 0: a taken port crashes s3rver with an unhandled error instead of rejecting.
    const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });
    const address = await server.run();
    return {
      value: {
        endpoint: `http://127.0.0.1:${address.port}`,
        region: 'us-east-1',
        accessKeyId: 'S3RVER',
        secretAccessKey: 'S3RVER',
      },
      source: 'local',
      stop: async () => {
        // close() waits for idle keep-alive sockets of clients a test never destroyed; cut them.
        (server as unknown as { httpServer?: Server }).httpServer?.closeAllConnections();
        await server.close();
        await rm(directory, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw new Error(
      `the in-process S3 server (s3rver) did not start (${errorText(err)}): check that s3rver is installed (npm ci), or set LIFEBOAT_TEST_S3_ENDPOINT`,
    );
  }
}

async function containerPostgres(): Promise<Started<string>> {
  try {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer(IMAGES.postgres).start();
    return { value: container.getConnectionUri(), source: 'testcontainers', stop: () => stopContainer(container) };
  } catch (err) {
    throw containerFailure('PostgreSQL', IMAGES.postgres, err);
  }
}

async function containerRedis(): Promise<Started<string>> {
  try {
    const { RedisContainer } = await import('@testcontainers/redis');
    const container = await new RedisContainer(IMAGES.redis).start();
    return { value: container.getConnectionUrl(), source: 'testcontainers', stop: () => stopContainer(container) };
  } catch (err) {
    throw containerFailure('Redis', IMAGES.redis, err);
  }
}

async function containerMinio(): Promise<Started<S3Service>> {
  try {
    const { MinioContainer } = await import('@testcontainers/minio');
    const container = await new MinioContainer(IMAGES.minio).start();
    return {
      value: {
        endpoint: container.getConnectionUrl(),
        region: 'us-east-1',
        accessKeyId: container.getUsername(),
        secretAccessKey: container.getPassword(),
      },
      source: 'testcontainers',
      stop: () => stopContainer(container),
    };
  } catch (err) {
    throw containerFailure('S3 (MinIO)', IMAGES.minio, err);
  }
}

async function stopContainer(container: { stop(): Promise<unknown> }): Promise<void> {
  await container.stop();
}

function containerFailure(service: string, image: string, err: unknown): Error {
  return new Error(
    `${service}: the container ${image} did not start (${errorText(err)}): check the container engine, or set LIFEBOAT_TEST_STACK=local to use the local services`,
  );
}
