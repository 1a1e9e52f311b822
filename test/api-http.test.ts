/**
 * The API's shared HTTP layer: every service answers a missing or forged token with 401 and
 * `WWW-Authenticate: Keystone uri=...`, errors come in each service's own format, every response carries a
 * request id, and oversized bodies are refused before any handler runs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { renderError } from '../api/errors';
import { CloudError } from '../cloud/errors';
import { openApiTestEnv, type ApiTestEnv } from './helpers/api';

describe('API error formats', () => {
  test('Nova and Cinder: the fault name by status', () => {
    const notFound = renderError(
      'compute',
      new CloudError('NotFound', 'Instance x could not be found.'),
      'req-1',
    );
    assert.equal(notFound.status, 404);
    assert.deepEqual(JSON.parse(notFound.body), {
      itemNotFound: { code: 404, message: 'Instance x could not be found.' },
    });
    const conflict = renderError('volume', new CloudError('Conflict', 'busy'), 'req-1');
    assert.deepEqual(JSON.parse(conflict.body), { conflictingRequest: { code: 409, message: 'busy' } });
    const quota = renderError('compute', new CloudError('QuotaExceeded', 'Quota exceeded for cores'), 'r');
    assert.equal(quota.status, 403);
    assert.deepEqual(Object.keys(JSON.parse(quota.body)), ['forbidden']);
  });

  test('Keystone, Neutron, Placement and Glance', () => {
    const err = new CloudError('NotFound', 'gone');
    assert.deepEqual(JSON.parse(renderError('identity', err, 'r').body), {
      error: { code: 404, message: 'gone', title: 'Not Found' },
    });
    assert.deepEqual(JSON.parse(renderError('network', err, 'r').body), {
      NeutronError: { type: 'NotFound', message: 'gone', detail: '' },
    });
    const placement = JSON.parse(renderError('placement', err, 'req-9').body) as {
      errors: Array<Record<string, unknown>>;
    };
    assert.equal(placement.errors[0]?.status, 404);
    assert.equal(placement.errors[0]?.request_id, 'req-9');
    const image = renderError('image', err, 'r');
    assert.match(image.contentType, /^text\/plain/);
    assert.match(image.body, /^404 Not Found\n\ngone/);
  });

  test('an unexpected error is a 500 that says nothing of its cause', () => {
    const rendered = renderError('compute', new Error('SELECT * FROM secrets'), 'r');
    assert.equal(rendered.status, 500);
    assert.doesNotMatch(rendered.body, /secrets/);
  });
});

describe('API HTTP layer', () => {
  let env: ApiTestEnv;
  before(async () => {
    env = await openApiTestEnv();
  });
  after(async () => {
    await env?.close();
  });

  test("an unknown path under a service is that service's 404, with a request id", async () => {
    const res = await env.app.inject({ method: 'GET', url: '/compute/v2.1/no-such-thing' });
    assert.equal(res.statusCode, 404);
    assert.match(String(res.headers['x-openstack-request-id']), /^req-[0-9a-f-]{36}$/);
    assert.ok('itemNotFound' in (res.json() as object));
    const neutron = await env.app.inject({ method: 'GET', url: '/network/v2.0/no-such-thing' });
    assert.ok('NeutronError' in (neutron.json() as object));
  });

  test('a body over the size limit is refused with 413 before any handler runs', async () => {
    // Keystone's token issue needs no token, so nothing but the size decides here.
    const res = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ auth: { identity: { methods: ['x'.repeat(200_000)] } } }),
    });
    assert.equal(res.statusCode, 413);
    assert.equal((res.json() as { error: { code: number } }).error.code, 413);
  });
});
