/**
 * compute-service-<host>: the conversation between one nova-compute and nova-conductor. The compute worker
 * starts it with signalWithStart (`register`, with the host's capabilities) and then signals `heartbeat`
 * every few seconds; the workflow runs the registration and the state reports on the controller, so the
 * compute node never touches a controller database. Reports that pile up while the controller is away are
 * merged into one (the newest), and the history is rolled over with continue-as-new.
 *
 * It also runs the host's periodic power-state sync (Nova's `_sync_power_states`, a periodic task of
 * nova-compute): every `powerSyncIntervalMs` it reads the driver's power states on `compute@<host>`
 * (readPowerStates) and has the controller apply them (syncPowerStates: power_state recorded, an ACTIVE
 * instance found shut down set STOPPED, instances with a task_state skipped). The sync runs beside the
 * heartbeats, in a loop of its own, so neither waits for the other; a host that does not answer within
 * `POWER_SYNC_PICKUP` skips that round. Added after histories of this workflow existed: gated by
 * patched(POWER_SYNC_PATCH).
 *
 * Each round then runs the DHCP agent's sync (Neutron's DHCP agent resyncs with neutron-server): the host
 * names the networks it serves (readDhcpNetworks), neutron-server answers which of them still have a DHCP
 * subnet (dhcpNetworks, on the network queue), and the host stops serving the others (syncDhcpNetworks):
 * a deleted network's namespace and dnsmasq go within a round. A host serving nothing (the fake agent)
 * costs one read. Gated by patched(DHCP_SYNC_PATCH), evaluated once per run.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  log,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { ComputeActivities } from '../activities/compute-host';
import type { ComputeServiceActivities } from '../activities/compute-service';
import type { NetworkActivities } from '../activities/network';
import type { HostSpec } from '../cloud/hosts';
import { computeQueue, CONTROLLER_QUEUE, NETWORK_QUEUE } from './names';

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
  /** How often the power states are synced (default POWER_SYNC_INTERVAL_MS; 0 turns the sync off). */
  powerSyncIntervalMs?: number;
  /** Carried over continue-as-new. */
  powerSyncs?: number;
}

export interface PowerSyncSummary {
  /** Workflow time of the sync (epoch ms). */
  at: number;
  checked: number;
  updated: string[];
  stopped: string[];
  skipped: string[];
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
  /** Power-state syncs over the service's whole life (all runs). */
  powerSyncs: number;
  lastPowerSync: PowerSyncSummary | null;
  lastPowerSyncError: string | null;
  /** The last DHCP agent sync of this run: networks served and removed on the host. */
  lastDhcpSync: { served: string[]; removed: string[] } | null;
  lastDhcpSyncError: string | null;
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

export const POWER_SYNC_PATCH = 'power-state-sync';
export const DHCP_SYNC_PATCH = 'dhcp-network-sync';
/**
 * Nova's sync_power_state_interval is 600 s; guests here live minutes (tests, demos), so a minute. About 15
 * history events per sync: some 750 per run of REPORTS_PER_RUN heartbeats.
 */
export const POWER_SYNC_INTERVAL_MS = 60_000;
/** A host whose worker does not pick the read up in this long is down: the round is skipped. */
const POWER_SYNC_PICKUP = '30 seconds';

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

/**
 * The syncs' steps off the host (controller, neutron-server): the next round is a minute away and reads the
 * host afresh, so a second quick try is enough.
 */
const NEXT_ROUND_RETRY = { initialInterval: '1 second', maximumAttempts: 2 } as const;

const powerSyncApply = proxyActivities<Pick<ComputeServiceActivities, 'syncPowerStates'>>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: NEXT_ROUND_RETRY,
});

/** neutron-server's answer to the DHCP agent. */
const dhcpNetworksOf = proxyActivities<Pick<NetworkActivities, 'dhcpNetworks'>>({
  taskQueue: NETWORK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: NEXT_ROUND_RETRY,
});

/** The host's reads and the DHCP sync: one attempt, the next round is its retry (the state may change meanwhile). */
function hostRead(host: string) {
  return proxyActivities<
    Pick<ComputeActivities, 'readPowerStates' | 'readDhcpNetworks' | 'syncDhcpNetworks'>
  >({
    taskQueue: computeQueue(host),
    scheduleToStartTimeout: POWER_SYNC_PICKUP,
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 1 },
  });
}

function messageOf(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** One round of the DHCP agent's sync (see the top of this file); a failure waits for the next round. */
async function syncDhcp(host: string, state: ComputeServiceState): Promise<void> {
  try {
    const served = await hostRead(host).readDhcpNetworks();
    if (served.length === 0) return;
    const networks = await dhcpNetworksOf.dhcpNetworks({ networkIds: served });
    state.lastDhcpSync = await hostRead(host).syncDhcpNetworks(networks);
    state.lastDhcpSyncError = null;
    if (state.lastDhcpSync.removed.length > 0)
      log.info('DHCP networks removed', { host, removed: state.lastDhcpSync.removed });
  } catch (err) {
    state.lastDhcpSyncError = messageOf(err);
    log.warn('DHCP sync skipped', { host, error: state.lastDhcpSyncError });
  }
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
    powerSyncs: input.powerSyncs ?? 0,
    lastPowerSync: null,
    lastPowerSyncError: null,
    lastDhcpSync: null,
    lastDhcpSyncError: null,
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

  const powerSyncIntervalMs = input.powerSyncIntervalMs ?? POWER_SYNC_INTERVAL_MS;
  if (patched(POWER_SYNC_PATCH) && powerSyncIntervalMs > 0) {
    const dhcpSync = patched(DHCP_SYNC_PATCH);
    // Its own loop: a sync never delays a heartbeat. continue-as-new ends it with the run (a round cut
    // short changes nothing: the next run reads the host afresh).
    void (async () => {
      for (;;) {
        await sleep(powerSyncIntervalMs);
        if (!state.registered) continue;
        try {
          const domains = await hostRead(spec.host).readPowerStates();
          const applied = await powerSyncApply.syncPowerStates({ host: spec.host, domains });
          state.lastPowerSync = { at: Date.now(), ...applied };
          state.lastPowerSyncError = null;
          if (applied.updated.length > 0 || applied.stopped.length > 0)
            log.info('power states synced', { host: spec.host, ...applied });
        } catch (err) {
          state.lastPowerSyncError = messageOf(err);
          log.warn('power state sync skipped', { host: spec.host, error: state.lastPowerSyncError });
        }
        state.powerSyncs += 1;
        if (dhcpSync) await syncDhcp(spec.host, state);
      }
    })();
  }

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
        ...(input.powerSyncIntervalMs !== undefined
          ? { powerSyncIntervalMs: input.powerSyncIntervalMs }
          : {}),
        powerSyncs: state.powerSyncs,
      });
    }
  }
}
