/**
 * Keystone's catalog (keystone/catalog/core.py and backends/sql.py): regions (a tree), services, their
 * endpoints, and OS-EP-FILTER's endpoint groups, which restrict the catalog of the projects they are given
 * to. Every token's catalog is read from these rows (tokenCatalog); the bootstrap seeds them (ensureService,
 * as keystone-manage bootstrap and DevStack do). Inputs are validated here too: bad input is a BadRequest
 * that changes nothing.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Clock } from '../clock';
import type { ServiceDb } from '../db';
import { isUniqueViolation } from '../db';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import type { EndpointsTable, KeystoneDb, RegionsTable, ServicesTable } from './schema';
import { parseExtra } from './views';

const newId = (): string => randomUUID().replace(/-/g, '');

export const INTERFACES = ['public', 'internal', 'admin'] as const;
export type Interface = (typeof INTERFACES)[number];

export interface Region {
  id: string;
  description: string;
  parentRegionId: string | null;
  extra: Record<string, unknown>;
}

export interface Service {
  id: string;
  type: string;
  enabled: boolean;
  /** name, description and any other attribute a client sent (Keystone keeps them in `extra`). */
  extra: Record<string, unknown>;
}

export interface Endpoint {
  id: string;
  interface: Interface;
  regionId: string | null;
  serviceId: string;
  url: string;
  enabled: boolean;
  extra: Record<string, unknown>;
}

export interface EndpointGroupFilters {
  interface?: Interface | undefined;
  service_id?: string | undefined;
  region_id?: string | null | undefined;
}

export interface EndpointGroup {
  id: string;
  name: string;
  description: string | null;
  filters: EndpointGroupFilters;
}

/** One service of a token's catalog, in Keystone's v3 format. */
export interface CatalogEntry {
  id: string;
  type: string;
  name: string;
  endpoints: Array<{
    id: string;
    interface: Interface;
    region: string | null;
    region_id: string | null;
    url: string;
  }>;
}

const extraSchema = z
  .record(z.string().max(255), z.json())
  .refine((e) => JSON.stringify(e).length <= 65536, 'extra attributes exceed 64 KiB');
const regionIdSchema = z.string().min(1).max(255);
const interfaceSchema = z.enum(INTERFACES);
// Keystone's endpoint url: `^[a-zA-Z0-9+.-]+:.+`, at most 225 characters.
const urlSchema = z
  .string()
  .max(225)
  .regex(/^[a-zA-Z0-9+.-]+:.+/, 'must be a URL');

const createRegionRequest = z.strictObject({
  id: regionIdSchema.optional(),
  description: z.string().max(255).nullable().optional(),
  parentRegionId: regionIdSchema.nullable().optional(),
  extra: extraSchema.optional(),
});
const updateRegionRequest = createRegionRequest.extend({ id: regionIdSchema });
const createServiceRequest = z.strictObject({
  type: z.string().min(1).max(255),
  enabled: z.boolean().optional(),
  extra: extraSchema.optional(),
});
const updateServiceRequest = z.strictObject({
  id: idSchema,
  type: z.string().min(1).max(255).optional(),
  enabled: z.boolean().optional(),
  extra: extraSchema.optional(),
});
const createEndpointRequest = z.strictObject({
  id: idSchema.optional(),
  interface: interfaceSchema,
  serviceId: idSchema,
  url: urlSchema,
  regionId: regionIdSchema.nullable().optional(),
  enabled: z.boolean().optional(),
  extra: extraSchema.optional(),
});
const updateEndpointRequest = z.strictObject({
  id: idSchema,
  interface: interfaceSchema.optional(),
  serviceId: idSchema.optional(),
  url: urlSchema.optional(),
  regionId: regionIdSchema.nullable().optional(),
  enabled: z.boolean().optional(),
  extra: extraSchema.optional(),
});
const filtersSchema = z
  .strictObject({
    interface: interfaceSchema.optional(),
    service_id: idSchema.optional(),
    region_id: regionIdSchema.nullable().optional(),
  })
  .refine((f) => Object.keys(f).length > 0, 'filters field is required and cannot be empty');
const createEndpointGroupRequest = z.strictObject({
  name: z.string().min(1).max(255),
  description: z.string().max(4096).nullable().optional(),
  filters: filtersSchema,
});
const updateEndpointGroupRequest = z.strictObject({
  id: idSchema,
  name: z.string().min(1).max(255).optional(),
  description: z.string().max(4096).nullable().optional(),
  filters: filtersSchema.optional(),
});

export type CreateRegionInput = z.input<typeof createRegionRequest>;
export type UpdateRegionInput = z.input<typeof updateRegionRequest>;
export type CreateServiceInput = z.input<typeof createServiceRequest>;
export type UpdateServiceInput = z.input<typeof updateServiceRequest>;
export type CreateEndpointInput = z.input<typeof createEndpointRequest>;
export type UpdateEndpointInput = z.input<typeof updateEndpointRequest>;
export type CreateEndpointGroupInput = z.input<typeof createEndpointGroupRequest>;
export type UpdateEndpointGroupInput = z.input<typeof updateEndpointGroupRequest>;

const toRegion = (r: RegionsTable): Region => ({
  id: r.id,
  description: r.description,
  parentRegionId: r.parent_region_id,
  extra: parseExtra(r.extra),
});
const toService = (r: ServicesTable): Service => ({
  id: r.id,
  type: r.type,
  enabled: r.enabled === 1,
  extra: parseExtra(r.extra),
});
const toEndpoint = (r: EndpointsTable): Endpoint => ({
  id: r.id,
  interface: r.interface as Interface,
  regionId: r.region_id,
  serviceId: r.service_id,
  url: r.url,
  enabled: r.enabled === 1,
  extra: parseExtra(r.extra),
});

const notFound = (kind: string, id: string) =>
  new CloudError('NotFound', `Could not find ${kind}: ${id}.`, { [kind.replace(/ /g, '')]: id });

/** Keystone's ValidationError of an endpoint naming a region or service that does not exist. */
const missingReference = (attribute: string, target: string) =>
  new CloudError(
    'BadRequest',
    `Expecting to find ${attribute} in ${target}. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.`,
  );

/**
 * Keystone's format_url: `$(project_id)s`, `$(tenant_id)s` and `$(user_id)s` substituted; an endpoint
 * that needs a project, in a catalog without one (a domain- or system-scoped token), is left out.
 */
function formatUrl(url: string, values: Record<string, string | undefined>): string | undefined {
  let missing = false;
  const out = url.replace(/\$\((\w+)\)s/g, (whole, key: string) => {
    const value = values[key];
    if (value === undefined) {
      missing = true;
      return whole;
    }
    return value;
  });
  return missing ? undefined : out;
}

export class Catalog {
  constructor(
    private readonly store: ServiceDb<KeystoneDb>,
    private readonly clock: Clock,
  ) {}

  private get db(): Kysely<KeystoneDb> {
    return this.store.db;
  }

  // ---- regions -------------------------------------------------------------------------------------------

  private async regionRow(db: Kysely<KeystoneDb>, id: string): Promise<RegionsTable> {
    const row = await db.selectFrom('regions').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('region', id);
    return row;
  }

  /** Keystone's create_region: an id of one's own (Conflict if taken) or a new one; the parent must exist. */
  async createRegion(input: CreateRegionInput): Promise<Region> {
    const r = parseRequest(createRegionRequest, input, 'region');
    const row: RegionsTable = {
      id: r.id ?? newId(),
      description: r.description ?? '',
      parent_region_id: r.parentRegionId ?? null,
      extra: JSON.stringify(r.extra ?? {}),
      created_at: this.clock.now(),
    };
    await this.store.transaction(async (trx) => {
      if (row.parent_region_id !== null) await this.regionRow(trx, row.parent_region_id);
      try {
        await trx.insertInto('regions').values(row).execute();
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        throw new CloudError(
          'Conflict',
          `Conflict occurred attempting to store region - Duplicate ID, ${row.id}.`,
        );
      }
    });
    return toRegion(row);
  }

  async getRegion(id: string): Promise<Region> {
    return toRegion(await this.regionRow(this.db, parseRequest(regionIdSchema, id, 'region id')));
  }

  async listRegions(filter: { parentRegionId?: string } = {}): Promise<Region[]> {
    let query = this.db.selectFrom('regions').selectAll();
    if (filter.parentRegionId !== undefined)
      query = query.where('parent_region_id', '=', filter.parentRegionId);
    return (await query.orderBy('created_at').orderBy('id').execute()).map(toRegion);
  }

  /** Keystone's update_region: a new parent must exist and not make a circle (400). */
  async updateRegion(input: UpdateRegionInput): Promise<Region> {
    const r = parseRequest(updateRegionRequest, input, 'region update');
    return this.store.transaction(async (trx) => {
      const current = await this.regionRow(trx, r.id);
      const parent = r.parentRegionId === undefined ? current.parent_region_id : r.parentRegionId;
      if (parent !== null && parent !== current.parent_region_id) {
        // Walk up from the new parent: meeting this region is a circle.
        for (let at: string | null = parent; at !== null;) {
          if (at === r.id)
            throw new CloudError(
              'BadRequest',
              `The specified parent region ${parent} would create a circular region hierarchy.`,
            );
          at = (await this.regionRow(trx, at)).parent_region_id;
        }
      }
      const row: RegionsTable = {
        ...current,
        ...(r.description !== undefined ? { description: r.description ?? '' } : {}),
        parent_region_id: parent,
        extra: JSON.stringify({ ...parseExtra(current.extra), ...r.extra }),
      };
      await trx
        .updateTable('regions')
        .set({ description: row.description, parent_region_id: row.parent_region_id, extra: row.extra })
        .where('id', '=', r.id)
        .execute();
      return toRegion(row);
    });
  }

  /**
   * Keystone's delete_region: with its child regions, unless it or one of them has endpoints (403
   * RegionDeletionError).
   */
  async deleteRegion(id: string): Promise<void> {
    const regionId = parseRequest(regionIdSchema, id, 'region id');
    await this.store.transaction(async (trx) => {
      await this.regionRow(trx, regionId);
      const subtree = [regionId];
      for (let i = 0; i < subtree.length; i++) {
        const children = await trx
          .selectFrom('regions')
          .select('id')
          .where('parent_region_id', '=', subtree[i]!)
          .execute();
        for (const c of children) if (!subtree.includes(c.id)) subtree.push(c.id);
      }
      const used = await trx
        .selectFrom('endpoints')
        .select('id')
        .where('region_id', 'in', subtree)
        .executeTakeFirst();
      if (used)
        throw new CloudError(
          'Forbidden',
          `Unable to delete region ${regionId} because it or its child regions have associated endpoints.`,
        );
      for (const r of subtree.reverse()) await trx.deleteFrom('regions').where('id', '=', r).execute();
    });
  }

  // ---- services ------------------------------------------------------------------------------------------

  private async serviceRow(db: Kysely<KeystoneDb>, id: string): Promise<ServicesTable> {
    const row = await db.selectFrom('services').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('service', id);
    return row;
  }

  /** Keystone's create_service: enabled by default, `name` '' when not given (kept in extra). */
  async createService(input: CreateServiceInput): Promise<Service> {
    const r = parseRequest(createServiceRequest, input, 'service');
    const row: ServicesTable = {
      id: newId(),
      type: r.type,
      enabled: r.enabled === false ? 0 : 1,
      extra: JSON.stringify({ name: '', ...r.extra }),
      created_at: this.clock.now(),
    };
    await this.db.insertInto('services').values(row).execute();
    return toService(row);
  }

  async getService(id: string): Promise<Service> {
    return toService(await this.serviceRow(this.db, parseRequest(idSchema, id, 'service id')));
  }

  /** Keystone's list_services, with its `type` and `name` filters. */
  async listServices(filter: { type?: string; name?: string } = {}): Promise<Service[]> {
    let query = this.db.selectFrom('services').selectAll();
    if (filter.type !== undefined) query = query.where('type', '=', filter.type);
    const rows = (await query.orderBy('created_at').orderBy('id').execute()).map(toService);
    return filter.name === undefined ? rows : rows.filter((s) => s.extra.name === filter.name);
  }

  async updateService(input: UpdateServiceInput): Promise<Service> {
    const r = parseRequest(updateServiceRequest, input, 'service update');
    return this.store.transaction(async (trx) => {
      const current = await this.serviceRow(trx, r.id);
      const row: ServicesTable = {
        ...current,
        ...(r.type !== undefined ? { type: r.type } : {}),
        ...(r.enabled !== undefined ? { enabled: r.enabled ? 1 : 0 } : {}),
        extra: JSON.stringify({ ...parseExtra(current.extra), ...r.extra }),
      };
      await trx
        .updateTable('services')
        .set({ type: row.type, enabled: row.enabled, extra: row.extra })
        .where('id', '=', r.id)
        .execute();
      return toService(row);
    });
  }

  /** Keystone's delete_service: the service and its endpoints. */
  async deleteService(id: string): Promise<void> {
    const serviceId = parseRequest(idSchema, id, 'service id');
    await this.store.transaction(async (trx) => {
      await this.serviceRow(trx, serviceId);
      await trx.deleteFrom('endpoints').where('service_id', '=', serviceId).execute();
      await trx.deleteFrom('services').where('id', '=', serviceId).execute();
    });
  }

  // ---- endpoints -----------------------------------------------------------------------------------------

  private async endpointRow(db: Kysely<KeystoneDb>, id: string): Promise<EndpointsTable> {
    const row = await db.selectFrom('endpoints').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('endpoint', id);
    return row;
  }

  /** The region and service an endpoint names must exist (Keystone's ValidationError, 400). */
  private async checkReferences(
    trx: Kysely<KeystoneDb>,
    regionId: string | null | undefined,
    serviceId: string | undefined,
  ): Promise<void> {
    if (
      regionId !== null &&
      regionId !== undefined &&
      !(await trx.selectFrom('regions').select('id').where('id', '=', regionId).executeTakeFirst())
    )
      throw missingReference('endpoint region_id', 'region table');
    if (
      serviceId !== undefined &&
      !(await trx.selectFrom('services').select('id').where('id', '=', serviceId).executeTakeFirst())
    )
      throw missingReference('endpoint service_id', 'service table');
  }

  async createEndpoint(input: CreateEndpointInput): Promise<Endpoint> {
    const r = parseRequest(createEndpointRequest, input, 'endpoint');
    const row: EndpointsTable = {
      id: r.id ?? newId(),
      interface: r.interface,
      region_id: r.regionId ?? null,
      service_id: r.serviceId,
      url: r.url,
      enabled: r.enabled === false ? 0 : 1,
      extra: JSON.stringify(r.extra ?? {}),
      created_at: this.clock.now(),
    };
    await this.store.transaction(async (trx) => {
      await this.checkReferences(trx, row.region_id, row.service_id);
      try {
        await trx.insertInto('endpoints').values(row).execute();
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        throw new CloudError(
          'Conflict',
          `Conflict occurred attempting to store endpoint - Duplicate ID, ${row.id}.`,
        );
      }
    });
    return toEndpoint(row);
  }

  async getEndpoint(id: string): Promise<Endpoint> {
    return toEndpoint(await this.endpointRow(this.db, parseRequest(idSchema, id, 'endpoint id')));
  }

  /** Keystone's list_endpoints, with its `interface`, `service_id` and `region_id` filters. */
  async listEndpoints(
    filter: { interface?: string; serviceId?: string; regionId?: string } = {},
  ): Promise<Endpoint[]> {
    let query = this.db.selectFrom('endpoints').selectAll();
    if (filter.interface !== undefined) query = query.where('interface', '=', filter.interface);
    if (filter.serviceId !== undefined) query = query.where('service_id', '=', filter.serviceId);
    if (filter.regionId !== undefined) query = query.where('region_id', '=', filter.regionId);
    return (await query.orderBy('created_at').orderBy('id').execute()).map(toEndpoint);
  }

  async updateEndpoint(input: UpdateEndpointInput): Promise<Endpoint> {
    const r = parseRequest(updateEndpointRequest, input, 'endpoint update');
    return this.store.transaction(async (trx) => {
      const current = await this.endpointRow(trx, r.id);
      await this.checkReferences(trx, r.regionId, r.serviceId);
      const row: EndpointsTable = {
        ...current,
        ...(r.interface !== undefined ? { interface: r.interface } : {}),
        ...(r.serviceId !== undefined ? { service_id: r.serviceId } : {}),
        ...(r.url !== undefined ? { url: r.url } : {}),
        ...(r.regionId !== undefined ? { region_id: r.regionId } : {}),
        ...(r.enabled !== undefined ? { enabled: r.enabled ? 1 : 0 } : {}),
        extra: JSON.stringify({ ...parseExtra(current.extra), ...r.extra }),
      };
      const { id: _id, created_at: _created, ...changes } = row;
      await trx.updateTable('endpoints').set(changes).where('id', '=', r.id).execute();
      return toEndpoint(row);
    });
  }

  async deleteEndpoint(id: string): Promise<void> {
    const endpointId = parseRequest(idSchema, id, 'endpoint id');
    const res = await this.db.deleteFrom('endpoints').where('id', '=', endpointId).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound('endpoint', endpointId);
  }

  // ---- endpoint groups (OS-EP-FILTER) --------------------------------------------------------------------

  private async groupRow(db: Kysely<KeystoneDb>, id: string): Promise<EndpointGroup> {
    const row = await db.selectFrom('endpoint_groups').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound('endpoint group', id);
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      filters: JSON.parse(row.filters) as EndpointGroupFilters,
    };
  }

  async createEndpointGroup(input: CreateEndpointGroupInput): Promise<EndpointGroup> {
    const r = parseRequest(createEndpointGroupRequest, input, 'endpoint group');
    const group: EndpointGroup = {
      id: newId(),
      name: r.name,
      description: r.description ?? null,
      filters: r.filters,
    };
    await this.db
      .insertInto('endpoint_groups')
      .values({
        id: group.id,
        name: group.name,
        description: group.description,
        filters: JSON.stringify(group.filters),
        created_at: this.clock.now(),
      })
      .execute();
    return group;
  }

  async getEndpointGroup(id: string): Promise<EndpointGroup> {
    return this.groupRow(this.db, parseRequest(idSchema, id, 'endpoint group id'));
  }

  async listEndpointGroups(filter: { name?: string } = {}): Promise<EndpointGroup[]> {
    let query = this.db.selectFrom('endpoint_groups').select('id');
    if (filter.name !== undefined) query = query.where('name', '=', filter.name);
    const ids = await query.orderBy('created_at').orderBy('id').execute();
    return Promise.all(ids.map((r) => this.groupRow(this.db, r.id)));
  }

  async updateEndpointGroup(input: UpdateEndpointGroupInput): Promise<EndpointGroup> {
    const r = parseRequest(updateEndpointGroupRequest, input, 'endpoint group update');
    return this.store.transaction(async (trx) => {
      const current = await this.groupRow(trx, r.id);
      const group: EndpointGroup = {
        ...current,
        ...(r.name !== undefined ? { name: r.name } : {}),
        ...(r.description !== undefined ? { description: r.description } : {}),
        ...(r.filters !== undefined ? { filters: r.filters } : {}),
      };
      await trx
        .updateTable('endpoint_groups')
        .set({ name: group.name, description: group.description, filters: JSON.stringify(group.filters) })
        .where('id', '=', r.id)
        .execute();
      return group;
    });
  }

  async deleteEndpointGroup(id: string): Promise<void> {
    const groupId = parseRequest(idSchema, id, 'endpoint group id');
    const res = await this.db.deleteFrom('endpoint_groups').where('id', '=', groupId).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound('endpoint group', groupId);
  }

  /** The endpoints an endpoint group's filters match (Keystone's get_endpoints_filtered_by_endpoint_group). */
  async endpointsInGroup(id: string): Promise<Endpoint[]> {
    const group = await this.getEndpointGroup(id);
    return (await this.listEndpoints()).filter((e) => matches(e, group.filters));
  }

  /** PUT /v3/OS-EP-FILTER/endpoint_groups/{g}/projects/{p} (again: a no-op); the project must exist. */
  async addEndpointGroupToProject(groupId: string, projectId: string): Promise<void> {
    const [g, p] = [
      parseRequest(idSchema, groupId, 'endpoint group id'),
      parseRequest(idSchema, projectId, 'project id'),
    ];
    await this.store.transaction(async (trx) => {
      await this.groupRow(trx, g);
      if (!(await trx.selectFrom('projects').select('id').where('id', '=', p).executeTakeFirst()))
        throw notFound('project', p);
      const existing = await trx
        .selectFrom('project_endpoint_groups')
        .select('project_id')
        .where('endpoint_group_id', '=', g)
        .where('project_id', '=', p)
        .executeTakeFirst();
      if (!existing)
        await trx
          .insertInto('project_endpoint_groups')
          .values({ endpoint_group_id: g, project_id: p })
          .execute();
    });
  }

  async removeEndpointGroupFromProject(groupId: string, projectId: string): Promise<void> {
    const res = await this.db
      .deleteFrom('project_endpoint_groups')
      .where('endpoint_group_id', '=', parseRequest(idSchema, groupId, 'endpoint group id'))
      .where('project_id', '=', parseRequest(idSchema, projectId, 'project id'))
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0)
      throw new CloudError(
        'NotFound',
        `Could not find endpoint group project association: ${groupId} ${projectId}.`,
      );
  }

  async isEndpointGroupInProject(groupId: string, projectId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('project_endpoint_groups')
      .select('project_id')
      .where('endpoint_group_id', '=', parseRequest(idSchema, groupId, 'endpoint group id'))
      .where('project_id', '=', parseRequest(idSchema, projectId, 'project id'))
      .executeTakeFirst();
    return row !== undefined;
  }

  async projectsOfEndpointGroup(groupId: string): Promise<string[]> {
    const g = parseRequest(idSchema, groupId, 'endpoint group id');
    await this.groupRow(this.db, g);
    const rows = await this.db
      .selectFrom('project_endpoint_groups')
      .select('project_id')
      .where('endpoint_group_id', '=', g)
      .orderBy('project_id')
      .execute();
    return rows.map((r) => r.project_id);
  }

  async endpointGroupsOfProject(projectId: string): Promise<EndpointGroup[]> {
    const rows = await this.db
      .selectFrom('project_endpoint_groups')
      .select('endpoint_group_id')
      .where('project_id', '=', parseRequest(idSchema, projectId, 'project id'))
      .orderBy('endpoint_group_id')
      .execute();
    return Promise.all(rows.map((r) => this.groupRow(this.db, r.endpoint_group_id)));
  }

  // ---- the token's catalog -------------------------------------------------------------------------------

  /**
   * Keystone's get_v3_catalog: the enabled services with their enabled endpoints, URLs substituted; for a
   * project that endpoint groups are given to, only the endpoints they match (and the services left with
   * some).
   */
  async tokenCatalog(scope: { userId: string; projectId?: string }): Promise<CatalogEntry[]> {
    const services = await this.db
      .selectFrom('services')
      .selectAll()
      .where('enabled', '=', 1)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    const endpoints = (await this.listEndpoints()).filter((e) => e.enabled);
    const groups = scope.projectId ? await this.endpointGroupsOfProject(scope.projectId) : [];
    const visible = (e: Endpoint) => groups.length === 0 || groups.some((g) => matches(e, g.filters));
    const values = {
      user_id: scope.userId,
      project_id: scope.projectId,
      tenant_id: scope.projectId,
    };
    const catalog: CatalogEntry[] = [];
    for (const s of services) {
      const entries = endpoints
        .filter((e) => e.serviceId === s.id && visible(e))
        .flatMap((e) => {
          const url = formatUrl(e.url, values);
          return url === undefined
            ? []
            : [{ id: e.id, interface: e.interface, region: e.regionId, region_id: e.regionId, url }];
        });
      if (groups.length > 0 && entries.length === 0) continue;
      const name = parseExtra(s.extra).name;
      catalog.push({
        id: s.id,
        type: s.type,
        name: typeof name === 'string' ? name : '',
        endpoints: entries,
      });
    }
    return catalog;
  }

  /**
   * What keystone-manage bootstrap (and DevStack's service registration) does, idempotently: the region,
   * the service of that type and name, and its public, internal and admin endpoints in the region at `url`;
   * an endpoint already there at another URL is moved to this one (bootstrap's update of a changed URL).
   */
  async ensureService(spec: { region: string; type: string; name: string; url: string }): Promise<Service> {
    const region = parseRequest(regionIdSchema, spec.region, 'region id');
    const url = parseRequest(urlSchema, spec.url, 'endpoint url');
    if (!(await this.db.selectFrom('regions').select('id').where('id', '=', region).executeTakeFirst())) {
      try {
        await this.createRegion({ id: region });
      } catch (err) {
        // A concurrent bootstrap made it.
        if (!(err instanceof CloudError && err.type === 'Conflict')) throw err;
      }
    }
    const service =
      (await this.listServices({ type: spec.type, name: spec.name }))[0] ??
      (await this.createService({ type: spec.type, extra: { name: spec.name } }));
    const existing = await this.listEndpoints({ serviceId: service.id, regionId: region });
    for (const iface of INTERFACES) {
      const endpoint = existing.find((e) => e.interface === iface);
      if (!endpoint)
        await this.createEndpoint({ interface: iface, serviceId: service.id, regionId: region, url });
      else if (endpoint.url !== url) await this.updateEndpoint({ id: endpoint.id, url });
    }
    return service;
  }
}

/** An endpoint group's filters: every attribute named must be equal. */
function matches(e: Endpoint, filters: EndpointGroupFilters): boolean {
  return (
    (filters.interface === undefined || e.interface === filters.interface) &&
    (filters.service_id === undefined || e.serviceId === filters.service_id) &&
    (filters.region_id === undefined || e.regionId === filters.region_id)
  );
}
