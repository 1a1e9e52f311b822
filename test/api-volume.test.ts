/**
 * Cinder v3 over HTTP (inject): the version document and microversions (header echoed, 406 out of range,
 * 400 malformed), volume create (202, `creating`, then `available` with its file on disk), list/detail with
 * filters and all_tenants for admin, show, delete (202; refused for an attached volume, with Cinder's 400),
 * another project's volume 404; bad bodies change no row; description and metadata (create, PUT, the
 * metadata API, the list filters); the zone list and the extensions list.
 */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { openApiTestEnv, seedUserToken, TEST_PUBLIC_URL, type ApiTestEnv } from './helpers/api';

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
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
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

  test('description and metadata: create, PUT /volumes/{id}, the metadata API, list filters', async () => {
    const created = await call(alice.token, 'POST', '/v3/volumes', {
      volume: { size: 1, name: 'tagged', description: 'd1', metadata: { Type: 'work' } },
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    const id = created.body.volume.id as string;
    assert.deepEqual(
      [created.body.volume.description, created.body.volume.metadata],
      ['d1', { Type: 'work' }],
    );
    await available(id);
    const plain = await call(alice.token, 'POST', '/v3/volumes', { volume: { size: 1, name: 'plain' } });
    await available(plain.body.volume.id);

    // The list filters: metadata as tempest sends it (a Python dict literal) and as JSON, the zone.
    for (const [query, names] of [
      [`metadata=${encodeURIComponent("{'Type': 'work'}")}`, ['tagged']],
      [`metadata=${encodeURIComponent('{"Type": "play"}')}`, []],
      ['availability_zone=nova&name=tagged', ['tagged']],
      ['availability_zone=elsewhere', []],
    ] as const) {
      const listed = await call(alice.token, 'GET', `/v3/volumes/detail?${query}`);
      assert.equal(listed.status, 200, query);
      assert.deepEqual(
        listed.body.volumes.map((v: Body) => v.name),
        names,
        query,
      );
    }
    const badFilter = await call(
      alice.token,
      'GET',
      `/v3/volumes?metadata=${encodeURIComponent('Type=work')}`,
    );
    assert.equal(badFilter.status, 400);

    // Sorted pages with Cinder's next link (whenever a page is full), followed to the end.
    const ids = (await env.cloud.cinder.listVolumes({ projectId: alice.projectId })).map((v) => v.id).sort();
    assert.ok(ids.length >= 2);
    const seen: string[] = [];
    let next: string | undefined = `/v3/${alice.projectId}/volumes/detail?limit=1&sort=id:asc`;
    while (next) {
      const page = await call(alice.token, 'GET', next);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      seen.push(...page.body.volumes.map((v: Body) => v.id));
      const href = page.body.volumes_links?.[0]?.href as string | undefined;
      if (href)
        assert.ok(href.startsWith(`${TEST_PUBLIC_URL}/volume/v3/${alice.projectId}/volumes/detail?`), href);
      next = href?.slice(`${TEST_PUBLIC_URL}/volume`.length);
    }
    assert.deepEqual(seen, ids);
    const desc = await call(alice.token, 'GET', '/v3/volumes?sort_key=id&sort_dir=desc');
    assert.deepEqual(
      desc.body.volumes.map((v: Body) => v.id),
      [...ids].reverse(),
    );
    assert.equal((await call(alice.token, 'GET', '/v3/volumes?sort=colour')).status, 400);
    assert.equal((await call(alice.token, 'GET', `/v3/volumes?marker=${bob.projectId}`)).status, 404);

    const updated = await call(alice.token, 'PUT', `/v3/volumes/${id}`, {
      volume: { name: 'renamed', description: 'd2', metadata: { k1: 'v1' } },
    });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    // As Cinder's update view: without the show extensions.
    assert.equal('os-vol-tenant-attr:tenant_id' in updated.body.volume, false);
    assert.deepEqual(
      [updated.body.volume.name, updated.body.volume.description, updated.body.volume.metadata],
      ['renamed', 'd2', { k1: 'v1' }],
    );
    const row = await env.cloud.cinder.getVolume(id);
    assert.deepEqual([row.name, row.description, row.metadata], ['renamed', 'd2', { k1: 'v1' }]);

    const merged = await call(alice.token, 'POST', `/v3/volumes/${id}/metadata`, {
      metadata: { k2: 'v2', k3: '<value&special_chars>' },
    });
    assert.deepEqual(merged.body, { metadata: { k1: 'v1', k2: 'v2', k3: '<value&special_chars>' } });
    const replaced = await call(alice.token, 'PUT', `/v3/${alice.projectId}/volumes/${id}/metadata`, {
      metadata: { k2: 'v2', k4: 'v4' },
    });
    assert.deepEqual(replaced.body, { metadata: { k2: 'v2', k4: 'v4' } });
    const item = await call(alice.token, 'PUT', `/v3/volumes/${id}/metadata/k4`, { meta: { k4: 'v4b' } });
    assert.deepEqual([item.status, item.body], [200, { meta: { k4: 'v4b' } }]);
    assert.deepEqual((await call(alice.token, 'GET', `/v3/volumes/${id}/metadata/k4`)).body, {
      meta: { k4: 'v4b' },
    });
    const removed = await call(alice.token, 'DELETE', `/v3/volumes/${id}/metadata/k2`);
    assert.equal(removed.status, 200);
    assert.deepEqual((await call(alice.token, 'GET', `/v3/volumes/${id}/metadata`)).body, {
      metadata: { k4: 'v4b' },
    });

    // Refused, changing nothing: Cinder's 400s, 404s, a reader's 403, another project's 404.
    const reader = await seedUserToken(env, 'rhea', 'p-alice', 'reader');
    for (const [token, method, url, payload, status, message] of [
      [alice.token, 'PUT', `/v3/volumes/${id}/metadata/k4`, { meta: { k5: 'x' } }, 400, /URI mismatch/],
      [alice.token, 'PUT', `/v3/volumes/${id}/metadata/k4`, { meta: { k4: 'x', k5: 'y' } }, 400, /meta/],
      [alice.token, 'POST', `/v3/volumes/${id}/metadata`, { metadata: { 'bad;key': 'x' } }, 400, /metadata/],
      [
        alice.token,
        'POST',
        `/v3/volumes/${id}/metadata`,
        { metadata: { k: 'x'.repeat(256) } },
        400,
        /metadata/,
      ],
      [alice.token, 'PUT', `/v3/volumes/${id}`, { volume: { size: 5 } }, 400, /Additional properties/],
      [
        alice.token,
        'GET',
        `/v3/volumes/${id}/metadata/nope`,
        undefined,
        404,
        /has no metadata with key nope/,
      ],
      [
        alice.token,
        'DELETE',
        `/v3/volumes/${id}/metadata/nope`,
        undefined,
        404,
        /has no metadata with key nope/,
      ],
      [reader.token, 'PUT', `/v3/volumes/${id}`, { volume: { name: 'x' } }, 403, /volume:update/],
      [
        reader.token,
        'POST',
        `/v3/volumes/${id}/metadata`,
        { metadata: { x: 'y' } },
        403,
        /create_volume_metadata/,
      ],
      [reader.token, 'DELETE', `/v3/volumes/${id}/metadata/k4`, undefined, 403, /delete_volume_metadata/],
      [bob.token, 'PUT', `/v3/volumes/${id}`, { volume: { name: 'x' } }, 404, /could not be found/],
      [bob.token, 'GET', `/v3/volumes/${id}/metadata`, undefined, 404, /could not be found/],
    ] as const) {
      const res = await call(token, method, url, payload);
      assert.equal(res.status, status, JSON.stringify([method, url, payload, res.body]));
      const fault = Object.values(res.body)[0] as Body;
      assert.match(fault.message, message);
    }
    assert.equal((await call(reader.token, 'GET', `/v3/volumes/${id}/metadata/k4`)).status, 200);
    const after = await env.cloud.cinder.getVolume(id);
    assert.deepEqual([after.name, after.description, after.metadata], ['renamed', 'd2', { k4: 'v4b' }]);
    for (const volumeId of [id, plain.body.volume.id as string])
      assert.equal((await call(alice.token, 'DELETE', `/v3/volumes/${volumeId}`)).status, 202);
  });

  test('unknown volume types, snapshots and source volumes: 404 (400 for a clone); zones and extensions', async () => {
    const before = await volumeRows();
    const missing = '6b5f5b52-7d4c-4d4e-9a36-3d7c8f6f5e21';
    for (const [volume, status, message] of [
      [{ size: 1, volume_type: missing }, 404, `Volume type ${missing} could not be found.`],
      [{ size: 1, volume_type: 'gold' }, 404, 'Volume type with name gold could not be found.'],
      [{ size: 1, snapshot_id: missing }, 404, `Snapshot ${missing} could not be found.`],
      [{ size: 1, source_volid: missing }, 404, `Volume ${missing} could not be found.`],
    ] as const) {
      const res = await call(alice.token, 'POST', '/v3/volumes', { volume });
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.itemNotFound.message, message);
    }
    // An image whose min_disk exceeds the volume: Cinder's InvalidInput, no volume.
    const image = await env.cloud.glance.createImage({
      name: 'big-min-disk',
      diskFormat: 'raw',
      containerFormat: 'bare',
      ownerProjectId: alice.projectId,
      minDisk: 2,
    });
    await env.cloud.glance.uploadImageData(image.id, Buffer.alloc(1024));
    const tooSmall = await call(alice.token, 'POST', '/v3/volumes', {
      volume: { size: 1, imageRef: image.id },
    });
    assert.equal(tooSmall.status, 400);
    assert.equal(
      tooSmall.body.badRequest.message,
      'Invalid input received: Volume size 1GB cannot be smaller than the image minDisk size 2GB.',
    );
    assert.equal(await volumeRows(), before);
    // A show without an id is not the list.
    assert.equal((await call(alice.token, 'GET', '/v3/volumes/')).status, 404);
    const zones = await call(alice.token, 'GET', `/v3/${alice.projectId}/os-availability-zone`);
    assert.deepEqual(zones.body, {
      availabilityZoneInfo: [{ zoneName: 'nova', zoneState: { available: true } }],
    });
    const extensions = await call(alice.token, 'GET', '/v3/extensions');
    assert.deepEqual(
      extensions.body.extensions.map((e: Body) => e.alias),
      [
        'os-availability-zone',
        'os-extended-snapshot-attributes',
        'os-volume-actions',
        'os-vol-host-attr',
        'os-vol-image-meta',
        'os-vol-mig-status-attr',
        'os-vol-tenant-attr',
      ],
    );
  });

  test('os-extend grows the file and the row; os-update_readonly_flag shows in metadata; other actions', async () => {
    const created = await call(alice.token, 'POST', '/v3/volumes', { volume: { size: 1, name: 'grow' } });
    const id = created.body.volume.id as string;
    const volume = await available(id);
    const extended = await call(alice.token, 'POST', `/v3/volumes/${id}/action`, {
      'os-extend': { new_size: '2' },
    });
    assert.equal(extended.status, 202, JSON.stringify(extended.body));
    assert.equal((await env.cloud.cinder.getVolume(id)).sizeGb, 2);
    assert.equal(statSync(volume.providerLocation!).size, 2 * 1024 ** 3);

    for (const readonly of [true, 'False'] as const) {
      const set = await call(alice.token, 'POST', `/v3/volumes/${id}/action`, {
        'os-update_readonly_flag': { readonly },
      });
      assert.equal(set.status, 202);
      assert.equal((await env.cloud.cinder.getVolume(id)).readonly, readonly === true);
      const shown = await call(alice.token, 'GET', `/v3/volumes/${id}`);
      assert.equal(shown.body.volume.metadata.readonly, readonly === true ? 'True' : 'False');
    }
    // The readonly flag is Cinder's admin metadata, not the user's.
    assert.deepEqual((await call(alice.token, 'GET', `/v3/volumes/${id}/metadata`)).body, { metadata: {} });

    const missing = '6b5f5b52-7d4c-4d4e-9a36-3d7c8f6f5e21';
    const reader = await seedUserToken(env, 'ruth', 'p-alice', 'reader');
    for (const [token, volumeId, payload, status, message] of [
      [alice.token, id, { 'os-extend': { new_size: 2 } }, 400, /New size for extend must be greater/],
      [alice.token, id, { 'os-extend': { new_size: 0 } }, 400, /new_size/],
      [alice.token, id, { 'os-extend': { new_size: 'abc' } }, 400, /new_size/],
      [alice.token, id, { 'os-extend': { new_size: null } }, 400, /new_size/],
      [alice.token, id, { 'os-update_readonly_flag': { readonly: 'maybe' } }, 400, /readonly/],
      [alice.token, missing, { 'os-extend': { new_size: 3 } }, 404, /could not be found/],
      [alice.token, missing, { 'os-reserve': {} }, 404, /could not be found/],
      [alice.token, id, { 'os-volume_upload_image': {} }, 400, /image_name/],
      [alice.token, id, { 'os-reset_status': { status: 'error' } }, 400, /does not support os-reset_status/],
      [alice.token, id, { 'os-attach': { mountpoint: '/dev/vdb' } }, 400, /instance_uuid/],
      [alice.token, id, { 'os-detach': {} }, 400, /must be attached in order to detach/],
      [reader.token, id, { 'os-reserve': {} }, 403, /volume:reserve_volume/],
      [alice.token, id, { 'os-frobnicate': {} }, 400, /There is no such action: os-frobnicate/],
      [bob.token, id, { 'os-extend': { new_size: 3 } }, 404, /could not be found/],
      [reader.token, id, { 'os-extend': { new_size: 3 } }, 403, /volume:extend/],
      [reader.token, id, { 'os-update_readonly_flag': { readonly: true } }, 403, /update_readonly_flag/],
    ] as const) {
      const res = await call(token, 'POST', `/v3/volumes/${volumeId}/action`, payload);
      assert.equal(res.status, status, JSON.stringify([payload, res.body]));
      assert.match((Object.values(res.body)[0] as Body).message, message);
    }
    const after = await env.cloud.cinder.getVolume(id);
    assert.deepEqual([after.sizeGb, after.readonly], [2, false]);
    assert.equal((await call(alice.token, 'DELETE', `/v3/volumes/${id}`)).status, 202);
  });

  test('os-volume_upload_image: 202 uploading with the image id; the image active with the volume’s data; the volume available again', async () => {
    const created = await call(alice.token, 'POST', '/v3/volumes', { volume: { size: 1, name: 'to-image' } });
    const id = created.body.volume.id as string;
    await available(id);
    const res = await call(alice.token, 'POST', `/v3/volumes/${id}/action`, {
      'os-volume_upload_image': { image_name: 'from-volume', disk_format: 'raw' },
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const body = res.body['os-volume_upload_image'] as Body;
    assert.deepEqual(
      [body.id, body.status, body.image_name, body.disk_format, body.container_format, body.size],
      [id, 'uploading', 'from-volume', 'raw', 'bare', 1],
    );
    const imageId = body.image_id as string;
    // The volume is busy until the upload ends: a second upload is refused.
    const again = await call(alice.token, 'POST', `/v3/volumes/${id}/action`, {
      'os-volume_upload_image': { image_name: 'twice' },
    });
    if ((await env.cloud.cinder.getVolume(id)).status === 'uploading') assert.equal(again.status, 400);
    const deadline = Date.now() + 120_000;
    while ((await env.cloud.cinder.getVolume(id)).status === 'uploading' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    assert.equal((await env.cloud.cinder.getVolume(id)).status, 'available');
    const image = await env.cloud.glance.getImage(imageId, { projectId: alice.projectId, roles: ['member'] });
    assert.deepEqual(
      [image.status, image.name, image.diskFormat, image.size, image.owner],
      ['active', 'from-volume', 'raw', 1024 ** 3, alice.projectId],
    );
  });

  test('legacy attach actions: os-reserve / os-unreserve, os-attach / os-begin_detaching / os-roll_detaching / os-detach', async () => {
    const created = await call(alice.token, 'POST', '/v3/volumes', { volume: { size: 1, name: 'legacy' } });
    const id = created.body.volume.id as string;
    await available(id);
    const state = async () => {
      const v = await env.cloud.cinder.getVolume(id);
      return [v.status, v.attachStatus, v.attachments.length];
    };
    const action = (payload: unknown) => call(alice.token, 'POST', `/v3/volumes/${id}/action`, payload);

    assert.equal((await action({ 'os-reserve': {} })).status, 202);
    assert.deepEqual(await state(), ['attaching', 'detached', 0]);
    // A second reserve: Cinder's 400, nothing changed (tempest's test_reserve_volume_with_negative_volume_status).
    const again = await action({ 'os-reserve': {} });
    assert.equal(again.status, 400);
    assert.match(again.body.badRequest.message, /status must be available to reserve/);
    assert.deepEqual(await state(), ['attaching', 'detached', 0]);
    assert.equal((await action({ 'os-unreserve': {} })).status, 202);
    assert.deepEqual(await state(), ['available', 'detached', 0]);

    const server = '9a1d3f8e-2b4c-4d6e-8f01-23456789abcd';
    const attach = await action({
      'os-attach': { instance_uuid: server, mountpoint: '/dev/vdb', mode: 'rw' },
    });
    assert.equal(attach.status, 202, JSON.stringify(attach.body));
    assert.deepEqual(await state(), ['in-use', 'attached', 1]);
    const shown = (await call(alice.token, 'GET', `/v3/volumes/${id}`)).body.volume;
    assert.deepEqual(
      [shown.attachments[0].server_id, shown.attachments[0].device, shown.attachments[0].volume_id],
      [server, '/dev/vdb', id],
    );
    // Attached: a second attach, a reserve and a delete are refused; the rows stay.
    for (const payload of [
      { 'os-attach': { instance_uuid: '11111111-2222-3333-4444-555555555555', mountpoint: '/dev/vdc' } },
      { 'os-reserve': {} },
    ]) {
      assert.equal((await action(payload)).status, 400, JSON.stringify(payload));
    }
    assert.equal((await call(alice.token, 'DELETE', `/v3/volumes/${id}`)).status, 400);
    assert.deepEqual(await state(), ['in-use', 'attached', 1]);

    assert.equal((await action({ 'os-begin_detaching': {} })).status, 202);
    assert.deepEqual(await state(), ['detaching', 'attached', 1]);
    assert.equal((await action({ 'os-roll_detaching': {} })).status, 202);
    assert.deepEqual(await state(), ['in-use', 'attached', 1]);
    assert.equal((await action({ 'os-detach': {} })).status, 202);
    assert.deepEqual(await state(), ['available', 'detached', 0]);
    const rows = await env.cloud.cinder.listAttachments({ volumeId: id, includeDetached: true });
    assert.deepEqual(
      rows.map((a) => [a.instanceUuid, a.attachStatus, a.mountpoint]),
      [[server, 'detached', '/dev/vdb']],
    );
    assert.equal((await call(alice.token, 'DELETE', `/v3/volumes/${id}`)).status, 202);
  });

  test('volume summary (3.12; metadata from 3.36): the project’s volumes counted from the rows', async () => {
    const made: string[] = [];
    for (const [size, metadata] of [
      [1, { tier: 'gold' }],
      [2, { tier: 'silver', app: 'db' }],
    ] as const) {
      const res = await call(bob.token, 'POST', '/v3/volumes', { volume: { size, metadata } });
      made.push(res.body.volume.id as string);
    }
    for (const id of made) await available(id);
    const rows = (await env.cloud.cinder.listVolumes({ projectId: bob.projectId })).filter(
      (v) => v.status !== 'deleted',
    );
    const at = (v: string) =>
      call(bob.token, 'GET', '/v3/volumes/summary', undefined, { 'OpenStack-API-Version': `volume ${v}` });
    const old = await at('3.11');
    assert.equal(old.status, 404);
    const s12 = await at('3.12');
    assert.equal(s12.status, 200, JSON.stringify(s12.body));
    assert.deepEqual(s12.body, {
      'volume-summary': { total_size: rows.reduce((n, v) => n + v.sizeGb, 0), total_count: rows.length },
    });
    const s36 = (await at('3.36')).body['volume-summary'];
    assert.deepEqual(s36.metadata.tier.sort(), ['gold', 'silver']);
    assert.deepEqual(s36.metadata.app, ['db']);
    for (const id of made) assert.equal((await call(bob.token, 'DELETE', `/v3/volumes/${id}`)).status, 202);
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
