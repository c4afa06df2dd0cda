// Bad archives and tampered manifests, end to end: stored archives with flipped bytes or cut
// short, archives made with GNU tar and node-tar to escape the destination (paths, links,
// devices) or to expand without end, and manifests edited after they were sealed. Each goes
// into a real filesystem store and through the real `lifeboat restore` and `lifeboat verify`;
// each must be refused naming the entry (or the manifest), with nothing written outside the
// restore's staging (a sentinel directory beside it, and TMPDIR, are checked) and the
// production target byte for byte as it was.
import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FsObjectStore, sha256, sha256hex } from '@lifeboat/adapters';
import {
  layout,
  type Manifest,
  type ManifestKey,
  makeBackupId,
  type RestoreResult,
  sealedText,
  sealManifest,
  type VerificationRecord,
} from '@lifeboat/domain';
import { type CliRun, checksums, initDemo, lifeboat } from '@lifeboat/testkit';
import { Header, type HeaderData } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { FULL, Tally, trials } from './record.js';

const CATEGORY = 'archive';
const KEY_ENV = 'LIFEBOAT_FAULTS_MANIFEST_KEY';
const KEY_VALUE = randomBytes(32).toString('hex');
/** The key, as the CLI reads it from KEY_ENV: the test seals the backups it makes up with it, as a backup would. */
const KEY: ManifestKey = {
  name: KEY_ENV,
  hmac: (text) => createHmac('sha256', KEY_VALUE).update(text, 'utf8').digest('hex'),
};

type StoredManifest = Manifest & { archive: { size: number; sha256: string } };

/** One demo target, its store, and the backup every trial starts from. */
interface Flavour {
  name: 'encrypted' | 'plain';
  dir: string;
  config: string;
  /** The same store and target with no manifest key (a store from before seals). */
  noKeyConfig: string;
  root: string;
  store: FsObjectStore;
  recipients: string[];
  base: StoredManifest;
  archive: Buffer;
  /** Checksums of the production target and of the base backup's objects, taken before any trial. */
  production: Record<string, string>;
  baseObjects: Record<string, string>;
}

let dir: string;
const flavours: Flavour[] = [];
const envFor = (tmp: string): NodeJS.ProcessEnv => ({ [KEY_ENV]: KEY_VALUE, TMPDIR: tmp });

function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(-1500)}`);
  }
}

async function makeFlavour(name: Flavour['name']): Promise<Flavour> {
  const demoDir = join(dir, name);
  const demo = await initDemo(demoDir, name === 'plain' ? { args: ['--no-encrypt'] } : {});
  // Every manifest is sealed with a key; old and orphaned objects are pruned at once.
  const yaml = parse(await readFile(demo.config, 'utf8'));
  yaml.backup = { ...yaml.backup, manifestKeyEnv: KEY_ENV, abandonedUploadMinutes: 0 };
  await writeFile(demo.config, stringify(yaml));
  const noKeyConfig = join(demoDir, 'lifeboat-nokey.yaml');
  const { manifestKeyEnv: _key, ...noKey } = yaml.backup;
  await writeFile(noKeyConfig, stringify({ ...yaml, backup: noKey }));
  const tmp = join(demoDir, 'tmp');
  await mkdir(tmp);
  const made = await lifeboat(['backup', '--config', demo.config, '--json'], envFor(tmp));
  expect(made.code, made.stderr).toBe(0);
  const { backupId } = json<{ backupId: string }>(made);
  const store = new FsObjectStore(join(demoDir, 'store'));
  const base = JSON.parse(
    Buffer.from(await store.getBytes(layout.manifest('demo', backupId))).toString('utf8'),
  ) as StoredManifest;
  // The backup sealed its manifest with the key, as the test computes it.
  expect(base.seal?.hmac).toEqual({ key: KEY_ENV, sha256: KEY.hmac(sealedText(base as never)) });
  expect(JSON.stringify(base)).not.toContain(KEY_VALUE);
  const root = join(demoDir, 'target');
  return {
    name,
    dir: demoDir,
    config: demo.config,
    noKeyConfig,
    root,
    store,
    recipients: yaml.encryption?.recipients ?? [],
    base,
    archive: Buffer.from(await store.getBytes(base.archive.key)),
    production: checksums(root),
    baseObjects: checksums(join(demoDir, 'store', 'demo', 'backups', backupId), (rel) =>
      rel.startsWith('verifications'),
    ),
  };
}

beforeAll(async () => {
  for (const tool of [
    ['tar', '--version'],
    ['age', '--version'],
    ['mkfifo', '--version'],
  ]) {
    execFileSync(tool[0] as string, tool.slice(1)); // fails loudly when a tool is missing
  }
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-faults-archives-'));
  flavours.push(...(await Promise.all([makeFlavour('encrypted'), makeFlavour('plain')])));
}, 180_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

let idCounter = 0;
/** A new backup id, after the base backup's time (ids sort by time). */
function nextId(f: Flavour): string {
  idCounter += 1;
  return makeBackupId(
    new Date(Date.parse(f.base.createdAt) + idCounter * 1000),
    'full',
    randomBytes(2).toString('hex'),
  );
}

/** The base backup's manifest for another backup id and archive, sealed as a backup seals it. */
function manifestFor(
  f: Flavour,
  id: string,
  edit: (m: StoredManifest) => void = () => {},
  key: ManifestKey | null = KEY,
): StoredManifest {
  const m = structuredClone(f.base);
  delete m.seal;
  m.backupId = id;
  m.archive.key = layout.archive('demo', id, f.name === 'encrypted');
  edit(m);
  return sealManifest(m, sha256hex, key) as StoredManifest;
}

/** Commits a backup into the store as a backup would: the archive first, the manifest last. */
async function commit(f: Flavour, manifest: object & { archive: { key: string } }, archive: Buffer, id: string) {
  await f.store.put(manifest.archive.key, archive);
  await f.store.put(layout.manifest('demo', id), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
}

/** A trial's own directory: a sentinel beside the restore's destination, and the TMPDIR its processes get. */
interface TrialDir {
  path: string;
  sentinel: string;
  tmp: string;
  sandbox: string;
  sentinelSums: Record<string, string>;
}

let trialCounter = 0;
async function trialDir(): Promise<TrialDir> {
  trialCounter += 1;
  const path = join(dir, 'trials', String(trialCounter));
  const sentinel = join(path, 'sentinel');
  const tmp = join(path, 'tmp');
  await mkdir(sentinel, { recursive: true });
  await mkdir(tmp);
  await writeFile(join(sentinel, 'secret.txt'), 'the sentinel: nothing may change it\n');
  return { path, sentinel, tmp, sandbox: join(path, 'sandbox'), sentinelSums: checksums(sentinel) };
}

/** What was written where it must not be: beside the staging, in the sentinel, in TMPDIR, in production. */
function strayWrites(t: TrialDir, f: Flavour): string[] {
  const problems: string[] = [];
  const left = readdirSync(t.path).filter((n) => n !== 'sentinel' && n !== 'tmp');
  for (const n of left) {
    if (n === 'sandbox' && readdirSync(t.sandbox).length === 0) continue;
    problems.push(`left beside the staging: ${n}`);
  }
  if (JSON.stringify(checksums(t.sentinel)) !== JSON.stringify(t.sentinelSums)) problems.push('the sentinel changed');
  const tmpLeft = readdirSync(t.tmp);
  if (tmpLeft.length) problems.push(`left in TMPDIR: ${tmpLeft.join(', ')}`);
  if (JSON.stringify(checksums(f.root)) !== JSON.stringify(f.production)) problems.push('production changed');
  return problems;
}

interface Refusals {
  restore: RestoreResult;
  /** The restore's error message, as the operator reads it. */
  restoreMessage: string;
  verifyCode: number | null;
  /** What verify said: its failed checks, or the error it stopped with. */
  verifyText: string;
  verifyOk: boolean;
}

function restoreOf(f: Flavour, id: string, t: TrialDir) {
  return lifeboat(
    [
      'restore',
      '--scenario',
      'server-loss',
      '--backup',
      id,
      '--to',
      `sandbox:${t.sandbox}`,
      '--config',
      f.config,
      '--reason',
      'fault test',
      '--json',
    ],
    envFor(t.tmp),
  );
}

async function verifyOf(f: Flavour, id: string, t: TrialDir) {
  const run = await lifeboat(['verify', id, '--full', '--config', f.config, '--json'], envFor(t.tmp));
  expect(run.stdout + run.stderr, 'the manifest key in the output').not.toContain(KEY_VALUE);
  const out = json<VerificationRecord | { error: { code: string; message: string } }>(run);
  if ('error' in out) return { code: run.code, ok: false, text: `${out.error.code}: ${out.error.message}` };
  return { code: run.code, ok: out.ok, text: out.problems.join('\n') };
}

/**
 * Runs trials so that each one's verify overlaps the next one's restore (one restore at a
 * time: they take the target's lock). `prepare` puts the trial's objects in the store;
 * `check` receives both refusals and tallies the outcome.
 */
async function runTrials<T>(
  count: number,
  prepare: (i: number) => Promise<T & { f: Flavour; id: string; t: TrialDir }>,
  check: (trial: T & { f: Flavour; id: string; t: TrialDir }, r: Refusals, i: number) => void,
): Promise<void> {
  let pending: Promise<void> = Promise.resolve();
  for (let i = 0; i < count; i++) {
    const trial = await prepare(i);
    const [restored] = await Promise.all([restoreOf(trial.f, trial.id, trial.t), pending]);
    const result = json<RestoreResult & { error: { message: string } | null }>(restored);
    expect(restored.stdout + restored.stderr, 'the manifest key in the output').not.toContain(KEY_VALUE);
    pending = (async () => {
      const verified = await verifyOf(trial.f, trial.id, trial.t);
      check(
        trial,
        {
          restore: result,
          restoreMessage: result.error?.message ?? '',
          verifyCode: verified.code,
          verifyText: verified.text,
          verifyOk: verified.ok,
        },
        i,
      );
    })();
    pending.catch(() => {}); // awaited with the next restore, or at the end
    expect(restored.code === 0 && result.outcome === 'COMPLETED', `trial ${i}: the restore completed`).toBe(false);
  }
  await pending;
}

/** The base backup's objects, unchanged by every trial. */
function expectBaseIntact(f: Flavour) {
  expect(
    checksums(join(f.dir, 'store', 'demo', 'backups', f.base.backupId), (rel) => rel.startsWith('verifications')),
  ).toEqual(f.baseObjects);
  expect(checksums(f.root)).toEqual(f.production);
}

/** The first entry of the manifest (or the in-archive manifest) a message names, if any. */
function namedEntry(text: string, m: Manifest): string | undefined {
  return [...m.entries.map((e) => e.path), 'manifest.json'].find(
    (p) => text.includes(`entry ${p}`) || text.includes(`"${p}"`) || text.includes(`${p}:`),
  );
}

/** Whether a message names the archive as a whole: its checksum, its age header, or its end. */
function namesArchive(text: string): boolean {
  return /archive sha256|archive checksum|cannot decrypt the archive|is damaged: |archive readable/.test(text);
}

/** The bytes of an age header: up to and including its "--- <mac>" line. */
function ageHeaderLength(archive: Buffer): number {
  const mac = archive.indexOf('\n--- ');
  return mac < 0 ? 0 : archive.indexOf('\n', mac + 1) + 1;
}

describe('damaged archives in the store', () => {
  it('flipped bytes in a stored archive: restore and verify --full refuse it, naming the entry', async () => {
    const tally = new Tally();
    const problems: string[] = [];
    await runTrials(
      trials(20, 3),
      async (i) => {
        const f = flavours[i % flavours.length] as Flavour;
        const id = nextId(f);
        const damaged = Buffer.from(f.archive);
        // Distinct positions: a bit flipped twice would be no damage at all.
        const positions = [
          ...new Set(Array.from({ length: randomInt(1, 6) }, () => randomInt(0, damaged.length))),
        ].sort((a, b) => a - b);
        for (const p of positions) damaged[p] = (damaged[p] as number) ^ (1 << randomInt(0, 8));
        await commit(f, manifestFor(f, id), damaged, id);
        return { f, id, t: await trialDir(), positions, damaged };
      },
      (trial, r, i) => {
        const { f, t, positions } = trial;
        const stray = strayWrites(t, f);
        const entry = namedEntry(r.restoreMessage, f.base);
        const archiveNamed = namesArchive(r.restoreMessage);
        const verifyEntry = namedEntry(r.verifyText, f.base);
        // Damage that shows before any entry or in none: the age header (it fails first), or only
        // gzip's header and its last block and trailer.
        const inNoEntry =
          f.name === 'encrypted'
            ? positions.some((p) => p < ageHeaderLength(f.archive))
            : positions.every((p) => p < 10 || p >= f.archive.length - 10);
        const refused = r.restore.outcome === 'FAILED' && r.restore.failedStep === 'fetch-and-verify' && !r.verifyOk;
        const lost =
          !refused ||
          stray.length > 0 ||
          !(entry || (inNoEntry && archiveNamed)) ||
          !(verifyEntry || (inNoEntry && namesArchive(r.verifyText)));
        const outcome = !refused
          ? 'NOT REFUSED'
          : entry
            ? 'refused, naming the entry where the damage showed'
            : `refused, naming the archive (the damage is in its ${f.name === 'encrypted' ? 'age header' : 'gzip header or trailer'})`;
        tally.add(outcome, lost);
        if (lost) problems.push(`trial ${i}: ${outcome}; ${stray.join('; ')}; ${r.restoreMessage} | ${r.verifyText}`);
        console.log(
          `[archive] flipped bytes ${i + 1} (${f.name}, ${positions.length} at ${positions.join(',')} of ${f.archive.length}): ${outcome}; restore: ${r.restoreMessage.slice(0, 160)}; verify exit ${r.verifyCode}: ${r.verifyText.split('\n')[0]?.slice(0, 160)}${stray.length ? `; STRAY: ${stray.join('; ')}` : ''}`,
        );
      },
    );
    tally.record(
      CATEGORY,
      'flipped bytes in the stored archive',
      'restore --to sandbox and verify --full both refuse, naming the entry (or the archive when no entry holds the damage); nothing beside the staging, in a sentinel directory or in TMPDIR; production checksums unchanged',
    );
    for (const f of flavours) expectBaseIntact(f);
    expect(problems).toEqual([]);
    expect(tally.lost).toBe(0);
  }, 600_000);

  it('a stored archive cut short: restore and verify --full refuse it', async () => {
    const tally = new Tally();
    const problems: string[] = [];
    await runTrials(
      trials(10, 2),
      async (i) => {
        const f = flavours[i % flavours.length] as Flavour;
        const id = nextId(f);
        const length = randomInt(1, f.archive.length);
        await commit(f, manifestFor(f, id), f.archive.subarray(0, length), id);
        return { f, id, t: await trialDir(), length };
      },
      (trial, r, i) => {
        const { f, t, length } = trial;
        const stray = strayWrites(t, f);
        const entry = namedEntry(r.restoreMessage, f.base);
        const refused = r.restore.outcome === 'FAILED' && r.restore.failedStep === 'fetch-and-verify' && !r.verifyOk;
        const lost = !refused || stray.length > 0 || (!entry && !namesArchive(r.restoreMessage));
        const outcome = !refused
          ? 'NOT REFUSED'
          : entry
            ? 'refused, naming the entry it ends in'
            : 'refused, naming the archive (it ends before the first entry or after the last)';
        tally.add(outcome, lost);
        if (lost) problems.push(`trial ${i}: ${outcome}; ${stray.join('; ')}; ${r.restoreMessage} | ${r.verifyText}`);
        console.log(
          `[archive] truncated ${i + 1} (${f.name}, ${length} of ${f.archive.length} bytes): ${outcome}; restore: ${r.restoreMessage.slice(0, 160)}; verify exit ${r.verifyCode}: ${r.verifyText.split('\n')[0]?.slice(0, 160)}${stray.length ? `; STRAY: ${stray.join('; ')}` : ''}`,
        );
      },
    );
    tally.record(
      CATEGORY,
      'truncated archive',
      'restore --to sandbox and verify --full both refuse, naming where it ends; nothing beside the staging, in a sentinel directory or in TMPDIR; production checksums unchanged',
    );
    for (const f of flavours) expectBaseIntact(f);
    expect(problems).toEqual([]);
    expect(tally.lost).toBe(0);
  }, 600_000);

  it('a tar header whose size does not parse (inflate passed a flipped bit on) is damage, not a crash', async () => {
    // Found by the trials above: node-tar throws on a base-256 size field before the header's
    // checksum is looked at, and restore and verify stopped with that bare error.
    const f = flavours[1] as Flavour;
    const tar = gunzipSync(f.archive);
    let at = 0;
    while (new Header(tar, at).path !== 'database/trading.db') {
      at += 512 + Math.ceil((new Header(tar, at).size ?? 0) / 512) * 512;
    }
    tar[at + 124] = 0x90; // the size field: a base-256 marker no writer makes
    const id = nextId(f);
    await commit(f, manifestFor(f, id), gzipSync(tar), id);
    const t = await trialDir();
    const restored = json<RestoreResult>(await restoreOf(f, id, t));
    const verified = await verifyOf(f, id, t);
    console.log(
      `[archive] damaged tar header (${f.name}): restore: ${restored.error?.message}; verify: ${verified.text}`,
    );
    expect(restored).toMatchObject({ outcome: 'FAILED', failedStep: 'fetch-and-verify' });
    expect(restored.error?.message).toContain(
      `is damaged at entry database/trading.db: archive has a damaged tar header at byte ${at}`,
    );
    expect(verified).toMatchObject({ code: 1, ok: false });
    expect(verified.text).toContain('entry database/trading.db: archive damaged while reading it');
    expect(strayWrites(t, f)).toEqual([]);
  }, 120_000);
});

/** A hostile archive: how it is made, and the entry the refusal must name. */
interface Crafted {
  fault: string;
  kind: string;
  /** In the quick subset inside `npm test`. */
  quick?: boolean;
  /** Builds the tar stream (uncompressed) in `build`, given the trial's directory; returns it and the entry to name. */
  make(build: string, t: TrialDir): Promise<{ tar: Buffer; entry: string; listed?: { path: string; size: number } }>;
}

function block(fields: HeaderData): Buffer {
  const h = new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(), size: 0, ...fields });
  h.encode();
  return h.block as Buffer;
}

/** A tar made of raw headers (node-tar's Header): for entries GNU tar makes only from real files. */
function rawTar(entries: Array<{ fields: HeaderData; body?: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  for (const { fields, body } of entries) {
    parts.push(block({ ...fields, size: body?.length ?? 0 }));
    if (body?.length) parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** GNU tar over `build`, keeping names as given (-P) and renaming some (--transform). */
function gnuTar(build: string, names: string[], transforms: string[] = []): Buffer {
  return execFileSync(
    'tar',
    ['-c', '-P', '--format=gnu', ...transforms.map((x) => `--transform=${x}`), '-f', '-', '-C', build, ...names],
    { maxBuffer: 1 << 30 },
  );
}

/** The ordinary entries every crafted archive carries around its hostile one, as files in `build`. */
async function ordinaryFiles(f: Flavour, build: string) {
  await mkdir(join(build, 'state'), { recursive: true });
  await mkdir(join(build, 'database'), { recursive: true });
  const notes = Buffer.from('{"note":"an ordinary state file"}\n');
  await writeFile(join(build, 'state', 'notes.json'), notes);
  await copyFile(join(f.root, 'trading.db'), join(build, 'database', 'trading.db'));
  return { notes, db: readFileSync(join(build, 'database', 'trading.db')) };
}

const CRAFTED: Crafted[] = [
  {
    fault: 'paths escaping the destination',
    kind: '".." entry (GNU tar -P)',
    quick: true,
    async make(build) {
      await writeFile(join(build, 'pwned'), 'escaped\n');
      const entry = '../../sentinel/dotdot-pwned';
      return { tar: gnuTar(build, ['state/notes.json', 'pwned'], [`s,^pwned$,${entry},`]), entry };
    },
  },
  {
    fault: 'paths escaping the destination',
    kind: 'absolute path (GNU tar -P)',
    async make(build, t) {
      await writeFile(join(build, 'pwned'), 'escaped\n');
      const entry = join(t.sentinel, 'absolute-pwned');
      return { tar: gnuTar(build, ['state/notes.json', 'pwned'], [`s,^pwned$,${entry},`]), entry };
    },
  },
  {
    fault: 'links escaping the destination',
    kind: 'symbolic link, then a file through it (GNU tar)',
    async make(build, t) {
      await symlink(t.sentinel, join(build, 'state', 'escape'));
      await writeFile(join(build, 'pwned'), 'escaped\n');
      return {
        tar: gnuTar(build, ['state/notes.json', 'state/escape', 'pwned'], ['s,^pwned$,state/escape/symlink-pwned,']),
        entry: 'state/escape',
      };
    },
  },
  {
    fault: 'links escaping the destination',
    kind: 'hard link to a file outside (node-tar header)',
    quick: true,
    async make(build, t) {
      const notes = readFileSync(join(build, 'state', 'notes.json'));
      return {
        tar: rawTar([
          { fields: { path: 'state/notes.json', type: 'File' }, body: notes },
          { fields: { path: 'state/hardlink', type: 'Link', linkpath: join(t.sentinel, 'secret.txt') } },
          { fields: { path: 'state/hardlink', type: 'File' }, body: Buffer.from('overwritten through the link\n') },
        ]),
        entry: 'state/hardlink',
      };
    },
  },
  {
    fault: 'device files',
    kind:
      process.getuid?.() === 0 ? 'character device (mknod, GNU tar)' : 'character device (node-tar header; not root)',
    async make(build) {
      if (process.getuid?.() === 0) {
        execFileSync('mknod', [join(build, 'state', 'tty'), 'c', '5', '0']);
        return { tar: gnuTar(build, ['state/notes.json', 'state/tty']), entry: 'state/tty' };
      }
      const notes = readFileSync(join(build, 'state', 'notes.json'));
      return {
        tar: rawTar([
          { fields: { path: 'state/notes.json', type: 'File' }, body: notes },
          { fields: { path: 'state/tty', type: 'CharacterDevice', devmaj: 5, devmin: 0 } },
        ]),
        entry: 'state/tty',
      };
    },
  },
  {
    fault: 'device files',
    kind: 'block device (node-tar header)',
    async make(build) {
      const notes = readFileSync(join(build, 'state', 'notes.json'));
      return {
        tar: rawTar([
          { fields: { path: 'state/notes.json', type: 'File' }, body: notes },
          { fields: { path: 'state/loop0', type: 'BlockDevice', devmaj: 7, devmin: 0 } },
        ]),
        entry: 'state/loop0',
      };
    },
  },
  {
    fault: 'device files',
    kind: 'FIFO (mkfifo, GNU tar)',
    quick: true,
    async make(build) {
      execFileSync('mkfifo', [join(build, 'state', 'fifo')]);
      return { tar: gnuTar(build, ['state/notes.json', 'state/fifo']), entry: 'state/fifo' };
    },
  },
  {
    fault: 'decompression bomb',
    kind: 'an entry of 32 MiB the manifest lists at 1 KiB (GNU tar, sparse file)',
    quick: true,
    async make(build) {
      const path = 'state/orders-export.json';
      await writeFile(join(build, path), '');
      await truncate(join(build, path), 32 << 20);
      return { tar: gnuTar(build, ['state/notes.json', path]), entry: path, listed: { path, size: 1024 } };
    },
  },
  {
    fault: 'decompression bomb',
    kind: 'unlisted entries of 60 and 8 MiB: more in all than the manifest allows (GNU tar, sparse files)',
    async make(build) {
      for (const [n, mib] of [
        ['fill-1.bin', 60],
        ['fill-2.bin', 8],
      ] as const) {
        await writeFile(join(build, 'state', n), '');
        await truncate(join(build, 'state', n), mib << 20);
      }
      return {
        tar: gnuTar(build, ['state/notes.json', 'state/fill-1.bin', 'state/fill-2.bin']),
        entry: 'state/fill-2.bin',
      };
    },
  },
];

/** A tar stream without its end-of-archive blocks (GNU tar pads to 10 KiB records), to append entries to. */
function withoutEnd(tar: Buffer): Buffer {
  let at = 0;
  while (at + 512 <= tar.length) {
    const header = new Header(tar, at);
    if (header.nullBlock) break;
    at += 512 + Math.ceil((header.size ?? 0) / 512) * 512;
  }
  return tar.subarray(0, at);
}

describe('hostile archives uploaded as backups, with manifests that match them', () => {
  it('paths, links and devices that escape, and decompression bombs: refused naming the entry, nothing written outside staging', async () => {
    // Quick: one of each fault; full: every kind, in an encrypted and a plain store.
    const cases = FULL
      ? CRAFTED.flatMap((c) => flavours.map((f) => ({ c, f })))
      : CRAFTED.filter((c) => c.quick).map((c) => ({ c, f: flavours[0] as Flavour }));
    const tallies = new Map<string, Tally>();
    const problems: string[] = [];
    await runTrials(
      cases.length,
      async (i) => {
        const { c, f } = cases[i] as (typeof cases)[number];
        const id = nextId(f);
        const t = await trialDir();
        const build = join(dir, 'build', String(i));
        const { notes, db } = await ordinaryFiles(f, build);
        const made = await c.make(build, t);
        // The hostile entry sits between ordinary ones: the database and the manifest's own copy follow it.
        const entries: Manifest['entries'] = [
          {
            path: 'state/notes.json',
            source: 'notes.json',
            role: 'state',
            size: notes.length,
            sha256: sha256(notes),
            secret: false,
            mode: 0o644,
          },
          ...(made.listed
            ? [
                {
                  path: made.listed.path,
                  source: made.listed.path.slice('state/'.length),
                  role: 'state' as const,
                  size: made.listed.size,
                  sha256: '0'.repeat(64),
                  secret: false,
                  mode: 0o644,
                },
              ]
            : []),
          {
            path: 'database/trading.db',
            source: 'trading.db',
            role: 'database',
            size: db.length,
            sha256: sha256(db),
            secret: false,
            mode: 0o644,
          },
        ];
        const inner = manifestFor(
          f,
          id,
          (m) => {
            m.entries = entries;
            m.omitted = [];
          },
          null,
        );
        const { seal: _none, ...innerCopy } = inner;
        const innerBody = Buffer.from(
          JSON.stringify(
            { ...innerCopy, archive: { ...innerCopy.archive, size: undefined, sha256: undefined } },
            null,
            2,
          ),
        );
        const tar = Buffer.concat([
          withoutEnd(made.tar),
          rawTar([
            { fields: { path: 'database/trading.db', type: 'File' }, body: db },
            { fields: { path: 'manifest.json', type: 'File' }, body: innerBody },
          ]),
        ]);
        let archive = gzipSync(tar, { level: 1 });
        if (f.name === 'encrypted') {
          archive = execFileSync(
            'age',
            f.recipients.flatMap((r) => ['-r', r]),
            { input: archive, maxBuffer: 1 << 30 },
          );
        }
        const manifest = manifestFor(f, id, (m) => {
          m.entries = entries;
          m.omitted = [];
          m.archive.size = archive.length;
          m.archive.sha256 = sha256(archive);
        });
        await commit(f, manifest, archive, id);
        return { f, id, t, c, entry: made.entry, archiveBytes: archive.length, tarBytes: tar.length };
      },
      (trial, r, i) => {
        const { f, t, c, entry } = trial;
        const stray = strayWrites(t, f);
        const quoted = `"${entry}"`;
        const refused = r.restore.outcome === 'FAILED' && r.restore.failedStep === 'fetch-and-verify' && !r.verifyOk;
        const restoreNames = r.restoreMessage.includes(quoted);
        const verifyNames = r.verifyText.includes(quoted);
        const lost = !refused || stray.length > 0 || !restoreNames || !verifyNames;
        const outcome = !refused
          ? 'NOT REFUSED'
          : restoreNames && verifyNames
            ? 'refused by restore and verify, naming the entry'
            : 'refused without naming the entry';
        const tally = tallies.get(c.fault) ?? new Tally();
        tallies.set(c.fault, tally);
        tally.add(outcome, lost);
        if (lost)
          problems.push(
            `trial ${i} (${c.kind}, ${f.name}): ${outcome}; ${stray.join('; ')}; ${r.restoreMessage} | ${r.verifyText}`,
          );
        console.log(
          `[archive] ${c.fault}: ${c.kind} (${f.name}, ${trial.tarBytes} tar bytes in ${trial.archiveBytes}): ${outcome}; restore: ${r.restoreMessage.slice(0, 200)}; verify exit ${r.verifyCode}${stray.length ? `; STRAY: ${stray.join('; ')}` : ''}`,
        );
      },
    );
    const checked =
      'uploaded with a manifest that matches it (sizes, sha256, seal with the key); restore --to sandbox and verify --full both refuse, naming the entry; nothing beside the staging, in a sentinel directory the entry aims at or in TMPDIR; production checksums unchanged';
    for (const [fault, tally] of tallies) tally.record(CATEGORY, fault, checked);
    for (const f of flavours) expectBaseIntact(f);
    expect(problems).toEqual([]);
    for (const tally of tallies.values()) expect(tally.lost).toBe(0);
  }, 600_000);
});

/** How the manifest is tampered with: which seal is left, and what the refusal must say. */
const TAMPERS = [
  { kind: 'seal left as it was', says: 'its checksum does not match' },
  {
    kind: 'checksum redone, HMAC left (or made with another key)',
    says: `its HMAC does not match the key in ${KEY_ENV}`,
  },
  { kind: 'seal stripped while a key is configured', says: 'it is not sealed, and a manifest key is configured' },
] as const;

/** Edits that make a manifest agree with a tampered archive, or lie about the backup. */
const EDITS: Array<{ what: string; apply(m: StoredManifest, archive: Buffer): void }> = [
  {
    what: "the archive's size and sha256, to a damaged archive's",
    apply(m, archive) {
      m.archive.size = archive.length;
      m.archive.sha256 = sha256(archive);
    },
  },
  {
    what: "an entry's size and sha256, and the archive's",
    apply(m, archive) {
      const e = m.entries[randomInt(0, m.entries.length)] as Manifest['entries'][number];
      e.size += 1;
      e.sha256 = randomBytes(32).toString('hex');
      m.archive.size = archive.length;
      m.archive.sha256 = sha256(archive);
    },
  },
  {
    what: 'the row counts',
    apply(m) {
      if (m.database)
        for (const t of Object.keys(m.database.tables)) m.database.tables[t] = (m.database.tables[t] ?? 0) + 1;
    },
  },
];

describe('tampered manifests', () => {
  it('a manifest edited after it was sealed is refused by restore and verify, listed as unreadable, and never pruned', async () => {
    const tally = new Tally();
    const problems: string[] = [];
    const refusedIds = new Map<string, { f: Flavour; says: string }>();
    const perKind = trials(4, 1);
    await runTrials(
      TAMPERS.length * perKind,
      async (i) => {
        const tamper = TAMPERS[i % TAMPERS.length] as (typeof TAMPERS)[number];
        const f = flavours[Math.floor(i / TAMPERS.length) % flavours.length] as Flavour;
        const edit = EDITS[FULL ? randomInt(0, EDITS.length) : i % EDITS.length] as (typeof EDITS)[number];
        const id = nextId(f);
        // The stored archive is damaged: a manifest edited to match it must still not be believed.
        const damaged = Buffer.from(f.archive);
        const at = randomInt(ageHeaderLength(f.archive) + 16, damaged.length);
        damaged[at] = (damaged[at] as number) ^ 0xff;
        const sealed = manifestFor(f, id);
        const m = structuredClone(sealed) as StoredManifest & { seal?: Manifest['seal'] };
        edit.apply(m, damaged);
        if (tamper.kind.startsWith('checksum redone')) {
          const seal = m.seal as NonNullable<Manifest['seal']>;
          seal.sha256 = sha256hex(sealedText(m as never));
          if (i % 2 === 1) seal.hmac = { key: KEY_ENV, sha256: randomBytes(32).toString('hex') };
        } else if (tamper.kind.startsWith('seal stripped')) {
          delete m.seal;
        }
        await commit(f, m, damaged, id);
        refusedIds.set(id, { f, says: tamper.says });
        return { f, id, t: await trialDir(), tamper, edit };
      },
      (trial, r, i) => {
        const { f, id, t, tamper, edit } = trial;
        const key = layout.manifest('demo', id);
        const stray = strayWrites(t, f);
        const refused =
          r.restore.outcome === 'FAILED' &&
          r.restore.failedStep === 'select-backup' &&
          r.verifyCode === 1 &&
          r.verifyText.startsWith('VERIFY_FAILED');
        const says = (text: string) => text.includes(`manifest ${key} refused: ${tamper.says}`);
        const lost = !refused || stray.length > 0 || !says(r.restoreMessage) || !says(r.verifyText);
        const outcome = !refused ? 'NOT REFUSED' : lost ? 'refused without saying why' : `refused: ${tamper.says}`;
        tally.add(outcome, lost);
        if (lost) problems.push(`trial ${i}: ${outcome}; ${stray.join('; ')}; ${r.restoreMessage} | ${r.verifyText}`);
        console.log(
          `[archive] tampered manifest ${i + 1} (${f.name}; edited ${edit.what}; ${tamper.kind}): ${outcome}; restore: ${r.restoreMessage.slice(0, 220)}${stray.length ? `; STRAY: ${stray.join('; ')}` : ''}`,
        );
      },
    );

    // `backups list` shows each refused manifest as unreadable, never as a backup.
    for (const f of flavours) {
      const ids = [...refusedIds].filter(([, v]) => v.f === f);
      if (ids.length === 0) continue;
      const tmp = (await trialDir()).tmp;
      const listed = json<{
        backups: Array<{ backupId: string }>;
        unreadable: Array<{ backupId: string; problem: string }>;
      }>(await lifeboat(['backups', 'list', '--config', f.config, '--json'], envFor(tmp)));
      // Retention never takes a refused backup for an abandoned upload (abandonedUploadMinutes: 0 here).
      const pruned = await lifeboat(['prune', '--config', f.config, '--json'], envFor(tmp));
      expect(pruned.code, pruned.stderr).toBe(0);
      for (const [id, { says }] of ids) {
        const listedAsBackup = listed.backups.some((b) => b.backupId === id);
        const unreadable = listed.unreadable.some((u) => u.backupId === id && u.problem.includes(says));
        const kept =
          existsSync(join(f.dir, 'store', 'demo', 'backups', id, 'manifest.json')) &&
          existsSync(join(f.dir, 'store', layout.archive('demo', id, f.name === 'encrypted')));
        if (listedAsBackup || !unreadable || !kept) {
          tally.lost += 1;
          problems.push(
            `${id}: listed as a backup ${listedAsBackup}, as unreadable ${unreadable}, kept by prune ${kept}`,
          );
        }
      }
      console.log(
        `[archive] ${f.name}: backups list shows ${listed.unreadable.length} manifest(s) as unreadable (${ids.length} tampered); prune kept the tampered ones: ${problems.length === 0}`,
      );
    }
    tally.record(
      CATEGORY,
      'tampered manifest',
      'archive damaged and the manifest edited to match (archive sha256, entries, row counts), its seal left, redone without the key, or stripped while a key is configured; restore and verify refuse naming the manifest and why; backups list shows it unreadable; prune keeps it; nothing beside the staging; production checksums unchanged',
    );
    for (const f of flavours) expectBaseIntact(f);
    expect(problems).toEqual([]);
    expect(tally.lost).toBe(0);
  }, 600_000);

  it('a manifest written before seals still reads where no key is configured, and is refused where one is', async () => {
    const f = flavours[0] as Flavour;
    const id = nextId(f);
    const old = manifestFor(f, id);
    delete (old as { seal?: unknown }).seal;
    await commit(f, old, f.archive, id);
    const tmp = (await trialDir()).tmp;
    const [withoutKey, withKey, unset] = await Promise.all([
      lifeboat(['verify', id, '--config', f.noKeyConfig, '--json'], { TMPDIR: tmp }),
      lifeboat(['verify', id, '--config', f.config, '--json'], envFor(tmp)),
      // A key configured but not set stops every command that reads manifests.
      lifeboat(['backups', 'list', '--config', f.config], { TMPDIR: tmp, [KEY_ENV]: '' }),
    ]);
    expect(withoutKey.code, withoutKey.stderr).toBe(0);
    expect(json<VerificationRecord>(withoutKey).ok).toBe(true);
    expect(withKey.code).toBe(1);
    expect(json<{ error: { message: string } }>(withKey).error.message).toContain(
      `manifest ${layout.manifest('demo', id)} refused: it is not sealed`,
    );
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain(`backup.manifestKeyEnv names ${KEY_ENV}, which is not set`);
    expect(readdirSync(tmp)).toEqual([]);
  }, 120_000);
});
