/**
 * Glance's metadata definitions over HTTP (inject): resource types, namespaces with their objects,
 * properties, tags and resource type associations, the schemas; Glance's policies (writes admin only,
 * private namespaces 404 to other projects), protection, and bad input changing no row.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import { openServiceDb } from '../cloud/db';
import { glanceMigrations } from '../cloud/glance/migrations';
import type { GlanceDb } from '../cloud/glance/schema';
import { openApiTestEnvWithUsers, type ApiTestEnv } from './helpers/api';

describe('Glance v2 metadefs API', () => {
  let env: ApiTestEnv;
  let admin: string;
  let member: string;
  let reader: string;
  let db: Kysely<GlanceDb>;
  let closeDb: () => Promise<void>;

  before(async () => {
    const opened = await openApiTestEnvWithUsers(
      { services: ['identity', 'image'], label: 'api-image-metadefs' },
      {
        admin: ['root', 'p-root', 'admin'],
        member: ['mia', 'p-mia', 'member'],
        reader: ['rex', 'p-mia', 'reader'],
      },
    );
    env = opened.env;
    admin = opened.users.admin.token;
    member = opened.users.member.token;
    reader = opened.users.reader.token;
    const store = await openServiceDb<GlanceDb>('glance', glanceMigrations, env.db);
    db = store.db;
    closeDb = () => store.close();
  });
  after(async () => {
    await closeDb?.();
    await env?.close();
  });

  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, token: string, payload?: unknown) =>
    env.app.inject({
      method,
      url: `/image/v2${url}`,
      headers: {
        'x-auth-token': token,
        ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
    });
  const rows = async () => ({
    namespaces: (await db.selectFrom('metadef_namespaces').select('namespace').execute()).length,
    objects: (await db.selectFrom('metadef_objects').select('name').execute()).length,
    properties: (await db.selectFrom('metadef_properties').select('name').execute()).length,
    tags: (await db.selectFrom('metadef_tags').select('name').execute()).length,
    associations: (await db.selectFrom('metadef_namespace_resource_types').select('resource_type').execute())
      .length,
  });

  test('resource types are seeded; the ten schemas answer with their names', async () => {
    const res = await call('GET', '/metadefs/resource_types', reader);
    assert.equal(res.statusCode, 200, res.body);
    const names = (res.json() as { resource_types: Array<{ name: string }> }).resource_types.map(
      (t) => t.name,
    );
    assert.ok(names.includes('OS::Glance::Image') && names.includes('OS::Nova::Flavor'), names.join());
    const expected: Record<string, string> = {
      namespace: 'namespace',
      namespaces: 'namespaces',
      object: 'object',
      objects: 'objects',
      property: 'property',
      properties: 'properties',
      resource_type: 'resource_type_association',
      resource_types: 'resource_type_associations',
      tag: 'tag',
      tags: 'tags',
    };
    for (const [path, name] of Object.entries(expected)) {
      const schema = await call('GET', `/schemas/metadefs/${path}`, reader);
      assert.equal(schema.statusCode, 200);
      assert.equal((schema.json() as { name: string }).name, name);
    }
  });

  test('namespace: create with contents, show, list, protected delete 403, PUT, delete takes its contents', async () => {
    const body = {
      namespace: 'OS::Test::One',
      display_name: 'One',
      description: 'Tempest',
      visibility: 'public',
      protected: true,
      resource_type_associations: [{ name: 'OS::Glance::Image', prefix: 'hw_' }],
      properties: { cpu: { title: 'CPU', type: 'integer', minimum: 1 } },
      objects: [{ name: 'obj', required: ['cpu'], properties: { cpu: { title: 'CPU', type: 'integer' } } }],
      tags: [{ name: 't1' }, { name: 't2' }],
    };
    const res = await call('POST', '/metadefs/namespaces', admin, body);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers.location, '/v2/metadefs/namespaces/OS::Test::One');
    const created = res.json() as Record<string, unknown>;
    assert.equal(created.namespace, 'OS::Test::One');
    assert.equal(created.owner, (await env.cloud.keystone.ensureProject({ name: 'p-root' })).id);
    assert.equal(created.self, '/v2/metadefs/namespaces/OS::Test::One');
    assert.deepEqual(created.tags, [{ name: 't1' }, { name: 't2' }]);
    assert.deepEqual(await rows(), { namespaces: 1, objects: 1, properties: 1, tags: 2, associations: 1 });

    // A member and a reader see a public namespace; the resource_type= form prefixes its property names.
    const shown = await call(
      'GET',
      '/metadefs/namespaces/OS::Test::One?resource_type=OS::Glance::Image',
      reader,
    );
    assert.equal(shown.statusCode, 200, shown.body);
    const detail = shown.json() as {
      properties: Record<string, unknown>;
      objects: Array<{ required: string[] }>;
    };
    assert.deepEqual(Object.keys(detail.properties), ['hw_cpu']);
    assert.deepEqual(detail.objects[0]?.required, ['hw_cpu']);
    const list = await call('GET', '/metadefs/namespaces?resource_types=OS::Glance::Image', member);
    assert.equal(list.statusCode, 200);
    const listed = list.json() as {
      namespaces: Array<{ namespace: string; objects?: unknown }>;
      schema: string;
    };
    assert.deepEqual(
      listed.namespaces.map((n) => n.namespace),
      ['OS::Test::One'],
    );
    assert.equal(listed.namespaces[0]?.objects, undefined);
    assert.equal(listed.schema, '/v2/schemas/metadefs/namespaces');

    // Protected: neither it nor its contents can go; a member may not write at all (metadef_admin).
    assert.equal((await call('DELETE', '/metadefs/namespaces/OS::Test::One', admin)).statusCode, 403);
    assert.equal((await call('DELETE', '/metadefs/namespaces/OS::Test::One/tags', admin)).statusCode, 403);
    assert.equal(
      (await call('DELETE', '/metadefs/namespaces/OS::Test::One/objects/obj', admin)).statusCode,
      403,
    );
    const denied = await call('PUT', '/metadefs/namespaces/OS::Test::One', member, { namespace: 'x' });
    assert.equal(denied.statusCode, 403);
    assert.match(denied.body, /modify_metadef_namespace/);
    assert.equal((await call('POST', '/metadefs/namespaces', member, { namespace: 'm' })).statusCode, 403);
    assert.deepEqual(await rows(), { namespaces: 1, objects: 1, properties: 1, tags: 2, associations: 1 });

    // PUT replaces: visibility private, protected false, renamed; then the delete takes everything.
    const put = await call('PUT', '/metadefs/namespaces/OS::Test::One', admin, {
      namespace: 'OS::Test::Renamed',
      visibility: 'private',
      protected: false,
    });
    assert.equal(put.statusCode, 200, put.body);
    const updated = put.json() as Record<string, unknown>;
    assert.equal(updated.visibility, 'private');
    assert.equal(updated.protected, false);
    assert.equal(updated.display_name, undefined);
    // Private now: another project's member does not see it.
    assert.equal((await call('GET', '/metadefs/namespaces/OS::Test::Renamed', member)).statusCode, 404);
    assert.equal((await call('DELETE', '/metadefs/namespaces/OS::Test::Renamed', admin)).statusCode, 204);
    assert.deepEqual(await rows(), { namespaces: 0, objects: 0, properties: 0, tags: 0, associations: 0 });
    assert.equal((await call('GET', '/metadefs/namespaces/OS::Test::Renamed', admin)).statusCode, 404);
  });

  test('bad input: 400 schema, 403 read-only, 409 duplicate, 404 unknown; nothing stored', async () => {
    const bad: Array<[unknown, number]> = [
      [{}, 400],
      [{ namespace: 'x'.repeat(81) }, 400],
      [{ namespace: 'n', visibility: 'shared' }, 400],
      [{ namespace: 'n', extra: 1 }, 400],
      [{ namespace: 'n', properties: { p: { type: 'string' } } }, 400],
      [{ namespace: 'n', self: '/x' }, 403],
      [{ namespace: 'n', tags: [{ name: 'a' }, { name: 'A' }] }, 409],
    ];
    for (const [payload, status] of bad) {
      const res = await call('POST', '/metadefs/namespaces', admin, payload);
      assert.equal(res.statusCode, status, `${JSON.stringify(payload)}: ${res.body}`);
    }
    assert.equal((await rows()).namespaces, 0);
    assert.equal((await call('POST', '/metadefs/namespaces', admin, { namespace: 'dup' })).statusCode, 201);
    assert.equal((await call('POST', '/metadefs/namespaces', admin, { namespace: 'dup' })).statusCode, 409);
    assert.equal((await call('GET', '/metadefs/namespaces?sort_dir=up', admin)).statusCode, 400);
    assert.equal((await call('GET', '/metadefs/namespaces?visibility=shared', admin)).statusCode, 400);
    assert.equal((await call('GET', '/metadefs/namespaces/nope/objects', admin)).statusCode, 404);
    assert.equal((await call('DELETE', '/metadefs/namespaces/dup', admin)).statusCode, 204);
  });

  test('objects, properties, tags and resource type associations: create, show, update, delete', async () => {
    assert.equal((await call('POST', '/metadefs/namespaces', admin, { namespace: 'ns' })).statusCode, 201);
    const ns = '/metadefs/namespaces/ns';
    // Private (the default) and of another project: the reader does not see it, until it is public.
    assert.equal((await call('GET', `${ns}/objects`, reader)).statusCode, 404);
    assert.equal((await call('PUT', ns, admin, { namespace: 'ns', visibility: 'public' })).statusCode, 200);

    // objects
    const obj = await call('POST', `${ns}/objects`, admin, { name: 'o1', description: 'd' });
    assert.equal(obj.statusCode, 201, obj.body);
    assert.equal((obj.json() as { self: string }).self, '/v2/metadefs/namespaces/ns/objects/o1');
    assert.equal((await call('POST', `${ns}/objects`, admin, { name: 'o1' })).statusCode, 409);
    const renamed = await call('PUT', `${ns}/objects/o1`, admin, { name: 'o2' });
    assert.equal(renamed.statusCode, 200, renamed.body);
    assert.equal((renamed.json() as { description?: string }).description, undefined);
    const objects = (await call('GET', `${ns}/objects`, reader)).json() as {
      objects: Array<{ name: string }>;
    };
    assert.deepEqual(
      objects.objects.map((o) => o.name),
      ['o2'],
    );
    assert.equal((await call('DELETE', `${ns}/objects/o1`, admin)).statusCode, 404);
    assert.equal((await call('DELETE', `${ns}/objects/o2`, admin)).statusCode, 204);

    // properties
    const enumValues = ['xen', 'kvm'];
    const prop = await call('POST', `${ns}/properties`, admin, {
      name: 'hv',
      title: 'Hypervisor',
      type: 'string',
      enum: enumValues,
    });
    assert.equal(prop.statusCode, 201, prop.body);
    assert.deepEqual(prop.json(), { name: 'hv', title: 'Hypervisor', type: 'string', enum: enumValues });
    assert.equal(
      (await call('POST', `${ns}/properties`, admin, { name: 'x', type: 'string' })).statusCode,
      400,
    );
    const upd = await call('PUT', `${ns}/properties/hv`, admin, { name: 'hv', title: 'T2', type: 'string' });
    assert.equal((upd.json() as { title: string }).title, 'T2');
    assert.deepEqual(Object.keys((await call('GET', `${ns}/properties`, reader)).json().properties), ['hv']);
    assert.equal((await call('DELETE', `${ns}/properties/hv`, member)).statusCode, 403);
    assert.equal((await call('DELETE', `${ns}/properties/hv`, admin)).statusCode, 204);
    assert.deepEqual((await call('GET', `${ns}/properties`, admin)).json(), { properties: {} });

    // tags: POST replaces unless X-Openstack-Append; single create, rename, delete
    const many = await call('POST', `${ns}/tags`, admin, { tags: [{ name: 'a' }, { name: 'b' }] });
    assert.equal(many.statusCode, 201, many.body);
    assert.deepEqual(many.json(), { tags: [{ name: 'a' }, { name: 'b' }] });
    const appended = await env.app.inject({
      method: 'POST',
      url: `/image/v2${ns}/tags`,
      headers: { 'x-auth-token': admin, 'content-type': 'application/json', 'x-openstack-append': 'True' },
      payload: JSON.stringify({ tags: [{ name: 'c' }] }),
    });
    assert.equal(appended.statusCode, 201, appended.body);
    assert.equal((await call('POST', `${ns}/tags/B`, admin)).statusCode, 409);
    assert.equal((await call('POST', `${ns}/tags/d`, admin)).statusCode, 201);
    assert.equal((await call('PUT', `${ns}/tags/d`, admin, { name: 'e' })).statusCode, 200);
    assert.equal((await call('GET', `${ns}/tags/e`, reader)).statusCode, 200);
    assert.equal((await call('DELETE', `${ns}/tags/e`, admin)).statusCode, 204);
    const tags = (await call('GET', `${ns}/tags`, reader)).json() as { tags: Array<{ name: string }> };
    assert.deepEqual(tags.tags.map((t) => t.name).sort(), ['a', 'b', 'c']);
    assert.equal(
      (await call('POST', `${ns}/tags`, admin, { tags: [{ name: 'x' }, { name: 'X' }] })).statusCode,
      409,
    );
    assert.equal((await rows()).tags, 3, 'a refused replace keeps the tags');
    assert.equal((await call('DELETE', `${ns}/tags`, admin)).statusCode, 204);
    assert.deepEqual((await call('GET', `${ns}/tags`, admin)).json(), { tags: [] });

    // resource type associations: an unknown type is created, unprotected
    const assoc = await call('POST', `${ns}/resource_types`, admin, {
      name: 'OS::Custom::Thing',
      prefix: 'c_',
    });
    assert.equal(assoc.statusCode, 201, assoc.body);
    assert.equal((assoc.json() as { prefix: string }).prefix, 'c_');
    assert.equal(
      (await call('POST', `${ns}/resource_types`, admin, { name: 'OS::Custom::Thing' })).statusCode,
      409,
    );
    const types = (await call('GET', '/metadefs/resource_types', reader)).json() as {
      resource_types: Array<{ name: string }>;
    };
    assert.ok(types.resource_types.some((t) => t.name === 'OS::Custom::Thing'));
    assert.equal((await call('DELETE', `${ns}/resource_types/OS::Nova::Flavor`, admin)).statusCode, 404);
    assert.equal((await call('DELETE', `${ns}/resource_types/OS::Custom::Thing`, admin)).statusCode, 204);
    assert.deepEqual((await call('GET', `${ns}/resource_types`, admin)).json(), {
      resource_type_associations: [],
    });
    assert.equal((await call('DELETE', ns, admin)).statusCode, 204);
  });

  test('GET /v2/info/import: no import methods', async () => {
    const res = await call('GET', '/info/import', reader);
    assert.equal(res.statusCode, 200);
    assert.deepEqual((res.json() as { 'import-methods': { value: string[] } })['import-methods'].value, []);
  });
});
