/**
 * Time per step, read from workflow histories (the server's own timestamps): for every activity, the wait
 * on its task queue (scheduled → started) and its run (started → closed), for a local activity its
 * marker's times; and the workflow tasks between them, which is where the worker's own turn-around shows.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ratio, rounded, summarize, type Summary } from './stats';

type History = temporal.api.history.v1.IHistory;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const EventType = temporal.api.enums.v1.EventType;

export interface StepTimes {
  /** The Web UI summary; a local activity's ends with " (local)". */
  step: string;
  /** Executions of this step per boot. */
  perBoot: number;
  /** scheduled → closed, ms */
  total: Summary;
  /** scheduled → started: waiting on the task queue (dispatch), ms */
  queue: Summary;
  /** started → closed: the activity itself, ms */
  run: Summary;
}

export interface HistoryAnalysis {
  workflows: number;
  /** Started → closed, from the server's timestamps. */
  duration: Summary;
  steps: StepTimes[];
  /** scheduled → completed of each workflow task. */
  workflowTask: Summary;
  workflowTasksPerBoot: number;
  eventsPerBoot: number;
}

function ms(event: HistoryEvent): number {
  const t = event.eventTime;
  if (!t) return Number.NaN;
  return Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** The Web UI summary of the step ("neutron: bind ports to compute2"), with hosts and ids generalized. */
function stepName(event: HistoryEvent): string {
  const fallback = event.activityTaskScheduledEventAttributes?.activityType?.name ?? 'local activity';
  const payload = event.userMetadata?.summary;
  if (!payload) return fallback;
  try {
    const summary = defaultPayloadConverter.fromPayload<string>(payload);
    return typeof summary === 'string'
      ? summary.replace(UUID, '<uuid>').replace(/compute\d+/g, '<host>')
      : fallback;
  } catch {
    return fallback;
  }
}

/**
 * A local activity's marker: when the worker first scheduled it (the SDK core's record, plain JSON, never
 * through a codec; its `complete_time` is workflow time, not when it finished) and when the history got it
 * (the end of its workflow task, so the later local steps of that task are included). Same machine, same
 * clock as the server here.
 */
function localActivity(event: HistoryEvent): { scheduled: number; closed: number } | undefined {
  const marker = event.markerRecordedEventAttributes;
  if (marker?.markerName !== 'core_local_activity') return undefined;
  const data = marker.details?.data?.payloads?.[0]?.data;
  if (!data) return undefined;
  const record = JSON.parse(Buffer.from(data).toString('utf8')) as {
    original_schedule_time: { seconds: number; nanos: number } | null;
  };
  const t = record.original_schedule_time;
  return { scheduled: t ? t.seconds * 1000 + t.nanos / 1e6 : Number.NaN, closed: ms(event) };
}

interface Acc {
  count: number;
  total: number[];
  queue: number[];
  run: number[];
}

/** The step times of many histories of the same workflow type; closed steps only. */
export function analyzeHistories(histories: readonly History[]): HistoryAnalysis {
  const steps = new Map<string, Acc>();
  const durations: number[] = [];
  const workflowTasks: number[] = [];
  let events = 0;
  for (const history of histories) {
    const list = history.events ?? [];
    events += list.length;
    const byId = new Map<number, HistoryEvent>();
    for (const e of list) byId.set(Number(e.eventId), e);
    const first = list[0];
    const last = list.at(-1);
    if (first && last) durations.push(ms(last) - ms(first));
    for (const e of list) {
      if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) {
        const scheduled = byId.get(Number(e.workflowTaskCompletedEventAttributes?.scheduledEventId));
        if (scheduled) workflowTasks.push(ms(e) - ms(scheduled));
      }
      const local = localActivity(e);
      if (local) {
        // Run in the workflow's own worker: no task queue, so no queue wait; scheduled → recorded.
        const name = `${stepName(e)} (local)`;
        const acc = steps.get(name) ?? { count: 0, total: [], queue: [], run: [] };
        acc.count++;
        acc.total.push(local.closed - local.scheduled);
        acc.queue.push(0);
        acc.run.push(local.closed - local.scheduled);
        steps.set(name, acc);
        continue;
      }
      const closed =
        e.activityTaskCompletedEventAttributes ??
        e.activityTaskFailedEventAttributes ??
        e.activityTaskTimedOutEventAttributes ??
        e.activityTaskCanceledEventAttributes;
      if (!closed || !('startedEventId' in closed)) continue;
      const scheduled = byId.get(Number(closed.scheduledEventId));
      const started = byId.get(Number(closed.startedEventId));
      if (!scheduled) continue;
      const name = stepName(scheduled);
      const acc = steps.get(name) ?? { count: 0, total: [], queue: [], run: [] };
      acc.count++;
      acc.total.push(ms(e) - ms(scheduled));
      if (started) {
        acc.queue.push(ms(started) - ms(scheduled));
        acc.run.push(ms(e) - ms(started));
      }
      steps.set(name, acc);
    }
  }
  const n = Math.max(1, histories.length);
  return {
    workflows: histories.length,
    duration: rounded(summarize(durations), 1),
    steps: [...steps.entries()].map(([step, acc]) => ({
      step,
      perBoot: ratio(acc.count, n),
      total: rounded(summarize(acc.total), 1),
      queue: rounded(summarize(acc.queue), 1),
      run: rounded(summarize(acc.run), 1),
    })),
    workflowTask: rounded(summarize(workflowTasks), 1),
    workflowTasksPerBoot: ratio(workflowTasks.length, n, 1),
    eventsPerBoot: Math.round(events / n),
  };
}

/** ms from the last failed attempt of `activityType` to the workflow's close (failed/completed). */
export function failureToClose(history: History, activityType: string): number | null {
  const list = history.events ?? [];
  const byId = new Map<number, HistoryEvent>();
  for (const e of list) byId.set(Number(e.eventId), e);
  let failedAt: number | null = null;
  for (const e of list) {
    const attrs = e.activityTaskFailedEventAttributes;
    if (!attrs) continue;
    const scheduled = byId.get(Number(attrs.scheduledEventId));
    if (scheduled?.activityTaskScheduledEventAttributes?.activityType?.name === activityType)
      failedAt = ms(e);
  }
  const last = list.at(-1);
  return failedAt === null || !last ? null : ms(last) - failedAt;
}
