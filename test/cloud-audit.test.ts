import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { openCloud, openComputeHost, type Cloud } from '../cloud';
import { auditLeaks, type LeakKind } from '../cloud/audit';
import { bootstrapCloud, type BootstrapResult } from '../cloud/bootstrap';
import type { ComputeHost } from '../cloud/compute';
import { DEFAULT_HOSTS, capabilitiesOf } from '../cloud/hosts';
import { cinderMigrations } from '../cloud/cinder/migrations';
import type { CinderDb } from '../cloud/cinder/schema';
import { openServiceDb } from '../cloud/db';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const SPEC = DEFAULT_HOSTS[0]!;

describe('leak audit', () => {
  let testDb: TestDb;
  let cloud: Cloud;
  let seed: BootstrapResult;
  let host: ComputeHost;

  before(async () => {
    testDb = testDbConfig('audit');
    cloud = await openCloud({ db: testDb.config });
    seed = await bootstrapCloud(cloud, { hosts: [SPEC] });
    host = await openComputeHost({
      dataDir: cloud.dataDir,
      host: SPEC.host,
      capabilities: capabilitiesOf(SPEC),
    });
  });
  after(async () => {
    await cloud?.close();
    await testDb?.cleanup();
  });

  const kinds = async () => (await auditLeaks(cloud)).map((f) => f.kind).sort();

  /** Everything a finished boot holds, made directly through the services. */
  async function activeInstance(): Promise<string> {
    const uuid = randomUUID();
    const projectId = seed.demo.projectId;
    const flavor = await cloud.nova.getFlavor('m1.tiny');
    await cloud.nova.createInstance({
      uuid,
      requestId: `req-${uuid}`,
      name: 'vm',
      projectId,
      userId: 'u',
      flavor,
      imageRef: seed.imageId,
      networks: [seed.privateNetworkId],
    });
    await cloud.nova.claimQuota(projectId, uuid, { instances: 1, cores: 1, ram: 512, ports: 1 });
    await cloud.placement.claim({
      consumerUuid: uuid,
      providerUuid: seed.hosts[0]!.nodeUuid,
      resources: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 },
      projectId,
      userId: 'u',
    });
    const port = await cloud.neutron.createPort({
      requestKey: `${uuid}:1:0`,
      networkId: seed.privateNetworkId,
      projectId,
      deviceId: uuid,
      deviceOwner: 'compute:nova',
    });
    await host.createInstanceDir(uuid, { rootGb: 1 });
    const { port: bound } = await cloud.neutron.bindPort(port.id, SPEC.host);
    await host.plugVif(bound);
    await host.spawn(uuid, { vcpus: 1, memoryMb: 512 });
    await cloud.nova.updateInstance(uuid, {
      vmState: 'active',
      taskState: null,
      powerState: 1,
      host: SPEC.host,
    });
    return uuid;
  }

  test('a bootstrapped cloud and a complete ACTIVE instance are clean', async () => {
    assert.deepEqual(await kinds(), []);
    await activeInstance();
    assert.deepEqual(await kinds(), []);
  });

  test('a network’s DHCP port belongs to the network: never a leak', async () => {
    const dhcp = await cloud.neutron.ensureDhcpPort(seed.privateNetworkId);
    assert.ok(dhcp);
    assert.equal((await cloud.neutron.getPort(dhcp.dhcpPortId)).deviceOwner, 'network:dhcp');
    assert.deepEqual(await kinds(), []);
  });

  test('finds what a failed instance left behind, on every service and on the host', async () => {
    const uuid = await activeInstance();
    const volume = await cloud.cinder.createVolume({
      requestKey: `${uuid}:root`,
      projectId: seed.demo.projectId,
      sizeGb: 1,
      deleteOnTermination: true,
    });
    await cloud.cinder.waitForVolume(volume.id, { timeoutMs: 10_000 });
    // A delete that failed part-way: error, but still on its host, still owning all of it.
    await cloud.nova.updateInstance(uuid, { vmState: 'error', taskState: null });
    assert.deepEqual(await kinds(), []);
    // A failed build: error with no host (failBuild), so nothing may be left.
    await cloud.nova.updateInstance(uuid, { host: null, node: null });
    const expected: LeakKind[] = ['allocation', 'domain', 'instance-dir', 'port', 'quota', 'vif', 'volume'];
    assert.deepEqual(await kinds(), expected);
    const findings = await auditLeaks(cloud);
    assert.ok(findings.every((f) => f.instanceUuid === uuid || f.kind === 'vif'));

    // Release all of it, as the saga does, and the audit is clean again.
    await host.destroy(uuid);
    for (const vif of await host.listVifs()) if (vif.instanceUuid === uuid) await host.unplugVif(vif.portId);
    for (const port of await cloud.neutron.listPorts({ deviceId: uuid }))
      await cloud.neutron.deletePort(port.id);
    await cloud.placement.releaseAllocations(uuid);
    await cloud.nova.releaseQuota(uuid);
    await cloud.cinder.deleteVolume(volume.id);
    assert.deepEqual(await kinds(), []);
  });

  test('snapshots: clean with their volume and quota; a lost claim, a stray claim and a gone volume are found', async () => {
    const projectId = seed.demo.projectId;
    const made = await cloud.cinder.createVolume({
      requestKey: `audit-${randomUUID()}`,
      projectId,
      sizeGb: 1,
    });
    const volume = await cloud.cinder.waitForVolume(made.id, { timeoutMs: 10_000 });
    const snapshot = await cloud.cinder.snapshots.create({ volumeId: volume.id, projectId });
    assert.deepEqual(await kinds(), []);

    // The claim released behind the snapshot's back, then a claim that does not match it.
    await cloud.nova.releaseQuota(snapshot.id);
    assert.deepEqual(await kinds(), ['quota']);
    await cloud.nova.claimQuota(projectId, snapshot.id, { snapshots: 1, gigabytes: 5 });
    const [mismatch] = await auditLeaks(cloud);
    assert.match(mismatch!.detail, /holds .*gigabytes":5/);
    await cloud.nova.releaseQuota(snapshot.id);
    await cloud.nova.claimQuota(projectId, snapshot.id, { snapshots: 1, gigabytes: 1 });
    assert.deepEqual(await kinds(), []);

    // The volume row gone under its snapshot (Cinder never does that: a volume goes only with its snapshots).
    const db = await openServiceDb<CinderDb>('cinder', cinderMigrations, testDb.config);
    try {
      await db.db.updateTable('volumes').set({ deleted: 1 }).where('id', '=', volume.id).execute();
      assert.deepEqual(await kinds(), ['snapshot']);
      await db.db.updateTable('volumes').set({ deleted: 0 }).where('id', '=', volume.id).execute();
    } finally {
      await db.close();
    }
    await cloud.cinder.deleteVolume(volume.id, { cascade: true });
    assert.deepEqual(await kinds(), []);
  });

  test('a deleted server’s delete_on_termination volume kept for its snapshots (as Nova keeps it) is no leak', async () => {
    const uuid = randomUUID();
    const projectId = seed.demo.projectId;
    await cloud.nova.createInstance({
      uuid,
      requestId: `req-${uuid}`,
      name: 'gone',
      projectId,
      userId: 'u',
      flavor: 'm1.tiny',
      imageRef: seed.imageId,
      networks: [],
    });
    const made = await cloud.cinder.createVolume({
      requestKey: `${uuid}:root`,
      projectId,
      sizeGb: 1,
      deleteOnTermination: true,
    });
    await cloud.cinder.waitForVolume(made.id, { timeoutMs: 10_000 });
    await cloud.cinder.snapshots.create({ volumeId: made.id, projectId });
    await cloud.nova.softDeleteInstance(uuid);
    assert.deepEqual(await kinds(), []);
    await cloud.cinder.deleteVolume(made.id, { cascade: true });
    assert.deepEqual(await kinds(), []);
  });

  test('a BUILD instance with no build running is reported unless builds are in flight', async () => {
    const uuid = randomUUID();
    await cloud.nova.createInstance({
      uuid,
      requestId: `req-${uuid}`,
      name: 'stuck',
      projectId: seed.demo.projectId,
      userId: 'u',
      flavor: 'm1.tiny',
      imageRef: seed.imageId,
      networks: [],
    });
    assert.deepEqual(await kinds(), ['stuck-build']);
    assert.deepEqual(await auditLeaks(cloud, { buildsInFlight: true }), []);
    await cloud.nova.softDeleteInstance(uuid);
    assert.deepEqual(await kinds(), []);
  });
});
