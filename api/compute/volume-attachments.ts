/**
 * /servers/{id}/os-volume_attachments (nova/api/openstack/compute/volume_attachments.py): list and show from
 * Cinder's live attachments of the server, attach (POST → 200 with the volumeAttachment) and detach
 * (DELETE → 202). nova-api's checks run here first, synchronously (policy, the volume, the instance state:
 * 409 conflictingRequest), then the attachServerVolume / detachServerVolume workflow does the work across
 * Cinder and the host; the answer comes once it has finished, so a failure is answered with its status.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { VolumeAttachment } from '../../cloud/cinder';
import { ERROR_TYPES, isCloudError, type CloudErrorType } from '../../cloud/errors';
import type { RequestContext, ValidatedToken } from '../../cloud/keystone';
import { checkVolumeActionState, type Instance } from '../../cloud/nova';
import { bootVolumeRequestKey } from '../../activities/volume';
import { CONTROLLER_QUEUE, volumeAttachWorkflowId, volumeDetachWorkflowId } from '../../workflows/names';
import type { VolumeActionRequest, VolumeActionResult } from '../../workflows/types';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError, statusOf } from '../errors';
import { parseBody } from './common';
import { atLeast } from './microversion';
import { grantFor, refuseIfLocked, visibleInstance } from './servers';

/** parameter_types.volume_id and the device path pattern of schemas/volume_attachments.py. */
const devicePattern = /(^\/dev\/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$/;
function createSchema(minor: number) {
  return z.strictObject({
    volumeAttachment: z.strictObject({
      volumeId: z.uuid(),
      device: z.string().regex(devicePattern).nullable().optional(),
      ...(minor >= 49 ? { tag: z.string().min(1).max(60).nullable().optional() } : {}),
      ...(minor >= 79 ? { delete_on_termination: z.boolean().optional() } : {}),
    }),
  });
}

function attachmentView(request: FastifyRequest, a: VolumeAttachment, deleteOnTermination: boolean) {
  return {
    id: a.volumeId,
    volumeId: a.volumeId,
    serverId: a.instanceUuid,
    ...(a.mountpoint ? { device: a.mountpoint } : {}),
    ...(atLeast(request, 2, 70) ? { tag: null } : {}),
    ...(atLeast(request, 2, 79) ? { delete_on_termination: deleteOnTermination } : {}),
  };
}

const notAttached = (serverId: string, volumeId: string) =>
  new ApiError(404, `Instance ${serverId} is not attached to volume ${volumeId}`);

/** The volume as the caller's Cinder shows it: unknown or another project's is 404 with Cinder's words. */
async function visibleVolume(deps: ApiDeps, ctx: RequestContext, volumeId: string) {
  try {
    return await deps.cloud.cinder.getVolume(volumeId, { projectId: ctx.projectId, roles: ctx.roles });
  } catch (err) {
    if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest'))
      throw new ApiError(404, `Volume ${volumeId} could not be found.`);
    throw err;
  }
}

async function liveAttachments(deps: ApiDeps, instance: Instance) {
  const attachments = await deps.cloud.cinder.listAttachments({ instanceUuid: instance.uuid });
  return Promise.all(
    attachments.map(async (a) => ({
      attachment: a,
      deleteOnTermination: await deps.cloud.cinder.getVolume(a.volumeId).then(
        (v) => v.deleteOnTermination,
        () => false,
      ),
    })),
  );
}

/** A finished workflow's typed failure as the API answers it (the cloud's error types keep their codes). */
function failureToApiError(err: unknown): ApiError {
  let cause: unknown = err instanceof WorkflowFailedError ? err.cause : err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure && cause.type && cause.type in ERROR_TYPES) {
    const type = cause.type as CloudErrorType;
    const status = statusOf(type, ERROR_TYPES[type].code);
    if (status < 500 || status === 503) return new ApiError(status, cause.message);
  }
  return new ApiError(500, 'Unexpected API Error.');
}

async function runVolumeWorkflow(
  deps: ApiDeps,
  kind: 'attach' | 'detach',
  validated: ValidatedToken,
  fields: Omit<VolumeActionRequest, 'auth'>,
): Promise<VolumeActionResult> {
  const workflowType = kind === 'attach' ? 'attachServerVolume' : 'detachServerVolume';
  const workflowId =
    kind === 'attach'
      ? volumeAttachWorkflowId(fields.instanceUuid, fields.requestId)
      : volumeDetachWorkflowId(fields.instanceUuid, fields.requestId);
  const input: VolumeActionRequest = {
    ...fields,
    auth: await grantFor(deps, validated, workflowType, workflowId),
  };
  try {
    return (await deps.temporal.workflow.execute(workflowType, {
      taskQueue: CONTROLLER_QUEUE,
      workflowId,
      args: [input],
    })) as VolumeActionResult;
  } catch (err) {
    throw failureToApiError(err);
  }
}

async function listAttachments(deps: ApiDeps, request: FastifyRequest) {
  const { ctx } = authOf(request);
  const { id } = request.params as { id: string };
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-volumes-attachments:index');
  const live = await liveAttachments(deps, instance);
  return {
    volumeAttachments: live.map((l) => attachmentView(request, l.attachment, l.deleteOnTermination)),
  };
}

async function showAttachment(deps: ApiDeps, request: FastifyRequest) {
  const { ctx } = authOf(request);
  const { id, volumeId } = request.params as { id: string; volumeId: string };
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-volumes-attachments:show');
  const found = (await liveAttachments(deps, instance)).find((l) => l.attachment.volumeId === volumeId);
  if (!found) throw notAttached(id, volumeId);
  return { volumeAttachment: attachmentView(request, found.attachment, found.deleteOnTermination) };
}

async function attach(deps: ApiDeps, request: FastifyRequest) {
  const { ctx, validated } = authOf(request);
  const { id } = request.params as { id: string };
  const body = parseBody(createSchema(request.microversion.minor), request.body).volumeAttachment as {
    volumeId: string;
    tag?: string | null;
    delete_on_termination?: boolean;
  };
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-volumes-attachments:create');
  refuseIfLocked(ctx, instance);
  if (body.tag !== undefined && body.tag !== null)
    throw new ApiError(400, "Tagged volume attachments are not supported by bootflow's compute API.");
  if (body.delete_on_termination === true)
    throw new ApiError(400, "delete_on_termination on attach is not supported by bootflow's compute API.");
  const volume = await visibleVolume(deps, ctx, body.volumeId);
  if (volume.attachments.some((a) => a.instanceUuid === instance.uuid))
    throw new ApiError(400, `Invalid volume: volume ${volume.id} already attached`);
  checkVolumeActionState(instance, 'attach');
  const result = await runVolumeWorkflow(deps, 'attach', validated, {
    requestId: request.id,
    instanceUuid: instance.uuid,
    volumeId: volume.id,
  });
  const attached = await deps.cloud.cinder.getAttachment(result.attachmentId);
  return { volumeAttachment: attachmentView(request, attached, volume.deleteOnTermination) };
}

async function detach(deps: ApiDeps, request: FastifyRequest, reply: FastifyReply) {
  const { ctx, validated } = authOf(request);
  const { id, volumeId } = request.params as { id: string; volumeId: string };
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-volumes-attachments:delete');
  refuseIfLocked(ctx, instance);
  const volume = await visibleVolume(deps, ctx, volumeId);
  if (!volume.attachments.some((a) => a.instanceUuid === instance.uuid)) throw notAttached(id, volumeId);
  if (volume.requestKey === bootVolumeRequestKey(instance.uuid))
    throw new ApiError(400, 'Cannot detach a root device volume');
  checkVolumeActionState(instance, 'detach');
  await runVolumeWorkflow(deps, 'detach', validated, {
    requestId: request.id,
    instanceUuid: instance.uuid,
    volumeId: volume.id,
  });
  return reply.code(202).send();
}

export async function volumeAttachmentRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/servers/:id/os-volume_attachments', (request) => listAttachments(deps, request));
  app.get('/servers/:id/os-volume_attachments/:volumeId', (request) => showAttachment(deps, request));
  app.post('/servers/:id/os-volume_attachments', (request) => attach(deps, request));
  app.delete('/servers/:id/os-volume_attachments/:volumeId', (request, reply) =>
    detach(deps, request, reply),
  );
}
