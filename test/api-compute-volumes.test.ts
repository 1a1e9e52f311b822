/**
 * os-volume_attachments through the real workflows (time-skipping test server, Fastify's inject): attach
 * answers 200 with Nova's volumeAttachment once the volume is in-use on the host, list and show, the server's
 * `os-extended-volumes:volumes_attached` and Cinder's `attachments`, detach 202 back to available; and every
 * refusal with Nova's or Cinder's status and words, changing nothing. And the `evacuate` server action: its
 * microversion rules, policy and refusals, and a server rebuilt on another host.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@temporalio/client';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApiApp, DEFAULT_REGION } from '../api';
import { createLogger } from '../lib/logger';
import type { BootResult } from '../workflows/types';
import { evacuateWorkflowId } from '../workflows/names';
import { HOSTS, openBootHarness, type BootHarness } from './helpers/boot-harness';
import { TEST_PUBLIC_URL } from './helpers/api';
import { assertNoLeaks } from './helpers/boot-assertions';

type Json = Record<string, unknown>;

let h: BootHarness;
let app: FastifyInstance;
let token = '';
let server: BootResult;

async function call(
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  body?: unknown,
  version = 'compute 2.79',
): Promise<LightMyRequestResponse> {
  return app.inject({
    method,
    url,
    headers: {
      'x-auth-token': token,
      'openstack-api-version': version,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  });
}
const compute = (path: string) => `/compute/v2.1${path}`;

async function refreshToken(): Promise<void> {
  await h.syncClock();
  const demo = h.boot.demo;
  token = (
    await h.cloud.keystone.authenticate({
      username: demo.username,
      password: demo.password,
      projectName: demo.projectName,
    })
  ).token;
}

async function newVolume(name: string): Promise<string> {
  const { projectId } = await h.cloud.nova.getInstance(server.id);
  const volume = await h.cloud.cinder.createVolume({ requestKey: name, projectId, sizeGb: 1, name });
  await h.cloud.cinder.waitForVolume(volume.id);
  return volume.id;
}

async function cinderVolume(id: string): Promise<Json> {
  const res = await call('GET', `/volume/v3/volumes/${id}`, undefined, 'volume 3.27');
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { volume: Json }).volume;
}

before(async () => {
  h = await openBootHarness('api-volumes');
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
    { services: ['compute', 'volume'] },
  );
  await app.ready();
  server = await h.runBoot(h.request('api-vol-server'));
});

after(async () => {
  await app?.close();
  await h?.close();
});

describe('os-volume_attachments', { timeout: 10 * 60_000 }, () => {
  test('attach 200 → in-use on the host, listed by Nova and Cinder; Cinder refuses its delete; detach 202 → available', async () => {
    const volumeId = await newVolume('api-vol-1');
    await refreshToken();
    const attached = await call('POST', compute(`/servers/${server.id}/os-volume_attachments`), {
      volumeAttachment: { volumeId },
    });
    assert.equal(attached.statusCode, 200, attached.body);
    const expected = {
      id: volumeId,
      volumeId,
      serverId: server.id,
      device: '/dev/vdb',
      tag: null,
      delete_on_termination: false,
    };
    assert.deepEqual(attached.json(), { volumeAttachment: expected });
    const list = await call('GET', compute(`/servers/${server.id}/os-volume_attachments`));
    assert.deepEqual(list.json(), { volumeAttachments: [expected] });
    // Before 2.70 neither tag nor delete_on_termination.
    const old = await call(
      'GET',
      compute(`/servers/${server.id}/os-volume_attachments/${volumeId}`),
      undefined,
      'compute 2.1',
    );
    assert.deepEqual(old.json(), {
      volumeAttachment: { id: volumeId, volumeId, serverId: server.id, device: '/dev/vdb' },
    });
    const shown = (await call('GET', compute(`/servers/${server.id}`))).json() as { server: Json };
    assert.deepEqual(shown.server['os-extended-volumes:volumes_attached'], [
      { id: volumeId, delete_on_termination: false },
    ]);
    const volume = await cinderVolume(volumeId);
    assert.equal(volume.status, 'in-use');
    const [cinderAttachment] = volume.attachments as Json[];
    assert.equal(cinderAttachment?.server_id, server.id);
    assert.equal(cinderAttachment?.host_name, server.host);
    assert.equal(cinderAttachment?.device, '/dev/vdb');
    const connections = await h.computeHosts.get(server.host)?.listVolumeConnections();
    assert.deepEqual(
      connections?.map((c) => [c.volumeId, c.device]),
      [[volumeId, 'vdb']],
    );

    // Attaching it again: Nova's 400; deleting it: Cinder's 400. Nothing changes.
    const again = await call('POST', compute(`/servers/${server.id}/os-volume_attachments`), {
      volumeAttachment: { volumeId },
    });
    assert.equal(again.statusCode, 400);
    assert.deepEqual(again.json(), {
      badRequest: { code: 400, message: `Invalid volume: volume ${volumeId} already attached` },
    });
    const deleted = await call('DELETE', `/volume/v3/volumes/${volumeId}`, undefined, 'volume 3.27');
    assert.equal(deleted.statusCode, 400);
    assert.match(
      (deleted.json() as { badRequest: { message: string } }).badRequest.message,
      /^Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached,/,
    );
    assert.equal((await cinderVolume(volumeId)).status, 'in-use');

    await refreshToken();
    const detached = await call('DELETE', compute(`/servers/${server.id}/os-volume_attachments/${volumeId}`));
    assert.equal(detached.statusCode, 202, detached.body);
    assert.equal(detached.body, '');
    const after = await cinderVolume(volumeId);
    assert.equal(after.status, 'available');
    assert.deepEqual(after.attachments, []);
    assert.deepEqual(await h.computeHosts.get(server.host)?.listVolumeConnections(), []);
    const gone = await call('GET', compute(`/servers/${server.id}/os-volume_attachments/${volumeId}`));
    assert.equal(gone.statusCode, 404);
    assert.deepEqual(gone.json(), {
      itemNotFound: { code: 404, message: `Instance ${server.id} is not attached to volume ${volumeId}` },
    });
    const actions = (await h.cloud.nova.listActions(server.id)).map((a) => a.action);
    assert.deepEqual(actions.slice(-2), ['attach_volume', 'detach_volume']);
    await assertNoLeaks(h);
  });

  test('refusals: unknown volume 404, not attached 404, wrong task_state 409, bad body 400; nothing changes', async () => {
    const volumeId = await newVolume('api-vol-refused');
    await refreshToken();
    const missing = '4f1b1f2e-0000-4000-8000-000000000000';
    const unknown = await call('POST', compute(`/servers/${server.id}/os-volume_attachments`), {
      volumeAttachment: { volumeId: missing },
    });
    assert.equal(unknown.statusCode, 404);
    assert.deepEqual(unknown.json(), {
      itemNotFound: { code: 404, message: `Volume ${missing} could not be found.` },
    });
    const notAttached = await call(
      'DELETE',
      compute(`/servers/${server.id}/os-volume_attachments/${volumeId}`),
    );
    assert.equal(notAttached.statusCode, 404);
    assert.deepEqual(notAttached.json(), {
      itemNotFound: { code: 404, message: `Instance ${server.id} is not attached to volume ${volumeId}` },
    });
    const badBody = await call('POST', compute(`/servers/${server.id}/os-volume_attachments`), {
      volumeAttachment: { volumeId, bogus: 1 },
    });
    assert.equal(badBody.statusCode, 400);
    // tag arrives with 2.49.
    const early = await call(
      'POST',
      compute(`/servers/${server.id}/os-volume_attachments`),
      { volumeAttachment: { volumeId, tag: 'x' } },
      'compute 2.48',
    );
    assert.equal(early.statusCode, 400);

    // A server busy with another task: nova-api's check_instance_state, 409.
    await h.cloud.nova.updateInstance(server.id, { taskState: 'deleting' });
    try {
      const busy = await call('POST', compute(`/servers/${server.id}/os-volume_attachments`), {
        volumeAttachment: { volumeId },
      });
      assert.equal(busy.statusCode, 409);
      assert.deepEqual(busy.json(), {
        conflictingRequest: {
          code: 409,
          message: `Cannot 'attach_volume' instance ${server.id} while it is in task_state deleting`,
        },
      });
    } finally {
      await h.cloud.nova.updateInstance(server.id, { taskState: null });
    }
    const volume = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(volume.status, 'available');
    assert.deepEqual(await h.cloud.cinder.listAttachments({ volumeId }), []);
    await assertNoLeaks(h);
  });

  test('the root volume of a boot-from-volume server: 400 "Cannot detach a root device volume"', async () => {
    const bfv = await h.runBoot(h.request('api-vol-bfv', { bootVolume: { sizeGb: 1 } }));
    const rootId = bfv.volumes[0]?.id ?? '';
    await refreshToken();
    const res = await call('DELETE', compute(`/servers/${bfv.id}/os-volume_attachments/${rootId}`));
    assert.equal(res.statusCode, 400);
    assert.deepEqual(res.json(), {
      badRequest: { code: 400, message: 'Cannot detach a root device volume' },
    });
    assert.equal((await h.cloud.cinder.getVolume(rootId)).status, 'in-use');
  });

  test('evacuate: admin only, microversion rules, refused while the source is up, then rebuilt elsewhere', async () => {
    const evac = (body: unknown, version: string) =>
      call('POST', compute(`/servers/${server.id}/action`), { evacuate: body }, version);
    await refreshToken();
    const member = await evac({}, 'compute 2.79');
    assert.equal(member.statusCode, 403, member.body);
    await h.syncClock();
    const admin = h.boot.admin;
    token = (
      await h.cloud.keystone.authenticate({
        username: admin.username,
        password: admin.password,
        projectName: admin.projectName,
      })
    ).token;
    // onSharedStorage is required before 2.14 and refused from it; force only with a host (2.29-2.67).
    assert.equal((await evac({}, 'compute 2.13')).statusCode, 400);
    assert.equal((await evac({ onSharedStorage: false }, 'compute 2.14')).statusCode, 400);
    const force = await evac({ force: true }, 'compute 2.29');
    assert.deepEqual(force.json(), {
      badRequest: { code: 400, message: "Can't force to a non-provided destination" },
    });
    assert.equal((await evac({ force: true }, 'compute 2.68')).statusCode, 400);
    const unknownHost = await evac({ host: 'nowhere' }, 'compute 2.79');
    assert.deepEqual(unknownHost.json(), {
      itemNotFound: { code: 404, message: 'Compute host nowhere not found.' },
    });
    const inUse = await evac({}, 'compute 2.79');
    assert.deepEqual(inUse.json(), {
      badRequest: { code: 400, message: `Compute service of ${server.host} is still in use.` },
    });
    assert.equal((await h.cloud.nova.getInstance(server.id)).taskState, null);

    const source = server.host;
    await h.setRunningHosts(HOSTS.filter((x) => x !== source));
    await h.cloud.nova.setHostForcedDown(source, true);
    try {
      const old = await evac({ onSharedStorage: false }, 'compute 2.13');
      assert.equal(old.statusCode, 200, old.body);
      assert.match((old.json() as { adminPass: string }).adminPass, /^[A-Za-z0-9]{12}$/);
      const requestId = String(old.headers['x-openstack-request-id']);
      await h.env.client.workflow.getHandle(evacuateWorkflowId(server.id, requestId)).result();
      const moved = await h.cloud.nova.getInstance(server.id);
      assert.notEqual(moved.host, source);
      assert.equal(moved.vmState, 'active');
      // From 2.14 no body; a second evacuate of the moved server is refused (its new host is up).
      const again = await evac({}, 'compute 2.14');
      assert.equal(again.statusCode, 400);
      server = { ...server, host: moved.host ?? server.host };
    } finally {
      await h.cloud.nova.setHostForcedDown(source, false);
      await h.setRunningHosts(HOSTS);
    }
    const reap = await h.env.client.workflow.execute('destroyEvacuatedInstances', {
      taskQueue: 'controller',
      workflowId: `destroy-evacuated-api-${source}`,
      args: [{ host: source }],
    });
    assert.deepEqual(reap, [server.id]);
    await assertNoLeaks(h);
  });
});
