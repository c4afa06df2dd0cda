// Benchmarks of Lifeboat operations against the shell commands a person would run instead,
// on the same data in the same run: `npm run bench -- <name>|all [--size 1GiB] [--runs 3]
// [--json]`. backup, postgres-backup, restore and verify run each operation as a whole
// process, alternating with its baseline, and show median wall time, throughput, peak memory
// and the ratio Lifeboat / baseline; `reconcile [--orders 1000000]` reconciles N orders and
// 2N fills over 1,000 symbols; `queue [--jobs 5000]` times empty jobs through BullMQ;
// `kill-switch [--trials 20]` times `lifeboat kill-switch activate` until the paper-trader
// refuses orders; `soak [--seconds 60] [--rate 100]` runs the demo and watches its memory.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateTarget } from '@lifeboat/demo-data';
import { parseSize } from '@lifeboat/domain';
import { benchKillSwitch } from './kill-switch.js';
import { benchQueue } from './queue.js';
import { benchReconcile } from './reconcile.js';
import { benchSoak } from './soak.js';
import { median } from './stats.js';

const repo = resolve(import.meta.dirname, '..');
const cacheRoot = join(repo, '.bench-cache');
const cli = join(repo, 'apps', 'cli', 'bin', 'lifeboat.js');

interface Args {
  name: string;
  size: number;
  sizeLabel: string;
  runs: number;
  json: boolean;
  seconds: number;
  rate: number;
  orders: number;
  jobs: number;
  trials: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    name: 'backup',
    size: 1024 ** 3,
    sizeLabel: '1GiB',
    runs: 3,
    json: false,
    seconds: 60,
    rate: 100,
    orders: 1_000_000,
    jobs: 5000,
    trials: 20,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--size') {
      args.sizeLabel = argv[++i] ?? '';
      args.size = parseSize(args.sizeLabel);
    } else if (a === '--runs') args.runs = Number(argv[++i]);
    else if (a === '--seconds') args.seconds = Number(argv[++i]);
    else if (a === '--rate') args.rate = Number(argv[++i]);
    else if (a === '--orders') args.orders = Number(argv[++i]);
    else if (a === '--jobs') args.jobs = Number(argv[++i]);
    else if (a === '--trials') args.trials = Number(argv[++i]);
    else if (a === '--json') args.json = true;
    else if (!a.startsWith('-')) args.name = a;
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(args.runs) || args.runs < 1) throw new Error('--runs must be a positive whole number');
  if (!(args.seconds > 0)) throw new Error('--seconds must be a positive number');
  if (!Number.isInteger(args.rate) || args.rate < 1) throw new Error('--rate must be a positive whole number');
  if (!Number.isInteger(args.jobs) || args.jobs < 1) throw new Error('--jobs must be a positive whole number');
  if (!Number.isInteger(args.trials) || args.trials < 1) throw new Error('--trials must be a positive whole number');
  return args;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

interface Measured {
  wallS: number;
  peakRssMiB: number;
}

/** Runs a shell command under GNU time; returns wall seconds and the peak RSS of its largest process. */
function timed(command: string, cwd: string): Measured {
  const report = join(cacheRoot, 'time.txt');
  const started = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', report, 'bash', '-c', command], {
    cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`"${command}" failed (${r.status}): ${r.stderr.toString().slice(-2000)}`);
  const kib = Number(readFileSync(report, 'utf8').trim().split('\n').at(-1));
  return { wallS, peakRssMiB: kib / 1024 };
}

async function dataset(size: number, label: string): Promise<string> {
  const dir = join(cacheRoot, `sqlite-${label}-seed1`);
  const done = join(dir, '.complete');
  if (existsSync(done)) return join(dir, 'target');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  process.stderr.write(`generating a ${label} Sofia-shaped target in ${dir} (cached for later runs)…\n`);
  await generateTarget(join(dir, 'target'), { sizeBytes: size, seed: 1 });
  writeFileSync(done, new Date().toISOString());
  return join(dir, 'target');
}

/** backup: `lifeboat backup` vs the runbook's backup.sh (sqlite3 .backup + cp + tar -czf). */
async function benchBackup(args: Args) {
  const target = await dataset(args.size, args.sizeLabel);
  const work = join(cacheRoot, 'work-backup');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const config = join(work, 'lifeboat.yaml');
  writeFileSync(config, `store:\n  type: fs\n  path: store\ntargets:\n  bench:\n    root: ${target}\n`);
  // Node's zlib at level 6 makes a slightly larger archive than GNU gzip -6; level 7 is the
  // first that is no larger, so it runs too.
  writeFileSync(
    join(work, 'lifeboat-7.yaml'),
    `store:\n  type: fs\n  path: store7\ntargets:\n  bench:\n    root: ${target}\nbackup:\n  compressionLevel: 7\n`,
  );
  const sourceBytes = dirBytes(target);
  // The runbook's "Automated Daily Backup", steps 1-4, over the same files (audit logs added).
  const runbook = [
    'set -e',
    'BACKUP_DIR="$PWD/sofia/$(date +%Y%m%d)"',
    'mkdir -p "$BACKUP_DIR"',
    `cd ${JSON.stringify(target)}`,
    'sqlite3 trading.db ".backup $BACKUP_DIR/trading.db"',
    'cp kill_switch_state.json "$BACKUP_DIR/"',
    'cp shadow_orders.jsonl "$BACKUP_DIR/"',
    'cp -r reports/ "$BACKUP_DIR/"',
    'cp -r logs/ "$BACKUP_DIR/"',
    'cp .env "$BACKUP_DIR/.env.backup"',
    'cp .env.testnet "$BACKUP_DIR/"',
    'cd "$(dirname "$BACKUP_DIR")"',
    'tar -czf "$BACKUP_DIR.tar.gz" "$(basename "$BACKUP_DIR")"',
    'rm -rf "$BACKUP_DIR"',
  ].join('\n');
  const lifeboat = `node ${JSON.stringify(cli)} backup --config lifeboat.yaml --reason bench`;
  const lifeboat7 = `node ${JSON.stringify(cli)} backup --config lifeboat-7.yaml --reason bench`;
  const a: Measured[] = [];
  const a7: Measured[] = [];
  const b: Measured[] = [];
  let lifeboatArchive = 0;
  let lifeboat7Archive = 0;
  let runbookArchive = 0;
  for (let i = 0; i < args.runs; i++) {
    rmSync(join(work, 'store'), { recursive: true, force: true });
    rmSync(join(work, 'store7'), { recursive: true, force: true });
    rmSync(join(work, 'sofia'), { recursive: true, force: true });
    a.push(timed(lifeboat, work));
    lifeboatArchive = dirBytes(join(work, 'store'));
    a7.push(timed(lifeboat7, work));
    lifeboat7Archive = dirBytes(join(work, 'store7'));
    b.push(timed(runbook, work));
    runbookArchive = dirBytes(join(work, 'sofia'));
    process.stderr.write(
      `run ${i + 1}/${args.runs}: lifeboat ${a.at(-1)?.wallS.toFixed(2)} s (level 7: ${a7.at(-1)?.wallS.toFixed(2)} s), runbook ${b.at(-1)?.wallS.toFixed(2)} s\n`,
    );
  }
  const rows = [
    { ...rowOf('lifeboat backup (+ quick verify)', a, sourceBytes), archiveBytes: lifeboatArchive },
    { ...rowOf('runbook: sqlite3 .backup + cp + tar -czf', b, sourceBytes), archiveBytes: runbookArchive },
    { ...rowOf('lifeboat backup, compressionLevel 7', a7, sourceBytes), archiveBytes: lifeboat7Archive },
  ];
  return {
    bench: 'backup',
    size: args.sizeLabel,
    sourceBytes,
    runs: args.runs,
    rows,
    ratio: (rows[0]?.medianWallS ?? 0) / (rows[1]?.medianWallS ?? 1),
    ratioLevel7: (rows[2]?.medianWallS ?? 0) / (rows[1]?.medianWallS ?? 1),
  };
}

/**
 * restore: `lifeboat restore --scenario server-loss --to sandbox:<dir>` (fetch, checksum every
 * entry, SQLite integrity check and row counts, kill switch ON in the restored state, rename
 * into place) vs the runbook's manual path over the same files (`tar -xzf` + `cp` +
 * `PRAGMA integrity_check`). Both archives are unencrypted gzip, as the runbook's is.
 */
async function benchRestore(args: Args) {
  const target = await dataset(args.size, args.sizeLabel);
  const work = join(cacheRoot, 'work-restore');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const config = join(work, 'lifeboat.yaml');
  writeFileSync(config, `store:\n  type: fs\n  path: store\ntargets:\n  bench:\n    root: ${target}\n`);
  const made = spawnSync(process.execPath, [cli, 'backup', '--config', config, '--json'], {
    cwd: work,
    encoding: 'utf8',
  });
  if (made.status !== 0) throw new Error(`lifeboat backup failed: ${made.stderr}`);
  const backupId = (JSON.parse(made.stdout) as { backupId: string }).backupId;
  // The runbook's archive of the same target, made once.
  const tarball = join(work, 'sofia.tar.gz');
  timed(`tar -czf ${JSON.stringify(tarball)} -C ${JSON.stringify(target)} .`, work);
  const sourceBytes = dirBytes(target);
  const a: Measured[] = [];
  const b: Measured[] = [];
  for (let i = 0; i < args.runs; i++) {
    rmSync(join(work, 'restored'), { recursive: true, force: true });
    rmSync(join(work, 'manual'), { recursive: true, force: true });
    a.push(
      timed(
        `node ${JSON.stringify(cli)} restore --config lifeboat.yaml --scenario server-loss --backup ${backupId} --to sandbox:restored --yes --json > restore-result.json`,
        work,
      ),
    );
    const result = JSON.parse(readFileSync(join(work, 'restore-result.json'), 'utf8')) as {
      outcome: string;
      failedStep: string | null;
    };
    if (result.outcome !== 'COMPLETED') throw new Error(`lifeboat restore ${result.outcome} at ${result.failedStep}`);
    // Scenario 2 of the runbook by hand: unpack, copy the database into place, check it.
    b.push(
      timed(
        [
          'set -e',
          'mkdir -p manual/extract manual/target',
          `tar -xzf ${JSON.stringify(tarball)} -C manual/extract`,
          'cp manual/extract/trading.db manual/target/trading.db',
          'test "$(sqlite3 manual/target/trading.db "PRAGMA integrity_check")" = ok',
        ].join('\n'),
        work,
      ),
    );
    process.stderr.write(
      `run ${i + 1}/${args.runs}: lifeboat ${a.at(-1)?.wallS.toFixed(2)} s, runbook ${b.at(-1)?.wallS.toFixed(2)} s\n`,
    );
  }
  const rows = [
    rowOf('lifeboat restore server-loss → sandbox', a, sourceBytes),
    rowOf('runbook: tar -xzf + cp + PRAGMA integrity_check', b, sourceBytes),
  ];
  const ratio = (rows[0]?.medianWallS ?? 0) / (rows[1]?.medianWallS ?? 1);
  const data = { bench: 'restore', size: args.sizeLabel, sourceBytes, runs: args.runs, backupId, rows, ratio };
  const lines = [
    ...table(
      `restore: ${args.sizeLabel} target (${(sourceBytes / 1024 ** 2).toFixed(0)} MiB of files), median of ${args.runs} runs`,
      rows,
    ),
    `  ratio lifeboat / runbook (wall time): ${ratio.toFixed(2)} (target ≤ 1.0)`,
    '  lifeboat also checks every entry sha256 and the row counts against the manifest, and sets the kill switch ON',
  ];
  return { bench: 'restore', lines, data };
}

/**
 * verify: `lifeboat verify --full` (fetch, gunzip, every entry's sha256 against the
 * manifest, the archive's own sha256, SQLite's integrity check and row counts on the
 * restored file, JSON state parsed) vs `sha256sum -c` over the same files already extracted.
 */
async function benchVerify(args: Args): Promise<BenchResult> {
  const target = await dataset(args.size, args.sizeLabel);
  const work = join(cacheRoot, 'work-verify');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'extracted'), { recursive: true });
  writeFileSync(
    join(work, 'lifeboat.yaml'),
    `store:\n  type: fs\n  path: store\ntargets:\n  bench:\n    root: ${target}\nbackup:\n  verifyAfter: none\n`,
  );
  const made = spawnSync(process.execPath, [cli, 'backup', '--config', 'lifeboat.yaml', '--json'], {
    cwd: work,
    encoding: 'utf8',
  });
  if (made.status !== 0) throw new Error(`lifeboat backup failed: ${made.stderr}`);
  const backupId = (JSON.parse(made.stdout) as { backupId: string }).backupId;
  // The same files by hand: a copy of the target and the list of their checksums.
  timed(
    `cp -a ${JSON.stringify(`${target}/.`)} extracted/ && cd extracted && find . -type f -print0 | xargs -0 sha256sum > ../SHA256SUMS`,
    work,
  );
  const sourceBytes = dirBytes(target);
  const a: Measured[] = [];
  const b: Measured[] = [];
  for (let i = 0; i < args.runs; i++) {
    a.push(
      timed(
        `node ${JSON.stringify(cli)} verify --config lifeboat.yaml --full --json ${backupId} > verify-result.json`,
        work,
      ),
    );
    const result = JSON.parse(readFileSync(join(work, 'verify-result.json'), 'utf8')) as {
      ok: boolean;
      problems: string[];
    };
    if (!result.ok) throw new Error(`lifeboat verify --full failed: ${result.problems.join('; ')}`);
    b.push(timed('cd extracted && sha256sum --quiet -c ../SHA256SUMS', work));
    process.stderr.write(
      `run ${i + 1}/${args.runs}: lifeboat ${a.at(-1)?.wallS.toFixed(2)} s, sha256sum ${b.at(-1)?.wallS.toFixed(2)} s\n`,
    );
  }
  const rows = [
    rowOf('lifeboat verify --full', a, sourceBytes),
    rowOf('sha256sum -c over the extracted files', b, sourceBytes),
  ];
  const ratio = (rows[0]?.medianWallS ?? 0) / (rows[1]?.medianWallS ?? 1);
  return {
    bench: 'verify',
    lines: [
      ...table(
        `verify: ${args.sizeLabel} target (${(sourceBytes / 1024 ** 2).toFixed(0)} MiB of files), median of ${args.runs} runs`,
        rows,
      ),
      `  ratio lifeboat / sha256sum (wall time): ${ratio.toFixed(2)} (target ≤ 1.2)`,
      "  lifeboat also decompresses the archive, checks its own sha256 and runs the database's integrity check and row counts",
    ],
    data: { bench: 'verify', size: args.sizeLabel, sourceBytes, runs: args.runs, backupId, rows, ratio, target: 1.2 },
  };
}

/**
 * postgres-backup: `lifeboat backup` of a PostgreSQL target (pg_dump -Fc in one
 * repeatable-read snapshot, pg_restore --list, the files, all streamed into one archive) vs
 * `pg_dump -Fc` + `tar -czf` over the same files. The database is generated once on the
 * local server (PGURL, default postgres://postgres@127.0.0.1:5432) and kept between runs.
 */
async function benchPostgresBackup(args: Args): Promise<BenchResult> {
  const admin = process.env.PGURL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `lifeboat_bench_${args.sizeLabel.toLowerCase().replace(/[^a-z0-9]/g, '_')}`;
  const url = new URL(admin);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const dir = join(cacheRoot, `postgres-${args.sizeLabel}-seed1`);
  const target = join(dir, 'target');
  if (!existsSync(join(dir, '.complete'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const psql = (sql: string) => {
      const r = spawnSync('psql', [admin, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
    };
    psql(`DROP DATABASE IF EXISTS ${dbName}`);
    psql(`CREATE DATABASE ${dbName}`);
    process.stderr.write(
      `generating a ${args.sizeLabel} Sofia-shaped PostgreSQL target in database ${dbName} (kept for later runs)…\n`,
    );
    await generateTarget(target, { sizeBytes: args.size, seed: 1, db: 'postgres', postgresUrl: dbUrl });
    writeFileSync(join(dir, '.complete'), new Date().toISOString());
  }
  const work = join(cacheRoot, 'work-postgres-backup');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  writeFileSync(
    join(work, 'lifeboat.yaml'),
    `store:\n  type: fs\n  path: store\ntargets:\n  bench:\n    root: ${target}\n    database:\n      engine: postgres\n      urlEnv: BENCH_DB_URL\n`,
  );
  const size = spawnSync('psql', [dbUrl, '-Atc', 'SELECT pg_database_size(current_database())'], { encoding: 'utf8' });
  if (size.status !== 0) throw new Error(`psql failed: ${size.stderr}`);
  const databaseBytes = Number(size.stdout.trim());
  const sourceBytes = dirBytes(target) + databaseBytes;
  const runbook = [
    'set -e',
    'mkdir -p manual/sofia',
    `pg_dump -Fc -f manual/sofia/trading.dump ${JSON.stringify(dbUrl)}`,
    `cp -a ${JSON.stringify(`${target}/.`)} manual/sofia/`,
    'tar -czf manual/sofia.tar.gz -C manual sofia',
    'rm -rf manual/sofia',
  ].join('\n');
  const a: Measured[] = [];
  const b: Measured[] = [];
  let lifeboatArchive = 0;
  let runbookArchive = 0;
  for (let i = 0; i < args.runs; i++) {
    rmSync(join(work, 'store'), { recursive: true, force: true });
    rmSync(join(work, 'manual'), { recursive: true, force: true });
    a.push(
      timed(
        `BENCH_DB_URL=${JSON.stringify(dbUrl)} node ${JSON.stringify(cli)} backup --config lifeboat.yaml --reason bench`,
        work,
      ),
    );
    lifeboatArchive = dirBytes(join(work, 'store'));
    b.push(timed(runbook, work));
    runbookArchive = dirBytes(join(work, 'manual'));
    process.stderr.write(
      `run ${i + 1}/${args.runs}: lifeboat ${a.at(-1)?.wallS.toFixed(2)} s, runbook ${b.at(-1)?.wallS.toFixed(2)} s\n`,
    );
  }
  const rows = [
    { ...rowOf('lifeboat backup (+ quick verify)', a, sourceBytes), archiveBytes: lifeboatArchive },
    { ...rowOf('runbook: pg_dump -Fc + cp + tar -czf', b, sourceBytes), archiveBytes: runbookArchive },
  ];
  const ratio = (rows[0]?.medianWallS ?? 0) / (rows[1]?.medianWallS ?? 1);
  return {
    bench: 'postgres-backup',
    lines: [
      ...table(
        `postgres-backup: ${args.sizeLabel} PostgreSQL target (database ${(databaseBytes / 1024 ** 2).toFixed(0)} MiB on disk, ${((sourceBytes - databaseBytes) / 1024 ** 2).toFixed(0)} MiB of files), median of ${args.runs} runs`,
        rows,
      ),
      `  ratio lifeboat / runbook (wall time): ${ratio.toFixed(2)} (target ≤ 0.5)`,
    ],
    data: {
      bench: 'postgres-backup',
      size: args.sizeLabel,
      database: dbName,
      sourceBytes,
      runs: args.runs,
      rows,
      ratio,
      target: 0.5,
    },
  };
}

interface Row {
  name: string;
  medianWallS: number;
  minWallS: number;
  maxWallS: number;
  mibPerS: number;
  peakRssMiB: number;
  archiveBytes?: number;
}

function rowOf(name: string, ms: Measured[], bytes: number): Row {
  const wall = median(ms.map((m) => m.wallS));
  return {
    name,
    medianWallS: wall,
    minWallS: Math.min(...ms.map((m) => m.wallS)),
    maxWallS: Math.max(...ms.map((m) => m.wallS)),
    mibPerS: bytes / 1024 ** 2 / wall,
    peakRssMiB: Math.max(...ms.map((m) => m.peakRssMiB)),
  };
}

function table(title: string, rows: Row[]): string[] {
  const archive = rows.some((r) => r.archiveBytes !== undefined);
  const width = Math.max(...rows.map((r) => r.name.length), 'operation'.length);
  return [
    title,
    `  ${'operation'.padEnd(width)} ${'wall s'.padStart(8)} ${'MiB/s'.padStart(8)} ${'peak RSS MiB'.padStart(13)}${archive ? ' archive MiB'.padStart(13) : ''}`,
    ...rows.map(
      (r) =>
        `  ${r.name.padEnd(width)} ${r.medianWallS.toFixed(2).padStart(8)} ${r.mibPerS.toFixed(1).padStart(8)} ${r.peakRssMiB.toFixed(0).padStart(13)}${r.archiveBytes === undefined ? '' : (r.archiveBytes / 1024 ** 2).toFixed(1).padStart(13)}`,
    ),
  ];
}

/** A benchmark's outcome: the lines it prints and the data `--json` gives. */
interface BenchResult {
  bench: string;
  lines: string[];
  data: unknown;
}

function backupLines(r: Awaited<ReturnType<typeof benchBackup>>): string[] {
  return [
    ...table(
      `${r.bench}: ${r.size} target (${(r.sourceBytes / 1024 ** 2).toFixed(0)} MiB of files), median of ${r.runs} runs`,
      r.rows,
    ),
    `  ratio lifeboat / runbook (wall time): ${r.ratio.toFixed(2)} (target ≤ 0.5); at level 7 ${r.ratioLevel7.toFixed(2)}`,
  ];
}

const BENCHES: Record<string, (args: Args) => Promise<BenchResult>> = {
  backup: async (args) => {
    const r = await benchBackup(args);
    return { bench: r.bench, lines: backupLines(r), data: r };
  },
  'postgres-backup': benchPostgresBackup,
  restore: benchRestore,
  verify: benchVerify,
  reconcile: (args) => benchReconcile({ cacheRoot, orders: args.orders, runs: args.runs }),
  queue: (args) => benchQueue({ jobs: args.jobs, runs: args.runs }),
  'kill-switch': (args) => benchKillSwitch({ cli, cacheRoot, trials: args.trials }),
  soak: (args) => benchSoak({ cli, cacheRoot, seconds: args.seconds, rate: args.rate }),
};

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const names = args.name === 'all' ? Object.keys(BENCHES) : [args.name];
  const results = [];
  for (const name of names) {
    const bench = BENCHES[name];
    if (!bench) throw new Error(`unknown benchmark "${name}" (have: ${Object.keys(BENCHES).join(', ')}, all)`);
    if (!existsSync(join(repo, 'apps', 'cli', 'dist', 'main.js'))) throw new Error('run `npm run build` first');
    mkdirSync(cacheRoot, { recursive: true });
    results.push(await bench(args));
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ machine: machine(), results: results.map((r) => r.data) }, null, 2)}\n`);
    return;
  }
  for (const r of results) console.log(`\n${r.lines.join('\n')}`);
  console.log(`\n${machine()}`);
}

function machine(): string {
  return `node ${process.version}, ${process.arch}, ${spawnSync('nproc').stdout.toString().trim()} cores, ${new Date().toISOString()}`;
}

main().catch((err) => {
  console.error(`bench: ${err.message}`);
  process.exit(1);
});
