/**
 * Cinder's volume metadata (cinder/api/v3/volume_metadata.py): GET, POST (merge), PUT (replace) of the whole
 * set, and GET, PUT, DELETE of one key. Policies are Cinder's defaults (volume_metadata.py): a reader of the
 * project reads, a member (or an admin) writes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Cinder, Volume } from '../../cloud/cinder';
import type { Glance } from '../../cloud/glance';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import { ApiError } from '../errors';
import { cinderBadRequest, cinderMetadataSchema } from './validation';

/** What the metadata routes share with the volume routes. */
export interface VolumeRouteKit {
  cinder: Cinder;
  /** Both `/v3<path>` and `/v3/{project_id}<path>`. */
  route: (path: string) => string[];
  checkProject: (request: FastifyRequest) => void;
  visibleVolume: (request: FastifyRequest) => Promise<Volume>;
  ctxOf: (request: FastifyRequest) => RequestContext;
  /** Glance, for os-volume_upload_image. */
  glance?: Glance;
}

const isAdmin = (ctx: RequestContext) => ctx.roles.includes('admin');

/** Cinder's SYSTEM_ADMIN_OR_PROJECT_MEMBER: an admin, or a member of the token's project. */
export function requireMember(ctx: RequestContext, policy: string): void {
  if (!isAdmin(ctx) && !ctx.roles.includes('member'))
    throw new ApiError(403, `Policy doesn't allow ${policy} to be performed.`);
}

const setAllBody = z.strictObject({ metadata: cinderMetadataSchema });
const setItemBody = z.strictObject({
  meta: cinderMetadataSchema.refine((m) => Object.keys(m).length === 1, 'must have exactly one property'),
});

export async function volumeMetadataRoutes(app: FastifyInstance, kit: VolumeRouteKit): Promise<void> {
  const { cinder, route, checkProject, visibleVolume, ctxOf } = kit;

  /** The volume, once the caller may write its metadata (the volume is looked up first: 404 before 403). */
  async function writable(request: FastifyRequest, policy: string): Promise<Volume> {
    checkProject(request);
    const volume = await visibleVolume(request);
    requireMember(ctxOf(request), policy);
    return volume;
  }

  for (const path of route('/volumes/:volumeId/metadata')) {
    app.get(path, async (request) => {
      checkProject(request);
      return { metadata: (await visibleVolume(request)).metadata };
    });
    for (const [method, mode] of [
      ['post', 'merge'],
      ['put', 'replace'],
    ] as const) {
      app[method](path, async (request) => {
        const parsed = setAllBody.safeParse(request.body);
        if (!parsed.success) throw cinderBadRequest(parsed.error);
        const volume = await writable(
          request,
          `volume:${mode === 'merge' ? 'create' : 'update'}_volume_metadata`,
        );
        const metadata = await cinder.setVolumeMetadata(
          volume.id,
          parsed.data.metadata,
          mode,
          ctxOf(request),
        );
        return { metadata };
      });
    }
  }

  for (const path of route('/volumes/:volumeId/metadata/:key')) {
    app.get(path, async (request) => {
      checkProject(request);
      const { key } = request.params as { key: string };
      const volume = await visibleVolume(request);
      if (!Object.hasOwn(volume.metadata, key))
        throw new ApiError(404, `Volume ${volume.id} has no metadata with key ${key}.`);
      return { meta: { [key]: volume.metadata[key] } };
    });
    app.put(path, async (request) => {
      const { key } = request.params as { key: string };
      const parsed = setItemBody.safeParse(request.body);
      if (!parsed.success) throw cinderBadRequest(parsed.error);
      const meta = parsed.data.meta;
      if (!Object.hasOwn(meta, key)) throw new ApiError(400, 'Request body and URI mismatch');
      const volume = await writable(request, 'volume:update_volume_metadata');
      await cinder.setVolumeMetadata(volume.id, meta, 'merge', ctxOf(request));
      return { meta };
    });
    app.delete(path, async (request, reply) => {
      const { key } = request.params as { key: string };
      const volume = await writable(request, 'volume:delete_volume_metadata');
      try {
        await cinder.deleteVolumeMetadataItem(volume.id, key, ctxOf(request));
      } catch (err) {
        if (isCloudError(err, 'NotFound')) throw new ApiError(404, err.message);
        throw err;
      }
      return reply.code(200).send();
    });
  }
}
