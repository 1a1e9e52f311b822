/**
 * Activity stubs per service role, with the timeouts and retry policy each kind of call deserves. Each
 * activity belongs to exactly one group (the lists below, checked against the real activity objects by
 * test/workflow-proxies.test.ts), so an activity has one retry policy wherever the workflows call it.
 * Every call goes through `call(stub, summary, input)`, so it carries a one-line summary in the Web UI
 * ("keystone: authenticate", "glance: fetch image to compute2").
 */
import { ActivityCancellationType, type ActivityFunction, type Duration } from '@temporalio/common';
import {
  proxyActivities,
  proxyLocalActivities,
  type ActivityFunctionWithOptions,
  type ActivityInterfaceFor,
  type LocalActivityFunctionWithOptions,
  type LocalActivityInterfaceFor,
} from '@temporalio/workflow';
import type { ComputeActivities, ControllerActivities, NetworkActivities } from '../activities';
import { computeQueue, CONTROLLER_QUEUE, NETWORK_QUEUE } from './names';

/** Forward steps on the controller: identity, nova-api, the conductor's writes, the scheduler. */
export const CONTROLLER_STEPS = [
  'authenticate',
  'authorize',
  'validateBootRequest',
  'reserveQuota',
  'createInstanceRecord',
  'selectDestinations',
  'claimAlternate',
  'setHost',
  'setTaskState',
  'beginEvacuate',
  'evacuateSpawning',
  'finishEvacuate',
  'listHostServers',
  'evacuatedInstances',
  'prepareVolumeAttach',
  'prepareVolumeDetach',
  'confirmVolumeAttach',
  'finishBuild',
  'getInstanceForDelete',
  'beginDelete',
  'finishDelete',
  // Day-two operations (server-operation.ts): nova-api's guarded begin, the conductor's guarded writes.
  'beginServerOperation',
  'startOperationEvent',
  'advanceOperation',
  'finishOperation',
  'rebuildPlan',
] as const satisfies ReadonlyArray<keyof ControllerActivities>;
/** cinder-api calls that move a volume forward. */
export const VOLUME_STEPS = [
  'createBootVolume',
  'attachVolume',
  'reserveVolume',
  'connectAttachment',
  'beginDetaching',
  'completeAttachment',
  'listInstanceVolumes',
  'bootVolumeOf',
] as const satisfies ReadonlyArray<keyof ControllerActivities>;
/** Status reads inside the workflow's durable waits. */
export const CONTROLLER_POLLS = [
  'volumeStatus',
  'getInstanceState',
  'buildRunning',
] as const satisfies ReadonlyArray<keyof ControllerActivities>;
/** Releases and the conductor's failure records: a build's undo steps and a delete's tear-down. */
export const CONTROLLER_CLEANUPS = [
  'releaseQuota',
  'releaseAllocation',
  'detachVolume',
  'rollDetaching',
  'failEvacuate',
  'finishVolumeAction',
  'deleteVolume',
  'deleteServerVolume',
  'hostBuildFailed',
  'failBuild',
  'failDelete',
  'clearStaleTask',
  'failOperation',
  'deleteSnapshotImage',
] as const satisfies ReadonlyArray<keyof ControllerActivities>;
/** A snapshot's upload into Glance: as long as the data is large. */
export const CONTROLLER_UPLOADS = ['uploadSnapshot'] as const satisfies ReadonlyArray<
  keyof ControllerActivities
>;
/** The reconciler's periodic look over every instance (a database read and a Temporal look-up each). */
export const CONTROLLER_PERIODIC = ['findOrphanedInstances'] as const satisfies ReadonlyArray<
  keyof ControllerActivities
>;
export const NETWORK_STEPS = [
  'validateNetworks',
  'createPorts',
  'bindPorts',
  'reportDevicesUp',
  'listInstancePorts',
] as const satisfies ReadonlyArray<keyof NetworkActivities>;
export const NETWORK_POLLS = ['portStatuses'] as const satisfies ReadonlyArray<keyof NetworkActivities>;
export const NETWORK_CLEANUPS = ['deleteInstancePorts'] as const satisfies ReadonlyArray<
  keyof NetworkActivities
>;
/** Short operations on a host, bounded (destroyInstance included: see `computeStubs`). */
export const COMPUTE_OPS = [
  'plugVifs',
  'connectVolume',
  'spawn',
  'destroyInstance',
  'rebuildGuest',
] as const satisfies ReadonlyArray<keyof ComputeActivities>;
/**
 * Day-two work on a running server's host: a volume's attach and detach (workflows/server-volumes.ts), and
 * init_host's list of its local guests (workflows/evacuate.ts).
 */
export const COMPUTE_VOLUME_OPS = [
  'attachGuestVolume',
  'disconnectGuestVolume',
  'listLocalInstances',
] as const satisfies ReadonlyArray<keyof ComputeActivities>;
export const COMPUTE_FETCHES = ['fetchImage'] as const satisfies ReadonlyArray<keyof ComputeActivities>;
export const COMPUTE_CLEANUPS = [
  'unplugVifs',
  'disconnectVolume',
  'removeSnapshotFile',
] as const satisfies ReadonlyArray<keyof ComputeActivities>;
/** The driver's snapshot of a server's root disk (createImage): long, heartbeating. */
export const COMPUTE_SNAPSHOTS = ['snapshotDisk'] as const satisfies ReadonlyArray<keyof ComputeActivities>;
/** The driver's power actions (day two): stop, start, reboot, pause, unpause, suspend, resume. */
export const COMPUTE_POWER = [
  'powerOff',
  'powerOn',
  'reboot',
  'pause',
  'unpause',
  'suspend',
  'resume',
] as const satisfies ReadonlyArray<keyof ComputeActivities>;
/** Reads of the driver's state after a failed operation (Nova's _get_power_state). */
export const COMPUTE_READS = ['getPowerState'] as const satisfies ReadonlyArray<keyof ComputeActivities>;

type Group<A, K extends ReadonlyArray<keyof A>> = Pick<A, K[number]>;

/**
 * Identity and Nova database calls: each is one short transaction, so a 20 s attempt is generous; a few
 * fast retries ride out a locked row or a restarting controller. Unauthorized, NotFound, QuotaExceeded
 * and the like come back non-retryable from the adapters and are never retried.
 */
const controllerStepOptions = {
  startToCloseTimeout: '20 seconds',
  retry: {
    initialInterval: '200 ms',
    backoffCoefficient: 2,
    maximumInterval: '2 seconds',
    maximumAttempts: 5,
  },
} as const;
export const controller = proxyActivities<Group<ControllerActivities, typeof CONTROLLER_STEPS>>({
  taskQueue: CONTROLLER_QUEUE,
  ...controllerStepOptions,
});
/**
 * The same steps, with the same policy, as local activities: run by the worker that runs the workflow
 * (the controller's, which serves these activities too), each recorded as one marker in the history
 * instead of three events and a workflow task of its own. The boot uses them (createInstance, behind a
 * patch): nova-api and the conductor do these steps in-process, so a round trip through the server's
 * matching for each one is pure overhead. Retries stay in the worker (backoff at most 2 s, well under
 * the default one-minute localRetryThreshold, so no server timer is used).
 */
export const controllerLocal =
  proxyLocalActivities<Group<ControllerActivities, typeof CONTROLLER_STEPS>>(controllerStepOptions);
/** A controller step, whichever way it runs (a workflow chooses once, by its patch). */
export type ControllerSteps =
  | ActivityInterfaceFor<Group<ControllerActivities, typeof CONTROLLER_STEPS>>
  | LocalActivityInterfaceFor<Group<ControllerActivities, typeof CONTROLLER_STEPS>>;

/** Cinder and neutron-server: a backend that is busy for a while (a volume backend, IPAM and binding). */
const serviceRetry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '15 seconds',
  maximumAttempts: 7,
} as const;

/**
 * Cinder API calls: a volume backend can be busy for a while, so retries back off up to 15 s over about a
 * minute and a half before the boot gives up on the step.
 */
export const volumeApi = proxyActivities<Group<ControllerActivities, typeof VOLUME_STEPS>>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: serviceRetry,
});

/** neutron-server: same backoff as Cinder (IPAM and binding contend on the network node). */
export const network = proxyActivities<Group<NetworkActivities, typeof NETWORK_STEPS>>({
  taskQueue: NETWORK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: serviceRetry,
});

/**
 * Status polls inside the workflow's durable waits (volume available, vif plugged, build stopped): the
 * wait loop is the retry, so each poll gets just one quick second chance.
 */
const pollOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '500 ms', maximumAttempts: 2 },
} as const;
export const controllerPoll = proxyActivities<Group<ControllerActivities, typeof CONTROLLER_POLLS>>({
  taskQueue: CONTROLLER_QUEUE,
  ...pollOptions,
});
export const networkPoll = proxyActivities<Group<NetworkActivities, typeof NETWORK_POLLS>>({
  taskQueue: NETWORK_QUEUE,
  ...pollOptions,
});

/**
 * Clean-up (a build's undo steps and a delete's releases) must not give up: no maximumAttempts, a backoff
 * capped at 10 s. Each is idempotent ("already gone" is success), so repeating one is harmless, and giving
 * up would leak what it holds (an IP, a volume, an allocation, quota). The same policy serves the delete:
 * a delete that stopped half-way would leave the same leak behind.
 */
const cleanupRetry = {
  initialInterval: '500 ms',
  backoffCoefficient: 2,
  maximumInterval: '10 seconds',
} as const;
export const controllerCleanup = proxyActivities<Group<ControllerActivities, typeof CONTROLLER_CLEANUPS>>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: cleanupRetry,
});
/** A snapshot's upload: up to 30 minutes; a few retries (an image left queued is uploaded again). */
export const controllerUpload = proxyActivities<Group<ControllerActivities, typeof CONTROLLER_UPLOADS>>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '30 minutes',
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 3,
  },
});
/**
 * The reconciler's scan: one call over every stale instance, so a minute; it runs again at the next
 * period anyway, so two quick retries are enough.
 */
export const controllerPeriodic = proxyActivities<Group<ControllerActivities, typeof CONTROLLER_PERIODIC>>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
});
export const networkCleanup = proxyActivities<Group<NetworkActivities, typeof NETWORK_CLEANUPS>>({
  taskQueue: NETWORK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: cleanupRetry,
});

/** A short operation on a host: three tries, a second apart at first, at most 10 s. */
const hostOpRetry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '10 seconds',
  maximumAttempts: 3,
} as const;

export interface ComputeStubs {
  /** plug, connect, spawn, destroy: short operations on the host. */
  ops: ActivityInterfaceFor<Group<ComputeActivities, typeof COMPUTE_OPS>>;
  /** The image download: long, heartbeating with its progress. */
  fetch: ActivityInterfaceFor<Group<ComputeActivities, typeof COMPUTE_FETCHES>>;
  /** Undo steps on the host: retried until done, unless the host is unreachable. */
  cleanup: ActivityInterfaceFor<Group<ComputeActivities, typeof COMPUTE_CLEANUPS>>;
  /** A running server's volume connect and disconnect: bounded, and cancelled only once the host says so. */
  volumes: ActivityInterfaceFor<Group<ComputeActivities, typeof COMPUTE_VOLUME_OPS>>;
  /** Power off, power on, reboot: may wait out a guest's clean shutdown. */
  power: ActivityInterfaceFor<Group<ComputeActivities, typeof COMPUTE_POWER>>;
  /** The same, cancelled only once the host says the call has stopped (workflows/power.ts, patched in). */
  powerWaitingCancel: ActivityInterfaceFor<Group<ComputeActivities, typeof COMPUTE_POWER>>;
  /** The driver's snapshot of the root disk: long, heartbeating. */
  snapshot: ActivityInterfaceFor<Group<ComputeActivities, typeof COMPUTE_SNAPSHOTS>>;
  /** A quick read of the driver's state. */
  read: ActivityInterfaceFor<Group<ComputeActivities, typeof COMPUTE_READS>>;
}

/**
 * Stubs for one host's `compute@<host>` queue. scheduleToStartTimeout on every one of them: work that no
 * worker picks up within `pickup` means the host's nova-compute is gone, and the build reschedules (or the
 * delete goes local).
 *
 * destroyInstance is bounded (ops) in a build's clean-up as in a delete: a driver that cannot destroy a
 * guest is a host fault an operator must see, as Nova's compute manager puts the instance in ERROR with
 * the fault; retrying it for ever would hang the delete with no sign of why.
 */
export function computeStubs(host: string, pickup: Duration): ComputeStubs {
  const base = { taskQueue: computeQueue(host), scheduleToStartTimeout: pickup };
  /** Power off, power on, reboot; cancelled at once, or once the host says the held call has stopped. */
  const powerStubs = (cancellationType?: ActivityCancellationType) =>
    proxyActivities<Group<ComputeActivities, typeof COMPUTE_POWER>>({
      ...base,
      // A clean shutdown waits for the guest's ACPI power-off (the driver's shutdown timeout, Nova's 60 s
      // shutdown_timeout) before a hard stop; a soft reboot may do that and a start: 5 minutes bound it.
      startToCloseTimeout: '5 minutes',
      heartbeatTimeout: '20 seconds',
      // Each is idempotent on the driver (powering off an off guest is a no-op), so a retry is safe; after
      // three the operation fails and the server keeps its state, as Nova's reverts_task_state leaves it.
      retry: hostOpRetry,
      ...(cancellationType !== undefined ? { cancellationType } : {}),
    });
  return {
    ops: proxyActivities<Group<ComputeActivities, typeof COMPUTE_OPS>>({
      ...base,
      startToCloseTimeout: '2 minutes',
      // The activities heartbeat every second: a dead worker shows in 20 s, and cancellation reaches them.
      heartbeatTimeout: '20 seconds',
      retry: hostOpRetry,
    }),
    fetch: proxyActivities<Group<ComputeActivities, typeof COMPUTE_FETCHES>>({
      ...base,
      // A large image may take long; the heartbeat (30 s) is what detects a stuck or dead download.
      startToCloseTimeout: '30 minutes',
      heartbeatTimeout: '30 seconds',
      retry: {
        initialInterval: '2 seconds',
        backoffCoefficient: 2,
        maximumInterval: '30 seconds',
        maximumAttempts: 3,
      },
    }),
    cleanup: proxyActivities<Group<ComputeActivities, typeof COMPUTE_CLEANUPS>>({
      ...base,
      startToCloseTimeout: '2 minutes',
      heartbeatTimeout: '20 seconds',
      retry: cleanupRetry,
    }),
    volumes: proxyActivities<Group<ComputeActivities, typeof COMPUTE_VOLUME_OPS>>({
      ...base,
      startToCloseTimeout: '2 minutes',
      heartbeatTimeout: '20 seconds',
      retry: hostOpRetry,
      // A cancelled attach undoes itself only once the host's connect has really stopped: otherwise a
      // connect still running could finish after the undo's disconnect and leave the volume connected.
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }),
    power: powerStubs(),
    // A cancelled stop or start that went on without its host call could leave the guest powered off (or
    // on) while the server says otherwise: this one waits until the held call has really stopped.
    powerWaitingCancel: powerStubs(ActivityCancellationType.WAIT_CANCELLATION_COMPLETED),
    snapshot: proxyActivities<Group<ComputeActivities, typeof COMPUTE_SNAPSHOTS>>({
      ...base,
      startToCloseTimeout: '30 minutes',
      heartbeatTimeout: '20 seconds',
      retry: hostOpRetry,
    }),
    read: proxyActivities<Group<ComputeActivities, typeof COMPUTE_READS>>({
      ...base,
      // After a failure the state is only informative (a reboot that left the guest off goes to ERROR):
      // one quick retry, then the failure is recorded without it.
      startToCloseTimeout: '20 seconds',
      retry: { initialInterval: '500 ms', maximumAttempts: 2 },
    }),
  };
}

/** An activity of one object parameter (Temporal's advice: fields can be added without a new signature). */
export type OneInputActivity = ActivityFunction & ((input: never) => Promise<unknown>);

/** An activity stub, scheduled on a task queue or run locally by the workflow's worker. */
export type ActivityStub<F extends OneInputActivity> =
  ActivityFunctionWithOptions<F> | LocalActivityFunctionWithOptions<F>;

/** Runs an activity with its Web UI summary (a local activity's marker carries it too). */
export function call<F extends OneInputActivity>(
  stub: ActivityStub<F>,
  summary: string,
  input: Parameters<F>[0],
): Promise<Awaited<ReturnType<F>>> {
  return stub.executeWithOptions({ summary }, [input] as Parameters<F>) as Promise<Awaited<ReturnType<F>>>;
}
