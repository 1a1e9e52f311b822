/**
 * The admin server actions (nova/api/openstack/compute/admin_actions.py) and os-deferred-delete's
 * `restore` (deferred_delete.py), each 202 with no body:
 * - `os-resetState` (`{"state": "active" | "error"}`, admin): the states set and the task cleared at once
 *   (cloud/nova/admin-actions.ts);
 * - `injectNetworkInfo` (admin): checked (the lock) and accepted; libvirt's driver injects nothing, nor
 *   does bootflow's;
 * - `restore`: bootflow deletes at once (no reclaim_instance_interval), so no server is ever
 *   SOFT_DELETED and a restore meets Nova's state check: 409.
 */
import { z } from 'zod';
import { CloudError } from '../../cloud/errors';
import { VM_STATES } from '../../cloud/nova';
import { ApiError } from '../errors';
import { parseBody } from './common';
import type { ActionAnswer, ActionCall } from './server-actions';
import { instanceNotFound, refuseIfLocked, visibleInstance } from './servers';

const resetStateSchema = z.strictObject({
  'os-resetState': z.strictObject({ state: z.enum([VM_STATES.ACTIVE, VM_STATES.ERROR]) }),
});
const injectNetworkInfoSchema = z.strictObject({ injectNetworkInfo: z.unknown() });
const restoreSchema = z.strictObject({ restore: z.unknown() });

export async function resetStateAction({ deps, request, ctx, id, body }: ActionCall): Promise<ActionAnswer> {
  const { state } = parseBody(resetStateSchema, body)['os-resetState'];
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-admin-actions:reset_state');
  await deps.cloud.nova
    .resetInstanceState({
      instanceUuid: instance.uuid,
      requestId: request.id,
      userId: ctx.userId,
      projectId: ctx.projectId,
      state,
    })
    .catch((err: unknown) => {
      if (err instanceof CloudError && err.type === 'NotFound') throw instanceNotFound(id);
      throw err;
    });
  return { status: 202 };
}

export async function injectNetworkInfoAction({ deps, ctx, id, body }: ActionCall): Promise<ActionAnswer> {
  parseBody(injectNetworkInfoSchema, body);
  const instance = await visibleInstance(
    deps,
    ctx,
    id,
    'os_compute_api:os-admin-actions:inject_network_info',
  );
  refuseIfLocked(ctx, instance);
  return { status: 202 };
}

export async function restoreAction({ deps, ctx, id, body }: ActionCall): Promise<ActionAnswer> {
  parseBody(restoreSchema, body);
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-deferred-delete:restore');
  refuseIfLocked(ctx, instance);
  // check_instance_state(vm_state=[SOFT_DELETED]): never met, so always the state conflict.
  throw new ApiError(
    409,
    `Cannot 'restore' instance ${instance.uuid} while it is in vm_state ${instance.vmState}`,
  );
}
