// JSON logs for every app (pino), with secret-bearing fields redacted wherever they appear.
import pino, { type Logger } from 'pino';

export const REDACT_PATHS = [
  'password',
  '*.password',
  'secret',
  '*.secret',
  '*.secretAccessKey',
  '*.accessKeyId',
  '*.identity',
  '*.identities',
  '*.authorization',
  '*.token',
  'env',
  '*.env',
];

/** Removes the password from a connection URL (`postgres://u:***@h/db`). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
  }
}

export function createLogger(
  name: string,
  options: { level?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  return pino(
    {
      name,
      level: options.level ?? process.env.LIFEBOAT_LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { app: name },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    (options.destination ?? process.stdout) as pino.DestinationStream,
  );
}
