/**
 * compute-service-<host>: the conversation between one nova-compute and nova-conductor. The compute worker
 * starts it with signalWithStart (`register`, with the host's capabilities) and then signals `heartbeat`
 * every few seconds; the workflow runs the registration and the state reports on the controller, so the
 * compute node never touches a controller database. Reports that pile up while the controller is away are
 * merged into one (the newest), and the history is rolled over with continue-as-new.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ComputeServiceActivities } from '../activities/compute-service';
import type { HostSpec } from '../cloud/hosts';
import { CONTROLLER_QUEUE } from './names';

export function computeServiceWorkflowId(host: string): string {
  return `compute-service-${host}`;
}

export interface HeartbeatReport {
  /** When the compute host sent it (its clock, epoch ms). */
  sentAt: number;
  /** The host's MAC over it (cloud/nova/service-credentials.ts), checked by the controller's activity. */
  mac?: string;
}

export interface ComputeServiceInput {
  spec: HostSpec;
  /** Carried over continue-as-new. */
  registered?: boolean;
  nodeUuid?: string | null;
  pendingReport?: number | null;
  /** The MAC of pendingReport, carried over with it. */
  pendingMac?: string | null;
  reports?: number;
  /** Reports per run before continue-as-new (default REPORTS_PER_RUN; tests use a few). */
  reportsPerRun?: number;
}

export interface ComputeServiceState {
  host: string;
  registered: boolean;
  nodeUuid: string | null;
  /** Reports handled by this run. */
  reports: number;
  /** Reports over the service's whole life (all runs). */
  totalReports: number;
  lastReportSentAt: number | null;
  up: boolean | null;
  lastError: string | null;
}

/** A registration as a compute worker sends it: its spec and its MAC (cloud/nova/service-credentials.ts). */
export interface SignedHostSpec extends HostSpec {
  proof?: { sentAt: number; mac: string };
}

export const registerSignal = defineSignal<[SignedHostSpec]>('register');
export const heartbeatSignal = defineSignal<[HeartbeatReport]>('heartbeat');
export const computeServiceStateQuery = defineQuery<ComputeServiceState>('state');

/** Heartbeats every 10 s: roll the history over after ~50 minutes of them. */
export const REPORTS_PER_RUN = 300;

const conductor = proxyActivities<Pick<ComputeServiceActivities, 'registerComputeService'>>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '20 seconds',
  // The registration waits for the controller however long it is away; bad input fails at once.
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});
const reporter = proxyActivities<Pick<ComputeServiceActivities, 'reportComputeServiceState'>>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '10 seconds',
  // The next heartbeat is due in seconds: no point retrying this one for long.
  retry: { initialInterval: '500 ms', maximumAttempts: 2 },
});

function messageOf(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

export async function computeService(input: ComputeServiceInput): Promise<void> {
  let spec = input.spec;
  let needsRegistration = input.registered !== true;
  let pendingReport: number | null = input.pendingReport ?? null;
  // The newest report's MAC goes with it: the controller checks it (older histories have none).
  let pendingMac: string | null = input.pendingMac ?? null;
  const state: ComputeServiceState = {
    host: spec.host,
    registered: input.registered === true,
    nodeUuid: input.nodeUuid ?? null,
    reports: 0,
    totalReports: input.reports ?? 0,
    lastReportSentAt: null,
    up: null,
    lastError: null,
  };
  setHandler(registerSignal, (next) => {
    spec = next;
    needsRegistration = true;
  });
  setHandler(heartbeatSignal, ({ sentAt, mac }) => {
    if (sentAt >= (pendingReport ?? 0)) pendingMac = mac ?? null;
    pendingReport = Math.max(pendingReport ?? 0, sentAt);
  });
  setHandler(computeServiceStateQuery, () => ({ ...state }));

  for (;;) {
    const rollOver = () =>
      state.reports >= (input.reportsPerRun ?? REPORTS_PER_RUN) || workflowInfo().continueAsNewSuggested;
    await condition(() => needsRegistration || pendingReport !== null || rollOver());
    if (needsRegistration) {
      needsRegistration = false;
      try {
        const node = await conductor.registerComputeService(spec);
        state.registered = true;
        state.nodeUuid = node.nodeUuid;
        state.up = true;
        state.lastError = null;
        log.info('compute service registered', { host: spec.host, nodeUuid: node.nodeUuid });
      } catch (err) {
        state.lastError = `registration failed: ${messageOf(err)}`;
        log.warn('compute service registration failed', { host: spec.host, error: state.lastError });
      }
      continue;
    }
    if (pendingReport !== null) {
      const sentAt = pendingReport;
      const mac = pendingMac;
      pendingReport = null;
      pendingMac = null;
      try {
        const report = await reporter.reportComputeServiceState({
          host: spec.host,
          sentAt,
          ...(mac !== null ? { mac } : {}),
        });
        state.up = report.up;
        state.lastError = null;
      } catch (err) {
        state.lastError = `state report failed: ${messageOf(err)}`;
      }
      state.reports += 1;
      state.totalReports += 1;
      state.lastReportSentAt = sentAt;
    }
    if (rollOver()) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof computeService>({
        spec,
        registered: state.registered && !needsRegistration,
        nodeUuid: state.nodeUuid,
        pendingReport,
        ...(pendingMac !== null ? { pendingMac } : {}),
        reports: state.totalReports,
        ...(input.reportsPerRun !== undefined ? { reportsPerRun: input.reportsPerRun } : {}),
      });
    }
  }
}
