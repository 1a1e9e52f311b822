/**
 * createImage through the servers API driving the real snapshotInstance workflow: 202 with `image_id`
 * from 2.45 and a Location header naming the Glance image before it; the image created at once (queued,
 * Nova's snapshot properties and the body's metadata, private to the caller's project, min_disk from the
 * flavor) and active once the host's disk is uploaded; the server back to no task; a second createImage
 * meanwhile is 409 with Nova's message and makes no image; a locked server may still be snapshotted;
 * bad bodies 400, the metadata quota before 2.39 403, another project's server 404.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client } from '@temporalio/client';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApiApp, DEFAULT_REGION } from '../api';
import { createLogger } from '../lib/logger';
import { serverOperationWorkflowId } from '../workflows/names';
import type { ServerOperationResult } from '../workflows/types';
import { openBootHarness, type BootHarness } from './helpers/boot-harness';
import { TEST_PUBLIC_URL } from './helpers/api';

const V = '/compute/v2.1';

let h: BootHarness;
let app: FastifyInstance;
let token = '';
let otherToken = '';
const otherPassword = randomBytes(12).toString('hex');

async function call(
  url: string,
  body: unknown,
  options: { version?: string; as?: string } = {},
): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'POST',
    url: `${V}${url}`,
    headers: {
      'x-auth-token': options.as ?? token,
      'openstack-api-version': `compute ${options.version ?? '2.45'}`,
      'content-type': 'application/json',
    },
    payload: JSON.stringify(body),
  });
}

async function refreshTokens(): Promise<void> {
  await h.syncClock();
  const demo = h.boot.demo;
  const ks = h.cloud.keystone;
  token = (
    await ks.authenticate({ username: demo.username, password: demo.password, projectName: demo.projectName })
  ).token;
  otherToken = (
    await ks.authenticate({ username: 'other-user', password: otherPassword, projectName: 'other' })
  ).token;
}

const admin = () => ({ projectId: h.boot.admin.projectId, roles: ['admin'] });

async function imagesOf(server: string) {
  return (await h.cloud.glance.listImages(admin())).filter((i) => i.properties.instance_uuid === server);
}

before(async () => {
  h = await openBootHarness('api-create-image');
  await h.cloud.keystone.ensureProject({ name: 'other' });
  await h.cloud.keystone.ensureUser({ name: 'other-user', password: otherPassword });
  await h.cloud.keystone.assignRole({ user: 'other-user', project: 'other', role: 'member' });
  app = await buildApiApp(
    {
      cloud: h.cloud,
      temporal: new Client({ connection: h.env.connection, namespace: h.env.namespace ?? 'default' }),
      publicUrl: TEST_PUBLIC_URL,
      region: DEFAULT_REGION,
      log: createLogger({
        name: 'api-test',
        env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
      }),
    },
    { services: ['compute'] },
  );
  await app.ready();
});

after(async () => {
  await app?.close();
  await h?.close();
});

describe('createImage through the servers API', { timeout: 10 * 60_000 }, () => {
  test('2.45: image_id, the queued image with Nova’s properties, 409 for a second one, active after', async () => {
    const server = await h.runBoot(h.request('api-create-image'));
    const id = server.id;
    const instance = await h.cloud.nova.getInstance(id);
    await refreshTokens();
    // Refusals first: nothing is created.
    assert.equal((await call(`/servers/${id}/action`, { createImage: {} })).statusCode, 400);
    assert.equal((await call(`/servers/${id}/action`, { createImage: { name: ' x' } })).statusCode, 400);
    const foreign = await call(`/servers/${id}/action`, { createImage: { name: 'x' } }, { as: otherToken });
    assert.equal(foreign.statusCode, 404, foreign.body);
    const metadata = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, 'v']));
    const overQuota = await call(
      `/servers/${id}/action`,
      { createImage: { name: 'x', metadata } },
      { version: '2.38' },
    );
    assert.deepEqual(
      [overQuota.statusCode, overQuota.json()],
      [403, { forbidden: { code: 403, message: 'Image metadata limit exceeded' } }],
    );
    assert.deepEqual(await imagesOf(id), []);

    // No lock check (Nova's snapshot): a locked server is snapshotted.
    assert.equal((await call(`/servers/${id}/action`, { lock: null })).statusCode, 202);
    const res = await call(`/servers/${id}/action`, {
      createImage: { name: 'snap-1', metadata: { purpose: 'test' } },
    });
    assert.equal(res.statusCode, 202, res.body);
    const imageId = (res.json() as { image_id: string }).image_id;
    assert.equal(res.headers.location, undefined);
    const requestId = String(res.headers['x-openstack-request-id']);
    // The image exists at once; the server is taking its snapshot.
    const queued = await h.cloud.glance.getImage(imageId, admin());
    assert.deepEqual(
      [queued.name, queued.visibility, queued.owner, queued.minDisk],
      ['snap-1', 'private', instance.projectId, instance.flavor.rootGb],
    );
    // queued, unless the host's upload has begun already.
    assert.ok(['queued', 'saving'].includes(queued.status), queued.status);
    const keys = ['base_image_ref', 'instance_uuid', 'user_id', 'image_type', 'purpose'];
    assert.deepEqual(
      keys.map((k) => queued.properties[k]),
      [instance.imageRef, id, instance.userId, 'snapshot', 'test'],
    );
    const second = await call(`/servers/${id}/action`, { createImage: { name: 'snap-2' } });
    const busy = await h.cloud.nova.getInstance(id);
    if (busy.taskState !== null) {
      assert.deepEqual(second.json(), {
        conflictingRequest: {
          code: 409,
          message: `Cannot 'createImage' instance ${id} while it is in task_state ${busy.taskState}`,
        },
      });
    }
    const handle = h.env.client.workflow.getHandle(serverOperationWorkflowId('snapshot', id, requestId));
    const result = (await handle.result()) as ServerOperationResult;
    assert.equal(result.vmState, 'active');
    if (second.statusCode === 202) {
      const again = String(second.headers['x-openstack-request-id']);
      await h.env.client.workflow.getHandle(serverOperationWorkflowId('snapshot', id, again)).result();
    } else {
      assert.equal(second.statusCode, 409, second.body);
      assert.deepEqual(
        (await imagesOf(id)).map((i) => i.id),
        [imageId],
      );
    }
    const after = await h.cloud.nova.getInstance(id);
    assert.deepEqual([after.vmState, after.taskState], ['active', null]);
    const image = await h.cloud.glance.getImage(imageId, admin());
    assert.equal(image.status, 'active');
    assert.ok((image.size ?? 0) > 0 && image.checksum);
    const action = (await h.cloud.nova.listActions(id)).find((a) => a.requestId === requestId)!;
    assert.equal(action.action, 'createImage');
  });

  test('before 2.45: 202 with a Location header naming the image, no body', async () => {
    const server = await h.runBoot(h.request('api-create-image-old'));
    await refreshTokens();
    const res = await call(
      `/servers/${server.id}/action`,
      { createImage: { name: 'old-style' } },
      { version: '2.1' },
    );
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.body, '');
    const location = String(res.headers.location);
    const imageId = location.split('/').at(-1)!;
    assert.equal(location, `${TEST_PUBLIC_URL}/image/images/${imageId}`);
    const requestId = String(res.headers['x-openstack-request-id']);
    await h.env.client.workflow
      .getHandle(serverOperationWorkflowId('snapshot', server.id, requestId))
      .result();
    assert.equal((await h.cloud.glance.getImage(imageId, admin())).status, 'active');
  });

  test('a volume-backed server: each volume snapshotted through Cinder, an active image of size 0 mapping them', async () => {
    const server = await h.runBoot(
      h.request('api-create-image-bfv', { bootVolume: { sizeGb: 1, deleteOnTermination: true } }),
    );
    await refreshTokens();
    const res = await call(`/servers/${server.id}/action`, {
      createImage: { name: 'bfv-snap', metadata: { a: 'b' } },
    });
    assert.equal(res.statusCode, 202, res.body);
    const imageId = (res.json() as { image_id: string }).image_id;
    const image = await h.cloud.glance.getImage(imageId, admin());
    assert.deepEqual(
      [
        image.status,
        image.size,
        image.properties.bdm_v2,
        image.properties.root_device_name,
        image.properties.a,
      ],
      ['active', 0, 'True', '/dev/vda', 'b'],
    );
    const mapping = JSON.parse(image.properties.block_device_mapping!) as Array<Record<string, unknown>>;
    assert.equal(mapping.length, 1);
    assert.deepEqual(
      [
        mapping[0]!.source_type,
        mapping[0]!.destination_type,
        mapping[0]!.boot_index,
        mapping[0]!.volume_size,
      ],
      ['snapshot', 'volume', 0, 1],
    );
    const snapshot = await h.cloud.cinder.snapshots.get(mapping[0]!.snapshot_id as string);
    const attachment = (await h.cloud.cinder.listAttachments({ instanceUuid: server.id }))[0]!;
    assert.deepEqual([snapshot.volumeId, snapshot.name], [attachment.volumeId, 'snapshot for bfv-snap']);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['active', null]);
    const action = (await h.cloud.nova.listActions(server.id)).at(-1)!;
    assert.deepEqual(
      [action.action, action.events.map((e) => [e.event, e.result])],
      ['createImage', [['api_snapshot_instance', 'Success']]],
    );
  });
});
