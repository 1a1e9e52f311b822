/**
 * Cinder's volume actions (cinder/api/contrib/volume_actions.py, volume_admin_actions, volume_image_metadata):
 * bootflow runs os-set_bootable (200), os-update_readonly_flag (202), os-extend (202) and the legacy attach
 * actions os-reserve, os-unreserve, os-attach, os-begin_detaching, os-roll_detaching, os-detach (202). For Cinder's other
 * actions the volume is looked up as Cinder does (404 for one the caller cannot see), then the action is
 * refused with 400 naming it as not supported here; a name Cinder does not know is its "no such action".
 * Policies are Cinder's defaults: a member of the volume's project (or an admin).
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Volume } from '../../cloud/cinder';
import { runCommand } from '../../cloud/compute/host-commands';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import { ApiError } from '../errors';
import { isTrue, parameterBoolean } from '../parameter-types';
import { requireMember, type VolumeRouteKit } from './metadata';
import { parseVolumeMicroversion } from './microversion';
import { cinderBadRequest } from './validation';

/** Cinder's parameter_types.volume_size: an integer or a string of digits, at least 1. */
const volumeSize = z
  .union([z.number().int(), z.string().regex(/^\d+$/, 'is not a valid size').transform(Number)])
  .pipe(z.number().int().min(1).max(10_000));

const ACTION_BODIES = {
  'os-set_bootable': z.strictObject({ 'os-set_bootable': z.strictObject({ bootable: parameterBoolean }) }),
  'os-update_readonly_flag': z.strictObject({
    'os-update_readonly_flag': z.strictObject({ readonly: parameterBoolean }),
  }),
  'os-extend': z.strictObject({ 'os-extend': z.strictObject({ new_size: volumeSize }) }),
  // The legacy attach actions (Cinder runs them for a caller that attaches the volume itself).
  'os-reserve': z.strictObject({ 'os-reserve': z.object({}).nullable() }),
  'os-unreserve': z.strictObject({ 'os-unreserve': z.object({}).nullable() }),
  'os-begin_detaching': z.strictObject({ 'os-begin_detaching': z.object({}).nullable() }),
  'os-roll_detaching': z.strictObject({ 'os-roll_detaching': z.object({}).nullable() }),
  'os-attach': z.strictObject({
    'os-attach': z.object({
      instance_uuid: z.string().min(1).max(36),
      mountpoint: z.string().min(1).max(255),
      mode: z.enum(['rw', 'ro']).optional(),
    }),
  }),
  /** volume_actions.py's volume_upload_image schema (visibility and protected from 3.1). */
  'os-volume_upload_image': z.strictObject({
    'os-volume_upload_image': z.object({
      image_name: z.string().min(1).max(255),
      force: parameterBoolean.optional(),
      disk_format: z.enum(['raw', 'qcow2']).optional(),
      container_format: z.enum(['bare']).optional(),
      visibility: z.enum(['public', 'private', 'shared', 'community']).optional(),
      protected: parameterBoolean.optional(),
    }),
  }),
  'os-detach': z.strictObject({
    'os-detach': z.object({ attachment_id: z.string().max(36).optional() }).nullable(),
  }),
};
type Action = keyof typeof ACTION_BODIES;

/** Cinder's actions that bootflow does not run. */
const NOT_RUN = new Set([
  'os-initialize_connection',
  'os-terminate_connection',
  'os-retype',
  'os-reimage',
  'os-reset_status',
  'os-force_delete',
  'os-force_detach',
  'os-migrate_volume',
  'os-migrate_volume_completion',
  'os-set_image_metadata',
  'os-unset_image_metadata',
  'os-show_image_metadata',
  'revert',
]);

const isAction = (name: string): name is Action => Object.hasOwn(ACTION_BODIES, name);

type LegacyAction = Exclude<
  Action,
  'os-set_bootable' | 'os-update_readonly_flag' | 'os-extend' | 'os-volume_upload_image'
>;

/** The legacy attach actions, Cinder's policies (volume:reserve_volume, ...) for members. */
async function legacyAttachAction(
  cinder: VolumeRouteKit['cinder'],
  volumeId: string,
  name: LegacyAction,
  body: unknown,
  ctx: RequestContext,
): Promise<void> {
  switch (name) {
    case 'os-reserve':
      requireMember(ctx, 'volume:reserve_volume');
      await cinder.legacyReserve(volumeId);
      return;
    case 'os-unreserve':
      requireMember(ctx, 'volume:unreserve_volume');
      await cinder.legacyUnreserve(volumeId);
      return;
    case 'os-begin_detaching':
      requireMember(ctx, 'volume:begin_detaching');
      await cinder.beginDetaching(volumeId);
      return;
    case 'os-roll_detaching':
      requireMember(ctx, 'volume:roll_detaching');
      await cinder.rollDetaching(volumeId);
      return;
    case 'os-attach': {
      requireMember(ctx, 'volume:attach');
      const { instance_uuid, mountpoint } = ACTION_BODIES[name].parse(body)[name];
      await cinder.legacyAttach(volumeId, instance_uuid, mountpoint);
      return;
    }
    case 'os-detach': {
      requireMember(ctx, 'volume:detach');
      const attachmentId = ACTION_BODIES[name].parse(body)[name]?.attachment_id;
      await cinder.legacyDetach(volumeId, attachmentId);
      return;
    }
  }
}

/**
 * os-volume_upload_image (volume/api.py copy_volume_to_image, volume/manager.py copy_volume_to_image):
 * the Glance image created (queued, the caller's project's), the volume `uploading` (an `in-use` one only
 * with force), answered at once; then the volume's data (as qcow2 through `qemu-img convert` when asked)
 * uploaded into the image, and the volume back to `available` (or `in-use`). A failed upload deletes
 * the image, as Cinder's manager does, and the volume is back all the same.
 */
async function uploadToImage(
  kit: VolumeRouteKit,
  request: FastifyRequest,
  volume: Volume,
  req: z.infer<(typeof ACTION_BODIES)['os-volume_upload_image']>['os-volume_upload_image'],
  ctx: RequestContext,
) {
  const { cinder, glance } = kit;
  if (!glance) throw new ApiError(400, 'Invalid input received: no image service to upload to.');
  const minor = parseVolumeMicroversion(request).minor;
  const diskFormat = req.disk_format ?? 'raw';
  const containerFormat = req.container_format ?? 'bare';
  const visibility = minor >= 1 ? (req.visibility ?? 'private') : 'private';
  const protect = minor >= 1 && req.protected !== undefined ? isTrue(req.protected) : false;
  const before = await cinder.beginUpload(volume.id, req.force !== undefined && isTrue(req.force), ctx);
  let image;
  try {
    image = await glance.createImage(
      {
        name: req.image_name,
        diskFormat,
        containerFormat,
        visibility,
        protected: protect,
        ownerProjectId: ctx.projectId,
        minDisk: before.sizeGb,
      },
      ctx,
    );
  } catch (err) {
    await cinder.finishUpload(volume.id);
    if (isCloudError(err) && err.code < 500) throw new ApiError(err.code === 403 ? 403 : 400, err.message);
    throw err;
  }
  const imageId = image.id;
  const source = before.providerLocation!;
  void (async () => {
    let converted: string | undefined;
    try {
      let file = source;
      if (diskFormat === 'qcow2') {
        converted = path.join(os.tmpdir(), `bootflow-upload-${imageId}.qcow2`);
        await runCommand('qemu-img', ['convert', '-U', '-f', 'raw', '-O', 'qcow2', source, converted], {
          timeoutMs: 30 * 60_000,
        });
        file = converted;
      }
      await glance.uploadImageData(imageId, createReadStream(file));
    } catch (err) {
      request.log.warn({ err, volumeId: volume.id, imageId }, 'volume upload to image failed');
      await glance.deleteImage(imageId).catch(() => undefined);
    } finally {
      if (converted) await rm(converted, { force: true }).catch(() => undefined);
      await cinder.finishUpload(volume.id).catch(() => undefined);
    }
  })();
  return {
    'os-volume_upload_image': {
      id: volume.id,
      updated_at: new Date().toISOString().replace('Z', '000'),
      status: 'uploading',
      display_description: before.description,
      size: before.sizeGb,
      volume_type: null,
      image_id: imageId,
      container_format: containerFormat,
      disk_format: diskFormat,
      image_name: req.image_name,
      ...(minor >= 1 ? { visibility, protected: protect } : {}),
    },
  };
}

export async function volumeActionRoutes(app: FastifyInstance, kit: VolumeRouteKit): Promise<void> {
  const { cinder, route, checkProject, visibleVolume, ctxOf } = kit;
  for (const path of route('/volumes/:volumeId/action')) {
    app.post(path, async (request, reply) => {
      checkProject(request);
      const body = request.body;
      const name =
        typeof body === 'object' && body !== null && Object.keys(body).length === 1
          ? Object.keys(body)[0]!
          : undefined;
      if (name === undefined || (!isAction(name) && !NOT_RUN.has(name)))
        throw new ApiError(400, `There is no such action: ${name ?? JSON.stringify(body)}`);
      if (!isAction(name)) {
        await visibleVolume(request);
        throw new ApiError(400, `Invalid input received: bootflow's Cinder does not support ${name}.`);
      }
      // Cinder validates the body before it looks the volume up.
      const parsed = ACTION_BODIES[name].safeParse(body);
      if (!parsed.success) throw cinderBadRequest(parsed.error);
      const volume = await visibleVolume(request);
      const ctx = ctxOf(request);
      try {
        if (name === 'os-set_bootable') {
          requireMember(ctx, 'volume:update');
          const { bootable } = ACTION_BODIES[name].parse(body)[name];
          await cinder.setBootable(volume.id, isTrue(bootable), ctx);
          return reply.code(200).send();
        }
        if (name === 'os-update_readonly_flag') {
          requireMember(ctx, 'volume:update_readonly_flag');
          const { readonly } = ACTION_BODIES[name].parse(body)[name];
          await cinder.setReadonly(volume.id, isTrue(readonly), ctx);
          return reply.code(202).send();
        }
        if (name === 'os-extend') {
          requireMember(ctx, 'volume:extend');
          const { new_size } = ACTION_BODIES[name].parse(body)[name];
          await cinder.extendVolume(volume.id, new_size, ctx);
          return reply.code(202).send();
        }
        if (name === 'os-volume_upload_image') {
          requireMember(ctx, 'volume_extension:volume_actions:upload_image');
          const req = ACTION_BODIES[name].parse(body)[name];
          const answer = await uploadToImage(kit, request, volume, req, ctx);
          return reply.code(202).send(answer);
        }
        await legacyAttachAction(cinder, volume.id, name, body, ctx);
        return reply.code(202).send();
      } catch (err) {
        // Cinder's InvalidVolume is 400 "Invalid volume: ...", its InvalidInput 400 "Invalid input received: ...".
        if (isCloudError(err, 'InvalidVolume')) throw new ApiError(400, err.message);
        if (isCloudError(err, 'BadRequest'))
          throw new ApiError(400, `Invalid input received: ${err.message}`);
        throw err;
      }
    });
  }
}
