/**
 * Typed errors of the embedded cloud. Each carries an HTTP-like code, as the OpenStack APIs answer, and
 * whether a retry of the same call can help. Activities turn them into Temporal ApplicationFailures with
 * the same type, non-retryable where retrying cannot fix them. The types themselves are in
 * common/error-types.ts, which workflow code may import too.
 */
import { ERROR_TYPES, type CloudErrorType } from '../common/error-types';

export { ERROR_TYPES, type CloudErrorType };

export class CloudError extends Error {
  override readonly name = 'CloudError';
  readonly code: number;
  readonly retryable: boolean;

  constructor(
    readonly type: CloudErrorType,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.code = ERROR_TYPES[type].code;
    this.retryable = ERROR_TYPES[type].retryable;
  }

  toJSON(): {
    type: CloudErrorType;
    code: number;
    message: string;
    retryable: boolean;
    details: Record<string, unknown>;
  } {
    return {
      type: this.type,
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      details: this.details,
    };
  }
}

export function isCloudError(err: unknown, type?: CloudErrorType): err is CloudError {
  return err instanceof CloudError && (type === undefined || err.type === type);
}
