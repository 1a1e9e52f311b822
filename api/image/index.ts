/**
 * Glance v2 at /image: version discovery, images (list with filters, sorting and pagination, show, create,
 * PATCH, delete), tags, members, deactivate/reactivate, the image data (upload streamed into the store and
 * hashed, download streamed with Content-MD5) and the schemas. Glance's visibility rules are cloud/glance's.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import { CONTAINER_FORMATS, DISK_FORMATS, type CreateImageInput, type Image } from '../../cloud/glance';
import type { ServicePlugin } from '../app';
import { authOf, requireAuth } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { imageMembersRoutes } from './members';
import { metadefRoutes } from './metadefs';
import { taskRoutes } from './tasks';
import { applyPatch, parsePatch, PATCH_MEDIA_TYPES, unsupportedPatchType } from './patch';
import { CORE_ATTRIBUTES, imageSchema, imageView } from './views';

/** Glance's api_limit_max and limit_param_default. */
const LIMIT_MAX = 1000;
const LIMIT_DEFAULT = 25;

function versionsDocument(deps: Pick<ApiDeps, 'publicUrl'>) {
  const link = (v: string) => [{ rel: 'self', href: `${deps.publicUrl}/image/${v}/` }];
  return {
    versions: [
      { id: 'v2.16', status: 'CURRENT', links: link('v2') },
      ...['v2.15', 'v2.9', 'v2.7', 'v2.6', 'v2.5', 'v2.4', 'v2.3', 'v2.2', 'v2.1', 'v2.0'].map((id) => ({
        id,
        status: 'SUPPORTED',
        links: link('v2'),
      })),
    ],
  };
}

const createBody = z
  .object({
    id: z.string().optional(),
    name: z.string().max(255).nullable().optional(),
    disk_format: z.string().nullable().optional(),
    container_format: z.string().nullable().optional(),
    visibility: z.enum(['public', 'private', 'shared', 'community']).optional(),
    protected: z.boolean().optional(),
    min_disk: z.number().int().min(0).optional(),
    min_ram: z.number().int().min(0).optional(),
    tags: z.array(z.string().max(255)).optional(),
    os_hidden: z.boolean().optional(),
    /** Glance: another project than the caller's for an admin only (the cloud checks it). */
    owner: z.string().min(1).max(255).optional(),
  })
  .catchall(z.unknown());

function badRequest(message: string): ApiError {
  return new ApiError(400, message);
}

function parseCreate(body: unknown, projectId: string): CreateImageInput {
  const parsed = createBody.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badRequest(`Invalid input: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
  }
  const b = parsed.data;
  const properties: Record<string, string> = {};
  for (const [key, value] of Object.entries(b)) {
    if (CORE_ATTRIBUTES.has(key)) {
      if (
        [
          'status',
          'checksum',
          'size',
          'virtual_size',
          'created_at',
          'updated_at',
          'self',
          'file',
          'schema',
          'os_hash_algo',
          'os_hash_value',
          'direct_url',
          'locations',
        ].includes(key)
      )
        throw new ApiError(403, `Attribute '${key}' is read-only.`);
      continue;
    }
    if (['location', 'deleted', 'deleted_at'].includes(key) || key.startsWith('os_glance'))
      throw new ApiError(403, `Attribute '${key}' is reserved.`);
    if (key.length > 255) throw badRequest('Custom property should not be greater than 255 characters.');
    if (typeof value !== 'string')
      throw badRequest(`Provided object does not match schema 'image': ${key} is not a string`);
    properties[key] = value;
  }
  if (b.disk_format && !DISK_FORMATS.includes(b.disk_format as never))
    throw badRequest(`Invalid value '${b.disk_format}' for parameter 'disk_format'`);
  if (b.container_format && !CONTAINER_FORMATS.includes(b.container_format as never))
    throw badRequest(`Invalid value '${b.container_format}' for parameter 'container_format'`);
  return {
    ...(b.id ? { id: b.id } : {}),
    name: b.name ?? '',
    diskFormat: (b.disk_format || null) as CreateImageInput['diskFormat'],
    containerFormat: (b.container_format || null) as CreateImageInput['containerFormat'],
    ...(b.tags ? { tags: b.tags } : {}),
    ...(b.os_hidden !== undefined ? { osHidden: b.os_hidden } : {}),
    ...(b.visibility ? { visibility: b.visibility } : {}),
    ownerProjectId: b.owner ?? projectId,
    ...(b.min_disk !== undefined ? { minDisk: b.min_disk } : {}),
    ...(b.min_ram !== undefined ? { minRam: b.min_ram } : {}),
    ...(b.protected !== undefined ? { protected: b.protected } : {}),
    properties,
  };
}

/** Parameters Glance reads repeated (`tag=a&tag=b`, `sort_key=name&sort_key=size`). */
const REPEATABLE = new Set(['tag', 'sort_key', 'sort_dir']);

function query(request: FastifyRequest): { q: Record<string, string>; lists: Record<string, string[]> } {
  const q: Record<string, string> = {};
  const lists: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(request.query as Record<string, unknown>)) {
    const values = Array.isArray(value) ? value.map(String) : [String(value)];
    if (REPEATABLE.has(key)) lists[key] = values;
    else if (values.length !== 1) throw badRequest(`Query parameter ${key} given more than once`);
    else q[key] = values[0] as string;
  }
  return { q, lists };
}

const SORT_KEYS = [
  'name',
  'status',
  'container_format',
  'disk_format',
  'size',
  'id',
  'created_at',
  'updated_at',
];
const SORT_VALUE: Record<string, (i: Image) => string | number | null> = {
  name: (i) => i.name,
  status: (i) => i.status,
  container_format: (i) => i.containerFormat,
  disk_format: (i) => i.diskFormat,
  size: (i) => i.size,
  id: (i) => i.id,
  created_at: (i) => i.createdAt,
  updated_at: (i) => i.updatedAt,
};

/** Glance's two sorting syntaxes (`sort=name:asc,size` and `sort_key`/`sort_dir`), validated as it does. */
function sorting(
  q: Record<string, string>,
  lists: Record<string, string[]>,
): Array<[string, 'asc' | 'desc']> {
  const validKey = (k: string) => {
    if (!SORT_KEYS.includes(k))
      throw badRequest(`Invalid sort key: ${k}. It must be one of the following: ${SORT_KEYS.join(', ')}.`);
    return k;
  };
  const validDir = (d: string): 'asc' | 'desc' => {
    if (d !== 'asc' && d !== 'desc') throw badRequest(`Invalid sort direction: ${d}`);
    return d;
  };
  const keys: string[] = [];
  const dirs: Array<'asc' | 'desc'> = [];
  if (q.sort !== undefined) {
    if (lists.sort_key || lists.sort_dir) throw badRequest('Old and new sorting syntax cannot be combined');
    for (const part of q.sort.trim().split(',')) {
      const [key = '', dir] = part.split(':');
      keys.push(validKey(key.trim()));
      dirs.push(validDir((dir || 'desc').trim()));
    }
  } else {
    for (const k of lists.sort_key ?? []) keys.push(validKey(k.trim()));
    for (const d of lists.sort_dir ?? []) dirs.push(validDir(d.trim()));
    if (dirs.length > 1 && dirs.length !== keys.length)
      throw badRequest('Number of sort dirs does not match the number of sort keys');
  }
  if (!keys.length) keys.push('created_at');
  const out = keys.map((k, i): [string, 'asc' | 'desc'] => [k, dirs[i] ?? dirs[0] ?? 'desc']);
  // Glance pages by id after the keys asked for, so that equal keys keep a stable order.
  if (!keys.includes('id')) out.push(['id', out.at(-1)?.[1] ?? 'desc']);
  return out;
}

function compareBy(order: Array<[string, 'asc' | 'desc']>) {
  return (a: Image, b: Image): number => {
    for (const [key, dir] of order) {
      const get = SORT_VALUE[key] as (i: Image) => string | number | null;
      const x = get(a);
      const y = get(b);
      if (x === y) continue;
      const cmp = x === null ? -1 : y === null ? 1 : x < y ? -1 : 1;
      return dir === 'asc' ? cmp : -cmp;
    }
    return 0;
  };
}

/** The list's own parameters; any other is a filter on an extra property (Glance's property filter). */
const LIST_PARAMETERS = new Set([
  'limit',
  'marker',
  'sort',
  'member_status',
  'name',
  'status',
  'visibility',
  'owner',
  'id',
  'os_hidden',
  'protected',
  'size',
  'size_min',
  'size_max',
  'min_ram',
  'min_disk',
  'disk_format',
  'container_format',
  'checksum',
  'os_hash_value',
  'created_at',
  'updated_at',
]);

function propertyFilters(q: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(q).filter(([k]) => !LIST_PARAMETERS.has(k)));
}

function booleanFilter(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const v = value.toLowerCase();
  if (v !== 'true' && v !== 'false')
    throw badRequest(`Invalid value '${value}' for '${name}' filter. Valid values are 'true' or 'false'.`);
  return v === 'true';
}

function sizeFilter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw badRequest('Unable to filter on a range with a non-numeric value.');
  return Number(value);
}

async function imagesV2(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const glance = deps.cloud.glance;
  app.addHook('preHandler', requireAuth(deps));
  // Uploads are streamed as they arrive: the parser hands over the request stream, unread and unbounded
  // here (Glance's image_size_cap bounds it in the store).
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

  // glance/api/v2/discovery.py: the import methods enabled; bootflow has no image import (README "differ").
  app.get('/info/import', async () => ({
    'import-methods': { description: 'Import methods available.', type: 'array', value: [] },
  }));

  app.get('/schemas/image', async () => imageSchema());
  app.get('/schemas/images', async () => ({
    name: 'images',
    properties: {
      images: { type: 'array', items: imageSchema() },
      schema: { type: 'string' },
      first: { type: 'string' },
      next: { type: 'string' },
    },
    links: [
      { rel: 'first', href: '{first}' },
      { rel: 'next', href: '{next}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  }));

  app.get('/images', async (request) => {
    // `GET /v2/images/` is a show without an id in Glance's router (404), not the list.
    if (request.url.split('?')[0]!.endsWith('/')) throw new ApiError(404, 'The resource could not be found.');
    const { ctx } = authOf(request);
    const { q, lists } = query(request);
    const memberStatus = q.member_status ?? 'accepted';
    if (!['pending', 'accepted', 'rejected', 'all'].includes(memberStatus))
      throw badRequest(`Invalid status: ${memberStatus}`);
    const order = sorting(q, lists);
    const osHidden = booleanFilter('os_hidden', q.os_hidden) ?? false;
    const protectedFilter = booleanFilter('protected', q.protected);
    const limit = q.limit === undefined ? LIMIT_DEFAULT : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 0) throw badRequest('limit param must be an integer');
    const visibility = q.visibility;
    if (visibility && !['public', 'private', 'shared', 'community', 'all'].includes(visibility))
      throw badRequest(`Invalid visibility value: ${visibility}`);
    if (
      q.status &&
      ![
        'queued',
        'saving',
        'active',
        'deactivated',
        'killed',
        'deleted',
        'uploading',
        'importing',
        'pending_delete',
      ].includes(q.status)
    )
      throw badRequest(`Invalid status value: ${q.status}`);
    let images: Image[] =
      q.status && !['queued', 'saving', 'active', 'deactivated'].includes(q.status)
        ? []
        : await glance.listImages(ctx, {
            ...(q.name !== undefined ? { name: q.name } : {}),
            ...(q.status ? { status: q.status as 'active' } : {}),
            ...(visibility && visibility !== 'all' ? { visibility: visibility as 'public' } : {}),
            ...(q.owner ? { owner: q.owner } : {}),
            ...(lists.tag ? { tags: lists.tag.map((t) => t.trim()) } : {}),
            osHidden,
            ...(protectedFilter !== undefined ? { protected: protectedFilter } : {}),
            ...(q.size_min !== undefined ? { sizeMin: sizeFilter(q.size_min) } : {}),
            ...(q.size !== undefined ? { size: sizeFilter(q.size) } : {}),
            ...(q.min_ram !== undefined ? { minRam: sizeFilter(q.min_ram) } : {}),
            ...(q.min_disk !== undefined ? { minDisk: sizeFilter(q.min_disk) } : {}),
            ...(q.disk_format !== undefined ? { diskFormat: q.disk_format } : {}),
            ...(q.container_format !== undefined ? { containerFormat: q.container_format } : {}),
            ...(q.checksum !== undefined ? { checksum: q.checksum } : {}),
            ...(q.os_hash_value !== undefined ? { osHashValue: q.os_hash_value } : {}),
            properties: propertyFilters(q),
            ...(q.size_max !== undefined ? { sizeMax: sizeFilter(q.size_max) } : {}),
            memberStatus: memberStatus as 'accepted',
          });
    if (q.id !== undefined) {
      const ids = q.id.startsWith('in:') ? q.id.slice(3).split(',') : [q.id];
      images = images.filter((i) => ids.includes(i.id));
    }
    images = [...images].sort(compareBy(order));
    if (q.marker !== undefined) {
      const at = images.findIndex((i) => i.id === q.marker);
      if (at < 0) throw badRequest(`Invalid marker. Image ${q.marker} could not be found.`);
      images = images.slice(at + 1);
    }
    const page = images.slice(0, Math.min(limit, LIMIT_MAX));
    const params = new URLSearchParams([
      ...Object.entries(q).filter(([k]) => k !== 'marker'),
      ...Object.entries(lists).flatMap(([k, vs]) => vs.map((v): [string, string] => [k, v])),
    ]);
    const last = page.at(-1);
    return {
      images: page.map(imageView),
      schema: '/v2/schemas/images',
      first: `/v2/images${params.size ? `?${params}` : ''}`,
      ...(last && page.length < images.length
        ? { next: `/v2/images?${new URLSearchParams([...params, ['marker', last.id]])}` }
        : {}),
    };
  });

  /** Only ids address images in Glance's API. */
  const byId = async (request: FastifyRequest): Promise<Image> => {
    const { imageId } = request.params as { imageId: string };
    try {
      const image = await glance.getImage(imageId, authOf(request).ctx);
      if (image.id !== imageId) throw new Error('name');
      return image;
    } catch (err) {
      if (
        isCloudError(err, 'NotFound') ||
        isCloudError(err, 'BadRequest') ||
        (err as Error).message === 'name'
      )
        throw new ApiError(404, `No image found with ID ${imageId}`);
      throw err;
    }
  };

  app.get('/images/:imageId', async (request) => imageView(await byId(request)));

  app.post('/images', async (request, reply) => {
    const { ctx } = authOf(request);
    const image = await glance.createImage(parseCreate(request.body, ctx.projectId), ctx);
    return reply
      .code(201)
      .header('location', `${deps.publicUrl}/image/v2/images/${image.id}`)
      .send(imageView(image));
  });

  // PATCH bodies come in Glance's own media types; any other is 415 (its own scope, so that no other route
  // takes bodies of any type).
  await app.register(async (scope) => {
    scope.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
      const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
      if (!(type in PATCH_MEDIA_TYPES)) return done(unsupportedPatchType(), undefined);
      try {
        done(null, body === '' ? undefined : JSON.parse(String(body)));
      } catch {
        done(badRequest('Malformed JSON in request body.'), undefined);
      }
    });
    scope.patch('/images/:imageId', async (request) => {
      const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
      const draft = PATCH_MEDIA_TYPES[type];
      if (!draft) throw unsupportedPatchType();
      const changes = parsePatch(request.body, draft);
      const image = await byId(request);
      const { ctx } = authOf(request);
      const update = applyPatch(image, changes, draft, ctx.roles.includes('admin'));
      if (Object.keys(update).length === 0) return imageView(image);
      return imageView(await glance.updateImage(image.id, update, ctx));
    });
  });

  app.put('/images/:imageId/tags/:tag', async (request, reply) => {
    const image = await byId(request);
    const { tag } = request.params as { tag: string };
    if (tag.length > 255)
      throw badRequest(`Provided object does not match schema 'image': '${tag}' is too long`);
    await glance.addImageTag(image.id, tag, authOf(request).ctx);
    return reply.code(204).send();
  });

  app.delete('/images/:imageId/tags/:tag', async (request, reply) => {
    const image = await byId(request);
    const { tag } = request.params as { tag: string };
    await glance.removeImageTag(image.id, tag, authOf(request).ctx);
    return reply.code(204).send();
  });

  for (const action of ['deactivate', 'reactivate'] as const)
    app.post(`/images/:imageId/actions/${action}`, async (request, reply) => {
      const image = await byId(request);
      const { ctx } = authOf(request);
      if (action === 'deactivate') await glance.deactivateImage(image.id, ctx);
      else await glance.reactivateImage(image.id, ctx);
      return reply.code(204).send();
    });

  await metadefRoutes(app, glance.metadefs);
  await taskRoutes(app, glance.tasks, glance);
  await imageMembersRoutes(app, glance, byId);

  app.delete('/images/:imageId', async (request, reply) => {
    const image = await byId(request);
    await glance.deleteImage(image.id, authOf(request).ctx);
    return reply.code(204).send();
  });

  // The listener's JSON size limit does not apply to image data: Glance's image_size_cap does.
  app.put('/images/:imageId/file', { bodyLimit: glance.imageSizeCapBytes }, async (request, reply) => {
    const image = await byId(request);
    const body = request.body as NodeJS.ReadableStream | undefined;
    if (!body || typeof (body as { pipe?: unknown }).pipe !== 'function')
      throw new ApiError(415, 'Image data must be sent as application/octet-stream');
    try {
      await glance.uploadImageData(image.id, body as import('node:stream').Readable, {
        ctx: authOf(request).ctx,
      });
    } catch (err) {
      if (isCloudError(err, 'BadRequest') && /exceeds the size limit/.test(err.message))
        throw new ApiError(413, err.message);
      throw err;
    }
    return reply.code(204).send();
  });

  app.get('/images/:imageId/file', async (request, reply) => {
    const image = await byId(request);
    // Glance answers 204 for an image without data.
    if (!['active', 'deactivated'].includes(image.status) || image.size === null || image.checksum === null)
      return reply.code(204).send();
    const data = await glance.openImageData(image.id, authOf(request).ctx);
    return reply
      .header('content-type', 'application/octet-stream')
      .header('content-length', String(image.size))
      .header('content-md5', image.checksum)
      .send(data);
  });
}

export const imageApi: ServicePlugin = async (app, deps) => {
  app.get('/', async (_request, reply) => reply.code(300).send(versionsDocument(deps)));
  app.get('/versions', async () => versionsDocument(deps));
  await app.register(async (scope) => imagesV2(scope, deps), { prefix: '/v2' });
};
