// Port: a target's kill switch, driven over its HTTP API, or through its state file when the
// API does not answer (the target is down, which is when a halt matters most).
import type { KillSwitchFile, KillSwitchState } from '../schemas/kill-switch.js';

export interface KillSwitchReading {
  /** The switch as it counts for trading: unknown is ON. */
  state: KillSwitchState;
  /** The file or the API's answer, when there was one. */
  file: KillSwitchFile | null;
  /** Where it was read or written: the target's API, or the state file. */
  via: 'api' | 'file';
  /** Why the API was not used, when it was not. */
  fallback?: string;
}

export interface KillSwitchClient {
  /** Reads the switch; an unreadable state reads as ON. */
  status(): Promise<KillSwitchReading>;
  /** Halts trading: the API (which also cancels working orders), else the state file. */
  activate(reason: string, metadata?: Record<string, unknown>): Promise<KillSwitchReading>;
  /** Lets trading resume. Callers check the preconditions (a passing reconciliation). */
  deactivate(reason: string, metadata?: Record<string, unknown>): Promise<KillSwitchReading>;
}
