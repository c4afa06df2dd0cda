// Bad input, generated with fast-check: job payloads (every queue's handler, and a sample
// through BullMQ to the real worker processes), the console's API, lifeboat.yaml and the
// files `lifeboat reconcile` reads. Each surface gets random junk and valid inputs with one
// field broken; each must end in a clean validation error naming the field (never a crash,
// a 5xx, a retried job, or a reconciliation that passes), and valid inputs must still pass.
// Nothing is mocked: real handlers, workers, console, CLI, Redis and a demo target. Where a
// handler is called in this process, the jobs it could start and the kill switch it could
// reach are callbacks that fail the test: bad input must never get that far. The console's
// job bus is an in-process one with no consumer, so a valid call stops at its 202.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BullMqJobBus,
  createAuditTrail,
  createLockProvider,
  createRuntime,
  InProcessJobBus,
  loadConfig,
  parseConfig,
  type Runtime,
} from '@lifeboat/adapters';
import { backup, parseBackupRequest, parseReplicateRequest, replicate } from '@lifeboat/backup';
import { buildConsole, FailureLimiter, issueToken, parseTokenGrants, TokenStore } from '@lifeboat/console';
import {
  BackupRequest,
  Books,
  DRILL_NAMES,
  DrillRequest,
  type EnqueueOptions,
  type ErrorCode,
  ExchangeSnapshot,
  isLifeboatError,
  type JobBus,
  LifeboatConfig,
  type QueueName,
  ReconcileRequest,
  ReplicateRequest,
  RestoreRequest,
} from '@lifeboat/domain';
import { parseDrillRequest, runDrill } from '@lifeboat/drill-scheduler';
import { parseReconcileRequest, reconcile } from '@lifeboat/reconciler';
import { parseRestoreRequest, restore } from '@lifeboat/restore';
import {
  SIDES_AT as AT,
  agreeingSides,
  checksums,
  getTestStack,
  initDemo,
  lifeboat,
  REPO_ROOT,
  startWorker,
  uniqueName,
} from '@lifeboat/testkit';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { Tally, trials } from './record.js';

const RUNS = trials(500, 50);
/** Each test's time limit: the full suite's trials take minutes. */
const LIMIT = trials(900_000, 120_000);
const silent = { info() {}, warn() {}, error() {} };

let dir: string;
let configFile: string;
let storeDir: string;
let runtime: Runtime;
let books: string;
let snapshot: string;
let redisUrl: string;
let prefix: string;
/** The backup, restore, reconciler and drill-scheduler workers, started in beforeAll. */
let workersStarting: Promise<Array<{ child: ChildProcess; ops: string }>>;
const closers: Array<() => Promise<unknown>> = [];

// ---------------------------------------------------------------------------------------
// Generators shared by every surface

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = Record<string, unknown>;

/** Keys that reach Object.prototype when code assigns them carelessly. */
const POLLUTING = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty'];

const jsonType = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** A JSON value of another type than `v`: what a field of the wrong type gets. */
const wrongType = (v: unknown, nullOk = true) =>
  fc
    .oneof(
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.boolean(),
      fc.constant(null),
      fc.string({ maxLength: 20 }),
      fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
      // An object JSON.parse gives back whose toString is not a function: String(it) throws.
      fc.constant(JSON.parse('{"toString":1,"valueOf":1}') as Json),
    )
    .filter((x) => jsonType(x) !== jsonType(v) && (nullOk || x !== null));

/** Strings longer than `max` (in UTF-16 units, some of them astral characters). */
const longer = (max: number) =>
  fc
    .tuple(fc.integer({ min: max + 1, max: max + 4000 }), fc.constantFrom('x', '\u{1F6A3}', 'é'))
    .map(([n, c]) => c.repeat(Math.ceil(n / c.length)));

/** Objects nested thousands deep, and strings of megabytes. */
const deep = fc.tuple(fc.integer({ min: 50, max: 20_000 }), fc.constantFrom('object', 'array')).map(([n, kind]) => {
  let v: unknown = 'x';
  for (let i = 0; i < n; i++) v = kind === 'object' ? { target: v } : [v];
  return v;
});
const huge = fc.integer({ min: 1, max: 4 }).map((mb) => 'y'.repeat(mb * 1024 * 1024));

/** An own property, even for `__proto__` (an object literal would set the prototype instead). */
function withKey(o: Obj, key: string, value: unknown): Obj {
  const copy = { ...o };
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

function without(o: Obj, key: string): Obj {
  const copy = { ...o };
  delete copy[key];
  return copy;
}

const extraKey = (known: string[]) =>
  fc.oneof(fc.constantFrom(...POLLUTING), fc.string({ minLength: 1, maxLength: 20 })).filter((k) => !known.includes(k));

interface Mutation {
  payload: Obj;
  field: string;
  how: 'wrong type' | 'out of range' | 'missing' | 'extra';
}

/** A valid object with one field broken: wrong type, out of range or format, missing, or one too many. */
function mutationsOf(
  valid: Obj,
  required: string[],
  bad: Record<string, fc.Arbitrary<unknown>>,
): fc.Arbitrary<Mutation> {
  const keys = Object.keys(valid);
  const kinds: fc.Arbitrary<Mutation>[] = [
    extraKey(keys).chain((k) =>
      fc.jsonValue({ maxDepth: 2 }).map((v) => ({ payload: withKey(valid, k, v), field: k, how: 'extra' as const })),
    ),
  ];
  if (keys.length) {
    kinds.push(
      fc
        .constantFrom(...keys)
        .chain((k) =>
          wrongType(valid[k]).map((v) => ({ payload: withKey(valid, k, v), field: k, how: 'wrong type' as const })),
        ),
    );
  }
  if (Object.keys(bad).length) {
    kinds.push(
      fc.constantFrom(...Object.keys(bad)).chain((k) =>
        (bad[k] as fc.Arbitrary<unknown>).map((v) => ({
          payload: withKey(valid, k, v),
          field: k,
          how: 'out of range' as const,
        })),
      ),
    );
  }
  if (required.length) {
    kinds.push(
      fc.constantFrom(...required).map((k) => ({ payload: without(valid, k), field: k, how: 'missing' as const })),
    );
  }
  return fc.oneof(...kinds);
}

/** Random junk: anything JavaScript has, JSON documents, strings, deep objects, huge strings, the queue's own keys with junk values. */
function junkFor(keys: string[], jsonOnly: boolean): fc.Arbitrary<unknown> {
  const fields = fc.dictionary(fc.constantFrom(...keys, ...POLLUTING), fc.jsonValue({ maxDepth: 3 }), { minKeys: 1 });
  const json = fc.oneof(
    fc.json({ maxDepth: 4 }).map((t) => JSON.parse(t) as unknown),
    fc.string(),
    fields,
  );
  if (jsonOnly) return json;
  return fc.oneof(
    { weight: 3, arbitrary: json },
    {
      weight: 3,
      arbitrary: fc.anything({
        maxDepth: 4,
        withNullPrototype: true,
        withBigInt: true,
        withDate: true,
        withMap: true,
        withSet: true,
        withTypedArray: true,
        withSparseArray: true,
        withBoxedValues: true,
        withObjectString: true,
      }),
    },
    { weight: 1, arbitrary: deep },
    { weight: 1, arbitrary: huge },
    {
      weight: 2,
      arbitrary: fc.dictionary(fc.constantFrom(...keys, ...POLLUTING), fc.anything({ withNullPrototype: true }), {
        minKeys: 1,
      }),
    },
  );
}

/** Why an error is not the clean refusal expected, or null when it is. */
function notClean(err: unknown, codes: readonly ErrorCode[], names?: string): string | null {
  if (!isLifeboatError(err)) return `crashed: ${(err as Error)?.stack ?? String(err)}`;
  if (!codes.includes(err.code)) return `code ${err.code} (wanted ${codes.join(' or ')}): ${err.message.slice(0, 500)}`;
  if (err.retryable) return `retryable (${err.code}): ${err.message.slice(0, 500)}`;
  if (names !== undefined && !err.message.includes(names)) {
    return `message does not name "${names}": ${err.message.slice(0, 500)}`;
  }
  return null;
}

async function caught(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** Records the fault for docs/RELIABILITY.md and prints its summary line. */
function finish(tally: Tally, category: string, fault: string, checked: string): void {
  tally.record(category, fault, checked);
  const outcomes = Object.entries(tally.outcomes).map(([o, k]) => `${k}× ${o}`);
  console.log(`${fault}: ${tally.trials} trials, ${tally.lost} lost or let in; ${outcomes.join('; ')}`);
}

/** Adds the trial to the tally, and fails the property when it went wrong. */
function judge(tally: Tally, outcome: string, problem: string | null): void {
  tally.add(outcome, problem !== null);
  if (problem) throw new Error(problem);
}

// ---------------------------------------------------------------------------------------
// The demo target every surface uses, with a second location and no drill schedule

/** Books of three filled buys and a snapshot of the same orders and trades (they agree: PASS). */
const agreeingFiles = () => agreeingSides(3, [{ asset: 'USDT', total: '970' }]) as { books: Obj; snapshot: Obj };

beforeAll(async () => {
  if (!existsSync(join(REPO_ROOT, 'apps', 'drill-scheduler', 'dist', 'main.js'))) {
    throw new Error('the apps are not built: run `npm run build` (npm test does it first)');
  }
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-bad-input-'));
  const demo = await initDemo(join(dir, 'demo'));
  configFile = demo.config;
  storeDir = join(dir, 'demo', 'store');
  const doc = parseYaml(await readFile(configFile, 'utf8')) as Obj;
  doc.locations = { dr: { type: 'fs', path: 'store-dr' } };
  // Drills run only when a test asks for one.
  doc.drills = { schedule: Object.fromEntries(DRILL_NAMES.map((d) => [d, 'off'])) };
  await writeFile(configFile, toYaml(doc));
  runtime = createRuntime(await loadConfig(configFile));
  const files = agreeingFiles();
  books = join(dir, 'books.json');
  snapshot = join(dir, 'snapshot.json');
  writeFileSync(books, JSON.stringify(files.books));
  writeFileSync(snapshot, JSON.stringify(files.snapshot));

  // The workers get a store of their own (their audit trail must not share a chain with the console's below).
  const workersConfig = join(dir, 'demo', 'workers.yaml');
  await writeFile(
    workersConfig,
    toYaml({
      ...doc,
      store: { type: 'fs', path: 'store-workers' },
      locations: { dr: { type: 'fs', path: 'store-workers-dr' } },
    }),
  );
  redisUrl = (await getTestStack()).redis.url;
  prefix = uniqueName('lbbad');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LIFEBOAT_CONFIG: workersConfig,
    LIFEBOAT_REDIS_URL: redisUrl,
    LIFEBOAT_QUEUE_PREFIX: prefix,
    LIFEBOAT_OPS_PORT: '0',
    LIFEBOAT_OPS_HOST: '127.0.0.1',
    LIFEBOAT_CATALOG_URL: '',
    LIFEBOAT_ALERT_WEBHOOK_URL: '',
  };
  const starting = (['backup', 'restore', 'reconciler', 'drill-scheduler'] as const).map((app) =>
    startWorker(app, env),
  );
  workersStarting = Promise.all(starting);
  workersStarting.catch(() => undefined);
  closers.push(async () => {
    for (const w of await Promise.allSettled(starting)) {
      if (w.status === 'fulfilled' && w.value.child.exitCode === null) w.value.child.kill('SIGKILL');
    }
  });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// 1. Job payloads

const TARGET = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const notTarget = fc.oneof(
  fc.constantFrom('', 'a'.repeat(64), 'Demo', '../etc', '-demo', 'de mo', 'demo\n'),
  fc.string().filter((s) => !TARGET.test(s)),
);
const notIso = fc.oneof(
  // Some are RFC 3339 date-times that JSON Schema's format takes, but not the ISO 8601 the workers take.
  fc.constantFrom(
    '2025-02-30T00:00:00Z',
    '2025-11-25 02:00:00',
    '2025-11-25 02:00:00Z',
    '2025-11-25t02:00:00z',
    '2025-11-25T02:00:00+0100',
    '2025-11-25T02:00:00+01',
    '2025-11-25T02:00:00',
    'now',
    '2025-12-31T23:59:60Z',
    '',
  ),
  fc.date({ noInvalidDate: true }).map((d) => d.toString()),
  fc.string({ maxLength: 30 }),
);
/** Date-times as RFC 3339 and JSON Schema spell them (lower case, a space, offsets without colons, leap seconds), some of them valid ISO 8601. */
const dateTimes = fc
  .tuple(
    fc.date({ min: new Date('1970-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }),
    fc.constantFrom('T', 't', ' '),
    fc.constantFrom('', '.5', '.123456789'),
    fc.constantFrom('Z', 'z', '+01:00', '+0100', '+01', '-00:00', ''),
    fc.boolean(),
  )
  .map(([d, sep, frac, zone, leap]) => {
    const [day, time] = d.toISOString().slice(0, 19).split('T') as [string, string];
    return `${day}${sep}${leap ? '23:59:60' : time}${frac}${zone}`;
  });
const notIn = (values: readonly string[]) => fc.string({ maxLength: 30 }).filter((s) => !values.includes(s));
const emptyOr = (max: number) => fc.oneof(fc.constant(''), longer(max));

interface QueueCase {
  queue: QueueName;
  parse(payload: unknown): unknown;
  schema: { safeParse(v: unknown): { success: boolean } };
  valid: Obj;
  required: string[];
  bad: Record<string, fc.Arbitrary<unknown>>;
  /** The whole handler, as a worker calls it. */
  handle(payload: unknown): Promise<unknown>;
}

function queueCases(): QueueCase[] {
  const locks = createLockProvider({ dir: join(dir, 'locks') });
  const refuse = () => Promise.reject(new Error('no job may be started by bad input'));
  return [
    {
      queue: 'backup',
      parse: parseBackupRequest,
      schema: BackupRequest,
      valid: { target: 'demo', kind: 'state', reason: 'bad input', requestedBy: 'faults', scheduledAt: AT },
      required: ['target'],
      bad: {
        target: notTarget,
        kind: notIn(['full', 'database', 'state', 'pre-change']),
        reason: longer(500),
        requestedBy: emptyOr(200),
        scheduledAt: notIso,
      },
      handle: (p) => backup(p, { runtime, log: silent }),
    },
    {
      queue: 'replicate',
      parse: parseReplicateRequest,
      schema: ReplicateRequest,
      valid: {
        target: 'demo',
        backupId: '20260105T120000Z-state-ab12',
        location: 'dr',
        from: 'primary',
        requestedBy: 'x',
      },
      required: ['target', 'backupId', 'location'],
      bad: {
        target: notTarget,
        backupId: fc.oneof(fc.constantFrom('', 'a/b', 'a b', '%2e%2e'), longer(128)),
        location: emptyOr(40),
        from: emptyOr(40),
        requestedBy: emptyOr(200),
      },
      handle: (p) => replicate(p, { runtime, log: silent }),
    },
    {
      queue: 'restore',
      parse: parseRestoreRequest,
      schema: RestoreRequest,
      valid: {
        target: 'demo',
        scenario: 'db-corruption',
        backup: 'latest',
        pointInTime: AT,
        destination: 'sandbox',
        from: 'primary',
        avoid: ['dr'],
        stream: false,
        dryRun: true,
        reconcile: false,
        signOff: 'olga',
        reason: 'bad input',
        requestedBy: 'faults',
      },
      required: ['target', 'scenario'],
      bad: {
        target: notTarget,
        scenario: notIn(['app-crash', 'db-corruption', 'server-loss']),
        backup: fc.constant(''),
        pointInTime: notIso,
        destination: fc
          .oneof(fc.constantFrom('', 'sandbox:', 'staging', 'Production'), fc.string({ maxLength: 20 }))
          .filter((s) => !/^(production|sandbox(:.+)?)$/.test(s)),
        from: emptyOr(40),
        avoid: fc.oneof(
          fc.constant(['']),
          fc.array(fc.constant('dr'), { minLength: 21, maxLength: 40 }),
          longer(40).map((s) => [s]),
        ),
        signOff: emptyOr(200),
        reason: emptyOr(500),
        requestedBy: emptyOr(200),
      },
      handle: (p) =>
        restore(p, { runtime, log: silent, locks, reconcile: refuse, killSwitchFor: () => assertNeverCalled() }),
    },
    {
      queue: 'reconcile',
      parse: parseReconcileRequest,
      schema: ReconcileRequest,
      valid: {
        target: 'demo',
        recoveryType: 'manual',
        internal: '/nonexistent/books.json',
        exchange: '/nonexistent/snapshot.json',
        apply: false,
        signOff: 'olga',
        settings: { items: 'all' },
        store: false,
        requestedBy: 'faults',
      },
      required: [],
      bad: {
        target: notTarget,
        recoveryType: emptyOr(64),
        internal: fc.constant(''),
        exchange: fc.constant(''),
        signOff: emptyOr(200),
        requestedBy: emptyOr(200),
      },
      handle: (p) => reconcile(p, { runtime, log: silent }),
    },
    {
      queue: 'drill',
      parse: parseDrillRequest,
      schema: DrillRequest,
      valid: { drill: 'backup-verify', target: 'demo', requestedBy: 'faults', scheduledAt: AT },
      required: ['drill'],
      bad: { drill: notIn(DRILL_NAMES), target: notTarget, requestedBy: fc.constant('') },
      handle: (p) =>
        runDrill(p, {
          runtime,
          log: silent,
          jobs: { backup: refuse, restore: refuse, reconcile: refuse },
          alerts: null,
        }),
    },
  ];
}

function assertNeverCalled(): never {
  throw new Error('the kill switch was reached by a request that does not parse');
}

/**
 * Valid as to shape, wrong as to the world: a target, location or backup that does not exist
 * (`constructor` is a valid target name that every plain object answers to), a sandbox
 * inside production, a file that is not there. Each must be a permanent refusal.
 */
function semanticCases(): Array<{ queue: QueueName; payload: Obj; codes: ErrorCode[]; names: string }> {
  return [
    { queue: 'backup', payload: { target: 'constructor' }, codes: ['NOT_FOUND'], names: 'constructor' },
    { queue: 'backup', payload: { target: 'nope', kind: 'state' }, codes: ['NOT_FOUND'], names: 'nope' },
    {
      queue: 'replicate',
      payload: { target: 'demo', backupId: '20200101T000000Z-full-0000', location: 'dr' },
      codes: ['NOT_FOUND'],
      names: '20200101T000000Z-full-0000',
    },
    {
      queue: 'replicate',
      payload: { target: 'demo', backupId: '..', location: 'dr' },
      codes: ['INVALID_REQUEST'],
      names: '..',
    },
    {
      queue: 'replicate',
      payload: { target: 'demo', backupId: '20200101T000000Z-full-0000', location: 'nowhere' },
      codes: ['NOT_FOUND'],
      names: 'nowhere',
    },
    {
      queue: 'replicate',
      payload: { target: 'hasownproperty', backupId: 'x', location: 'dr' },
      codes: ['NOT_FOUND'],
      names: 'hasownproperty',
    },
    {
      queue: 'restore',
      payload: { target: 'constructor', scenario: 'db-corruption', dryRun: true },
      codes: ['NOT_FOUND'],
      names: 'constructor',
    },
    {
      queue: 'restore',
      payload: { target: 'demo', scenario: 'app-crash', destination: 'sandbox' },
      codes: ['INVALID_REQUEST'],
      names: 'sandbox',
    },
    {
      queue: 'restore',
      payload: { target: 'demo', scenario: 'db-corruption', destination: 'sandbox', from: 'nowhere' },
      codes: ['NOT_FOUND'],
      names: 'nowhere',
    },
    {
      queue: 'restore',
      payload: { target: 'demo', scenario: 'db-corruption', destination: 'sandbox', avoid: ['elsewhere'] },
      codes: ['NOT_FOUND'],
      names: 'elsewhere',
    },
    {
      queue: 'restore',
      payload: { target: 'demo', scenario: 'server-loss', destination: 'sandbox:target/inside' },
      codes: ['INVALID_REQUEST'],
      names: 'inside',
    },
    {
      queue: 'restore',
      payload: { target: 'demo', scenario: 'server-loss', destination: 'sandbox:target' },
      codes: ['INVALID_REQUEST'],
      names: 'inside the production target',
    },
    {
      queue: 'restore',
      payload: { target: 'demo', scenario: 'server-loss', destination: 'sandbox:keys' },
      codes: ['CONFLICT'],
      names: 'not empty',
    },
    { queue: 'reconcile', payload: { target: 'constructor' }, codes: ['NOT_FOUND'], names: 'constructor' },
    {
      queue: 'reconcile',
      payload: { internal: '/nonexistent/books.json', exchange: '/nonexistent/snapshot.json', store: false },
      codes: ['INVALID_REQUEST'],
      names: '/nonexistent/snapshot.json',
    },
    {
      queue: 'reconcile',
      payload: { target: 'demo', settings: { openOrdersAsCancelled: true } },
      codes: ['INVALID_REQUEST'],
      names: 'openOrdersAsCancelled',
    },
    {
      queue: 'reconcile',
      payload: { internal: '@books', exchange: '@snapshot', store: false, settings: { quantityTolerance: 5 } },
      codes: ['INVALID_REQUEST', 'INVALID_CONFIG'],
      names: 'quantityTolerance',
    },
    { queue: 'drill', payload: { drill: 'backup-verify', target: 'nope' }, codes: ['NOT_FOUND'], names: 'nope' },
    {
      queue: 'drill',
      payload: { drill: 'kill-switch', target: 'constructor' },
      codes: ['NOT_FOUND'],
      names: 'constructor',
    },
  ];
}

/** `@books` and `@snapshot` stand for the agreeing files, made in beforeAll. */
function withFiles(payload: Obj): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(payload)) out[k] = v === '@books' ? books : v === '@snapshot' ? snapshot : v;
  return out;
}

describe('bad job payloads', () => {
  it(
    'every queue refuses junk and one-field mutations with INVALID_REQUEST naming the field, before touching anything, and still takes valid payloads',
    async () => {
      const tally = new Tally();
      const before = checksums(storeDir);
      for (const c of queueCases()) {
        // The valid payload passes, and its mutations that stay valid do too.
        expect(c.parse(c.valid)).toBeTruthy();
        tally.add('valid payload accepted');

        await fc.assert(
          fc.asyncProperty(mutationsOf(c.valid, c.required, c.bad), async (m) => {
            if (c.schema.safeParse(m.payload).success) {
              const err = await caught(() => c.parse(m.payload));
              return judge(tally, 'mutation still valid: accepted', err ? `a valid payload was refused: ${err}` : null);
            }
            const err = await caught(() => c.handle(m.payload));
            judge(tally, `${m.how}: refused naming the field`, notClean(err, ['INVALID_REQUEST'], m.field));
            expect((err as Error).message.startsWith(`${c.queue} request: `)).toBe(true);
          }),
          { numRuns: RUNS },
        );

        await fc.assert(
          fc.asyncProperty(junkFor(Object.keys(c.valid), false), async (junk) => {
            if (c.schema.safeParse(junk).success) {
              const err = await caught(() => c.parse(junk));
              return judge(tally, 'junk that is valid: accepted', err ? `a valid payload was refused: ${err}` : null);
            }
            const err = await caught(() => c.handle(junk));
            // `<queue> request: <field or (top level)>: <what is wrong>`
            judge(tally, 'junk: refused', notClean(err, ['INVALID_REQUEST'], `${c.queue} request: `));
            expect((err as Error).message).toMatch(/request: [^:]+: /);
          }),
          { numRuns: RUNS },
        );
      }

      // Shaped right, wrong for the world: permanent refusals too.
      const cases = queueCases();
      for (const s of semanticCases()) {
        const c = cases.find((q) => q.queue === s.queue) as QueueCase;
        const err = await caught(() => c.handle(withFiles(s.payload)));
        judge(
          tally,
          `right shape, wrong for the world: ${(err as { code?: string })?.code}`,
          notClean(err, s.codes, s.names),
        );
      }
      expect(checksums(storeDir)).toEqual(before);
      expect(({} as Obj).polluted).toBeUndefined();
      finish(
        tally,
        'input',
        'job payloads, generated: every queue handler',
        'a LifeboatError INVALID_REQUEST (not retryable) naming the field; the store unchanged; valid payloads accepted',
      );
      expect(tally.lost).toBe(0);
    },
    LIMIT,
  );
});

// ---------------------------------------------------------------------------------------
// 2. The console's API

/** An in-process bus that keeps what was enqueued and runs nothing: a valid call stops at 202. */
class RecordingBus extends InProcessJobBus {
  readonly enqueued: Array<{ queue: QueueName; payload: unknown }> = [];
  override async enqueue(queue: QueueName, payload: unknown, options?: EnqueueOptions) {
    this.enqueued.push({ queue, payload });
    return super.enqueue(queue, payload, options);
  }
}

const PARSE: Partial<Record<QueueName, (p: unknown) => unknown>> = {
  backup: parseBackupRequest,
  restore: parseRestoreRequest,
  reconcile: parseReconcileRequest,
  drill: parseDrillRequest,
};

interface Route {
  url: string;
  method: 'POST' | 'DELETE' | 'GET';
  valid?: Obj;
  required?: string[];
  bad?: Record<string, fc.Arbitrary<unknown>>;
  /** Statuses a valid call may answer (a backup that does not exist, a rule that refuses). */
  ok: number[];
}

const ROUTES: Route[] = [
  { method: 'POST', url: '/api/session', valid: {}, ok: [204] },
  { method: 'DELETE', url: '/api/session', ok: [204] },
  {
    method: 'POST',
    url: '/api/targets/:target/backups',
    valid: { kind: 'state', reason: 'bad input' },
    bad: { kind: notIn(['full', 'database', 'state', 'pre-change']), reason: emptyOr(500) },
    ok: [202],
  },
  {
    method: 'POST',
    url: '/api/targets/:target/backups/20200101T000000Z-full-0000/verify',
    valid: { level: 'full' },
    bad: { level: notIn(['quick', 'full']) },
    ok: [404],
  },
  {
    method: 'POST',
    url: '/api/targets/:target/restores',
    valid: {
      scenario: 'db-corruption',
      backupId: 'latest',
      pointInTime: AT,
      destination: 'sandbox',
      dryRun: true,
      reason: 'bad input',
      confirm: 'demo',
    },
    required: ['scenario'],
    bad: {
      scenario: notIn(['app-crash', 'db-corruption', 'server-loss']),
      backupId: emptyOr(200),
      pointInTime: fc.oneof(notIso, dateTimes),
      destination: notIn(['sandbox', 'production']),
      reason: emptyOr(500),
      confirm: longer(100),
    },
    ok: [202],
  },
  {
    method: 'POST',
    url: '/api/targets/:target/reconciliations',
    valid: { apply: true, signOff: true },
    bad: {},
    ok: [202],
  },
  {
    method: 'POST',
    url: '/api/targets/:target/drills',
    valid: { drill: 'backup-verify' },
    required: ['drill'],
    bad: { drill: notIn(DRILL_NAMES) },
    ok: [202],
  },
  {
    method: 'POST',
    url: '/api/targets/:target/kill-switch/activate',
    valid: { reason: 'bad input' },
    required: ['reason'],
    bad: { reason: emptyOr(500) },
    ok: [200],
  },
  {
    method: 'POST',
    url: '/api/targets/:target/kill-switch/deactivation-requests',
    valid: { reason: 'bad input' },
    required: ['reason'],
    bad: { reason: emptyOr(500) },
    ok: [409],
  },
  {
    method: 'POST',
    url: '/api/targets/:target/kill-switch/deactivation-requests/20250101T000000Z-00000000/approve',
    valid: {},
    ok: [404],
  },
  { method: 'GET', url: '/api/targets/:target/drill-schedule', ok: [200] },
  { method: 'GET', url: '/api/audit', ok: [200] },
];

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/json; charset=latin1',
  'application/xml',
  'text/json',
  '',
];
const printable = (max: number) =>
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: max });
const headerName = fc.oneof(
  fc.constantFrom(
    'accept',
    'accept-encoding',
    'content-encoding',
    'cookie',
    'x-forwarded-for',
    'origin',
    'user-agent',
    'range',
    'expect',
  ),
  fc.stringMatching(/^x-[a-z0-9-]{1,20}$/),
);

interface ApiCall {
  target: string;
  body: { kind: string; payload?: string; contentType?: string; field?: string };
  query: string;
  headers: Record<string, string>;
}

function bodiesFor(route: Route): fc.Arbitrary<ApiCall['body']> {
  const json = (value: unknown) => JSON.stringify(value);
  const kinds: fc.Arbitrary<ApiCall['body']>[] = [
    fc
      .jsonValue({ maxDepth: 3 })
      .map((v) => ({ kind: 'junk JSON', payload: json(v), contentType: 'application/json' })),
    fc.string({ maxLength: 200 }).map((s) => ({ kind: 'not JSON', payload: `{${s}`, contentType: 'application/json' })),
    fc.tuple(fc.string({ maxLength: 100 }), fc.constantFrom(...CONTENT_TYPES)).map(([s, ct]) => ({
      kind: 'another content type',
      payload: s,
      contentType: ct,
    })),
    fc.integer({ min: 65 * 1024, max: 256 * 1024 }).map((n) => ({
      kind: 'too large',
      payload: json({ reason: 'z'.repeat(n) }),
      contentType: 'application/json',
    })),
    fc
      .constantFrom(
        '{"__proto__":{"polluted":true}}',
        '{"constructor":{"prototype":{"polluted":true}}}',
        '{"reason":"x","__proto__":{"polluted":true}}',
        '',
        'null',
        '[]',
        '"x"',
        '{"a":1}{"b":2}',
        '\u0000',
        '{"reason":"\\ud800"}',
      )
      .map((payload) => ({ kind: 'hostile JSON', payload, contentType: 'application/json' })),
  ];
  if (route.valid) {
    const mutation = mutationsOf(route.valid, route.required ?? [], route.bad ?? {}).map((m) => ({
      kind: `one field ${m.how}`,
      payload: json(m.payload),
      contentType: 'application/json',
      field: m.field,
    }));
    kinds.push(
      mutation,
      mutation,
      fc.constant({ kind: 'valid', payload: json(route.valid), contentType: 'application/json' }),
    );
  }
  return fc.oneof(...kinds);
}

function callsFor(route: Route): fc.Arbitrary<ApiCall> {
  return fc.record({
    target: fc.oneof(
      { weight: 5, arbitrary: fc.constant('demo') },
      {
        weight: 1,
        arbitrary: fc.constantFrom('constructor', '__proto__', '..', 'DEMO', 'a'.repeat(300), '%2e%2e', '%00'),
      },
      { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 40 }).map(encodeURIComponent) },
    ),
    body: route.method === 'POST' ? bodiesFor(route) : fc.constant({ kind: 'no body' }),
    query: fc.oneof(
      { weight: 3, arbitrary: fc.constant('') },
      {
        weight: 2,
        arbitrary: fc
          .dictionary(
            fc.oneof(fc.constantFrom('count', 'from', 'limit', 'afterSeq', ...POLLUTING), fc.string({ maxLength: 10 })),
            fc.oneof(fc.string({ maxLength: 30 }), notIso, fc.integer().map(String)),
            { maxKeys: 3 },
          )
          .map((d) => new URLSearchParams(d).toString()),
      },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          '%',
          '%zz',
          'a[b]=1',
          '__proto__[polluted]=1',
          'constructor[prototype][polluted]=1',
          'from=2025-12-31T23:59:60Z',
          'count=1e400',
          'limit=-0',
          'x='.repeat(2000),
        ),
      },
    ),
    headers: fc.dictionary(headerName, printable(200), { maxKeys: 3 }),
  });
}

describe('bad API calls to the console', () => {
  let app: FastifyInstance;
  let bus: RecordingBus;
  const admin = issueToken('adam', 'admin');

  beforeAll(async () => {
    bus = new RecordingBus();
    const audit = await createAuditTrail(runtime, { env: {}, log: silent });
    app = await buildConsole({
      runtime,
      bus: bus as JobBus,
      mode: 'embedded',
      tokens: new TokenStore(parseTokenGrants(admin.line, 'fault grants')),
      audit: audit.trail,
      log: silent,
      limiter: new FailureLimiter(1_000_000),
    });
    closers.push(async () => {
      await app.close();
      await bus.close();
      await audit.close();
    });
  });

  it(
    'answers every generated body, query and header with a 4xx and a JSON error naming the field, never a 5xx, and takes valid calls',
    async () => {
      const tally = new Tally();
      // One property over every route (each state-changing call appends to the audit trail, which takes its time).
      // Routes with more fields to break are called more often.
      const calls = fc
        .oneof(...ROUTES.map((r, i) => ({ weight: 1 + Object.keys(r.bad ?? {}).length, arbitrary: fc.constant(i) })))
        .chain((i) => callsFor(ROUTES[i] as Route).map((call) => ({ route: i, call })));
      await fc.assert(
        fc.asyncProperty(calls, async ({ route: i, call }) => {
          const route = ROUTES[i] as Route;
          const url = route.url.replace(':target', call.target) + (call.query ? `?${call.query}` : '');
          const seen = bus.enqueued.length;
          const res = await app.inject({
            method: route.method,
            url,
            headers: {
              ...call.headers,
              authorization: `Bearer ${admin.token}`,
              ...(call.body.contentType !== undefined ? { 'content-type': call.body.contentType } : {}),
            },
            ...(call.body.payload !== undefined ? { payload: call.body.payload } : {}),
          });
          const what = `${route.method} ${url.slice(0, 200)} [${call.body.kind}] ${String(call.body.payload).slice(0, 200)} -> ${res.statusCode} ${res.body.slice(0, 300)}`;
          if (res.statusCode >= 500) return judge(tally, `${res.statusCode}`, `server error: ${what}`);
          if (res.statusCode >= 400) {
            let body: { error?: { code?: unknown; message?: unknown } } = {};
            try {
              body = res.json();
            } catch {
              return judge(tally, 'not JSON', `error body is not JSON: ${what}`);
            }
            if (typeof body.error?.code !== 'string' || typeof body.error.message !== 'string') {
              return judge(tally, 'no error', `error body has no code and message: ${what}`);
            }
            const cleanValid = call.body.kind === 'valid' && call.target === 'demo' && !call.query;
            if (cleanValid && !route.ok.includes(res.statusCode)) {
              return judge(tally, 'valid refused', `a valid call was refused: ${what}`);
            }
            // Fastify refuses a body holding __proto__ as a whole (secure-json-parse), without naming it.
            const field = call.body.field === '__proto__' ? 'JSON' : call.body.field;
            if (res.statusCode === 400 && field !== undefined && call.target === 'demo' && !call.query) {
              return judge(
                tally,
                `400 naming the field`,
                body.error.message.includes(field) || body.error.message.includes(JSON.stringify(field))
                  ? null
                  : `the 400 does not name "${field}": ${what}`,
              );
            }
            return judge(tally, `${res.statusCode}`, null);
          }
          // Accepted: every job it enqueued parses as its worker parses it (the API lets in nothing the worker refuses).
          for (const job of bus.enqueued.slice(seen)) {
            const err = await caught(() => PARSE[job.queue]?.(job.payload));
            if (err)
              return judge(
                tally,
                'accepted, the worker refuses',
                `${what}: enqueued ${JSON.stringify(job.payload).slice(0, 300)}, refused by its worker: ${(err as Error).message}`,
              );
          }
          judge(tally, `${res.statusCode} (valid)`, null);
        }),
        { numRuns: trials(1200, 80) },
      );
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      expect(({} as Obj).polluted).toBeUndefined();
      finish(
        tally,
        'input',
        'console API: generated bodies, queries and headers',
        'a 4xx with a JSON error (400s name the field), never a 5xx; every accepted call enqueued a job its worker parses; /health answers after',
      );
      expect(tally.lost).toBe(0);
    },
    LIMIT,
  );
});

// ---------------------------------------------------------------------------------------
// 3. lifeboat.yaml

/** A configuration using most of what lifeboat.yaml can say. */
function richConfig(): Obj {
  return {
    version: 1,
    store: { type: 'fs', path: 'store' },
    locations: {
      dr: {
        type: 's3',
        endpoint: 'http://127.0.0.1:9000',
        region: 'eu-west-1',
        bucket: 'lifeboat-dr',
        prefix: 'p',
        partSizeMiB: 8,
        retention: { keepDaily: 7 },
      },
    },
    encryption: {
      recipients: ['age1accyhqtxf2st4xz04anmavpu0dkjqredjamy95xuu3hxzxk9k34qxf2nwr'],
      identityFile: 'keys/id.txt',
    },
    targets: {
      demo: {
        root: 'target',
        api: { url: 'http://127.0.0.1:8023', timeoutMs: 1500 },
        killSwitchFile: 'kill_switch_state.json',
        control: { start: 'true', startShadow: 'true', stop: 'true', timeoutMs: 1000, healthTimeoutMs: 1000 },
        exchange: { type: 'http', url: 'http://127.0.0.1:8024', timeoutMs: 1000 },
        reconcile: { settings: { items: 'all' } },
        drills: { killSwitchInProduction: false },
        database: { engine: 'sqlite', path: 'trading.db' },
        files: { state: ['a.json'], reports: ['reports/**'], config: ['.env*'], audit: ['logs/**'] },
        ship: { intervalMs: 1000, checkpointMiB: 1 },
        appendOnly: ['*.jsonl'],
        secrets: ['.env*'],
      },
    },
    retention: { keepLast: 1, keepDaily: 30, keepWeekly: 4, keepMonthly: 12, keepYearly: 2 },
    drills: {
      target: 'demo',
      targets: { rto: { killSwitch: '30s', databaseRestore: '15m' }, rpo: { orderHistory: 60 } },
      schedule: { 'kill-switch': '0 3 * * 1', 'annual-audit': 'off' },
      webhookUrlEnv: 'LIFEBOAT_ALERT_WEBHOOK_URL',
    },
    backup: { verifyAfter: 'quick', compressionLevel: 6, abandonedUploadMinutes: 60 },
  };
}

/** Every path in a document (objects and leaves), each with its value. */
function pathsOf(value: unknown, path: string[] = []): Array<{ path: string[]; value: unknown }> {
  const out = path.length ? [{ path, value }] : [];
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...path, Array.isArray(value) ? k : k]));
  }
  return out;
}

const isPlainObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function setAt(doc: unknown, path: string[], change: (parent: Obj, key: string) => void): unknown {
  const copy = structuredClone(doc) as Obj;
  let parent = copy;
  for (const k of path.slice(0, -1)) parent = parent[k] as Obj;
  change(parent, path.at(-1) as string);
  return copy;
}

/** Where an object takes any key (records): a key added there is a name, not an unknown setting. */
const RECORDS = new Set(['locations', 'targets', 'targets.demo.reconcile.settings', 'drills.schedule']);

const configMutation = fc.constantFrom(...pathsOf(richConfig())).chain(({ path, value }) =>
  fc.oneof(
    wrongType(value).map((v) => ({
      how: 'wrong type',
      path,
      doc: setAt(richConfig(), path, (p, k) => {
        Object.defineProperty(p, k, { value: v, enumerable: true, writable: true, configurable: true });
      }),
    })),
    fc.constant({ how: 'missing', path, doc: setAt(richConfig(), path, (p, k) => delete p[k]) }),
    fc.tuple(extraKey([]), fc.jsonValue({ maxDepth: 2 })).map(([key, v]) => {
      // Added to the object itself, or beside a value that is not one.
      const at = isPlainObject(value) ? [...path, key] : [...path.slice(0, -1), key];
      return {
        how: 'extra',
        path: at,
        doc: setAt(richConfig(), at, (p, k) => {
          Object.defineProperty(p, k, { value: v, enumerable: true, writable: true, configurable: true });
        }),
      };
    }),
  ),
);

/** A text edit of the valid YAML: a character dropped or added, a line repeated, indentation broken. */
const yamlEdit = fc
  .tuple(
    fc.nat(),
    fc.constantFrom('drop', 'insert', 'duplicate line', 'indent', 'tab'),
    fc.constantFrom(
      ':',
      '[',
      '{',
      '- ',
      '&a ',
      '*b',
      '!tag ',
      '"',
      "'",
      '#',
      '\t',
      '---\n',
      '? ',
      '|',
      '>',
      '%',
      '@',
      '`',
      '\u0000',
      '\uFEFF',
    ),
  )
  .map(([at, how, piece]) => {
    const text = toYaml(richConfig());
    const i = at % text.length;
    const lines = text.split('\n');
    const l = at % lines.length;
    switch (how) {
      case 'drop':
        return { how, text: text.slice(0, i) + text.slice(i + 1) };
      case 'insert':
        return { how, text: text.slice(0, i) + piece + text.slice(i) };
      case 'duplicate line':
        return { how, text: [...lines.slice(0, l + 1), ...lines.slice(l)].join('\n') };
      case 'indent':
        return { how, text: [...lines.slice(0, l), ` ${lines[l]}`, ...lines.slice(l + 1)].join('\n') };
      default:
        return { how, text: [...lines.slice(0, l), `\t${lines[l]}`, ...lines.slice(l + 1)].join('\n') };
    }
  });

const yamlBombs = [
  // Aliases that expand to billions of nodes.
  [
    'a: &a ["x","x","x","x","x","x","x","x","x","x"]',
    ...'bcdefghij'.split('').map((c, i) => `${c}: &${c} [${Array(10).fill(`*${'abcdefghij'[i]}`).join(',')}]`),
  ].join('\n'),
  'a: &a [*a]',
  `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
  `${'{a: '.repeat(5_000)}1${'}'.repeat(5_000)}`,
  '--- 1\n--- 2\n',
  '!!binary aGVsbG8=',
  'store: !!set {a, b}\ntargets: !!omap [a: 1]',
  'targets:\n  demo:\n    root: t\n  demo:\n    root: u\nstore: {type: fs, path: s}',
  '__proto__:\n  polluted: true\nstore: {type: fs, path: s}\ntargets: {demo: {root: t}}',
  'store: {type: fs, path: s}\ntargets:\n  __proto__: {root: t}\n  constructor: {root: u}',
  'store: {type: fs, path: s}\ntargets: {demo: {root: t}}\nlocations:\n  constructor: {type: fs, path: x}',
  '\uFEFFstore: {type: fs, path: s}\ntargets: {demo: {root: t}}',
  'store: {type: fs, path: s}\ntargets: {demo: {root: t}}\nretention: {keepDaily: 1e400}',
  'store: {type: fs, path: s}\ntargets: {demo: {root: t}}\ndrills: {targets: {rto: {killSwitch: 99999999999999999999d}}}',
  'store: {type: fs, path: s}\ntargets: {demo: {root: t}}\ndrills: {targets: {rto: {killSwitch: -5m}}}',
];

describe('bad lifeboat.yaml', () => {
  it(
    'refuses generated, broken and mutated configurations with INVALID_CONFIG naming the file and the key, and loads valid ones',
    async () => {
      const tally = new Tally();
      const cdir = join(dir, 'configs');
      mkdirSync(cdir, { recursive: true });
      let n = 0;
      const load = async (text: string | Buffer) => {
        const file = join(cdir, `c${n++}.yaml`);
        await writeFile(file, text);
        return {
          file,
          result: await loadConfig(file).then(
            (l) => ({ loaded: l }),
            (err: unknown) => ({ err }),
          ),
        };
      };

      const valid = await load(toYaml(richConfig()));
      expect(valid.result).toHaveProperty('loaded');
      tally.add('valid configuration loaded');

      // One key broken: the message names the file and the key (its parent, and the key itself).
      await fc.assert(
        fc.asyncProperty(configMutation, async (m) => {
          const { file, result } = await load(toYaml(m.doc));
          if ('loaded' in result) {
            const again = LifeboatConfig.safeParse(m.doc);
            return judge(
              tally,
              `${m.how}: still valid, loaded`,
              again.success ? null : 'loaded a configuration that does not parse',
            );
          }
          const parent = m.path.slice(0, -1).join('.');
          const key = m.path.at(-1) as string;
          let problem = notClean(result.err, ['INVALID_CONFIG'], file);
          const message = (result.err as Error).message;
          // The whole path, or its parent and the key; an entry missing from a record (a target) names the record.
          const named =
            message.includes(m.path.join('.')) ||
            (message.includes(parent) && message.includes(key)) ||
            (m.how === 'missing' && RECORDS.has(parent) && message.includes(parent));
          if (!problem && !named) problem = `message does not name ${m.path.join('.')}: ${message.slice(0, 400)}`;
          judge(tally, `${m.how}: refused naming the key`, problem);
        }),
        { numRuns: RUNS },
      );

      // Broken YAML, junk documents, junk bytes.
      const junkText = fc.oneof(
        yamlEdit.map((e) => e.text),
        fc
          .tuple(
            junkFor(['store', 'targets', 'locations', 'drills', 'backup', 'retention', 'encryption', 'version'], true),
            fc.boolean(),
          )
          .map(([v, asJson]) => (asJson ? (JSON.stringify(v) ?? 'null') : toYaml(v))),
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        fc.constantFrom(...yamlBombs),
      );
      await fc.assert(
        fc.asyncProperty(junkText, async (text) => {
          const { file, result } = await load(text);
          if ('loaded' in result) return judge(tally, 'still valid: loaded', null);
          judge(tally, 'junk: refused', notClean(result.err, ['INVALID_CONFIG'], file));
        }),
        { numRuns: RUNS },
      );

      // Documents no YAML file can hold (parsed by other means): the same clean refusal.
      await fc.assert(
        fc.property(junkFor(['store', 'targets'], false), (doc) => {
          let err: unknown;
          try {
            parseConfig(doc, 'generated', cdir);
          } catch (e) {
            err = e;
          }
          if (err === undefined) return judge(tally, 'still valid: loaded', null);
          judge(tally, 'junk: refused', notClean(err, ['INVALID_CONFIG'], 'generated'));
        }),
        { numRuns: RUNS },
      );
      expect(({} as Obj).polluted).toBeUndefined();

      // A target named like an Object.prototype member is an ordinary target.
      const named = await load('store: {type: fs, path: s}\ntargets:\n  constructor: {root: t}\n');
      expect('loaded' in named.result && createRuntime(named.result.loaded).target('constructor').root).toBe(
        join(cdir, 't'),
      );

      // YAML meant to hurt a parser: alias bombs, deep nesting, tags, duplicate keys, prototype keys.
      for (const text of yamlBombs) {
        const { file, result } = await load(text);
        if ('loaded' in result) judge(tally, 'hostile YAML: loaded', null);
        else judge(tally, 'hostile YAML: refused', notClean(result.err, ['INVALID_CONFIG'], file));
      }
      expect(({} as Obj).polluted).toBeUndefined();

      // Through the CLI: the config error's exit code (2) and one line on stderr, no stack trace.
      for (const text of [
        'store: {type: fs, path: s\ntargets: {demo: {root: t}}',
        'store: {type: fs, path: 5}\ntargets: {demo: {root: t}}\n',
      ].slice(0, trials(2, 1))) {
        const { file } = await load(text);
        const run = await lifeboat(['backups', 'list', '--config', file]);
        const lines = run.stderr.trim().split('\n');
        const problem =
          run.code !== 2
            ? `exit code ${run.code}`
            : lines.length !== 1 ||
                !lines[0]?.startsWith('lifeboat: ') ||
                !lines[0].includes(file) ||
                /\n\s+at /.test(run.stderr)
              ? `stderr is not one line naming the file: ${run.stderr}`
              : null;
        judge(tally, 'CLI: exit 2 and one line', problem);
      }
      finish(
        tally,
        'input',
        'lifeboat.yaml: generated, broken and mutated',
        'a LifeboatError INVALID_CONFIG naming the file and the key (parent path and key); the CLI exits 2 with one line and no stack; valid configurations load',
      );
      expect(tally.lost).toBe(0);
    },
    LIMIT,
  );
});

// ---------------------------------------------------------------------------------------
// 4. Reconciliation files

const fileMutation = (which: 'books' | 'snapshot') => {
  const doc = agreeingFiles()[which];
  return fc.constantFrom(...pathsOf(doc)).chain(({ path, value }) =>
    fc.oneof(
      // Null is a value some fields take (a market order's price): never the wrong type here.
      wrongType(value, false).map((v) => ({
        how: 'wrong type',
        path,
        doc: setAt(doc, path, (p, k) => {
          p[k] = v;
        }),
      })),
      typeof value === 'string'
        ? fc
            .constantFrom(
              '',
              '1e3',
              '-0.1',
              'NaN',
              ' 1',
              '0x10',
              '1,5',
              'yesterday',
              '2026-01-05',
              'BTCUSDT',
              'HOLD',
              '\u0000',
            )
            .filter((s) => s !== value)
            .map((s) => ({
              how: 'bad text',
              path,
              doc: setAt(doc, path, (p, k) => {
                p[k] = s;
              }),
            }))
        : fc.constant({ how: 'missing', path, doc: setAt(doc, path, (p, k) => delete p[k]) }),
      // A row gone from one side (an order, a fill, a trade, a position): valid, and never a pass.
      path.length === 2 && /^\d+$/.test(path[1] as string) && path[0] !== 'balances'
        ? fc.constant({
            how: 'row dropped',
            path,
            doc: setAt(doc, path, (p, k) => (p as unknown as unknown[]).splice(Number(k), 1)),
          })
        : fc.constant({ how: 'missing', path, doc: setAt(doc, path, (p, k) => delete p[k]) }),
    ),
  );
};

/** How the validator names a path: `orders[1].quantity`, `complete.orders`. */
const pathName = (path: string[]) => path.map((k, i) => (/^\d+$/.test(k) ? `[${k}]` : i ? `.${k}` : k)).join('');

describe('bad reconciliation files', () => {
  it(
    'refuses generated and mutated books and snapshots naming the file and the field, never passing on them',
    async () => {
      const tally = new Tally();
      const fdir = join(dir, 'files');
      mkdirSync(fdir, { recursive: true });
      let n = 0;
      const run = async (b: string | Buffer, s: string | Buffer, ext = '.json') => {
        const bf = join(fdir, `b${n}${ext}`);
        const sf = join(fdir, `s${n++}.json`);
        await writeFile(bf, b);
        await writeFile(sf, s);
        const out = await reconcile({ internal: bf, exchange: sf, store: false }, { log: silent }).then(
          (r) => ({ report: r.report }),
          (err: unknown) => ({ err }),
        );
        return { bf, sf, out };
      };
      const good = agreeingFiles();
      const valid = await run(JSON.stringify(good.books), JSON.stringify(good.snapshot));
      expect('report' in valid.out && valid.out.report.verdict).toBe('PASS');
      tally.add('agreeing files: PASS');

      // The schemas of docs/FORMAT.md, apart from the fast validator the reconciler runs, say
      // whether a changed file is still a valid one (a venue renamed, a fee asset emptied).
      const schema = { books: Books, snapshot: ExchangeSnapshot };
      for (const which of ['books', 'snapshot'] as const) {
        await fc.assert(
          fc.asyncProperty(fileMutation(which), async (m) => {
            const doc = JSON.stringify(m.doc);
            const { bf, sf, out } =
              which === 'books'
                ? await run(doc, JSON.stringify(good.snapshot))
                : await run(JSON.stringify(good.books), doc);
            const file = which === 'books' ? bf : sf;
            const stillValid = schema[which].safeParse(m.doc).success;
            if ('report' in out) {
              return judge(
                tally,
                `${m.how}: still valid, verdict ${out.report.verdict}`,
                !stillValid
                  ? `a broken ${which} file was reconciled (${m.how} ${pathName(m.path)}): ${out.report.verdict}`
                  : m.how === 'row dropped' && out.report.verdict === 'PASS'
                    ? `passed with ${pathName(m.path)} dropped from the ${which}`
                    : null,
              );
            }
            if (stillValid)
              return judge(tally, 'valid refused', `a valid ${which} file was refused: ${(out.err as Error).message}`);
            judge(
              tally,
              `${m.how}: refused naming the field`,
              notClean(out.err, ['INVALID_REQUEST'], pathName(m.path)),
            );
            expect((out.err as Error).message).toContain(file);
          }),
          { numRuns: RUNS },
        );
      }

      // Junk documents, junk text, a junk "SQLite" file.
      const junk = fc.oneof(
        junkFor(
          ['format', 'collected_at', 'orders', 'fills', 'positions', 'balances', 'trades', 'complete', 'venue'],
          true,
        ).map((v) => JSON.stringify(v) ?? 'null'),
        fc.string({ maxLength: 200 }),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      );
      await fc.assert(
        fc.asyncProperty(junk, fc.constantFrom('books', 'snapshot', 'sqlite'), async (text, which) => {
          const r =
            which === 'snapshot'
              ? await run(JSON.stringify(good.books), text)
              : await run(
                  which === 'books' ? text : Buffer.from(text),
                  JSON.stringify(good.snapshot),
                  which === 'sqlite' ? '.db' : '.json',
                );
          const file = which === 'snapshot' ? r.sf : r.bf;
          if ('report' in r.out)
            return judge(tally, 'junk: reconciled', `junk ${which} was reconciled: ${r.out.report.verdict}`);
          judge(tally, 'junk: refused', notClean(r.out.err, ['INVALID_REQUEST', 'DATABASE_ERROR'], file));
        }),
        { numRuns: RUNS },
      );

      // A position that disagrees is never a pass.
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 2, max: 10_000_000 }), fc.boolean(), async (units, up) => {
          const s = structuredClone(good.snapshot) as { positions: Array<{ quantity: string }> };
          const q = (0.3 * 1e8 + (up ? units : -units)) / 1e8;
          (s.positions[0] as { quantity: string }).quantity = q.toFixed(8);
          const { out } = await run(JSON.stringify(good.books), JSON.stringify(s));
          if (!('report' in out))
            return judge(tally, 'disagreeing position: refused', notClean(out.err, ['INVALID_REQUEST']));
          judge(
            tally,
            `disagreeing position: ${out.report.verdict}`,
            out.report.verdict === 'PASS' ? `passed with position ${q}` : null,
          );
        }),
        { numRuns: Math.ceil(RUNS / 5) },
      );

      // Through the CLI: exit 2, one line naming the file and the field, no stack trace.
      const broken = structuredClone(good.books) as { orders: Array<Obj> };
      (broken.orders[1] as Obj).quantity = 12;
      const bf = join(fdir, 'cli-books.json');
      writeFileSync(bf, JSON.stringify(broken));
      writeFileSync(join(fdir, 'cli-snapshot.json'), '{"format": ');
      for (const [internal, exchange, names] of [
        [bf, snapshot, 'orders[1].quantity'],
        [books, join(fdir, 'cli-snapshot.json'), 'not valid JSON'],
      ].slice(0, trials(2, 1)) as Array<[string, string, string]>) {
        const cli = await lifeboat(['reconcile', '--internal', internal, '--exchange', exchange, '--no-store']);
        const lines = cli.stderr.trim().split('\n');
        const problem =
          cli.code !== 2
            ? `exit code ${cli.code}: ${cli.stderr}`
            : lines.length !== 1 || !lines[0]?.includes(names) || /\n\s+at /.test(cli.stderr)
              ? `stderr is not one line naming ${names}: ${cli.stderr}`
              : null;
        judge(tally, 'CLI: exit 2 and one line', problem);
      }
      finish(
        tally,
        'input',
        'reconciliation files: generated and mutated',
        'a LifeboatError INVALID_REQUEST naming the file and the field (orders[1].quantity); no report from a broken file, no PASS with a position changed or a row dropped; the CLI exits 2 with one line',
      );
      expect(tally.lost).toBe(0);
    },
    LIMIT,
  );
});

// ---------------------------------------------------------------------------------------
// 5. Job payloads through BullMQ: last, so the worker processes start while the rest runs

describe('bad jobs through BullMQ', () => {
  it(
    'through BullMQ to the real workers: each bad job fails after one attempt with a clean error, the workers live on, and a valid job after them completes',
    async () => {
      const workers = await workersStarting;
      // A short backoff, so a job retried by mistake shows it within seconds.
      const bus = new BullMqJobBus({ url: redisUrl, prefix, backoffMs: 100, onError: () => {} });
      closers.push(() => bus.close());

      const perQueue = trials(20, 4);
      const tally = new Tally();
      const cases = queueCases();
      const jobs: Array<{ queue: QueueName; jobId: string; codes: ErrorCode[]; payload: unknown }> = [];
      const enqueue = async (queue: QueueName, payload: unknown, codes: ErrorCode[], options: EnqueueOptions = {}) => {
        const { jobId } = await bus.enqueue(queue, payload, { attempts: 3, ...options });
        jobs.push({ queue, jobId, codes, payload });
      };
      for (const c of cases) {
        const generated = fc.sample(
          fc.oneof(
            mutationsOf(c.valid, c.required, c.bad).map((m) => m.payload),
            junkFor(Object.keys(c.valid), true),
          ),
          { numRuns: perQueue * 3 },
        );
        const bad = generated
          .filter((p) => !c.schema.safeParse(JSON.parse(JSON.stringify(p ?? null))).success)
          .slice(0, perQueue);
        // What a label, a log line or a record might trip on: a target whose toString is not a function.
        bad.push(JSON.parse('{"target":{"toString":1},"drill":{"toString":1}}'));
        for (const payload of bad) await enqueue(c.queue, payload, ['INVALID_REQUEST']);
      }
      for (const s of semanticCases()) await enqueue(s.queue, withFiles(s.payload), s.codes);
      // Job data lives in Redis: a database password in it is refused outright.
      await enqueue('reconcile', { internal: 'postgres://u:secret@127.0.0.1:1/x', exchange: snapshot }, [
        'INVALID_REQUEST',
      ]);

      const failures = await Promise.all(
        jobs.map(async (j) => ({ ...j, err: await caught(() => bus.result(j.queue, j.jobId, { timeoutMs: 60_000 })) })),
      );
      for (const f of failures) {
        const status = await bus.status(f.queue, f.jobId);
        let problem =
          f.err === undefined ? `completed: ${JSON.stringify(f.payload).slice(0, 200)}` : notClean(f.err, f.codes);
        if (!problem && (status.state !== 'failed' || status.attemptsMade !== 1)) {
          problem = `state ${status.state} after ${status.attemptsMade} attempts: ${JSON.stringify(f.payload).slice(0, 200)}`;
        }
        judge(tally, `failed after one attempt: ${(f.err as { code?: string })?.code}`, problem);
      }

      // Valid jobs after the bad ones: each worker still takes work.
      const { jobId: backupJob } = await bus.enqueue('backup', {
        target: 'demo',
        kind: 'state',
        reason: 'after bad input',
      });
      const made = (await bus.result('backup', backupJob, { timeoutMs: 120_000 })) as { backupId: string };
      // Each with what its result must say: copied (or already there), planned, passed.
      const valid: Array<[QueueName, Obj, (r: Obj) => unknown]> = [
        ['replicate', { target: 'demo', backupId: made.backupId, location: 'dr' }, (r) => r.outcome !== undefined],
        [
          'restore',
          { target: 'demo', scenario: 'db-corruption', destination: 'sandbox', dryRun: true },
          (r) => r.outcome === 'PLANNED',
        ],
        [
          'reconcile',
          { internal: books, exchange: snapshot, store: false },
          (r) => (r.report as Obj).verdict === 'PASS',
        ],
        ['drill', { drill: 'backup-verify', target: 'demo' }, (r) => r.verdict === 'PASS'],
      ];
      tally.add('valid job completed');
      for (const [queue, payload, ok] of valid) {
        const { jobId } = await bus.enqueue(queue, payload);
        const result = (await bus.result(queue, jobId, { timeoutMs: 120_000 })) as Obj;
        judge(tally, 'valid job completed', ok(result) ? null : `${queue}: ${JSON.stringify(result).slice(0, 500)}`);
      }
      for (const w of workers) {
        expect(w.child.exitCode).toBeNull();
        expect((await fetch(`${w.ops}/health`)).status).toBe(200);
      }
      finish(
        tally,
        'input',
        'job payloads through BullMQ to the worker processes',
        'the job failed after exactly 1 of 3 attempts with the refusal (INVALID_REQUEST, or NOT_FOUND for what does not exist); every worker alive; a valid job per queue completed after them',
      );
      expect(tally.lost).toBe(0);
    },
    LIMIT,
  );
});
