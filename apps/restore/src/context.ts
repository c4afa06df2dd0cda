// What the restore handler needs from the outside world; main.ts and the CLI build it from
// real adapters, tests from the same ones pointed at a test stack.
import type { ResolvedTarget, Runtime } from '@lifeboat/adapters';
import type {
  KillSwitchClient,
  LockProvider,
  ReconcileJobResult,
  ReconcileRequestInput,
  StepRecord,
  TargetControl,
} from '@lifeboat/domain';

/** The subset of a pino logger the handler uses. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface RestoreContext {
  runtime: Runtime;
  log: Logger;
  /** One restore per target: a Redis lease (distributed) or a lock file (embedded). */
  locks: LockProvider;
  /** Reconciles through the job bus (queue `reconcile`). */
  reconcile: (request: ReconcileRequestInput) => Promise<ReconcileJobResult>;
  /** The target's kill switch; default: its API with the state file as fallback. */
  killSwitchFor?: (target: ResolvedTarget) => KillSwitchClient;
  /** Start/stop commands; default: from the target's `control` configuration. */
  controlFor?: (target: ResolvedTarget) => TargetControl | null;
  /** Each step as it starts and ends (the CLI's live timeline). */
  onStep?: (step: StepRecord) => void;
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
  /** Who holds the lock, for the refusal message of a second restore. */
  holder?: string;
  /**
   * Whether a holder of the target's lock is an earlier run of this very request (a job
   * attempt whose worker died): its lease is waited out, up to its life, instead of refusing.
   */
  isEarlierRun?: (holder: string) => boolean;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
