/**
 * The `createImage` server action (nova/api/openstack/compute/servers.py _action_create_image, schemas
 * create_image; compute/api.py snapshot and compute/utils.py create_image): the body checked, the policy
 * `os_compute_api:servers:create_image`, the image-metadata quota before 2.39 (403 "Image metadata limit
 * exceeded"), the state rules (409 "Cannot 'createImage' instance <uuid> while it is in vm_state ...";
 * no lock check, as Nova's), then the Glance image created at once (queued; Nova's snapshot properties),
 * then the snapshotInstance workflow through the common begin (task_state image_snapshot_pending, action
 * `createImage`). 202 with a `Location` header naming the image before 2.45, `{"image_id": ...}` from 2.45.
 * A server booted from a volume: its volumes snapshotted through Cinder and an image of size 0 mapping
 * them, at once, as snapshot_volume_backed does.
 */
import { z } from 'zod';
import { CloudError } from '../../cloud/errors';
import type { Image } from '../../cloud/glance';
import { checkOperationAllowed, MAX_METADATA_ITEMS, operationRule, type Instance } from '../../cloud/nova';
import { ApiError } from '../errors';
import { parseBody } from './common';
import { atLeast } from './microversion';
import { startOperation, type ActionAnswer, type ActionCall } from './server-actions';
import { metadataSchema, serverNameSchema } from './server-schema';
import { enforcePolicy } from './common';
import { visibleInstance } from './servers';

const createImageSchema = z.strictObject({
  createImage: z.strictObject({ name: serverNameSchema, metadata: metadataSchema.optional() }),
});

/** compute/utils.py NON_INHERITABLE_IMAGE_PROPERTIES and [DEFAULT]non_inheritable_image_properties. */
const NON_INHERITABLE = new Set([
  'cache_in_nova',
  'bittorrent',
  'img_signature_hash_method',
  'img_signature',
  'img_signature_key_type',
  'img_signature_certificate_uuid',
]);
const NON_INHERITABLE_NAMESPACES = ['os_glance'];

/** What the snapshot inherits of the server's image (Nova keeps it in the instance's system metadata). */
function inherited(base: Image | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(base?.properties ?? {})) {
    if (NON_INHERITABLE.has(key) || NON_INHERITABLE_NAMESPACES.some((ns) => key.startsWith(ns))) continue;
    out[key] = value;
  }
  return out;
}

/**
 * compute/api.py snapshot_volume_backed, in nova-api as Nova does it: the state rules, the action
 * `createImage` with its `api_snapshot_instance` event, a Cinder snapshot (forced) of each attached volume
 * named "snapshot for <name>", then an image of no data (size 0, raw/bare, forced active) whose
 * `block_device_mapping` property maps each snapshot where its volume was (`bdm_v2`, `root_device_name`).
 */
async function snapshotVolumeBacked(
  call: ActionCall,
  instance: Instance,
  name: string,
  metadata: Record<string, string>,
): Promise<string> {
  const { deps, request, ctx } = call;
  try {
    checkOperationAllowed(operationRule('snapshot'), instance);
  } catch (err) {
    if (err instanceof CloudError && err.code === 409) throw new ApiError(409, err.message);
    throw err;
  }
  const step = { instanceUuid: instance.uuid, requestId: request.id };
  await deps.cloud.nova.startAction({
    ...step,
    action: 'createImage',
    userId: ctx.userId,
    projectId: instance.projectId,
  });
  await deps.cloud.nova.recordEvent({ ...step, event: 'api_snapshot_instance' });
  const mapping: Array<Record<string, unknown>> = [];
  try {
    const attachments = await deps.cloud.cinder.listAttachments({ instanceUuid: instance.uuid });
    for (const [index, attachment] of attachments.entries()) {
      const volume = await deps.cloud.cinder.getVolume(attachment.volumeId);
      const snapshot = await deps.cloud.cinder.snapshots.create({
        volumeId: volume.id,
        projectId: ctx.projectId,
        userId: ctx.userId,
        name: `snapshot for ${name}`,
        description: volume.description ?? '',
        force: true,
      });
      const device = attachment.mountpoint ?? (index === 0 ? ROOT_DEVICE : null);
      const root = device === ROOT_DEVICE;
      mapping.push({
        source_type: 'snapshot',
        destination_type: 'volume',
        snapshot_id: snapshot.id,
        volume_id: null,
        image_id: null,
        volume_size: volume.sizeGb,
        device_name: device,
        boot_index: root ? 0 : null,
        delete_on_termination: volume.deleteOnTermination,
        disk_bus: null,
        device_type: null,
        guest_format: null,
        no_device: null,
        tag: null,
        volume_type: null,
      });
    }
  } catch (err) {
    await deps.cloud.nova.recordEvent({
      ...step,
      event: 'api_snapshot_instance',
      result: 'Error',
      details: err instanceof Error ? err.message : String(err),
    });
    await deps.cloud.nova.finishAction({ ...step, message: 'Error' });
    if (err instanceof CloudError && err.code === 413) throw new ApiError(403, err.message);
    if (err instanceof CloudError && err.code < 500)
      throw new ApiError(err.code === 403 ? 403 : 400, err.message);
    throw err;
  }
  await deps.cloud.nova.recordEvent({ ...step, event: 'api_snapshot_instance', result: 'Success' });
  await deps.cloud.nova.finishAction(step);
  const foreign = ctx.projectId !== instance.projectId;
  const image = await deps.cloud.glance.createImage(
    {
      name,
      diskFormat: 'raw',
      containerFormat: 'bare',
      visibility: foreign ? 'shared' : 'private',
      ownerProjectId: ctx.projectId,
      minDisk: instance.flavor.rootGb,
      properties: {
        ...metadata,
        root_device_name: ROOT_DEVICE,
        ...(mapping.length ? { block_device_mapping: JSON.stringify(mapping), bdm_v2: 'True' } : {}),
      },
    },
    ctx,
  );
  if (foreign) await deps.cloud.glance.addImageMember(image.id, instance.projectId, ctx);
  // nova's glance client: an image of size 0 is activated with an empty upload.
  await deps.cloud.glance.uploadImageData(image.id, Buffer.alloc(0), { ctx });
  return image.id;
}

/** The root device bootflow gives a server's boot volume. */
const ROOT_DEVICE = '/dev/vda';

export async function createImageAction(call: ActionCall): Promise<ActionAnswer> {
  const { deps, request, ctx, id, body } = call;
  const entity = parseBody(createImageSchema, body).createImage;
  const policy = 'os_compute_api:servers:create_image' as const;
  const instance = await visibleInstance(deps, ctx, id, policy);
  const metadata = entity.metadata ?? {};
  // Starting from 2.39 nova-api no longer counts the metadata against the metadata_items quota.
  if (!atLeast(request, 2, 39) && Object.keys(metadata).length > MAX_METADATA_ITEMS)
    throw new ApiError(403, 'Image metadata limit exceeded');
  if (instance.bootFromVolume) {
    enforcePolicy(ctx, 'os_compute_api:servers:create_image:allow_volume_backed', instance.projectId);
    const imageId = await snapshotVolumeBacked(call, instance, entity.name, metadata);
    if (atLeast(request, 2, 45)) return { status: 202, body: { image_id: imageId } };
    return { status: 202, headers: { location: `${deps.publicUrl}/image/images/${imageId}` } };
  }
  try {
    checkOperationAllowed(operationRule('snapshot'), instance);
  } catch (err) {
    if (err instanceof CloudError && err.code === 409) throw new ApiError(409, err.message);
    throw err;
  }
  // compute/utils.py create_image: the image as the caller makes it (owner: the caller's project), private
  // for the server's own project, shared with it (instance_owner) when an admin snapshots another's server.
  const base = instance.imageRef
    ? await deps.cloud.glance
        .getImage(instance.imageRef, { projectId: instance.projectId, roles: ['admin'] })
        .catch(() => undefined)
    : undefined;
  const foreign = ctx.projectId !== instance.projectId;
  const properties: Record<string, string> = {
    ...inherited(base),
    ...(instance.imageRef ? { base_image_ref: instance.imageRef } : {}),
    instance_uuid: instance.uuid,
    user_id: ctx.userId,
    image_type: 'snapshot',
    ...metadata,
  };
  let image: Image;
  try {
    image = await deps.cloud.glance.createImage(
      {
        name: entity.name,
        visibility: foreign ? 'shared' : 'private',
        ownerProjectId: ctx.projectId,
        minDisk: Math.max(base?.minDisk ?? 0, instance.flavor.rootGb),
        minRam: base?.minRam ?? 0,
        properties,
      },
      ctx,
    );
    if (foreign) await deps.cloud.glance.addImageMember(image.id, instance.projectId, ctx);
  } catch (err) {
    if (err instanceof CloudError && (err.code === 413 || err.type === 'ImageLimitExceeded'))
      throw new ApiError(403, err.message);
    if (err instanceof CloudError && err.code < 500)
      throw new ApiError(err.code === 403 ? 403 : 400, err.message);
    throw err;
  }
  try {
    await startOperation(call, {
      operation: 'snapshot',
      policy,
      workflowType: 'snapshotInstance',
      extra: { snapshot: { imageId: image.id } },
      checksLock: false,
    });
  } catch (err) {
    // compute/api.py snapshot: the image goes when the server cannot take the snapshot after all.
    await deps.cloud.glance.deleteImage(image.id).catch(() => undefined);
    throw err;
  }
  if (atLeast(request, 2, 45)) return { status: 202, body: { image_id: image.id } };
  return { status: 202, headers: { location: `${deps.publicUrl}/image/images/${image.id}` } };
}
