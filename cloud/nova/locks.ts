/**
 * os-lock-server, nova-api's compute/api.py lock / unlock: no host step, one transaction on the locked row
 * with the instance action (`lock` / `unlock`) and its `api_lock` / `api_unlock` event
 * (wrap_instance_event(prefix='api')). The policy and unlock_override checks are the API's; what the
 * lock refuses (check_instance_lock) is checkInstanceLock's.
 */
import { z } from 'zod';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import * as actions from './actions';
import { within, type NovaContext } from './db-util';
import * as instances from './instances';
import { instanceUuidSchema, keystoneIdSchema } from './schemas';

const lockSchema = z.strictObject({
  instanceUuid: instanceUuidSchema,
  requestId: idSchema,
  userId: keystoneIdSchema,
  projectId: keystoneIdSchema,
  locked: z.boolean(),
  /** 'owner' when the caller's project owns the server, else 'admin' (Nova's locked_by). */
  by: z.enum(['owner', 'admin']),
  /** 2.73's locked_reason (lock only). */
  reason: z.string().min(1).max(255).optional(),
});
export type SetInstanceLockInput = z.input<typeof lockSchema>;

/**
 * Lock or unlock. As Nova: locking a server its owner already locked records nothing; any other lock
 * (an admin's over an owner's too) records the action and sets locked_by; unlock clears the reason.
 */
export async function setInstanceLock(ctx: NovaContext, input: unknown): Promise<instances.Instance> {
  const req = parseRequest(lockSchema, input, 'instance lock');
  if (!req.locked && req.reason !== undefined)
    throw new CloudError('BadRequest', 'An unlock takes no locked_reason');
  return ctx.store.transaction(async (trx) => {
    const scoped = within(ctx, trx);
    const row = await ctx.store
      .forUpdate(trx.selectFrom('instances').selectAll().where('uuid', '=', req.instanceUuid))
      .executeTakeFirst();
    if (!row || row.deleted === 1) {
      throw new CloudError('NotFound', `Instance ${req.instanceUuid} could not be found.`, {
        instanceUuid: req.instanceUuid,
      });
    }
    const current = instances.instanceFromRow(row);
    if (req.locked && current.locked && req.by === 'owner') return current;
    const action = req.locked ? 'lock' : 'unlock';
    const step = { instanceUuid: req.instanceUuid, requestId: req.requestId };
    await actions.startAction(scoped, { ...step, action, userId: req.userId, projectId: req.projectId });
    await actions.recordEvent(scoped, { ...step, event: `api_${action}` });
    const set = req.locked
      ? { locked: 1, locked_by: req.by, locked_reason: req.reason ?? row.locked_reason }
      : { locked: 0, locked_by: null, locked_reason: null };
    const updatedAt = ctx.clock.now();
    await trx
      .updateTable('instances')
      .set({ ...set, updated_at: updatedAt })
      .where('uuid', '=', req.instanceUuid)
      .execute();
    await actions.recordEvent(scoped, { ...step, event: `api_${action}`, result: 'Success' });
    await actions.finishAction(scoped, step);
    return instances.instanceFromRow({ ...row, ...set, updated_at: updatedAt });
  });
}

/**
 * compute/api.py check_instance_lock: a locked server refuses the decorated actions to anyone but an
 * admin, with InstanceIsLocked (409 in the API).
 */
export function checkInstanceLock(instance: instances.Instance, isAdmin: boolean): void {
  if (instance.locked && !isAdmin) {
    throw new CloudError('InstanceIsLocked', `Instance ${instance.uuid} is locked`, {
      instanceUuid: instance.uuid,
    });
  }
}
