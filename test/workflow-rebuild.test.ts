/**
 * rebuildInstance on the time-skipping test server with the real activities and the fake driver: a rebuild
 * from another image on the same host (same ports, MACs, IPs; the new image fetched and the guest spawned
 * again; name and metadata saved; task_state through rebuilding → rebuild_block_device_mapping →
 * rebuild_spawning → None; the action and its event), a stopped server rebuilt stays stopped, and the
 * host's spawn failing leaves ERROR with the fault, the event Error, and nothing leaked after the delete.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { generateQcow2Image } from '../cloud/glance';
import { POWER_STATES } from '../cloud/nova';
import { CONTROLLER_QUEUE, deleteWorkflowId, serverOperationWorkflowId } from '../workflows/names';
import type { BootResult, RebuildRequest, ServerOperationResult } from '../workflows/types';
import { activityAttempts, assertNoLeaks } from './helpers/boot-assertions';
import { HOSTS, openBootHarness, type BootHarness } from './helpers/boot-harness';

describe('rebuild as a workflow', () => {
  let h: BootHarness;
  let seq = 0;
  let otherImage = '';
  before(async () => {
    h = await openBootHarness('wf-rebuild');
    const ctx = { projectId: h.boot.admin.projectId, roles: ['admin', 'member', 'reader'] };
    const image = await h.cloud.glance.createImage(
      {
        name: 'rebuild-image',
        diskFormat: 'qcow2',
        containerFormat: 'bare',
        visibility: 'public',
        ownerProjectId: h.boot.admin.projectId,
        minDisk: 1,
        minRam: 0,
      },
      ctx,
    );
    otherImage = (
      await h.cloud.glance.uploadImageData(image.id, generateQcow2Image({ seed: 'rebuild-image' }), { ctx })
    ).id;
  });
  after(async () => {
    await h?.close();
  });
  afterEach(async () => {
    for (const compute of h.computeHosts.values()) await compute.clearFaults();
    await h.setRunningHosts(HOSTS);
  });

  async function demoToken(): Promise<string> {
    await h.syncClock();
    const { username, password, projectName } = h.boot.demo;
    return (await h.cloud.keystone.authenticate({ username, password, projectName })).token;
  }

  /** As the servers API does: nova-api's begin with the changes, then the workflow (which finds it). */
  async function startRebuild(
    server: string,
    rebuild: RebuildRequest['rebuild'],
    viaApi = true,
  ): Promise<WorkflowHandle> {
    const requestId = `req-rebuild-${++seq}`;
    await h.syncClock();
    if (viaApi) {
      const instance = await h.cloud.nova.getInstance(server);
      await h.cloud.nova.beginOperation({
        instanceUuid: server,
        requestId,
        operation: 'rebuild',
        userId: instance.userId,
        projectId: instance.projectId,
        rebuild,
      });
    }
    return h.env.client.workflow.start('rebuildInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: serverOperationWorkflowId('rebuild', server, requestId),
      args: [{ requestId, auth: { token: await demoToken() }, instanceUuid: server, rebuild }],
    });
  }

  async function deleteServer(server: string): Promise<void> {
    const handle = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(server),
      args: [{ requestId: `del-${server}`, auth: { token: await demoToken() }, instanceUuid: server }],
    });
    await handle.result();
  }

  async function portsOf(server: BootResult) {
    return (await h.cloud.neutron.listPorts({ deviceId: server.id })).map((p) => ({
      id: p.id,
      mac: p.macAddress,
      ips: p.fixedIps.map((ip) => ip.ipAddress),
      host: p.bindingHostId,
    }));
  }

  test('from another image on the same host: ports and IPs kept, guest spawned again, name and metadata saved', async () => {
    const server = await h.runBoot(h.request(`rebuild-boot-${++seq}`));
    const compute = h.computeHosts.get(server.host)!;
    const portsBefore = await portsOf(server);
    const handle = await startRebuild(server.id, {
      imageRef: otherImage,
      name: 'rebuilt',
      metadata: { role: 'web' },
    });
    // nova-api's begin wrote the changes with task_state rebuilding (REBUILD in the API).
    const begun = await h.cloud.nova.getInstance(server.id);
    assert.equal(begun.imageRef, otherImage);
    const result = (await handle.result()) as ServerOperationResult;
    await h.keepHistory('rebuild/rebuild', handle);
    assert.deepEqual([result.vmState, result.powerState, result.host], ['active', 1, server.host]);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual(
      [
        instance.vmState,
        instance.taskState,
        instance.name,
        instance.metadata,
        instance.imageRef,
        instance.host,
      ],
      ['active', null, 'rebuilt', { role: 'web' }, otherImage, server.host],
    );
    assert.deepEqual(await portsOf(server), portsBefore);
    assert.ok((await compute.listCachedImages()).some((i) => i.imageId === otherImage));
    assert.equal(await compute.getPowerState(server.id), POWER_STATES.RUNNING);
    assert.ok((await compute.listVifs()).some((v) => v.instanceUuid === server.id));
    // The steps: the conductor moved task_state twice (rebuild_block_device_mapping, rebuild_spawning)
    // around the image fetch, then the host rebuilt the guest.
    const steps = (await activityAttempts(handle)).map((a) => a.type);
    assert.deepEqual(steps.slice(steps.indexOf('rebuildPlan')), [
      'rebuildPlan',
      'advanceOperation',
      'fetchImage',
      'advanceOperation',
      'rebuildGuest',
      'finishOperation',
    ]);
    const action = (await h.cloud.nova.listActions(server.id)).at(-1)!;
    assert.deepEqual(
      [action.action, action.message, action.events.map((e) => [e.event, e.host, e.result])],
      ['rebuild', null, [['compute_rebuild_instance', server.host, 'Success']]],
    );
    assert.equal((await h.cloud.nova.listFaults(server.id)).length, 0);
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });

  test('a stopped server is rebuilt and stopped again (the client path: the workflow begins it)', async () => {
    const server = await h.runBoot(h.request(`rebuild-boot-${++seq}`));
    await h.cloud.nova.updateInstance(server.id, { vmState: 'stopped', powerState: POWER_STATES.SHUTDOWN });
    await h.computeHosts.get(server.host)!.powerOff(server.id);
    const handle = await startRebuild(server.id, { imageRef: h.boot.imageId }, false);
    const result = (await handle.result()) as ServerOperationResult;
    assert.deepEqual([result.vmState, result.powerState], ['stopped', POWER_STATES.SHUTDOWN]);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['stopped', null]);
    assert.equal(await h.computeHosts.get(server.host)!.getPowerState(server.id), POWER_STATES.SHUTDOWN);
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });

  test('the spawn failing: ERROR with the fault, event Error, ports kept for the server; the delete leaks nothing', async () => {
    const server = await h.runBoot(h.request(`rebuild-boot-${++seq}`));
    const portsBefore = await portsOf(server);
    await h.computeHosts.get(server.host)!.setFault('spawn', {
      mode: 'fail',
      errorType: 'ServiceUnavailable',
      message: 'Injected: libvirt could not define the domain',
    });
    const handle = await startRebuild(server.id, { imageRef: otherImage });
    const err = await handle.result().then(
      () => assert.fail('expected the rebuild to fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure, String(err));
    assert.equal(err.cause.type, 'ServiceUnavailable');
    await h.keepHistory('rebuild/rebuild-spawn-fails', handle);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['error', null]);
    const faults = await h.cloud.nova.listFaults(server.id);
    assert.match(faults.at(-1)?.message ?? '', /could not define the domain/);
    const action = (await h.cloud.nova.listActions(server.id)).at(-1)!;
    assert.deepEqual(
      [action.action, action.message, action.events.map((e) => [e.event, e.result])],
      ['rebuild', 'Error', [['compute_rebuild_instance', 'Error']]],
    );
    assert.deepEqual(await portsOf(server), portsBefore);
    await h.computeHosts.get(server.host)!.clearFaults();
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });
});
