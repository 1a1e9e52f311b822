import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { openCloud, type Cloud } from '../cloud';
import { bootstrapCloud, readOpenrc, type BootstrapResult } from '../cloud/bootstrap';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

describe('bootstrap', () => {
  let testDb: TestDb;
  let cloud: Cloud;
  let first: BootstrapResult;

  before(async () => {
    testDb = testDbConfig('bootstrap');
    cloud = await openCloud({ db: testDb.config });
    first = await bootstrapCloud(cloud);
  });
  after(async () => {
    await cloud?.close();
    await testDb?.cleanup();
  });

  test('writes DevStack-style openrc files, mode 600, whose generated passwords authenticate', async () => {
    for (const who of [first.admin, first.demo]) {
      assert.equal(statSync(who.openrcPath).mode & 0o777, 0o600);
      const creds = readOpenrc(who.openrcPath);
      assert.equal(creds.username, who.username);
      assert.ok((creds.password ?? '').length >= 20);
      const auth = await cloud.keystone.authenticate({
        username: creds.username!,
        password: creds.password!,
        projectName: creds.projectName!,
      });
      assert.equal(auth.context.projectId, who.projectId);
    }
    assert.notEqual(first.admin.password, first.demo.password);
    const { username, password, projectName } = first.demo;
    const demoCtx = (await cloud.keystone.authenticate({ username, password, projectName })).context;
    assert.ok(demoCtx.roles.includes('member'));
    assert.ok(!demoCtx.roles.includes('admin'));
  });

  test('is idempotent: a second run changes no password, id or row count', async () => {
    const countRows = async () => ({
      networks: (await cloud.neutron.listNetworks({ projectId: first.admin.projectId, roles: ['admin'] }))
        .length,
      flavors: (await cloud.nova.listFlavors()).length,
      allocations: (await cloud.placement.listAllocations()).length,
      hosts: (await cloud.nova.listComputeHosts()).length,
    });
    const before = await countRows();
    const second = await bootstrapCloud(cloud);
    assert.deepEqual(await countRows(), before);
    assert.equal(second.admin.password, first.admin.password);
    assert.equal(second.imageId, first.imageId);
    assert.equal(second.privateNetworkId, first.privateNetworkId);
    assert.deepEqual(second.hosts, first.hosts);
    assert.equal(readFileSync(first.demo.openrcPath, 'utf8').match(/OS_PASSWORD/g)?.length, 1);
  });

  test('seeds the flavors, a verified public image, the networks and three compute hosts', async () => {
    const tiny = await cloud.nova.getFlavor('m1.tiny');
    assert.deepEqual([tiny.vcpus, tiny.memoryMb, tiny.rootGb], [1, 512, 1]);
    const demoView = { projectId: first.demo.projectId, roles: ['member', 'reader'] };
    const image = await cloud.glance.getImage('cirros', demoView);
    assert.equal(image.status, 'active');
    assert.equal(image.visibility, 'public');
    assert.match(image.checksum ?? '', /^[0-9a-f]{32}$/);
    assert.match(image.osHashValue ?? '', /^[0-9a-f]{128}$/);
    assert.ok((image.size ?? 0) > 1024 * 1024);
    const privateNet = await cloud.neutron.getNetwork('private', demoView);
    const [subnet] = await cloud.neutron.listSubnets(privateNet.id);
    assert.equal(subnet?.cidr, '10.0.0.0/24');
    const publicNet = await cloud.neutron.getNetwork('public', demoView);
    assert.equal(publicNet.shared, true);
    const hosts = await cloud.nova.listComputeHosts();
    assert.deepEqual(
      hosts.map((h) => h.host),
      ['compute1', 'compute2', 'compute3'],
    );
    for (const { nodeUuid } of first.hosts) {
      const provider = await cloud.placement.getResourceProvider(nodeUuid);
      assert.ok(provider.inventories.VCPU && provider.inventories.MEMORY_MB && provider.inventories.DISK_GB);
    }
  });
});
