// What a drill needs from the outside world: the configuration and store, and the other
// apps' queues (backup, restore, reconcile) through which it runs its recovery. main.ts
// wires BullMQ, the CLI the in-process bus; tests use either.
import type { AlertSender, ResolvedTarget, Runtime } from '@lifeboat/adapters';
import type {
  BackupRequestInput,
  BackupResult,
  KillSwitchClient,
  ReconcileJobResult,
  ReconcileRequestInput,
  RestoreRequestInput,
  RestoreResult,
  TargetControl,
} from '@lifeboat/domain';

/** The subset of a pino logger the drills use. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** The recovery, as jobs on the other apps' queues. */
export interface DrillJobs {
  backup(request: BackupRequestInput): Promise<BackupResult>;
  restore(request: RestoreRequestInput): Promise<RestoreResult>;
  reconcile(request: ReconcileRequestInput): Promise<ReconcileJobResult>;
}

export interface DrillContext {
  runtime: Runtime;
  log: Logger;
  jobs: DrillJobs;
  /** The kill switch of a target (production, opted in) or of a sandbox copy. */
  killSwitchFor?: (target: ResolvedTarget) => KillSwitchClient;
  /** Start/stop commands of a sandbox copy; default: from `targets.<name>.drills.sandbox`. */
  sandboxControlFor?: (target: ResolvedTarget, sandbox: SandboxProcess) => TargetControl | null;
  /** Each step as it ends (the CLI's live timeline). */
  onStep?: (drill: string, step: { name: string; status: string; detail: string; duration_ms: number }) => void;
  /**
   * The restore and reconcile jobs run in other processes, maybe on other hosts: sandboxes
   * must then be made in drills.sandboxDir, a directory they all share (distributed mode).
   */
  sharedSandboxRequired?: boolean;
  /** Where a failed drill or a missed target is told; default: the webhook of drills.webhookUrlEnv, if set. */
  alerts?: AlertSender | null;
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
}

/** Where a sandbox copy of the target runs. */
export interface SandboxProcess {
  root: string;
  port: number;
  exchangeUrl: string;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
