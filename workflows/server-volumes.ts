/**
 * `openstack server add volume` / `server remove volume` (Nova's os-volume_attachments create and delete),
 * each one workflow spanning nova-api, Cinder and the server's host:
 *
 *   attach: nova-api checks + action `attach_volume` → Cinder reserve (attachment without connector) →
 *           attachment update with the host as connector → host connect (compute@<host>) → attachment
 *           complete (volume in-use) → the server still lives (a delete meanwhile wins) → action finished.
 *           Any step failing undoes what was done, newest first: disconnect, attachment delete, so the
 *           volume is `available` again with no attachment and nothing connected.
 *   detach: nova-api checks + action `detach_volume` → Cinder begin_detaching (in-use → detaching) → host
 *           disconnect → attachment delete (available) → action finished. A disconnect that fails rolls
 *           the volume back to in-use (os-roll_detaching).
 */
import { CancellationScope, isCancellation, upsertSearchAttributes } from '@temporalio/workflow';
import { bootFailure, classify, type Classified } from './failures';
import { DEFAULT_TIMEOUTS } from './limits';
import { call, computeStubs, controller, controllerCleanup, volumeApi } from './proxies';
import { parseVolumeActionRequest } from './request-schema';
import { Saga } from './saga';
import { InstanceIdKey, ProjectIdKey } from './search-attributes';
import type { VolumeActionRequest, VolumeActionResult } from './types';

type Kind = 'attach' | 'detach';

function describe(failure: Classified): string {
  return `${failure.type}: ${failure.message}`;
}

/** The action's compute event closed with the error, even when the workflow itself is being cancelled. */
async function finishWithError(kind: Kind, request: VolumeActionRequest, host: string, failure: Classified) {
  await CancellationScope.nonCancellable(() =>
    call(controllerCleanup.finishVolumeAction, `nova-conductor: ${kind}_volume failed`, {
      kind,
      instanceUuid: request.instanceUuid,
      requestId: request.requestId,
      host,
      error: describe(failure).slice(0, 4096),
    }),
  );
}

function typedFailure(request: VolumeActionRequest, failure: Classified, err: unknown) {
  return bootFailure(
    failure,
    { instanceUuid: request.instanceUuid, volumeId: request.volumeId, requestId: request.requestId },
    err,
  );
}

export async function attachServerVolume(input: VolumeActionRequest): Promise<VolumeActionResult> {
  const request = parseVolumeActionRequest(input);
  const { instanceUuid, volumeId, requestId } = request;
  let prepared: { host: string; projectId: string };
  try {
    const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
    prepared = await call(controller.prepareVolumeAttach, `nova-api: attach_volume ${volumeId}`, {
      token: session.token,
      requestId,
      instanceUuid,
      volumeId,
    });
  } catch (err) {
    if (isCancellation(err)) throw err;
    throw typedFailure(request, classify(err), err);
  }
  const { host } = prepared;
  upsertSearchAttributes([
    { key: InstanceIdKey, value: instanceUuid },
    { key: ProjectIdKey, value: prepared.projectId },
  ]);
  const compute = computeStubs(host, request.timeouts?.hostPickupMs ?? DEFAULT_TIMEOUTS.hostPickupMs);
  const saga = new Saga();
  try {
    const { attachmentId } = await call(volumeApi.reserveVolume, `cinder: reserve volume ${volumeId}`, {
      volumeId,
      instanceUuid,
    });
    saga.addCall(controllerCleanup.detachVolume, `cinder: delete attachment of ${volumeId}`, {
      attachmentId,
    });
    const { connectionInfo } = await call(volumeApi.connectAttachment, `cinder: connector ${host}`, {
      attachmentId,
      host,
    });
    const connection = { instanceUuid, volumeId, connectionInfo };
    // Registered before the call: a connect that timed out may still have connected.
    saga.addCall(
      compute.cleanup.disconnectVolume,
      `nova-compute: disconnect volume ${volumeId} on ${host}`,
      connection,
      host,
    );
    const { device } = await call(
      compute.volumes.attachGuestVolume,
      `nova-compute: connect volume ${volumeId} on ${host}`,
      connection,
    );
    await call(volumeApi.completeAttachment, `cinder: attachment complete, ${volumeId} in-use`, {
      attachmentId,
      mountpoint: `/dev/${device}`,
    });
    await call(controller.confirmVolumeAttach, 'nova-conductor: server still live', { instanceUuid });
    await call(controllerCleanup.finishVolumeAction, 'nova-conductor: attach_volume done', {
      kind: 'attach',
      instanceUuid,
      requestId,
      host,
    });
    return { instanceUuid, volumeId, attachmentId, host, device };
  } catch (err) {
    const failure = classify(err, host);
    await CancellationScope.nonCancellable(() =>
      saga.compensate(failure.hostDown ? { unreachableHost: host } : {}),
    );
    await finishWithError('attach', request, host, failure);
    throw typedFailure(request, failure, err);
  }
}

export async function detachServerVolume(input: VolumeActionRequest): Promise<VolumeActionResult> {
  const request = parseVolumeActionRequest(input);
  const { instanceUuid, volumeId, requestId } = request;
  let prepared: Awaited<ReturnType<typeof controller.prepareVolumeDetach>>;
  try {
    const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
    prepared = await call(controller.prepareVolumeDetach, `nova-api: detach_volume ${volumeId}`, {
      token: session.token,
      requestId,
      instanceUuid,
      volumeId,
    });
  } catch (err) {
    if (isCancellation(err)) throw err;
    throw typedFailure(request, classify(err), err);
  }
  const { host, attachmentId, connectionInfo } = prepared;
  upsertSearchAttributes([
    { key: InstanceIdKey, value: instanceUuid },
    { key: ProjectIdKey, value: prepared.projectId },
  ]);
  try {
    await call(volumeApi.beginDetaching, `cinder: begin detaching ${volumeId}`, { volumeId });
  } catch (err) {
    const failure = classify(err);
    await finishWithError('detach', request, host, failure);
    throw typedFailure(request, failure, err);
  }
  const compute = computeStubs(host, request.timeouts?.hostPickupMs ?? DEFAULT_TIMEOUTS.hostPickupMs);
  try {
    await call(
      compute.volumes.disconnectGuestVolume,
      `nova-compute: disconnect volume ${volumeId} on ${host}`,
      { instanceUuid, volumeId, connectionInfo },
    );
  } catch (err) {
    const failure = classify(err, host);
    await CancellationScope.nonCancellable(() =>
      call(controllerCleanup.rollDetaching, `cinder: roll detaching, ${volumeId} in-use`, { volumeId }),
    );
    await finishWithError('detach', request, host, failure);
    throw typedFailure(request, failure, err);
  }
  // Past the host, the detach only finishes: Cinder's attachment delete is retried until it is done.
  await CancellationScope.nonCancellable(async () => {
    await call(controllerCleanup.detachVolume, `cinder: delete attachment, ${volumeId} available`, {
      attachmentId,
    });
    await call(controllerCleanup.finishVolumeAction, 'nova-conductor: detach_volume done', {
      kind: 'detach',
      instanceUuid,
      requestId,
      host,
    });
  });
  return { instanceUuid, volumeId, attachmentId, host, device: null };
}
