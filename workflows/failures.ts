/**
 * How the workflow reads a failure: its type (the cloud's error vocabulary), the HTTP-like code the
 * instance fault records, whether the host is unreachable, and whether Nova would reschedule it.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  TimeoutFailure,
  isCancellation,
} from '@temporalio/workflow';
import { ERROR_TYPES } from '../common/error-types';
import {
  COMPUTE_CLEANUPS,
  COMPUTE_FETCHES,
  COMPUTE_OPS,
  COMPUTE_POWER,
  COMPUTE_READS,
  COMPUTE_SNAPSHOTS,
  COMPUTE_VOLUME_OPS,
} from './proxies';

export interface Classified {
  type: string;
  message: string;
  code: number;
  /** The build failed because the host never picked up its work (no worker on `compute@<host>`). */
  hostDown: boolean;
  /** Nova reschedules this to another host; everything else aborts the build. */
  reschedule: boolean;
  cancelled: boolean;
}

/** A failure the workflow decided itself (not an activity's): aborts the build, no reschedule. */
export function decided(type: string, message: string, code = 500): Classified {
  return { type, message, code, hostDown: false, reschedule: false, cancelled: false };
}

function codeOf(type: string): number {
  return (ERROR_TYPES as Record<string, { code: number } | undefined>)[type]?.code ?? 500;
}

function innermost(err: unknown): unknown {
  let current = err;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  return current;
}

/** Activity types served on `compute@<host>` queues: the compute stubs' groups (proxies.ts). */
const COMPUTE_ACTIVITY_TYPES: ReadonlySet<string> = new Set([
  ...COMPUTE_OPS,
  ...COMPUTE_FETCHES,
  ...COMPUTE_CLEANUPS,
  ...COMPUTE_POWER,
  ...COMPUTE_READS,
  ...COMPUTE_VOLUME_OPS,
  ...COMPUTE_SNAPSHOTS,
]);

function isComputeActivity(err: unknown): boolean {
  return err instanceof ActivityFailure && COMPUTE_ACTIVITY_TYPES.has(err.activityType);
}

/**
 * An unexpected error inside the host's own work (driver, disk, agent) is a host problem: Nova's
 * _build_and_run_instance turns any such spawn error into RescheduledException.
 */
function hostFault(err: unknown, type: string): boolean {
  return isComputeActivity(err) && (type === 'Error' || type === 'ServiceUnavailable');
}

/**
 * `onHost`: the failure came from work on that compute host (a branch of the build on it), so timeouts
 * mean the host is down or hung, which Nova answers with a reschedule.
 */
export function classify(err: unknown, onHost?: string): Classified {
  if (isCancellation(err)) {
    return { ...decided('BuildCancelled', 'The build was cancelled'), cancelled: true };
  }
  const cause = innermost(err);
  if (cause instanceof TimeoutFailure) {
    const hostDown = cause.timeoutType === 'SCHEDULE_TO_START';
    const activity = err instanceof ActivityFailure ? err.activityType : 'activity';
    if (onHost && isComputeActivity(err)) {
      const message = hostDown
        ? `Compute host ${onHost} did not pick up ${activity} (no nova-compute on compute@${onHost}); the host is down`
        : `Compute host ${onHost} timed out in ${activity} (${cause.timeoutType})`;
      return { ...decided('RescheduledException', message), hostDown, reschedule: true };
    }
    return decided('ServiceUnavailable', `${activity} timed out (${cause.timeoutType})`, 503);
  }
  if (cause instanceof ApplicationFailure) {
    const type = cause.type ?? 'Error';
    return {
      ...decided(type, cause.message, codeOf(type)),
      reschedule: type === 'RescheduledException' || (onHost !== undefined && hostFault(err, type)),
    };
  }
  if (cause instanceof CancelledFailure) return classify(cause);
  const message = cause instanceof Error ? cause.message : String(cause);
  return decided('Error', message);
}

/** The workflow's own typed failure: what the client and the Web UI show. */
export function bootFailure(
  classified: Pick<Classified, 'type' | 'message' | 'code'>,
  details: Record<string, unknown>,
  cause?: unknown,
): ApplicationFailure {
  return ApplicationFailure.create({
    type: classified.type,
    message: classified.message,
    nonRetryable: true,
    details: [{ code: classified.code, ...details }],
    ...(cause instanceof Error ? { cause } : {}),
  });
}

/** The instance fault Nova records for a failure (code, message, the type as details, the host). */
export function faultOf(failure: Classified, message: string, host: string | null | undefined) {
  return { code: failure.code, message, details: failure.type, ...(host ? { host } : {}) };
}
