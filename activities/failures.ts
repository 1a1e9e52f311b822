/**
 * Activities are thin adapters over the cloud: a CloudError becomes an ApplicationFailure with the same type
 * (so the workflow can branch on it), its HTTP-like code in the details, and `nonRetryable` when retrying the
 * same call cannot help (Unauthorized, NotFound, QuotaExceeded, ...). Anything else stays retryable.
 */
import { ApplicationFailure } from '@temporalio/common';
import { isCloudError } from '../cloud/errors';

export interface FailureDetails {
  code: number;
  [key: string]: unknown;
}

export function toFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (isCloudError(err)) {
    return ApplicationFailure.create({
      type: err.type,
      message: err.message,
      nonRetryable: !err.retryable,
      details: [{ code: err.code, ...err.details } satisfies FailureDetails],
    });
  }
  return err;
}

type AsyncFunction = (...args: never[]) => Promise<unknown>;

/** Wraps every function of an activity table so that cloud errors leave it as typed failures. */
export function adaptAll<T extends Record<string, AsyncFunction>>(activities: T): T {
  const adapted: Record<string, AsyncFunction> = {};
  for (const [name, fn] of Object.entries(activities)) {
    adapted[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw toFailure(err);
      }
    };
  }
  return adapted as T;
}

/** Clean-ups treat "already gone" as done, which makes every undo safe to run twice. */
export async function ignoreNotFound<T>(work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (err) {
    if (isCloudError(err, 'NotFound')) return undefined;
    throw err;
  }
}
