// Port: one restore per target at a time. A lease that expires unless renewed, with a
// fencing token that grows with every grant, so a holder that stalled past its lease can
// tell it lost the lock before it touches anything.
import { LifeboatError } from '../errors.js';

export interface Lease {
  readonly name: string;
  readonly holder: string;
  /** Strictly greater than the token of every earlier grant of this lock. */
  readonly token: number;
  /** True once a renewal failed or found another holder. */
  readonly lost: boolean;
  /** Throws CONFLICT when the lease was lost. Call before each destructive step. */
  assertHeld(): void;
  /** Releases the lock if still held (by this token). */
  release(): Promise<void>;
}

/** The CONFLICT a taken lock throws, with the holder it names (undefined when unreadable). */
export class LockHeldError extends LifeboatError {
  readonly holder: string | undefined;
  constructor(message: string, holder: string | undefined, options: { hint?: string; retryable?: boolean } = {}) {
    super('CONFLICT', message, options);
    this.holder = holder;
  }
}

export interface LockProvider {
  /**
   * Takes the lock, renewing it every ttl/3 until released; throws a LockHeldError (CONFLICT)
   * naming the current holder and since when when it is taken.
   */
  acquire(name: string, holder: string, ttlMs: number): Promise<Lease>;
}
