/**
 * The reconciler's activities (Nova's periodic _check_instance_build_time and stuck-task clean-ups): find
 * instances whose task has no live workflow behind it any more, and clear a stale task. Which workflow
 * works on an instance is Temporal's to say, so `findOrphanedInstances` asks it (through the worker's
 * client): a boot is `boot-<requestId>`, a delete `delete-<uuid>`, and any other workflow that tags itself
 * with the InstanceId search attribute (power actions, ...) counts while it runs.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Nova } from '../cloud/nova';
import type { StaleTaskInput } from '../cloud/nova';
import { bootWorkflowId, deleteWorkflowId } from '../workflows/names';
import type { InstanceSummary } from '../workflows/types';
import { summaryOf } from './conductor';
import { adaptAll } from './failures';

export interface FindOrphansInput {
  /** Only instances untouched this long: a workflow between two steps is not an orphan. */
  graceMs: number;
}

async function running(client: Client, workflowId: string): Promise<boolean> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/** Whether any workflow is working on the instance right now. */
async function hasLiveWorkflow(client: Client, instance: InstanceSummary): Promise<boolean> {
  if (await running(client, bootWorkflowId(instance.requestId))) return true;
  if (await running(client, deleteWorkflowId(instance.uuid))) return true;
  const { count } = await client.workflow.count(
    `InstanceId = '${instance.uuid}' AND ExecutionStatus = 'Running'`,
  );
  return count > 0;
}

export function createReconcilerActivities(nova: Nova) {
  return adaptAll({
    async findOrphanedInstances(input: FindOrphansInput): Promise<InstanceSummary[]> {
      const { client } = Context.current();
      const orphans: InstanceSummary[] = [];
      for (const instance of await nova.conductor.staleTasks(input.graceMs)) {
        const summary = summaryOf(instance);
        if (!(await hasLiveWorkflow(client, summary))) orphans.push(summary);
      }
      return orphans;
    },
    /** Whether the boot workflow of a request still runs (a delete waits for a stopped build to end). */
    async buildRunning(input: { requestId: string }): Promise<boolean> {
      return running(Context.current().client, bootWorkflowId(input.requestId));
    },
    async clearStaleTask(input: StaleTaskInput): Promise<void> {
      await nova.conductor.clearStaleTask(input);
    },
  });
}

export type ReconcilerActivities = ReturnType<typeof createReconcilerActivities>;
