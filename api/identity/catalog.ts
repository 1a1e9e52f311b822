/**
 * Keystone's catalog administration (keystone/api/regions.py, services.py, endpoints.py, os_ep_filter.py):
 * `/v3/regions`, `/v3/services`, `/v3/endpoints` and `/v3/OS-EP-FILTER/endpoint_groups` (with their
 * projects). Keystone's default policies (keystone/common/policies/{region,service,endpoint,
 * endpoint_group}.py): writes are admin only; services, endpoints and endpoint groups are read by an admin
 * or a reader on a system-scoped token; regions by anyone with a token. Every token's catalog is built from
 * these rows (tokens.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import {
  INTERFACES,
  type Endpoint,
  type EndpointGroup,
  type Region,
  type Service,
} from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import {
  callerOf,
  enforceAdmin,
  enforceSystemReader,
  parseBody,
  queryParam,
  requireIdentityAuth,
} from './common';
import { lookups } from './lookups';
import { collectionLinks, projectView, v3Url } from './views';

type Json = z.core.util.JSONType;
const extras = (body: Record<string, unknown>, named: readonly string[]): Record<string, Json> =>
  Object.fromEntries(Object.entries(body).filter(([k]) => !named.includes(k))) as Record<string, Json>;
const nonEmpty = (o: object) => Object.keys(o).length > 0;

// Keystone's schemas (keystone/catalog/schema.py): extra properties are allowed and kept as `extra`.
const regionFields = {
  id: z.string().max(255).optional(),
  description: z.string().max(255).nullable().optional(),
  parent_region_id: z.string().min(1).max(255).nullable().optional(),
};
const regionCreate = z.object({ region: z.object(regionFields).catchall(z.json()) });
const regionUpdate = z.object({
  region: z.object(regionFields).catchall(z.json()).refine(nonEmpty, 'at least one property is required'),
});
const REGION_NAMED = ['id', 'description', 'parent_region_id', 'links'];

const serviceFields = {
  type: z.string().min(1).max(255),
  name: z.string().min(1).max(255).optional(),
  enabled: z.boolean().optional(),
};
const serviceCreate = z.object({ service: z.object(serviceFields).catchall(z.json()) });
const serviceUpdate = z.object({
  service: z
    .object({ ...serviceFields, type: serviceFields.type.optional() })
    .catchall(z.json())
    .refine(nonEmpty, 'at least one property is required'),
});
const SERVICE_NAMED = ['id', 'type', 'enabled', 'links'];

const endpointFields = {
  interface: z.enum(INTERFACES),
  service_id: z.string().min(1).max(64),
  url: z
    .string()
    .max(225)
    .regex(/^[a-zA-Z0-9+.-]+:.+/, "does not match '^[a-zA-Z0-9+.-]+:.+'"),
  region_id: z.string().min(1).max(255).nullable().optional(),
  region: z.string().min(1).max(255).nullable().optional(),
  enabled: z.boolean().optional(),
};
const endpointCreate = z.object({
  endpoint: z.object({ ...endpointFields, id: z.string().min(1).max(64).optional() }).catchall(z.json()),
});
const endpointUpdate = z.object({
  endpoint: z
    .object({
      interface: endpointFields.interface.optional(),
      service_id: endpointFields.service_id.optional(),
      url: endpointFields.url.optional(),
      region_id: endpointFields.region_id,
      region: endpointFields.region,
      enabled: endpointFields.enabled,
      id: z.string().optional(),
    })
    .catchall(z.json())
    .refine(nonEmpty, 'at least one property is required'),
});
const ENDPOINT_NAMED = ['id', 'interface', 'service_id', 'url', 'region_id', 'region', 'enabled', 'links'];

const groupFilters = z
  .object({
    interface: z.enum(INTERFACES).optional(),
    service_id: z.string().min(1).max(64).optional(),
    region_id: z.string().min(1).max(255).nullable().optional(),
  })
  .catchall(z.json());
const groupFields = {
  name: z.string().min(1).max(255),
  description: z.string().max(4096).nullable().optional(),
  filters: groupFilters.optional(),
};
const groupCreate = z.object({ endpoint_group: z.strictObject(groupFields) });
const groupUpdate = z.object({
  endpoint_group: z
    .strictObject({ ...groupFields, name: groupFields.name.optional() })
    .refine(nonEmpty, 'at least one property is required'),
});
const VALID_FILTERS = ['service_id', 'region_id', 'interface'];

/** Keystone's _require_valid_filter and its `filters field is required and cannot be empty`. */
function checkFilters(filters: Record<string, unknown> | undefined, required: boolean) {
  if (filters === undefined || Object.keys(filters).length === 0) {
    if (!required && filters === undefined) return undefined;
    throw new ApiError(400, 'filters field is required and cannot be empty', 'ValidationError');
  }
  if (Object.keys(filters).some((k) => !VALID_FILTERS.includes(k)))
    throw new ApiError(
      400,
      `Expecting to find ${VALID_FILTERS.join(' or ')} in endpoint_group. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.`,
      'ValidationError',
    );
  return filters as {
    interface?: (typeof INTERFACES)[number];
    service_id?: string;
    region_id?: string | null;
  };
}

/** Keystone's _require_matching_id: a body naming another id than the path's is 400. */
function matchingId(body: Record<string, unknown>, id: string): void {
  if (body.id !== undefined && body.id !== id) throw new ApiError(400, 'Cannot change ID', 'ValidationError');
}

export async function catalogRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const catalog = deps.cloud.keystone.catalog;
  const { projectById } = lookups(deps.cloud.keystone);
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const params = (request: FastifyRequest) => request.params as Record<string, string>;

  const regionView = (r: Region) => ({
    ...r.extra,
    id: r.id,
    description: r.description,
    parent_region_id: r.parentRegionId,
    links: { self: v3Url(deps, `/regions/${r.id}`) },
  });
  const serviceView = (s: Service) => ({
    ...s.extra,
    id: s.id,
    type: s.type,
    enabled: s.enabled,
    links: { self: v3Url(deps, `/services/${s.id}`) },
  });
  const endpointView = (e: Endpoint) => ({
    ...e.extra,
    id: e.id,
    interface: e.interface,
    region_id: e.regionId,
    region: e.regionId,
    service_id: e.serviceId,
    url: e.url,
    enabled: e.enabled,
    links: { self: v3Url(deps, `/endpoints/${e.id}`) },
  });
  const groupView = (g: EndpointGroup) => ({
    id: g.id,
    name: g.name,
    description: g.description,
    filters: g.filters,
    links: { self: v3Url(deps, `/OS-EP-FILTER/endpoint_groups/${g.id}`) },
  });

  // ---- regions -------------------------------------------------------------------------------------------

  app.get('/v3/regions', authenticated, async (request) => {
    const parent = queryParam(request, 'parent_region_id');
    const regions = await catalog.listRegions(parent !== undefined ? { parentRegionId: parent } : {});
    return { regions: regions.map(regionView), links: collectionLinks(deps, '/regions') };
  });

  const createRegion = async (request: FastifyRequest, pathId?: string) => {
    enforceAdmin(callerOf(request), 'identity:create_region');
    const { region: body } = parseBody(regionCreate, request.body);
    if (pathId !== undefined && body.id !== undefined && body.id !== pathId)
      throw new ApiError(
        400,
        `Conflicting region IDs specified: "${pathId}" != "${body.id}"`,
        'ValidationError',
      );
    const id = pathId ?? (body.id === '' ? undefined : body.id);
    const region = await catalog.createRegion({
      ...(id !== undefined ? { id } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.parent_region_id !== undefined ? { parentRegionId: body.parent_region_id } : {}),
      extra: extras(body, REGION_NAMED),
    });
    return { region: regionView(region) };
  };
  app.post('/v3/regions', authenticated, async (request, reply) =>
    reply.code(201).send(await createRegion(request)),
  );
  app.put('/v3/regions/:regionId', authenticated, async (request, reply) =>
    reply.code(201).send(await createRegion(request, params(request).regionId)),
  );

  app.get('/v3/regions/:regionId', authenticated, async (request) => ({
    region: regionView(await catalog.getRegion(params(request).regionId!)),
  }));

  app.patch('/v3/regions/:regionId', authenticated, async (request) => {
    enforceAdmin(callerOf(request), 'identity:update_region');
    const id = params(request).regionId!;
    const { region: body } = parseBody(regionUpdate, request.body);
    matchingId(body, id);
    const region = await catalog.updateRegion({
      id,
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.parent_region_id !== undefined ? { parentRegionId: body.parent_region_id } : {}),
      extra: extras(body, REGION_NAMED),
    });
    return { region: regionView(region) };
  });

  app.delete('/v3/regions/:regionId', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:delete_region');
    await catalog.deleteRegion(params(request).regionId!);
    return reply.code(204).send();
  });

  // ---- services ------------------------------------------------------------------------------------------

  app.get('/v3/services', authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:list_services');
    const [type, name] = [queryParam(request, 'type'), queryParam(request, 'name')];
    const services = await catalog.listServices({
      ...(type !== undefined ? { type } : {}),
      ...(name !== undefined ? { name } : {}),
    });
    return { services: services.map(serviceView), links: collectionLinks(deps, '/services') };
  });

  app.post('/v3/services', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:create_service');
    const { service: body } = parseBody(serviceCreate, request.body);
    const service = await catalog.createService({
      type: body.type,
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      extra: extras(body, SERVICE_NAMED),
    });
    return reply.code(201).send({ service: serviceView(service) });
  });

  app.get('/v3/services/:serviceId', authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:get_service');
    return { service: serviceView(await catalog.getService(params(request).serviceId!)) };
  });

  app.patch('/v3/services/:serviceId', authenticated, async (request) => {
    enforceAdmin(callerOf(request), 'identity:update_service');
    const id = params(request).serviceId!;
    const { service: body } = parseBody(serviceUpdate, request.body);
    matchingId(body, id);
    const service = await catalog.updateService({
      id,
      ...(body.type !== undefined ? { type: body.type } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      extra: extras(body, SERVICE_NAMED),
    });
    return { service: serviceView(service) };
  });

  app.delete('/v3/services/:serviceId', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:delete_service');
    await catalog.deleteService(params(request).serviceId!);
    return reply.code(204).send();
  });

  // ---- endpoints -----------------------------------------------------------------------------------------

  /**
   * Keystone's _validate_endpoint_region: `region_id` must name a region; the legacy `region` (v2 style)
   * creates the region when it does not exist.
   */
  async function regionOf(body: {
    region_id?: string | null | undefined;
    region?: string | null | undefined;
  }) {
    if (body.region_id !== undefined || body.region === undefined) return body.region_id;
    if (body.region !== null) {
      try {
        await catalog.getRegion(body.region);
      } catch (err) {
        if (!isCloudError(err, 'NotFound')) throw err;
        try {
          await catalog.createRegion({ id: body.region });
        } catch (conflict) {
          if (!isCloudError(conflict, 'Conflict')) throw conflict;
        }
      }
    }
    return body.region;
  }

  app.get('/v3/endpoints', authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:list_endpoints');
    const [iface, serviceId, regionId] = ['interface', 'service_id', 'region_id'].map((k) =>
      queryParam(request, k),
    );
    const endpoints = await catalog.listEndpoints({
      ...(iface !== undefined ? { interface: iface } : {}),
      ...(serviceId !== undefined ? { serviceId } : {}),
      ...(regionId !== undefined ? { regionId } : {}),
    });
    return { endpoints: endpoints.map(endpointView), links: collectionLinks(deps, '/endpoints') };
  });

  app.post('/v3/endpoints', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:create_endpoint');
    const { endpoint: body } = parseBody(endpointCreate, request.body);
    const regionId = await regionOf(body);
    const endpoint = await catalog.createEndpoint({
      interface: body.interface,
      serviceId: body.service_id,
      url: body.url,
      ...(regionId !== undefined ? { regionId } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      extra: extras(body, ENDPOINT_NAMED),
    });
    return reply.code(201).send({ endpoint: endpointView(endpoint) });
  });

  app.get('/v3/endpoints/:endpointId', authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:get_endpoint');
    return { endpoint: endpointView(await catalog.getEndpoint(params(request).endpointId!)) };
  });

  app.patch('/v3/endpoints/:endpointId', authenticated, async (request) => {
    enforceAdmin(callerOf(request), 'identity:update_endpoint');
    const id = params(request).endpointId!;
    const { endpoint: body } = parseBody(endpointUpdate, request.body);
    matchingId(body, id);
    await catalog.getEndpoint(id);
    const regionId = await regionOf(body);
    const endpoint = await catalog.updateEndpoint({
      id,
      ...(body.interface !== undefined ? { interface: body.interface } : {}),
      ...(body.service_id !== undefined ? { serviceId: body.service_id } : {}),
      ...(body.url !== undefined ? { url: body.url } : {}),
      ...(regionId !== undefined ? { regionId } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      extra: extras(body, ENDPOINT_NAMED),
    });
    return { endpoint: endpointView(endpoint) };
  });

  app.delete('/v3/endpoints/:endpointId', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:delete_endpoint');
    await catalog.deleteEndpoint(params(request).endpointId!);
    return reply.code(204).send();
  });

  // ---- endpoint groups (OS-EP-FILTER) --------------------------------------------------------------------

  const groups = '/v3/OS-EP-FILTER/endpoint_groups';

  app.get(groups, authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:list_endpoint_groups');
    const name = queryParam(request, 'name');
    const list = await catalog.listEndpointGroups(name !== undefined ? { name } : {});
    return {
      endpoint_groups: list.map(groupView),
      links: collectionLinks(deps, '/OS-EP-FILTER/endpoint_groups'),
    };
  });

  app.post(groups, authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:create_endpoint_group');
    const { endpoint_group: body } = parseBody(groupCreate, request.body);
    const filters = checkFilters(body.filters, true)!;
    const group = await catalog.createEndpointGroup({
      name: body.name,
      ...(body.description !== undefined ? { description: body.description } : {}),
      filters,
    });
    return reply.code(201).send({ endpoint_group: groupView(group) });
  });

  app.get(`${groups}/:groupId`, authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:get_endpoint_group');
    return { endpoint_group: groupView(await catalog.getEndpointGroup(params(request).groupId!)) };
  });

  app.patch(`${groups}/:groupId`, authenticated, async (request) => {
    enforceAdmin(callerOf(request), 'identity:update_endpoint_group');
    const id = params(request).groupId!;
    const { endpoint_group: body } = parseBody(groupUpdate, request.body);
    const filters = checkFilters(body.filters, false);
    const group = await catalog.updateEndpointGroup({
      id,
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(filters !== undefined ? { filters } : {}),
    });
    return { endpoint_group: groupView(group) };
  });

  app.delete(`${groups}/:groupId`, authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:delete_endpoint_group');
    await catalog.deleteEndpointGroup(params(request).groupId!);
    return reply.code(204).send();
  });

  app.get(`${groups}/:groupId/endpoints`, authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:list_endpoints_associated_with_endpoint_group');
    const id = params(request).groupId!;
    return {
      endpoints: (await catalog.endpointsInGroup(id)).map(endpointView),
      links: collectionLinks(deps, `/OS-EP-FILTER/endpoint_groups/${id}/endpoints`),
    };
  });

  app.get(`${groups}/:groupId/projects`, authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:list_projects_associated_with_endpoint_group');
    const id = params(request).groupId!;
    const projects = await Promise.all((await catalog.projectsOfEndpointGroup(id)).map(projectById));
    return {
      projects: projects.map((p) => projectView(deps, p)),
      links: collectionLinks(deps, `/OS-EP-FILTER/endpoint_groups/${id}/projects`),
    };
  });

  const association = `${groups}/:groupId/projects/:projectId`;
  app.get(association, authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:get_endpoint_group_in_project');
    const { groupId, projectId } = params(request) as { groupId: string; projectId: string };
    await projectById(projectId);
    await catalog.getEndpointGroup(groupId);
    if (!(await catalog.isEndpointGroupInProject(groupId, projectId)))
      throw new ApiError(
        404,
        `Could not find endpoint group project association: ${groupId} ${projectId}.`,
        'NotFound',
      );
    return {
      project_endpoint_group: {
        endpoint_group_id: groupId,
        project_id: projectId,
        links: { self: v3Url(deps, `/OS-EP-FILTER/endpoint_groups/${groupId}/projects/${projectId}`) },
      },
    };
  });

  app.put(association, authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:add_endpoint_group_to_project');
    const { groupId, projectId } = params(request) as { groupId: string; projectId: string };
    await projectById(projectId);
    await catalog.addEndpointGroupToProject(groupId, projectId);
    return reply.code(204).send();
  });

  app.delete(association, authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:remove_endpoint_group_from_project');
    const { groupId, projectId } = params(request) as { groupId: string; projectId: string };
    await projectById(projectId);
    await catalog.getEndpointGroup(groupId);
    await catalog.removeEndpointGroupFromProject(groupId, projectId);
    return reply.code(204).send();
  });

  app.get('/v3/OS-EP-FILTER/projects/:projectId/endpoint_groups', authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:list_endpoint_groups_for_project');
    const { projectId } = params(request) as { projectId: string };
    await projectById(projectId);
    return {
      endpoint_groups: (await catalog.endpointGroupsOfProject(projectId)).map(groupView),
      links: collectionLinks(deps, `/OS-EP-FILTER/projects/${projectId}/endpoint_groups`),
    };
  });
}
