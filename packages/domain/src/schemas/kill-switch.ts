// Sofia's kill switch (the runbook's P0): its states, its state file
// (`kill_switch_state.json`) and the one rule that matters: unknown counts as ON.
import { z } from 'zod';

export const KillSwitchState = z.enum(['ON', 'OFF', 'AUTO']);
export type KillSwitchState = z.infer<typeof KillSwitchState>;

export const KillSwitchEvent = z.object({
  trigger: z.string(),
  reason: z.string(),
  timestamp: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  activated: z.boolean(),
});
export type KillSwitchEvent = z.infer<typeof KillSwitchEvent>;

/** The state file as Sofia writes it. */
export const KillSwitchFile = z.object({
  state: KillSwitchState,
  events: z.array(KillSwitchEvent),
  last_updated: z.string(),
});
export type KillSwitchFile = z.infer<typeof KillSwitchFile>;

/** Events kept in the file, newest last. */
export const KILL_SWITCH_MAX_EVENTS = 100;

/** What the switch means for trading: a missing, unreadable or unknown state is ON. */
export function effectiveKillSwitchState(value: unknown): KillSwitchState {
  const parsed = KillSwitchState.safeParse((value as { state?: unknown } | null)?.state ?? value);
  return parsed.success ? parsed.data : 'ON';
}

/**
 * The file after a change, keeping the event history (last 100). A file that cannot be
 * parsed contributes what it can: its valid events are kept, the rest is replaced.
 */
export function changeKillSwitch(
  current: unknown,
  change: { state: KillSwitchState; trigger: string; reason: string; metadata?: Record<string, unknown>; at: Date },
): KillSwitchFile {
  const events = Array.isArray((current as { events?: unknown } | null)?.events)
    ? ((current as { events: unknown[] }).events.filter(
        (e) => KillSwitchEvent.safeParse(e).success,
      ) as KillSwitchEvent[])
    : [];
  const timestamp = change.at.toISOString();
  events.push({
    trigger: change.trigger,
    reason: change.reason,
    timestamp,
    metadata: change.metadata ?? {},
    activated: change.state === 'ON',
  });
  return { state: change.state, events: events.slice(-KILL_SWITCH_MAX_EVENTS), last_updated: timestamp };
}
