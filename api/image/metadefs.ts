/**
 * Glance's metadata definitions API (glance/api/v2/metadef_namespaces.py, _objects, _properties, _tags,
 * _resource_types; router.py) and its schemas (/v2/schemas/metadefs/*). The rules (policies, visibility,
 * protection) are cloud/glance/metadefs.ts's; here are the bodies, status codes and query parameters.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Metadefs } from '../../cloud/glance';
import { authOf } from '../auth';
import { ApiError } from '../errors';
import { associationView, METADEF_SCHEMAS, namespaceView, objectView, tagView } from './metadef-views';
import { glanceTime } from './views';

/** Glance's limit_param_default and api_limit_max. */
const LIMIT_DEFAULT = 25;
const LIMIT_MAX = 1000;
const SORT_KEYS = ['created_at', 'updated_at', 'namespace', 'display_name'] as const;

type Params = { ns: string; name: string };

/** The JSON body, with Glance's 400 when there is none and 403 for an attribute it keeps read-only. */
function body(request: FastifyRequest, readOnly: string[]): Record<string, unknown> {
  const b = request.body;
  if (b === undefined || b === null || typeof b !== 'object' || Array.isArray(b))
    throw new ApiError(400, 'Body expected in request.');
  for (const key of readOnly) if (key in b) throw new ApiError(403, `Attribute '${key}' is read-only.`);
  return b as Record<string, unknown>;
}

const READ_ONLY_WITH_LINKS = ['self', 'schema', 'created_at', 'updated_at'];
const READ_ONLY = ['created_at', 'updated_at'];

function queryOf(request: FastifyRequest): Record<string, string> {
  const q: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.query as Record<string, unknown>))
    q[k] = Array.isArray(v) ? String(v[v.length - 1]) : String(v);
  return q;
}

/** oslo's strutils.bool_from_string, as Glance reads X-Openstack-Append. */
const truthy = (v: unknown) =>
  typeof v === 'string' && ['1', 't', 'true', 'on', 'y', 'yes'].includes(v.trim().toLowerCase());

function listOptions(q: Record<string, string>) {
  const sortDir = q.sort_dir ?? 'desc';
  if (sortDir !== 'asc' && sortDir !== 'desc') throw new ApiError(400, `Invalid sort direction: ${sortDir}`);
  const sortKey = q.sort_key ?? 'created_at';
  if (!(SORT_KEYS as readonly string[]).includes(sortKey))
    throw new ApiError(400, `Invalid sort key: ${sortKey}`);
  if (q.visibility !== undefined && q.visibility !== 'public' && q.visibility !== 'private')
    throw new ApiError(400, `Invalid visibility value: ${q.visibility}`);
  let limit = LIMIT_DEFAULT;
  if (q.limit !== undefined) {
    if (!/^-?\d+$/.test(q.limit)) throw new ApiError(400, 'limit param must be an integer');
    limit = Number(q.limit);
    if (limit < 0) throw new ApiError(400, 'limit param must be positive');
  }
  return {
    sortKey: sortKey as (typeof SORT_KEYS)[number],
    sortDir: sortDir as 'asc' | 'desc',
    limit: Math.min(limit, LIMIT_MAX),
    ...(q.visibility ? { visibility: q.visibility as 'public' | 'private' } : {}),
    ...(q.resource_types ? { resourceTypes: q.resource_types.split(',').map((s) => s.trim()) } : {}),
    ...(q.marker !== undefined ? { marker: q.marker } : {}),
  };
}

export async function metadefRoutes(app: FastifyInstance, metadefs: Metadefs): Promise<void> {
  const ctx = (request: FastifyRequest) => authOf(request).ctx;
  const params = (request: FastifyRequest) => request.params as Params;
  const created = (reply: FastifyReply, payload: object, location?: string) => {
    if (location) reply.header('location', location);
    return reply.code(201).send(payload);
  };
  const noContent = (reply: FastifyReply) => reply.code(204).send();

  for (const [name, build] of Object.entries(METADEF_SCHEMAS))
    app.get(`/schemas/metadefs/${name}`, async () => build());

  app.get('/metadefs/resource_types', async (request) => ({
    resource_types: (await metadefs.listResourceTypes(ctx(request))).map((t) => ({
      name: t.name,
      created_at: glanceTime(t.createdAt),
      updated_at: glanceTime(t.updatedAt),
    })),
  }));

  // ---- namespaces ----
  app.get('/metadefs/namespaces', async (request) => {
    const q = queryOf(request);
    const options = listOptions(q);
    const namespaces = await metadefs.listNamespaces(ctx(request), options);
    const rest = new URLSearchParams(Object.entries(q).filter(([k]) => k !== 'marker'));
    const first = `/v2/metadefs/namespaces${rest.size ? `?${rest}` : ''}`;
    const last = namespaces[namespaces.length - 1];
    const next =
      last && namespaces.length === options.limit
        ? `/v2/metadefs/namespaces?${new URLSearchParams([...rest, ['marker', last.namespace]])}`
        : undefined;
    return {
      namespaces: namespaces.map((ns) => namespaceView(ns)),
      first,
      ...(next ? { next } : {}),
      schema: '/v2/schemas/metadefs/namespaces',
    };
  });
  app.post('/metadefs/namespaces', async (request, reply) => {
    const ns = await metadefs.createNamespace(ctx(request), body(request, READ_ONLY_WITH_LINKS));
    return created(reply, namespaceView(ns), `/v2/metadefs/namespaces/${ns.namespace}`);
  });
  app.get('/metadefs/namespaces/:ns', async (request) => {
    const resourceType = queryOf(request).resource_type;
    return namespaceView(await metadefs.getNamespace(ctx(request), params(request).ns), resourceType);
  });
  app.put('/metadefs/namespaces/:ns', async (request) =>
    namespaceView(
      await metadefs.updateNamespace(ctx(request), params(request).ns, body(request, READ_ONLY_WITH_LINKS)),
    ),
  );
  app.delete('/metadefs/namespaces/:ns', async (request, reply) => {
    await metadefs.deleteNamespace(ctx(request), params(request).ns);
    return noContent(reply);
  });
  for (const content of ['objects', 'properties', 'tags'] as const)
    app.delete(`/metadefs/namespaces/:ns/${content}`, async (request, reply) => {
      await metadefs.deleteNamespaceContent(ctx(request), params(request).ns, content);
      return noContent(reply);
    });

  // ---- objects ----
  app.get('/metadefs/namespaces/:ns/objects', async (request) => {
    const { ns } = params(request);
    const objects = await metadefs.listObjects(ctx(request), ns);
    return { objects: objects.map((o) => objectView(ns, o)), schema: 'v2/schemas/metadefs/objects' };
  });
  app.post('/metadefs/namespaces/:ns/objects', async (request, reply) => {
    const { ns } = params(request);
    const o = await metadefs.createObject(ctx(request), ns, body(request, READ_ONLY_WITH_LINKS));
    return created(reply, objectView(ns, o));
  });
  app.get('/metadefs/namespaces/:ns/objects/:name', async (request) => {
    const { ns, name } = params(request);
    return objectView(ns, await metadefs.getObject(ctx(request), ns, name));
  });
  app.put('/metadefs/namespaces/:ns/objects/:name', async (request) => {
    const { ns, name } = params(request);
    return objectView(
      ns,
      await metadefs.updateObject(ctx(request), ns, name, body(request, READ_ONLY_WITH_LINKS)),
    );
  });
  app.delete('/metadefs/namespaces/:ns/objects/:name', async (request, reply) => {
    const { ns, name } = params(request);
    await metadefs.deleteObject(ctx(request), ns, name);
    return noContent(reply);
  });

  // ---- properties ----
  app.get('/metadefs/namespaces/:ns/properties', async (request) => ({
    properties: await metadefs.listProperties(ctx(request), params(request).ns),
  }));
  app.post('/metadefs/namespaces/:ns/properties', async (request, reply) =>
    created(reply, await metadefs.createProperty(ctx(request), params(request).ns, body(request, READ_ONLY))),
  );
  app.get('/metadefs/namespaces/:ns/properties/:name', async (request) => {
    const { ns, name } = params(request);
    return metadefs.getProperty(ctx(request), ns, name, queryOf(request).resource_type);
  });
  app.put('/metadefs/namespaces/:ns/properties/:name', async (request) => {
    const { ns, name } = params(request);
    return metadefs.updateProperty(ctx(request), ns, name, body(request, READ_ONLY));
  });
  app.delete('/metadefs/namespaces/:ns/properties/:name', async (request, reply) => {
    const { ns, name } = params(request);
    await metadefs.deleteProperty(ctx(request), ns, name);
    return noContent(reply);
  });

  // ---- tags ----
  app.get('/metadefs/namespaces/:ns/tags', async (request) => ({
    tags: (await metadefs.listTags(ctx(request), params(request).ns)).map(tagView),
  }));
  app.post('/metadefs/namespaces/:ns/tags', async (request, reply) => {
    const b = body(request, READ_ONLY);
    const tags = b.tags;
    if (
      Object.keys(b).some((k) => k !== 'tags') ||
      !Array.isArray(tags) ||
      tags.some(
        (t: unknown) =>
          typeof t !== 'object' ||
          t === null ||
          Object.keys(t).some((k) => k !== 'name') ||
          typeof (t as { name?: unknown }).name !== 'string',
      )
    )
      throw new ApiError(
        400,
        'Provided object does not match schema \'tags\': tags: each tag is {"name": string}',
      );
    const names = (tags as Array<{ name: string }>).map((t) => t.name);
    const append = truthy(request.headers['x-openstack-append']);
    const done = await metadefs.createTags(ctx(request), params(request).ns, names, append);
    return created(reply, { tags: done.map((name) => ({ name })) });
  });
  app.post('/metadefs/namespaces/:ns/tags/:name', async (request, reply) => {
    const { ns, name } = params(request);
    return created(reply, tagView(await metadefs.createTag(ctx(request), ns, name)));
  });
  app.get('/metadefs/namespaces/:ns/tags/:name', async (request) => {
    const { ns, name } = params(request);
    return tagView(await metadefs.getTag(ctx(request), ns, name));
  });
  app.put('/metadefs/namespaces/:ns/tags/:name', async (request) => {
    const { ns, name } = params(request);
    return tagView(await metadefs.updateTag(ctx(request), ns, name, body(request, READ_ONLY)));
  });
  app.delete('/metadefs/namespaces/:ns/tags/:name', async (request, reply) => {
    const { ns, name } = params(request);
    await metadefs.deleteTag(ctx(request), ns, name);
    return noContent(reply);
  });

  // ---- resource type associations ----
  app.get('/metadefs/namespaces/:ns/resource_types', async (request) => ({
    resource_type_associations: (await metadefs.listAssociations(ctx(request), params(request).ns)).map(
      associationView,
    ),
  }));
  app.post('/metadefs/namespaces/:ns/resource_types', async (request, reply) =>
    created(
      reply,
      associationView(
        await metadefs.createAssociation(ctx(request), params(request).ns, body(request, READ_ONLY)),
      ),
    ),
  );
  app.delete('/metadefs/namespaces/:ns/resource_types/:name', async (request, reply) => {
    const { ns, name } = params(request);
    await metadefs.deleteAssociation(ctx(request), ns, name);
    return noContent(reply);
  });
}
