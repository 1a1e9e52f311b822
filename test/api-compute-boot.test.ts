/**
 * The compute API driving the real workflows: POST /servers starts createInstance (answering 202 once the
 * instance row exists, with the uuid the API chose), the server goes ACTIVE with its address on the
 * private subnet, a boot volume is attached, a boot with no valid host shows ERROR with Nova's fault, and
 * DELETE starts deleteInstance after which the server is 404 and the leak audit is empty. The workflow
 * input carries the caller's token, never a password.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client } from '@temporalio/client';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApiApp, DEFAULT_REGION } from '../api';
import { FAKE_CONSOLE_OUTPUT } from '../cloud/compute/virt-driver';
import { createLogger } from '../lib/logger';
import { bootWorkflowId, deleteWorkflowId } from '../workflows/names';
import { openBootHarness, type BootHarness } from './helpers/boot-harness';
import { TEST_PUBLIC_URL } from './helpers/api';
import { imageVolume } from './helpers/boot-assertions';

type Json = Record<string, unknown>;
const V = '/compute/v2.1';

let h: BootHarness;
let app: FastifyInstance;
let token = '';

async function call(
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  body?: unknown,
  version = '2.79',
): Promise<LightMyRequestResponse> {
  return app.inject({
    method,
    url: `${V}${url}`,
    headers: {
      'x-auth-token': token,
      'openstack-api-version': `compute ${version}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  });
}

/** A token minted at the cloud's current time (the test server skips hours while workflows wait). */
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

/** POST /servers, then the boot workflow's end (its failure is returned, not thrown). */
async function create(server: Json): Promise<{ res: LightMyRequestResponse; id: string; requestId: string }> {
  await refreshToken();
  const res = await call('POST', '/servers', { server });
  assert.equal(res.statusCode, 202, res.body);
  const id = ((res.json() as { server: Json }).server.id as string) ?? '';
  const requestId = String(res.headers['x-openstack-request-id']);
  return { res, id, requestId };
}

async function settle(requestId: string): Promise<unknown> {
  return h.env.client.workflow
    .getHandle(bootWorkflowId(requestId))
    .result()
    .then(
      () => undefined,
      (err: unknown) => err,
    );
}

async function show(id: string): Promise<Json> {
  const res = await call('GET', `/servers/${id}`);
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { server: Json }).server;
}

async function remove(id: string): Promise<void> {
  await refreshToken();
  const res = await call('DELETE', `/servers/${id}`);
  assert.equal(res.statusCode, 204, res.body);
  assert.equal(res.body, '');
  await h.env.client.workflow.getHandle(deleteWorkflowId(id)).result();
  const gone = await call('GET', `/servers/${id}`);
  assert.equal(gone.statusCode, 404);
  assert.deepEqual(gone.json(), {
    itemNotFound: { code: 404, message: `Instance ${id} could not be found.` },
  });
}

before(async () => {
  h = await openBootHarness('api-boot');
  app = await buildApiApp(
    {
      cloud: h.cloud,
      // A plain client, as the api role has: awaiting a workflow there never unlocks the test server's time
      // skipping (which would race a read's execution timeout).
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
  await refreshToken();
});

after(async () => {
  await app?.close();
  await h?.close();
});

describe('servers through the workflows', { timeout: 10 * 60_000 }, () => {
  test('boot from an image: 202 with the id at once, ACTIVE on the private subnet, deleted with nothing left', async () => {
    await h.cloud.nova.createKeyPair({
      userId: (await h.cloud.keystone.validateToken(token)).userId,
      name: 'mykey',
    });
    const { res, id, requestId } = await create({
      name: 'api-vm',
      imageRef: h.boot.imageId,
      // What python-openstackclient sends with an image boot: the image as the local root disk.
      block_device_mapping_v2: [
        {
          uuid: h.boot.imageId,
          boot_index: 0,
          source_type: 'image',
          destination_type: 'local',
          delete_on_termination: true,
        },
      ],
      flavorRef: `${TEST_PUBLIC_URL}/compute/flavors/1`,
      networks: [{ uuid: h.boot.privateNetworkId }],
      key_name: 'mykey',
      metadata: { tier: 'web' },
      user_data: Buffer.from('#cloud-config\n').toString('base64'),
      accessIPv4: '192.0.2.10',
      accessIPv6: '0000:0000:0000:0000:0000:babe:220.12.22.2',
    });
    const body = (res.json() as { server: Json }).server;
    assert.deepEqual(Object.keys(body).sort(), [
      'OS-DCF:diskConfig',
      'adminPass',
      'id',
      'links',
      'security_groups',
    ]);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(res.headers.location, `${TEST_PUBLIC_URL}/compute/v2.1/servers/${id}`);
    assert.match(body.adminPass as string, /^[A-Za-z0-9]{12}$/);
    assert.deepEqual(body.security_groups, [{ name: 'default' }]);
    assert.equal(body['OS-DCF:diskConfig'], 'MANUAL');
    // The row exists when the 202 is sent: the server can be shown at once, as after Nova's answer.
    const row = await h.cloud.nova.getInstance(id);
    assert.equal(row.requestId, requestId);
    assert.equal(row.keyName, 'mykey');
    assert.deepEqual(row.metadata, { tier: 'web' });
    assert.equal(Buffer.from(row.userData ?? '', 'base64').toString(), '#cloud-config\n');
    assert.equal(row.accessIPv4, '192.0.2.10');
    // Stored in the compressed form, as Nova's IPAddress column keeps it.
    assert.equal(row.accessIPv6, '::babe:dc0c:1602');

    const input = JSON.stringify(
      (await h.env.client.workflow.getHandle(bootWorkflowId(requestId)).fetchHistory()).events?.[0],
    );
    assert.ok(!input.includes(h.boot.demo.password), 'no password in the workflow input');

    assert.equal(await settle(requestId), undefined);
    await h.keepHistory('api-boot', h.env.client.workflow.getHandle(bootWorkflowId(requestId)));
    await refreshToken();
    const server = await show(id);
    assert.equal(server.status, 'ACTIVE');
    assert.equal(server['OS-EXT-STS:vm_state'], 'active');
    assert.equal(server['OS-EXT-STS:power_state'], 1);
    assert.equal(server.key_name, 'mykey');
    assert.deepEqual(server.metadata, { tier: 'web' });
    const addresses = server.addresses as Record<string, Json[]>;
    assert.deepEqual(Object.keys(addresses), ['private']);
    const [address] = addresses.private!;
    assert.match(address!.addr as string, /^10\.0\.0\.\d+$/);
    assert.equal(address!.version, 4);
    assert.equal(address!['OS-EXT-IPS:type'], 'fixed');
    assert.match(address!['OS-EXT-IPS-MAC:mac_addr'] as string, /^fa:16:3e(:[0-9a-f]{2}){3}$/);
    const port = (await h.cloud.neutron.listPorts({ deviceId: id }))[0]!;
    assert.equal(port.fixedIps[0]!.ipAddress, address!.addr);
    assert.deepEqual((await call('GET', `/servers/${id}/ips`)).json(), {
      addresses: { private: [{ version: 4, addr: address!.addr }] },
    });
    assert.deepEqual((await call('GET', `/servers/${id}/ips/private`)).json(), {
      private: [{ version: 4, addr: address!.addr }],
    });
    // os-getConsoleOutput runs the getConsoleOutput workflow on the server's host.
    const consoleAll = await call('POST', `/servers/${id}/action`, {
      'os-getConsoleOutput': { length: null },
    });
    assert.equal(consoleAll.statusCode, 200, consoleAll.body);
    const output = (consoleAll.json() as { output: string }).output;
    assert.equal(output, FAKE_CONSOLE_OUTPUT);
    // Nova's _tail_log: the last 2 pieces of the log split on newlines (the last one empty).
    const lastLine = await call('POST', `/servers/${id}/action`, { 'os-getConsoleOutput': { length: 2 } });
    assert.deepEqual(lastLine.json(), { output: 'LAST LINE\n' });
    const badLength = await call('POST', `/servers/${id}/action`, {
      'os-getConsoleOutput': { length: 'ten' },
    });
    assert.equal(badLength.statusCode, 400);
    const actions = (await call('GET', `/servers/${id}/os-instance-actions`)).json() as {
      instanceActions: Json[];
    };
    assert.equal(actions.instanceActions[0]!.request_id, requestId);
    const listed = (await call('GET', '/servers/detail?status=ACTIVE&name=^api-')).json() as {
      servers: Json[];
    };
    assert.deepEqual(
      listed.servers.map((s) => s.id),
      [id],
    );

    await remove(id);
    assert.deepEqual(await h.audit(), []);
  });

  test('boot from a volume: the volume is attached with delete_on_termination, and goes with the server', async () => {
    const { id, requestId } = await create({
      name: 'api-bfv',
      imageRef: '',
      flavorRef: '1',
      networks: [{ uuid: h.boot.privateNetworkId }],
      block_device_mapping_v2: [
        {
          source_type: 'image',
          destination_type: 'volume',
          uuid: h.boot.imageId,
          boot_index: 0,
          volume_size: 1,
          delete_on_termination: true,
        },
      ],
    });
    assert.equal(await settle(requestId), undefined);
    await refreshToken();
    const server = await show(id);
    assert.equal(server.status, 'ACTIVE');
    assert.equal(server.image, '');
    const volumes = server['os-extended-volumes:volumes_attached'] as Json[];
    assert.equal(volumes.length, 1);
    assert.equal(volumes[0]!.delete_on_termination, true);
    const volume = await h.cloud.cinder.getVolume(volumes[0]!.id as string);
    assert.equal(volume.status, 'in-use');
    assert.equal(volume.sizeGb, 1);
    await remove(id);
    await assert.rejects(h.cloud.cinder.getVolume(volume.id), /not found|could not be found/i);
    assert.deepEqual(await h.audit(), []);
  });

  test('boot from an existing volume: attached as the root, no volume quota claimed, delete_on_termination honoured', async () => {
    const projectId = h.boot.demo.projectId;
    const usage = await h.cloud.nova.getQuotaUsage(projectId);
    for (const deleteOnTermination of [true, false]) {
      const volumeId = await imageVolume(h, `api-root-${String(deleteOnTermination)}`);
      const { id, requestId } = await create({
        name: `api-bfev-${String(deleteOnTermination)}`,
        imageRef: '',
        flavorRef: '1',
        networks: [{ uuid: h.boot.privateNetworkId }],
        block_device_mapping_v2: [
          {
            source_type: 'volume',
            destination_type: 'volume',
            uuid: volumeId,
            boot_index: 0,
            delete_on_termination: deleteOnTermination,
          },
        ],
      });
      assert.equal(await settle(requestId), undefined);
      // Nova counts no volume for it: Cinder already holds the volume's quota.
      const held = await h.cloud.nova.getQuotaUsage(projectId);
      assert.equal(held.volumes.inUse, usage.volumes.inUse);
      assert.equal(held.gigabytes.inUse, usage.gigabytes.inUse);
      assert.equal(held.instances.inUse, usage.instances.inUse + 1);
      await refreshToken();
      const server = await show(id);
      assert.equal(server.status, 'ACTIVE');
      assert.equal(server.image, '');
      assert.deepEqual(server['os-extended-volumes:volumes_attached'], [
        { id: volumeId, delete_on_termination: deleteOnTermination },
      ]);
      const volume = await h.cloud.cinder.getVolume(volumeId);
      assert.equal(volume.status, 'in-use');
      assert.equal(volume.attachments[0]?.instanceUuid, id);
      assert.equal((await h.cloud.nova.getInstance(id)).bootFromVolume, true);
      await remove(id);
      if (deleteOnTermination) {
        await assert.rejects(h.cloud.cinder.getVolume(volumeId), /could not be found/i);
      } else {
        const kept = await h.cloud.cinder.getVolume(volumeId);
        assert.equal(kept.status, 'available');
        assert.deepEqual(kept.attachments, []);
        await h.cloud.cinder.deleteVolume(volumeId);
      }
      assert.deepEqual(await h.cloud.nova.getQuotaUsage(projectId), usage);
      assert.deepEqual(await h.audit(), []);
    }
  });

  test('an existing boot volume nova-api refuses: not bootable, in use, unknown — 400, nothing written', async () => {
    const projectId = h.boot.demo.projectId;
    const usage = await h.cloud.nova.getQuotaUsage(projectId);
    const instances = await h.cloud.nova.listInstances({ projectId, includeDeleted: true });
    const volumeId = await imageVolume(h, 'api-root-refused');
    const boot = (uuid: string) => ({
      server: {
        name: 'api-bfev-refused',
        imageRef: '',
        flavorRef: '1',
        networks: [{ uuid: h.boot.privateNetworkId }],
        block_device_mapping_v2: [{ source_type: 'volume', destination_type: 'volume', uuid, boot_index: 0 }],
      },
    });
    const refused = async (uuid: string, message: string) => {
      await refreshToken();
      const res = await call('POST', '/servers', boot(uuid));
      assert.equal(res.statusCode, 400, res.body);
      assert.deepEqual(res.json(), { badRequest: { code: 400, message } });
    };
    await h.cloud.cinder.setBootable(volumeId, false);
    // nova/block_device.py get_bdm_image_metadata: InvalidBDMVolumeNotBootable.
    await refused(volumeId, `Block Device ${volumeId} is not bootable.`);
    await h.cloud.cinder.setBootable(volumeId, true);
    const reserved = await h.cloud.cinder.reserveVolume(volumeId, randomUUID());
    await refused(
      volumeId,
      `Invalid volume: Volume ${volumeId} status must be available to reserve, but the current status is reserved.`,
    );
    const missing = randomUUID();
    await refused(missing, `Block Device Mapping is Invalid: failed to get volume ${missing}.`);
    assert.deepEqual(await h.cloud.nova.listInstances({ projectId, includeDeleted: true }), instances);
    assert.deepEqual(await h.cloud.nova.getQuotaUsage(projectId), usage);
    const volume = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(volume.status, 'reserved');
    assert.equal(volume.deleteOnTermination, false);
    await h.cloud.cinder.detachVolume(reserved.id);
    await h.cloud.cinder.deleteVolume(volumeId);
    assert.deepEqual(await h.audit(), []);
  });

  test('min_count / max_count: as many servers as the quota allows, each its own build; below min_count 403', async () => {
    const projectId = h.boot.demo.projectId;
    const usage = await h.cloud.nova.getQuotaUsage(projectId);
    const instances = await h.cloud.nova.listInstances({ projectId, includeDeleted: true });
    // Room for two more servers: max_count 3 makes two (Nova's _check_num_instances_quota).
    await h.cloud.nova.setQuotaLimits(projectId, { instances: usage.instances.inUse + 2 });
    try {
      await refreshToken();
      const refused = await call('POST', '/servers', {
        server: {
          name: 'api-multi',
          imageRef: h.boot.imageId,
          flavorRef: '1',
          networks: [{ uuid: h.boot.privateNetworkId }],
          min_count: 3,
        },
      });
      assert.equal(refused.statusCode, 403, refused.body);
      assert.match(
        (refused.json() as { forbidden: { message: string } }).forbidden.message,
        /^Quota exceeded/,
      );
      assert.deepEqual(await h.cloud.nova.listInstances({ projectId, includeDeleted: true }), instances);
      assert.deepEqual((await h.cloud.nova.getQuotaUsage(projectId)).instances.inUse, usage.instances.inUse);

      const { res, requestId } = await create({
        name: 'api-multi',
        imageRef: h.boot.imageId,
        flavorRef: '1',
        networks: [{ uuid: h.boot.privateNetworkId }],
        min_count: 1,
        max_count: 3,
      });
      const first = (res.json() as { server: Json }).server.id as string;
      const made = (await h.cloud.nova.listInstances({ projectId })).filter((i) =>
        i.name.startsWith('api-multi'),
      );
      assert.deepEqual(made.map((i) => i.name).sort(), ['api-multi-1', 'api-multi-2']);
      assert.ok(made.some((i) => i.uuid === first && i.requestId === requestId));
      for (const build of [requestId, `${requestId}-2`]) assert.equal(await settle(build), undefined);
      await refreshToken();
      for (const instance of made) assert.equal((await show(instance.uuid)).status, 'ACTIVE');
      for (const instance of made) await remove(instance.uuid);
    } finally {
      await h.cloud.nova.setQuotaLimits(projectId, { instances: usage.instances.limit });
    }
    assert.deepEqual(await h.cloud.nova.getQuotaUsage(projectId), usage);
    assert.deepEqual(await h.audit(), []);
  });

  test('the 202 comes with the row and the quota already written; the workflow counts neither twice', async () => {
    const projectId = h.boot.demo.projectId;
    const before = await h.cloud.nova.getQuotaUsage(projectId);
    const { id, requestId } = await create({
      name: 'api-recorded',
      imageRef: h.boot.imageId,
      flavorRef: '1',
      networks: [{ uuid: h.boot.privateNetworkId }],
    });
    // As nova-api leaves it: building/scheduling with its create action, the quota held by the instance.
    const row = await h.cloud.nova.getInstance(id);
    assert.equal(row.vmState, 'building');
    assert.equal(row.taskState, 'scheduling');
    assert.equal(row.requestId, requestId);
    const claimed = await h.cloud.nova.getQuotaUsage(projectId);
    assert.equal(claimed.instances.inUse, before.instances.inUse + 1);
    assert.equal(await settle(requestId), undefined);
    const after = await h.cloud.nova.getQuotaUsage(projectId);
    assert.deepEqual(after, claimed, 'the workflow found the claim and added nothing');
    const rows = await h.cloud.nova.listInstances({ projectId, includeDeleted: true });
    assert.equal(rows.filter((i) => i.requestId === requestId).length, 1);
    const creates = (await h.cloud.nova.listActions(id)).filter((a) => a.action === 'create');
    assert.equal(creates.length, 1);
    await refreshToken();
    assert.equal((await show(id)).status, 'ACTIVE');
    await remove(id);
    assert.deepEqual(await h.cloud.nova.getQuotaUsage(projectId), before);
    assert.deepEqual(await h.audit(), []);
  });

  test('a workflow that cannot start leaves no server behind: the row and its quota go', async () => {
    const projectId = h.boot.demo.projectId;
    const before = await h.cloud.nova.listInstances({ projectId });
    const usage = await h.cloud.nova.getQuotaUsage(projectId);
    const broken = await buildApiApp(
      {
        cloud: h.cloud,
        temporal: {
          workflow: {
            start: () => Promise.reject(new Error('frontend unavailable')),
          },
        } as unknown as Client,
        publicUrl: TEST_PUBLIC_URL,
        region: DEFAULT_REGION,
        log: createLogger({ name: 'api-test', env: { ...process.env, LOG_LEVEL: 'fatal' } }),
      },
      { services: ['compute'] },
    );
    try {
      await refreshToken();
      const res = await broken.inject({
        method: 'POST',
        url: `${V}/servers`,
        headers: { 'x-auth-token': token, 'content-type': 'application/json' },
        payload: JSON.stringify({
          server: {
            name: 'api-unstarted',
            imageRef: h.boot.imageId,
            flavorRef: '1',
            networks: [{ uuid: h.boot.privateNetworkId }],
          },
        }),
      });
      assert.equal(res.statusCode, 500, res.body);
    } finally {
      await broken.close();
    }
    assert.deepEqual(await h.cloud.nova.listInstances({ projectId }), before);
    assert.deepEqual(await h.cloud.nova.getQuotaUsage(projectId), usage);
    assert.deepEqual(await h.audit(), []);
  });

  test('a delete while the server builds wins: the build stops, the server is gone, nothing leaks', async () => {
    const { id, requestId } = await create({
      name: 'api-delete-early',
      imageRef: h.boot.imageId,
      flavorRef: '1',
      networks: [{ uuid: h.boot.privateNetworkId }],
    });
    // At once, as `openstack server create` followed by `server delete`: the build has barely begun.
    const res = await call('DELETE', `/servers/${id}`);
    assert.equal(res.statusCode, 204, res.body);
    const del = h.env.client.workflow.getHandle(deleteWorkflowId(id));
    const result = (await del.result()) as { outcome: string; cancelledBuild: boolean };
    assert.equal(result.outcome, 'deleted');
    assert.equal(result.cancelledBuild, true);
    assert.notEqual(await settle(requestId), undefined, 'the build was stopped');
    await h.keepHistory('api-delete-while-building', del);
    const row = await h.cloud.nova.getInstance(id, { includeDeleted: true });
    assert.equal(row.vmState, 'deleted');
    assert.equal(row.deleted, true);
    // Never ERROR on the way: no fault.
    assert.deepEqual(await h.cloud.nova.listFaults(id), []);
    await refreshToken();
    assert.equal((await call('GET', `/servers/${id}`)).statusCode, 404);
    assert.deepEqual(await h.audit(), []);
  });

  test("networks 'none' (2.37): a server with no NIC, ACTIVE with no addresses", async () => {
    await refreshToken();
    const res = await call(
      'POST',
      '/servers',
      { server: { name: 'api-no-nic', imageRef: h.boot.imageId, flavorRef: '1', networks: 'none' } },
      '2.37',
    );
    assert.equal(res.statusCode, 202, res.body);
    const id = (res.json() as { server: Json }).server.id as string;
    const requestId = String(res.headers['x-openstack-request-id']);
    assert.equal(await settle(requestId), undefined);
    await refreshToken();
    const server = await show(id);
    assert.equal(server.status, 'ACTIVE');
    assert.deepEqual(server.addresses, {});
    assert.deepEqual((await call('GET', `/servers/${id}/ips`)).json(), { addresses: {} });
    assert.deepEqual(await h.cloud.neutron.listPorts({ deviceId: id }), []);
    assert.deepEqual((await h.cloud.nova.getInstance(id)).networks, []);
    await remove(id);
    assert.deepEqual(await h.audit(), []);
  });

  test('an anti-affinity group: members on three hosts, a fourth fails NoValidHost, deletes empty the group', async () => {
    await refreshToken();
    const made = await call('POST', '/os-server-groups', {
      server_group: { name: 'spread', policy: 'anti-affinity' },
    });
    assert.equal(made.statusCode, 200, made.body);
    const group = (made.json() as { server_group: Json }).server_group.id as string;
    const hinted = (name: string, count: number) => ({
      name,
      imageRef: h.boot.imageId,
      flavorRef: '1',
      networks: 'none',
      min_count: count,
      max_count: count,
    });
    // One request for three servers, as tempest's multi-create group test sends it.
    await refreshToken();
    const first = await call('POST', '/servers', {
      server: hinted('spread', 3),
      'os:scheduler_hints': { group },
    });
    assert.equal(first.statusCode, 202, first.body);
    const requestId = String(first.headers['x-openstack-request-id']);
    const requests = [requestId, `${requestId}-2`, `${requestId}-3`];
    for (const r of requests) assert.equal(await settle(r), undefined);
    const members = (await h.cloud.nova.getServerGroup(group)).members;
    assert.equal(members.length, 3);
    const hosts = await Promise.all(members.map(async (m) => (await h.cloud.nova.getInstance(m)).host));
    assert.equal(new Set(hosts).size, 3, `three hosts: ${hosts.join(', ')}`);
    await refreshToken();
    assert.deepEqual((await show(members[0]!)).server_groups, [group]);

    // No fourth host: the build fails as any NoValidHost does, holding nothing, and stays a member.
    const res = await call('POST', '/servers', {
      server: hinted('spread-4', 1),
      'os:scheduler_hints': { group },
    });
    assert.equal(res.statusCode, 202, res.body);
    const failedRequest = String(res.headers['x-openstack-request-id']);
    const failedId = ((res.json() as { server: Json }).server.id as string) ?? '';
    assert.notEqual(await settle(failedRequest), undefined, 'the fourth member has no valid host');
    await refreshToken();
    const failed = await show(failedId);
    assert.equal(failed.status, 'ERROR');
    assert.match((failed.fault as Json).message as string, /^No valid host was found/);
    assert.equal(await h.cloud.placement.getAllocations(failedId), null);
    assert.equal((await h.cloud.nova.getServerGroup(group)).members.length, 4);

    for (const id of [...members, failedId]) await remove(id);
    assert.deepEqual((await h.cloud.nova.getServerGroup(group)).members, []);
    await refreshToken();
    assert.equal((await call('DELETE', `/os-server-groups/${group}`)).statusCode, 204);
    assert.deepEqual(await h.audit(), []);
  });

  test('same_host / different_host hints place by the named server’s host; OS-DCF:diskConfig AUTO kept', async () => {
    const server = (name: string, extra: Json = {}) => ({
      name,
      imageRef: h.boot.imageId,
      flavorRef: '1',
      networks: 'none',
      ...extra,
    });
    const post = async (body: Json) => {
      await refreshToken();
      const res = await call('POST', '/servers', body, '2.37');
      assert.equal(res.statusCode, 202, res.body);
      const id = (res.json() as { server: Json }).server.id as string;
      assert.equal(await settle(String(res.headers['x-openstack-request-id'])), undefined);
      return {
        id,
        body: (res.json() as { server: Json }).server,
        host: (await h.cloud.nova.getInstance(id)).host,
      };
    };
    const first = await post({ server: server('hint-a', { 'OS-DCF:diskConfig': 'AUTO' }) });
    assert.equal(first.body['OS-DCF:diskConfig'], 'AUTO');
    await refreshToken();
    assert.equal((await show(first.id))['OS-DCF:diskConfig'], 'AUTO');
    assert.equal((await h.cloud.nova.getInstance(first.id)).autoDiskConfig, true);
    // tempest's test_create_server_with_scheduling_hint: one uuid as a string.
    const same = await post({ server: server('hint-same'), 'os:scheduler_hints': { same_host: first.id } });
    assert.equal(same.host, first.host);
    assert.equal(same.body['OS-DCF:diskConfig'], 'MANUAL');
    const apart = await post({
      server: server('hint-apart'),
      'OS-SCH-HNT:scheduler_hints': { different_host: [first.id] },
    });
    assert.notEqual(apart.host, first.host);
    const third = await post({
      server: server('hint-third'),
      'os:scheduler_hints': { different_host: [first.id, apart.id] },
    });
    assert.equal(new Set([first.host, apart.host, third.host]).size, 3);

    // Nova's schema: different_host is a uuid or a list of them; other hints are refused; nothing written.
    const rows = async () =>
      (await h.cloud.nova.listInstances({ allProjects: true, includeDeleted: true })).length;
    const before = await rows();
    for (const hints of [{ different_host: 'not-a-uuid' }, { same_host: ['nope'] }, { query: '[]' }]) {
      await refreshToken();
      const res = await call(
        'POST',
        '/servers',
        { server: server('hint-bad'), 'os:scheduler_hints': hints },
        '2.37',
      );
      assert.equal(res.statusCode, 400, res.body);
    }
    assert.equal(await rows(), before);
    for (const id of [first.id, same.id, apart.id, third.id]) await remove(id);
    assert.deepEqual(await h.audit(), []);
  });

  test("a boot no host can take: ERROR with Nova's fault, nothing held; deleted cleanly", async () => {
    const now = h.cloud.clock.now();
    await h.cloud.nova.store.db
      .insertInto('flavors')
      .values({
        flavorid: '99',
        name: 'm1.colossal',
        vcpus: 4096,
        memory_mb: 4_194_304,
        root_gb: 1,
        ephemeral_gb: 0,
        swap_mb: 0,
        is_public: 1,
        disabled: 0,
        created_at: now,
      })
      .execute();
    await h.cloud.nova.setQuotaLimits(h.boot.demo.projectId, { cores: 10_000, ram: 10_000_000 });
    const { id, requestId } = await create({
      name: 'api-too-big',
      imageRef: h.boot.imageId,
      flavorRef: '99',
      networks: [{ uuid: h.boot.privateNetworkId }],
    });
    assert.notEqual(await settle(requestId), undefined, 'the boot workflow fails');
    await refreshToken();
    const server = await show(id);
    assert.equal(server.status, 'ERROR');
    assert.equal(server['OS-EXT-STS:vm_state'], 'error');
    const fault = server.fault as Json;
    // The fault as nova-conductor recorded it: 500, as Nova records NoValidHost; details go to a member
    // only when the code is not 500, as Nova's view decides.
    const [recorded] = await h.cloud.nova.listFaults(id);
    assert.equal(recorded!.code, 500);
    assert.equal(fault.code, recorded!.code);
    assert.match(fault.message as string, /^No valid host was found/);
    assert.match(fault.created as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal('details' in fault, recorded!.code !== 500 && recorded!.details !== null);
    assert.deepEqual(await h.cloud.placement.listAllocations({ projectId: h.boot.demo.projectId }), []);
    await remove(id);
    assert.deepEqual(await h.audit(), []);
  });
});
