/**
 * The Temporal Schedule that runs the reconciler (workflows/reconciler.ts) every minute, as Nova runs its
 * periodic tasks: registered by every controller worker at start, idempotently (an existing schedule is
 * left as it is, so several controllers share one), and visible in the Web UI under Schedules. Overlap
 * SKIP: a slow run is never doubled.
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { CONTROLLER_QUEUE } from '../workflows/names';
import { DEFAULT_RECONCILE_GRACE_MS, type ReconcileInput } from '../workflows/reconciler';

export const RECONCILER_SCHEDULE_ID = 'bootflow-reconciler';
export const RECONCILER_WORKFLOW_ID = 'reconcile-instances';
export const RECONCILER_INTERVAL = '1 minute';

/** Creates the schedule unless it exists; 'created' or 'exists'. */
export async function ensureReconcilerSchedule(
  client: Client,
  input: ReconcileInput = { graceMs: DEFAULT_RECONCILE_GRACE_MS },
): Promise<'created' | 'exists'> {
  try {
    await client.schedule.create({
      scheduleId: RECONCILER_SCHEDULE_ID,
      spec: { intervals: [{ every: RECONCILER_INTERVAL }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'reconcileInstances',
        workflowId: RECONCILER_WORKFLOW_ID,
        taskQueue: CONTROLLER_QUEUE,
        args: [input],
        workflowExecutionTimeout: '5 minutes',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      memo: { purpose: "Nova's periodic build-time check and orphan clean-up" },
    });
    return 'created';
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) return 'exists';
    throw err;
  }
}
