/**
 * How the client starts a boot or a delete and follows it to its end, whoever started it:
 *
 * - Same request, same workflow: the id derives from the request (boot-<requestId>, delete-<uuid>), the start
 *   uses USE_EXISTING (a running one is joined, not an error) and the boot's REJECT_DUPLICATE (a finished
 *   boot is followed to its recorded outcome, never booted again).
 * - Only our own workflows are followed (lib/workflow-ownership.ts): anything else under the id is refused
 *   with a clear error, exit 1.
 * - Temporal going away is not the boot failing: following keeps reconnecting (the gRPC channel does, once
 *   the server listens again) and only gives up after a bound, with exit 3.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { CONTROLLER_QUEUE } from '../../workflows/names';
import { checkOwnership, ForeignWorkflowError, type Ownership } from '../workflow-ownership';
import type { TemporalHandle } from './temporal';
import { EXIT, UserError } from './usage';

/** How long a follower waits for an unreachable Temporal before giving up (BOOTFLOW_OUTAGE_LIMIT_MS). */
export const DEFAULT_OUTAGE_LIMIT_MS = 5 * 60_000;
const PROBE_TIMEOUT_MS = 2_000;
const RECONNECT_DELAY_MS = 1_000;
/** Errors in a row, Temporal answering meanwhile, before a follow error is taken as the answer. */
const REACHABLE_ERRORS_BEFORE_GIVING_UP = 3;

export function outageLimitMs(env: NodeJS.ProcessEnv = process.env): number {
  const value = Number(env.BOOTFLOW_OUTAGE_LIMIT_MS);
  return Number.isInteger(value) && value > 0 ? value : DEFAULT_OUTAGE_LIMIT_MS;
}

/** Whether the Temporal frontend answers at all right now (a cheap call with a short deadline). */
export async function temporalReachable(temporal: TemporalHandle): Promise<boolean> {
  const { connection } = temporal;
  try {
    await connection.withDeadline(Date.now() + PROBE_TIMEOUT_MS, () =>
      connection.workflowService.getSystemInfo({}),
    );
    return true;
  } catch {
    return false;
  }
}

export function unreachableMessage(temporal: TemporalHandle): string {
  return `Temporal is unreachable at ${temporal.address}: reconnecting (workflows go on once it is back)`;
}

export interface StartOrFollow {
  workflowType: string;
  workflowId: string;
  args: unknown[];
  /** REJECT_DUPLICATE: a finished run is the answer (a boot); ALLOW_DUPLICATE: run again (a delete). */
  rerunFinished: boolean;
  ownership: Ownership;
}

/**
 * Starts the workflow, or joins the one already under its id (running, or finished when reruns are
 * refused) once it is checked to be ours. The handle follows that run.
 */
export async function startOrFollow(
  temporal: TemporalHandle,
  options: StartOrFollow,
): Promise<{ handle: WorkflowHandle; joined: boolean }> {
  const { client } = temporal;
  let handle: WorkflowHandle;
  let runId: string | undefined;
  try {
    const started = await client.workflow.start(options.workflowType, {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: options.workflowId,
      args: options.args,
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: options.rerunFinished ? 'ALLOW_DUPLICATE' : 'REJECT_DUPLICATE',
    });
    // With USE_EXISTING, the run already under the id when there was one.
    runId = started.firstExecutionRunId;
    handle = started;
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    // Finished already (REJECT_DUPLICATE): its latest run holds the outcome.
    runId = (await client.workflow.getHandle(options.workflowId).describe()).runId;
    handle = client.workflow.getHandle(options.workflowId, runId);
  }
  let startedBy: string;
  try {
    ({ startedBy } = await checkOwnership(client, options.workflowId, runId, options.ownership));
  } catch (err) {
    if (err instanceof ForeignWorkflowError) throw new UserError(err.message, EXIT.FAILED);
    throw err;
  }
  // Each client run has its own identity (client.ts adds a random part): another one started this run.
  const joined = startedBy !== client.options.identity;
  return { handle, joined };
}

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

export interface FollowOptions {
  /** Told while Temporal cannot be reached (once a second at most), with how long it has been. */
  onUnreachable?(sinceMs: number): void;
  limitMs?: number;
}

/**
 * The workflow's result, followed through Temporal outages: a failed history poll while Temporal does not
 * answer is retried until it answers again (then the poll resumes where the run is) or `limitMs` passes
 * (a UserError with exit 3). A workflow failure is the outcome, returned as such.
 */
export async function followResult<T>(
  temporal: TemporalHandle,
  handle: WorkflowHandle,
  options: FollowOptions = {},
): Promise<Settled<T>> {
  const limitMs = options.limitMs ?? outageLimitMs();
  let downSince: number | undefined;
  let reachableErrors = 0;
  for (;;) {
    try {
      return { ok: true, value: (await handle.result()) as T };
    } catch (error) {
      if (error instanceof WorkflowFailedError || !(error instanceof ServiceError || isGrpc(error))) {
        return { ok: false, error };
      }
      if (await temporalReachable(temporal)) {
        downSince = undefined;
        if (++reachableErrors >= REACHABLE_ERRORS_BEFORE_GIVING_UP) return { ok: false, error };
        continue;
      }
      reachableErrors = 0;
      downSince ??= Date.now();
      const down = Date.now() - downSince;
      if (down > limitMs) {
        throw new UserError(
          `Temporal is unreachable at ${temporal.address} for ${Math.round(down / 1000)} s; ` +
            `the workflow ${handle.workflowId} may still finish: follow it with \`bootflow server show\``,
          EXIT.UNAVAILABLE,
        );
      }
      options.onUnreachable?.(down);
      await sleep(RECONNECT_DELAY_MS);
    }
  }
}

function isGrpc(err: unknown): boolean {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number';
}
