// The target's audit log (`logs/audit.jsonl`): one JSON line per kill-switch or mode change.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type AuditLog = (event: string, detail: Record<string, unknown>) => void;

export function auditLog(targetDir: string): AuditLog {
  const dir = join(targetDir, 'logs');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'audit.jsonl');
  return (event, detail) => {
    // One write of one whole line, so an append-only reader never sees half an event.
    appendFileSync(file, `${JSON.stringify({ timestamp: new Date().toISOString(), event, ...detail })}\n`);
  };
}
