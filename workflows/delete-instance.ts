/**
 * deleteInstance: `openstack server delete`. Authenticates and checks the policy (another project's server
 * is NotFound), stops a build still running for the instance (cancelling its workflow, whose saga cleans
 * up) and waits for it, then tears down as Nova's _delete_instance does: the guest on its host, volume
 * attachments (deleting delete-on-termination volumes), ports, the allocation and quota, and finally the
 * soft delete (vm_state=deleted). A host that is down is skipped (Nova's local delete). Deleting a deleted
 * server answers 'already-deleted'.
 */
import {
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  sleep,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { bootFailure, classify, faultOf } from './failures';
import { parseDeleteRequest } from './request-schema';
import { DEFAULT_TIMEOUTS, nextPollDelay, POLL_INITIAL_MS } from './limits';
import { bootWorkflowId } from './names';
import {
  call,
  computeStubs,
  controller,
  controllerPoll,
  controllerCleanup,
  networkCleanup,
  volumeApi,
} from './proxies';
import { InstanceIdKey, ProjectIdKey, VmStateKey } from './search-attributes';
import type { DeleteRequest, DeleteResult, InstanceSummary } from './types';

/** Patch id: a failed delete marks the instance error instead of leaving it in task_state deleting. */
const DELETE_FAILURE_TO_ERROR = 'delete-failure-to-error';

/**
 * Patch id: a delete wins over a build, as in Nova. task_state=deleting is written before the build is
 * cancelled, so that the build's failure path leaves the instance building (not ERROR) for the delete to
 * finish; and the wait for the cancelled build ends when its workflow has closed (a build stopped before
 * its record step, or one that left the instance building, never moves it out of building).
 */
const DELETE_WINS_OVER_BUILD = 'delete-wins-over-build';

/**
 * Patch id: a delete_on_termination volume is deleted by deleteServerVolume, which says what came of it:
 * one Cinder refused to delete (the user has snapshots of it) is in the result's keptVolumes with the
 * reason, not among the deleted (before: deleteVolume, every such volume listed as deleted).
 */
const DELETE_REPORTS_KEPT_VOLUMES = 'delete-reports-kept-volumes';

/** How long a delete waits for a cancelled build to finish its clean-up before going on regardless. */
const DEFAULT_CREATE_STOP_MS = 10 * 60_000;

async function stopBuild(
  request: DeleteRequest,
  instance: InstanceSummary,
  watchBuild: boolean,
): Promise<InstanceSummary> {
  try {
    await getExternalWorkflowHandle(bootWorkflowId(instance.requestId)).cancel();
  } catch {
    // The build's workflow is not running (finished, or never started here): nothing to cancel.
  }
  const bound = request.timeouts?.createStopMs ?? DEFAULT_CREATE_STOP_MS;
  const deadline = Date.now() + bound;
  let delay = POLL_INITIAL_MS;
  let current = instance;
  while (current.vmState === 'building' && !current.deleted && Date.now() < deadline) {
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = nextPollDelay(delay, bound);
    current = await call(controllerPoll.getInstanceState, 'nova-conductor: instance state', {
      instanceUuid: instance.uuid,
    });
    if (watchBuild && current.vmState === 'building' && !current.deleted) {
      const running = await call(controllerPoll.buildRunning, 'temporal: is the build still running', {
        requestId: instance.requestId,
      });
      // Stopped before it recorded anything more: what the instance holds is the delete's to release.
      if (!running) break;
    }
  }
  return current;
}

export async function deleteInstance(input: DeleteRequest): Promise<DeleteResult> {
  const request = parseDeleteRequest(input);
  try {
    return await deleteServer(request);
  } catch (err) {
    // A typed failure (NotFound for an unknown server, Unauthorized, ...) rather than a raw activity error.
    if (isCancellation(err)) throw err;
    const failure = classify(err);
    throw bootFailure(failure, { instanceUuid: request.instanceUuid, requestId: request.requestId }, err);
  }
}

async function deleteServer(request: DeleteRequest): Promise<DeleteResult> {
  const uuid = request.instanceUuid;
  const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
  let instance = await call(controller.getInstanceForDelete, 'nova-api: find server', {
    token: session.token,
    instanceUuid: uuid,
  });
  const result: DeleteResult = {
    instanceUuid: uuid,
    outcome: 'already-deleted',
    host: instance.host,
    localDelete: false,
    cancelledBuild: false,
    deletedVolumes: [],
    keptVolumes: [],
    deletedPorts: [],
  };
  if (instance.deleted) return result;
  upsertSearchAttributes([
    { key: InstanceIdKey, value: uuid },
    { key: ProjectIdKey, value: instance.projectId },
  ]);

  const beginDelete = () =>
    call(controller.beginDelete, 'nova-api: task_state=deleting', {
      instanceUuid: uuid,
      requestId: request.requestId,
      userId: session.userId,
      projectId: instance.projectId,
    });
  let begun = false;
  if (instance.vmState === 'building') {
    result.cancelledBuild = true;
    // Workflows that stopped a build before this change waited for its ERROR, then began: replay them so.
    const deleteWins = patched(DELETE_WINS_OVER_BUILD);
    if (deleteWins) {
      await beginDelete();
      begun = true;
    }
    instance = await stopBuild(request, instance, deleteWins);
    if (instance.deleted) return result;
  }

  if (!begun) await beginDelete();
  try {
    return await tearDown(request, instance, result);
  } catch (err) {
    // Workflows that failed here before this change simply failed: replay them as they ran.
    if (patched(DELETE_FAILURE_TO_ERROR)) await markDeleteFailed(request, instance, err);
    throw err;
  }
}

/**
 * A delete that failed for good (or was cancelled) leaves no server in task_state deleting: vm_state
 * error, no task, a fault saying why (Nova's _set_instance_obj_error_state), so a second delete can finish.
 * Non-cancellable: it must run even when the delete itself is being cancelled.
 */
async function markDeleteFailed(request: DeleteRequest, instance: InstanceSummary, err: unknown) {
  const failure = classify(err, instance.host ?? undefined);
  await CancellationScope.nonCancellable(() =>
    call(controllerCleanup.failDelete, 'nova-conductor: delete failed, vm_state=error', {
      instanceUuid: instance.uuid,
      requestId: request.requestId,
      fault: faultOf(failure, `Delete failed: ${failure.message}`, instance.host),
    }),
  );
  upsertSearchAttributes([{ key: VmStateKey, value: 'error' }]);
}

async function tearDown(
  request: DeleteRequest,
  instance: InstanceSummary,
  result: DeleteResult,
): Promise<DeleteResult> {
  const uuid = instance.uuid;
  // serverDelete (only activity inputs, the same commands: no patch needed to replay earlier runs): the
  // detaches keep delete_on_termination and the listing also finds volumes an interrupted earlier run of
  // this delete detached but did not delete, as Nova's block device mappings outlive the detach.
  const volumes = await call(volumeApi.listInstanceVolumes, 'cinder: volumes of the server', {
    instanceUuid: uuid,
    serverDelete: true,
  });

  const host = instance.host;
  result.host = host;
  if (host) {
    const compute = computeStubs(host, request.timeouts?.hostPickupMs ?? DEFAULT_TIMEOUTS.hostPickupMs);
    try {
      // The driver's destroy also unplugs the ports' VIFs and disconnects the volumes on the host.
      await call(compute.ops.destroyInstance, `nova-compute: destroy instance on ${host}`, {
        instanceUuid: uuid,
      });
    } catch (err) {
      if (!classify(err, host).hostDown) throw err;
      result.localDelete = true;
    }
  }

  let reportsKept: boolean | undefined;
  for (const volume of volumes) {
    const { volumeId, attachmentId } = volume;
    await call(controllerCleanup.detachVolume, `cinder: detach volume ${volumeId}`, {
      attachmentId,
      serverDelete: true,
    });
    if (!volume.deleteOnTermination) continue;
    const summary = `cinder: delete volume ${volumeId}`;
    reportsKept ??= patched(DELETE_REPORTS_KEPT_VOLUMES);
    if (reportsKept) {
      const done = await call(controllerCleanup.deleteServerVolume, summary, {
        volumeId,
        instanceUuid: uuid,
      });
      if (done.outcome === 'kept') result.keptVolumes?.push({ id: volumeId, reason: done.reason ?? '' });
      else result.deletedVolumes.push(volumeId);
    } else {
      await call(controllerCleanup.deleteVolume, summary, { volumeId });
      result.deletedVolumes.push(volumeId);
    }
  }
  const instanceUuid = uuid;
  const step = { instanceUuid, requestId: request.requestId };
  result.deletedPorts = await call(networkCleanup.deleteInstancePorts, `neutron: delete ports of ${uuid}`, {
    instanceUuid,
  });
  await call(controllerCleanup.releaseAllocation, 'placement: release allocations', { instanceUuid });
  await call(controllerCleanup.releaseQuota, 'nova: release quota', { instanceUuid });
  await call(controller.finishDelete, 'nova-conductor: vm_state=deleted', step);
  upsertSearchAttributes([{ key: VmStateKey, value: 'deleted' }]);
  result.outcome = 'deleted';
  return result;
}
