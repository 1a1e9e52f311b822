/**
 * nova-conductor on the controller: the only writer of the Nova database. Compute hosts never write it; the
 * workflow hands their results here, as nova-compute does through the conductor. Every write is guarded
 * by the expected task_state (Nova's Instance.save(expected_task_state=...)) so a concurrent delete wins.
 */
import { ApplicationFailure } from '@temporalio/common';
import { systemClock, type Clock } from '../cloud/clock';
import { isCloudError, type CloudError } from '../cloud/errors';
import type { Nova, TaskState } from '../cloud/nova';
import { POWER_STATES, VM_STATES } from '../cloud/nova';
import type { BootPlan, HostTarget, InstanceSummary } from '../workflows/types';
import { adaptAll } from './failures';

export const BUILD_EVENT = 'compute__do_build_and_run_instance';
export const SCHEDULE_EVENT = 'schedule_instances';

export interface InstanceRecordInput {
  uuid: string;
  requestId: string;
  plan: BootPlan;
  networkIds: string[];
  keyName?: string;
  metadata?: Record<string, string>;
}

export interface FaultRecord {
  code: number;
  message: string;
  details?: string;
  host?: string;
}

function summaryOf(instance: Awaited<ReturnType<Nova['getInstance']>>): InstanceSummary {
  return {
    uuid: instance.uuid,
    requestId: instance.requestId,
    projectId: instance.projectId,
    host: instance.host,
    vmState: instance.vmState,
    taskState: instance.taskState,
    deleted: instance.deleted,
  };
}

/**
 * The instance moved under the build (deleted, or another task took it): Nova's UnexpectedTaskStateError,
 * which no retry fixes.
 */
function guardFailed(err: CloudError): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'Conflict',
    message: err.message,
    nonRetryable: true,
    details: [{ code: err.code, ...err.details }],
  });
}

export function createConductorActivities(nova: Nova, clock: Clock = systemClock) {
  /**
   * Adds the fault unless the instance is already in error with that same fault (a repeated activity).
   * False when the instance is deleted: there is nothing left to mark.
   */
  async function recordFault(uuid: string, fault: FaultRecord): Promise<boolean> {
    const instance = await nova.getInstance(uuid, { includeDeleted: true });
    if (instance.deleted) return false;
    const [latest] = await nova.listFaults(uuid);
    if (!(instance.vmState === VM_STATES.ERROR && latest?.message === fault.message)) {
      await nova.addFault(uuid, {
        code: fault.code,
        message: fault.message,
        ...(fault.details ? { details: fault.details } : {}),
        ...(fault.host ? { host: fault.host } : {}),
      });
    }
    return true;
  }

  return adaptAll({
    /** The instance record in building/scheduling with its 'create' action; idempotent by uuid and request id. */
    async createInstanceRecord(input: InstanceRecordInput): Promise<InstanceSummary> {
      const { plan } = input;
      const instance = await nova.createInstance({
        uuid: input.uuid,
        requestId: input.requestId,
        name: plan.name,
        projectId: plan.projectId,
        userId: plan.userId,
        flavor: plan.flavor.id,
        ...(plan.bootVolume ? { bootFromVolume: true } : { imageRef: plan.image.id }),
        networks: input.networkIds,
        ...(plan.availabilityZone ? { availabilityZone: plan.availabilityZone } : {}),
        ...(input.keyName ? { keyName: input.keyName } : {}),
        ...(input.metadata ? { metadata: input.metadata } : {}),
      });
      return summaryOf(instance);
    },

    async recordEvent(
      uuid: string,
      requestId: string,
      event: string,
      result?: 'Success' | 'Error',
      host?: string,
      details?: string,
    ): Promise<void> {
      await nova.recordEvent({
        instanceUuid: uuid,
        requestId,
        event,
        ...(result ? { result } : {}),
        ...(host ? { host } : {}),
        ...(details ? { details } : {}),
      });
    },

    /** The scheduler's choice saved before the host starts, as the conductor does. */
    async setHost(uuid: string, requestId: string, target: HostTarget): Promise<void> {
      await nova.updateInstance(
        uuid,
        { host: target.host, node: target.nodeUuid },
        { expectedTaskState: 'scheduling' },
      );
      await nova.recordEvent({ instanceUuid: uuid, requestId, event: BUILD_EVENT, host: target.host });
    },

    /** A retry that finds the task state already moved on to `taskState` has nothing left to do. */
    async setTaskState(uuid: string, taskState: TaskState, expected: TaskState | null): Promise<void> {
      try {
        await nova.updateInstance(uuid, { taskState }, { expectedTaskState: expected });
      } catch (err) {
        if (isCloudError(err, 'Conflict') && err.details.reason === 'UnexpectedTaskState') {
          if (err.details.actual === taskState) return;
          throw guardFailed(err);
        }
        if (isCloudError(err, 'Conflict') && err.details.reason === 'InstanceDeleted') throw guardFailed(err);
        throw err;
      }
    },

    /** Spawned: active/RUNNING/None with launched_at, the build event and action closed, host credited. */
    async finishBuild(
      uuid: string,
      requestId: string,
      host: string,
    ): Promise<{ launchedAt: number; powerState: number }> {
      const current = await nova.getInstance(uuid);
      let instance = current;
      if (current.vmState !== VM_STATES.ACTIVE) {
        instance = await nova.updateInstance(
          uuid,
          {
            vmState: VM_STATES.ACTIVE,
            powerState: POWER_STATES.RUNNING,
            taskState: null,
            launchedAt: clock.now(),
          },
          { expectedTaskState: 'spawning' },
        );
      }
      await nova.recordEvent({ instanceUuid: uuid, requestId, event: BUILD_EVENT, host, result: 'Success' });
      await nova.finishAction({ instanceUuid: uuid, requestId });
      await nova.recordBuildSuccess(host);
      return { launchedAt: instance.launchedAt ?? clock.now(), powerState: instance.powerState };
    },

    /**
     * A build failed on a host. The event is closed with the error; for a reschedule the host gets a failed
     * build (the build-failure weigher's input) and the instance goes back to scheduling with no host, as
     * Nova's _nil_out_instance_obj_host_and_node before casting back to the conductor.
     */
    async hostBuildFailed(
      uuid: string,
      requestId: string,
      host: string,
      error: { type: string; message: string },
      reschedule: boolean,
    ): Promise<void> {
      // Only an open build event is closed and counted: a retry finds it closed and counts nothing twice.
      const action = (await nova.listActions(uuid)).find((a) => a.requestId === requestId);
      const open = action?.events.some(
        (e) => e.event === BUILD_EVENT && e.host === host && e.result === null,
      );
      if (open) {
        await nova.recordEvent({
          instanceUuid: uuid,
          requestId,
          event: BUILD_EVENT,
          host,
          result: 'Error',
          details: `${error.type}: ${error.message}`,
        });
        if (reschedule) await nova.recordBuildFailure(host);
      }
      if (reschedule) await nova.updateInstance(uuid, { taskState: 'scheduling', host: null, node: null });
    },

    /**
     * The end of a failed build: the fault (what `server show` displays), vm_state error with no task and
     * no host (its resources are released), the action closed. Safe to repeat: the same fault is not added
     * twice, and a deleted instance is left as it is.
     */
    async failBuild(uuid: string, requestId: string, fault: FaultRecord): Promise<void> {
      if (!(await recordFault(uuid, fault))) return;
      await nova.updateInstance(uuid, {
        vmState: VM_STATES.ERROR,
        taskState: null,
        powerState: POWER_STATES.NOSTATE,
        host: null,
        node: null,
      });
      await nova.finishAction({ instanceUuid: uuid, requestId, message: 'Error' });
    },

    async getInstanceState(uuid: string): Promise<InstanceSummary> {
      return summaryOf(await nova.getInstance(uuid, { includeDeleted: true }));
    },

    /** The delete's action and task_state=deleting (any task may be interrupted by a delete). */
    async beginDelete(uuid: string, requestId: string, userId: string, projectId: string): Promise<void> {
      await nova.startAction({ instanceUuid: uuid, requestId, action: 'delete', userId, projectId });
      await nova.updateInstance(uuid, { taskState: 'deleting' });
    },

    /**
     * A delete that could not finish (the host's destroy, a volume or the ports failed for good): as Nova's
     * compute manager does, the instance goes to vm_state error with no task and a fault, keeping its host
     * and what it still holds, so that `server show` tells why and a second delete can finish the job
     * (instead of a server left in task_state deleting for ever). Safe to repeat.
     */
    async failDelete(uuid: string, requestId: string, fault: FaultRecord): Promise<void> {
      if (!(await recordFault(uuid, fault))) return;
      await nova.updateInstance(uuid, { vmState: VM_STATES.ERROR, taskState: null });
      await nova.finishAction({ instanceUuid: uuid, requestId, message: 'Error' });
    },

    /** Soft delete (vm_state deleted, quota released in the same transaction) and the action closed. */
    async finishDelete(uuid: string, requestId: string): Promise<void> {
      await nova.softDeleteInstance(uuid);
      await nova.finishAction({ instanceUuid: uuid, requestId });
    },
  });
}

export type ConductorActivities = ReturnType<typeof createConductorActivities>;
