// `lifeboat demo init`: a Sofia-shaped target to protect, a filesystem store, an age key
// pair and the lifeboat.yaml that ties them together.
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { generateAgeKeyPair, redactUrl } from '@lifeboat/adapters';
import { generateTarget } from '@lifeboat/demo-data';
import { LifeboatError } from '@lifeboat/domain';
import { seedDemoExchange } from '@lifeboat/paper-trader/demo-seed';
import { EXIT, formatBytes, formatDuration, parseSize, printJson } from '../output.js';

export interface DemoInitOptions {
  size: string;
  db: string;
  seed: string;
  databaseUrl?: string;
  encrypt: boolean;
  port: string;
  exchangePort: string;
  json?: boolean;
}

export async function demoInitCommand(dir: string, opts: DemoInitOptions): Promise<number> {
  const root = resolve(dir);
  const configFile = join(root, 'lifeboat.yaml');
  // The control commands run this same CLI (restores stop and start the paper-trader with it).
  const cli = `"${process.execPath}" "${resolve(import.meta.dirname, '..', '..', 'bin', 'lifeboat.js')}"`;
  let sizeBytes: number;
  try {
    sizeBytes = parseSize(opts.size);
  } catch (err) {
    throw new LifeboatError('INVALID_REQUEST', `--size: ${(err as Error).message}`);
  }
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new LifeboatError('INVALID_REQUEST', `--port must be a TCP port (1-65535), got "${opts.port}"`);
  }
  const exchangePort = Number(opts.exchangePort);
  if (!Number.isInteger(exchangePort) || exchangePort < 1 || exchangePort > 65535) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `--exchange-port must be a TCP port (1-65535), got "${opts.exchangePort}"`,
    );
  }
  const seed = Number(opts.seed);
  if (!Number.isInteger(seed))
    throw new LifeboatError('INVALID_REQUEST', `--seed must be a whole number, got "${opts.seed}"`);
  if (opts.db !== 'sqlite' && opts.db !== 'postgres') {
    throw new LifeboatError('INVALID_REQUEST', `--db must be sqlite or postgres, got "${opts.db}"`);
  }
  const databaseUrl = opts.databaseUrl ?? process.env.DATABASE_URL;
  if (opts.db === 'postgres' && !databaseUrl) {
    throw new LifeboatError('INVALID_REQUEST', '--db postgres needs --database-url <postgres://…> or DATABASE_URL');
  }
  const existing = await readdir(root).catch(() => []);
  if (existing.length > 0) {
    throw new LifeboatError('CONFLICT', `cannot init: ${root} exists and is not empty`, {
      hint: 'choose a new directory',
    });
  }
  const started = Date.now();
  await mkdir(join(root, 'exchange'), { recursive: true });
  await mkdir(join(root, 'store'), { recursive: true });
  const generated = await generateTarget(join(root, 'target'), {
    sizeBytes,
    seed,
    db: opts.db,
    ...(opts.db === 'postgres' && databaseUrl ? { postgresUrl: databaseUrl } : {}),
  });

  // The venue gets the same past as the books, so they agree before the first new order.
  const apiKey = generated.secrets['.env:EXCHANGE_API_KEY'];
  const secret = generated.secrets['.env:EXCHANGE_API_SECRET'];
  if (!apiKey || !secret)
    throw new LifeboatError('INTERNAL', 'the generated target has no exchange credentials in .env');
  const venue = await seedDemoExchange({
    targetDir: join(root, 'target'),
    exchangeDir: join(root, 'exchange'),
    apiKey,
    secret,
    ...(opts.db === 'postgres' && databaseUrl ? { databaseUrl } : {}),
  });

  const lines = [
    '# Lifeboat configuration for the demo target made by `lifeboat demo init`.',
    '# Paths are relative to this file. Reference: README.md, "Configuration".',
    'version: 1',
    'store:',
    '  type: fs',
    '  path: store',
  ];
  if (opts.encrypt) {
    const keys = await generateAgeKeyPair();
    await mkdir(join(root, 'keys'), { recursive: true, mode: 0o700 });
    const identityFile = join(root, 'keys', 'age-identity.txt');
    await writeFile(identityFile, keys.file, { mode: 0o600 });
    await chmod(identityFile, 0o600);
    lines.push(
      '# Archives are encrypted to these age recipients; secrets (.env files) are only stored encrypted.',
      '# In production keep the identity (private key) away from the store, e.g. in a secret manager.',
      'encryption:',
      `  recipients: [${keys.recipient}]`,
      '  identityFile: keys/age-identity.txt',
    );
  }
  lines.push(
    'targets:',
    '  demo:',
    '    root: target',
    "    # The paper-trader's API: health, kill switch, and its view of the exchange (`lifeboat demo start`).",
    `    api: { url: "http://127.0.0.1:${port}" }`,
    "    # The reconciler asks the exchange through the target's /exchange/* routes.",
    '    exchange: { type: http }',
    '    # How a restore stops and starts the trading system (the venue keeps running).',
    '    control:',
    `      start: ${JSON.stringify(`${cli} demo start --detach --only paper-trader --exchange-port ${exchangePort} --config "${configFile}"`)}`,
    `      startShadow: ${JSON.stringify(`${cli} demo start --detach --only paper-trader --mode shadow --exchange-port ${exchangePort} --config "${configFile}"`)}`,
    `      stop: ${JSON.stringify(`${cli} demo stop --only paper-trader --config "${configFile}"`)}`,
    '    # How drills run a copy of it from a sandbox (always in shadow mode: a copy never sends an order).',
    '    drills:',
    '      sandbox:',
    `        exchangeUrl: "http://127.0.0.1:${exchangePort}"`,
    `        start: ${JSON.stringify(`${cli} demo start --detach --only paper-trader --root "$LIFEBOAT_SANDBOX_ROOT" --port "$LIFEBOAT_SANDBOX_PORT" --exchange-url "$LIFEBOAT_SANDBOX_EXCHANGE_URL" --rate "\${LIFEBOAT_SANDBOX_ORDER_RATE:-20}" --config "${configFile}"`)}`,
    `        startShadow: ${JSON.stringify(`${cli} demo start --detach --only paper-trader --mode shadow --root "$LIFEBOAT_SANDBOX_ROOT" --port "$LIFEBOAT_SANDBOX_PORT" --exchange-url "$LIFEBOAT_SANDBOX_EXCHANGE_URL" --config "${configFile}"`)}`,
    `        stop: ${JSON.stringify(`${cli} demo stop --only paper-trader --root "$LIFEBOAT_SANDBOX_ROOT" --config "${configFile}"`)}`,
    "        # The rpo-under-load drill's copy trades for real: against a simulated exchange of its own, never the demo's.",
    '        venue:',
    `          start: ${JSON.stringify(`${cli} demo start --detach --only exchange --root "$LIFEBOAT_SANDBOX_ROOT" --exchange-port "$LIFEBOAT_SANDBOX_VENUE_PORT" --config "${configFile}"`)}`,
    `          stop: ${JSON.stringify(`${cli} demo stop --only exchange --root "$LIFEBOAT_SANDBOX_ROOT" --config "${configFile}"`)}`,
  );
  if (opts.db === 'sqlite') {
    lines.push('    database: { engine: sqlite, path: trading.db }');
  } else if (databaseUrl && new URL(databaseUrl).password) {
    lines.push('    # The URL carries a password, so it is read from the environment, never from this file.');
    lines.push('    database: { engine: postgres, urlEnv: DATABASE_URL }');
  } else {
    lines.push(`    database: { engine: postgres, url: "${databaseUrl}" }`);
  }
  lines.push('retention:', '  keepDaily: 30', 'backup:', '  verifyAfter: quick', '');
  await writeFile(configFile, lines.join('\n'));

  const summary = {
    dir: root,
    config: configFile,
    target: join(root, 'target'),
    store: join(root, 'store'),
    database: opts.db === 'sqlite' ? join(root, 'target', 'trading.db') : redactUrl(databaseUrl as string),
    encrypted: opts.encrypt,
    bytes: generated.bytes,
    rowCounts: generated.rowCounts,
    files: generated.files.length,
    exchange: { dir: join(root, 'exchange'), ...venue },
    durationMs: Date.now() - started,
  };
  if (opts.json) printJson(summary);
  else {
    console.log(
      `demo target created in ${root} (${formatBytes(generated.bytes)}, ${generated.files.length} files, ${formatDuration(summary.durationMs)})`,
    );
    console.log(`  target   ${summary.target}`);
    console.log(
      `  database ${summary.database} (${Object.entries(generated.rowCounts)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')})`,
    );
    console.log(
      `  exchange ${join(root, 'exchange')} (the venue: ${venue.orders} orders, ${venue.trades} trades of history)`,
    );
    console.log(`  store    ${summary.store}`);
    console.log(
      `  config   ${configFile}${opts.encrypt ? ' (archives encrypted with age)' : ' (no encryption: .env files will be left out)'}`,
    );
    if (opts.db === 'postgres' && databaseUrl && new URL(databaseUrl).password) {
      console.log(
        '  the database URL carries a password, so lifeboat.yaml reads it from DATABASE_URL: export it before a backup',
      );
    }
    console.log(`next: lifeboat backup --config ${configFile}`);
  }
  return EXIT.ok;
}
