/**
 * `openstack console log show` / nova-api's `os-getConsoleOutput` server action: nova-api checks the token,
 * the policy and that the server has a host, then asks that host's nova-compute (`compute@<host>`) for the
 * guest's serial console, the last `lines` lines when given. Read-only and short.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { OperatorControllerActivities } from '../activities/operator';
import type { ComputeActivities } from '../activities';
import { computeQueue, CONTROLLER_QUEUE } from './names';
import type { BootAuth } from './types';
import { call, controller } from './proxies';

export interface ConsoleOutputRequest {
  auth: BootAuth;
  /** The server's id, or its name among the caller's project's servers. */
  server: string;
  /** Nova's `length`: the last N lines; absent (or -1 at the API) for the whole log the driver keeps. */
  lines?: number;
}

/** Nova's answer body: `{"output": "..."}`. */
export interface ConsoleOutput {
  output: string;
  /** Which server and host answered (not in Nova's body; the client shows them). */
  instanceUuid: string;
  host: string;
}

/** Reads are idempotent: a few quick retries, then the caller hears why. */
const readRetry = {
  initialInterval: '200 ms',
  backoffCoefficient: 2,
  maximumInterval: '2 seconds',
  maximumAttempts: 4,
};
const novaApi = proxyActivities<OperatorControllerActivities>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '20 seconds',
  retry: readRetry,
});

export async function getConsoleOutput(request: ConsoleOutputRequest): Promise<ConsoleOutput> {
  const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
  const target = await call(novaApi.consoleTarget, `nova-api: console output of ${request.server}`, {
    token: session.token,
    server: request.server,
  });
  // A host whose nova-compute does not pick the call up within 30 s is down: the caller hears it.
  const compute = proxyActivities<ComputeActivities>({
    taskQueue: computeQueue(target.host),
    scheduleToStartTimeout: '30 seconds',
    startToCloseTimeout: '20 seconds',
    retry: readRetry,
  });
  const { output } = await call(compute.getConsoleOutput, `nova-compute: console output on ${target.host}`, {
    instanceUuid: target.uuid,
    ...(request.lines === undefined ? {} : { lines: request.lines }),
  });
  return { output, instanceUuid: target.uuid, host: target.host };
}
