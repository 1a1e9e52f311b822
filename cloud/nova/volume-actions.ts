/**
 * nova-api's and nova-conductor's side of attaching and detaching a volume on a running server
 * (nova/compute/api.py attach_volume / detach_volume, compute/manager.py attach_volume / detach_volume):
 * the instance-state check, the instance action (`attach_volume`, `detach_volume`) with its compute event,
 * and the check that the server still lives before an attach is reported done. The volume's own states are
 * Cinder's; Nova's block_device_mapping is not kept (the live Cinder attachment is the record).
 */
import { z } from 'zod';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import * as actions from './actions';
import type { ComputeServices } from './compute-services';
import type { NovaContext } from './db-util';
import * as instances from './instances';
import { hostSchema, instanceUuidSchema, keystoneIdSchema } from './schemas';
import { TASK_STATES, VM_STATES } from './states';

export const VOLUME_ACTIONS = {
  attach: { action: 'attach_volume', event: 'compute_attach_volume' },
  detach: { action: 'detach_volume', event: 'compute_detach_volume' },
} as const;
export type VolumeActionKind = keyof typeof VOLUME_ACTIONS;

/**
 * check_instance_state of attach_volume / detach_volume: vm_state ACTIVE, PAUSED, STOPPED, RESIZED,
 * SOFT_DELETED, SHELVED or SHELVED_OFFLOADED (of these bootflow has active and stopped), and no task.
 */
const VOLUME_VM_STATES: ReadonlySet<string> = new Set([VM_STATES.ACTIVE, VM_STATES.STOPPED]);

/** Nova's InstanceInvalidState as the API words it (common.raise_http_conflict_for_instance_invalid_state). */
export function instanceInvalidState(
  method: string,
  instance: Pick<instances.Instance, 'uuid' | 'vmState' | 'taskState'>,
  attr: 'vm_state' | 'task_state',
): CloudError {
  const state = attr === 'vm_state' ? instance.vmState : String(instance.taskState);
  return new CloudError(
    'InstanceInvalidState',
    `Cannot '${method}' instance ${instance.uuid} while it is in ${attr} ${state}`,
    { instanceUuid: instance.uuid, attr, state, method },
  );
}

/** nova-api's check for a volume attach or detach; throws InstanceInvalidState (409) or NotFound. */
export function checkVolumeActionState(instance: instances.Instance, kind: VolumeActionKind): void {
  const method = VOLUME_ACTIONS[kind].action;
  if (instance.deleted) {
    throw new CloudError('NotFound', `Instance ${instance.uuid} could not be found.`, {
      instanceUuid: instance.uuid,
    });
  }
  if (!VOLUME_VM_STATES.has(instance.vmState)) throw instanceInvalidState(method, instance, 'vm_state');
  if (instance.taskState !== null) throw instanceInvalidState(method, instance, 'task_state');
}

const beginSchema = z.strictObject({
  kind: z.enum(['attach', 'detach']),
  instanceUuid: instanceUuidSchema,
  requestId: idSchema,
  userId: keystoneIdSchema,
  projectId: keystoneIdSchema,
});
export type BeginVolumeActionInput = z.input<typeof beginSchema>;

const finishSchema = z.strictObject({
  kind: z.enum(['attach', 'detach']),
  instanceUuid: instanceUuidSchema,
  requestId: idSchema,
  host: hostSchema,
  error: z.string().min(1).max(4096).optional(),
});
export type FinishVolumeActionInput = z.input<typeof finishSchema>;

export class VolumeActions {
  constructor(
    private readonly ctx: NovaContext,
    private readonly computes: ComputeServices,
  ) {}

  /**
   * The API's checks and the action record: the instance in a state that allows it, on a host whose
   * nova-compute is up (check_instance_host(check_is_up=True); Nova's attach would time out on its RPC
   * call to a dead host), then the action and its compute event started. Returns the host.
   */
  async begin(input: BeginVolumeActionInput): Promise<{ host: string }> {
    const req = parseRequest(beginSchema, input, 'volume action');
    const instance = await instances.getInstance(this.ctx, req.instanceUuid, { includeDeleted: true });
    const existing = (await actions.listActions(this.ctx, req.instanceUuid)).find(
      (a) => a.requestId === req.requestId,
    );
    // A retry of this step after it recorded the action goes on; a first call checks the state.
    if (!existing) checkVolumeActionState(instance, req.kind);
    const host = instance.host;
    if (host === null) throw instanceInvalidState(VOLUME_ACTIONS[req.kind].action, instance, 'vm_state');
    const service = await this.computes.getComputeHost(host);
    if (!service.up) {
      throw new CloudError('ServiceUnavailable', `Compute service of ${host} is unavailable at this time.`, {
        host,
        reason: 'ComputeHostDown',
      });
    }
    const { action, event } = VOLUME_ACTIONS[req.kind];
    await actions.startAction(this.ctx, {
      instanceUuid: req.instanceUuid,
      requestId: req.requestId,
      action,
      userId: req.userId,
      projectId: req.projectId,
    });
    await actions.recordEvent(this.ctx, {
      instanceUuid: req.instanceUuid,
      requestId: req.requestId,
      event,
      host,
    });
    return { host };
  }

  /**
   * Before an attach is reported done: the instance must still live and not be on its way out (task_state
   * deleting). Conflict (InstanceDeleted / UnexpectedTaskState) otherwise, and the attach undoes itself: a
   * delete during an attach wins.
   */
  async confirmAttach(input: { instanceUuid: string }): Promise<void> {
    const uuid = parseRequest(instanceUuidSchema, input.instanceUuid, 'instance uuid');
    const instance = await instances.getInstance(this.ctx, uuid, { includeDeleted: true });
    if (instance.deleted) {
      throw new CloudError('Conflict', `Instance ${uuid} has been deleted; the volume is not attached.`, {
        reason: 'InstanceDeleted',
        instanceUuid: uuid,
      });
    }
    if (instance.taskState === TASK_STATES.DELETING) {
      throw new CloudError(
        'Conflict',
        `Conflict updating instance ${uuid}. Expected task_state: [not deleting]. Actual: deleting`,
        { reason: 'UnexpectedTaskState', instanceUuid: uuid, actual: instance.taskState },
      );
    }
  }

  /** The compute event closed (Success, or Error with why) and the action finished. Idempotent. */
  async finish(input: FinishVolumeActionInput): Promise<void> {
    const req = parseRequest(finishSchema, input, 'volume action finish');
    const step = { instanceUuid: req.instanceUuid, requestId: req.requestId };
    await actions.recordEvent(this.ctx, {
      ...step,
      event: VOLUME_ACTIONS[req.kind].event,
      host: req.host,
      result: req.error === undefined ? 'Success' : 'Error',
      ...(req.error === undefined ? {} : { details: req.error }),
    });
    await actions.finishAction(this.ctx, {
      ...step,
      ...(req.error === undefined ? {} : { message: 'Error' }),
    });
  }
}
