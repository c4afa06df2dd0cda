// Sofia's kill switch (the runbook's P0), kept in `kill_switch_state.json`: written atomically,
// read at start, and failing closed — a missing or unreadable file means trading is halted.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditLog } from './audit.js';

export type KillSwitchState = 'ON' | 'OFF' | 'AUTO';

export interface KillSwitchEvent {
  trigger: string;
  reason: string;
  timestamp: string;
  metadata: Record<string, unknown>;
  activated: boolean;
}

export interface KillSwitchFile {
  state: KillSwitchState;
  events: KillSwitchEvent[];
  last_updated: string;
}

const MAX_EVENTS = 100;

export class KillSwitch {
  readonly file: string;
  #current: KillSwitchFile;

  constructor(
    targetDir: string,
    private readonly audit: AuditLog,
  ) {
    this.file = join(targetDir, 'kill_switch_state.json');
    this.#current = this.#load();
  }

  #load(): KillSwitchFile {
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as Partial<KillSwitchFile>;
      if (parsed.state !== 'ON' && parsed.state !== 'OFF' && parsed.state !== 'AUTO')
        throw new Error(`unknown state ${parsed.state}`);
      return {
        state: parsed.state,
        events: Array.isArray(parsed.events) ? parsed.events : [],
        last_updated: parsed.last_updated ?? new Date().toISOString(),
      };
    } catch (err) {
      // Unknown counts as ON: halted until someone decides otherwise.
      const why =
        (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'state file missing'
          : `state file unreadable: ${(err as Error).message}`;
      const state: KillSwitchFile = { state: 'ON', events: [], last_updated: new Date().toISOString() };
      this.#current = state;
      this.#write('ON', 'startup', `fail closed: ${why}`, {});
      return this.#current;
    }
  }

  get state(): KillSwitchState {
    return this.#current.state;
  }

  /** Trading is allowed only when the switch is OFF or AUTO. */
  get halted(): boolean {
    return this.#current.state === 'ON';
  }

  snapshot(): KillSwitchFile {
    return structuredClone(this.#current);
  }

  activate(reason: string, trigger = 'manual', metadata: Record<string, unknown> = {}): KillSwitchFile {
    return this.#write('ON', trigger, reason, metadata);
  }

  deactivate(
    reason: string,
    trigger = 'manual',
    metadata: Record<string, unknown> = {},
    to: 'OFF' | 'AUTO' = 'OFF',
  ): KillSwitchFile {
    return this.#write(to, trigger, reason, metadata);
  }

  #write(state: KillSwitchState, trigger: string, reason: string, metadata: Record<string, unknown>): KillSwitchFile {
    const now = new Date().toISOString();
    const event: KillSwitchEvent = { trigger, reason, timestamp: now, metadata, activated: state === 'ON' };
    const next: KillSwitchFile = {
      state,
      events: [...this.#current.events, event].slice(-MAX_EVENTS),
      last_updated: now,
    };
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, `${JSON.stringify(next, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    this.#current = next;
    this.audit('kill_switch', { state, trigger, reason });
    return structuredClone(next);
  }
}
