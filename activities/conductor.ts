/**
 * nova-conductor on the controller: the only writer of the Nova database. Compute hosts never write it; the
 * workflow hands their results here, as nova-compute does through the conductor. The writes themselves
 * (one transaction each, guarded by the expected task_state) are cloud/nova/conductor.ts's.
 */
import { ApplicationFailure } from '@temporalio/common';
import { isCloudError } from '../cloud/errors';
import type {
  AdvanceOperationInput,
  BeginDeleteInput,
  FailBuildInput,
  FailInput,
  HostBuildFailedInput,
  FailOperationInput,
  FinishOperationInput,
  InstanceStep,
  Nova,
  OperationName,
  SetHostInput,
  SetTaskStateInput,
} from '../cloud/nova';
import type { BootPlan, InstanceSummary } from '../workflows/types';
import { adaptAll } from './failures';

export interface InstanceRecordInput {
  uuid: string;
  requestId: string;
  plan: BootPlan;
  networkIds: string[];
  keyName?: string;
  metadata?: Record<string, string>;
  userData?: string;
  tags?: string[];
  accessIPv4?: string;
  accessIPv6?: string;
}

/** What the workflows see of an instance. */
export function summaryOf(instance: Awaited<ReturnType<Nova['getInstance']>>): InstanceSummary {
  return {
    uuid: instance.uuid,
    requestId: instance.requestId,
    projectId: instance.projectId,
    host: instance.host,
    vmState: instance.vmState,
    taskState: instance.taskState,
    powerState: instance.powerState,
    launchedAt: instance.launchedAt,
    deleted: instance.deleted,
  };
}

/**
 * The instance moved under the build (deleted, or another task took it): Nova's UnexpectedTaskStateError,
 * which no retry fixes.
 */
async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!isCloudError(err, 'Conflict')) throw err;
    const reason = err.details.reason;
    if (reason !== 'UnexpectedTaskState' && reason !== 'InstanceDeleted') throw err;
    throw ApplicationFailure.create({
      type: 'Conflict',
      message: err.message,
      nonRetryable: true,
      details: [{ code: err.code, ...err.details }],
    });
  }
}

export function createConductorActivities(nova: Nova) {
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
        ...(input.userData !== undefined ? { userData: input.userData } : {}),
        ...(input.accessIPv4 !== undefined ? { accessIPv4: input.accessIPv4 } : {}),
        ...(input.accessIPv6 !== undefined ? { accessIPv6: input.accessIPv6 } : {}),
        ...(input.tags ? { tags: input.tags } : {}),
      });
      return summaryOf(instance);
    },
    async setHost(input: SetHostInput): Promise<void> {
      await nova.conductor.setHost(input);
    },
    async setTaskState(input: SetTaskStateInput): Promise<void> {
      await guarded(() => nova.conductor.setTaskState(input));
    },
    async finishBuild(
      input: InstanceStep & { host: string },
    ): Promise<{ launchedAt: number; powerState: number }> {
      // A delete that took the instance over (task_state deleting) wins: no retry makes it spawning again.
      return guarded(() => nova.conductor.finishBuild(input));
    },
    async hostBuildFailed(input: HostBuildFailedInput): Promise<void> {
      await nova.conductor.hostBuildFailed(input);
    },
    async failBuild(input: FailBuildInput): Promise<void> {
      await nova.conductor.failBuild(input);
    },
    async getInstanceState(input: { instanceUuid: string }): Promise<InstanceSummary> {
      return summaryOf(await nova.getInstance(input.instanceUuid, { includeDeleted: true }));
    },
    async beginDelete(input: BeginDeleteInput): Promise<void> {
      await nova.conductor.beginDelete(input);
    },
    async failDelete(input: FailInput): Promise<void> {
      await nova.conductor.failDelete(input);
    },
    async finishDelete(input: InstanceStep): Promise<void> {
      await nova.conductor.finishDelete(input);
    },
    /** A day-two operation's host step begins (its event opened), if a delete has not taken over. */
    async startOperationEvent(
      input: InstanceStep & { operation: OperationName; host: string },
    ): Promise<InstanceSummary> {
      return summaryOf(await guarded(() => nova.startOperationEvent(input)));
    },
    /** Its next task_state on the host (a rebuild's rebuild_block_device_mapping, rebuild_spawning), guarded. */
    async advanceOperation(input: AdvanceOperationInput): Promise<InstanceSummary> {
      return summaryOf(await guarded(() => nova.advanceOperation(input)));
    },
    /** Its end: new vm_state and power_state, task_state None, event and action closed (guarded). */
    async finishOperation(input: FinishOperationInput): Promise<InstanceSummary> {
      return summaryOf(await guarded(() => nova.finishOperation(input)));
    },
    /** Its failure: task_state reverted and the fault kept (unless a delete took over), event Error. */
    async failOperation(
      input: FailOperationInput,
    ): Promise<{ superseded: boolean; instance: InstanceSummary }> {
      const { superseded, instance } = await nova.failOperation(input);
      return { superseded, instance: summaryOf(instance) };
    },
  });
}

export type ConductorActivities = ReturnType<typeof createConductorActivities>;
