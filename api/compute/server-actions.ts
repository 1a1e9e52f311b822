/**
 * POST /servers/{id}/action (Nova's @wsgi.action methods): the body names one action, and SERVER_ACTIONS
 * maps that name to its handler. A day-two operation (os-stop, os-start, reboot, pause, suspend, ...) is checked here
 * synchronously, as nova-api checks it against its database: the policy, Nova's vm_state/task_state rules
 * and the task_state compare-and-swap with the instance action (409 conflictingRequest otherwise); then its
 * workflow starts and the answer is 202 with no body. os-getConsoleOutput runs its read workflow and
 * answers the output.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CloudError } from '../../cloud/errors';
import type { RequestContext, ValidatedToken } from '../../cloud/keystone';
import type { OperationName, RebuildChanges } from '../../cloud/nova';
import type { ConsoleOutput, ConsoleOutputRequest } from '../../workflows/console-output';
import { CONTROLLER_QUEUE, serverOperationWorkflowId } from '../../workflows/names';
import type { RebuildRequest, ServerOperationRequest } from '../../workflows/types';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { parseBody } from './common';
import {
  failureToApiError,
  grantFor,
  innermostFailure,
  instanceNotFound,
  refuseIfLocked,
  visibleInstance,
  type PolicyName,
} from './servers';
import { injectNetworkInfoAction, resetStateAction, restoreAction } from './admin-actions';
import { createImageAction } from './create-image';
import { evacuateAction } from './evacuate';
import { lockAction, unlockAction } from './lock-server';
import { rebuildAction } from './rebuild';
import { addSecurityGroupAction, removeSecurityGroupAction } from './server-security-groups';

/** What every action handler gets. */
export interface ActionCall {
  deps: ApiDeps;
  request: FastifyRequest;
  ctx: RequestContext;
  /** The caller's validated token: what the workflow's grant is made from. */
  validated: ValidatedToken;
  /** The server id as the path gave it. */
  id: string;
  body: unknown;
}

/** An action's answer: its status and body (none for Nova's 202 actions). */
export interface ActionAnswer {
  status: number;
  body?: unknown;
  /** Response headers (createImage's Location before 2.45). */
  headers?: Record<string, string>;
}

export type ActionHandler = (call: ActionCall) => Promise<ActionAnswer>;

/** The workflow a day-two operation runs, by its type name (workflows/index.ts). */
export interface OperationAction {
  operation: OperationName;
  policy: PolicyName;
  workflowType: string;
  /** Fields the workflow's request has beyond ServerOperationRequest's (e.g. the reboot type). */
  extra?: Record<string, unknown>;
  /** A rebuild's changes: written by the begin, and in the workflow's request. */
  rebuild?: RebuildChanges;
  /** check_instance_lock (default true); Nova's snapshot does not check the lock. */
  checksLock?: boolean;
}

/**
 * A day-two operation the Nova way: the server as the caller may see it (404 for another project's), the
 * begin (state rules, guarded task_state, instance action) answered 409 with Nova's message when refused,
 * then one workflow per request. If the workflow cannot be started, the begin is reverted.
 */
export async function startOperation(call: ActionCall, action: OperationAction): Promise<ActionAnswer> {
  const { deps, request, ctx, validated, id } = call;
  const instance = await visibleInstance(deps, ctx, id, action.policy);
  if (action.checksLock !== false) refuseIfLocked(ctx, instance);
  const step = { instanceUuid: instance.uuid, requestId: request.id, operation: action.operation };
  try {
    await deps.cloud.nova.beginOperation({
      ...step,
      userId: ctx.userId,
      projectId: instance.projectId,
      ...(action.rebuild ? { rebuild: action.rebuild } : {}),
    });
  } catch (err) {
    if (err instanceof CloudError && err.code === 409) throw new ApiError(409, err.message);
    if (err instanceof CloudError && err.type === 'NotFound') throw instanceNotFound(id);
    throw err;
  }
  const workflowId = serverOperationWorkflowId(action.operation, instance.uuid, request.id);
  const input: ServerOperationRequest & Record<string, unknown> = {
    requestId: request.id,
    auth: await grantFor(deps, validated, action.workflowType, workflowId),
    instanceUuid: instance.uuid,
    ...action.extra,
    ...(action.rebuild ? { rebuild: workflowRebuild(action.rebuild) } : {}),
  };
  try {
    await deps.temporal.workflow.start(action.workflowType, {
      taskQueue: CONTROLLER_QUEUE,
      workflowId,
      args: [input],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) {
      const message = err instanceof Error ? err.message : String(err);
      await deps.cloud.nova.failOperation({ ...step, error: { type: 'WorkflowNotStarted', message } });
      throw err;
    }
  }
  return { status: 202 };
}

/**
 * A rebuild's changes as its workflow takes them: the key pair name, user_data (2.54, 2.57) and disk config are saved
 * by the begin above, in the API's transaction, and the workflow's own begin finds that action and writes
 * nothing again, so they are not part of the workflow's request.
 */
function workflowRebuild(changes: RebuildChanges): RebuildRequest['rebuild'] {
  const { keyName: _keyName, userData: _userData, autoDiskConfig: _autoDiskConfig, ...rest } = changes;
  return rest;
}

/** Nova's bodies: `{"os-stop": null}` and `{"os-start": null}` (any value is accepted, as Nova's schema). */
const stopSchema = z.strictObject({ 'os-stop': z.unknown() });
const startSchema = z.strictObject({ 'os-start': z.unknown() });
/**
 * schemas/pause_server.py and suspend_server.py: `{"pause": null}` and the like, any value accepted (Nova's
 * schemas leave it open).
 */
const pauseSchema = z.strictObject({ pause: z.unknown() });
const unpauseSchema = z.strictObject({ unpause: z.unknown() });
const suspendSchema = z.strictObject({ suspend: z.unknown() });
const resumeSchema = z.strictObject({ resume: z.unknown() });
/** schemas/servers.py reboot: `type` required, SOFT or HARD in any of Nova's three spellings. */
const rebootSchema = z.strictObject({
  reboot: z.strictObject({ type: z.enum(['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']) }),
});

/** os-getConsoleOutput's body (schemas/console_output.py): `length` an integer ≥ -1 (or its digits), or null. */
const consoleOutputSchema = z.strictObject({
  'os-getConsoleOutput': z.strictObject({
    length: z.union([z.number().int().min(-1), z.string().regex(/^-?[0-9]+$/), z.null()]).optional(),
  }),
});

/** How long the API waits for the host's console (the host must pick the call up within 30 s). */
const CONSOLE_TIMEOUT = '1 minute';

/**
 * os-getConsoleOutput: the getConsoleOutput workflow (nova-api's checks, then the RPC to the host's
 * nova-compute), answering `{"output": ...}`.
 */
async function consoleOutput({ deps, request, ctx, validated, id, body }: ActionCall): Promise<ActionAnswer> {
  const { length } = parseBody(consoleOutputSchema, body)['os-getConsoleOutput'];
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-console-output');
  const lines = length === undefined || length === null || Number(length) === -1 ? undefined : Number(length);
  if (lines !== undefined && lines < 0)
    throw new ApiError(400, `Invalid input for field/attribute length. Value: ${length}.`);
  if (!instance.host) throw new ApiError(409, `Instance ${instance.uuid} is not ready`);
  const input: ConsoleOutputRequest = {
    auth: await grantFor(deps, validated, 'getConsoleOutput', `console-output-${request.id}`),
    server: instance.uuid,
    ...(lines === undefined ? {} : { lines }),
  };
  try {
    const answer = (await deps.temporal.workflow.execute('getConsoleOutput', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: `console-output-${request.id}`,
      args: [input],
      workflowExecutionTimeout: CONSOLE_TIMEOUT,
    })) as ConsoleOutput;
    return { status: 200, body: { output: answer.output } };
  } catch (err) {
    const cause = innermostFailure(err);
    if (cause instanceof ApplicationFailure && cause.type === 'InstanceNotReady')
      throw new ApiError(409, cause.message);
    if (cause instanceof ApplicationFailure && cause.type === 'NotFound') throw instanceNotFound(id);
    request.log.warn(
      { failure: cause instanceof Error ? cause.message : String(cause) },
      'console output failed',
    );
    throw failureToApiError(err);
  }
}

/** The actions bootflow serves, by the name the body's one key gives; one entry per action. */
export const SERVER_ACTIONS: Record<string, ActionHandler> = {
  'os-getConsoleOutput': consoleOutput,
  'os-stop': (call) => {
    parseBody(stopSchema, call.body);
    return startOperation(call, {
      operation: 'stop',
      policy: 'os_compute_api:servers:stop',
      workflowType: 'stopInstance',
    });
  },
  'os-start': (call) => {
    parseBody(startSchema, call.body);
    return startOperation(call, {
      operation: 'start',
      policy: 'os_compute_api:servers:start',
      workflowType: 'startInstance',
    });
  },
  // pause_server.py and suspend_server.py: the policy after the lookup (404 first), then compute/api.py.
  pause: (call) => {
    parseBody(pauseSchema, call.body);
    return startOperation(call, {
      operation: 'pause',
      policy: 'os_compute_api:os-pause-server:pause',
      workflowType: 'pauseInstance',
    });
  },
  unpause: (call) => {
    parseBody(unpauseSchema, call.body);
    return startOperation(call, {
      operation: 'unpause',
      policy: 'os_compute_api:os-pause-server:unpause',
      workflowType: 'unpauseInstance',
    });
  },
  suspend: (call) => {
    parseBody(suspendSchema, call.body);
    return startOperation(call, {
      operation: 'suspend',
      policy: 'os_compute_api:os-suspend-server:suspend',
      workflowType: 'suspendInstance',
    });
  },
  resume: (call) => {
    parseBody(resumeSchema, call.body);
    return startOperation(call, {
      operation: 'resume',
      policy: 'os_compute_api:os-suspend-server:resume',
      workflowType: 'resumeInstance',
    });
  },
  addSecurityGroup: addSecurityGroupAction,
  createImage: createImageAction,
  evacuate: evacuateAction,
  injectNetworkInfo: injectNetworkInfoAction,
  lock: lockAction,
  'os-resetState': resetStateAction,
  restore: restoreAction,
  rebuild: rebuildAction,
  removeSecurityGroup: removeSecurityGroupAction,
  unlock: unlockAction,
  reboot: (call) => {
    const type = parseBody(rebootSchema, call.body).reboot.type.toUpperCase() as 'SOFT' | 'HARD';
    return startOperation(call, {
      operation: type === 'HARD' ? 'reboot-hard' : 'reboot-soft',
      policy: 'os_compute_api:servers:reboot',
      workflowType: 'rebootInstance',
      extra: { type },
    });
  },
};

async function serverAction(deps: ApiDeps, request: FastifyRequest, reply: FastifyReply) {
  const { ctx, validated } = authOf(request);
  const { id } = request.params as { id: string };
  const body = request.body;
  const action =
    typeof body === 'object' && body !== null && !Array.isArray(body) ? Object.keys(body)[0] : undefined;
  if (action === undefined) throw new ApiError(400, 'The request body must name one action.');
  const handler = Object.hasOwn(SERVER_ACTIONS, action) ? SERVER_ACTIONS[action] : undefined;
  if (!handler) {
    await visibleInstance(deps, ctx, id, 'os_compute_api:servers:show');
    throw new ApiError(400, `There is no such action: ${action}`);
  }
  const answer = await handler({ deps, request, ctx, validated, id, body });
  reply.code(answer.status);
  for (const [name, value] of Object.entries(answer.headers ?? {})) reply.header(name, value);
  return answer.body === undefined ? reply.send() : answer.body;
}

export async function serverActionRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.post('/servers/:id/action', (request, reply) => serverAction(deps, request, reply));
}
