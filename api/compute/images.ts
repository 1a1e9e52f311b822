/**
 * /images (nova/api/openstack/compute/images.py, views/images.py), up to 2.35: Nova's proxy to Glance,
 * read from and written to bootflow's Glance with the caller's visibility and Glance's policies (Nova has
 * no policy of its own here). The list's filters are Nova's (name, status, changes-since, server, type,
 * minRam, minDisk, property-*) turned into Glance's as nova/image/glance.py does; newest first, as Glance
 * lists; `limit`/`marker` with `images_links`. The image's extra properties are its `metadata`
 * (image-metadata.ts changes them).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isCloudError } from '../../cloud/errors';
import type { Image, ListImagesFilter } from '../../cloud/glance';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { isotime, MAX_LIMIT, nextLink, queryOf, resourceLinks } from './common';
import { pageParam, proxyUntil, refuseEmptyId } from './proxy-common';

/** ViewBuilder._get_status and _get_progress. */
const STATUS: Record<string, string> = {
  active: 'ACTIVE',
  queued: 'SAVING',
  saving: 'SAVING',
  deleted: 'DELETED',
  pending_delete: 'DELETED',
  killed: 'ERROR',
};
const PROGRESS: Record<string, number> = { queued: 25, saving: 50, active: 100 };
/** The statuses Glance's list takes as a filter (an unknown one is its 400); bootflow stores four. */
const GLANCE_STATUSES = new Set([
  'queued',
  'saving',
  'active',
  'killed',
  'deleted',
  'deactivated',
  'uploading',
  'importing',
  'pending_delete',
]);
const STORED_STATUSES = new Set(['queued', 'saving', 'active', 'deactivated']);

export const imageNotFound = () => new ApiError(404, 'Image not found.');

function imageLinks(deps: ApiDeps, id: string) {
  return [
    ...resourceLinks(deps, 'images', id),
    {
      rel: 'alternate',
      type: 'application/vnd.openstack.image',
      href: `${deps.publicUrl}/image/images/${id}`,
    },
  ];
}

function basicView(deps: ApiDeps, image: Image) {
  return { id: image.id, name: image.name, links: imageLinks(deps, image.id) };
}

/** ViewBuilder.show: Glance's image in Nova's v1-like terms. */
export function imageView(deps: ApiDeps, image: Image) {
  const view: Record<string, unknown> = {
    id: image.id,
    name: image.name,
    minRam: image.minRam,
    minDisk: image.minDisk,
    metadata: image.properties,
    created: isotime(image.createdAt),
    updated: isotime(image.updatedAt),
    status: STATUS[image.status] ?? 'UNKNOWN',
    progress: PROGRESS[image.status] ?? 0,
    // nova/image/glance.py: an image without data has size 0.
    'OS-EXT-IMG-SIZE:size': image.size ?? 0,
    links: imageLinks(deps, image.id),
  };
  const server = image.properties.instance_uuid;
  if (server !== undefined) view.server = { id: server, links: resourceLinks(deps, 'servers', server) };
  const autoDiskConfig = image.properties.auto_disk_config;
  if (autoDiskConfig !== undefined)
    view['OS-DCF:diskConfig'] = ['1', 't', 'true', 'on', 'y', 'yes'].includes(autoDiskConfig.toLowerCase())
      ? 'AUTO'
      : 'MANUAL';
  return view;
}

/** The image by id as the caller's Glance shows it (no lookup by name here), else Nova's 404. */
export async function visibleImage(deps: ApiDeps, request: FastifyRequest, id: string): Promise<Image> {
  try {
    const image = await deps.cloud.glance.getImage(id, authOf(request).ctx);
    if (image.id === id) return image;
  } catch (err) {
    if (!isCloudError(err, 'NotFound') && !isCloudError(err, 'BadRequest')) throw err;
  }
  throw imageNotFound();
}

const integerFilter = (name: string, value: string): number => {
  if (!/^[0-9]+$/.test(value)) throw new ApiError(400, `Invalid input received: ${name} must be an integer`);
  return Number(value);
};

/** ImagesController._get_filters, then glance.py's _extract_query_params_v2. */
function glanceFilter(request: FastifyRequest): { filter: ListImagesFilter; changesSince?: number } {
  const q = queryOf(request);
  const properties: Record<string, string> = {};
  for (const [key, value] of Object.entries(q))
    if (key.startsWith('property-') && value !== undefined) properties[key.slice('property-'.length)] = value;
  if (q.server !== undefined) properties.instance_uuid = q.server.split('/').at(-1) ?? q.server;
  if (q.type !== undefined) properties.image_type = q.type;
  const filter: ListImagesFilter = { properties };
  if (q.name !== undefined) filter.name = q.name;
  if (q.status !== undefined) {
    const status = q.status.toLowerCase();
    if (!GLANCE_STATUSES.has(status)) throw new ApiError(400, `Invalid status value: ${status}`);
    filter.status = status as NonNullable<ListImagesFilter['status']>;
  }
  if (q.minRam !== undefined) filter.minRam = integerFilter('min_ram', q.minRam);
  if (q.minDisk !== undefined) filter.minDisk = integerFilter('min_disk', q.minDisk);
  const since = q['changes-since'];
  if (since === undefined) return { filter };
  const changesSince = Date.parse(since);
  if (Number.isNaN(changesSince)) throw new ApiError(400, 'Invalid time format for updated_at.');
  return { filter, changesSince };
}

async function listImages(deps: ApiDeps, request: FastifyRequest, detail: boolean) {
  proxyUntil(request);
  refuseEmptyId(request);
  const q = queryOf(request);
  const limit = pageParam('limit', q.limit);
  const { filter, changesSince } = glanceFilter(request);
  const status = filter.status;
  let images =
    status !== undefined && !STORED_STATUSES.has(status)
      ? []
      : await deps.cloud.glance.listImages(authOf(request).ctx, filter);
  if (changesSince !== undefined) images = images.filter((i) => i.updatedAt >= changesSince);
  // Glance's order: newest first.
  images = [...images].reverse();
  if (q.marker !== undefined) {
    const at = images.findIndex((i) => i.id === q.marker);
    if (at < 0) throw new ApiError(400, `Invalid marker. Image ${q.marker} could not be found.`);
    images = images.slice(at + 1);
  }
  // A limit of 0 is no limit (nova passes none to Glance) and gets no next link.
  const page = limit ? images.slice(0, Math.min(limit, MAX_LIMIT)) : images;
  const max = limit === undefined ? MAX_LIMIT : Math.min(limit, MAX_LIMIT);
  const path = detail ? 'images/detail' : 'images';
  return {
    images: page.map((i) => (detail ? imageView(deps, i) : basicView(deps, i))),
    ...(max > 0 && page.length === max
      ? { images_links: nextLink(deps, request, path, page.at(-1)!.id) }
      : {}),
  };
}

async function deleteImage(deps: ApiDeps, request: FastifyRequest): Promise<void> {
  proxyUntil(request);
  const { id } = request.params as { id: string };
  const image = await visibleImage(deps, request, id);
  try {
    await deps.cloud.glance.deleteImage(image.id, authOf(request).ctx);
  } catch (err) {
    if (isCloudError(err, 'NotFound')) throw imageNotFound();
    // glanceclient's HTTPForbidden is ImageNotAuthorized.
    if (isCloudError(err, 'Forbidden')) throw new ApiError(403, 'You are not allowed to delete the image.');
    throw err;
  }
}

export async function imageRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/images', (request) => listImages(deps, request, false));
  app.get('/images/detail', (request) => listImages(deps, request, true));
  app.get('/images/:id', async (request) => {
    proxyUntil(request);
    const { id } = request.params as { id: string };
    return { image: imageView(deps, await visibleImage(deps, request, id)) };
  });
  app.delete('/images/:id', async (request, reply) => {
    await deleteImage(deps, request);
    return reply.code(204).send();
  });
}
