/**
 * Cinder v3 at /volume: the version document with the microversion range, and volumes: create (202; the
 * volume is accepted `creating` and built by Cinder's own durable background creation), list, detail list,
 * show, delete (202; refused as Cinder refuses it for an attached or busy volume). Routes answer with and
 * without the project id in the path (Cinder's URLs carry it; the catalog's endpoint does not).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { CreateVolumeRequest, Volume } from '../../cloud/cinder';
import type { RequestContext } from '../../cloud/keystone';
import type { ServicePlugin } from '../app';
import { authOf, requireAuth } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import {
  formatVersion,
  MAX_VOLUME_MICROVERSION,
  MIN_VOLUME_MICROVERSION,
  parseVolumeMicroversion,
  versionHeaders,
  type Microversion,
} from './microversion';
import { volumeActionRoutes } from './actions';
import { volumePage } from './list';
import { volumeMetadataRoutes, requireMember } from './metadata';
import { cinderBadRequest, cinderMetadataSchema } from './validation';
import { volumeDetail, volumeSummary } from './views';
import { volumeZoneRoutes } from './zones';
import { cinderFailure, snapshotRoutes } from './snapshots';
import { isTrue } from '../parameter-types';

declare module 'fastify' {
  interface FastifyRequest {
    volumeMicroversion: Microversion | null;
  }
}

const isAdmin = (ctx: RequestContext) => ctx.roles.includes('admin');

function versionDocument(deps: Pick<ApiDeps, 'publicUrl'>) {
  return {
    id: 'v3.0',
    status: 'CURRENT',
    version: formatVersion(MAX_VOLUME_MICROVERSION),
    min_version: formatVersion(MIN_VOLUME_MICROVERSION),
    updated: '2023-08-31T00:00:00Z',
    links: [
      { rel: 'describedby', type: 'text/html', href: 'https://docs.openstack.org/' },
      { rel: 'self', href: `${deps.publicUrl}/volume/v3/` },
    ],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.volume+json;version=3' }],
  };
}

// Cinder's create schema (cinder/api/schemas/volumes.py) refuses properties it does not know.
/** Cinder's volume update schema (cinder/api/schemas/volumes.py update). */
const updateBody = z.strictObject({
  volume: z.strictObject({
    name: z.string().max(255).nullable().optional(),
    description: z.string().max(255).nullable().optional(),
    display_name: z.string().max(255).nullable().optional(),
    display_description: z.string().max(255).nullable().optional(),
    metadata: cinderMetadataSchema.optional(),
  }),
});

const createBody = z.strictObject({
  volume: z.strictObject({
    // Cinder's volume_size_allows_null: a volume from a snapshot may leave it out (the snapshot's size).
    size: z
      .union([z.number().int(), z.string().regex(/^\d+$/).transform(Number)])
      .pipe(z.number().int().min(1).max(10_000))
      .nullable()
      .optional(),
    name: z.string().max(255).nullable().optional(),
    description: z.string().max(255).nullable().optional(),
    display_name: z.string().max(255).nullable().optional(),
    display_description: z.string().max(255).nullable().optional(),
    // Any name or id: one that is not the default type's is 404 (checked after the schema).
    volume_type: z.string().max(255).nullable().optional(),
    availability_zone: z.literal('nova').nullable().optional(),
    metadata: cinderMetadataSchema.nullable().optional(),
    imageRef: z.string().nullable().optional(),
    image_id: z.string().nullable().optional(),
    snapshot_id: z.string().uuid().nullable().optional(),
    source_volid: z.string().uuid().nullable().optional(),
    consistencygroup_id: z.null().optional(),
    backup_id: z.null().optional(),
    group_id: z.null().optional(),
    multiattach: z.literal(false).optional(),
  }),
  'OS-SCH-HNT:scheduler_hints': z.null().optional(),
});

const UUID_LIKE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/**
 * The sources a create may name that bootflow does not have, answered as Cinder answers an unknown one:
 * volume types other than the default, and source volumes (not cloned).
 */
export async function refuseMissingSources(
  body: Pick<z.infer<typeof createBody>['volume'], 'volume_type' | 'snapshot_id' | 'source_volid'>,
  sourceVolume: (id: string) => Promise<Volume>,
): Promise<void> {
  const type = body.volume_type;
  if (type && type !== '__DEFAULT__')
    throw new ApiError(
      404,
      UUID_LIKE.test(type)
        ? `Volume type ${type} could not be found.`
        : `Volume type with name ${type} could not be found.`,
    );
  if (body.source_volid) {
    await sourceVolume(body.source_volid);
    throw new ApiError(400, 'Invalid input received: bootflow does not clone volumes (source_volid).');
  }
}

async function v3(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const cinder = deps.cloud.cinder;
  app.decorateRequest('volumeMicroversion', null);
  const authenticate = requireAuth(deps);
  app.addHook('preHandler', async (request, reply) => {
    await authenticate(request, reply);
    const version = parseVolumeMicroversion(request);
    request.volumeMicroversion = version;
    versionHeaders(reply, version);
  });
  const ctxOf = (request: FastifyRequest) => authOf(request).ctx;
  const versionOf = (request: FastifyRequest) => request.volumeMicroversion ?? MIN_VOLUME_MICROVERSION;
  const base = `${deps.publicUrl}/volume/v3`;

  /** Both `/v3/volumes` and `/v3/{project_id}/volumes`; a project id in the path must be the token's. */
  function route(path: string): string[] {
    return [path, `/:projectId${path}`];
  }
  function checkProject(request: FastifyRequest): void {
    const { projectId } = request.params as { projectId?: string };
    const ctx = ctxOf(request);
    if (projectId !== undefined && projectId !== ctx.projectId && !isAdmin(ctx))
      throw new ApiError(400, 'Malformed request url');
  }

  async function visibleVolume(request: FastifyRequest): Promise<Volume> {
    const { volumeId } = request.params as { volumeId: string };
    return volumeById(volumeId, ctxOf(request));
  }

  async function volumeById(volumeId: string, ctx: RequestContext): Promise<Volume> {
    try {
      return await cinder.getVolume(volumeId, ctx);
    } catch (err) {
      if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest'))
        throw new ApiError(404, `Volume ${volumeId} could not be found.`);
      throw err;
    }
  }

  /** The caller's page of volumes (see list.ts) and its next link, for `/volumes` or `/volumes/detail`. */
  async function listed(request: FastifyRequest) {
    checkProject(request);
    const ctx = ctxOf(request);
    const q = Object.fromEntries(
      Object.entries(request.query as Record<string, unknown>).map(([k, v]) => [
        k,
        typeof v === 'string' ? v : undefined,
      ]),
    );
    const text = (key: string) => q[key];
    const allTenants = ['1', 'true', 'True'].includes(text('all_tenants') ?? '');
    // Cinder ignores all_tenants from a non-admin: they see their project's volumes either way.
    const projectFilter = isAdmin(ctx) ? (allTenants ? text('project_id') : ctx.projectId) : ctx.projectId;
    const volumes = await cinder.listVolumes(projectFilter ? { projectId: projectFilter } : {}, ctx);
    const path = request.url.split('?')[0]!.replace(/^\/volume/, '');
    return volumePage(volumes, q, `${deps.publicUrl}/volume${path}`);
  }

  for (const path of route('/volumes')) {
    app.get(path, async (request) => {
      // `GET /volumes/` is a show without an id in Cinder's router (404), not the list.
      if (request.url.split('?')[0]!.endsWith('/'))
        throw new ApiError(404, 'The resource could not be found.');
      const page = await listed(request);
      return {
        volumes: page.volumes.map((v) => volumeSummary(base, v)),
        ...(page.links.length ? { volumes_links: page.links } : {}),
      };
    });
    app.post(path, async (request, reply) => {
      checkProject(request);
      const ctx = ctxOf(request);
      // Cinder's volume:create: any member of the project (reader alone may not).
      requireMember(ctx, 'volume:create');
      const parsed = createBody.safeParse(request.body);
      if (!parsed.success) throw cinderBadRequest(parsed.error);
      const body = parsed.data.volume;
      await refuseMissingSources(body, (id) => volumeById(id, ctx));
      // Cinder looks the snapshot up (404 for one the caller cannot see); its size is the default size.
      const snapshot = body.snapshot_id
        ? await cinder.snapshots.get(body.snapshot_id, ctx).catch((err: unknown) => {
            throw isCloudError(err, 'NotFound')
              ? new ApiError(404, `Snapshot ${body.snapshot_id} could not be found.`)
              : err;
          })
        : undefined;
      const size = body.size ?? snapshot?.sizeGb;
      if (size === undefined)
        throw new ApiError(
          400,
          'Invalid input received: Invalid volume size provided for create request: None (size argument ' +
            'must be an integer (or string representation of an integer) and greater than zero).',
        );
      const description = body.description ?? body.display_description;
      const request_: CreateVolumeRequest = {
        // Each API call is its own creation, never a retry of another.
        requestKey: `api:${request.id}`,
        projectId: ctx.projectId,
        userId: ctx.userId,
        sizeGb: size,
        ...(snapshot ? { snapshotId: snapshot.id } : {}),
        ...((body.name ?? body.display_name) ? { name: (body.name ?? body.display_name)! } : {}),
        ...(description ? { description } : {}),
        ...(body.metadata ? { metadata: body.metadata } : {}),
      };
      const imageRef = body.imageRef ?? body.image_id;
      if (imageRef) {
        let location;
        let minDisk: number;
        try {
          const image = await deps.cloud.glance.getImage(imageRef, ctx);
          if (image.id !== imageRef) throw new Error('by name');
          minDisk = image.minDisk;
          location = await deps.cloud.glance.imageLocation(image);
        } catch (err) {
          if (isCloudError(err) && err.type !== 'NotFound' && err.type !== 'BadRequest')
            throw new ApiError(
              400,
              `Invalid image identifier or unable to access requested image. ${err.message}`,
            );
          throw new ApiError(400, `Invalid image identifier or unable to access requested image.`);
        }
        // Cinder's _check_image_metadata: the volume holds at least the image's min_disk.
        if (minDisk > size)
          throw new ApiError(
            400,
            `Invalid input received: Volume size ${size}GB cannot be smaller than the image minDisk size ${minDisk}GB.`,
          );
        request_.imageSource = location;
      }
      const volume = await cinder.createVolume(request_).catch((err: unknown) => {
        throw cinderFailure(err);
      });
      return reply
        .code(202)
        .send({ volume: volumeDetail(base, volume, versionOf(request), isAdmin(ctx), true) });
    });
  }

  for (const path of route('/volumes/detail')) {
    app.get(path, async (request) => {
      const ctx = ctxOf(request);
      const page = await listed(request);
      return {
        volumes: page.volumes.map((v) => volumeDetail(base, v, versionOf(request), isAdmin(ctx))),
        ...(page.links.length ? { volumes_links: page.links } : {}),
      };
    });
  }

  // Cinder's volume summary (3.12; the metadata of every volume, each key's values, from 3.36).
  for (const path of route('/volumes/summary')) {
    app.get(path, async (request) => {
      checkProject(request);
      const version = versionOf(request);
      if (version.minor < 12)
        throw new ApiError(404, `API version ${formatVersion(version)} is not supported on this method.`);
      const ctx = ctxOf(request);
      const allTenants = ['1', 'true', 'True'].includes(
        String((request.query as Record<string, unknown>).all_tenants ?? ''),
      );
      const volumes = await cinder.listVolumes(
        isAdmin(ctx) && allTenants ? {} : { projectId: ctx.projectId },
        ctx,
      );
      const metadata: Record<string, string[]> = {};
      for (const v of volumes)
        for (const [key, value] of Object.entries(v.metadata))
          if (!(metadata[key] ??= []).includes(value)) metadata[key].push(value);
      return {
        'volume-summary': {
          total_size: volumes.reduce((sum, v) => sum + v.sizeGb, 0),
          total_count: volumes.length,
          ...(version.minor >= 36 ? { metadata } : {}),
        },
      };
    });
  }

  for (const path of route('/volumes/:volumeId')) {
    app.get(path, async (request) => {
      checkProject(request);
      return {
        volume: volumeDetail(base, await visibleVolume(request), versionOf(request), isAdmin(ctxOf(request))),
      };
    });
    app.put(path, async (request) => {
      checkProject(request);
      const parsed = updateBody.safeParse(request.body);
      if (!parsed.success) throw cinderBadRequest(parsed.error);
      const volume = await visibleVolume(request);
      const ctx = ctxOf(request);
      requireMember(ctx, 'volume:update');
      const body = parsed.data.volume;
      const name = body.name !== undefined ? body.name : body.display_name;
      const description = body.description !== undefined ? body.description : body.display_description;
      const updated = await cinder.updateVolume(
        volume.id,
        {
          ...(name !== undefined ? { name } : {}),
          ...(description !== undefined ? { description } : {}),
          ...(body.metadata !== undefined ? { metadata: body.metadata } : {}),
        },
        ctx,
      );
      // Cinder's update answers the view without the show extensions, as create does.
      return { volume: volumeDetail(base, updated, versionOf(request), isAdmin(ctx), true) };
    });
    app.delete(path, async (request, reply) => {
      checkProject(request);
      const volume = await visibleVolume(request);
      // Cinder's `cascade` query parameter: the volume's snapshots are deleted with it.
      const cascade = isTrue(String((request.query as Record<string, unknown>).cascade ?? 'false'));
      try {
        await cinder.deleteVolume(volume.id, cascade ? { cascade } : {}, ctxOf(request));
      } catch (err) {
        // Cinder's InvalidVolume is 400 "Invalid volume: ...".
        if (isCloudError(err, 'InvalidVolume')) throw new ApiError(400, err.message);
        throw err;
      }
      return reply.code(202).send();
    });
  }

  await volumeMetadataRoutes(app, { cinder, route, checkProject, visibleVolume, ctxOf });
  await volumeZoneRoutes(app, route);

  await volumeActionRoutes(app, {
    cinder,
    route,
    checkProject,
    visibleVolume,
    ctxOf,
    glance: deps.cloud.glance,
  });
  await snapshotRoutes(app, {
    cinder,
    route,
    checkProject,
    ctxOf,
    versionOf,
    publicVolumeUrl: () => `${deps.publicUrl}/volume`,
  });
}

export const volumeApi: ServicePlugin = async (app, deps) => {
  app.get('/', async (_request, reply) => reply.code(300).send({ versions: [versionDocument(deps)] }));
  app.get('/v3', async () => ({ versions: [versionDocument(deps)] }));
  await app.register(async (scope) => v3(scope, deps), { prefix: '/v3' });
};
