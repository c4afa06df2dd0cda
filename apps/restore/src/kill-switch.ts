// The rule for letting trading resume after a halt (DESIGN.md §6): the kill switch is
// deactivated only on a passing reconciliation that started after the last activation.
// The CLI and the console both ask it, so the rule lives in one place.
import type { Runtime } from '@lifeboat/adapters';
import { type KillSwitchReading, LifeboatError, layout } from '@lifeboat/domain';

export interface StoredReconciliation {
  key: string;
  timestamp: string;
  verdict: string;
  ready_to_trade: boolean;
}

/** The newest reconciliation report stored for a target's own books, if any (copies and sandboxes never count). */
export async function latestReconciliation(runtime: Runtime, target: string): Promise<StoredReconciliation | null> {
  let newest: string | null = null;
  for await (const o of runtime.store.list(layout.reconciliationsPrefix(target))) {
    if (o.key.endsWith('.json') && (newest === null || o.key > newest)) newest = o.key;
  }
  if (!newest) return null;
  const report = JSON.parse(Buffer.from(await runtime.store.getBytes(newest)).toString('utf8')) as {
    timestamp: string;
    verdict: string;
    ready_to_trade: boolean;
  };
  return { key: newest, timestamp: report.timestamp, verdict: report.verdict, ready_to_trade: report.ready_to_trade };
}

/** When the switch was last turned ON, from its event history; null when it never was. */
export function lastActivation(reading: KillSwitchReading): string | null {
  return [...(reading.file?.events ?? [])].reverse().find((e) => e.activated)?.timestamp ?? null;
}

/**
 * The reconciliation that allows a deactivation now, or a CONFLICT naming why the switch
 * stays ON: no report, a report not ready to trade, or one older than the activation.
 */
export async function deactivationEvidence(
  runtime: Runtime,
  target: string,
  reading: KillSwitchReading,
): Promise<StoredReconciliation> {
  const activatedAt = lastActivation(reading);
  const rec = await latestReconciliation(runtime, target);
  const refuse = (why: string) =>
    new LifeboatError('CONFLICT', `kill switch stays ON: ${why}`, {
      hint: 'run a reconciliation (with --apply and a sign-off if it finds breaks), then deactivate again',
    });
  if (!rec) throw refuse('no reconciliation report for this target');
  if (!rec.ready_to_trade) throw refuse(`the newest reconciliation (${rec.key}) is ${rec.verdict}, not ready to trade`);
  if (activatedAt && Date.parse(rec.timestamp) < Date.parse(activatedAt)) {
    throw refuse(`the newest passing reconciliation (${rec.timestamp}) is older than the activation at ${activatedAt}`);
  }
  return rec;
}
