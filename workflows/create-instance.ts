/**
 * createInstance: the whole boot of one server, as OpenStack runs it, in one durable workflow.
 *
 *   1 keystone: authenticate, authorize compute:server:create                     controller
 *   2 nova-api: validate (flavor, image, sizes) | neutron: validate networks      controller | network
 *     nova-api: reserve quota; nova-conductor: instance building/scheduling       controller
 *   3 nova-scheduler: select destination + placement claim                        controller
 *   4 on the host, in parallel: ports (create, bind, plug, vif-plugged),           network, compute@<host>
 *     boot volume (create, wait available, attach, connect), image fetch          controller, compute@<host>
 *   5 nova-compute: spawn; nova-conductor: active/RUNNING/None, launched_at        compute@<host>, controller
 *
 * A host that is down (its work not picked up) or a build failure Nova reschedules (RescheduledException)
 * undoes that host's work, records the host as tried and moves to an alternate, at most max_attempts
 * times; anything else aborts. On abort or cancellation the saga undoes everything in reverse, the
 * conductor writes the instance fault and vm_state=error, and the workflow fails with the typed failure.
 */
import { CancellationScope, isCancellation, patched, uuid4, workflowInfo } from '@temporalio/workflow';
import { Abort } from './abort';
import { runBranches } from './branches';
import { parseBootRequest } from './request-schema';
import { buildOnHost, type BuildContext } from './build-on-host';
import { bootFailure, classify, decided, faultOf, type Classified } from './failures';
import { DEFAULT_MAX_ATTEMPTS, resolveTimeouts } from './limits';
import {
  call,
  controller,
  controllerCleanup,
  controllerLocal,
  controllerPoll,
  network,
  type ControllerSteps,
} from './proxies';
import { releaseInstance } from './release-instance';
import { Saga } from './saga';
import { BootTracker } from './tracker';
import type { ScheduleInput } from '../activities/scheduler';
import type { BootRequest, BootResult, HostTarget, InstanceSummary } from './types';

export { statusQuery } from './tracker';

function maxRetriesExceeded(uuid: string, reason: string, last: Classified): Classified {
  return decided(
    'MaxRetriesExceeded',
    `Exceeded maximum number of retries. ${reason} for instance ${uuid}. Last exception: ${last.message}`,
  );
}

/** The scheduler's request for this build: the same for the first choice and a reschedule. */
function scheduleRequest(ctx: BuildContext, excludedHosts: string[], maxAttempts: number): ScheduleInput {
  const { uuid, plan } = ctx;
  return {
    instanceUuid: uuid,
    projectId: plan.projectId,
    userId: plan.userId,
    flavor: plan.flavor,
    imageProperties: plan.image.properties,
    bootFromVolume: plan.bootVolume !== null,
    availabilityZone: plan.availabilityZone,
    excludedHosts,
    maxAttempts,
  };
}

/**
 * Patch id: a failed build also releases by instance what its saga did not know of. A run reset onto a
 * build that an earlier run had taken further (or finished) fails at its first guarded step (the instance
 * is past it), holding resources this run never made: ports, the guest on its host, a boot volume.
 */
const RELEASE_BY_INSTANCE = 'release-by-instance';

/**
 * Patch id: the controller's own steps (keystone, nova-api's validation, quota and record, the scheduler,
 * the conductor's writes) run as local activities in the worker that runs the workflow, as nova-api and
 * the conductor run them in-process: one marker each in the history instead of a scheduled/started/
 * completed triple and a workflow task of their own (a boot from an image: 123 events and 20 workflow
 * tasks before). Undo steps and status polls stay on the task queue. Decided once, before the first step.
 */
const LOCAL_CONTROLLER_STEPS = 'controller-local-steps';

/**
 * Patch id of the boot's current shape: the controller's steps as local activities (as above), and
 *  - a boot started without an instance uuid takes its first run's id (a uuid4 the server made) as the
 *    instance uuid. uuid4() is seeded by the run: a reset to the first workflow task reseeds it from the
 *    new run's id, so the reset run made another instance (refused: the request id already had one) and
 *    left the first one in BUILD. The first run's id is the same in every run a reset makes;
 *  - a stopped build leaves its poll timers to fire rather than cancelling them (Abort.sleep).
 * One patch for both, so a boot records a single marker (each patch costs two events).
 */
const RESET_STABLE_INSTANCE_UUID = 'reset-stable-instance-uuid';

/**
 * Patch id: a run that finds its instance record already past its build (a reset of a boot that had
 * finished, to a workflow task before its record step: the instance uuid is the first run's id, or the
 * caller's) builds nothing and changes nothing. It fails Conflict, leaving the server, its ports, guest,
 * allocation and quota as they are. Before, it scheduled and built again, failed at the instance's first
 * guarded step and released everything: the ACTIVE server ended in ERROR.
 */
const RERUN_LEAVES_BUILT_INSTANCE = 'rerun-leaves-built-instance';

/**
 * Patch id of the boot's current shape: the one before (below) and the quota claim's undo registered only
 * when the claim is this boot's own (reserveQuota answers it: not when an earlier run of the boot, before a
 * reset, recorded an instance that holds it), after the claim, so that a refused claim (QuotaExceeded) has
 * no undo to run. Before, the undo was registered ahead of every claim, and a re-run that met its instance
 * built skipped the whole saga (a flag) to keep that instance's claim.
 */
const QUOTA_UNDO_OWN_CLAIM = 'quota-undo-own-claim';

/**
 * Patch id: a run whose guarded step is refused (Conflict) on a host where its instance is found built,
 * live and idle on that same host (a finished boot reset to a workflow task after its record step: the
 * reset run re-walks the build, every forward step idempotent by instance, until a task_state guard
 * refuses it) leaves the instance as it is and fails Conflict. Its undos all act by instance uuid (ports,
 * allocation, guest, boot volume, quota): run, they would take the built server's own. Before, they ran and
 * the ACTIVE server ended in ERROR. On another host (an attempt the earlier run rescheduled away from) the
 * run still releases everything: what it holds there is not the instance's.
 */
const RESET_LEAVES_BUILT_INSTANCE = 'reset-leaves-built-instance';

/** The instance an earlier run finished, live and idle on `host`. */
function builtOn(instance: InstanceSummary, host: string): boolean {
  return (
    !instance.deleted &&
    instance.vmState === 'active' &&
    instance.taskState === null &&
    (instance.launchedAt ?? null) !== null &&
    instance.host === host
  );
}

/** The record an earlier run of this boot took past building (built, failed or deleted since). */
function builtBefore(instance: InstanceSummary): boolean {
  return instance.deleted || instance.vmState !== 'building';
}

/** How this run boots: decided once, before the first step, by the patches it was started under. */
interface BootShape {
  steps: ControllerSteps;
  /** The instance uuid (without the caller's) is the first run's id, not uuid4(). */
  stableUuid: boolean;
  /** Abort.sleep leaves its timer to fire. */
  keepsTimers: boolean;
  /** The quota undo is registered after the claim, when reserveQuota says it is this boot's own. */
  ownQuotaUndo: boolean;
}

function bootShape(): BootShape {
  // One marker per boot: each shape's patch implies the ones before it.
  if (patched(QUOTA_UNDO_OWN_CLAIM))
    return { steps: controllerLocal, stableUuid: true, keepsTimers: true, ownQuotaUndo: true };
  // Runs started under an earlier shape replay (and go on) as they were started.
  if (patched(RESET_STABLE_INSTANCE_UUID))
    return { steps: controllerLocal, stableUuid: true, keepsTimers: true, ownQuotaUndo: false };
  const local = patched(LOCAL_CONTROLLER_STEPS);
  return {
    steps: local ? controllerLocal : controller,
    stableUuid: false,
    keepsTimers: false,
    ownQuotaUndo: false,
  };
}

/** The conductor's read of the instance as it is now (a status poll, not a guarded step). */
function instanceState(uuid: string): Promise<InstanceSummary> {
  return call(controllerPoll.getInstanceState, 'nova-conductor: instance state', { instanceUuid: uuid });
}

async function releaseWhatTheInstanceHolds(uuid: string, hostDown: boolean, tracker: BootTracker) {
  tracker.setStep('releasing what the instance holds');
  const current = await instanceState(uuid);
  if (current.deleted) return; // a delete took it over and released it
  // A host that just failed as down is not waited for again (its leftovers are the host audit's).
  const hosts = current.host && !hostDown ? [current.host] : [];
  await releaseInstance({ uuid, hosts, deleteBootVolume: true }, (line) => tracker.compensated(line));
}

/** Thrown inside the workflow once it has decided the build is over (already classified). */
class BuildOver extends Error {
  /**
   * @param leavesInstance an earlier run built the instance: this run's undos, all by instance uuid, would
   * take what it holds, so none runs and its record is not failed.
   */
  constructor(
    readonly classified: Classified,
    readonly leavesInstance = false,
  ) {
    super(classified.message);
  }
}

/** A re-run's refusal: an earlier run of this boot took the instance past its build. */
function alreadyBuilt(uuid: string, requestId: string, instance: InstanceSummary): Classified {
  return decided(
    'Conflict',
    `Instance ${uuid} of request ${requestId} was already built (vm_state ${instance.vmState}` +
      `${instance.deleted ? ', deleted' : ''}): a re-run of its boot leaves it as it is`,
    409,
  );
}

/** The next host after a failed attempt: an unclaimed alternate first, then the scheduler without tried hosts. */
async function nextTarget(
  ctx: BuildContext,
  alternates: HostTarget[],
  maxAttempts: number,
  last: Classified,
): Promise<HostTarget> {
  const { uuid, plan, tracker } = ctx;
  const tried = tracker.triedHosts;
  while (alternates.length > 0) {
    const alternate = alternates.shift() as HostTarget;
    if (tried.includes(alternate.host)) continue;
    const claimed = await ctx.abort.call(
      ctx.steps.claimAlternate,
      `nova-conductor: claim alternate ${alternate.host}`,
      {
        instanceUuid: uuid,
        alternate,
        flavor: plan.flavor,
        projectId: plan.projectId,
        userId: plan.userId,
        bootFromVolume: plan.bootVolume !== null,
      },
    );
    if (claimed) return alternate;
  }
  try {
    const selection = await ctx.abort.call(
      ctx.steps.selectDestinations,
      'nova-scheduler: select destination (reschedule)',
      scheduleRequest(ctx, tried, maxAttempts),
    );
    alternates.push(...selection.alternates);
    return selection.selected;
  } catch (err) {
    if (classify(err).type !== 'NoValidHost') throw err;
    throw new BuildOver(
      maxRetriesExceeded(uuid, 'Exhausted all hosts available for retrying build failures', last),
    );
  }
}

/** Schedules, then builds host after host until one succeeds or the build is over. */
async function scheduleAndBuild(ctx: BuildContext, maxAttempts: number): Promise<BootResult> {
  const { uuid, request, tracker } = ctx;
  tracker.setStep('scheduling');
  const selection = await tracker.time('schedule', () =>
    ctx.abort.call(
      ctx.steps.selectDestinations,
      'nova-scheduler: select destination',
      scheduleRequest(ctx, [], maxAttempts),
    ),
  );
  const alternates = [...selection.alternates];
  let target = selection.selected;
  for (let attempt = 1; ; attempt++) {
    const hostSaga = new Saga();
    // The scheduler's claim is this attempt's first resource.
    hostSaga.addCall(controllerCleanup.releaseAllocation, `placement: release allocation on ${target.host}`, {
      instanceUuid: uuid,
    });
    try {
      return await buildOnHost(ctx, target, attempt, hostSaga);
    } catch (err) {
      const failure = classify(err, target.host);
      const host = target.host;
      if (failure.type === 'Conflict' && patched(RESET_LEAVES_BUILT_INSTANCE)) {
        const current = await instanceState(uuid);
        if (builtOn(current, host)) throw new BuildOver(alreadyBuilt(uuid, request.requestId, current), true);
      }
      tracker.error({ type: failure.type, message: failure.message, host, rescheduled: failure.reschedule });
      // Undo steps are plain calls: they run even when the build is being stopped.
      tracker.setStep(`cleaning up ${host}`);
      await hostSaga.compensate({
        ...(failure.hostDown ? { unreachableHost: host } : {}),
        onProgress: (line) => tracker.compensated(line),
      });
      await call(controllerCleanup.hostBuildFailed, `nova-conductor: build failed on ${host}`, {
        instanceUuid: uuid,
        requestId: request.requestId,
        host,
        error: { type: failure.type, message: failure.message },
        reschedule: failure.reschedule,
      });
      if (!failure.reschedule) throw err;
      tracker.hostFailed(host);
      tracker.onHost(null, attempt);
      tracker.states({ taskState: 'scheduling' });
      if (attempt >= maxAttempts) {
        throw new BuildOver(
          maxRetriesExceeded(uuid, `Exceeded max scheduling attempts ${maxAttempts}`, failure),
        );
      }
      tracker.setStep('rescheduling');
      target = await tracker.time('reschedule', () => nextTarget(ctx, alternates, maxAttempts, failure));
    }
  }
}

/**
 * The workflow's cancellation (a client's cancel, or deleteInstance) stops the build at its next step
 * boundary; the build itself runs non-cancellable so that no activity is cancelled in flight, and its saga
 * then undoes everything before the workflow reports itself cancelled.
 */
export async function createInstance(input: BootRequest): Promise<BootResult> {
  return start(input, true);
}

/**
 * Benchmarks only: createInstance with its parallel sections (the two validations; network, block devices
 * and image on the host) run one after the other, in the same order, with the same saga. Not a user
 * option: it shows what the parallel sections save (scripts/bench/boot.ts).
 */
export async function createInstanceSequential(input: BootRequest): Promise<BootResult> {
  return start(input, false);
}

function start(input: BootRequest, parallel: boolean): Promise<BootResult> {
  const request = parseBootRequest(input);
  const abort = new Abort();
  CancellationScope.current().cancelRequested.catch((err: unknown) => abort.trigger(err));
  return CancellationScope.nonCancellable(() => boot(request, abort, parallel));
}

async function boot(request: BootRequest, abort: Abort, parallel: boolean): Promise<BootResult> {
  const maxAttempts = request.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const tracker = new BootTracker({ requestId: request.requestId, name: request.name, maxAttempts });
  const buildSaga = new Saga();
  const { steps, stableUuid, keepsTimers, ownQuotaUndo } = bootShape();
  if (keepsTimers) abort.keepTimers();
  // The caller's uuid (the compute API picks it to answer 202 with the id), else the first run's id (older
  // runs: uuid4(), seeded by the run's random state, the same on every replay of that run).
  const uuid = request.instanceUuid ?? (stableUuid ? workflowInfo().firstExecutionRunId : uuid4());
  let recorded = false;
  const addQuotaUndo = () =>
    buildSaga.addCall(controllerCleanup.releaseQuota, `nova: release quota of ${uuid}`, {
      instanceUuid: uuid,
    });
  /** Earlier shapes: the undo, registered ahead of the claim, is withdrawn for an instance built before. */
  let withdrawEarlyQuotaUndo: (() => void) | undefined;
  try {
    tracker.setStep('authenticating');
    const session = await tracker.time('authenticate', () =>
      abort.call(steps.authenticate, 'keystone: authenticate', request.auth),
    );
    await tracker.time('authorize', () =>
      abort.call(steps.authorize, 'keystone: authorize compute:server:create', {
        token: session.token,
        rule: 'compute:server:create',
        target: { projectId: session.projectId },
      }),
    );

    tracker.setStep('validating');
    // nova-api asks neutron about the networks while it checks the rest itself.
    const [plan, networks] = await tracker.time('validate', () =>
      runBranches(parallel, [
        () =>
          abort.call(steps.validateBootRequest, 'nova-api: validate flavor, image, volume', {
            token: session.token,
            request: {
              name: request.name,
              flavor: request.flavor,
              image: request.image,
              ...(request.bootVolume ? { bootVolume: request.bootVolume } : {}),
              ...(request.availabilityZone ? { availabilityZone: request.availabilityZone } : {}),
              ...(request.keyName ? { keyName: request.keyName } : {}),
            },
          }),
        () =>
          abort.call(network.validateNetworks, 'neutron: validate networks', {
            token: session.token,
            networks: request.networks,
          }),
      ]),
    );

    if (!ownQuotaUndo) withdrawEarlyQuotaUndo = addQuotaUndo();
    const claim = await tracker.time('reserve-quota', () =>
      abort.call(steps.reserveQuota, 'nova-api: reserve quota', {
        token: session.token,
        instanceUuid: uuid,
        amounts: plan.quota,
      }),
    );
    // A claim an earlier run's instance holds stays with that instance, whatever this run comes to.
    if (ownQuotaUndo && claim.ownClaim) addQuotaUndo();
    const instance = await tracker.time('record-instance', () =>
      abort.call(steps.createInstanceRecord, 'nova-conductor: instance building/scheduling', {
        uuid,
        requestId: request.requestId,
        plan,
        networkIds: networks.map((n) => n.id),
        ...(request.keyName ? { keyName: request.keyName } : {}),
        ...(request.metadata ? { metadata: request.metadata } : {}),
        ...(request.userData !== undefined ? { userData: request.userData } : {}),
        ...(request.accessIPv4 !== undefined ? { accessIPv4: request.accessIPv4 } : {}),
        ...(request.accessIPv6 !== undefined ? { accessIPv6: request.accessIPv6 } : {}),
        ...(request.tags?.length ? { tags: request.tags } : {}),
      }),
    );
    if (instance.uuid !== uuid) {
      // The request id already created another instance: one request, one server.
      throw new BuildOver(
        decided('Conflict', `Request ${request.requestId} already created instance ${instance.uuid}`, 409),
      );
    }
    if (builtBefore(instance) && patched(RERUN_LEAVES_BUILT_INSTANCE)) {
      // Earlier shapes: a built, live instance holds its quota claim until its delete, so this run's claim
      // was that one. A failed build or a delete released it, so the claim is this run's own: undo stays.
      if (!instance.deleted && (instance.launchedAt ?? null) !== null) withdrawEarlyQuotaUndo?.();
      throw new BuildOver(alreadyBuilt(uuid, request.requestId, instance));
    }
    recorded = true;
    tracker.recorded(uuid, plan.projectId);
    // Each attempt releases its own claim; this one also covers a claim whose answer a cancellation cut off.
    buildSaga.addCall(controllerCleanup.releaseAllocation, `placement: release allocations of ${uuid}`, {
      instanceUuid: uuid,
    });

    const ctx: BuildContext = {
      request,
      session,
      plan,
      networks,
      uuid,
      timeouts: resolveTimeouts(request.timeouts),
      tracker,
      buildSaga,
      bootVolume: { volume: null, ready: false },
      abort,
      parallel,
      steps,
    };
    const result = await scheduleAndBuild(ctx, maxAttempts);
    tracker.setStep('active');
    tracker.done();
    return result;
  } catch (err) {
    const failure = err instanceof BuildOver ? err.classified : classify(err, tracker.host ?? undefined);
    tracker.error({
      type: failure.type,
      message: failure.message,
      ...(tracker.host ? { host: tracker.host } : {}),
    });
    const leaves = err instanceof BuildOver && err.leavesInstance;
    tracker.setStep('cleaning up');
    if (!leaves) await buildSaga.compensate({ onProgress: (line) => tracker.compensated(line) });
    // Workflows that failed before this change released only what their saga held: replay them so.
    if (recorded && !leaves && patched(RELEASE_BY_INSTANCE)) {
      await releaseWhatTheInstanceHolds(uuid, failure.hostDown === true, tracker);
    }
    if (recorded && !leaves) {
      const lastHost = tracker.host ?? tracker.triedHosts.at(-1);
      await call(controllerCleanup.failBuild, 'nova-conductor: instance fault, vm_state=error', {
        instanceUuid: uuid,
        requestId: request.requestId,
        fault: faultOf(failure, failure.message, lastHost),
      });
      tracker.states({ vmState: 'error', taskState: null, powerState: 0 });
    }
    tracker.setStep(failure.cancelled ? 'cancelled' : 'error');
    tracker.done();
    if (isCancellation(err)) throw err;
    throw bootFailure(
      failure,
      { instanceUuid: recorded ? uuid : null, triedHosts: tracker.triedHosts, requestId: request.requestId },
      err instanceof BuildOver ? undefined : err,
    );
  }
}
