// lifeboat.yaml: the configuration every app and the CLI read. Validated at start; an error
// names the key that is wrong.
import { z } from 'zod';
import { TargetName } from './backup.js';
import { DrillsConfig } from './drill.js';

const AgeRecipient = z.string().regex(/^age1[0-9a-z]+$/, 'an age recipient starts with "age1"');

export const FsStoreConfig = z
  .object({
    type: z.literal('fs'),
    /** Directory of the store; relative paths are relative to the config file. */
    path: z.string().min(1),
  })
  .strict();

export const S3StoreConfig = z
  .object({
    type: z.literal('s3'),
    /** Omit for AWS; set for MinIO, s3rver or any S3-compatible server. */
    endpoint: z.url().optional(),
    region: z.string().default('us-east-1'),
    bucket: z.string().min(3),
    prefix: z.string().default(''),
    forcePathStyle: z.boolean().default(true),
    /** Names of the environment variables holding the credentials (values never go in this file). */
    accessKeyIdEnv: z.string().default('AWS_ACCESS_KEY_ID'),
    secretAccessKeyEnv: z.string().default('AWS_SECRET_ACCESS_KEY'),
    /** Multipart part size in MiB (5 to 512). */
    partSizeMiB: z.number().int().min(5).max(512).default(16),
  })
  .strict();

export const StoreConfig = z.discriminatedUnion('type', [FsStoreConfig, S3StoreConfig]);
export type StoreConfig = z.infer<typeof StoreConfig>;
export type S3StoreConfig = z.infer<typeof S3StoreConfig>;

export const DatabaseConfig = z.discriminatedUnion('engine', [
  z
    .object({
      engine: z.literal('sqlite'),
      /** The database file, relative to the target's root. */
      path: z.string().min(1).default('trading.db'),
    })
    .strict(),
  z
    .object({
      engine: z.literal('postgres'),
      /** Name of the environment variable holding the connection URL (it may carry a password). */
      urlEnv: z.string().default('DATABASE_URL'),
      /** A URL written here directly; only for passwordless local setups. */
      url: z.string().optional(),
    })
    .strict(),
]);
export type DatabaseConfig = z.infer<typeof DatabaseConfig>;

/** The Sofia shape from the runbook: state files, reports, config files and audit logs. */
export const DEFAULT_FILES = {
  state: ['kill_switch_state.json', 'shadow_orders.jsonl'],
  reports: ['reports/**'],
  config: ['.env*'],
  audit: ['logs/**/*.jsonl', 'logs/**/*.log'],
} as const;

/** The target's own HTTP API (Sofia's): health, kill switch, and its view of the exchange. */
export const TargetApiConfig = z
  .object({
    url: z.url(),
    /** Each request's timeout; the kill-switch client falls back to the state file after it. */
    timeoutMs: z.number().int().positive().default(2000),
  })
  .strict();

/** Where the reconciler gets the exchange's side of the books. */
export const ExchangeSourceConfig = z.discriminatedUnion('type', [
  /** The target's `/exchange/*` routes (the target asks its venue). */
  z
    .object({
      type: z.literal('http'),
      url: z.url().optional(),
      timeoutMs: z.number().int().positive().default(30_000),
    })
    .strict(),
  /** Any ccxt exchange, asked directly with read-only keys from the environment. */
  z
    .object({
      type: z.literal('ccxt'),
      exchange: z.string().min(1),
      apiKeyEnv: z.string().default('EXCHANGE_API_KEY'),
      secretEnv: z.string().default('EXCHANGE_API_SECRET'),
      /** Base URL overrides (a testnet, or a simulated venue). */
      urls: z.record(z.string(), z.string()).optional(),
      /** Markets to read; default: every market with a balance or an internal order. */
      symbols: z.array(z.string()).optional(),
      /** How far back to read orders and trades (ISO instant); default: everything the venue gives. */
      since: z.string().optional(),
      timeoutMs: z.number().int().positive().default(30_000),
    })
    .strict(),
  /** A `lifeboat.exchange-snapshot/v1` file exported by other means. */
  z.object({ type: z.literal('file'), path: z.string().min(1) }).strict(),
]);
export type ExchangeSourceConfig = z.infer<typeof ExchangeSourceConfig>;

/** Named SQL queries that read the books from a target database of another schema. */
export const BooksProfileConfig = z
  .object({
    orders: z.string().min(1),
    fills: z.string().min(1),
    positions: z.string().min(1),
    balances: z.string().min(1),
  })
  .strict();
export type BooksProfileConfig = z.infer<typeof BooksProfileConfig>;

export const TargetConfig = z
  .object({
    /** The trading system's working directory. */
    root: z.string().min(1),
    api: TargetApiConfig.optional(),
    /** Sofia's kill-switch state file, relative to the root; written directly when the API is down. */
    killSwitchFile: z.string().min(1).default('kill_switch_state.json'),
    /** Commands that start and stop the target (run by a shell in the target's root). */
    control: z
      .object({
        /** Starts it trading live, e.g. `systemctl start sofia-trading`. */
        start: z.string().min(1),
        /** Starts it in shadow mode (orders recorded, not sent), e.g. `systemctl start sofia-trading-shadow`. */
        startShadow: z.string().min(1),
        /** Stops it; must succeed when it is already stopped. */
        stop: z.string().min(1),
        /** Working directory of the commands (default: the target's root, or the config's directory when the root is gone). */
        cwd: z.string().optional(),
        /** Longest a command may take. */
        timeoutMs: z.number().int().positive().default(120_000),
        /** Longest the target may take to answer healthy after a start. */
        healthTimeoutMs: z.number().int().positive().default(60_000),
      })
      .strict()
      .optional(),
    exchange: ExchangeSourceConfig.optional(),
    reconcile: z
      .object({
        /** Queries for a schema other than the Sofia/paper-trader one (docs/FORMAT.md). */
        profile: BooksProfileConfig.optional(),
        /** Overrides of the reconciliation settings (tolerances, ages). */
        settings: z.record(z.string(), z.unknown()).optional(),
      })
      .strict()
      .optional(),
    drills: z
      .object({
        /** The kill-switch drill may halt this target's production trading (default: it runs in a sandbox). */
        killSwitchInProduction: z.boolean().default(false),
        /**
         * Commands that run a copy of the target from a sandbox (shell, in the sandbox), for the
         * drills that need a live process: they get LIFEBOAT_SANDBOX_ROOT, LIFEBOAT_SANDBOX_PORT
         * and LIFEBOAT_SANDBOX_EXCHANGE_URL in their environment.
         */
        sandbox: z
          .object({
            /** The venue a copy talks to: a testnet, or the simulated exchange (the copy runs in shadow mode regardless). */
            exchangeUrl: z.url(),
            start: z.string().min(1),
            startShadow: z.string().min(1),
            stop: z.string().min(1),
            timeoutMs: z.number().int().positive().default(120_000),
            healthTimeoutMs: z.number().int().positive().default(60_000),
            /**
             * A venue of the copy's own, for the drill that trades (rpo-under-load): commands that
             * start and stop a scratch exchange (a simulator, a testnet account nobody else uses)
             * listening on 127.0.0.1:$LIFEBOAT_SANDBOX_VENUE_PORT, with an account for the keys in
             * the sandbox's config. Never production's account: the copy places real orders there.
             */
            venue: z
              .object({ start: z.string().min(1), stop: z.string().min(1) })
              .strict()
              .optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .prefault({}),
    database: DatabaseConfig.nullable().default({ engine: 'sqlite', path: 'trading.db' }),
    files: z
      .object({
        state: z.array(z.string()).default([...DEFAULT_FILES.state]),
        reports: z.array(z.string()).default([...DEFAULT_FILES.reports]),
        config: z.array(z.string()).default([...DEFAULT_FILES.config]),
        audit: z.array(z.string()).default([...DEFAULT_FILES.audit]),
      })
      .strict()
      .prefault({}),
    /** Continuous protection (`lifeboat ship`): the database's log and the append-only files, shipped as they grow. */
    ship: z
      .object({
        /** How often changes are shipped: the most a restore to the latest point loses, plus an upload. */
        intervalMs: z.number().int().min(100).max(600_000).default(1000),
        /**
         * The SQLite log is checkpointed by the shipper (and may restart) once it is larger than
         * this. Well under SQLite's own automatic checkpoint (1000 pages, 4 MiB at 4 KiB pages):
         * a shipper restarted finds its place in the log unless the target wrote more than the
         * difference while it was down (else it starts a new generation, with a snapshot).
         */
        checkpointMiB: z.number().min(0.0625).max(1024).default(1),
        /** A PostgreSQL target's WAL, streamed as the server flushes it (`pg_receivewal`), on top of archive_command. */
        postgres: z
          .object({
            /** Off: the archive alone, which holds a segment once the server closes it (archive_timeout). */
            stream: z.boolean().default(true),
            /**
             * A physical replication slot (created when missing): the server keeps WAL until the
             * shipper has it, even across a long outage of the shipper — and fills its disk if the
             * shipper never comes back. Without one, WAL recycled while the shipper was away is
             * left to the archive.
             */
            slot: z
              .string()
              .regex(/^[a-z0-9_]{1,63}$/, 'a slot name is lower-case letters, digits and _, at most 63')
              .optional(),
            /** Where pg_receivewal writes (relative to this file); default: a directory under the OS temp dir. */
            spoolDir: z.string().min(1).optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /** Files only ever appended to: copied up to the byte offset recorded at the cut. */
    appendOnly: z.array(z.string()).default(['*.jsonl', '**/*.jsonl', '**/*.log']),
    /** Files holding secrets: stored only inside an encrypted archive. */
    secrets: z.array(z.string()).default(['.env*', '**/.env*']),
  })
  .strict();
export type TargetConfig = z.infer<typeof TargetConfig>;

export const RetentionPolicy = z
  .object({
    keepLast: z.number().int().nonnegative().default(0),
    keepDaily: z.number().int().nonnegative().default(30),
    keepWeekly: z.number().int().nonnegative().default(0),
    keepMonthly: z.number().int().nonnegative().default(0),
    keepYearly: z.number().int().nonnegative().default(0),
  })
  .strict();
export type RetentionPolicy = z.infer<typeof RetentionPolicy>;

/** The name the `store` location goes by beside the others (`--from primary`). */
export const PRIMARY_LOCATION = 'primary';

const LocationName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,39}$/, 'a location name is lowercase letters, digits and dashes, starting with a letter')
  .refine((n) => n !== PRIMARY_LOCATION, `"${PRIMARY_LOCATION}" is the name of \`store\`; choose another`);

/** A place backups are copied to after they commit in the primary store, with its own retention. */
export const LocationConfig = z.discriminatedUnion('type', [
  FsStoreConfig.extend({ retention: RetentionPolicy.optional() }).strict(),
  S3StoreConfig.extend({ retention: RetentionPolicy.optional() }).strict(),
]);
export type LocationConfig = z.infer<typeof LocationConfig>;

export const LifeboatConfig = z
  .object({
    version: z.literal(1).default(1),
    /** The primary location: backups commit here first, and every record (drills, restores, audit) lives here. */
    store: StoreConfig,
    /**
     * More locations, in the order restores try them after the primary: each gets a verified
     * copy of every backup (queue `replicate`) and keeps it by its own retention (default:
     * `retention`).
     */
    locations: z.record(LocationName, LocationConfig).default({}),
    encryption: z
      .object({
        /** age recipients (public keys); every archive is encrypted to all of them. */
        recipients: z.array(AgeRecipient).min(1),
        /** File holding an age identity (AGE-SECRET-KEY-1…), needed to verify, extract and restore. */
        identityFile: z.string().optional(),
      })
      .strict()
      .optional(),
    targets: z
      .record(TargetName, TargetConfig)
      .refine((t) => Object.keys(t).length > 0, 'at least one target is needed'),
    retention: RetentionPolicy.prefault({}),
    drills: DrillsConfig.prefault({}),
    backup: z
      .object({
        /** What a backup checks after committing: re-read the stored archive (quick), or everything (full). */
        verifyAfter: z.enum(['none', 'quick', 'full']).default('quick'),
        /** gzip level, 1 (fastest) to 9 (smallest). */
        compressionLevel: z.number().int().min(1).max(9).default(6),
        /** Incomplete uploads older than this many minutes are aborted when a backup starts. */
        abandonedUploadMinutes: z.number().int().nonnegative().default(60),
        /** Where the database snapshot and the copies of small files wait while they are archived (default: the OS temp dir). */
        stagingDir: z.string().min(1).optional(),
        /**
         * The environment variable holding the key manifests are sealed with (an HMAC, docs/FORMAT.md §3).
         * When set, every manifest written carries the HMAC and every manifest read must.
         */
        manifestKeyEnv: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'the name of an environment variable, not the key itself')
          .optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type LifeboatConfig = z.infer<typeof LifeboatConfig>;
export type LifeboatConfigInput = z.input<typeof LifeboatConfig>;

/** Formats a zod error as one line per problem, each naming the key (`targets.demo.root: …`). */
export function describeZodError(error: z.ZodError, source?: string): string {
  const lines = error.issues.map((issue) => {
    const key = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
    // A record key that does not parse (a target or location name): its own message says why.
    const inner = issue.code === 'invalid_key' ? issue.issues.map((i) => i.message).join(', ') : '';
    return `${key}: ${inner || issue.message}`;
  });
  return `${source ? `${source}: ` : ''}${lines.join('; ')}`;
}
