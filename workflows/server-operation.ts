/**
 * The shape every day-two operation on a server shares (stop, start, reboot; volume attach and detach,
 * evacuate build on it): one workflow per request, on the controller queue and the server's host queue.
 *
 *   1. keystone: authenticate the caller's token
 *   2. nova-api: begin — policy, Nova's state rules, task_state set by compare-and-swap, instance action
 *      recorded (the servers API did this already, synchronously, to answer 409: then it only finds it)
 *   3. nova-conductor: the host step's event opened, guarded by the operation's task_state
 *   4. the operation's own steps (`run`) on `compute@<host>` and elsewhere, registering undos on a saga
 *   5. nova-conductor: finish — new states with task_state None, guarded; event Success, action finished
 *
 * On a failure, a cancellation or a delete taking over (its guarded writes fail with Conflict), the undos
 * run and `failOperation` closes the event with Error; it reverts task_state and keeps the fault only if
 * the operation still owns the instance, so a delete that took over completes undisturbed.
 */
import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { bootFailure, classify, faultOf, type Classified } from './failures';
import { DEFAULT_TIMEOUTS } from './limits';
import { call, computeStubs, controller, controllerCleanup, type ComputeStubs } from './proxies';
import { Saga } from './saga';
import { ComputeHostKey, InstanceIdKey, ProjectIdKey, VmStateKey } from './search-attributes';
import type {
  InstanceSummary,
  RebuildRequest,
  ServerOperationName,
  ServerOperationRequest,
  ServerOperationResult,
  Session,
} from './types';

/** What an operation's steps get: the caller's session, the instance as begun, its host's stubs. */
export interface OperationContext {
  request: ServerOperationRequest;
  session: Session;
  instance: InstanceSummary;
  host: string;
  compute: ComputeStubs;
  /** Undos of what the steps started, run newest first if the operation does not finish. */
  saga: Saga;
}

export interface ServerOperation {
  name: ServerOperationName;
  /**
   * Its steps; the power state they leave is what finish records (absent: unchanged), and the vm_state
   * when it is not the rule's (a rebuild of a stopped server ends stopped).
   */
  run(ctx: OperationContext): Promise<{ powerState?: number; vmState?: 'stopped' }>;
  /** After a failure, read the guest's power state back (a reboot that left it off goes to ERROR). */
  readPowerStateOnFailure?: boolean;
  /** What nova-api's begin also writes (a rebuild's new image, name, metadata). */
  beginChanges?: { rebuild: RebuildRequest['rebuild'] };
}

/**
 * Where the operation is: 'beginning' until nova-api's checks have passed (or refused it: 'failed'), so
 * that a client that does not wait for the end still hears a refusal.
 */
export type OperationPhase = 'beginning' | 'running' | 'finished' | 'failed';
export const operationPhaseQuery = defineQuery<OperationPhase>('operationPhase');

/** An activity's failure as the operation reports it: a host that cannot be reached is unavailable, not rescheduled. */
function operationFailure(err: unknown, host: string | undefined): Classified {
  const failure = classify(err, host);
  if (failure.type === 'RescheduledException') {
    return { ...failure, type: 'ServiceUnavailable', code: 503, reschedule: false };
  }
  return failure;
}

export async function runServerOperation(
  request: ServerOperationRequest,
  operation: ServerOperation,
): Promise<ServerOperationResult> {
  const step = {
    instanceUuid: request.instanceUuid,
    requestId: request.requestId,
    operation: operation.name,
  };
  let phase: OperationPhase = 'beginning';
  setHandler(operationPhaseQuery, () => phase);
  let session: Session;
  let instance: InstanceSummary;
  try {
    session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
    instance = await call(controller.beginServerOperation, `nova-api: ${operation.name} (state checks)`, {
      token: session.token,
      ...step,
      ...operation.beginChanges,
    });
  } catch (err) {
    // Nothing of this operation ran; but if the servers API had begun it, its task_state goes back.
    phase = 'failed';
    await CancellationScope.nonCancellable(() => abandon(request, operation, err));
    throw typedFailure(err, request, operation, undefined);
  }
  const host = instance.host as string;
  phase = 'running';
  upsertSearchAttributes([
    { key: InstanceIdKey, value: instance.uuid },
    { key: ProjectIdKey, value: instance.projectId },
    { key: ComputeHostKey, value: host },
  ]);
  const compute = computeStubs(host, request.timeouts?.hostPickupMs ?? DEFAULT_TIMEOUTS.hostPickupMs);
  const saga = new Saga();
  try {
    await call(controller.startOperationEvent, `nova-conductor: ${operation.name} on ${host} begins`, {
      ...step,
      host,
    });
    const outcome = await operation.run({ request, session, instance, host, compute, saga });
    const done = await call(controller.finishOperation, `nova-conductor: ${operation.name} done`, {
      ...step,
      host,
      ...(outcome.powerState === undefined ? {} : { powerState: outcome.powerState }),
      ...(outcome.vmState === undefined ? {} : { vmState: outcome.vmState }),
    });
    upsertSearchAttributes([{ key: VmStateKey, value: done.vmState }]);
    phase = 'finished';
    return {
      instanceUuid: done.uuid,
      operation: operation.name,
      host,
      vmState: done.vmState,
      powerState: done.powerState,
    };
  } catch (err) {
    phase = 'failed';
    let superseded: InstanceSummary | undefined;
    await CancellationScope.nonCancellable(async () => {
      const failure = operationFailure(err, host);
      await saga.compensate(failure.hostDown ? { unreachableHost: host } : {});
      const powerState =
        operation.readPowerStateOnFailure && !failure.hostDown
          ? await readPowerState(compute, request)
          : undefined;
      const { instance: after, superseded: lost } = await call(
        controllerCleanup.failOperation,
        `nova-conductor: ${operation.name} failed`,
        {
          ...step,
          host,
          error: { type: failure.type, message: failure.message },
          // A cancelled operation has no fault to tell; failOperation keeps none for a superseded one.
          ...(failure.cancelled ? {} : { fault: faultOf(failure, failure.message, undefined) }),
          ...(powerState === undefined ? {} : { powerState }),
        },
      );
      upsertSearchAttributes([{ key: VmStateKey, value: after.deleted ? 'deleted' : after.vmState }]);
      if (lost) superseded = after;
    });
    if (superseded && !isCancellation(err)) throw supersededFailure(request, operation, superseded, err);
    throw typedFailure(err, request, operation, host);
  }
}

/** After a failed begin: reverts a begin the servers API made for this request (no action: nothing). */
async function abandon(request: ServerOperationRequest, operation: ServerOperation, err: unknown) {
  const failure = operationFailure(err, undefined);
  try {
    await call(controllerCleanup.failOperation, `nova-conductor: ${operation.name} not begun`, {
      instanceUuid: request.instanceUuid,
      requestId: request.requestId,
      operation: operation.name,
      error: { type: failure.type, message: failure.message },
    });
  } catch (cleanupErr) {
    // NotFound: no action for this request (nothing was begun), or no such server: nothing to revert.
    if (classify(cleanupErr).type !== 'NotFound') throw cleanupErr;
  }
}

async function readPowerState(compute: ComputeStubs, request: ServerOperationRequest) {
  try {
    const { powerState } = await call(compute.read.getPowerState, 'nova-compute: power state', {
      instanceUuid: request.instanceUuid,
    });
    return powerState;
  } catch {
    return undefined; // The host cannot tell: the failure is recorded without it.
  }
}

function typedFailure(
  err: unknown,
  request: ServerOperationRequest,
  operation: ServerOperation,
  host: string | undefined,
): unknown {
  if (isCancellation(err)) return err;
  const failure = operationFailure(err, host);
  return bootFailure(
    failure,
    { instanceUuid: request.instanceUuid, requestId: request.requestId, operation: operation.name },
    err,
  );
}

/** A delete (or a hard reboot over a soft one) took the server over: this operation stopped there. */
function supersededFailure(
  request: ServerOperationRequest,
  operation: ServerOperation,
  instance: InstanceSummary,
  cause: unknown,
): ApplicationFailure {
  const why = instance.deleted
    ? 'the server was deleted'
    : `its task_state is now ${instance.taskState ?? 'None'}`;
  return ApplicationFailure.create({
    type: 'Conflict',
    message: `The ${operation.name} of instance ${request.instanceUuid} stopped: ${why}`,
    nonRetryable: true,
    details: [
      { code: 409, instanceUuid: request.instanceUuid, requestId: request.requestId, superseded: true },
    ],
    ...(cause instanceof Error ? { cause } : {}),
  });
}
