/**
 * /images/{id}/metadata[/{key}] (nova/api/openstack/compute/image_metadata.py), up to 2.38: an image's
 * Glance extra properties through Nova. Reads as the caller's Glance shows the image; a change is checked
 * against the metadata_items quota (403 "Image metadata limit exceeded") and written as Nova's glance
 * update with purge_props does: the properties become exactly the new set, in one Glance update with
 * Glance's policies (another project's image, or a reader: 403 "Not authorized for image <id>.").
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { Image } from '../../cloud/glance';
import { MAX_METADATA_ITEMS } from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { parseBody } from './common';
import { visibleImage } from './images';
import { proxyUntil } from './proxy-common';
import { metadataSchema } from './server-schema';

/** The image metadata API went with 2.39 (its own end, not the other proxies' 2.35). */
const LAST_MINOR = 38;

const metadataBody = z.strictObject({ metadata: metadataSchema });
/** schemas/image_metadata.py update: exactly one item. */
const metaBody = z.strictObject({
  meta: metadataSchema.refine((m) => Object.keys(m).length === 1, 'Request body must have exactly one item'),
});

async function imageOf(deps: ApiDeps, request: FastifyRequest): Promise<Image> {
  proxyUntil(request, LAST_MINOR);
  const { id } = request.params as { id: string };
  return visibleImage(deps, request, id);
}

/** Glance's update with purge_props: the properties become `wanted`, removed ones deleted. */
async function saveProperties(
  deps: ApiDeps,
  request: FastifyRequest,
  image: Image,
  wanted: Record<string, string>,
): Promise<Record<string, string>> {
  // common.check_img_metadata_properties_quota.
  if (Object.keys(wanted).length > MAX_METADATA_ITEMS)
    throw new ApiError(403, 'Image metadata limit exceeded');
  const properties: Record<string, string | null> = { ...wanted };
  for (const key of Object.keys(image.properties)) if (!Object.hasOwn(wanted, key)) properties[key] = null;
  try {
    const saved = await deps.cloud.glance.updateImage(image.id, { properties }, authOf(request).ctx);
    return saved.properties;
  } catch (err) {
    if (isCloudError(err, 'Forbidden')) throw new ApiError(403, `Not authorized for image ${image.id}.`);
    if (isCloudError(err, 'NotFound')) throw new ApiError(404, 'Image not found.');
    if (isCloudError(err, 'BadRequest') || isCloudError(err, 'ImageLimitExceeded'))
      throw new ApiError(400, err.message);
    throw err;
  }
}

export async function imageMetadataRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/images/:id/metadata', async (request) => ({
    metadata: (await imageOf(deps, request)).properties,
  }));
  app.get('/images/:id/metadata/:key', async (request) => {
    const image = await imageOf(deps, request);
    const { key } = request.params as { key: string };
    if (!Object.hasOwn(image.properties, key)) throw new ApiError(404, 'The resource could not be found.');
    return { meta: { [key]: image.properties[key] } };
  });
  app.post('/images/:id/metadata', async (request) => {
    proxyUntil(request, LAST_MINOR);
    const body = parseBody(metadataBody, request.body);
    const image = await imageOf(deps, request);
    return {
      metadata: await saveProperties(deps, request, image, { ...image.properties, ...body.metadata }),
    };
  });
  app.put('/images/:id/metadata', async (request) => {
    proxyUntil(request, LAST_MINOR);
    const body = parseBody(metadataBody, request.body);
    const image = await imageOf(deps, request);
    await saveProperties(deps, request, image, body.metadata);
    return { metadata: body.metadata };
  });
  app.put('/images/:id/metadata/:key', async (request) => {
    proxyUntil(request, LAST_MINOR);
    const body = parseBody(metaBody, request.body);
    const { key } = request.params as { key: string };
    if (!Object.hasOwn(body.meta, key)) throw new ApiError(400, 'Request body and URI mismatch');
    const image = await imageOf(deps, request);
    const value = body.meta[key] as string;
    await saveProperties(deps, request, image, { ...image.properties, [key]: value });
    return { meta: { [key]: value } };
  });
  app.delete('/images/:id/metadata/:key', async (request, reply) => {
    const image = await imageOf(deps, request);
    const { key } = request.params as { key: string };
    if (!Object.hasOwn(image.properties, key)) throw new ApiError(404, 'Invalid metadata key');
    const rest = Object.fromEntries(Object.entries(image.properties).filter(([k]) => k !== key));
    await saveProperties(deps, request, image, rest);
    return reply.code(204).send();
  });
}
