/**
 * The cloud's error vocabulary: each type with the HTTP-like code the OpenStack APIs answer and whether a
 * retry of the same call can help. Shared by the cloud (which raises them), the activities (which turn
 * them into ApplicationFailures of the same type) and the workflows (which read a failure's code by its
 * type), so it lives outside cloud/: workflow code imports no cloud/ values.
 */
export const ERROR_TYPES = {
  BadRequest: { code: 400, retryable: false },
  Unauthorized: { code: 401, retryable: false },
  Forbidden: { code: 403, retryable: false },
  NotFound: { code: 404, retryable: false },
  Conflict: { code: 409, retryable: true },
  QuotaExceeded: { code: 403, retryable: false },
  /** Nova's NoValidHost carries NovaException's default code: the instance fault records 500. */
  NoValidHost: { code: 500, retryable: false },
  /** Placement: this provider has no room for the claim (another provider may have): try the next host. */
  AllocationCapacityExceeded: { code: 409, retryable: false },
  MaxRetriesExceeded: { code: 500, retryable: false },
  IpAddressGenerationFailure: { code: 409, retryable: false },
  ImageNotActive: { code: 409, retryable: false },
  ImageChecksumMismatch: { code: 500, retryable: false },
  /** Glance's LimitExceeded (image properties, tags, members over their quota): 413. */
  ImageLimitExceeded: { code: 413, retryable: false },
  FlavorDiskTooSmall: { code: 400, retryable: false },
  FlavorMemoryTooSmall: { code: 400, retryable: false },
  VolumeNotCreated: { code: 500, retryable: false },
  InvalidVolume: { code: 400, retryable: false },
  PortBindingFailed: { code: 500, retryable: false },
  VirtualInterfaceCreateException: { code: 500, retryable: false },
  ComputeHostNotFound: { code: 404, retryable: false },
  /** Nova: the instance has no host yet (or is not in a state for the request): 409. */
  InstanceNotReady: { code: 409, retryable: false },
  /** Nova: the server's vm_state/task_state forbids the operation (check_instance_state): 409, final. */
  InstanceInvalidState: { code: 409, retryable: false },
  /** Nova: a locked server refuses the action to a non-admin (check_instance_lock): 409, final. */
  InstanceIsLocked: { code: 409, retryable: false },
  /** A build failure on one host that another host may not have: the caller reschedules. */
  RescheduledException: { code: 500, retryable: false },
  /** A build failure no other host can fix (image, network, volume problems): no reschedule. */
  BuildAbortException: { code: 500, retryable: false },
  DatabaseBusy: { code: 503, retryable: true },
  ServiceUnavailable: { code: 503, retryable: true },
} as const;

export type CloudErrorType = keyof typeof ERROR_TYPES;
