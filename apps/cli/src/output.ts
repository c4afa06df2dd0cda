// How the CLI talks to people and scripts: one JSON document with --json, readable lines
// otherwise, progress on a terminal, and exit codes (0 ok, 1 the operation failed, 2 usage
// or configuration error).
import type { JobProgress } from '@lifeboat/domain';
import { isLifeboatError } from '@lifeboat/domain/errors';
import { formatBytes } from '@lifeboat/domain/units';

export { formatBytes, parseSize } from '@lifeboat/domain/units';

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export function exitCodeFor(err: unknown): number {
  if (isLifeboatError(err)) {
    return ['INVALID_REQUEST', 'INVALID_CONFIG', 'NOT_FOUND', 'CONFLICT'].includes(err.code) ? EXIT.usage : EXIT.failed;
  }
  return EXIT.failed;
}

/** One line naming what is wrong (and a hint), for stderr. */
export function describeError(err: unknown): string {
  if (isLifeboatError(err)) return `lifeboat: ${err.describe()}`;
  return `lifeboat: ${(err as Error)?.message ?? String(err)}`;
}

export function errorJson(err: unknown): { code: string; message: string; hint?: string } {
  if (isLifeboatError(err)) return err.toJSON();
  return { code: 'INTERNAL', message: (err as Error)?.message ?? String(err) };
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)}m ${Math.round((ms % 60_000) / 1000)}s`;
}

/** Progress on stderr when it is a terminal; silent otherwise (logs and pipes stay clean). */
export function progressPrinter(enabled: boolean) {
  const started = Date.now();
  let drawn = false;
  return {
    update(p: JobProgress) {
      if (!enabled) return;
      const secs = (Date.now() - started) / 1000;
      let line = p.phase;
      if (p.bytes !== undefined) {
        line += ` ${formatBytes(p.bytes)}`;
        if (p.totalBytes)
          line += ` / ${formatBytes(p.totalBytes)} (${Math.min(100, Math.round((p.bytes / p.totalBytes) * 100))}%)`;
        if (secs > 0.2) line += `  ${formatBytes(p.bytes / secs)}/s`;
      } else if (p.detail) line += ` ${p.detail}`;
      process.stderr.write(`\r\x1b[K${line}`);
      drawn = true;
    },
    done() {
      if (drawn) process.stderr.write('\r\x1b[K');
      drawn = false;
    },
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
