/**
 * Exit codes and error messages of the command-line tools. A user error (bad flags, missing credentials, a
 * policy refusal, a server that does not exist) is one clear line on stderr and an exit code, never a stack
 * trace; only a bug in bootflow itself shows one.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  TemporalFailure,
  TimeoutFailure,
} from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';

export { EXIT, UserError } from './usage';

export interface FailureInfo {
  /** The cloud's error type (NotFound, Forbidden, NoValidHost, ...) when there is one. */
  type: string | null;
  message: string;
  /** HTTP-like code the failure carries in its details. */
  code: number | null;
  details: Record<string, unknown>;
}

/** The innermost failure with a message worth showing: the cloud's typed error, not its wrappers. */
export function failureInfo(err: unknown): FailureInfo {
  let current: unknown = err instanceof WorkflowFailedError ? (err.cause ?? err) : err;
  while (
    (current instanceof ActivityFailure || current instanceof ChildWorkflowFailure) &&
    current.cause !== undefined
  ) {
    current = current.cause;
  }
  if (current instanceof ApplicationFailure) {
    const first = (current.details?.[0] ?? {}) as Record<string, unknown>;
    return {
      type: current.type ?? null,
      message: current.message,
      code: typeof first.code === 'number' ? first.code : null,
      details: first,
    };
  }
  if (current instanceof TimeoutFailure) {
    return {
      type: 'Timeout',
      message: `timed out (${current.timeoutType}): is a controller worker running?`,
      code: null,
      details: {},
    };
  }
  if (current instanceof TemporalFailure || current instanceof Error) {
    return { type: null, message: current.message, code: null, details: {} };
  }
  return { type: null, message: String(current), code: null, details: {} };
}

/** One line, OpenStack-client style: `Forbidden: Policy doesn't allow ... (HTTP 403)`. */
export function describeFailure(info: FailureInfo): string {
  const prefix = info.type && !info.message.startsWith(info.type) ? `${info.type}: ` : '';
  const suffix = info.code !== null ? ` (HTTP ${info.code})` : '';
  return `${prefix}${info.message}${suffix}`;
}
