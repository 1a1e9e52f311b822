/**
 * The `evacuate` server action (nova/api/openstack/compute/evacuate.py), admin only: the body per
 * microversion (onSharedStorage required before 2.14 and gone from it, `force` from 2.29 to 2.67, `host`,
 * `adminPass`), nova-api's checks answered at once (404 unknown host, 400 same host or the source's
 * nova-compute still up, 409 the instance state), then the evacuateServer workflow; the answer comes once
 * it has taken the server (task_state rebuilding), as Nova answers once it has cast the rebuild. The body
 * is `{"adminPass": ...}` before 2.14 and empty from it.
 */
import { randomInt } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { z } from 'zod';
import { CloudError } from '../../cloud/errors';
import { CONTROLLER_QUEUE, evacuateWorkflowId } from '../../workflows/names';
import type { EvacuateRequest } from '../../workflows/evacuate';
import { ApiError } from '../errors';
import { isTrue, parameterBoolean } from '../parameter-types';
import { enforcePolicy, parseBody } from './common';
import { atLeast } from './microversion';
import type { ActionAnswer, ActionCall } from './server-actions';
import { grantFor, visibleInstance } from './servers';

function evacuateSchema(minor: number) {
  return z.strictObject({
    evacuate: z.strictObject({
      host: z.string().min(1).max(255).optional(),
      adminPass: z.string().max(255).optional(),
      ...(minor < 14 ? { onSharedStorage: parameterBoolean } : {}),
      ...(minor >= 29 && minor < 68 ? { force: parameterBoolean.optional() } : {}),
    }),
  });
}

/** nova.utils.generate_password's alphabet, length 12 (as the servers API). */
const PASSWORD_SYMBOLS = '23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const generatePassword = () =>
  Array.from({ length: 12 }, () => PASSWORD_SYMBOLS[randomInt(PASSWORD_SYMBOLS.length)]).join('');

/** How long the API waits for the workflow to take the server before answering regardless. */
const TAKE_WAIT_MS = 30_000;

/** SERVER_ACTIONS' `evacuate` entry (server-actions.ts). */
export async function evacuateAction({
  deps,
  request,
  ctx,
  validated,
  id,
  body: raw,
}: ActionCall): Promise<ActionAnswer> {
  const minor = request.microversion.minor;
  const body = parseBody(evacuateSchema(minor), raw).evacuate as {
    host?: string;
    adminPass?: string;
    onSharedStorage?: z.infer<typeof parameterBoolean>;
    force?: z.infer<typeof parameterBoolean>;
  };
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:servers:show');
  enforcePolicy(ctx, 'os_compute_api:os-evacuate', instance.projectId);
  if (minor < 14 && isTrue(body.onSharedStorage)) {
    if (body.adminPass !== undefined)
      throw new ApiError(400, "admin password can't be changed on existing disk");
    throw new ApiError(400, "Evacuating onto shared storage is not supported by bootflow's compute API.");
  }
  if (isTrue(body.force) && body.host === undefined)
    throw new ApiError(400, "Can't force to a non-provided destination");
  try {
    await deps.cloud.nova.evacuations.check(instance.uuid, body.host);
  } catch (err) {
    if (err instanceof CloudError && err.type === 'InstanceInvalidState')
      throw new ApiError(409, err.message);
    throw err;
  }
  // Nova would set it in the rebuilt guest; bootflow's guests take no password: it is answered, never stored.
  const password = body.adminPass ?? generatePassword();
  const input: EvacuateRequest = {
    requestId: request.id,
    auth: await grantFor(deps, validated, 'evacuateServer', evacuateWorkflowId(instance.uuid, request.id)),
    instanceUuid: instance.uuid,
    ...(body.host === undefined ? {} : { host: body.host }),
  };
  const handle = await deps.temporal.workflow.start('evacuateServer', {
    taskQueue: CONTROLLER_QUEUE,
    workflowId: evacuateWorkflowId(instance.uuid, request.id),
    args: [input],
  });
  const deadline = Date.now() + TAKE_WAIT_MS;
  while (Date.now() < deadline) {
    const current = await deps.cloud.nova.getInstance(instance.uuid, { includeDeleted: true });
    if (current.taskState === 'rebuilding' || current.taskState === 'rebuild_spawning') break;
    const { status } = await handle.describe();
    if (status.name !== 'RUNNING') {
      // Refused before it took the server (a race with another operation): that refusal is the answer.
      const taken = (await deps.cloud.nova.listActions(instance.uuid)).some(
        (a) => a.requestId === request.id,
      );
      if (!taken) {
        const failure = await handle.result().then(
          () => undefined,
          (err: unknown) => (err instanceof WorkflowFailedError ? err.cause : err),
        );
        if (failure) throw new ApiError(409, failure instanceof Error ? failure.message : String(failure));
      }
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (atLeast(request, 2, 14)) return { status: 200 };
  return { status: 200, body: { adminPass: password } };
}
