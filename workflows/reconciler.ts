/**
 * reconcileInstances: Nova's periodic tasks for work whose worker is gone (_check_instance_build_time, and
 * the clean-up of tasks a restarted service finds interrupted), run by a Temporal Schedule
 * (lib/reconciler-schedule.ts) every minute. An instance is an orphan when it is still building or has a
 * task, nothing touched it for `graceMs`, and no workflow works on it any more (its boot or delete was
 * terminated, reset away or failed without finishing). Then:
 *   building      everything it holds is released as a failed build's saga would (releaseInstance), and
 *                 it goes to ERROR with a fault saying why;
 *   another task  the task is cleared with a fault (an interrupted delete leaves it in ERROR, so a second
 *                 delete finishes it).
 * One orphan that cannot be finished (its host failing) does not stop the others: it is reported and
 * tried again at the next run.
 */
import { classify } from './failures';
import { bootWorkflowId } from './names';
import { call, controllerCleanup, controllerPeriodic } from './proxies';
import { releaseInstance } from './release-instance';
import type { InstanceSummary } from './types';

/** How long an instance's task must sit untouched before the reconciler looks at its workflow. */
export const DEFAULT_RECONCILE_GRACE_MS = 60_000;

export interface ReconcileInput {
  graceMs?: number;
}

export interface ReconcileResult {
  /** Builds set to ERROR with everything released. */
  failedBuilds: string[];
  /** Other tasks cleared. */
  clearedTasks: string[];
  /** Orphans that could not be finished this time (retried at the next run). */
  unfinished: Array<{ instanceUuid: string; error: string }>;
}

async function finishOrphanedBuild(instance: InstanceSummary): Promise<void> {
  const workflowId = bootWorkflowId(instance.requestId);
  await releaseInstance({
    uuid: instance.uuid,
    hosts: instance.host ? [instance.host] : [],
    deleteBootVolume: true,
  });
  await call(controllerCleanup.failBuild, 'nova-conductor: instance fault, vm_state=error', {
    instanceUuid: instance.uuid,
    requestId: instance.requestId,
    fault: {
      code: 500,
      message: `Build of instance ${instance.uuid} aborted: its workflow ${workflowId} is no longer running (terminated or reset); set to error state`,
      details: 'BuildAbortedException',
      ...(instance.host ? { host: instance.host } : {}),
    },
    // A delete that took it over is gone too: ERROR, so that a second delete finishes it.
    evenWhileDeleting: true,
  });
}

async function clearStaleTask(instance: InstanceSummary): Promise<void> {
  const taskState = instance.taskState as string;
  await call(controllerCleanup.clearStaleTask, `nova-conductor: clear stale task_state=${taskState}`, {
    instanceUuid: instance.uuid,
    taskState,
    fault: {
      code: 500,
      message: `Task ${taskState} of instance ${instance.uuid} was interrupted: no workflow is running it any more`,
      details: 'UnexpectedTaskStateError',
      ...(instance.host ? { host: instance.host } : {}),
    },
  });
}

export async function reconcileInstances(input: ReconcileInput = {}): Promise<ReconcileResult> {
  const graceMs = input.graceMs ?? DEFAULT_RECONCILE_GRACE_MS;
  const orphans = await call(
    controllerPeriodic.findOrphanedInstances,
    'nova: instances whose workflow is gone',
    { graceMs },
  );
  const result: ReconcileResult = { failedBuilds: [], clearedTasks: [], unfinished: [] };
  for (const instance of orphans) {
    try {
      if (instance.vmState === 'building') {
        await finishOrphanedBuild(instance);
        result.failedBuilds.push(instance.uuid);
      } else {
        await clearStaleTask(instance);
        result.clearedTasks.push(instance.uuid);
      }
    } catch (err) {
      const failure = classify(err, instance.host ?? undefined);
      result.unfinished.push({
        instanceUuid: instance.uuid,
        error: `${failure.type}: ${failure.message}`,
      });
    }
  }
  return result;
}
