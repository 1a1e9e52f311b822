/**
 * Cinder's volume actions (cinder/api/contrib/volume_actions.py, volume_admin_actions, volume_image_metadata):
 * bootflow runs os-set_bootable (200), os-update_readonly_flag (202), os-extend (202) and the legacy attach
 * actions os-reserve, os-unreserve, os-attach, os-begin_detaching, os-roll_detaching, os-detach (202). For Cinder's other
 * actions the volume is looked up as Cinder does (404 for one the caller cannot see), then the action is
 * refused with 400 naming it as not supported here; a name Cinder does not know is its "no such action".
 * Policies are Cinder's defaults: a member of the volume's project (or an admin).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import { ApiError } from '../errors';
import { isTrue, parameterBoolean } from '../parameter-types';
import { requireMember, type VolumeRouteKit } from './metadata';
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
  'os-detach': z.strictObject({
    'os-detach': z.object({ attachment_id: z.string().max(36).optional() }).nullable(),
  }),
};
type Action = keyof typeof ACTION_BODIES;

/** Cinder's actions that bootflow does not run. */
const NOT_RUN = new Set([
  'os-initialize_connection',
  'os-terminate_connection',
  'os-volume_upload_image',
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

type LegacyAction = Exclude<Action, 'os-set_bootable' | 'os-update_readonly_flag' | 'os-extend'>;

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
