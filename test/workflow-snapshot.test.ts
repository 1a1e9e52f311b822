/**
 * snapshotInstance (createImage) on the time-skipping test server with the real activities and the fake
 * driver: the image nova-api created (queued) filled from the server's disk as the host keeps it (active,
 * raw, with the disk's size and checksum and the driver's properties), task_state through
 * image_snapshot_pending → image_snapshot → image_pending_upload → image_uploading → None with vm_state
 * unchanged, the action and its event; and the host's snapshot failing: the image deleted, task_state
 * back, the fault kept, no file left on the host.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { CONTROLLER_QUEUE, deleteWorkflowId, serverOperationWorkflowId } from '../workflows/names';
import type { ServerOperationResult } from '../workflows/types';
import { activityAttempts, assertNoLeaks } from './helpers/boot-assertions';
import { HOSTS, openBootHarness, type BootHarness } from './helpers/boot-harness';

describe('createImage as a workflow', () => {
  let h: BootHarness;
  let seq = 0;
  before(async () => {
    h = await openBootHarness('wf-snapshot');
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

  /** As the servers API does: the queued image, nova-api's begin, then the workflow (which finds it). */
  async function startSnapshot(server: string): Promise<{ handle: WorkflowHandle; imageId: string }> {
    const requestId = `req-snapshot-${++seq}`;
    await h.syncClock();
    const instance = await h.cloud.nova.getInstance(server);
    const image = await h.cloud.glance.createImage({
      name: `snap-${seq}`,
      visibility: 'private',
      ownerProjectId: instance.projectId,
      properties: { instance_uuid: server, image_type: 'snapshot' },
    });
    await h.cloud.nova.beginOperation({
      instanceUuid: server,
      requestId,
      operation: 'snapshot',
      userId: instance.userId,
      projectId: instance.projectId,
    });
    assert.equal((await h.cloud.nova.getInstance(server)).taskState, 'image_snapshot_pending');
    const handle = await h.env.client.workflow.start('snapshotInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: serverOperationWorkflowId('snapshot', server, requestId),
      args: [
        {
          requestId,
          auth: { token: await demoToken() },
          instanceUuid: server,
          snapshot: { imageId: image.id },
        },
      ],
    });
    return { handle, imageId: image.id };
  }

  async function deleteServer(server: string): Promise<void> {
    const handle = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(server),
      args: [{ requestId: `del-${server}`, auth: { token: await demoToken() }, instanceUuid: server }],
    });
    await handle.result();
  }

  async function snapshotFiles(host: string): Promise<string[]> {
    const compute = h.computeHosts.get(host)!;
    return readdir(path.join(compute.hostDir, 'snapshots')).catch(() => []);
  }

  test('the disk uploaded into the image: active, raw, its size and checksum; task_state back to None', async () => {
    const server = await h.runBoot(h.request(`snapshot-boot-${++seq}`));
    const compute = h.computeHosts.get(server.host)!;
    const disk = await readFile(path.join(compute.hostDir, 'instances', server.id, 'disk'));
    const { handle, imageId } = await startSnapshot(server.id);
    const result = (await handle.result()) as ServerOperationResult;
    await h.keepHistory('snapshot/snapshot', handle);
    assert.deepEqual([result.vmState, result.operation], ['active', 'snapshot']);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['active', null]);
    const image = await h.cloud.glance.getImage(imageId, { projectId: instance.projectId, roles: ['admin'] });
    assert.deepEqual(
      [image.status, image.diskFormat, image.containerFormat, image.size, image.checksum],
      ['active', 'qcow2', 'bare', disk.length, createHash('md5').update(disk).digest('hex')],
    );
    assert.deepEqual(
      [image.properties.image_location, image.properties.image_state, image.properties.owner_id],
      ['snapshot', 'available', instance.projectId],
    );
    const steps = (await activityAttempts(handle)).map((a) => a.type);
    assert.deepEqual(steps.slice(steps.indexOf('startOperationEvent')), [
      'startOperationEvent',
      'advanceOperation',
      'advanceOperation',
      'snapshotDisk',
      'advanceOperation',
      'uploadSnapshot',
      'removeSnapshotFile',
      'finishOperation',
    ]);
    const action = (await h.cloud.nova.listActions(server.id)).at(-1)!;
    assert.deepEqual(
      [action.action, action.message, action.events.map((e) => [e.event, e.host, e.result])],
      ['createImage', null, [['compute_snapshot_instance', server.host, 'Success']]],
    );
    assert.deepEqual(await snapshotFiles(server.host), []);
    await deleteServer(server.id);
    await assertNoLeaks(h);
    // The snapshot outlives its server.
    assert.equal(
      (await h.cloud.glance.getImage(imageId, { projectId: instance.projectId, roles: ['admin'] })).status,
      'active',
    );
  });

  test('the host snapshot failing: image deleted, task_state back, the fault kept, no file left', async () => {
    const server = await h.runBoot(h.request(`snapshot-boot-${++seq}`));
    await h.computeHosts.get(server.host)!.setFault('snapshot', {
      mode: 'fail',
      errorType: 'ServiceUnavailable',
      message: 'Injected: the disk could not be read',
    });
    const { handle, imageId } = await startSnapshot(server.id);
    const err = await handle.result().then(
      () => assert.fail('expected the snapshot to fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure, String(err));
    await h.keepHistory('snapshot/snapshot-fails', handle);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['active', null]);
    assert.match((await h.cloud.nova.listFaults(server.id)).at(-1)?.message ?? '', /disk could not be read/);
    const action = (await h.cloud.nova.listActions(server.id)).at(-1)!;
    assert.deepEqual(
      [action.action, action.message, action.events.map((e) => [e.event, e.result])],
      ['createImage', 'Error', [['compute_snapshot_instance', 'Error']]],
    );
    await assert.rejects(
      h.cloud.glance.getImage(imageId, { projectId: instance.projectId, roles: ['admin'] }),
      /No image found/,
    );
    assert.deepEqual(await snapshotFiles(server.host), []);
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });
});
