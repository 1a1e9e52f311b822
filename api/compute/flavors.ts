/**
 * /flavors (nova/api/openstack/compute/flavors.py, views/flavors.py): list, detail and show with Nova's
 * filters (minRam, minDisk, is_public), sorting and pagination, and the flavor's extra specs; create
 * (public or private), update and delete for an admin (os-flavor-manage). A private flavor is seen by an
 * admin and by the projects on its access list (flavor-access.ts); every flavor is enabled.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { RequestContext } from '../../cloud/keystone';
import type { Flavor, FlavorExtras, FlavorListFilter } from '../../cloud/nova';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { FALSE_STRINGS, isTrue, parameterBoolean, TRUE_STRINGS } from '../parameter-types';
import { authOf } from '../auth';
import {
  can,
  enforcePolicy,
  isAdmin,
  nextLink,
  paginate,
  parseBody,
  parseLimit,
  queryOf,
  resourceLinks,
} from './common';
import { serverNameSchema } from './server-schema';
import { atLeast } from './microversion';

const NO_EXTRAS: FlavorExtras = { description: null, extraSpecs: {}, isPublic: true };

function flavorBasic(deps: ApiDeps, request: FastifyRequest, flavor: Flavor, extras = NO_EXTRAS) {
  return {
    id: flavor.id,
    name: flavor.name,
    links: resourceLinks(deps, 'flavors', flavor.id),
    ...(atLeast(request, 2, 55) ? { description: extras.description } : {}),
  };
}

function flavorDetail(deps: ApiDeps, request: FastifyRequest, flavor: Flavor, extras = NO_EXTRAS) {
  const { ctx } = authOf(request);
  return {
    id: flavor.id,
    name: flavor.name,
    ram: flavor.memoryMb,
    disk: flavor.rootGb,
    // Before 2.75 a flavor without swap shows "" (Nova's legacy), from 2.75 the integer 0.
    swap: flavor.swapMb === 0 && !atLeast(request, 2, 75) ? '' : flavor.swapMb,
    'OS-FLV-EXT-DATA:ephemeral': flavor.ephemeralGb,
    'OS-FLV-DISABLED:disabled': false,
    vcpus: flavor.vcpus,
    'os-flavor-access:is_public': extras.isPublic,
    rxtx_factor: 1.0,
    links: resourceLinks(deps, 'flavors', flavor.id),
    ...(atLeast(request, 2, 55) ? { description: extras.description } : {}),
    ...(atLeast(request, 2, 61) && can(ctx, 'os_compute_api:os-flavor-extra-specs:index', ctx.projectId)
      ? { extra_specs: extras.extraSpecs }
      : {}),
  };
}

function intParam(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new ApiError(400, `Invalid ${name} filter [${raw}]`);
  return Number(raw);
}

const SORT_KEYS: Record<string, (f: Flavor) => string | number> = {
  flavorid: (f) => f.id,
  id: (f) => f.id,
  name: (f) => f.name,
  memory_mb: (f) => f.memoryMb,
  root_gb: (f) => f.rootGb,
  vcpus: (f) => f.vcpus,
  ephemeral_gb: (f) => f.ephemeralGb,
  swap: (f) => f.swapMb,
};

/** flavors.py _parse_is_public: absent is true, "none" (any case) all flavors, else oslo's strict boolean. */
function parseIsPublic(raw: string | undefined): boolean | null {
  if (raw === undefined) return true;
  const value = raw.toLowerCase();
  if (value === 'none') return null;
  if (TRUE_STRINGS.includes(value)) return true;
  if (FALSE_STRINGS.includes(value)) return false;
  throw new ApiError(400, `Invalid is_public filter [${raw}]`);
}

/**
 * flavors.py _get_flavors: only an admin chooses with is_public; anyone else lists the public flavors and
 * those shared with its project (as does an admin by default).
 */
function listFilter(ctx: RequestContext, isPublic: string | undefined): FlavorListFilter {
  if (!isAdmin(ctx)) return { isPublic: true, projectId: ctx.projectId };
  return { isPublic: parseIsPublic(isPublic), projectId: ctx.projectId };
}

async function listFlavors(deps: ApiDeps, request: FastifyRequest, detail: boolean) {
  const { ctx } = authOf(request);
  const q = queryOf(request);
  const filter = listFilter(ctx, q.is_public);
  const minRam = intParam('minRam', q.minRam);
  const minDisk = intParam('minDisk', q.minDisk);
  const sortKey = q.sort_key ?? 'flavorid';
  const keyOf = SORT_KEYS[sortKey];
  if (!keyOf) throw new ApiError(400, `Invalid input for query parameters sort_key. Value: ${sortKey}.`);
  const sortDir = q.sort_dir ?? 'asc';
  if (sortDir !== 'asc' && sortDir !== 'desc')
    throw new ApiError(400, `Invalid input for query parameters sort_dir. Value: ${sortDir}.`);
  const flavors = (await deps.cloud.nova.listFlavors(filter)).filter(
    (f) => (minRam === undefined || f.memoryMb >= minRam) && (minDisk === undefined || f.rootGb >= minDisk),
  );
  flavors.sort((a, b) => {
    const x = keyOf(a);
    const y = keyOf(b);
    const order = x < y ? -1 : x > y ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    return sortDir === 'asc' ? order : -order;
  });
  const { page, more } = paginate(flavors, (f) => f.id, parseLimit(q.limit), q.marker);
  const path = detail ? 'flavors/detail' : 'flavors';
  const extras = await deps.cloud.nova.listFlavorExtras(page.map((f) => f.id));
  return {
    flavors: page.map((f) =>
      detail
        ? flavorDetail(deps, request, f, extras.get(f.id))
        : flavorBasic(deps, request, f, extras.get(f.id)),
    ),
    ...(more ? { flavors_links: nextLink(deps, request, path, page.at(-1)!.id) } : {}),
  };
}

/**
 * A flavor by its id as the caller may see it (Nova's _flavor_get_query_from_db): a private one only for
 * an admin or a project on its access list, 404 otherwise.
 */
export async function flavorById(deps: ApiDeps, ctx: RequestContext, id: string): Promise<Flavor> {
  const filter = isAdmin(ctx) ? {} : { isPublic: true, projectId: ctx.projectId };
  const flavor = (await deps.cloud.nova.listFlavors(filter)).find((f) => f.id === id);
  if (!flavor) throw new ApiError(404, `Flavor ${id} could not be found.`);
  return flavor;
}

/** os-flavor-manage's create body (schemas/flavor_manage.py), description from 2.55. */
function createSchema(request: FastifyRequest) {
  const size = (min: number) =>
    z.union([z.number().int().min(min), z.string().regex(/^[0-9]+$/)]).transform(Number);
  return z.strictObject({
    flavor: z.strictObject({
      name: serverNameSchema,
      // Nova: "Allow to create a flavor with int or string id" (an integer becomes its digits).
      id: z
        .union([z.string().min(1).max(255), z.number().int().min(0).transform(String), z.null()])
        .optional(),
      ram: size(1),
      vcpus: size(1),
      disk: size(0),
      'OS-FLV-EXT-DATA:ephemeral': size(0).optional(),
      swap: size(0).optional(),
      rxtx_factor: z.number().min(0).optional(),
      'os-flavor-access:is_public': parameterBoolean.optional(),
      ...(atLeast(request, 2, 55)
        ? { description: z.union([z.string().max(65535), z.null()]).optional() }
        : {}),
    }),
  });
}

export async function flavorRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.post('/flavors', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-flavor-manage:create');
    const f = parseBody(createSchema(request), request.body).flavor as Record<string, unknown> & {
      name: string;
      ram: number;
      vcpus: number;
      disk: number;
      id?: string | null;
      swap?: number;
      'os-flavor-access:is_public'?: boolean | string;
    };
    const isPublic = f['os-flavor-access:is_public'];
    const flavor = await deps.cloud.nova.createFlavor({
      id: f.id ?? randomUUID(),
      name: f.name,
      vcpus: f.vcpus,
      memoryMb: f.ram,
      rootGb: f.disk,
      ephemeralGb: (f['OS-FLV-EXT-DATA:ephemeral'] as number | undefined) ?? 0,
      swapMb: f.swap ?? 0,
      // Nova does not grant the creating project access to its private flavor (bug 1209101).
      isPublic: isPublic === undefined || isTrue(isPublic),
    });
    if (typeof f.description === 'string')
      await deps.cloud.nova.setFlavorDescription(flavor.id, f.description);
    return { flavor: flavorDetail(deps, request, flavor, await extrasOf(deps, flavor.id)) };
  });
  // os-flavor-manage update (2.55): the description only; 404 before 2.55 (no such route in Nova).
  app.put('/flavors/:id', async (request) => {
    if (!atLeast(request, 2, 55)) throw new ApiError(404, 'The resource could not be found.');
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-flavor-manage:update');
    const { id } = request.params as { id: string };
    const body = parseBody(
      z.strictObject({ flavor: z.strictObject({ description: z.union([z.string().max(65535), z.null()]) }) }),
      request.body,
    );
    const flavor = await flavorById(deps, ctx, id);
    await deps.cloud.nova.setFlavorDescription(id, body.flavor.description);
    return { flavor: flavorDetail(deps, request, flavor, await extrasOf(deps, id)) };
  });
  app.delete('/flavors/:id', async (request, reply) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-flavor-manage:delete');
    const { id } = request.params as { id: string };
    await deps.cloud.nova.deleteFlavor(id);
    return reply.code(202).send();
  });
  app.get('/flavors', (request) => listFlavors(deps, request, false));
  app.get('/flavors/detail', (request) => listFlavors(deps, request, true));
  app.get('/flavors/:id', async (request) => {
    const { ctx } = authOf(request);
    const { id } = request.params as { id: string };
    const flavor = await flavorById(deps, ctx, id);
    return { flavor: flavorDetail(deps, request, flavor, await extrasOf(deps, id)) };
  });
  await extraSpecRoutes(app, deps);
}

async function extrasOf(deps: ApiDeps, id: string): Promise<FlavorExtras> {
  return (await deps.cloud.nova.listFlavorExtras([id])).get(id) ?? NO_EXTRAS;
}

/** flavors_extraspecs.py: values may be strings, numbers or booleans (stored as their text). */
const specValue = z.union([z.string().max(255), z.number(), z.boolean()]).transform(String);
const specsBody = z.strictObject({
  extra_specs: z.record(
    z.string().regex(/^[a-zA-Z0-9\-_:. ]{1,255}$/, 'does not match any allowed key pattern'),
    specValue,
  ),
});

/** /flavors/{id}/os-extra_specs[/{key}]: reads for a reader, writes for an admin (Nova's defaults). */
async function extraSpecRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { nova } = deps.cloud;
  app.get('/flavors/:id/os-extra_specs', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-flavor-extra-specs:index', ctx.projectId);
    const { id } = request.params as { id: string };
    await flavorById(deps, ctx, id);
    return { extra_specs: (await extrasOf(deps, id)).extraSpecs };
  });
  app.get('/flavors/:id/os-extra_specs/:key', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-flavor-extra-specs:show', ctx.projectId);
    const { id, key } = request.params as { id: string; key: string };
    await flavorById(deps, ctx, id);
    const specs = (await extrasOf(deps, id)).extraSpecs;
    if (!Object.hasOwn(specs, key))
      throw new ApiError(404, `Flavor ${id} has no extra specs with key ${key}.`);
    return { [key]: specs[key] };
  });
  app.post('/flavors/:id/os-extra_specs', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-flavor-extra-specs:create');
    const { id } = request.params as { id: string };
    const body = parseBody(specsBody, request.body);
    await flavorById(deps, ctx, id);
    return { extra_specs: await nova.setFlavorExtraSpecs(id, body.extra_specs) };
  });
  app.put('/flavors/:id/os-extra_specs/:key', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-flavor-extra-specs:update');
    const { id, key } = request.params as { id: string; key: string };
    const body = parseBody(specsBody.shape.extra_specs, request.body);
    if (Object.keys(body).length > 1) throw new ApiError(400, 'Request body contains too many items');
    if (!Object.hasOwn(body, key)) throw new ApiError(400, 'Request body and URI mismatch');
    await flavorById(deps, ctx, id);
    await nova.setFlavorExtraSpecs(id, { [key]: body[key] as string });
    return { [key]: body[key] };
  });
  app.delete('/flavors/:id/os-extra_specs/:key', async (request, reply) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-flavor-extra-specs:delete');
    const { id, key } = request.params as { id: string; key: string };
    await flavorById(deps, ctx, id);
    await nova.deleteFlavorExtraSpec(id, key);
    // Nova answers 200 with no body (flavors_extraspecs.py delete; tempest's unset schema).
    return reply.code(200).send();
  });
}
