/**
 * nova-api's and nova-conductor's side of evacuate (nova/compute/api.py evacuate, compute/manager.py
 * rebuild_instance with recreate=True): the checks (vm_state ACTIVE, STOPPED or ERROR with no task, the
 * source host's nova-compute down, the target host known and not the source), task_state `rebuilding` set
 * with a compare-and-swap on None and the `evacuate` action; then the rebuilt instance's new host, or the
 * failure recorded; and, for the dead host's init_host, which of its local guests were evacuated away.
 */
import { z } from 'zod';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import * as actions from './actions';
import type { ComputeServices } from './compute-services';
import type { NovaContext } from './db-util';
import * as instances from './instances';
import { hostSchema, instanceUuidSchema, keystoneIdSchema } from './schemas';
import { POWER_STATES, TASK_STATES, VM_STATES } from './states';
import { checkOperationAllowed, OPERATION_RULES } from './operations';

/** Evacuate's state rules, action and event: its entry in the day-two operations' table. */
const RULE = OPERATION_RULES.evacuate;
export const EVACUATE_ACTION = RULE.action;
/** The compute event of the rebuild on the destination (wrap_instance_event of rebuild_instance). */
export const REBUILD_EVENT = RULE.event;

const beginSchema = z.strictObject({
  instanceUuid: instanceUuidSchema,
  requestId: idSchema,
  userId: keystoneIdSchema,
  targetHost: hostSchema.optional(),
});
export type BeginEvacuateInput = z.input<typeof beginSchema>;

export interface EvacuationStart {
  instance: instances.Instance;
  sourceHost: string;
  /** Every other known host the scheduler must not pick: the source, or all but the requested target. */
  excludedHosts: string[];
}

/** What nova-api checks before an evacuate, as the API answers it; changes nothing. */
export async function checkEvacuate(
  computes: ComputeServices,
  instance: instances.Instance,
  targetHost?: string,
): Promise<EvacuationStart> {
  if (targetHost !== undefined) {
    const known = await computes.getComputeHost(targetHost).catch(() => undefined);
    if (!known)
      throw new CloudError('NotFound', `Compute host ${targetHost} not found.`, { host: targetHost });
    if (instance.host === targetHost)
      throw new CloudError('BadRequest', "The target host can't be the same one.", { host: targetHost });
  }
  // check_instance_state as the other day-two operations (InstanceNotReady without a host to evacuate from).
  checkOperationAllowed(RULE, instance);
  const sourceHost = instance.host as string;
  const source = await computes.getComputeHost(sourceHost);
  // Nova's ComputeServiceInUse, answered 400 by the evacuate API.
  if (source.up)
    throw new CloudError('BadRequest', `Compute service of ${sourceHost} is still in use.`, {
      host: sourceHost,
      reason: 'ComputeServiceInUse',
    });
  const hosts = (await computes.listComputeHosts()).map((h) => h.host);
  const excludedHosts = targetHost === undefined ? [sourceHost] : hosts.filter((h) => h !== targetHost);
  return { instance, sourceHost, excludedHosts };
}

export class Evacuations {
  constructor(
    private readonly ctx: NovaContext,
    private readonly computes: ComputeServices,
  ) {}

  /**
   * The checks, then task_state None → rebuilding (a concurrent operation or a delete makes it a Conflict)
   * and the `evacuate` action. A retry after it succeeded finds its own action and answers the same.
   */
  async begin(input: BeginEvacuateInput): Promise<EvacuationStart> {
    const req = parseRequest(beginSchema, input, 'evacuate request');
    const instance = await instances.getInstance(this.ctx, req.instanceUuid);
    const mine = (await actions.listActions(this.ctx, req.instanceUuid)).find(
      (a) => a.requestId === req.requestId,
    );
    if (mine && instance.taskState !== null && instance.host !== null) {
      const hosts = (await this.computes.listComputeHosts()).map((h) => h.host);
      const excludedHosts =
        req.targetHost === undefined ? [instance.host] : hosts.filter((h) => h !== req.targetHost);
      return { instance, sourceHost: instance.host, excludedHosts };
    }
    const start = await checkEvacuate(this.computes, instance, req.targetHost);
    const rebuilding = await instances.updateInstance(
      this.ctx,
      req.instanceUuid,
      { taskState: RULE.taskState },
      { expectedTaskState: [...RULE.fromTaskStates] },
    );
    await actions.startAction(this.ctx, {
      instanceUuid: req.instanceUuid,
      requestId: req.requestId,
      action: EVACUATE_ACTION,
      userId: req.userId,
      projectId: instance.projectId,
    });
    return { ...start, instance: rebuilding };
  }

  /** nova-api's checks alone (the API answers them synchronously before it starts the workflow). */
  async check(instanceUuid: string, targetHost?: string): Promise<EvacuationStart> {
    const instance = await instances.getInstance(this.ctx, instanceUuid);
    return checkEvacuate(this.computes, instance, targetHost);
  }

  /** The conductor before the spawn on the destination: rebuilding → rebuild_spawning, the event opened. */
  async spawning(input: { instanceUuid: string; requestId: string; host: string }): Promise<void> {
    const uuid = parseRequest(instanceUuidSchema, input.instanceUuid, 'instance uuid');
    const current = await instances.getInstance(this.ctx, uuid, { includeDeleted: true });
    if (current.taskState !== TASK_STATES.REBUILD_SPAWNING) {
      await instances.updateInstance(
        this.ctx,
        uuid,
        { taskState: TASK_STATES.REBUILD_SPAWNING },
        { expectedTaskState: TASK_STATES.REBUILDING },
      );
    }
    await actions.recordEvent(this.ctx, {
      instanceUuid: uuid,
      requestId: input.requestId,
      event: REBUILD_EVENT,
      host: input.host,
    });
  }

  /**
   * Rebuilt on the destination: its host and node, vm_state active, RUNNING, no task (guarded on
   * rebuild_spawning: a delete meanwhile wins), the event and action closed.
   */
  async finish(input: {
    instanceUuid: string;
    requestId: string;
    host: string;
    node: string;
  }): Promise<void> {
    const uuid = parseRequest(instanceUuidSchema, input.instanceUuid, 'instance uuid');
    const current = await instances.getInstance(this.ctx, uuid, { includeDeleted: true });
    if (!(current.host === input.host && current.taskState === null && !current.deleted)) {
      await instances.updateInstance(
        this.ctx,
        uuid,
        {
          host: input.host,
          node: input.node,
          vmState: VM_STATES.ACTIVE,
          powerState: POWER_STATES.RUNNING,
          taskState: null,
        },
        { expectedTaskState: TASK_STATES.REBUILD_SPAWNING },
      );
    }
    const step = { instanceUuid: uuid, requestId: input.requestId };
    await actions.recordEvent(this.ctx, {
      ...step,
      event: REBUILD_EVENT,
      host: input.host,
      result: 'Success',
    });
    await actions.finishAction(this.ctx, step);
  }

  /**
   * A failed evacuate: vm_state error, no task, no host (what it held on the destination was undone), the
   * fault and the action closed with Error. A deleted instance is left as it is.
   */
  async fail(input: {
    instanceUuid: string;
    requestId: string;
    fault: { code: number; message: string; details?: string; host?: string };
  }): Promise<void> {
    const uuid = parseRequest(instanceUuidSchema, input.instanceUuid, 'instance uuid');
    const current = await instances.getInstance(this.ctx, uuid, { includeDeleted: true });
    if (current.deleted) return;
    const [latest] = await actions.listFaults(this.ctx, uuid);
    if (!(current.vmState === VM_STATES.ERROR && latest?.message === input.fault.message)) {
      await actions.addFault(this.ctx, uuid, input.fault);
    }
    if (current.taskState !== TASK_STATES.DELETING) {
      await instances.updateInstance(this.ctx, uuid, {
        vmState: VM_STATES.ERROR,
        taskState: null,
        powerState: POWER_STATES.NOSTATE,
      });
    }
    // The destination's event, opened at rebuild_spawning, is closed with the error (Nova's
    // wrap_instance_event); a failure before the destination was reached has none to close.
    const action = (await actions.listActions(this.ctx, uuid)).find((a) => a.requestId === input.requestId);
    for (const event of action?.events ?? []) {
      if (event.event !== REBUILD_EVENT || event.finishTime !== null) continue;
      await actions.recordEvent(this.ctx, {
        instanceUuid: uuid,
        requestId: input.requestId,
        event: REBUILD_EVENT,
        ...(event.host ? { host: event.host } : {}),
        result: 'Error',
        details: input.fault.message,
      });
    }
    await actions.finishAction(this.ctx, {
      instanceUuid: uuid,
      requestId: input.requestId,
      message: 'Error',
    });
  }

  /**
   * _destroy_evacuated_instances' question, asked by a compute host at start: which of the guests it still
   * has were evacuated to another host (an `evacuate` action, and the instance now elsewhere) or deleted
   * while it was away.
   */
  async evacuatedFrom(input: { host: string; localInstanceUuids: string[] }): Promise<string[]> {
    const host = parseRequest(hostSchema, input.host, 'host');
    const uuids = parseRequest(
      z.array(instanceUuidSchema).max(10_000),
      input.localInstanceUuids,
      'instances',
    );
    const gone: string[] = [];
    for (const uuid of uuids) {
      const instance = await instances
        .getInstance(this.ctx, uuid, { includeDeleted: true })
        .catch(() => undefined);
      if (!instance) continue;
      // Deleted while this host was down (a local delete skips the host): Nova's periodic reap of running
      // deleted instances, done here at start.
      if (instance.deleted) {
        gone.push(uuid);
        continue;
      }
      if (instance.host === host) continue;
      const evacuated = (await actions.listActions(this.ctx, uuid)).some((a) => a.action === EVACUATE_ACTION);
      if (evacuated) gone.push(uuid);
    }
    return gone;
  }
}
