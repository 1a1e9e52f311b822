/**
 * The `lock` and `unlock` server actions (nova/api/openstack/compute/lock_server.py): 202 with no body,
 * done by nova-api itself (no workflow, no host). `lock` takes `locked_reason` from 2.73
 * (schemas/lock_server.py lock_v2_73; before it the body is not validated); unlocking a server locked by
 * someone else (owner vs admin) needs os-lock-server:unlock:unlock_override (admin).
 */
import { z } from 'zod';
import { enforcePolicy, parseBody } from './common';
import { atLeast } from './microversion';
import type { ActionAnswer, ActionCall } from './server-actions';
import { visibleInstance } from './servers';

const lockV273 = z.strictObject({
  lock: z.strictObject({ locked_reason: z.string().min(1).max(255).optional() }).nullable(),
});

export async function lockAction({ deps, request, ctx, id, body }: ActionCall): Promise<ActionAnswer> {
  const reason = atLeast(request, 2, 73) ? parseBody(lockV273, body).lock?.locked_reason : undefined;
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-lock-server:lock');
  await deps.cloud.nova.setInstanceLock({
    instanceUuid: instance.uuid,
    requestId: request.id,
    userId: ctx.userId,
    projectId: ctx.projectId,
    locked: true,
    by: instance.projectId === ctx.projectId ? 'owner' : 'admin',
    ...(reason === undefined ? {} : { reason }),
  });
  return { status: 202 };
}

export async function unlockAction({ deps, request, ctx, id }: ActionCall): Promise<ActionAnswer> {
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-lock-server:unlock');
  // compute/api.py is_expected_locked_by: another party's lock needs the override.
  const expected = instance.projectId === ctx.projectId ? 'owner' : 'admin';
  if (instance.lockedBy !== null && instance.lockedBy !== expected) {
    enforcePolicy(ctx, 'os_compute_api:os-lock-server:unlock:unlock_override', instance.projectId);
  }
  await deps.cloud.nova.setInstanceLock({
    instanceUuid: instance.uuid,
    requestId: request.id,
    userId: ctx.userId,
    projectId: ctx.projectId,
    locked: false,
    by: expected,
  });
  return { status: 202 };
}
