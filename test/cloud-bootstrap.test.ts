import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCloud, type Cloud } from '../cloud';
import {
  bootstrapCloud,
  GUEST_IMAGE_NAME,
  GUEST_KERNEL_NAME,
  GUEST_RAMDISK_NAME,
  readOpenrc,
  type BootstrapResult,
  type GuestImageFiles,
} from '../cloud/bootstrap';
import { isCloudError } from '../cloud/errors';
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

  test('registers the guest image AMI-style (aki, ari, ami with kernel_id/ramdisk_id); a new build replaces it', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-guest-files-'));
    const files = (build: string): GuestImageFiles => {
      const file = (name: string, bytes: number) => {
        const p = path.join(dir, `${build}-${name}`);
        writeFileSync(p, Buffer.alloc(bytes, `${build}-${name}`));
        return p;
      };
      return {
        build,
        kernelPath: file('vmlinuz', 4096),
        ramdiskPath: file('initrd.img', 8192),
        diskPath: file('disk.img', 65536),
      };
    };
    const demoView = { projectId: first.demo.projectId, roles: ['member', 'reader'] };
    const adminView = { projectId: first.admin.projectId, roles: ['admin'] };
    const triple = async (amiId: string) => {
      const ami = await cloud.glance.getImage(amiId, demoView);
      const kernel = await cloud.glance.getImage(ami.properties.kernel_id ?? '', demoView);
      const ramdisk = await cloud.glance.getImage(ami.properties.ramdisk_id ?? '', demoView);
      return { ami, kernel, ramdisk };
    };
    try {
      const one = await bootstrapCloud(cloud, { guestImage: files('build-1') });
      assert.ok(one.guestImageId);
      const { ami, kernel, ramdisk } = await triple(one.guestImageId);
      assert.deepEqual(
        [ami, kernel, ramdisk].map((i) => [i.name, i.diskFormat, i.containerFormat, i.status, i.visibility]),
        [
          [GUEST_IMAGE_NAME, 'ami', 'ami', 'active', 'public'],
          [GUEST_KERNEL_NAME, 'aki', 'aki', 'active', 'public'],
          [GUEST_RAMDISK_NAME, 'ari', 'ari', 'active', 'public'],
        ],
      );
      assert.deepEqual(
        [kernel.size, ramdisk.size, ami.size],
        [4096, 8192, 65536],
        'each part holds its file',
      );
      assert.equal(ami.properties.bootflow_guest_build, 'build-1');
      assert.equal(ami.owner, first.admin.projectId);

      // The same build again: nothing new is registered.
      const again = await bootstrapCloud(cloud, { guestImage: files('build-1') });
      assert.equal(again.guestImageId, one.guestImageId);
      assert.equal((await cloud.glance.listImages(adminView, { name: GUEST_KERNEL_NAME })).length, 1);

      // A new build (another kernel or new scripts): a new triple, and the old one is gone from Glance.
      const two = await bootstrapCloud(cloud, { guestImage: files('build-2') });
      assert.ok(two.guestImageId && two.guestImageId !== one.guestImageId);
      assert.equal((await triple(two.guestImageId)).ami.properties.bootflow_guest_build, 'build-2');
      for (const name of [GUEST_IMAGE_NAME, GUEST_KERNEL_NAME, GUEST_RAMDISK_NAME])
        assert.equal((await cloud.glance.listImages(adminView, { name })).length, 1, name);
      for (const old of [ami, kernel, ramdisk])
        await assert.rejects(cloud.glance.getImage(old.id, adminView), (err: unknown) =>
          isCloudError(err, 'NotFound'),
        );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
