/**
 * Cinder's volume actions (cinder/api/contrib/volume_actions.py, volume_admin_actions, volume_image_metadata):
 * bootflow runs os-set_bootable (200), os-update_readonly_flag (202) and os-extend (202). For Cinder's other
 * actions the volume is looked up as Cinder does (404 for one the caller cannot see), then the action is
 * refused with 400 naming it as not supported here; a name Cinder does not know is its "no such action".
 * Policies are Cinder's defaults: a member of the volume's project (or an admin).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
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
};
type Action = keyof typeof ACTION_BODIES;

/** Cinder's actions that bootflow does not run. */
const NOT_RUN = new Set([
  'os-attach',
  'os-detach',
  'os-reserve',
  'os-unreserve',
  'os-begin_detaching',
  'os-roll_detaching',
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
        requireMember(ctx, 'volume:extend');
        const { new_size } = ACTION_BODIES[name].parse(body)[name];
        await cinder.extendVolume(volume.id, new_size, ctx);
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
