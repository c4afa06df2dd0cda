// The `lifeboat` command: the operator's entry point to every Lifeboat operation.
import { Command, CommanderError, Option } from 'commander';
// Commands are loaded when they run: `kill-switch activate` must not wait for the S3 SDK,
// BullMQ and the console to load before it halts trading.
import type * as Audit from './commands/audit.js';
import type * as Backup from './commands/backup.js';
import type * as Catalog from './commands/catalog.js';
import type * as Console from './commands/console.js';
import type * as Demo from './commands/demo.js';
import type * as DemoRun from './commands/demo-run.js';
import type * as Drill from './commands/drill.js';
import type * as KillSwitch from './commands/kill-switch.js';
import type * as Reconcile from './commands/reconcile.js';
import type * as Restore from './commands/restore.js';
import type * as Ship from './commands/ship.js';
import type * as Wal from './commands/wal.js';
import { describeError, EXIT, errorJson, exitCodeFor, printJson } from './output.js';

const program = new Command('lifeboat')
  .description('Disaster recovery for trading systems: verified backups, kill-switch-first restores, measured drills.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

type Action = (...args: never[]) => Promise<number>;

/** Runs an action, turning its outcome into the exit code; errors become one clear line. */
function run(action: Action) {
  return async (...args: unknown[]) => {
    try {
      process.exitCode = await (action as (...a: unknown[]) => Promise<number>)(...args);
    } catch (err) {
      console.error(describeError(err));
      // Scripts asking for --json get the error as JSON on stdout too.
      if (process.argv.includes('--json')) printJson({ error: errorJson(err) });
      process.exitCode = exitCodeFor(err);
    }
  };
}

/** Adds the options every command takes, and merges them with the command's own. */
function withGlobals(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'configuration file (default: $LIFEBOAT_CONFIG or ./lifeboat.yaml)')
    .option('-t, --target <name>', 'target to act on (default: the only one configured)');
}

const demo = program.command('demo').description('a demo trading target to practise on');
demo
  .command('init <dir>')
  .description(
    'create <dir>/target (a Sofia-shaped trading system), <dir>/store, <dir>/exchange and <dir>/lifeboat.yaml',
  )
  .option('--size <size>', 'approximate size of the target, e.g. 10MiB, 1GiB', '10MiB')
  .addOption(new Option('--db <engine>', 'trading database engine').choices(['sqlite', 'postgres']).default('sqlite'))
  .option('--database-url <url>', 'PostgreSQL database for --db postgres (default: $DATABASE_URL)')
  .option('--seed <n>', 'seed for the generated data (same seed, same data)', '1')
  .option('--no-encrypt', 'no age key pair: archives unencrypted, .env files left out of backups')
  .option('--port <n>', 'the paper-trader API port written to lifeboat.yaml (targets.demo.api.url)', '8023')
  .option('--exchange-port <n>', 'the simulated exchange port the control commands use', '8024')
  .option('--json', 'print one JSON result')
  .action(
    run((dir: string, opts: Parameters<typeof Demo.demoInitCommand>[1]) =>
      import('./commands/demo.js').then((m) => m.demoInitCommand(dir, opts)),
    ),
  );

withGlobals(demo.command('start'))
  .description('run the paper-trader and its simulated exchange over the demo directory (Ctrl-C stops them)')
  .option('--rate <n>', 'orders per second (default 20, up to 500)')
  .addOption(new Option('--mode <mode>', 'trading mode').choices(['shadow', 'live']).default('live'))
  .option('--port <n>', "paper-trader API port (default: the port of the target's api.url, else 8023)")
  .option('--exchange-port <n>', 'simulated exchange port', '8024')
  .option('--detach', 'run in the background with pid files in <demo>/run/')
  .option('--only <process>', 'with --detach: start only exchange or paper-trader')
  .option('--root <dir>', "with --detach --only paper-trader: run a copy of the target from <dir> (a drill's sandbox)")
  .option('--exchange-url <url>', 'the exchange the paper-trader talks to (default: the demo exchange)')
  .option('--json', 'print one JSON result (with --detach)')
  .action(
    run((opts: Parameters<typeof DemoRun.demoStartCommand>[0]) =>
      import('./commands/demo-run.js').then((m) => m.demoStartCommand(opts)),
    ),
  );

withGlobals(demo.command('stop'))
  .description('stop a detached demo (SIGTERM, then SIGKILL after 15 s)')
  .option('--only <process>', 'stop only exchange or paper-trader')
  .option('--root <dir>', 'stop the copy started with --root <dir>')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof DemoRun.demoStopCommand>[0]) =>
      import('./commands/demo-run.js').then((m) => m.demoStopCommand(opts)),
    ),
  );

withGlobals(program.command('backup'))
  .description('back up the target: database, state files, reports, config and audit logs, in one consistent cut')
  .addOption(
    new Option('--kind <kind>', 'what to back up').choices(['full', 'database', 'state', 'pre-change']).default('full'),
  )
  .option('--reason <text>', 'why (kept in the manifest)', 'manual')
  .option(
    '--scheduled-at <iso>',
    'the schedule slot this backup is for (a second request for one slot makes no second backup)',
  )
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Backup.backupCommand>[0]) =>
      import('./commands/backup.js').then((m) => m.backupCommand(opts)),
    ),
  );

const backups = program.command('backups').description('the catalog of backups');
withGlobals(backups.command('list'))
  .description('list committed backups, oldest first, with their verification state')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Backup.listCommand>[0]) =>
      import('./commands/backup.js').then((m) => m.listCommand(opts)),
    ),
  );

withGlobals(backups.command('replicate'))
  .description(
    'copy to each other location the backups it should hold and lacks (after it was down or added); each copy checksum-verified',
  )
  .option('--to <location>', 'only this location')
  .option('--dry-run', 'print what is missing without copying')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Backup.replicateCommand>[0]) =>
      import('./commands/backup.js').then((m) => m.replicateCommand(opts)),
    ),
  );

withGlobals(program.command('ship'))
  .description(
    "continuous protection: ship the target's SQLite log and append-only files every interval, until Ctrl-C (which ships what is left)",
  )
  .option('--interval <ms>', "milliseconds between rounds (default: the target's ship.intervalMs, 1000)")
  .option('--once', 'ship one round and exit')
  .option('--json', 'print one JSON result when it stops')
  .action(
    run((opts: Parameters<typeof Ship.shipCommand>[0]) =>
      import('./commands/ship.js').then((m) => m.shipCommand(opts)),
    ),
  );

withGlobals(program.command('verify [backup]'))
  .description(
    'verify a backup (an id, or "latest"): quick checks the archive checksum, --full every entry; or an archive file in no store (--file)',
  )
  .option('--full', 'decrypt and unpack; check every entry, the database integrity and the JSON state')
  .option(
    '--file <archive>',
    'verify this archive file fully (a copy made by hand, a download), decrypting when encrypted',
  )
  .option(
    '--manifest <file>',
    "with --file: the backup's stored manifest.json (also checks the archive's size and sha256)",
  )
  .option('--location <name>', 'verify the copy in this location (default: the primary store)')
  .option('--json', 'print one JSON result')
  .action(
    run((id: string | undefined, opts: Parameters<typeof Backup.verifyCommand>[1]) =>
      import('./commands/backup.js').then((m) => m.verifyCommand(id, opts)),
    ),
  );

withGlobals(program.command('extract <backup>'))
  .description('write the files of a backup (an id, or "latest") into a new directory, as the target had them')
  .requiredOption('--to <dir>', 'destination directory (must be new or empty)')
  .option('--location <name>', 'extract the copy in this location (default: the primary store)')
  .option('--json', 'print one JSON result')
  .action(
    run((id: string, opts: Parameters<typeof Backup.extractCommand>[1]) =>
      import('./commands/backup.js').then((m) => m.extractCommand(id, opts)),
    ),
  );

withGlobals(program.command('prune'))
  .description(
    "apply each location's retention (default: keep 30 daily); never deletes the newest verified backup, nor the only verified copy another location still wants",
  )
  .option('--dry-run', 'print the plan without deleting anything')
  .option('--location <name>', 'only this location (default: every location, the primary first)')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Backup.pruneCommand>[0]) =>
      import('./commands/backup.js').then((m) => m.pruneCommand(opts)),
    ),
  );

withGlobals(program.command('reconcile'))
  .description(
    "compare the books with the exchange (the runbook's reconciliation report); exit 0 only when ready to trade",
  )
  .option(
    '--internal <source>',
    "books from a books file (.json), a SQLite file or a postgres:// URL (default: the target's database)",
  )
  .option('--exchange <file>', "exchange snapshot file (default: the target's configured exchange source)")
  .option('--apply', 'backfill missing fills, take the exchange state of orders, rebuild positions; then check again')
  .option('--sign-off <name>', 'who accepts the corrections (needed for a corrected run to be ready to trade)')
  .option('--recovery-type <type>', "the report's recovery_type", 'manual')
  .option('--items <which>', 'items in the report: exceptions (default) or all')
  .option('--no-store', 'do not store the report in the object store')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Reconcile.reconcileCommand>[0]) =>
      import('./commands/reconcile.js').then((m) => m.reconcileCommand(opts)),
    ),
  );

withGlobals(program.command('restore'))
  .description("run a recovery scenario (the runbook's): kill switch ON first, every step timed")
  .requiredOption('--scenario <scenario>', 'app-crash, db-corruption or server-loss')
  .option('--backup <id>', 'the backup to restore, or latest', 'latest')
  .option('--point-in-time <iso>', 'the newest backup taken at or before this time')
  .option('--to <destination>', 'production, sandbox (a scratch directory) or sandbox:<dir>', 'production')
  .option('--from <location>', 'take the backup from this location only (default: the first that has a usable copy)')
  .option('--no-stream', 'restore the backup alone, without rolling forward from the continuous stream')
  .option('--dry-run', 'print the plan and what each step would touch; change nothing')
  .option('--yes', 'confirm a production restore without the prompt')
  .option('--sign-off <name>', 'who accepts the reconciliation corrections')
  .option('--reason <text>', 'why (goes into the kill switch events)', 'restore')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Restore.restoreCommand>[0]) =>
      import('./commands/restore.js').then((m) => m.restoreCommand(opts)),
    ),
  );

withGlobals(program.command('kill-switch <action>'))
  .description('status, activate or deactivate the kill switch (deactivation needs a passing reconciliation)')
  .option('--reason <text>', 'why (required to change it; goes into the audit trail)')
  .option('--json', 'print one JSON result')
  .action(
    run((action: string, opts: Parameters<typeof KillSwitch.killSwitchCommand>[1]) =>
      import('./commands/kill-switch.js').then((m) => m.killSwitchCommand(action, opts)),
    ),
  );

const wal = program
  .command('wal')
  .description("continuous archiving of a PostgreSQL target's WAL, base backups and point-in-time restores");
withGlobals(wal.command('push <path>'))
  .description("archive_command: store one WAL file (archive_command = 'lifeboat wal push %p --config … --target …')")
  .option('--json', 'print one JSON result')
  .action(
    run((path: string, opts: Parameters<typeof Wal.walPushCommand>[1]) =>
      import('./commands/wal.js').then((m) => m.walPushCommand(path, opts)),
    ),
  );
withGlobals(wal.command('fetch <name> <dest>'))
  .description(
    "restore_command: write an archived WAL file to <dest>, checked (restore_command = 'lifeboat wal fetch %f %p …'); exit 1 when it is not archived",
  )
  .option(
    '--archived-by <iso>',
    'take as not archived what was archived after this time (a drill replaying what a server lost then would have left)',
  )
  .option('--json', 'print one JSON result')
  .action(
    run((name: string, dest: string, opts: Parameters<typeof Wal.walFetchCommand>[2]) =>
      import('./commands/wal.js').then((m) => m.walFetchCommand(name, dest, opts)),
    ),
  );
withGlobals(wal.command('verify'))
  .description(
    'check the WAL archive: every record has its object, gaps per timeline, how far each base backup restores; exit 1 on any problem',
  )
  .option('--full', 'also decrypt and decompress every file and check its sha256')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Wal.walVerifyCommand>[0]) =>
      import('./commands/wal.js').then((m) => m.walVerifyCommand(opts)),
    ),
  );
withGlobals(wal.command('basebackup'))
  .description('take a base backup with pg_basebackup (committed once the WAL it needs is archived)')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Wal.walBasebackupCommand>[0]) =>
      import('./commands/wal.js').then((m) => m.walBasebackupCommand(opts)),
    ),
  );
withGlobals(wal.command('restore'))
  .description(
    'restore to a point in time into a scratch PostgreSQL server on a free port of 127.0.0.1, and leave it running',
  )
  .requiredOption('--to-dir <dir>', 'the new data directory (must not exist, or be empty)')
  .option('--point-in-time <iso>', 'an ISO time, or latest: the end of the archived WAL', 'latest')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Wal.walRestoreCommand>[0]) =>
      import('./commands/wal.js').then((m) => m.walRestoreCommand(opts)),
    ),
  );

const drill = program
  .command('drill')
  .description("the runbook's drills, run against a sandbox, with measured RTO and RPO");
withGlobals(drill.command('run <drill>'))
  .description(
    'run a drill: kill-switch, shadow-failover, reconciliation, backup-verify, database-restore, cold-restore, vendor-connectivity-loss, multi-region-failover, rpo-under-load, annual-audit or full-simulation',
  )
  .option('--html <file>', 'also write the HTML report to <file>')
  .option('--open', 'open the HTML report in a browser')
  .option('--json', 'print the report as JSON')
  .action(
    run((name: string, opts: Parameters<typeof Drill.drillRunCommand>[1]) =>
      import('./commands/drill.js').then((m) => m.drillRunCommand(name, opts)),
    ),
  );
withGlobals(drill.command('list'))
  .description('the drills that ran, newest last, with their RTO and RPO')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Drill.drillListCommand>[0]) =>
      import('./commands/drill.js').then((m) => m.drillListCommand(opts)),
    ),
  );
withGlobals(drill.command('report <id>'))
  .description('print a stored drill report (an id from `drill list`, or latest)')
  .option('--html <file>', 'write its HTML page to <file>')
  .option('--json', 'print the report as JSON')
  .action(
    run((id: string, opts: Parameters<typeof Drill.drillReportCommand>[1]) =>
      import('./commands/drill.js').then((m) => m.drillReportCommand(id, opts)),
    ),
  );
withGlobals(drill.command('schedule'))
  .description('the next scheduled drills (UTC), from lifeboat.yaml or the default schedule')
  .option('--from <date>', 'list runs after this instant (default: now)')
  .option('--count <n>', 'how many runs', '20')
  .option('--json', 'print an array of {drill, at}')
  .action(
    run((opts: Parameters<typeof Drill.drillScheduleCommand>[0]) =>
      import('./commands/drill.js').then((m) => m.drillScheduleCommand(opts)),
    ),
  );

const catalog = program.command('catalog').description("distributed mode's PostgreSQL catalog (LIFEBOAT_CATALOG_URL)");
withGlobals(catalog.command('sync'))
  .description('rebuild the catalog from the store (the source of truth): every record upserted, stale rows removed')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Catalog.catalogSyncCommand>[0]) =>
      import('./commands/catalog.js').then((m) => m.catalogSyncCommand(opts)),
    ),
  );

const audit = program.command('audit').description('the tamper-evident audit trail of who did what');
withGlobals(audit.command('verify'))
  .description('recompute the hash chain (and compare the catalog copy); names the first broken entry')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Audit.auditVerifyCommand>[0]) =>
      import('./commands/audit.js').then((m) => m.auditVerifyCommand(opts)),
    ),
  );
withGlobals(audit.command('report'))
  .description(
    "the annual DR audit of a target: drills run against scheduled, targets met, backups per location, failures and what followed, kill-switch events, the trail's verification; exit 1 with findings",
  )
  .requiredOption('--year <yyyy>', 'the calendar year (UTC); the current one ends now')
  .option('--html <file>', 'also write the report as one self-contained HTML page')
  .option('--json', 'print the report as JSON')
  .action(
    run((opts: Parameters<typeof Audit.auditReportCommand>[0]) =>
      import('./commands/audit.js').then((m) => m.auditReportCommand(opts)),
    ),
  );
withGlobals(audit.command('list'))
  .description('the newest audit entries')
  .option('--limit <n>', 'how many', '20')
  .option('--json', 'print one JSON result')
  .action(
    run((opts: Parameters<typeof Audit.auditListCommand>[0]) =>
      import('./commands/audit.js').then((m) => m.auditListCommand(opts)),
    ),
  );

const consoleCmd = withGlobals(program.command('console'))
  .description('the console: API, dashboard and queue board (embedded unless LIFEBOAT_REDIS_URL is set)')
  .option('--port <n>', 'port to listen on', process.env.LIFEBOAT_CONSOLE_PORT ?? '9200')
  .option('--host <address>', 'address to listen on', process.env.LIFEBOAT_CONSOLE_HOST ?? '127.0.0.1')
  .action(
    run((opts: Parameters<typeof Console.consoleCommand>[0]) =>
      import('./commands/console.js').then((m) => m.consoleCommand(opts)),
    ),
  );
withGlobals(consoleCmd.command('token'))
  .description('make a console token; prints it once, with the grant line that lets it in')
  .requiredOption('--name <name>', 'who it is for (two-person rules compare names)')
  .requiredOption('--role <role>', 'viewer, operator, approver or admin')
  .option('--add', 'append the grant to the tokens file ($LIFEBOAT_CONSOLE_TOKENS_FILE, or .lifeboat/console-tokens)')
  .option('--json', 'print one JSON result')
  // --config given after `token` is parsed by `console` (a global option): read both.
  .action(
    run((_opts: unknown, cmd: Command) =>
      import('./commands/console.js').then((m) =>
        m.consoleTokenCommand(cmd.optsWithGlobals() as Parameters<typeof Console.consoleTokenCommand>[0]),
      ),
    ),
  );

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here with code 0; usage errors were already printed.
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    console.error(describeError(err));
    process.exitCode = exitCodeFor(err);
  }
}
