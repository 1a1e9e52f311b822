/**
 * Glance v2 at /image: version discovery, images (list with filters and pagination, show, create, delete),
 * the image data (upload streamed into the store and hashed, download streamed with Content-MD5) and the
 * image schema. Glance's visibility rules are cloud/glance's.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { CreateImageInput, Image } from '../../cloud/glance';
import type { ServicePlugin } from '../app';
import { authOf, requireAuth } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
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
    tags: z.array(z.string()).max(0, 'image tags are not supported').optional(),
    os_hidden: z.literal(false).optional(),
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
          'owner',
        ].includes(key)
      )
        throw new ApiError(403, `Attribute '${key}' is read-only.`);
      continue;
    }
    if (typeof value !== 'string')
      throw badRequest(`Provided object does not match schema 'image': ${key} is not a string`);
    properties[key] = value;
  }
  if (!b.disk_format || !b.container_format)
    throw badRequest('bootflow images need disk_format and container_format at creation');
  return {
    ...(b.id ? { id: b.id } : {}),
    name: b.name ?? '',
    diskFormat: b.disk_format as CreateImageInput['diskFormat'],
    containerFormat: b.container_format as CreateImageInput['containerFormat'],
    ...(b.visibility ? { visibility: b.visibility } : {}),
    ownerProjectId: projectId,
    ...(b.min_disk !== undefined ? { minDisk: b.min_disk } : {}),
    ...(b.min_ram !== undefined ? { minRam: b.min_ram } : {}),
    ...(b.protected !== undefined ? { protected: b.protected } : {}),
    properties,
  };
}

function query(request: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(request.query as Record<string, unknown>)) {
    if (typeof value !== 'string') throw badRequest(`Query parameter ${key} given more than once`);
    out[key] = value;
  }
  return out;
}

async function imagesV2(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const glance = deps.cloud.glance;
  app.addHook('preHandler', requireAuth(deps));
  // Uploads are streamed as they arrive: the parser hands over the request stream, unread and unbounded
  // here (Glance's image_size_cap bounds it in the store).
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

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
    const { ctx } = authOf(request);
    const q = query(request);
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
          });
    if (q.id !== undefined) {
      const ids = q.id.startsWith('in:') ? q.id.slice(3).split(',') : [q.id];
      images = images.filter((i) => ids.includes(i.id));
    }
    // Glance's default order: newest first.
    images = [...images].reverse();
    if (q.marker !== undefined) {
      const at = images.findIndex((i) => i.id === q.marker);
      if (at < 0) throw badRequest(`Invalid marker. Image ${q.marker} could not be found.`);
      images = images.slice(at + 1);
    }
    const page = images.slice(0, Math.min(limit, LIMIT_MAX));
    const params = new URLSearchParams(Object.entries(q).filter(([k]) => k !== 'marker'));
    const last = page.at(-1);
    return {
      images: page.map(imageView),
      schema: '/v2/schemas/images',
      first: `/v2/images${params.size ? `?${params}` : ''}`,
      ...(last && page.length < images.length
        ? { next: `/v2/images?${new URLSearchParams({ ...Object.fromEntries(params), marker: last.id })}` }
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
    if (image.status !== 'active' || image.size === null || image.checksum === null)
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
