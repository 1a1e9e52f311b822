/**
 * Typed errors of the embedded cloud. Each carries an HTTP-like code, as the OpenStack APIs answer, and
 * whether a retry of the same call can help. Activities turn them into Temporal ApplicationFailures with
 * the same type, non-retryable where retrying cannot fix them.
 */
export const ERROR_TYPES = {
  BadRequest: { code: 400, retryable: false },
  Unauthorized: { code: 401, retryable: false },
  Forbidden: { code: 403, retryable: false },
  NotFound: { code: 404, retryable: false },
  Conflict: { code: 409, retryable: true },
  QuotaExceeded: { code: 403, retryable: false },
  NoValidHost: { code: 400, retryable: false },
  /** Placement: this provider has no room for the claim (another provider may have): try the next host. */
  AllocationCapacityExceeded: { code: 409, retryable: false },
  MaxRetriesExceeded: { code: 500, retryable: false },
  IpAddressGenerationFailure: { code: 409, retryable: false },
  ImageNotActive: { code: 409, retryable: false },
  ImageChecksumMismatch: { code: 500, retryable: false },
  FlavorDiskTooSmall: { code: 400, retryable: false },
  FlavorMemoryTooSmall: { code: 400, retryable: false },
  VolumeNotCreated: { code: 500, retryable: false },
  InvalidVolume: { code: 400, retryable: false },
  PortBindingFailed: { code: 500, retryable: false },
  VirtualInterfaceCreateException: { code: 500, retryable: false },
  ComputeHostNotFound: { code: 404, retryable: false },
  /** Nova: the instance has no host yet (or is not in a state for the request): 409. */
  InstanceNotReady: { code: 409, retryable: false },
  /** A build failure on one host that another host may not have: the caller reschedules. */
  RescheduledException: { code: 500, retryable: false },
  /** A build failure no other host can fix (image, network, volume problems): no reschedule. */
  BuildAbortException: { code: 500, retryable: false },
  DatabaseBusy: { code: 503, retryable: true },
  ServiceUnavailable: { code: 503, retryable: true },
} as const;

export type CloudErrorType = keyof typeof ERROR_TYPES;

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
