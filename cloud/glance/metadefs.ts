/**
 * Glance's metadata definitions catalog (glance/db/sqlalchemy/metadef_api, glance/api/v2/metadef_*.py):
 * namespaces with their objects, property types, tags and resource type associations.
 *
 * Policies are Glance's defaults (glance/policies/metadef.py): every write is `metadef_admin` (admin only);
 * reads are `admin or (reader and (owner or public))`, and a namespace the caller may not see is 404, as
 * MetadefAPIPolicy answers. A protected namespace keeps its contents: deleting it, or anything in it, is 403.
 * Each call runs in one transaction: a refused request changes nothing.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock';
import { isUniqueViolation, type ServiceDb } from '../db';
import { CloudError } from '../errors';
import {
  metadefObjectSchema,
  metadefTagSchema,
  namedPropertySchema,
  namespaceSchema,
  parseMetadef,
  resourceTypeAssociationSchema,
  type MetadefObjectInput,
  type NamespaceInput,
  type PropertyType,
} from './metadef-requests';
import type { GlanceDb, MetadefNamespacesTable, MetadefObjectsTable } from './schema';
import type { ImageRequestContext } from './types';

export interface MetadefNamespace {
  namespace: string;
  displayName: string | null;
  description: string | null;
  visibility: 'public' | 'private';
  protected: boolean;
  owner: string;
  createdAt: number;
  updatedAt: number;
}

export interface ResourceTypeAssociation {
  name: string;
  prefix: string | null;
  propertiesTarget: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface MetadefObject {
  name: string;
  description: string | null;
  required: string[] | null;
  properties: Record<string, PropertyType>;
  createdAt: number;
  updatedAt: number;
}

export interface MetadefTag {
  name: string;
  createdAt: number;
  updatedAt: number;
}

/** A namespace with everything it holds (GET /v2/metadefs/namespaces/{namespace}). */
export interface MetadefNamespaceDetail extends MetadefNamespace {
  resourceTypeAssociations: ResourceTypeAssociation[];
  properties: Record<string, PropertyType>;
  objects: MetadefObject[];
  tags: MetadefTag[];
}

export interface ListNamespacesOptions {
  visibility?: 'public' | 'private';
  /** Namespaces associated with any of these resource types. */
  resourceTypes?: string[];
  sortKey?: 'created_at' | 'updated_at' | 'namespace' | 'display_name';
  sortDir?: 'asc' | 'desc';
  limit?: number;
  /** The namespace after which to start. */
  marker?: string;
}

type Trx = Kysely<GlanceDb>;
type Content = 'objects' | 'properties' | 'tags';

/** The three kinds of row a namespace holds by name, each with its table and Glance's policy per write. */
const KINDS = {
  object: {
    table: 'metadef_objects',
    policy: { add: 'add_metadef_object', modify: 'modify_metadef_object', remove: 'delete_metadef_object' },
  },
  property: {
    table: 'metadef_properties',
    policy: {
      add: 'add_metadef_property',
      modify: 'modify_metadef_property',
      remove: 'remove_metadef_property',
    },
  },
  tag: {
    table: 'metadef_tags',
    policy: { add: 'add_metadef_tag', modify: 'modify_metadef_tag', remove: 'delete_metadef_tag' },
  },
} as const;
type Kind = keyof typeof KINDS;

const isAdmin = (ctx: ImageRequestContext) => ctx.roles.includes('admin');

function forbidden(action: string): CloudError {
  return new CloudError('Forbidden', `You are not authorized to complete ${action} action.`);
}

function namespaceNotFound(name: string): CloudError {
  return new CloudError('NotFound', `Metadata definition namespace=${name} was not found.`);
}

function duplicate(message: string): CloudError {
  return new CloudError('Conflict', message);
}

const json = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

function toNamespace(row: MetadefNamespacesTable): MetadefNamespace {
  return {
    namespace: row.namespace,
    displayName: row.display_name,
    description: row.description,
    visibility: row.visibility as MetadefNamespace['visibility'],
    protected: Number(row.protected) === 1,
    owner: row.owner,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function toObject(row: MetadefObjectsTable): MetadefObject {
  return {
    name: row.name,
    description: row.description,
    required: json(row.required) as string[] | null,
    properties: json(row.json_schema) as Record<string, PropertyType>,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** A property type as stored: without its name, which is the key. */
function propertyBody(property: PropertyType): PropertyType {
  const { name: _name, ...rest } = property;
  return rest;
}

export class Metadefs {
  constructor(
    private readonly store: ServiceDb<GlanceDb>,
    private readonly clock: Clock,
  ) {}

  // ---- reads ---------------------------------------------------------------------------------------------

  /** Glance's list_metadef_resource_types: every resource type known (seeded or named by an association). */
  async listResourceTypes(
    ctx: ImageRequestContext,
  ): Promise<Array<{ name: string; createdAt: number; updatedAt: number }>> {
    this.requireReader(ctx, 'list_metadef_resource_types');
    const rows = await this.store.db
      .selectFrom('metadef_resource_types')
      .selectAll()
      .orderBy('created_at')
      .orderBy('name')
      .execute();
    return rows.map((r) => ({
      name: r.name,
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
    }));
  }

  async listNamespaces(
    ctx: ImageRequestContext,
    options: ListNamespacesOptions = {},
  ): Promise<Array<MetadefNamespace & { resourceTypeAssociations: ResourceTypeAssociation[] }>> {
    this.requireReader(ctx, 'get_metadef_namespaces');
    const sortKey = options.sortKey ?? 'created_at';
    const dir = options.sortDir ?? 'desc';
    let q = this.store.db.selectFrom('metadef_namespaces').selectAll();
    if (!isAdmin(ctx))
      q = q.where((eb) => eb.or([eb('visibility', '=', 'public'), eb('owner', '=', ctx.projectId)]));
    if (options.visibility) q = q.where('visibility', '=', options.visibility);
    if (options.resourceTypes?.length)
      q = q.where('id', 'in', (eb) =>
        eb
          .selectFrom('metadef_namespace_resource_types')
          .select('namespace_id')
          .where('resource_type', 'in', options.resourceTypes!),
      );
    let rows = await q.orderBy(sortKey, dir).orderBy('namespace', dir).execute();
    if (options.marker !== undefined) {
      const at = rows.findIndex((r) => r.namespace === options.marker);
      if (at < 0) throw namespaceNotFound(options.marker);
      rows = rows.slice(at + 1);
    }
    if (options.limit !== undefined) rows = rows.slice(0, options.limit);
    const associations = await this.associationsOf(
      this.store.db,
      rows.map((r) => r.id),
    );
    return rows.map((r) => ({ ...toNamespace(r), resourceTypeAssociations: associations.get(r.id) ?? [] }));
  }

  async getNamespace(ctx: ImageRequestContext, name: string): Promise<MetadefNamespaceDetail> {
    const row = await this.visibleNamespace(this.store.db, ctx, name, 'get_metadef_namespace');
    const db = this.store.db;
    const [associations, properties, objects, tags] = await Promise.all([
      this.associationsOf(db, [row.id]),
      db
        .selectFrom('metadef_properties')
        .selectAll()
        .where('namespace_id', '=', row.id)
        .orderBy('name')
        .execute(),
      db
        .selectFrom('metadef_objects')
        .selectAll()
        .where('namespace_id', '=', row.id)
        .orderBy('name')
        .execute(),
      this.tagsOf(db, row.id),
    ]);
    return {
      ...toNamespace(row),
      resourceTypeAssociations: associations.get(row.id) ?? [],
      properties: Object.fromEntries(properties.map((p) => [p.name, json(p.json_schema) as PropertyType])),
      objects: objects.map(toObject),
      tags,
    };
  }

  async listObjects(ctx: ImageRequestContext, namespace: string): Promise<MetadefObject[]> {
    const ns = await this.visibleNamespace(this.store.db, ctx, namespace, 'get_metadef_objects');
    const rows = await this.store.db
      .selectFrom('metadef_objects')
      .selectAll()
      .where('namespace_id', '=', ns.id)
      .orderBy('created_at', 'desc')
      .orderBy('name')
      .execute();
    return rows.map(toObject);
  }

  async getObject(ctx: ImageRequestContext, namespace: string, name: string): Promise<MetadefObject> {
    const ns = await this.visibleNamespace(this.store.db, ctx, namespace, 'get_metadef_object');
    const row = await this.store.db
      .selectFrom('metadef_objects')
      .selectAll()
      .where('namespace_id', '=', ns.id)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) throw notFound('object', name, namespace);
    return toObject(row);
  }

  async listProperties(ctx: ImageRequestContext, namespace: string): Promise<Record<string, PropertyType>> {
    const ns = await this.visibleNamespace(this.store.db, ctx, namespace, 'get_metadef_properties');
    const rows = await this.store.db
      .selectFrom('metadef_properties')
      .selectAll()
      .where('namespace_id', '=', ns.id)
      .orderBy('name')
      .execute();
    return Object.fromEntries(rows.map((p) => [p.name, json(p.json_schema) as PropertyType]));
  }

  /** One property, named; with `resourceType`, the name carries that association's prefix (Glance's show). */
  async getProperty(
    ctx: ImageRequestContext,
    namespace: string,
    name: string,
    resourceType?: string,
  ): Promise<PropertyType & { name: string }> {
    const ns = await this.visibleNamespace(this.store.db, ctx, namespace, 'get_metadef_property');
    let stored = name;
    if (resourceType) {
      const association = (await this.associationsOf(this.store.db, [ns.id]))
        .get(ns.id)
        ?.find((a) => a.name === resourceType);
      if (!association)
        throw new CloudError(
          'NotFound',
          `The metadata definition resource-type association of resource-type=${resourceType} to namespace=${namespace}, was not found.`,
        );
      const prefix = association.prefix;
      if (!prefix || !name.startsWith(prefix))
        throw new CloudError(
          'NotFound',
          `Property ${name} does not start with the expected resource type association prefix of '${prefix ?? ''}'.`,
        );
      stored = name.slice(prefix.length);
    }
    const row = await this.store.db
      .selectFrom('metadef_properties')
      .selectAll()
      .where('namespace_id', '=', ns.id)
      .where('name', '=', stored)
      .executeTakeFirst();
    if (!row) throw notFound('property', stored, namespace);
    return { name: stored, ...(json(row.json_schema) as PropertyType) };
  }

  async listTags(ctx: ImageRequestContext, namespace: string): Promise<MetadefTag[]> {
    const ns = await this.visibleNamespace(this.store.db, ctx, namespace, 'get_metadef_tags');
    return this.tagsOf(this.store.db, ns.id);
  }

  async getTag(ctx: ImageRequestContext, namespace: string, name: string): Promise<MetadefTag> {
    const ns = await this.visibleNamespace(this.store.db, ctx, namespace, 'get_metadef_tag');
    const tag = (await this.tagsOf(this.store.db, ns.id)).find((t) => t.name === name);
    if (!tag) throw notFound('tag', name, namespace);
    return tag;
  }

  async listAssociations(ctx: ImageRequestContext, namespace: string): Promise<ResourceTypeAssociation[]> {
    const ns = await this.visibleNamespace(this.store.db, ctx, namespace, 'list_metadef_resource_types');
    return (await this.associationsOf(this.store.db, [ns.id])).get(ns.id) ?? [];
  }

  // ---- namespaces ----------------------------------------------------------------------------------------

  /** Glance's create: the namespace and everything the body holds, all or nothing. */
  async createNamespace(ctx: ImageRequestContext, input: unknown): Promise<MetadefNamespaceDetail> {
    const req = parseMetadef(namespaceSchema, input, 'namespace');
    this.requireAdmin(ctx, 'add_metadef_namespace');
    const id = randomUUID();
    const now = this.clock.now();
    await this.write(async (trx) => {
      await trx
        .insertInto('metadef_namespaces')
        .values({
          id,
          namespace: req.namespace,
          display_name: req.display_name ?? null,
          description: req.description ?? null,
          visibility: req.visibility ?? 'private',
          protected: req.protected ? 1 : 0,
          owner: req.owner ?? ctx.projectId,
          created_at: now,
          updated_at: now,
        })
        .execute()
        .catch(rethrowDuplicate(`The metadata definition namespace=${req.namespace} already exists.`));
      for (const a of req.resource_type_associations ?? [])
        await this.insertAssociation(trx, id, req.namespace, a, now);
      for (const o of req.objects ?? []) await this.insertObject(trx, id, req.namespace, o, now);
      for (const [name, p] of Object.entries(req.properties ?? {}))
        await this.insertProperty(trx, id, req.namespace, name, p, now);
      await this.insertTags(
        trx,
        id,
        req.namespace,
        (req.tags ?? []).map((t) => t.name),
        now,
      );
    });
    return this.getNamespace(ctx, req.namespace);
  }

  /** Glance's PUT: every attribute replaced (visibility `private` and protected `false` when left out). */
  async updateNamespace(ctx: ImageRequestContext, name: string, input: unknown): Promise<MetadefNamespace> {
    const req: NamespaceInput = parseMetadef(namespaceSchema, input, 'namespace');
    const now = this.clock.now();
    const id = await this.write(async (trx) => {
      const row = await this.writableNamespace(trx, ctx, name, 'modify_metadef_namespace');
      await trx
        .updateTable('metadef_namespaces')
        .set({
          namespace: req.namespace,
          display_name: req.display_name ?? null,
          description: req.description ?? null,
          visibility: req.visibility ?? 'private',
          protected: req.protected ? 1 : 0,
          owner: req.owner ?? ctx.projectId,
          updated_at: now,
        })
        .where('id', '=', row.id)
        .execute()
        .catch(rethrowDuplicate(`The metadata definition namespace=${req.namespace} already exists.`));
      return row.id;
    });
    const row = await this.store.db
      .selectFrom('metadef_namespaces')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    return toNamespace(row);
  }

  async deleteNamespace(ctx: ImageRequestContext, name: string): Promise<void> {
    await this.write(async (trx) => {
      const row = await this.writableNamespace(trx, ctx, name, 'delete_metadef_namespace');
      requireUnprotected(row);
      // The contents go with it (cascade), as Glance's namespace delete removes them first.
      await trx.deleteFrom('metadef_namespaces').where('id', '=', row.id).execute();
    });
  }

  /** DELETE .../objects, .../properties or .../tags: Glance checks delete_metadef_namespace and protection. */
  async deleteNamespaceContent(ctx: ImageRequestContext, name: string, content: Content): Promise<void> {
    const table = `metadef_${content}` as const;
    await this.write(async (trx) => {
      const row = await this.writableNamespace(trx, ctx, name, 'delete_metadef_namespace');
      if (content === 'tags') this.requireAdmin(ctx, 'delete_metadef_tags');
      requireUnprotected(row);
      await trx.deleteFrom(table).where('namespace_id', '=', row.id).execute();
    });
  }

  // ---- objects -------------------------------------------------------------------------------------------

  async createObject(ctx: ImageRequestContext, namespace: string, input: unknown): Promise<MetadefObject> {
    const req = parseMetadef(metadefObjectSchema, input, 'object');
    const now = this.clock.now();
    await this.write(async (trx) => {
      const ns = await this.writableNamespace(trx, ctx, namespace, KINDS.object.policy.add);
      await this.insertObject(trx, ns.id, namespace, req, now);
    });
    return this.getObject(ctx, namespace, req.name);
  }

  async updateObject(
    ctx: ImageRequestContext,
    namespace: string,
    name: string,
    input: unknown,
  ): Promise<MetadefObject> {
    const req = parseMetadef(metadefObjectSchema, input, 'object');
    await this.write(async (trx) => {
      const ns = await this.writableRow(trx, ctx, 'object', namespace, name);
      await trx
        .updateTable('metadef_objects')
        .set({
          name: req.name,
          description: req.description ?? null,
          required: req.required ? JSON.stringify(req.required) : null,
          json_schema: JSON.stringify(req.properties ?? {}),
          updated_at: this.clock.now(),
        })
        .where('namespace_id', '=', ns.id)
        .where('name', '=', name)
        .execute()
        .catch(rethrowDuplicate(objectDuplicate(req.name, namespace)));
    });
    return this.getObject(ctx, namespace, req.name);
  }

  async deleteObject(ctx: ImageRequestContext, namespace: string, name: string): Promise<void> {
    await this.deleteRow(ctx, 'object', namespace, name);
  }

  // ---- properties ----------------------------------------------------------------------------------------

  async createProperty(
    ctx: ImageRequestContext,
    namespace: string,
    input: unknown,
  ): Promise<PropertyType & { name: string }> {
    const req = parseMetadef(namedPropertySchema, input, 'property');
    await this.write(async (trx) => {
      const ns = await this.writableNamespace(trx, ctx, namespace, KINDS.property.policy.add);
      await this.insertProperty(trx, ns.id, namespace, req.name, req, this.clock.now());
    });
    return this.getProperty(ctx, namespace, req.name);
  }

  async updateProperty(
    ctx: ImageRequestContext,
    namespace: string,
    name: string,
    input: unknown,
  ): Promise<PropertyType & { name: string }> {
    const req = parseMetadef(namedPropertySchema, input, 'property');
    await this.write(async (trx) => {
      const ns = await this.writableRow(trx, ctx, 'property', namespace, name);
      await trx
        .updateTable('metadef_properties')
        .set({ name: req.name, json_schema: JSON.stringify(propertyBody(req)), updated_at: this.clock.now() })
        .where('namespace_id', '=', ns.id)
        .where('name', '=', name)
        .execute()
        .catch(rethrowDuplicate(propertyDuplicate(req.name, namespace)));
    });
    return this.getProperty(ctx, namespace, req.name);
  }

  async deleteProperty(ctx: ImageRequestContext, namespace: string, name: string): Promise<void> {
    await this.deleteRow(ctx, 'property', namespace, name);
  }

  // ---- tags ----------------------------------------------------------------------------------------------

  async createTag(ctx: ImageRequestContext, namespace: string, name: string): Promise<MetadefTag> {
    parseMetadef(metadefTagSchema, { name }, 'tag');
    await this.write(async (trx) => {
      const ns = await this.writableNamespace(trx, ctx, namespace, KINDS.tag.policy.add);
      await this.insertTags(trx, ns.id, namespace, [name], this.clock.now());
    });
    return this.getTag(ctx, namespace, name);
  }

  /** POST .../tags: the namespace's tags become these (with `append`, these are added to them). */
  async createTags(
    ctx: ImageRequestContext,
    namespace: string,
    names: string[],
    append: boolean,
  ): Promise<string[]> {
    await this.write(async (trx) => {
      const ns = await this.writableNamespace(trx, ctx, namespace, 'add_metadef_tags');
      if (!append) await trx.deleteFrom('metadef_tags').where('namespace_id', '=', ns.id).execute();
      await this.insertTags(trx, ns.id, namespace, names, this.clock.now());
    });
    return names;
  }

  async updateTag(
    ctx: ImageRequestContext,
    namespace: string,
    name: string,
    input: unknown,
  ): Promise<MetadefTag> {
    const req = parseMetadef(metadefTagSchema, input, 'tag');
    await this.write(async (trx) => {
      const ns = await this.writableRow(trx, ctx, 'tag', namespace, name);
      const tags = await this.tagsOf(trx, ns.id);
      if (
        req.name !== name &&
        tags.some((t) => t.name.toLowerCase() === req.name.toLowerCase() && t.name !== name)
      )
        throw duplicate(tagDuplicate(req.name, namespace));
      await trx
        .updateTable('metadef_tags')
        .set({ name: req.name, updated_at: this.clock.now() })
        .where('namespace_id', '=', ns.id)
        .where('name', '=', name)
        .execute();
    });
    return this.getTag(ctx, namespace, req.name);
  }

  async deleteTag(ctx: ImageRequestContext, namespace: string, name: string): Promise<void> {
    await this.deleteRow(ctx, 'tag', namespace, name);
  }

  // ---- resource type associations ------------------------------------------------------------------------

  /** Associates a resource type (created, unprotected, when Glance does not know it yet). */
  async createAssociation(
    ctx: ImageRequestContext,
    namespace: string,
    input: unknown,
  ): Promise<ResourceTypeAssociation> {
    const req = parseMetadef(resourceTypeAssociationSchema, input, 'resource_type_association');
    await this.write(async (trx) => {
      const ns = await this.writableNamespace(trx, ctx, namespace, 'add_metadef_resource_type_association');
      await this.insertAssociation(trx, ns.id, namespace, req, this.clock.now());
    });
    const found = (await this.listAssociations(ctx, namespace)).find((a) => a.name === req.name);
    if (!found) throw new CloudError('NotFound', `Resource type ${req.name} not associated`);
    return found;
  }

  async deleteAssociation(ctx: ImageRequestContext, namespace: string, resourceType: string): Promise<void> {
    await this.write(async (trx) => {
      const ns = await this.writableNamespace(
        trx,
        ctx,
        namespace,
        'remove_metadef_resource_type_association',
      );
      const type = await trx
        .selectFrom('metadef_resource_types')
        .select('name')
        .where('name', '=', resourceType)
        .executeTakeFirst();
      if (!type)
        throw new CloudError(
          'NotFound',
          `The metadata definition resource-type with name=${resourceType}, was not found.`,
        );
      const found = await trx
        .selectFrom('metadef_namespace_resource_types')
        .select('resource_type')
        .where('namespace_id', '=', ns.id)
        .where('resource_type', '=', resourceType)
        .executeTakeFirst();
      if (!found)
        throw new CloudError(
          'NotFound',
          `The metadata definition resource-type association of resource-type=${resourceType} to namespace=${namespace}, was not found.`,
        );
      if (Number(ns.protected) === 1)
        throw new CloudError(
          'Forbidden',
          `Metadata definition resource-type-association ${resourceType} is protected and cannot be deleted.`,
        );
      await trx
        .deleteFrom('metadef_namespace_resource_types')
        .where('namespace_id', '=', ns.id)
        .where('resource_type', '=', resourceType)
        .execute();
    });
  }

  // ---- helpers -------------------------------------------------------------------------------------------

  private async write<T>(fn: (trx: Trx) => Promise<T>): Promise<T> {
    return this.store.transaction(fn);
  }

  private requireReader(ctx: ImageRequestContext, action: string): void {
    if (!['admin', 'member', 'reader'].some((r) => ctx.roles.includes(r))) throw forbidden(action);
  }

  private requireAdmin(ctx: ImageRequestContext, action: string): void {
    if (!isAdmin(ctx)) throw forbidden(action);
  }

  /** The namespace if the caller may see it (admin, public, or its project's), else Glance's 404. */
  private async visibleNamespace(
    db: Trx,
    ctx: ImageRequestContext,
    name: string,
    action: string,
  ): Promise<MetadefNamespacesTable> {
    this.requireReader(ctx, action);
    const row = await db
      .selectFrom('metadef_namespaces')
      .selectAll()
      .where('namespace', '=', name)
      .executeTakeFirst();
    if (!row || !(isAdmin(ctx) || row.visibility === 'public' || row.owner === ctx.projectId))
      throw namespaceNotFound(name);
    return row;
  }

  /** The namespace a write names: 404 if the caller cannot see it, then 403 unless admin (metadef_admin). */
  private async writableNamespace(
    trx: Trx,
    ctx: ImageRequestContext,
    name: string,
    action: string,
  ): Promise<MetadefNamespacesTable> {
    const row = await this.store
      .forUpdate(trx.selectFrom('metadef_namespaces').selectAll().where('namespace', '=', name))
      .executeTakeFirst();
    const visible = row && (isAdmin(ctx) || row.visibility === 'public' || row.owner === ctx.projectId);
    if (!row || !visible) throw new CloudError('NotFound', `Namespace ${name} not found`);
    this.requireAdmin(ctx, action);
    return row;
  }

  /** A write to one named row: its namespace (404, then 403 unless admin), then the row (404). */
  private async writableRow(
    trx: Trx,
    ctx: ImageRequestContext,
    kind: Kind,
    namespace: string,
    name: string,
    step: 'modify' | 'remove' = 'modify',
  ): Promise<MetadefNamespacesTable> {
    const ns = await this.writableNamespace(trx, ctx, namespace, KINDS[kind].policy[step]);
    const row = await trx
      .selectFrom(KINDS[kind].table)
      .select('name')
      .where('namespace_id', '=', ns.id)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) throw notFound(kind, name, namespace);
    return ns;
  }

  /** Glance's delete of an object, property or tag: found, refused in a protected namespace, then gone. */
  private async deleteRow(
    ctx: ImageRequestContext,
    kind: Kind,
    namespace: string,
    name: string,
  ): Promise<void> {
    await this.write(async (trx) => {
      const ns = await this.writableRow(trx, ctx, kind, namespace, name, 'remove');
      if (Number(ns.protected) === 1)
        throw new CloudError(
          'Forbidden',
          `Metadata definition ${kind} ${name} is protected and cannot be deleted.`,
        );
      await trx
        .deleteFrom(KINDS[kind].table)
        .where('namespace_id', '=', ns.id)
        .where('name', '=', name)
        .execute();
    });
  }

  private async tagsOf(db: Trx, namespaceId: string): Promise<MetadefTag[]> {
    const rows = await db
      .selectFrom('metadef_tags')
      .selectAll()
      .where('namespace_id', '=', namespaceId)
      .orderBy('created_at')
      .orderBy('name')
      .execute();
    return rows.map((t) => ({
      name: t.name,
      createdAt: Number(t.created_at),
      updatedAt: Number(t.updated_at),
    }));
  }

  private async associationsOf(db: Trx, ids: string[]): Promise<Map<string, ResourceTypeAssociation[]>> {
    const out = new Map<string, ResourceTypeAssociation[]>();
    if (!ids.length) return out;
    const rows = await db
      .selectFrom('metadef_namespace_resource_types')
      .selectAll()
      .where('namespace_id', 'in', ids)
      .orderBy('created_at')
      .orderBy('resource_type')
      .execute();
    for (const r of rows) {
      const list = out.get(r.namespace_id) ?? [];
      list.push({
        name: r.resource_type,
        prefix: r.prefix,
        propertiesTarget: r.properties_target,
        createdAt: Number(r.created_at),
        updatedAt: Number(r.updated_at),
      });
      out.set(r.namespace_id, list);
    }
    return out;
  }

  private async insertAssociation(
    trx: Trx,
    namespaceId: string,
    namespace: string,
    a: { name: string; prefix?: string | undefined; properties_target?: string | undefined },
    now: number,
  ): Promise<void> {
    const known = await trx
      .selectFrom('metadef_resource_types')
      .select('name')
      .where('name', '=', a.name)
      .executeTakeFirst();
    if (!known)
      await trx
        .insertInto('metadef_resource_types')
        .values({ name: a.name, protected: 0, created_at: now, updated_at: now })
        .execute();
    await trx
      .insertInto('metadef_namespace_resource_types')
      .values({
        namespace_id: namespaceId,
        resource_type: a.name,
        prefix: a.prefix ?? null,
        properties_target: a.properties_target ?? null,
        created_at: now,
        updated_at: now,
      })
      .execute()
      .catch(
        rethrowDuplicate(
          `The metadata definition resource-type association of resource-type=${a.name} to namespace=${namespace} already exists.`,
        ),
      );
  }

  private async insertObject(
    trx: Trx,
    namespaceId: string,
    namespace: string,
    o: MetadefObjectInput,
    now: number,
  ) {
    await trx
      .insertInto('metadef_objects')
      .values({
        namespace_id: namespaceId,
        name: o.name,
        description: o.description ?? null,
        required: o.required ? JSON.stringify(o.required) : null,
        json_schema: JSON.stringify(o.properties ?? {}),
        created_at: now,
        updated_at: now,
      })
      .execute()
      .catch(rethrowDuplicate(objectDuplicate(o.name, namespace)));
  }

  private async insertProperty(
    trx: Trx,
    namespaceId: string,
    namespace: string,
    name: string,
    p: PropertyType,
    now: number,
  ): Promise<void> {
    await trx
      .insertInto('metadef_properties')
      .values({
        namespace_id: namespaceId,
        name,
        json_schema: JSON.stringify(propertyBody(p)),
        created_at: now,
        updated_at: now,
      })
      .execute()
      .catch(rethrowDuplicate(propertyDuplicate(name, namespace)));
  }

  /** Tags are unique per namespace ignoring case, as Glance's (case-insensitive collation) are. */
  private async insertTags(trx: Trx, namespaceId: string, namespace: string, names: string[], now: number) {
    if (!names.length) return;
    const seen = new Set((await this.tagsOf(trx, namespaceId)).map((t) => t.name.toLowerCase()));
    for (const name of names) {
      parseMetadef(metadefTagSchema, { name }, 'tag');
      if (seen.has(name.toLowerCase())) throw duplicate(tagDuplicate(name, namespace));
      seen.add(name.toLowerCase());
    }
    await trx
      .insertInto('metadef_tags')
      .values(names.map((name) => ({ namespace_id: namespaceId, name, created_at: now, updated_at: now })))
      .execute();
  }
}

function requireUnprotected(row: MetadefNamespacesTable): void {
  if (Number(row.protected) === 1)
    throw new CloudError(
      'Forbidden',
      `Metadata definition namespace ${row.namespace} is protected and cannot be deleted.`,
    );
}

function rethrowDuplicate(message: string): (err: unknown) => never {
  return (err) => {
    if (isUniqueViolation(err)) throw duplicate(message);
    throw err;
  };
}

const objectDuplicate = (name: string, namespace: string) =>
  `A metadata definition object with name=${name} already exists in namespace=${namespace}.`;
const propertyDuplicate = (name: string, namespace: string) =>
  `A metadata definition property with name=${name} already exists in namespace=${namespace}.`;
const tagDuplicate = (name: string, namespace: string) =>
  `A metadata tag with name=${name} already exists in namespace=${namespace}. (Please note that metadata tag names are case insensitive).`;

function notFound(kind: Kind, name: string, namespace: string): CloudError {
  return new CloudError(
    'NotFound',
    `The metadata definition ${kind} with name=${name} was not found in namespace=${namespace}.`,
  );
}
