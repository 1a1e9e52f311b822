/**
 * Cinder's volume and snapshot metadata (cinder/api/v3/volume_metadata.py, snapshot_metadata.py): GET, POST
 * (merge), PUT (replace) of the whole set, and GET, PUT, DELETE of one key, served by one `metadataRoutes`.
 * Volume policies are Cinder's defaults (volume_metadata.py): a reader of the project reads, a member (or an
 * admin) writes; a snapshot's are checked by the cloud's snapshots.
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

type Metadata = Record<string, string>;

/** What one resource (a volume, a snapshot) gives the metadata routes. */
export interface MetadataRouteKit<T extends { id: string; metadata: Metadata }> {
  /** Both `/v3<path>` and `/v3/{project_id}<path>`. */
  route: (path: string) => string[];
  /** The resource's path segment and id parameter: `/<collection>/:<param>/metadata`. */
  collection: string;
  param: string;
  /** How the 404 of a missing key names the resource (`Volume`, `Snapshot`). */
  noun: string;
  /** The resource the caller may see (its project checked, 404 when not). */
  load: (request: FastifyRequest) => Promise<T>;
  /** After the resource is found (404 before 403): refuse a caller who may not write; the policy names its step. */
  mayWrite?: (request: FastifyRequest, step: 'create' | 'update' | 'delete') => void;
  /** Merge into or replace the resource's metadata; the whole set after. */
  set: (
    request: FastifyRequest,
    id: string,
    metadata: Metadata,
    mode: 'merge' | 'replace',
  ) => Promise<Metadata>;
  /** Delete one key (404 when absent). */
  remove: (request: FastifyRequest, id: string, key: string) => Promise<void>;
}

/** Cinder's metadata controllers (volume_metadata.py, snapshot_metadata.py): the same six routes over one resource. */
export async function metadataRoutes<T extends { id: string; metadata: Metadata }>(
  app: FastifyInstance,
  kit: MetadataRouteKit<T>,
): Promise<void> {
  const { route, collection, param, noun, load, set, remove } = kit;

  async function writable(request: FastifyRequest, step: 'create' | 'update' | 'delete'): Promise<T> {
    const resource = await load(request);
    kit.mayWrite?.(request, step);
    return resource;
  }

  for (const path of route(`/${collection}/:${param}/metadata`)) {
    app.get(path, async (request) => ({ metadata: (await load(request)).metadata }));
    for (const [method, mode] of [
      ['post', 'merge'],
      ['put', 'replace'],
    ] as const) {
      app[method](path, async (request) => {
        const parsed = setAllBody.safeParse(request.body);
        if (!parsed.success) throw cinderBadRequest(parsed.error);
        const resource = await writable(request, mode === 'merge' ? 'create' : 'update');
        const metadata = await set(request, resource.id, parsed.data.metadata, mode);
        return { metadata };
      });
    }
  }

  for (const path of route(`/${collection}/:${param}/metadata/:key`)) {
    app.get(path, async (request) => {
      const { key } = request.params as { key: string };
      const resource = await load(request);
      if (!Object.hasOwn(resource.metadata, key))
        throw new ApiError(404, `${noun} ${resource.id} has no metadata with key ${key}.`);
      return { meta: { [key]: resource.metadata[key] } };
    });
    app.put(path, async (request) => {
      const { key } = request.params as { key: string };
      const parsed = setItemBody.safeParse(request.body);
      if (!parsed.success) throw cinderBadRequest(parsed.error);
      const meta = parsed.data.meta;
      if (!Object.hasOwn(meta, key)) throw new ApiError(400, 'Request body and URI mismatch');
      const resource = await writable(request, 'update');
      await set(request, resource.id, meta, 'merge');
      return { meta };
    });
    app.delete(path, async (request, reply) => {
      const { key } = request.params as { key: string };
      const resource = await writable(request, 'delete');
      await remove(request, resource.id, key);
      return reply.code(200).send();
    });
  }
}

export async function volumeMetadataRoutes(app: FastifyInstance, kit: VolumeRouteKit): Promise<void> {
  const { cinder, route, checkProject, visibleVolume, ctxOf } = kit;
  await metadataRoutes(app, {
    route,
    collection: 'volumes',
    param: 'volumeId',
    noun: 'Volume',
    load: async (request) => {
      checkProject(request);
      return visibleVolume(request);
    },
    mayWrite: (request, step) => requireMember(ctxOf(request), `volume:${step}_volume_metadata`),
    set: (request, id, metadata, mode) => cinder.setVolumeMetadata(id, metadata, mode, ctxOf(request)),
    remove: async (request, id, key) => {
      try {
        await cinder.deleteVolumeMetadataItem(id, key, ctxOf(request));
      } catch (err) {
        if (isCloudError(err, 'NotFound')) throw new ApiError(404, err.message);
        throw err;
      }
    },
  });
}
