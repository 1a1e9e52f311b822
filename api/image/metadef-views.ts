/**
 * Glance's metadata definition bodies (the WSME models of glance/api/v2/model: attributes without a value
 * are left out) and the schemas under /v2/schemas/metadefs (glance.schema.Schema / CollectionSchema /
 * DictCollectionSchema `raw()` of metadef_*.get_schema()).
 */
import type {
  MetadefNamespace,
  MetadefNamespaceDetail,
  MetadefObject,
  MetadefTag,
  PropertyType,
  ResourceTypeAssociation,
} from '../../cloud/glance';
import { glanceTime } from './views';

const nsHref = (ns: string) => `/v2/metadefs/namespaces/${ns}`;

function stamps(x: { createdAt: number; updatedAt: number }) {
  return { created_at: glanceTime(x.createdAt), updated_at: glanceTime(x.updatedAt) };
}

export function associationView(a: ResourceTypeAssociation) {
  return {
    name: a.name,
    ...(a.prefix !== null ? { prefix: a.prefix } : {}),
    ...(a.propertiesTarget !== null ? { properties_target: a.propertiesTarget } : {}),
    ...stamps(a),
  };
}

export function objectView(namespace: string, o: MetadefObject) {
  return {
    name: o.name,
    ...(o.description !== null ? { description: o.description } : {}),
    ...(o.required !== null ? { required: o.required } : {}),
    ...(Object.keys(o.properties).length ? { properties: o.properties } : {}),
    ...stamps(o),
    self: `${nsHref(namespace)}/objects/${o.name}`,
    schema: '/v2/schemas/metadefs/object',
  };
}

export const tagView = (t: MetadefTag) => ({ name: t.name, ...stamps(t) });

/** With a resource type whose association has a prefix, property names carry it (Glance's show). */
function prefixed(properties: Record<string, PropertyType>, prefix: string) {
  return Object.fromEntries(Object.entries(properties).map(([k, v]) => [prefix + k, v]));
}

export function namespaceView(
  ns: MetadefNamespace & Partial<Omit<MetadefNamespaceDetail, keyof MetadefNamespace>>,
  resourceType?: string,
) {
  const prefix = resourceType
    ? (ns.resourceTypeAssociations?.find((a) => a.name === resourceType)?.prefix ?? null)
    : null;
  const objects = (ns.objects ?? []).map((o) => {
    const view = objectView(ns.namespace, o);
    if (!prefix) return view;
    return {
      ...view,
      ...(view.properties ? { properties: prefixed(view.properties, prefix) } : {}),
      ...(view.required ? { required: view.required.map((r) => prefix + r) } : {}),
    };
  });
  const properties = ns.properties && prefix ? prefixed(ns.properties, prefix) : ns.properties;
  return {
    namespace: ns.namespace,
    ...(ns.displayName !== null ? { display_name: ns.displayName } : {}),
    ...(ns.description !== null ? { description: ns.description } : {}),
    visibility: ns.visibility,
    protected: ns.protected,
    owner: ns.owner,
    ...stamps(ns),
    ...(ns.resourceTypeAssociations?.length
      ? { resource_type_associations: ns.resourceTypeAssociations.map(associationView) }
      : {}),
    ...(properties && Object.keys(properties).length ? { properties } : {}),
    ...(objects.length ? { objects } : {}),
    ...(ns.tags?.length ? { tags: ns.tags.map((t) => ({ name: t.name })) } : {}),
    self: nsHref(ns.namespace),
    schema: '/v2/schemas/metadefs/namespace',
  };
}

// ---- schemas ---------------------------------------------------------------------------------------------

const readOnlyString = { readOnly: true, type: 'string' };
const dateTime = (description: string) => ({
  type: 'string',
  readOnly: true,
  description,
  format: 'date-time',
});
const JSON_TYPES = ['array', 'boolean', 'integer', 'number', 'object', 'string', null];

const propertyFields = {
  name: { type: 'string', maxLength: 80 },
  title: { type: 'string' },
  description: { type: 'string' },
  operators: { type: 'array', items: { type: 'string' } },
  type: { type: 'string', enum: JSON_TYPES },
  required: { $ref: '#/definitions/stringArray' },
  minimum: { type: 'number' },
  maximum: { type: 'number' },
  maxLength: { $ref: '#/definitions/positiveInteger' },
  minLength: { $ref: '#/definitions/positiveIntegerDefault0' },
  pattern: { type: 'string', format: 'regex' },
  enum: { type: 'array' },
  readonly: { type: 'boolean' },
  default: {},
  items: {
    type: 'object',
    properties: { type: { type: 'string', enum: JSON_TYPES }, enum: { type: 'array' } },
  },
  maxItems: { $ref: '#/definitions/positiveInteger' },
  minItems: { $ref: '#/definitions/positiveIntegerDefault0' },
  uniqueItems: { type: 'boolean', default: false },
  additionalItems: { type: 'boolean' },
};

function definitions(stringArrayMinItems: boolean) {
  return {
    positiveInteger: { type: 'integer', minimum: 0 },
    positiveIntegerDefault0: { allOf: [{ $ref: '#/definitions/positiveInteger' }, { default: 0 }] },
    stringArray: {
      type: 'array',
      items: { type: 'string' },
      ...(stringArrayMinItems ? { minItems: 1 } : {}),
      uniqueItems: true,
    },
    ...(stringArrayMinItems
      ? {}
      : {
          property: {
            type: 'object',
            additionalProperties: { type: 'object', required: ['title', 'type'], properties: propertyFields },
          },
        }),
  };
}

function schema(name: string, properties: object, required?: string[], defs?: object) {
  return {
    name,
    properties,
    additionalProperties: false,
    ...(defs ? { definitions: defs } : {}),
    ...(required ? { required } : {}),
  };
}

const collectionLinks = [
  { rel: 'first', href: '{first}' },
  { rel: 'next', href: '{next}' },
  { rel: 'describedby', href: '{schema}' },
];

/** CollectionSchema.raw() (or DictCollectionSchema's, `dict`): the item's definitions move up. */
function collection(name: string, item: ReturnType<typeof schema>, dict = false) {
  const { definitions: defs, ...rest } = item as ReturnType<typeof schema> & { definitions?: object };
  return {
    name,
    properties: {
      [name]: dict ? { type: 'object', additionalProperties: rest } : { type: 'array', items: rest },
      first: { type: 'string' },
      next: { type: 'string' },
      schema: { type: 'string' },
    },
    links: collectionLinks,
    ...(defs ? { definitions: defs } : {}),
  };
}

const namespaceSchema = () =>
  schema(
    'namespace',
    {
      namespace: { type: 'string', description: 'The unique namespace text.', maxLength: 80 },
      display_name: {
        type: 'string',
        description: 'The user friendly name for the namespace. Used by UI if available.',
        maxLength: 80,
      },
      description: {
        type: 'string',
        description: 'Provides a user friendly description of the namespace.',
        maxLength: 500,
      },
      visibility: {
        type: 'string',
        description: 'Scope of namespace accessibility.',
        enum: ['public', 'private'],
      },
      protected: { type: 'boolean', description: 'If true, namespace will not be deletable.' },
      owner: { type: 'string', description: 'Owner of the namespace.', maxLength: 255 },
      created_at: dateTime('Date and time of namespace creation'),
      updated_at: dateTime('Date and time of the last namespace modification'),
      schema: readOnlyString,
      self: readOnlyString,
      resource_type_associations: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            prefix: { type: 'string' },
            properties_target: { type: 'string' },
          },
        },
      },
      properties: { $ref: '#/definitions/property' },
      objects: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            description: { type: 'string' },
            required: { $ref: '#/definitions/stringArray' },
            properties: { $ref: '#/definitions/property' },
          },
        },
      },
      tags: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' } } } },
    },
    ['namespace'],
    definitions(false),
  );

const objectSchema = () =>
  schema(
    'object',
    {
      name: { type: 'string', maxLength: 80 },
      description: { type: 'string' },
      required: { $ref: '#/definitions/stringArray' },
      properties: { $ref: '#/definitions/property' },
      schema: readOnlyString,
      self: readOnlyString,
      created_at: dateTime('Date and time of object creation'),
      updated_at: dateTime('Date and time of the last object modification'),
    },
    ['name'],
    definitions(false),
  );

const propertySchema = (requireName: boolean) =>
  schema(
    'property',
    propertyFields,
    requireName ? ['type', 'title', 'name'] : ['type', 'title'],
    definitions(true),
  );

const resourceTypeSchema = () =>
  schema(
    'resource_type_association',
    {
      name: {
        type: 'string',
        description:
          'Resource type names should be aligned with Heat resource types whenever possible: https://docs.openstack.org/heat/latest/template_guide/openstack.html',
        maxLength: 80,
      },
      prefix: {
        type: 'string',
        description:
          'Specifies the prefix to use for the given resource type. Any properties in the namespace should be prefixed with this prefix when being applied to the specified resource type. Must include prefix separator (e.g. a colon :).',
        maxLength: 80,
      },
      properties_target: {
        type: 'string',
        description:
          'Some resource types allow more than one key / value pair per instance.  For example, Cinder allows user and image metadata on volumes. Only the image properties metadata is evaluated by Nova (scheduling or drivers). This property allows a namespace target to remove the ambiguity.',
        maxLength: 80,
      },
      created_at: dateTime('Date and time of resource type association'),
      updated_at: dateTime('Date and time of the last resource type association modification'),
    },
    ['name'],
  );

const tagSchema = () =>
  schema(
    'tag',
    {
      name: { type: 'string', maxLength: 80 },
      created_at: dateTime('Date and time of tag creation'),
      updated_at: dateTime('Date and time of the last tag modification'),
    },
    ['name'],
  );

/** GET /v2/schemas/metadefs/{name}, as glance/api/v2/schemas.py serves them. */
export const METADEF_SCHEMAS: Record<string, () => object> = {
  namespace: namespaceSchema,
  namespaces: () => collection('namespaces', namespaceSchema()),
  object: objectSchema,
  objects: () => collection('objects', objectSchema()),
  property: () => propertySchema(true),
  properties: () => collection('properties', propertySchema(false), true),
  resource_type: resourceTypeSchema,
  resource_types: () => collection('resource_type_associations', resourceTypeSchema()),
  tag: tagSchema,
  tags: () => collection('tags', tagSchema()),
};
