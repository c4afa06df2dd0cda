// `lifeboat kill-switch status|activate|deactivate`. Activation is the first step of every
// emergency in the runbook, so it loads only the configuration and the kill-switch client and
// throws the switch before anything else; the store, the audit trail and the restore app's
// rule for deactivation are loaded after. Deactivation needs a passing reconciliation newer
// than the last activation.
import { appendFile, mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { configPath, loadConfig, resolveTarget } from '@lifeboat/adapters/config';
import { createKillSwitch } from '@lifeboat/adapters/kill-switch';
import { LifeboatError } from '@lifeboat/domain/errors';
import type { GlobalOptions } from '../context.js';
import { EXIT, printJson } from '../output.js';

export interface KillSwitchOptions extends GlobalOptions {
  reason?: string;
  json?: boolean;
}

export async function killSwitchCommand(action: string, opts: KillSwitchOptions): Promise<number> {
  if (!['status', 'activate', 'deactivate'].includes(action)) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `kill-switch: unknown action "${action}" (status, activate or deactivate)`,
    );
  }
  if (action !== 'status' && !opts.reason) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `kill-switch ${action} needs --reason "…" (it goes into the audit trail)`,
    );
  }
  const loaded = await loadConfig(configPath(opts.config));
  const target = resolveTarget(loaded, opts.target);
  const ks = createKillSwitch(target);
  const who = process.env.USER ?? 'unknown';
  let reading: Awaited<ReturnType<typeof ks.status>>;
  let note: string | undefined;
  if (action === 'activate') {
    reading = await ks.activate(opts.reason as string, { by: who, via: 'lifeboat-cli' });
  } else {
    reading = await ks.status();
  }
  if (action !== 'status') {
    const [{ createRuntime }, context] = await Promise.all([import('@lifeboat/adapters'), import('../context.js')]);
    const runtime = createRuntime(loaded);
    if (action === 'deactivate') {
      // Trading resumes only on a passing reconciliation that started after the last halt.
      const { deactivationEvidence } = await import('@lifeboat/restore');
      const rec = await deactivationEvidence(runtime, target.name, reading);
      reading = await ks.deactivate(opts.reason as string, { by: who, via: 'lifeboat-cli', reconciliation: rec.key });
      note = `reconciliation ${rec.key} (${rec.verdict})`;
    }
    // Lifeboat's own audit trail (hash-chained, in the store) records every change of the switch.
    try {
      const { trail } = await context.auditTrail(runtime);
      await trail.append({
        actor: context.cliActor(),
        action: `kill_switch.${action}`,
        target: target.name,
        details: { reason: opts.reason, via: reading.via, state: reading.state, ...(note ? { evidence: note } : {}) },
      });
    } finally {
      await context.closeAuditTrail();
    }
    // The trail of who changed the switch and why, beside the target's own audit log.
    const exists = await stat(target.root).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (exists) {
      await mkdir(resolve(target.root, 'logs'), { recursive: true });
      await appendFile(
        resolve(target.root, 'logs', 'audit.jsonl'),
        `${JSON.stringify({ timestamp: new Date().toISOString(), event: `kill_switch_${action}`, actor: 'lifeboat', by: who, reason: opts.reason, via: reading.via, ...(note ? { evidence: note } : {}) })}\n`,
      );
    }
  }
  if (opts.json) printJson({ target: target.name, action, ...reading, ...(note ? { evidence: note } : {}) });
  else {
    console.log(
      `kill switch of ${target.name}: ${reading.state} (via ${reading.via}${reading.fallback ? `: ${reading.fallback}` : ''})`,
    );
    if (note) console.log(`  allowed by ${note}`);
    const last = reading.file?.events.at(-1);
    if (last)
      console.log(`  last event ${last.timestamp} ${last.activated ? 'ON' : 'OFF'} by ${last.trigger}: ${last.reason}`);
  }
  return EXIT.ok;
}
