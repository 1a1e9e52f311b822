/**
 * Keystone v3's catalog over HTTP (inject): regions, services, endpoints and OS-EP-FILTER endpoint groups
 * (and Keystone's /v3/policies blobs),
 * with Keystone's default policies, and every token's catalog read from those rows (the test env registers
 * the bootstrap's services, as the bootstrap does). Rows are read back from the keystone database; refused
 * requests change none.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CATALOG_SERVICES, ensureServiceCatalog } from '../cloud/bootstrap';
import {
  type ApiTestEnv,
  identityCaller,
  openApiTestEnvWithUsers,
  type SeededUser,
  TEST_PUBLIC_URL,
} from './helpers/api';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

describe('Keystone v3 API: regions, services, endpoints, endpoint groups and the token catalog', () => {
  let env: ApiTestEnv;
  let admin: SeededUser;
  let member: SeededUser;
  let reader: SeededUser;

  before(async () => {
    ({
      env,
      users: { admin, member, reader },
    } = await openApiTestEnvWithUsers(
      { services: ['identity'], label: 'api-identity-catalog' },
      {
        admin: ['cat-admin', 'cat-admin-project', 'admin'],
        member: ['cat-member', 'cat-member-project', 'member'],
        reader: ['cat-reader', 'cat-reader-project', 'reader'],
      },
    ));
  });
  after(async () => {
    await env?.close();
  });

  const call = identityCaller(() => env);
  const table = (
    name: 'regions' | 'services' | 'endpoints' | 'endpoint_groups' | 'project_endpoint_groups',
  ) => env.cloud.keystone.serviceDb.db.selectFrom(name).selectAll().execute();
  const catalogOf = async (as: string) =>
    (await call('GET', '/auth/catalog', as)).body.catalog as Array<{
      id: string;
      type: string;
      name: string;
      endpoints: Array<{ id: string; interface: string; region_id: string; url: string }>;
    }>;

  test('the bootstrap’s services are rows, and the token’s catalog is read from them', async () => {
    const services = await table('services');
    assert.deepEqual(services.map((s) => s.type).sort(), CATALOG_SERVICES.map((s) => s.type).sort());
    assert.equal((await table('endpoints')).length, CATALOG_SERVICES.length * 3);
    const catalog = await catalogOf(member.token);
    const compute = catalog.find((s) => s.type === 'compute');
    assert.equal(compute?.name, 'nova');
    assert.deepEqual(compute?.endpoints.map((e) => e.interface).sort(), ['admin', 'internal', 'public']);
    assert.equal(compute?.endpoints[0]?.url, `${TEST_PUBLIC_URL}/compute/v2.1`);
    assert.equal(compute?.endpoints[0]?.region_id, 'RegionOne');
    // Registered again with a new public URL: the same rows, moved (keystone-manage bootstrap's update).
    await ensureServiceCatalog(env.cloud, 'http://10.9.8.7:8770');
    assert.equal((await table('services')).length, services.length);
    const moved = (await catalogOf(member.token)).find((s) => s.type === 'image');
    assert.equal(moved?.endpoints[0]?.url, 'http://10.9.8.7:8770/image');
    await ensureServiceCatalog(env.cloud, TEST_PUBLIC_URL);
  });

  test('services: create, show, list by type, update, and a disabled service leaves the catalog', async () => {
    const created = await call('POST', '/services', admin.token, {
      service: { type: 'object-store', name: 'swift', description: 'objects', color: 'blue' },
    });
    assert.equal(created.status, 201);
    const s = created.body.service;
    assert.deepEqual(
      { type: s.type, name: s.name, description: s.description, enabled: s.enabled, color: s.color },
      { type: 'object-store', name: 'swift', description: 'objects', enabled: true, color: 'blue' },
    );
    assert.equal(s.links.self, `${TEST_PUBLIC_URL}/identity/v3/services/${s.id}`);
    const row = (await table('services')).find((r) => r.id === s.id);
    assert.deepEqual(JSON.parse(row?.extra ?? '{}'), {
      name: 'swift',
      description: 'objects',
      color: 'blue',
    });
    const byType = await call('GET', '/services?type=object-store', admin.token);
    assert.deepEqual(
      byType.body.services.map((x: Body) => x.id),
      [s.id],
    );
    const updated = await call('PATCH', `/services/${s.id}`, admin.token, {
      service: { description: 'new' },
    });
    assert.equal(updated.body.service.description, 'new');
    assert.equal(updated.body.service.name, 'swift');
    assert.equal((await call('GET', `/services/${s.id}`, admin.token)).body.service.description, 'new');

    const ep = await call('POST', '/endpoints', admin.token, {
      endpoint: {
        service_id: s.id,
        interface: 'public',
        url: 'http://swift/v1/AUTH_$(project_id)s',
        region_id: 'RegionOne',
      },
    });
    assert.equal(ep.status, 201);
    // Keystone's format_url: the token's project substituted.
    const swift = (await catalogOf(member.token)).find((x) => x.type === 'object-store');
    assert.equal(swift?.endpoints[0]?.url, `http://swift/v1/AUTH_${member.projectId}`);
    await call('PATCH', `/services/${s.id}`, admin.token, { service: { enabled: false } });
    assert.equal(
      (await catalogOf(member.token)).find((x) => x.type === 'object-store'),
      undefined,
    );

    // Deleting a service deletes its endpoints (Keystone's delete_service).
    assert.equal((await call('DELETE', `/services/${s.id}`, admin.token)).status, 204);
    assert.equal(
      (await table('endpoints')).find((e) => e.id === ep.body.endpoint.id),
      undefined,
    );
    assert.equal((await call('GET', `/services/${s.id}`, admin.token)).status, 404);
  });

  test('endpoints: the legacy `region` creates the region, filters, update, disable, delete', async () => {
    const svc = (
      await call('POST', '/services', admin.token, { service: { type: 'dns', name: 'designate' } })
    ).body.service;
    const created = await call('POST', '/endpoints', admin.token, {
      endpoint: {
        service_id: svc.id,
        interface: 'internal',
        url: 'http://dns:9001',
        region: 'RegionTwo',
        enabled: true,
      },
    });
    assert.equal(created.status, 201);
    const ep = created.body.endpoint;
    assert.deepEqual(
      {
        region: ep.region,
        region_id: ep.region_id,
        url: ep.url,
        interface: ep.interface,
        enabled: ep.enabled,
      },
      {
        region: 'RegionTwo',
        region_id: 'RegionTwo',
        url: 'http://dns:9001',
        interface: 'internal',
        enabled: true,
      },
    );
    assert.equal((await call('GET', '/regions/RegionTwo', member.token)).status, 200);
    const filtered = await call('GET', `/endpoints?service_id=${svc.id}&interface=internal`, admin.token);
    assert.deepEqual(
      filtered.body.endpoints.map((e: Body) => e.id),
      [ep.id],
    );
    assert.deepEqual(
      (await call('GET', `/endpoints?service_id=${svc.id}&interface=public`, admin.token)).body.endpoints,
      [],
    );
    const moved = await call('PATCH', `/endpoints/${ep.id}`, admin.token, {
      endpoint: { url: 'http://dns2:9001', interface: 'public', enabled: false },
    });
    assert.equal(moved.status, 200);
    assert.equal(moved.body.endpoint.url, 'http://dns2:9001');
    const dns = (await catalogOf(member.token)).find((x) => x.type === 'dns');
    assert.deepEqual(dns?.endpoints, []);

    // A region with endpoints is not deleted: 403 RegionDeletionError.
    const refused = await call('DELETE', '/regions/RegionTwo', admin.token);
    assert.equal(refused.status, 403);
    assert.match(
      refused.body.error.message,
      /Unable to delete region RegionTwo because it or its child regions/,
    );
    assert.equal((await call('DELETE', `/endpoints/${ep.id}`, admin.token)).status, 204);
    assert.equal((await call('DELETE', '/regions/RegionTwo', admin.token)).status, 204);
    assert.equal((await call('DELETE', `/endpoints/${ep.id}`, admin.token)).status, 404);
  });

  test('bad input is a 400 that changes nothing', async () => {
    const svc = (await table('services'))[0]!;
    const before = (await table('endpoints')).length;
    for (const endpoint of [
      { service_id: svc.id, interface: 'public', url: 'http://x', enabled: 'False' },
      { service_id: svc.id, interface: 'sideways', url: 'http://x' },
      { service_id: svc.id, interface: 'public', url: 'no-scheme' },
      { service_id: 'nope', interface: 'public', url: 'http://x' },
      { service_id: svc.id, interface: 'public', url: 'http://x', region_id: 'Nowhere' },
    ]) {
      const res = await call('POST', '/endpoints', admin.token, { endpoint });
      assert.equal(res.status, 400, JSON.stringify(endpoint));
      assert.equal(res.body.error.code, 400);
    }
    assert.equal((await table('endpoints')).length, before);
    const noType = await call('POST', '/services', admin.token, { service: { name: 'x' } });
    assert.equal(noType.status, 400);
    const badGroup = await call('POST', '/OS-EP-FILTER/endpoint_groups', admin.token, {
      endpoint_group: { name: 'g', filters: { url: 'http://x' } },
    });
    assert.equal(badGroup.status, 400);
    assert.equal((await table('endpoint_groups')).length, 0);
  });

  test('regions: an id of one’s own (PUT), parents, the parent filter, no circle, delete with children', async () => {
    const root = await call('PUT', '/regions/Europe', admin.token, { region: { description: 'EU' } });
    assert.equal(root.status, 201);
    assert.deepEqual(root.body.region, {
      id: 'Europe',
      description: 'EU',
      parent_region_id: null,
      links: { self: `${TEST_PUBLIC_URL}/identity/v3/regions/Europe` },
    });
    assert.equal((await call('PUT', '/regions/Europe', admin.token, { region: {} })).status, 409);
    const child = await call('POST', '/regions', admin.token, { region: { parent_region_id: 'Europe' } });
    assert.equal(child.status, 201);
    assert.equal(child.body.region.description, '');
    const childId = child.body.region.id as string;
    assert.equal(
      (await call('POST', '/regions', admin.token, { region: { parent_region_id: 'Mars' } })).status,
      404,
    );
    const listed = await call('GET', '/regions?parent_region_id=Europe', member.token);
    assert.deepEqual(
      listed.body.regions.map((r: Body) => r.id),
      [childId],
    );
    const circle = await call('PATCH', '/regions/Europe', admin.token, {
      region: { parent_region_id: childId },
    });
    assert.equal(circle.status, 400);
    assert.equal((await call('DELETE', '/regions/Europe', admin.token)).status, 204);
    assert.deepEqual(
      (await table('regions')).filter((r) => r.id === childId || r.id === 'Europe'),
      [],
    );
  });

  test('endpoint groups: CRUD, HEAD, and a project given a group sees only the endpoints it matches', async () => {
    const compute = (await table('services')).find((s) => s.type === 'compute')!;
    const created = await call('POST', '/OS-EP-FILTER/endpoint_groups', admin.token, {
      endpoint_group: {
        name: 'compute-only',
        description: 'd',
        filters: { service_id: compute.id, interface: 'public' },
      },
    });
    assert.equal(created.status, 201);
    const group = created.body.endpoint_group;
    assert.deepEqual(group.filters, { service_id: compute.id, interface: 'public' });
    const head = await env.app.inject({
      method: 'HEAD',
      url: `/identity/v3/OS-EP-FILTER/endpoint_groups/${group.id}`,
      headers: { 'x-auth-token': admin.token },
    });
    assert.equal(head.statusCode, 200);
    const renamed = await call('PATCH', `/OS-EP-FILTER/endpoint_groups/${group.id}`, admin.token, {
      endpoint_group: { name: 'renamed' },
    });
    assert.equal(renamed.body.endpoint_group.name, 'renamed');
    assert.equal(
      (await call('GET', `/OS-EP-FILTER/endpoint_groups/${group.id}/endpoints`, admin.token)).body.endpoints
        .length,
      1,
    );

    const assoc = `/OS-EP-FILTER/endpoint_groups/${group.id}/projects/${member.projectId}`;
    assert.equal((await call('PUT', assoc, admin.token)).status, 204);
    assert.equal((await call('GET', assoc, admin.token)).status, 200);
    const catalog = await catalogOf(member.token);
    assert.deepEqual(
      catalog.map((s) => [s.type, s.endpoints.map((e) => e.interface)]),
      [['compute', ['public']]],
    );
    // Other projects keep the whole catalog.
    assert.ok((await catalogOf(reader.token)).length >= CATALOG_SERVICES.length);
    assert.equal((await call('DELETE', assoc, admin.token)).status, 204);
    assert.equal((await call('GET', assoc, admin.token)).status, 404);
    assert.ok((await catalogOf(member.token)).length >= CATALOG_SERVICES.length);
    assert.equal(
      (await call('DELETE', `/OS-EP-FILTER/endpoint_groups/${group.id}`, admin.token)).status,
      204,
    );
    assert.equal((await table('endpoint_groups')).length, 0);
  });

  test('policy: writes are admin only, services and endpoints are read by an admin (or a system reader), regions by anyone', async () => {
    const svc = (await table('services'))[0]!;
    const counts = async () => [
      (await table('services')).length,
      (await table('endpoints')).length,
      (await table('regions')).length,
    ];
    const before = await counts();
    for (const as of [member.token, reader.token]) {
      for (const [method, url, body] of [
        ['POST', '/services', { service: { type: 'x' } }],
        ['PATCH', `/services/${svc.id}`, { service: { name: 'x' } }],
        ['DELETE', `/services/${svc.id}`, undefined],
        ['POST', '/endpoints', { endpoint: { service_id: svc.id, interface: 'public', url: 'http://x' } }],
        ['POST', '/regions', { region: {} }],
        ['DELETE', '/regions/RegionOne', undefined],
        [
          'POST',
          '/OS-EP-FILTER/endpoint_groups',
          { endpoint_group: { name: 'g', filters: { interface: 'public' } } },
        ],
        ['GET', '/services', undefined],
        ['GET', `/services/${svc.id}`, undefined],
        ['GET', '/endpoints', undefined],
        ['GET', '/OS-EP-FILTER/endpoint_groups', undefined],
      ] as const) {
        const res = await call(method, url, as, body);
        assert.equal(res.status, 403, `${method} ${url}`);
        assert.match(
          res.body.error.message,
          /You are not authorized to perform the requested action: identity:/,
        );
      }
      assert.equal((await call('GET', '/regions', as)).status, 200);
    }
    assert.deepEqual(await counts(), before);
  });

  test('policies: create, list by type, show, update, delete; admin only writes, bad input changes nothing', async () => {
    const created = await call('POST', '/policies', admin.token, {
      policy: { type: 'application/json', blob: '{"rule": "@"}', owner: 'ops' },
    });
    assert.equal(created.status, 201);
    const p = created.body.policy;
    assert.deepEqual(
      { type: p.type, blob: p.blob, owner: p.owner },
      { type: 'application/json', blob: '{"rule": "@"}', owner: 'ops' },
    );
    assert.deepEqual(
      (await call('GET', '/policies?type=application/json', admin.token)).body.policies.map(
        (x: Body) => x.id,
      ),
      [p.id],
    );
    const updated = await call('PATCH', `/policies/${p.id}`, admin.token, { policy: { type: 'text/yaml' } });
    assert.equal(updated.body.policy.type, 'text/yaml');
    assert.equal((await call('GET', `/policies/${p.id}`, admin.token)).body.policy.blob, '{"rule": "@"}');
    const rows = () => env.cloud.keystone.serviceDb.db.selectFrom('policies').selectAll().execute();
    for (const [as, method, url, body] of [
      [member.token, 'POST', '/policies', { policy: { type: 't', blob: 'b' } }],
      [reader.token, 'PATCH', `/policies/${p.id}`, { policy: { type: 't' } }],
      [member.token, 'DELETE', `/policies/${p.id}`, undefined],
      [member.token, 'GET', '/policies', undefined],
    ] as const) {
      assert.equal((await call(method, url, as, body)).status, 403, `${method} ${url}`);
    }
    assert.equal((await call('POST', '/policies', admin.token, { policy: { type: 't' } })).status, 400);
    assert.equal((await rows()).length, 1);
    assert.equal((await rows())[0]?.type, 'text/yaml');
    assert.equal((await call('DELETE', `/policies/${p.id}`, admin.token)).status, 204);
    assert.equal((await call('GET', `/policies/${p.id}`, admin.token)).status, 404);
  });
});
