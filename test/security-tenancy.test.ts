/**
 * Tenancy at the service level, over real services (openCloud + bootstrapCloud): a project member cannot
 * use, see or delete another project's private images, networks, volumes and servers — NotFound, worded as
 * for an id that does not exist, so existence does not leak — while shared and public ones can be used but
 * not changed (Forbidden, as Glance's and Neutron's defaults answer for what the caller can see). Every
 * refused attempt leaves every database row, every file and the leak audit as they were. Admin sees all.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createComputeApiActivities, type BootPlanRequest } from '../activities/compute-api';
import { createNetworkActivities } from '../activities/network';
import { generateQcow2Image, type Image } from '../cloud/glance';
import type { Network } from '../cloud/neutron';
import type { Instance } from '../cloud/nova';
import type { Volume } from '../cloud/cinder';
import {
  assertUnchanged,
  diffSnapshots,
  expectTyped,
  openSecurityCloud,
  tenant,
  type SecurityCloud,
  type Tenant,
} from './helpers/security';

/**
 * The activities as a workflow runs them: inside a (mock) workflow, each call's `token` replaced by Keystone's
 * operation grant of that caller for that workflow (what the client or the API puts in a workflow's input).
 */
function asActivities<T extends object>(
  keystone: {
    issueGrant(token: string, op: { workflowType: string; workflowId: string }): Promise<{ grant: string }>;
  },
  activities: T,
): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (input: { token: string }) => {
      const { grant } = await keystone.issueGrant(input.token, { workflowType: 'test', workflowId: 'test' });
      return new MockActivityEnvironment().run(fn as (input: { token: string }) => Promise<unknown>, {
        ...input,
        token: grant,
      });
    };
  }
  return wrapped as T;
}

describe('tenancy: another project’s resources', () => {
  let sc: SecurityCloud;
  let demo: Tenant;
  let demoReader: Tenant;
  let other: Tenant;
  let otherReader: Tenant;
  let admin: Tenant;
  let computeApi: ReturnType<typeof createComputeApiActivities>;
  let networkApi: ReturnType<typeof createNetworkActivities>;
  const images = {} as Record<'private' | 'sharedWithDemo' | 'sharedNotWithDemo' | 'community', Image>;
  let publicImage: Image;
  const networks = {} as Record<'private' | 'shared', Network>;
  let publicNetwork: Network;
  let otherVolume: Volume;
  let otherServer: Instance;

  const plan = (image: string): BootPlanRequest => ({ name: 'probe', flavor: 'm1.tiny', image });
  /** What the caller must not be able to tell apart from "no such thing": the same type and wording. */
  const sameAsUnknown = (err: Error, unknown: Error, id: string, unknownId: string) =>
    assert.equal(err.message.replaceAll(id, '<id>'), unknown.message.replaceAll(unknownId, '<id>'));

  before(async () => {
    sc = await openSecurityCloud('sec-tenancy');
    const { cloud, boot } = sc;
    demo = await tenant(cloud, { username: 'demo-member', projectName: 'demo', role: 'member' });
    demoReader = await tenant(cloud, { username: 'demo-reader', projectName: 'demo', role: 'reader' });
    other = await tenant(cloud, { username: 'alice', projectName: 'other', role: 'member' });
    otherReader = await tenant(cloud, { username: 'olivia', projectName: 'other', role: 'reader' });
    const adminAuth = await cloud.keystone.authenticate({
      username: boot.admin.username,
      password: boot.admin.password,
      projectName: boot.admin.projectName,
    });
    admin = {
      ...boot.admin,
      projectId: boot.admin.projectId,
      token: adminAuth.token,
      ctx: adminAuth.context,
    };
    computeApi = asActivities(cloud.keystone, createComputeApiActivities(cloud));
    networkApi = asActivities(
      cloud.keystone,
      createNetworkActivities({ neutron: cloud.neutron, identity: cloud.keystone }),
    );

    const data = generateQcow2Image({
      seed: 'tenancy',
      dataBytes: 64 * 1024,
      virtualSizeBytes: 64 * 2 ** 20,
    });
    const image = async (name: string, visibility: Image['visibility']) => {
      const created = await cloud.glance.createImage(
        { name, diskFormat: 'qcow2', containerFormat: 'bare', visibility, ownerProjectId: other.projectId },
        other.ctx,
      );
      return cloud.glance.uploadImageData(created.id, data, { ctx: other.ctx });
    };
    images.private = await image('other-private-image', 'private');
    images.sharedWithDemo = await image('other-shared-with-demo', 'shared');
    images.sharedNotWithDemo = await image('other-shared-not-with-demo', 'shared');
    images.community = await image('other-community-image', 'community');
    await cloud.glance.addImageMember(images.sharedWithDemo.id, demo.projectId, other.ctx);
    await cloud.glance.updateImageMember(images.sharedWithDemo.id, demo.projectId, 'accepted', demo.ctx);
    publicImage = await cloud.glance.getImage(boot.imageId, demo.ctx);
    assert.equal(publicImage.visibility, 'public');

    networks.private = await cloud.neutron.createNetwork({
      name: 'other-private',
      projectId: other.projectId,
    });
    await cloud.neutron.createSubnet({ networkId: networks.private.id, cidr: '10.1.0.0/24' });
    networks.shared = await cloud.neutron.createNetwork({
      name: 'other-shared',
      projectId: other.projectId,
      shared: true,
    });
    await cloud.neutron.createSubnet({ networkId: networks.shared.id, cidr: '10.2.0.0/24' });
    publicNetwork = await cloud.neutron.getNetwork(boot.publicNetworkId, demo.ctx);

    otherVolume = await cloud.cinder.createVolume({
      requestKey: 'tenancy:other-volume',
      projectId: other.projectId,
      userId: other.ctx.userId,
      sizeGb: 1,
      name: 'other-volume',
    });
    otherVolume = await cloud.cinder.waitForVolume(otherVolume.id, { timeoutMs: 10_000, pollMs: 10 });

    const uuid = randomUUID();
    await cloud.nova.createInstance({
      uuid,
      requestId: 'req-tenancy-other',
      name: 'other-server',
      projectId: other.projectId,
      userId: other.ctx.userId,
      flavor: 'm1.tiny',
      imageRef: images.private.id,
      networks: [networks.private.id],
    });
    otherServer = await cloud.nova.updateInstance(uuid, {
      vmState: 'active',
      taskState: null,
      powerState: 1,
    });
  });
  after(async () => {
    await sc?.close();
  });

  test('another project’s private image: NotFound to see, boot from, change or delete; nothing changes', async () => {
    const { cloud } = sc;
    const before = await sc.state();
    for (const image of [images.private, images.sharedNotWithDemo]) {
      const what = `${image.name} as demo`;
      const unknownId = randomUUID();
      const unknown = await expectTyped(
        cloud.glance.getImage(unknownId, demo.ctx),
        'NotFound',
        'unknown image',
      );
      const hidden = await expectTyped(
        cloud.glance.getImage(image.id, demo.ctx),
        'NotFound',
        `${what}: show`,
      );
      sameAsUnknown(hidden, unknown, image.id, unknownId);
      await expectTyped(cloud.glance.getImage(image.name, demo.ctx), 'NotFound', `${what}: show by name`);
      await expectTyped(cloud.glance.openImageData(image.id, demo.ctx), 'NotFound', `${what}: download`);
      await expectTyped(
        computeApi.validateBootRequest({ token: demo.token, request: plan(image.id) }),
        'NotFound',
        `${what}: boot`,
      );
      await expectTyped(
        computeApi.validateBootRequest({ token: demo.token, request: plan(image.name) }),
        'NotFound',
        `${what}: boot`,
      );
      await expectTyped(cloud.glance.deleteImage(image.id, demo.ctx), 'NotFound', `${what}: delete`);
      await expectTyped(cloud.glance.updateImage(image.id, { name: 'mine' }, demo.ctx), 'NotFound', what);
      await expectTyped(cloud.glance.deactivateImage(image.id, demo.ctx), 'NotFound', `${what}: deactivate`);
      await expectTyped(
        cloud.glance.addImageMember(image.id, demo.projectId, demo.ctx),
        'NotFound',
        `${what}: share with itself`,
      );
      await expectTyped(
        cloud.glance.updateImageMember(image.id, demo.projectId, 'accepted', demo.ctx),
        'NotFound',
        `${what}: accept`,
      );
    }
    const listed = (await cloud.glance.listImages(demo.ctx)).map((i) => i.id);
    const listedByOwner = (await cloud.glance.listImages(demo.ctx, { owner: other.projectId })).map(
      (i) => i.id,
    );
    for (const hidden of [images.private.id, images.sharedNotWithDemo.id]) {
      assert.ok(!listed.includes(hidden) && !listedByOwner.includes(hidden), 'a hidden image is listed');
    }
    assertUnchanged(before, await sc.state(), 'refused image calls');
  });

  test('shared (accepted), community and public images: bootable, but not changed or deleted (Forbidden)', async () => {
    const { cloud } = sc;
    const before = await sc.state();
    for (const image of [images.sharedWithDemo, images.community, publicImage]) {
      const what = `${image.name} (${image.visibility}) as demo`;
      assert.equal((await cloud.glance.getImage(image.id, demo.ctx)).id, image.id);
      const bootPlan = await computeApi.validateBootRequest({ token: demo.token, request: plan(image.id) });
      assert.equal(bootPlan.image.id, image.id, `${what}: boot`);
      assert.equal(bootPlan.projectId, demo.projectId, 'the server would belong to the caller’s project');
      await expectTyped(cloud.glance.deleteImage(image.id, demo.ctx), 'Forbidden', `${what}: delete`);
      await expectTyped(cloud.glance.updateImage(image.id, { name: 'mine' }, demo.ctx), 'Forbidden', what);
      await expectTyped(
        cloud.glance.updateImage(image.id, { properties: { hw_qemu_guest_agent: 'yes' } }, demo.ctx),
        'Forbidden',
        `${what}: set a property`,
      );
      await expectTyped(cloud.glance.deactivateImage(image.id, demo.ctx), 'Forbidden', `${what}: deactivate`);
      await expectTyped(
        cloud.glance.addImageMember(image.id, demo.projectId, demo.ctx),
        'Forbidden',
        `${what}: add a member`,
      );
    }
    await expectTyped(
      cloud.glance.removeImageMember(images.sharedWithDemo.id, demo.projectId, demo.ctx),
      'Forbidden',
      'a member removes its own membership (only the owner may)',
    );
    const listed = (await cloud.glance.listImages(demo.ctx)).map((i) => i.id);
    assert.ok(listed.includes(images.sharedWithDemo.id) && listed.includes(publicImage.id));
    assert.ok(!listed.includes(images.community.id), 'community images are listed only when asked for');
    const community = await cloud.glance.listImages(demo.ctx, { visibility: 'community' });
    assert.deepEqual(
      community.map((i) => i.id),
      [images.community.id],
    );
    assertUnchanged(before, await sc.state(), 'refused changes of visible images');
  });

  test('another project’s private network: NotFound to see, attach a port to or delete; nothing changes', async () => {
    const { cloud } = sc;
    const before = await sc.state();
    const net = networks.private;
    const unknownId = randomUUID();
    const unknown = await expectTyped(cloud.neutron.getNetwork(unknownId, demo.ctx), 'NotFound', 'unknown');
    const hidden = await expectTyped(cloud.neutron.getNetwork(net.id, demo.ctx), 'NotFound', 'show by id');
    sameAsUnknown(hidden, unknown, net.id, unknownId);
    await expectTyped(cloud.neutron.getNetwork(net.name, demo.ctx), 'NotFound', 'show by name');
    await expectTyped(
      networkApi.validateNetworks({ token: demo.token, networks: [net.id] }),
      'NotFound',
      'boot on it (by id)',
    );
    await expectTyped(
      networkApi.validateNetworks({ token: demo.token, networks: [net.name] }),
      'NotFound',
      'boot on it (by name)',
    );
    await expectTyped(
      cloud.neutron.createPort({
        requestKey: 'tenancy:steal-port',
        networkId: net.id,
        projectId: demo.projectId,
      }),
      'NotFound',
      'a port of demo’s on it',
    );
    const deleteHidden = await expectTyped(
      cloud.neutron.deleteNetwork(net.id, demo.ctx),
      'NotFound',
      'delete',
    );
    const deleteUnknown = await expectTyped(
      cloud.neutron.deleteNetwork(unknownId, demo.ctx),
      'NotFound',
      'x',
    );
    sameAsUnknown(deleteHidden, deleteUnknown, net.id, unknownId);
    const listed = (await cloud.neutron.listNetworks(demo.ctx)).map((n) => n.id);
    assert.ok(!listed.includes(net.id), 'another project’s private network is listed');
    assertUnchanged(before, await sc.state(), 'refused network calls');
  });

  test('shared and public networks: visible and bootable, but not deleted (Forbidden); own network: member only', async () => {
    const { cloud, boot } = sc;
    const before = await sc.state();
    for (const net of [networks.shared, publicNetwork]) {
      assert.equal((await cloud.neutron.getNetwork(net.id, demo.ctx)).id, net.id);
      assert.deepEqual(await networkApi.validateNetworks({ token: demo.token, networks: [net.id] }), [
        { id: net.id, name: net.name },
      ]);
      assert.ok((await cloud.neutron.listNetworks(demo.ctx)).some((n) => n.id === net.id));
      await expectTyped(cloud.neutron.deleteNetwork(net.id, demo.ctx), 'Forbidden', `delete ${net.name}`);
    }
    // Neutron's delete_network default: a reader of the owning project may not delete it either.
    await expectTyped(
      cloud.neutron.deleteNetwork(boot.privateNetworkId, demoReader.ctx),
      'Forbidden',
      'reader',
    );
    assertUnchanged(before, await sc.state(), 'refused network deletes');

    // Using a shared network puts the port in the caller's project, on the owner's network.
    const port = await cloud.neutron.createPort({
      requestKey: 'tenancy:shared-port',
      networkId: networks.shared.id,
      projectId: demo.projectId,
      deviceOwner: 'compute:nova',
    });
    assert.equal(port.projectId, demo.projectId);
    assert.match(port.fixedIps[0]?.ipAddress ?? '', /^10\.2\.0\.\d+$/);
    // The snapshot does see a change when there is one (the port, its IP, its security group binding).
    const changed = diffSnapshots(before.rows, (await sc.state()).rows);
    for (const table of ['ports', 'ipallocations', 'securitygroupportbindings']) {
      assert.ok(
        changed.some((line) => line.startsWith(`+ neutron.${table} `)),
        `snapshot misses ${table}`,
      );
    }
    await cloud.neutron.deletePort(port.id);
  });

  test('another project’s volume: NotFound to see or delete, absent from lists; its file stays', async () => {
    const { cloud } = sc;
    const before = await sc.state();
    const unknownId = randomUUID();
    const unknown = await expectTyped(cloud.cinder.getVolume(unknownId, demo.ctx), 'NotFound', 'unknown');
    const hidden = await expectTyped(cloud.cinder.getVolume(otherVolume.id, demo.ctx), 'NotFound', 'show');
    sameAsUnknown(hidden, unknown, otherVolume.id, unknownId);
    await expectTyped(cloud.cinder.deleteVolume(otherVolume.id, {}, demo.ctx), 'NotFound', 'delete');
    await expectTyped(
      cloud.cinder.deleteVolume(otherVolume.id, { force: true }, demo.ctx),
      'NotFound',
      'force',
    );
    await expectTyped(cloud.cinder.deleteVolume(otherVolume.id, {}, demoReader.ctx), 'NotFound', 'reader');
    assert.deepEqual(await cloud.cinder.listVolumes({}, demo.ctx), []);
    assert.deepEqual(await cloud.cinder.listVolumes({ projectId: other.projectId }, demo.ctx), []);
    // Its own project sees it; a reader there may not delete it (Cinder's volume:delete default).
    assert.equal((await cloud.cinder.getVolume(otherVolume.id, otherReader.ctx)).status, 'available');
    await expectTyped(cloud.cinder.deleteVolume(otherVolume.id, {}, otherReader.ctx), 'Forbidden', 'reader');
    assert.ok(otherVolume.providerLocation && existsSync(otherVolume.providerLocation));
    assertUnchanged(before, await sc.state(), 'refused volume calls');
  });

  test('another project’s server: NotFound to find for delete, worded as an unknown server', async () => {
    const before = await sc.state();
    const unknownId = randomUUID();
    const unknown = await expectTyped(
      computeApi.getInstanceForDelete({ token: demo.token, instanceUuid: unknownId }),
      'NotFound',
      'x',
    );
    const hidden = await expectTyped(
      computeApi.getInstanceForDelete({ token: demo.token, instanceUuid: otherServer.uuid }),
      'NotFound',
      'delete another project’s server',
    );
    sameAsUnknown(hidden, unknown, otherServer.uuid, unknownId);
    // In its own project, a reader is told it may not (Forbidden), not that the server is missing.
    await expectTyped(
      computeApi.getInstanceForDelete({ token: otherReader.token, instanceUuid: otherServer.uuid }),
      'Forbidden',
      'reader of the owning project',
    );
    assert.equal(
      (await computeApi.getInstanceForDelete({ token: other.token, instanceUuid: otherServer.uuid })).uuid,
      otherServer.uuid,
    );
    assertUnchanged(before, await sc.state(), 'refused server lookups');
  });

  test('admin (context_is_admin) sees and may act on every project’s resources', async () => {
    const { cloud } = sc;
    assert.equal((await cloud.glance.getImage(images.private.id, admin.ctx)).id, images.private.id);
    assert.equal((await cloud.neutron.getNetwork(networks.private.id, admin.ctx)).id, networks.private.id);
    assert.equal((await cloud.cinder.getVolume(otherVolume.id, admin.ctx)).id, otherVolume.id);
    assert.ok((await cloud.cinder.listVolumes({}, admin.ctx)).some((v) => v.id === otherVolume.id));
    const found = await computeApi.getInstanceForDelete({
      token: admin.token,
      instanceUuid: otherServer.uuid,
    });
    assert.equal(found.projectId, other.projectId);
    // A throw-away network of `other` goes away when admin deletes it.
    const spare = await cloud.neutron.createNetwork({ name: 'other-spare', projectId: other.projectId });
    assert.equal(await cloud.neutron.deleteNetwork(spare.id, admin.ctx), true);
    await expectTyped(cloud.neutron.getNetwork(spare.id, admin.ctx), 'NotFound', 'deleted network');
  });

  test('the owner may delete its own private resources (members, not readers)', async () => {
    const { cloud } = sc;
    const spareNet = await cloud.neutron.createNetwork({ name: 'other-spare-2', projectId: other.projectId });
    await expectTyped(cloud.neutron.deleteNetwork(spareNet.id, otherReader.ctx), 'Forbidden', 'reader');
    assert.equal(await cloud.neutron.deleteNetwork(spareNet.id, other.ctx), true);
    const spareVol = await cloud.cinder.createVolume({
      requestKey: 'tenancy:spare-volume',
      projectId: other.projectId,
      sizeGb: 1,
    });
    await cloud.cinder.waitForVolume(spareVol.id, { timeoutMs: 10_000, pollMs: 10 });
    assert.equal(await cloud.cinder.deleteVolume(spareVol.id, {}, other.ctx), true);
    await expectTyped(cloud.cinder.getVolume(spareVol.id, other.ctx), 'NotFound', 'deleted volume');
    await expectTyped(cloud.cinder.deleteVolume(spareVol.id, {}, other.ctx), 'NotFound', 'deleted again');
    assert.equal(
      await cloud.cinder.deleteVolume(spareVol.id),
      false,
      'the operator’s delete stays idempotent',
    );
  });
});
