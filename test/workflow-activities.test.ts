/**
 * Every activity of a boot is safe to run twice: Temporal retries an activity whose answer was lost, so a
 * second run must find the first one's work and return the same result, changing nothing more. Here each
 * activity of a boot from a volume, and each undo, runs twice in a row over a real embedded cloud (no
 * Temporal server needed: MockActivityEnvironment gives them their activity context).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import {
  createComputeActivities,
  createControllerActivities,
  createNetworkActivities,
  type ComputeActivities,
  type ControllerActivities,
  type NetworkActivities,
} from '../activities';
import { auditLeaks } from '../cloud/audit';
import { bootstrapCloud, type BootstrapResult } from '../cloud/bootstrap';
import type { ComputeHost } from '../cloud/compute';
import { capabilitiesOf, defaultHostSpec } from '../cloud/hosts';
import { openCloud, openComputeHost, type Cloud } from '../cloud/index';
import type { BootPlan, HostTarget, PortDescription } from '../workflows/types';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

type AnyActivity = (...args: never[]) => Promise<unknown>;

/** Runs the activity twice in an activity context; both answers must agree. */
async function once<F extends AnyActivity>(fn: F, ...args: Parameters<F>): Promise<Awaited<ReturnType<F>>> {
  const env = new MockActivityEnvironment();
  const result: unknown = await env.run(async (): Promise<unknown> => fn(...args));
  return result as Awaited<ReturnType<F>>;
}

async function twice<F extends AnyActivity>(fn: F, ...args: Parameters<F>): Promise<Awaited<ReturnType<F>>> {
  const first = await once(fn, ...args);
  const second = await once(fn, ...args);
  assert.deepEqual(second, first, 'a repeated activity answers as the first run did');
  return first;
}

/** Runs an undo twice: both runs succeed (what each reports having removed may differ). */
async function rerun<F extends AnyActivity>(fn: F, ...args: Parameters<F>): Promise<Awaited<ReturnType<F>>> {
  const first = await once(fn, ...args);
  await once(fn, ...args);
  return first;
}

describe('activities are idempotent', () => {
  let db: TestDb;
  let cloud: Cloud;
  let boot: BootstrapResult;
  let host: ComputeHost;
  let controller: ControllerActivities;
  let network: NetworkActivities;
  let compute: ComputeActivities;

  before(async () => {
    db = testDbConfig('wf-activities');
    cloud = await openCloud({ db: db.config });
    boot = await bootstrapCloud(cloud);
    const spec = defaultHostSpec('compute2');
    host = await openComputeHost({
      dataDir: cloud.dataDir,
      host: spec.host,
      capabilities: capabilitiesOf(spec),
    });
    controller = createControllerActivities(cloud);
    network = createNetworkActivities({ neutron: cloud.neutron, identity: cloud.keystone });
    compute = createComputeActivities(host);
  });
  after(async () => {
    await host?.close();
    await cloud?.close();
    await db?.cleanup();
  });

  test('a boot from a volume and its teardown, every step run twice, leaves exactly one of everything', async () => {
    const uuid = '0b7f6a52-3c1d-4e8f-9a2b-5c6d7e8f9a01';
    const requestId = 'twice-1';
    // What a client hands the workflow: Keystone's grant for it (MockActivityEnvironment's workflow 'test').
    const { token: userToken } = await cloud.keystone.authenticate({
      username: boot.demo.username,
      password: boot.demo.password,
      projectName: boot.demo.projectName,
    });
    const { grant } = await cloud.keystone.issueGrant(userToken, {
      workflowType: 'test',
      workflowId: 'test',
    });
    const session = await once(controller.authenticate, { grant });
    assert.ok(
      !JSON.stringify(session).includes(boot.demo.password),
      'no password in what authenticate returns',
    );
    const { token } = session;

    const plan: BootPlan = await twice(controller.validateBootRequest, {
      token,
      request: { name: 'twice', flavor: 'm1.tiny', image: boot.imageId, bootVolume: { sizeGb: 1 } },
    });
    const networks = await twice(network.validateNetworks, { token, networks: [boot.privateNetworkId] });
    await twice(controller.reserveQuota, { token, instanceUuid: uuid, amounts: plan.quota });
    assert.equal((await cloud.nova.getQuotaUsage(boot.demo.projectId)).instances.inUse, 1);
    await twice(controller.createInstanceRecord, {
      uuid,
      requestId,
      plan,
      networkIds: networks.map((n) => n.id),
    });

    const selection = await twice(controller.selectDestinations, {
      instanceUuid: uuid,
      projectId: plan.projectId,
      userId: plan.userId,
      flavor: plan.flavor,
      imageProperties: plan.image.properties,
      bootFromVolume: true,
      availabilityZone: null,
      excludedHosts: ['compute1', 'compute3'],
      maxAttempts: 3,
    });
    const target: HostTarget = selection.selected;
    assert.equal(target.host, 'compute2');
    assert.equal((await cloud.placement.listAllocations()).length, 1);
    await twice(controller.setHost, {
      instanceUuid: uuid,
      requestId,
      host: target.host,
      nodeUuid: target.nodeUuid,
    });
    await twice(controller.setTaskState, {
      instanceUuid: uuid,
      taskState: 'networking',
      expected: 'scheduling',
    });

    const ports: PortDescription[] = await twice(network.createPorts, {
      token,
      instanceUuid: uuid,
      attempt: 1,
      projectId: plan.projectId,
      networks,
    });
    assert.equal((await cloud.neutron.listPorts({ deviceId: uuid })).length, 1);
    const bound = await twice(network.bindPorts, { ports, host: 'compute2' });
    const portIds = bound.map((p) => p.portId);
    await twice(compute.plugVifs, { instanceUuid: uuid, host: 'compute2', ports: bound });
    assert.equal((await host.listVifs()).length, 1);
    await twice(network.reportDevicesUp, { portIds, host: 'compute2' });
    assert.deepEqual(await twice(network.portStatuses, { portIds }), { [portIds[0] as string]: 'ACTIVE' });

    await twice(controller.setTaskState, {
      instanceUuid: uuid,
      taskState: 'block_device_mapping',
      expected: 'networking',
    });
    const volume = await twice(controller.createBootVolume, {
      token,
      instanceUuid: uuid,
      name: 'twice',
      projectId: plan.projectId,
      userId: plan.userId,
      sizeGb: 1,
      image: plan.image.location,
      deleteOnTermination: true,
    });
    assert.equal((await cloud.cinder.listVolumes({})).length, 1);
    await cloud.cinder.waitForVolume(volume.volumeId, { timeoutMs: 20_000 });
    const attached = await twice(controller.attachVolume, {
      token,
      volume,
      instanceUuid: uuid,
      host: 'compute2',
    });
    const connection = {
      instanceUuid: uuid,
      volumeId: volume.volumeId,
      connectionInfo: attached.connectionInfo,
    };
    const connected = await twice(compute.connectVolume, connection);
    assert.equal(connected.device, 'vdb');
    await twice(controller.completeAttachment, { attachmentId: attached.attachmentId });
    assert.equal((await cloud.cinder.getVolume(volume.volumeId)).status, 'in-use');

    await twice(controller.setTaskState, {
      instanceUuid: uuid,
      taskState: 'spawning',
      expected: 'block_device_mapping',
    });
    const spawned = await twice(compute.spawn, {
      uuid,
      name: 'twice',
      flavor: plan.flavor,
      baseImagePath: null,
      ports: bound.map((p) => ({ ...p, bridge: '', tap: '' })),
      volumes: [{ volumeId: volume.volumeId, path: attached.connectionInfo.path, device: connected.device }],
    });
    assert.equal(spawned.powerState, 1);
    assert.equal((await host.listDomains()).length, 1);
    await twice(controller.finishBuild, { instanceUuid: uuid, requestId, host: 'compute2' });
    const [create] = await cloud.nova.listActions(uuid);
    assert.equal(create?.events.filter((e) => e.event === 'compute__do_build_and_run_instance').length, 1);
    assert.equal((await cloud.nova.getInstance(uuid)).vmState, 'active');

    // Now every undo, twice: what a failed build's saga runs.
    await rerun(compute.destroyInstance, { instanceUuid: uuid });
    assert.deepEqual(await host.listDomains(), []);
    await rerun(compute.disconnectVolume, connection);
    // A server delete's detach (serverDelete): the volume keeps delete_on_termination, and the delete's
    // listing still finds it once detached (a re-run of a delete interrupted before the volume delete).
    const listed = {
      volumeId: volume.volumeId,
      attachmentId: attached.attachmentId,
      connectionInfo: attached.connectionInfo,
      deleteOnTermination: true,
    };
    const forDelete = { instanceUuid: uuid, serverDelete: true };
    assert.deepEqual(await twice(controller.listInstanceVolumes, forDelete), [listed]);
    await rerun(controller.detachVolume, { attachmentId: attached.attachmentId, serverDelete: true });
    assert.equal((await cloud.cinder.getVolume(volume.volumeId)).status, 'available');
    assert.deepEqual(await twice(controller.listInstanceVolumes, { instanceUuid: uuid }), [], 'live only');
    assert.deepEqual(await twice(controller.listInstanceVolumes, forDelete), [listed]);
    await rerun(compute.unplugVifs, { portIds });
    assert.deepEqual(await rerun(network.deleteInstancePorts, { instanceUuid: uuid }), portIds);
    assert.deepEqual(await cloud.neutron.listPorts({ deviceId: uuid }), []);
    assert.equal(await rerun(controller.deleteVolume, { volumeId: volume.volumeId }), true);
    assert.deepEqual(await twice(controller.listInstanceVolumes, forDelete), [], 'deleted: nothing left');
    await rerun(controller.releaseAllocation, { instanceUuid: uuid });
    await rerun(controller.releaseQuota, { instanceUuid: uuid });
    const fault = { code: 500, message: 'Build of instance failed on purpose', host: 'compute2' };
    const failures = (await cloud.nova.getComputeHost('compute2')).failedBuilds;
    await rerun(controller.hostBuildFailed, {
      instanceUuid: uuid,
      requestId,
      host: 'compute2',
      error: { type: 'X', message: 'y' },
      reschedule: true,
    });
    assert.equal(
      (await cloud.nova.getComputeHost('compute2')).failedBuilds,
      failures,
      'a closed build event is not counted again',
    );
    await rerun(controller.failBuild, { instanceUuid: uuid, requestId, fault });
    assert.equal((await cloud.nova.listFaults(uuid)).length, 1, 'one fault however often it is written');
    const instance = await cloud.nova.getInstance(uuid);
    assert.deepEqual([instance.vmState, instance.taskState, instance.host], ['error', null, null]);
    assert.deepEqual(await auditLeaks(cloud, { hosts: [host] }), []);
  });

  test("deleteVolume keeps a volume the user has snapshots of (false), as Nova's _cleanup_volumes goes on", async () => {
    const made = await cloud.cinder.createVolume({
      requestKey: 'activities-snapshotted',
      projectId: boot.demo.projectId,
      sizeGb: 1,
      deleteOnTermination: true,
    });
    await cloud.cinder.waitForVolume(made.id, { timeoutMs: 10_000 });
    const snapshot = await cloud.cinder.snapshots.create({
      volumeId: made.id,
      projectId: boot.demo.projectId,
    });
    assert.equal(await rerun(controller.deleteVolume, { volumeId: made.id }), false);
    assert.equal((await cloud.cinder.getVolume(made.id)).status, 'available');
    assert.equal((await cloud.cinder.snapshots.get(snapshot.id)).volumeId, made.id);
    await cloud.cinder.deleteVolume(made.id, { cascade: true, force: true });
    assert.equal(await rerun(controller.deleteVolume, { volumeId: made.id }), false);
  });

  test("deleteServerVolume: deleted while the server's, kept when another server has it or with snapshots", async () => {
    const projectId = boot.demo.projectId;
    const server = '6a0d3f2e-1b4c-4d5e-8f90-a1b2c3d4e5f6';
    const other = '7b1e4a3f-2c5d-4e6f-9a01-b2c3d4e5f6a7';
    const make = async (key: string) => {
      const made = await cloud.cinder.createVolume({ requestKey: key, projectId, sizeGb: 1 });
      await cloud.cinder.waitForVolume(made.id, { timeoutMs: 10_000 });
      return made.id;
    };
    // Detached from the server (a reschedule's undo), attached to nothing since: the server's, deleted.
    const given = await make('activities-server-volume-given');
    const attachment = await cloud.cinder.reserveVolume(given, server, { deleteOnTermination: true });
    await cloud.cinder.detachVolume(attachment.id);
    const input = { volumeId: given, instanceUuid: server };
    assert.deepEqual(await once(controller.deleteServerVolume, input), { outcome: 'deleted' });
    assert.deepEqual(await once(controller.deleteServerVolume, input), { outcome: 'gone' });
    // Given back, then attached to another server: that server's, kept and still attached there.
    const taken = await make('activities-server-volume-taken');
    const first = await cloud.cinder.reserveVolume(taken, server, { deleteOnTermination: true });
    await cloud.cinder.detachVolume(first.id);
    await cloud.cinder.reserveVolume(taken, other);
    assert.deepEqual(await twice(controller.deleteServerVolume, { volumeId: taken, instanceUuid: server }), {
      outcome: 'kept',
      reason: `Volume ${taken} is no longer this server's.`,
    });
    const still = await cloud.cinder.getVolume(taken);
    assert.deepEqual(
      still.attachments.map((a) => a.instanceUuid),
      [other],
    );
    // Attached to the server, with a snapshot: detached, kept with the reason (Cinder's refusal).
    const snapped = await make('activities-server-volume-snapshotted');
    const attached = await cloud.cinder.reserveVolume(snapped, server, { deleteOnTermination: true });
    await cloud.cinder.updateAttachment(attached.id, 'compute2');
    await cloud.cinder.completeAttachment(attached.id);
    const snapshot = await cloud.cinder.snapshots.create({ volumeId: snapped, projectId, force: true });
    assert.deepEqual(
      await twice(controller.deleteServerVolume, { volumeId: snapped, instanceUuid: server }),
      {
        outcome: 'kept',
        reason: `Volume ${snapped} has snapshots (${snapshot.id}).`,
      },
    );
    assert.equal((await cloud.cinder.getVolume(snapped)).status, 'available');
    for (const id of [taken, snapped]) {
      for (const a of await cloud.cinder.listAttachments({ volumeId: id }))
        await cloud.cinder.detachVolume(a.id);
      await cloud.cinder.deleteVolume(id, { cascade: true, force: true });
    }
  });

  test('a cloud error leaves an activity as a typed ApplicationFailure, non-retryable when retrying cannot help', async () => {
    const env = new MockActivityEnvironment();
    await assert.rejects(
      env.run(controller.authenticate, {
        credentials: { username: boot.demo.username, password: 'wrong', projectName: boot.demo.projectName },
      }),
      (err) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, 'Unauthorized');
        assert.equal(err.nonRetryable, true);
        assert.deepEqual(err.details, [{ code: 401 }]);
        return true;
      },
    );
  });
});
