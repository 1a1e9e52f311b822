/**
 * The server tags API (2.26+, server_tags.py) and os-server-password through the compute API: bodies,
 * status codes and Location, the rows written, Nova's 400 / 404 / 409 with their messages, policies (a
 * reader reads, a member writes), another project's server 404, and refusals that change nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TEST_PUBLIC_URL } from './helpers/api';
import {
  assertFault,
  openComputeTestEnv,
  recordActiveInstance,
  type CallOptions,
  type Caller,
  type ComputeTestEnv,
  type Method,
} from './helpers/compute-calls';

let t: ComputeTestEnv;

before(async () => {
  t = await openComputeTestEnv('api-server-tags');
});

after(async () => {
  await t?.close();
});

/** At 2.26 unless told, as the member unless told. */
const call = (method: Method, url: string, options: CallOptions<Caller> = {}) =>
  t.call(method, url, { as: 'member', version: '2.26', ...options });

async function storedTags(id: string): Promise<string | null> {
  const row = await t.env.cloud.nova.store.db
    .selectFrom('instances')
    .select('tags')
    .where('uuid', '=', id)
    .executeTakeFirstOrThrow();
  return row.tags;
}

describe('server tags', () => {
  test('add, check, list, replace, delete one and all, with Nova codes and bodies', async () => {
    const id = await recordActiveInstance(t);
    assert.deepEqual((await call('GET', `/servers/${id}/tags`, { as: 'reader' })).json(), { tags: [] });

    const added = await call('PUT', `/servers/${id}/tags/blue`);
    assert.equal(added.statusCode, 201, added.body);
    assert.equal(added.body, '');
    assert.equal(added.headers.location, `${TEST_PUBLIC_URL}/compute/v2.1/servers/${id}/tags/blue`);
    const again = await call('PUT', `/servers/${id}/tags/blue`);
    assert.equal(again.statusCode, 204);
    assert.equal(again.headers.location, undefined);
    assert.equal((await call('PUT', `/servers/${id}/tags/red`)).statusCode, 201);
    assert.equal(await storedTags(id), JSON.stringify(['blue', 'red']));

    assert.equal((await call('GET', `/servers/${id}/tags/blue`, { as: 'reader' })).statusCode, 204);
    assertFault(
      await call('GET', `/servers/${id}/tags/green`, { as: 'reader' }),
      404,
      'itemNotFound',
      `Server ${id} has no tag 'green'`,
    );
    const shown = await call('GET', `/servers/${id}`, { as: 'reader' });
    assert.deepEqual((shown.json() as { server: { tags: string[] } }).server.tags, ['blue', 'red']);

    const replaced = await call('PUT', `/servers/${id}/tags`, { body: { tags: ['a', 'b', 'a'] } });
    assert.equal(replaced.statusCode, 200, replaced.body);
    assert.deepEqual(replaced.json(), { tags: ['a', 'b'] });
    assert.deepEqual((await call('GET', `/servers/${id}/tags`)).json(), { tags: ['a', 'b'] });

    const deleted = await call('DELETE', `/servers/${id}/tags/a`);
    assert.equal(deleted.statusCode, 204);
    assert.equal(await storedTags(id), JSON.stringify(['b']));
    assertFault(
      await call('DELETE', `/servers/${id}/tags/a`),
      404,
      'itemNotFound',
      `Instance ${id} has no tag 'a'`,
    );
    assert.equal((await call('DELETE', `/servers/${id}/tags`)).statusCode, 204);
    assert.equal(await storedTags(id), null);
    // A stopped server's tags change too.
    await t.env.cloud.nova.updateInstance(id, { vmState: 'stopped', powerState: 4 });
    assert.equal((await call('PUT', `/servers/${id}/tags/off`)).statusCode, 201);
  });

  test('refusals: state, count, bad tags, policy, tenancy and microversion; nothing changes', async () => {
    const id = await recordActiveInstance(t, { tags: ['keep'] });
    const theirs = await recordActiveInstance(t, { projectId: t.otherProjectId, userId: 'someone' });
    const full = Array.from({ length: 50 }, (_, n) => `t${n}`);
    assert.equal((await call('PUT', `/servers/${id}/tags`, { body: { tags: full } })).statusCode, 200);
    assertFault(
      await call('PUT', `/servers/${id}/tags/one-more`),
      400,
      'badRequest',
      'The number of tags exceeded the per-server limit 50',
    );
    assertFault(
      await call('PUT', `/servers/${id}/tags`, { body: { tags: [...full, 'x'] } }),
      400,
      'badRequest',
    );
    assertFault(await call('PUT', `/servers/${id}/tags`, { body: { tags: ['a,b'] } }), 400, 'badRequest');
    assertFault(await call('PUT', `/servers/${id}/tags`, { body: { tags: [''] } }), 400, 'badRequest');
    assertFault(await call('PUT', `/servers/${id}/tags`, { body: { tag: [] } }), 400, 'badRequest');
    assertFault(
      await call('PUT', `/servers/${id}/tags/a%2Cb`),
      400,
      'badRequest',
      "Tag 'a,b' is invalid. It must be a non empty string without characters '/' and ','. Validation error message: 'a,b' does not match '^[^,/]*$'",
    );
    assertFault(await call('PUT', `/servers/${id}/tags/x`, { body: { tag: 'x' } }), 400, 'badRequest');
    assert.equal(await storedTags(id), JSON.stringify(full));

    assertFault(
      await call('PUT', `/servers/${id}/tags/x`, { as: 'reader' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-server-tags:update to be performed.",
    );
    assertFault(
      await call('DELETE', `/servers/${id}/tags`, { as: 'reader' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-server-tags:delete_all to be performed.",
    );
    for (const [method, url] of [
      ['GET', `/servers/${theirs}/tags`],
      ['PUT', `/servers/${theirs}/tags/x`],
      ['DELETE', `/servers/${theirs}/tags`],
    ] as const) {
      assertFault(await call(method, url), 404, 'itemNotFound', `Instance ${theirs} could not be found.`);
    }
    assert.equal(await storedTags(theirs), null);
    assertFault(await call('GET', `/servers/${id}/tags`, { version: '2.25' }), 404, 'itemNotFound');
    assertFault(await call('PUT', `/servers/${id}/tags/x`, { version: '2.25' }), 404, 'itemNotFound');

    await t.env.cloud.nova.updateInstance(id, { vmState: 'error' });
    assertFault(
      await call('PUT', `/servers/${id}/tags/x`),
      409,
      'conflictingRequest',
      `Cannot 'update tag' instance ${id} while it is in vm_state error`,
    );
    assertFault(
      await call('DELETE', `/servers/${id}/tags`),
      409,
      'conflictingRequest',
      `Cannot 'delete tags' instance ${id} while it is in vm_state error`,
    );
    assert.equal((await call('GET', `/servers/${id}/tags/t0`)).statusCode, 204, 'reads need no state');
    assert.equal(await storedTags(id), JSON.stringify(full));
  });
});

describe('os-server-password', () => {
  test('"" for a reader (no metadata service posts one); clear is 204 for a member; policy and tenancy', async () => {
    const id = await recordActiveInstance(t);
    const theirs = await recordActiveInstance(t, { projectId: t.otherProjectId, userId: 'someone' });
    const shown = await call('GET', `/servers/${id}/os-server-password`, { as: 'reader', version: '2.1' });
    assert.equal(shown.statusCode, 200, shown.body);
    assert.deepEqual(shown.json(), { password: '' });
    const cleared = await call('DELETE', `/servers/${id}/os-server-password`);
    assert.equal(cleared.statusCode, 204);
    assert.equal(cleared.body, '');
    assertFault(
      await call('DELETE', `/servers/${id}/os-server-password`, { as: 'reader' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-server-password:clear to be performed.",
    );
    assertFault(await call('GET', `/servers/${theirs}/os-server-password`), 404, 'itemNotFound');
    assertFault(await call('DELETE', `/servers/${theirs}/os-server-password`), 404, 'itemNotFound');
  });
});
