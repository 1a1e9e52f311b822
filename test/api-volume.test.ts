/**
 * Cinder v3 over HTTP (inject): the version document and microversions (header echoed, 406 out of range,
 * 400 malformed), volume create (202, `creating`, then `available` with its file on disk), list/detail with
 * filters and all_tenants for admin, show, delete (202; refused for an attached volume, with Cinder's 400),
 * another project's volume 404; bad bodies change no row.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { openApiTestEnv, seedUserToken, type ApiTestEnv } from './helpers/api';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are read field by field as documented
type Body = Record<string, any>;

describe('Cinder v3 API', () => {
  let env: ApiTestEnv;
  let alice: { token: string; projectId: string };
  let bob: { token: string; projectId: string };
  let admin: { token: string; projectId: string };

  before(async () => {
    env = await openApiTestEnv({ services: ['identity', 'volume'], label: 'api-volume' });
    alice = await seedUserToken(env, 'alice', 'p-alice');
    bob = await seedUserToken(env, 'bob', 'p-bob');
    admin = await seedUserToken(env, 'root', 'p-admin', 'admin');
  });
  after(async () => {
    await env?.close();
  });

  const call = async (
    token: string,
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    payload?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await env.app.inject({
      method,
      url: `/volume${url}`,
      headers: {
        'x-auth-token': token,
        ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(payload !== undefined
        ? { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) }
        : {}),
    });
    return {
      status: res.statusCode,
      headers: res.headers,
      body: res.body ? (JSON.parse(res.body) as Body) : {},
    };
  };
  const volumeRows = async () => (await env.cloud.cinder.listVolumes({})).length;

  async function available(id: string) {
    const volume = await env.cloud.cinder.waitForVolume(id, { timeoutMs: 60_000 });
    assert.equal(volume.status, 'available');
    return volume;
  }

  test('versions: 300 at /volume with the microversion range; the header is honoured', async () => {
    const root = await env.app.inject({ method: 'GET', url: '/volume' });
    assert.equal(root.statusCode, 300);
    const doc = (root.json() as { versions: Array<Record<string, string>> }).versions[0]!;
    assert.deepEqual([doc.id, doc.min_version, doc.version], ['v3.0', '3.0', '3.50']);
    const plain = await call(alice.token, 'GET', '/v3/volumes');
    assert.equal(plain.headers['openstack-api-version'], 'volume 3.0');
    const latest = await call(alice.token, 'GET', '/v3/volumes', undefined, {
      'OpenStack-API-Version': 'volume latest',
    });
    assert.equal(latest.headers['openstack-api-version'], 'volume 3.50');
    const tooNew = await call(alice.token, 'GET', '/v3/volumes', undefined, {
      'OpenStack-API-Version': 'volume 3.99',
    });
    assert.equal(tooNew.status, 406);
    assert.match(
      tooNew.body.computeFault.message,
      /Version 3\.99 is not supported by the API\. Minimum is 3\.0 and maximum is 3\.50/,
    );
    const malformed = await call(alice.token, 'GET', '/v3/volumes', undefined, {
      'OpenStack-API-Version': 'volume 3.x',
    });
    assert.equal(malformed.status, 400);
  });

  test('create (202, creating → available, its file on disk), show, list, detail, delete (202)', async () => {
    const created = await call(alice.token, 'POST', '/v3/volumes', {
      volume: {
        size: 1,
        name: 'v1',
        description: null,
        volume_type: null,
        imageRef: null,
        snapshot_id: null,
        source_volid: null,
        consistencygroup_id: null,
        availability_zone: null,
        metadata: {},
      },
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    assert.equal(created.body.volume.status, 'creating');
    assert.equal(created.body.volume.bootable, 'false');
    const id = created.body.volume.id as string;
    const volume = await available(id);
    assert.ok(volume.providerLocation && existsSync(volume.providerLocation), 'the volume file exists');

    const shown = await call(alice.token, 'GET', `/v3/${alice.projectId}/volumes/${id}`, undefined, {
      'OpenStack-API-Version': 'volume 3.48',
    });
    assert.equal(shown.status, 200);
    assert.equal(shown.body.volume.status, 'available');
    assert.equal(shown.body.volume.shared_targets, false);
    assert.equal(shown.body.volume['os-vol-host-attr:host'], undefined, 'host attribute is admin only');
    const list = await call(alice.token, 'GET', '/v3/volumes?name=v1');
    assert.deepEqual(
      list.body.volumes.map((v: { id: string }) => v.id),
      [id],
    );
    const detail = await call(alice.token, 'GET', '/v3/volumes/detail?status=available');
    assert.deepEqual(
      detail.body.volumes.map((v: { id: string; size: number }) => [v.id, v.size]),
      [[id, 1]],
    );

    // bob: 404 and an empty list; admin with all_tenants sees it.
    const hidden = await call(bob.token, 'GET', `/v3/volumes/${id}`);
    assert.equal(hidden.status, 404);
    assert.deepEqual(hidden.body, {
      itemNotFound: { code: 404, message: `Volume ${id} could not be found.` },
    });
    assert.deepEqual((await call(bob.token, 'GET', '/v3/volumes?all_tenants=1')).body.volumes, []);
    assert.equal((await call(bob.token, 'DELETE', `/v3/volumes/${id}`)).status, 404);
    const all = await call(admin.token, 'GET', '/v3/volumes/detail?all_tenants=1');
    assert.ok(all.body.volumes.some((v: { id: string }) => v.id === id));
    assert.deepEqual(
      (await call(admin.token, 'GET', '/v3/volumes')).body.volumes,
      [],
      'without all_tenants: own project',
    );

    assert.equal((await call(alice.token, 'DELETE', `/v3/volumes/${id}`)).status, 202);
    assert.equal((await call(alice.token, 'GET', `/v3/volumes/${id}`)).status, 404);
    assert.ok(!existsSync(volume.providerLocation), 'the volume file is gone');
  });

  test('an attached volume is not deleted: 400 Invalid volume, row and file kept', async () => {
    const created = await call(alice.token, 'POST', '/v3/volumes', { volume: { size: 1, name: 'attached' } });
    const id = created.body.volume.id as string;
    const volume = await available(id);
    await env.cloud.cinder.createAttachment({
      volumeId: id,
      instanceUuid: '11111111-2222-3333-4444-555555555555',
      host: 'compute1',
    });
    const refused = await call(alice.token, 'DELETE', `/v3/volumes/${id}`);
    assert.equal(refused.status, 400);
    assert.match(refused.body.badRequest.message, /^Invalid volume: /);
    assert.ok(existsSync(volume.providerLocation!));
    assert.equal((await env.cloud.cinder.getVolume(id)).status === 'deleted', false);
  });

  test('os-set_bootable: 200, the row changes; bad values, unknown actions, another project refused', async () => {
    const created = await call(alice.token, 'POST', '/v3/volumes', { volume: { size: 1, name: 'boot-me' } });
    const id = created.body.volume.id as string;
    await available(id);
    assert.equal((await env.cloud.cinder.getVolume(id)).bootable, false);
    const set = await call(alice.token, 'POST', `/v3/volumes/${id}/action`, {
      'os-set_bootable': { bootable: true },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal((await env.cloud.cinder.getVolume(id)).bootable, true);
    const shown = await call(alice.token, 'GET', `/v3/volumes/${id}`);
    assert.equal(shown.body.volume.bootable, 'true');
    const unset = await call(alice.token, 'POST', `/v3/${alice.projectId}/volumes/${id}/action`, {
      'os-set_bootable': { bootable: 'False' },
    });
    assert.equal(unset.status, 200);
    assert.equal((await env.cloud.cinder.getVolume(id)).bootable, false);
    for (const [token, payload, status] of [
      [alice.token, { 'os-set_bootable': { bootable: 'maybe' } }, 400],
      [alice.token, { 'os-set_bootable': {} }, 400],
      [alice.token, { 'os-set_bootable': { bootable: true, extra: 1 } }, 400],
      [alice.token, { 'os-frobnicate': {} }, 400],
      [bob.token, { 'os-set_bootable': { bootable: true } }, 404],
    ] as const) {
      const res = await call(token, 'POST', `/v3/volumes/${id}/action`, payload);
      assert.equal(res.status, status, JSON.stringify([payload, res.body]));
    }
    assert.equal((await env.cloud.cinder.getVolume(id)).bootable, false);
    assert.equal((await call(alice.token, 'DELETE', `/v3/volumes/${id}`)).status, 202);
  });

  test('bad requests: 400, 403 for a reader, 401; no row created', async () => {
    const before = await volumeRows();
    for (const payload of [
      '{"volume": ',
      { volume: { size: 'big' } },
      { volume: { size: 0 } },
      { volume: { size: 1, colour: 'blue' } },
      { volume: { size: 1, snapshot_id: 'abc' } },
      { nothing: {} },
    ]) {
      const res = await call(alice.token, 'POST', '/v3/volumes', payload);
      assert.equal(res.status, 400, JSON.stringify(payload));
      assert.equal(res.body.badRequest.code, 400);
    }
    const reader = await seedUserToken(env, 'rita', 'p-alice', 'reader');
    assert.equal((await call(reader.token, 'POST', '/v3/volumes', { volume: { size: 1 } })).status, 403);
    for (const token of ['', 'forged']) {
      const res = await env.app.inject({
        method: 'GET',
        url: '/volume/v3/volumes',
        headers: token ? { 'x-auth-token': token } : {},
      });
      assert.equal(res.statusCode, 401);
      assert.match(String(res.headers['www-authenticate']), /^Keystone uri=/);
    }
    assert.equal(await volumeRows(), before);
  });
});
