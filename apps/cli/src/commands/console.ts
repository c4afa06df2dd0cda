// `lifeboat console`: the console (API, dashboard, queue board) in the foreground, embedded
// (handlers in this process) unless LIFEBOAT_REDIS_URL is set; and `lifeboat console token`,
// which makes a token and the grant line that lets it in.
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createLogger } from '@lifeboat/adapters';
import { embeddedTokensFile, issueToken, ROLES, type Role, startConsole } from '@lifeboat/console';
import { LifeboatError } from '@lifeboat/domain';
import { cliLogger, type GlobalOptions, openRuntime } from '../context.js';
import { EXIT, printJson } from '../output.js';

export interface ConsoleOptions extends GlobalOptions {
  port: string;
  host: string;
}

export async function consoleCommand(opts: ConsoleOptions): Promise<number> {
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new LifeboatError('INVALID_REQUEST', `--port must be a TCP port (0-65535), got "${opts.port}"`);
  }
  const runtime = await openRuntime(opts);
  // The console logs requests' failures and the workers' lines as JSON on stderr.
  const log = process.env.LIFEBOAT_LOG_LEVEL
    ? cliLogger()
    : createLogger('console', { level: 'warn', destination: process.stderr });
  const running = await startConsole({
    runtime,
    log,
    port,
    host: opts.host,
    bootstrapToken: true,
    onNewToken: (token, file) => {
      console.log(`No console token was configured: made an admin token (its hash is in ${file}).`);
      console.log(`  token: ${token}`);
      console.log('  It is shown once. Add people with `lifeboat console token --name <name> --role <role> --add`.');
    },
  });
  const shown = running.url.replace('://0.0.0.0:', '://127.0.0.1:');
  console.log(`console (${running.mode}) on ${shown} — dashboard ${shown}/, API documented at ${shown}/docs`);
  await new Promise<void>((done) => {
    const stop = () => {
      void running.close().then(done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return EXIT.ok;
}

export interface TokenOptions extends GlobalOptions {
  name: string;
  role: string;
  add?: boolean;
  json?: boolean;
}

export async function consoleTokenCommand(opts: TokenOptions): Promise<number> {
  if (!(ROLES as readonly string[]).includes(opts.role)) {
    throw new LifeboatError('INVALID_REQUEST', `--role must be one of ${ROLES.join(', ')}, got "${opts.role}"`);
  }
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(opts.name)) {
    throw new LifeboatError('INVALID_REQUEST', `--name "${opts.name}" must be a plain name (letters, digits, . _ @ -)`);
  }
  const { token, line } = issueToken(opts.name, opts.role as Role);
  let file: string | null = null;
  if (opts.add) {
    file = process.env.LIFEBOAT_CONSOLE_TOKENS_FILE
      ? resolve(process.env.LIFEBOAT_CONSOLE_TOKENS_FILE)
      : embeddedTokensFile(await openRuntime(opts));
    await mkdir(dirname(file), { recursive: true });
    await appendFile(file, `${line}\n`, { mode: 0o600 });
  }
  if (opts.json) printJson({ name: opts.name, role: opts.role, token, grant: line, addedTo: file });
  else {
    console.log(`token for ${opts.name} (${opts.role}): ${token}`);
    console.log(file ? `grant added to ${file}` : `grant (add it to the tokens file): ${line}`);
    console.log('The token is shown once; only its hash is kept.');
  }
  return EXIT.ok;
}
