/**
 * Activity stubs per service role, with the timeouts and retry policy each kind of call deserves. Every
 * call in the workflows goes through `call(stub, summary, ...args)`, so it carries a one-line summary in
 * the Web UI ("keystone: authenticate", "glance: fetch image to compute2").
 */
import type { ActivityFunction, Duration } from '@temporalio/common';
import {
  proxyActivities,
  type ActivityFunctionWithOptions,
  type ActivityInterfaceFor,
} from '@temporalio/workflow';
import type { ComputeActivities, ControllerActivities, NetworkActivities } from '../activities';
import { computeQueue, CONTROLLER_QUEUE, NETWORK_QUEUE } from './names';

/**
 * Identity and Nova database calls: each is one short transaction, so a 20 s attempt is generous; a few
 * fast retries ride out a locked row or a restarting controller. Unauthorized, NotFound, QuotaExceeded
 * and the like come back non-retryable from the adapters and are never retried.
 */
export const controller = proxyActivities<ControllerActivities>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '20 seconds',
  retry: {
    initialInterval: '200 ms',
    backoffCoefficient: 2,
    maximumInterval: '2 seconds',
    maximumAttempts: 5,
  },
});

/**
 * Cinder API calls: a volume backend can be busy for a while, so retries back off up to 15 s over about a
 * minute and a half before the boot gives up on the step.
 */
export const volumeApi = proxyActivities<ControllerActivities>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '15 seconds',
    maximumAttempts: 7,
  },
});

/** neutron-server: same backoff as Cinder (IPAM and binding contend on the network node). */
export const network = proxyActivities<NetworkActivities>({
  taskQueue: NETWORK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '15 seconds',
    maximumAttempts: 7,
  },
});

/**
 * Status polls inside the workflow's durable waits (volume available, vif plugged, build stopped): the
 * wait loop is the retry, so each poll gets just one quick second chance.
 */
const pollOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '500 ms', maximumAttempts: 2 },
} as const;
export const controllerPoll = proxyActivities<ControllerActivities>({
  taskQueue: CONTROLLER_QUEUE,
  ...pollOptions,
});
export const networkPoll = proxyActivities<NetworkActivities>({ taskQueue: NETWORK_QUEUE, ...pollOptions });

/**
 * Compensations must not give up: no maximumAttempts, a backoff capped at 10 s. Each undo is idempotent
 * ("already gone" is success), so repeating one is harmless.
 */
const undoRetry = {
  initialInterval: '500 ms',
  backoffCoefficient: 2,
  maximumInterval: '10 seconds',
} as const;
export const controllerUndo = proxyActivities<ControllerActivities>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: undoRetry,
});
export const networkUndo = proxyActivities<NetworkActivities>({
  taskQueue: NETWORK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: undoRetry,
});

export interface ComputeStubs {
  /** plug, connect, spawn: short operations on the host. */
  ops: ActivityInterfaceFor<ComputeActivities>;
  /** The image download: long, heartbeating with its progress. */
  fetch: ActivityInterfaceFor<ComputeActivities>;
  /** Undo steps on the host: retried until done, unless the host is unreachable. */
  undo: ActivityInterfaceFor<ComputeActivities>;
}

/**
 * Stubs for one host's `compute@<host>` queue. scheduleToStartTimeout on every one of them: work that no
 * worker picks up within `pickup` means the host's nova-compute is gone, and the build reschedules.
 */
export function computeStubs(host: string, pickup: Duration): ComputeStubs {
  const base = { taskQueue: computeQueue(host), scheduleToStartTimeout: pickup };
  return {
    ops: proxyActivities<ComputeActivities>({
      ...base,
      startToCloseTimeout: '2 minutes',
      // The activities heartbeat every second: a dead worker shows in 20 s, and cancellation reaches them.
      heartbeatTimeout: '20 seconds',
      retry: {
        initialInterval: '1 second',
        backoffCoefficient: 2,
        maximumInterval: '10 seconds',
        maximumAttempts: 3,
      },
    }),
    fetch: proxyActivities<ComputeActivities>({
      ...base,
      // A large image may take long; the heartbeat (30 s) is what detects a stuck or dead download.
      startToCloseTimeout: '30 minutes',
      heartbeatTimeout: '30 seconds',
      retry: {
        initialInterval: '2 seconds',
        backoffCoefficient: 2,
        maximumInterval: '30 seconds',
        maximumAttempts: 3,
      },
    }),
    undo: proxyActivities<ComputeActivities>({
      ...base,
      startToCloseTimeout: '2 minutes',
      heartbeatTimeout: '20 seconds',
      retry: undoRetry,
    }),
  };
}

/** Runs an activity with its Web UI summary. */
export function call<F extends ActivityFunction>(
  stub: ActivityFunctionWithOptions<F>,
  summary: string,
  ...args: Parameters<F>
): Promise<Awaited<ReturnType<F>>> {
  return stub.executeWithOptions({ summary }, args);
}
