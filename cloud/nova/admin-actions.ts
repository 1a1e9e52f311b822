/**
 * os-resetState (nova/api/openstack/compute/admin_actions.py _reset_state): nova-api sets the vm_state
 * (active or error) and clears the task_state, with no guard, recording the `resetState` action; nothing
 * runs on a host. An operation still running on the instance then meets the cleared task_state at its next
 * guarded write and stops (UnexpectedTaskState), as Nova's compute manager does.
 */
import { z } from 'zod';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import * as actions from './actions';
import { within, type NovaContext } from './db-util';
import * as instances from './instances';
import { instanceUuidSchema, keystoneIdSchema } from './schemas';
import { VM_STATES } from './states';

/** nova/compute/instance_actions.py RESET_STATE. */
export const RESET_STATE_ACTION = 'resetState';

const resetSchema = z.strictObject({
  instanceUuid: instanceUuidSchema,
  requestId: idSchema,
  userId: keystoneIdSchema,
  projectId: keystoneIdSchema,
  /** admin_actions.py's state_map: the two states an admin may set. */
  state: z.enum([VM_STATES.ACTIVE, VM_STATES.ERROR]),
});
export type ResetStateInput = z.input<typeof resetSchema>;

/** The new states and the finished action, in one transaction on the locked row; NotFound once deleted. */
export async function resetInstanceState(ctx: NovaContext, input: unknown): Promise<instances.Instance> {
  const req = parseRequest(resetSchema, input, 'instance state reset');
  return ctx.store.transaction(async (trx) => {
    const scoped = within(ctx, trx);
    const row = await ctx.store
      .forUpdate(trx.selectFrom('instances').select(['uuid', 'deleted']).where('uuid', '=', req.instanceUuid))
      .executeTakeFirst();
    if (!row || row.deleted === 1) {
      throw new CloudError('NotFound', `Instance ${req.instanceUuid} could not be found.`, {
        instanceUuid: req.instanceUuid,
      });
    }
    const step = { instanceUuid: req.instanceUuid, requestId: req.requestId };
    await actions.startAction(scoped, {
      ...step,
      action: RESET_STATE_ACTION,
      userId: req.userId,
      projectId: req.projectId,
    });
    const reset = await instances.updateInstance(scoped, req.instanceUuid, {
      vmState: req.state,
      taskState: null,
    });
    await actions.finishAction(scoped, step);
    return reset;
  });
}
