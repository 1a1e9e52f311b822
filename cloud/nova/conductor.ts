/**
 * nova-conductor's writes for a build and a delete: each is one transaction over the instance, its action
 * and events, its faults and the host's build counters, so a crash or a retry never leaves half of one
 * (an instance active whose action is still open, a host credited twice). Every write of the build is
 * guarded by the expected task_state (Nova's Instance.save(expected_task_state=...)) so a concurrent delete
 * wins; each is safe to repeat.
 */
import { isCloudError } from '../errors';
import * as actions from './actions';
import { ComputeServices } from './compute-services';
import { within, type NovaContext } from './db-util';
import * as instances from './instances';
import { POWER_STATES, TASK_STATES, VM_STATES, type TaskState } from './states';

/** The conductor's event for a build on a host (Nova's compute__do_build_and_run_instance). */
export const BUILD_EVENT = 'compute__do_build_and_run_instance';

export interface FaultRecord {
  code: number;
  message: string;
  details?: string;
  host?: string;
}

export interface InstanceStep {
  instanceUuid: string;
  requestId: string;
}

export interface SetHostInput extends InstanceStep {
  host: string;
  nodeUuid: string;
}

export interface SetTaskStateInput {
  instanceUuid: string;
  taskState: TaskState;
  /** The task_state the instance must be in; null: no task. */
  expected: TaskState | null;
}

export interface HostBuildFailedInput extends InstanceStep {
  host: string;
  error: { type: string; message: string };
  /** Nova reschedules: the host gets a failed build and the instance goes back to scheduling. */
  reschedule: boolean;
}

export interface FailInput extends InstanceStep {
  fault: FaultRecord;
}

export interface FailBuildInput extends FailInput {
  /**
   * Fail it even while a delete holds it (task_state deleting): the reconciler's case, whose delete is
   * gone. A build that a delete stopped leaves the instance to that delete instead.
   */
  evenWhileDeleting?: boolean;
}

export interface StaleTaskInput {
  instanceUuid: string;
  /** The task found stale: cleared only if the instance still has it. */
  taskState: string;
  fault: FaultRecord;
}

export interface BeginDeleteInput extends InstanceStep {
  userId: string;
  projectId: string;
}

/**
 * A build's task states in the order the conductor moves through them on one host. A step run again after
 * the build went on (a local activity whose workflow task was lost re-runs with the steps after it already
 * done) finds the instance further along this sequence: that is its own work, not another action's.
 */
const BUILD_SEQUENCE: readonly TaskState[] = [
  TASK_STATES.SCHEDULING,
  TASK_STATES.NETWORKING,
  TASK_STATES.BLOCK_DEVICE_MAPPING,
  TASK_STATES.SPAWNING,
];

/** `actual` is `step` or a state after it in the same build (building, on the same sequence). */
function atOrPast(actual: unknown, step: TaskState): boolean {
  const at = BUILD_SEQUENCE.indexOf(step);
  return at >= 0 && BUILD_SEQUENCE.indexOf(actual as TaskState) >= at;
}

export class Conductor {
  constructor(
    private readonly ctx: NovaContext,
    private readonly serviceDownTimeMs: number,
  ) {}

  private transaction<T>(fn: (ctx: NovaContext, computes: ComputeServices) => Promise<T>): Promise<T> {
    return this.ctx.store.transaction((trx) => {
      const scoped = within(this.ctx, trx);
      return fn(scoped, new ComputeServices(scoped, this.serviceDownTimeMs));
    });
  }

  /** The scheduler's choice saved before the host starts, and the build event opened on it. */
  setHost(input: SetHostInput): Promise<void> {
    return this.transaction(async (ctx) => {
      // A deleted or missing instance goes on to updateInstance, which answers as it always did.
      const current = await instances.getInstance(ctx, input.instanceUuid, { includeDeleted: true });
      const done =
        current.vmState === VM_STATES.BUILDING &&
        current.host === input.host &&
        current.taskState !== TASK_STATES.SCHEDULING &&
        atOrPast(current.taskState, TASK_STATES.NETWORKING);
      if (done) return; // this step ran already and the build went on from it
      await instances.updateInstance(
        ctx,
        input.instanceUuid,
        { host: input.host, node: input.nodeUuid },
        { expectedTaskState: 'scheduling' },
      );
      await actions.recordEvent(ctx, {
        instanceUuid: input.instanceUuid,
        requestId: input.requestId,
        event: BUILD_EVENT,
        host: input.host,
      });
    });
  }

  /**
   * Moves task_state on from `expected`. A retry that finds it already moved on to `taskState`, or further
   * along the build (a re-run of the step, see BUILD_SEQUENCE), has nothing left to do; any other state (a
   * delete took over, the build finished) is a Conflict, Nova's UnexpectedTaskStateError.
   */
  async setTaskState(input: SetTaskStateInput): Promise<void> {
    try {
      await instances.updateInstance(
        this.ctx,
        input.instanceUuid,
        { taskState: input.taskState },
        { expectedTaskState: input.expected },
      );
    } catch (err) {
      const already =
        isCloudError(err, 'Conflict') &&
        err.details.reason === 'UnexpectedTaskState' &&
        (err.details.actual === input.taskState || atOrPast(err.details.actual, input.taskState));
      if (!already) throw err;
    }
  }

  /** Spawned: active/RUNNING/None with launched_at, the build event and action closed, the host credited. */
  finishBuild(input: InstanceStep & { host: string }): Promise<{ launchedAt: number; powerState: number }> {
    return this.transaction(async (ctx, computes) => {
      let instance = await instances.getInstance(ctx, input.instanceUuid);
      if (instance.vmState !== VM_STATES.ACTIVE) {
        instance = await instances.updateInstance(
          ctx,
          input.instanceUuid,
          {
            vmState: VM_STATES.ACTIVE,
            powerState: POWER_STATES.RUNNING,
            taskState: null,
            launchedAt: ctx.clock.now(),
          },
          { expectedTaskState: 'spawning' },
        );
      }
      const step = { instanceUuid: input.instanceUuid, requestId: input.requestId };
      await actions.recordEvent(ctx, { ...step, event: BUILD_EVENT, host: input.host, result: 'Success' });
      await actions.finishAction(ctx, step);
      await computes.recordBuildSuccess(input.host);
      return { launchedAt: instance.launchedAt ?? ctx.clock.now(), powerState: instance.powerState };
    });
  }

  /**
   * A build failed on a host. The event is closed with the error; for a reschedule the host gets a failed
   * build (the build-failure weigher's input) and the instance goes back to scheduling with no host, as
   * Nova's _nil_out_instance_obj_host_and_node before casting back to the conductor.
   */
  hostBuildFailed(input: HostBuildFailedInput): Promise<void> {
    return this.transaction(async (ctx, computes) => {
      const { instanceUuid, requestId, host, error, reschedule } = input;
      // Only an open build event is closed and counted: a retry finds it closed and counts nothing twice.
      const action = (await actions.listActions(ctx, instanceUuid)).find((a) => a.requestId === requestId);
      const open = action?.events.some(
        (e) => e.event === BUILD_EVENT && e.host === host && e.result === null,
      );
      if (open) {
        await actions.recordEvent(ctx, {
          instanceUuid,
          requestId,
          event: BUILD_EVENT,
          host,
          result: 'Error',
          details: `${error.type}: ${error.message}`,
        });
        if (reschedule) await computes.recordBuildFailure(host);
      }
      if (reschedule) {
        await instances.updateInstance(ctx, instanceUuid, {
          taskState: 'scheduling',
          host: null,
          node: null,
        });
      }
    });
  }

  /**
   * The end of a failed build: the fault (what `server show` displays), vm_state error with no task and
   * no host (its resources are released), the action closed. A deleted instance is left as it is, and so
   * is one a delete has taken over (Nova: a delete during the build wins; the server never shows ERROR):
   * only the create action is closed.
   */
  failBuild(input: FailBuildInput): Promise<void> {
    return this.transaction(async (ctx) => {
      const current = await instances.getInstance(ctx, input.instanceUuid, { includeDeleted: true });
      if (!current.deleted && current.taskState === 'deleting' && !input.evenWhileDeleting) {
        await actions.finishAction(ctx, {
          instanceUuid: input.instanceUuid,
          requestId: input.requestId,
          message: 'Error',
        });
        return;
      }
      if (!(await recordFault(ctx, input.instanceUuid, input.fault))) return;
      await instances.updateInstance(ctx, input.instanceUuid, {
        vmState: VM_STATES.ERROR,
        taskState: null,
        powerState: POWER_STATES.NOSTATE,
        host: null,
        node: null,
      });
      await actions.finishAction(ctx, {
        instanceUuid: input.instanceUuid,
        requestId: input.requestId,
        message: 'Error',
      });
    });
  }

  /** The delete's action and task_state=deleting (any task may be interrupted by a delete). */
  beginDelete(input: BeginDeleteInput): Promise<void> {
    return this.transaction(async (ctx) => {
      await actions.startAction(ctx, { ...input, action: 'delete' });
      await instances.updateInstance(ctx, input.instanceUuid, { taskState: 'deleting' });
    });
  }

  /**
   * A delete that could not finish (the host's destroy, a volume or the ports failed for good): as Nova's
   * compute manager does, the instance goes to vm_state error with no task and a fault, keeping its host
   * and what it still holds, so that `server show` tells why and a second delete can finish the job.
   */
  failDelete(input: FailInput): Promise<void> {
    return this.transaction(async (ctx) => {
      if (!(await recordFault(ctx, input.instanceUuid, input.fault))) return;
      await instances.updateInstance(ctx, input.instanceUuid, { vmState: VM_STATES.ERROR, taskState: null });
      await actions.finishAction(ctx, {
        instanceUuid: input.instanceUuid,
        requestId: input.requestId,
        message: 'Error',
      });
    });
  }

  /**
   * The periodic tasks' view (Nova's _check_instance_build_time and its stuck-task clean-ups): instances
   * still building or with a task in progress that nothing has touched for `olderThanMs`.
   */
  async staleTasks(olderThanMs: number): Promise<instances.Instance[]> {
    const before = this.ctx.clock.now() - olderThanMs;
    const rows = await this.ctx.store.db
      .selectFrom('instances')
      .selectAll()
      .where('deleted', '=', 0)
      .where((eb) => eb.or([eb('vm_state', '=', VM_STATES.BUILDING), eb('task_state', 'is not', null)]))
      .where('updated_at', '<=', before)
      .orderBy('updated_at')
      .orderBy('uuid')
      .execute();
    return rows.map(instances.instanceFromRow);
  }

  /**
   * A task whose workflow is gone (terminated, reset away) and not a build: the fault says so and the task
   * is cleared, guarded by the task it had (one that moved on meanwhile is left alone). An interrupted
   * delete leaves the instance in error, as a failed one does, so that a second delete finishes it.
   */
  clearStaleTask(input: StaleTaskInput): Promise<void> {
    return this.transaction(async (ctx) => {
      const instance = await instances.getInstance(ctx, input.instanceUuid, { includeDeleted: true });
      const stale = instance.taskState;
      if (instance.deleted || stale === null || stale !== input.taskState) return;
      if (!(await recordFault(ctx, input.instanceUuid, input.fault))) return;
      await instances.updateInstance(
        ctx,
        input.instanceUuid,
        { taskState: null, ...(stale === 'deleting' ? { vmState: VM_STATES.ERROR } : {}) },
        { expectedTaskState: stale },
      );
      // The task's action (whichever request opened it) ends in error with it.
      for (const action of await actions.listActions(ctx, input.instanceUuid)) {
        if (action.finishTime !== null) continue;
        await actions.finishAction(ctx, {
          instanceUuid: input.instanceUuid,
          requestId: action.requestId,
          message: 'Error',
        });
      }
    });
  }

  /** Soft delete (vm_state deleted, quota released) and the action closed. */
  finishDelete(input: InstanceStep): Promise<void> {
    return this.transaction(async (ctx) => {
      await instances.softDeleteInstance(ctx, input.instanceUuid);
      await actions.finishAction(ctx, input);
    });
  }
}

/**
 * Adds the fault unless the instance is already in error with that same fault (a repeated call).
 * False when the instance is deleted: there is nothing left to mark.
 */
async function recordFault(ctx: NovaContext, instanceUuid: string, fault: FaultRecord): Promise<boolean> {
  const instance = await instances.getInstance(ctx, instanceUuid, { includeDeleted: true });
  if (instance.deleted) return false;
  const [latest] = await actions.listFaults(ctx, instanceUuid);
  if (!(instance.vmState === VM_STATES.ERROR && latest?.message === fault.message)) {
    await actions.addFault(ctx, instanceUuid, {
      code: fault.code,
      message: fault.message,
      ...(fault.details ? { details: fault.details } : {}),
      ...(fault.host ? { host: fault.host } : {}),
    });
  }
  return true;
}
