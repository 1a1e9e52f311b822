/**
 * Placement over HTTP (inject): the root version document with its microversion range (no token), the
 * resource providers for admins (403 in Placement's error format for a member), 406 out of range.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { openApiTestEnv, seedUserToken, type ApiTestEnv } from './helpers/api';

describe('Placement API', () => {
  let env: ApiTestEnv;
  let member: string;
  let admin: string;
  const providerUuid = randomUUID();

  before(async () => {
    env = await openApiTestEnv({ services: ['identity', 'placement'], label: 'api-placement' });
    member = (await seedUserToken(env, 'alice', 'p-alice')).token;
    admin = (await seedUserToken(env, 'root', 'p-admin', 'admin')).token;
    await env.cloud.placement.ensureResourceProvider({
      uuid: providerUuid,
      name: 'compute9',
      inventories: { VCPU: { total: 4 } },
    });
  });
  after(async () => {
    await env?.close();
  });

  test('root document: the microversion range, without a token', async () => {
    const res = await env.app.inject({ method: 'GET', url: '/placement/' });
    assert.equal(res.statusCode, 200);
    const v = (res.json() as { versions: Array<Record<string, string>> }).versions[0]!;
    assert.deepEqual([v.id, v.min_version, v.max_version, v.status], ['v1.0', '1.0', '1.14', 'CURRENT']);
    assert.equal(res.headers['openstack-api-version'], 'placement 1.0');
  });

  test('resource providers: admin lists and shows; member 403; unknown 404; 406 out of range', async () => {
    const list = await env.app.inject({
      method: 'GET',
      url: '/placement/resource_providers',
      headers: { 'x-auth-token': admin, 'openstack-api-version': 'placement 1.14' },
    });
    assert.equal(list.statusCode, 200);
    const providers = (list.json() as { resource_providers: Array<Record<string, unknown>> })
      .resource_providers;
    assert.deepEqual(
      providers.map((p) => [p.uuid, p.name, p.root_provider_uuid]),
      [[providerUuid, 'compute9', providerUuid]],
    );
    const one = await env.app.inject({
      method: 'GET',
      url: `/placement/resource_providers/${providerUuid}`,
      headers: { 'x-auth-token': admin },
    });
    assert.equal((one.json() as { name: string }).name, 'compute9');
    const denied = await env.app.inject({
      method: 'GET',
      url: '/placement/resource_providers',
      headers: { 'x-auth-token': member },
    });
    assert.equal(denied.statusCode, 403);
    assert.equal((denied.json() as { errors: Array<{ status: number }> }).errors[0]?.status, 403);
    const missing = await env.app.inject({
      method: 'GET',
      url: `/placement/resource_providers/${randomUUID()}`,
      headers: { 'x-auth-token': admin },
    });
    assert.equal(missing.statusCode, 404);
    const tooNew = await env.app.inject({
      method: 'GET',
      url: '/placement/resource_providers',
      headers: { 'x-auth-token': admin, 'openstack-api-version': 'placement 1.99' },
    });
    assert.equal(tooNew.statusCode, 406);
    const noToken = await env.app.inject({ method: 'GET', url: '/placement/resource_providers' });
    assert.equal(noToken.statusCode, 401);
  });
});
