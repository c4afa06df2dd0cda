// Port: starting and stopping a target (systemctl, docker, a pid file…) through commands
// configured per target, and a bounded wait for its health.
export interface CommandOutcome {
  command: string;
  exitCode: number;
  durationMs: number;
  /** The last lines of its output, for evidence (secrets redacted). */
  output: string;
}

export interface HealthOutcome {
  healthy: boolean;
  durationMs: number;
  /** The last answer of GET /health (or why there was none). */
  detail: string;
  body?: unknown;
}

export interface TargetControl {
  /** Starts the target, in shadow mode (orders recorded, never sent) or live. */
  start(mode: 'shadow' | 'live'): Promise<CommandOutcome>;
  /** Stops the target; stopping a stopped target succeeds. */
  stop(): Promise<CommandOutcome>;
  /** Polls GET /health until it answers healthy or the time runs out. */
  waitHealthy(timeoutMs: number): Promise<HealthOutcome>;
}
