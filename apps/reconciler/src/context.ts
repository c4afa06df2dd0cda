// What the reconciler's handler needs from the outside world; main.ts and the CLI build it
// from real adapters, tests from test ones.
import type { Runtime } from '@lifeboat/adapters';
import type { ExchangeSource } from '@lifeboat/domain';

/** The subset of a pino logger the handler uses. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ReconcileContext {
  /** Absent when both sides come from files (`--internal x.json --exchange y.json`). */
  runtime?: Runtime;
  log: Logger;
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
  /** Replaces the configured exchange source (tests). */
  exchangeSource?: ExchangeSource;
  /** Progress lines for a terminal: "reading the books", … */
  progress?: (step: string) => void;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
