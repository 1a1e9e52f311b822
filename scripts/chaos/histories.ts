/**
 * What each boot's workflow history says about the chaos it lived through: the compensations it ran (undo
 * activities scheduled), the attempts that failed on a host, and the compute activities that timed out on
 * the lost host (its work that had to go elsewhere). Read from the history's plain metadata (activity
 * types, task queues, timeout kinds); no payload is decoded.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const EventType = temporal.api.enums.v1.EventType;
const TimeoutType = temporal.api.enums.v1.TimeoutType;

/** The undo activities of the boot's sagas (workflows/create-instance.ts, build-on-host.ts). */
const UNDO_ACTIVITIES = new Set([
  'releaseAllocation',
  'releaseQuota',
  'deleteInstancePorts',
  'unplugVifs',
  'detachVolume',
  'disconnectVolume',
  'destroyInstance',
  'deleteVolume',
]);

export interface BootHistory {
  events: number;
  compensations: number;
  /** Attempts that failed on a host (hostBuildFailed). */
  failedAttempts: number;
  /** Compute activities on each host's queue that timed out, by timeout kind. */
  timeouts: Array<{ host: string; activity: string; kind: string }>;
  /** Hosts whose compute queue got work. */
  hostsWorkedOn: string[];
}

export async function readBootHistory(
  client: Client,
  workflowId: string,
  runId?: string,
): Promise<BootHistory> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const scheduled = new Map<string, { type: string; queue: string }>();
  const out: BootHistory = {
    events: 0,
    compensations: 0,
    failedAttempts: 0,
    timeouts: [],
    hostsWorkedOn: [],
  };
  const hosts = new Set<string>();
  for (const event of history.events ?? []) {
    out.events += 1;
    const attrs = event.activityTaskScheduledEventAttributes;
    if (attrs) {
      const type = attrs.activityType?.name ?? '?';
      const queue = attrs.taskQueue?.name ?? '';
      scheduled.set(String(event.eventId), { type, queue });
      if (UNDO_ACTIVITIES.has(type)) out.compensations += 1;
      if (type === 'hostBuildFailed') out.failedAttempts += 1;
      if (queue.startsWith('compute@')) hosts.add(queue.slice('compute@'.length));
    }
    if (event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT) {
      const timedOut = event.activityTaskTimedOutEventAttributes;
      const source = scheduled.get(String(timedOut?.scheduledEventId));
      if (source?.queue.startsWith('compute@')) {
        const kind =
          timedOut?.failure?.timeoutFailureInfo?.timeoutType ?? TimeoutType.TIMEOUT_TYPE_UNSPECIFIED;
        out.timeouts.push({
          host: source.queue.slice('compute@'.length),
          activity: source.type,
          kind: TimeoutType[kind]?.replace('TIMEOUT_TYPE_', '') ?? String(kind),
        });
      }
    }
  }
  out.hostsWorkedOn = [...hosts].sort();
  return out;
}
