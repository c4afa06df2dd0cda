// The one error type Lifeboat raises on purpose: a stable code, a message that names what
// is wrong, and a hint that says what to do about it.

export type ErrorCode =
  | 'INVALID_REQUEST'
  | 'INVALID_CONFIG'
  | 'NOT_FOUND'
  | 'STORE_UNREACHABLE'
  | 'STORE_ERROR'
  | 'DATABASE_ERROR'
  | 'ARCHIVE_UNSAFE'
  | 'VERIFY_FAILED'
  | 'ENCRYPTION_ERROR'
  | 'TARGET_ERROR'
  | 'CONFLICT'
  | 'TIMEOUT'
  | 'INTERNAL';

/** Codes that describe bad input: retrying the same thing cannot succeed. */
const PERMANENT: ReadonlySet<ErrorCode> = new Set([
  'INVALID_REQUEST',
  'INVALID_CONFIG',
  'NOT_FOUND',
  'ARCHIVE_UNSAFE',
  'VERIFY_FAILED',
  'ENCRYPTION_ERROR',
]);

export class LifeboatError extends Error {
  override readonly name = 'LifeboatError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  /** Whether running the same operation again may succeed (a network fault, a held lock). */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.retryable = options.retryable ?? !PERMANENT.has(code);
  }

  /** The message with its hint, as printed to an operator. */
  describe(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string } {
    return { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}) };
  }
}

export function isLifeboatError(err: unknown): err is LifeboatError {
  return err instanceof LifeboatError;
}

/** Wraps any error with the step that failed, keeping a LifeboatError's code and hint. */
export function inStep(step: string, err: unknown): LifeboatError {
  if (err instanceof LifeboatError) {
    return new LifeboatError(err.code, `${step}: ${err.message}`, {
      ...(err.hint ? { hint: err.hint } : {}),
      cause: err,
      retryable: err.retryable,
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new LifeboatError('INTERNAL', `${step}: ${message}`, { cause: err });
}
