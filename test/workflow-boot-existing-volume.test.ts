/**
 * createInstance booting from an existing volume (bootVolume.volumeId, the compute API's source_type volume):
 * the volume is attached as the root disk instead of one made from the image, its delete_on_termination is
 * recorded; a build that fails for good deletes it when the boot asked for delete_on_termination, as Nova's
 * _cleanup_volumes does on a failed build, and a server's delete keeps it (with the reason in its result)
 * when the user has snapshots of it.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROLLER_QUEUE, deleteWorkflowId } from '../workflows/names';
import type { BootResult, DeleteRequest, DeleteResult } from '../workflows/types';
import { HOSTS, openBootHarness, type BootHarness } from './helpers/boot-harness';
import {
  activitySummaries,
  assertActive,
  assertAttachedOnEachHost,
  assertErrored,
  assertNoLeaks,
  expectBootFailure,
  imageVolume,
  status,
} from './helpers/boot-assertions';

describe('createInstance from an existing volume', () => {
  let h: BootHarness;
  before(async () => {
    h = await openBootHarness('wf-existing-volume');
  });
  after(async () => {
    await h?.close();
  });
  afterEach(async () => {
    for (const compute of h.computeHosts.values()) await compute.clearFaults('spawn');
  });

  test('the volume is the root disk: nothing created, in-use on the host, kept available after the delete', async () => {
    const volumeId = await imageVolume(h, 'existing-root');
    const handle = await h.startBoot(
      h.request('from-existing-volume', { bootVolume: { sizeGb: 1, volumeId, deleteOnTermination: false } }),
    );
    const server = (await handle.result()) as BootResult;
    await h.keepHistory('existing-volume/boot', handle);
    await assertActive(h, server);
    assert.deepEqual(
      server.volumes.map((v) => [v.id, v.device, v.deleteOnTermination]),
      [[volumeId, 'vdb', false]],
    );
    const summaries = await activitySummaries(handle);
    assert.ok(!summaries.some((s) => /create .* volume from image/.test(s)), 'no volume created');
    assert.ok(!summaries.some((s) => s.startsWith('glance: fetch')), 'no image fetched to the host');
    const volume = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(volume.status, 'in-use');
    assert.equal(volume.attachments[0]?.instanceUuid, server.id);
    assert.equal(volume.attachments[0]?.attachedHost, server.host);
    const quota = await h.cloud.nova.getQuotaUsage(h.boot.demo.projectId);
    assert.equal(quota.volumes.inUse, 0, 'the boot claimed no volume quota');
    await assertNoLeaks(h);

    const request: DeleteRequest = {
      requestId: 'delete-existing',
      auth: h.demoAuth(),
      instanceUuid: server.id,
    };
    const deleted = (await h.env.client.workflow.execute('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(server.id),
      args: [request],
    })) as DeleteResult;
    assert.deepEqual(deleted.deletedVolumes, []);
    const kept = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(kept.status, 'available');
    assert.deepEqual(kept.attachments, []);
    await assertNoLeaks(h);
  });

  test('every host failing to spawn: MaxRetriesExceeded, the delete_on_termination volume deleted', async () => {
    for (const compute of h.computeHosts.values()) {
      await compute.setFault('spawn', {
        mode: 'fail',
        message: 'Injected: the hypervisor refused the guest',
      });
    }
    const volumeId = await imageVolume(h, 'existing-root-fails');
    const handle = await h.startBoot(
      h.request('existing-volume-fails', { bootVolume: { sizeGb: 1, volumeId, deleteOnTermination: true } }),
    );
    await expectBootFailure(handle, 'MaxRetriesExceeded');
    // Recorded with the patch failed-build-deletes-existing-volume (existing-volume/all-hosts-fail: before).
    await h.keepHistory('existing-volume-deleted/all-hosts-fail', handle);
    const s = await status(handle);
    assert.deepEqual([...s.triedHosts].sort(), [...HOSTS].sort());
    assert.ok(s.instanceUuid);
    await assertErrored(h.cloud, s.instanceUuid, /Exceeded maximum number of retries/);
    // Each reschedule only detached it; the build's undo deleted it (Nova's _cleanup_volumes).
    await assertAttachedOnEachHost(h, s.instanceUuid, HOSTS);
    await assert.rejects(h.cloud.cinder.getVolume(volumeId), { type: 'NotFound' });
    const summaries = await activitySummaries(handle);
    assert.equal(summaries.filter((line) => line === `cinder: delete volume ${volumeId}`).length, 1);
    await assertNoLeaks(h);
    for (const host of HOSTS) await h.cloud.nova.recordBuildSuccess(host);
  });

  test("a server's delete keeps its delete_on_termination volume with snapshots, and says so", async () => {
    const volumeId = await imageVolume(h, 'existing-root-snapshotted');
    const handle = await h.startBoot(
      h.request('existing-volume-snapshotted', {
        bootVolume: { sizeGb: 1, volumeId, deleteOnTermination: true },
      }),
    );
    const server = (await handle.result()) as BootResult;
    await assertActive(h, server);
    const projectId = h.boot.demo.projectId;
    const snapshot = await h.cloud.cinder.snapshots.create({ volumeId, projectId, force: true });
    for (let i = 0; i < 200 && (await h.cloud.cinder.snapshots.get(snapshot.id)).status === 'creating'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const request: DeleteRequest = {
      requestId: 'delete-snapshotted',
      auth: h.demoAuth(),
      instanceUuid: server.id,
    };
    const deleteHandle = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(server.id),
      args: [request],
    });
    const deleted = (await deleteHandle.result()) as DeleteResult;
    // Recorded with the patch delete-reports-kept-volumes.
    await h.keepHistory('delete-kept-volume/delete-snapshotted', deleteHandle);
    assert.equal(deleted.outcome, 'deleted');
    assert.deepEqual(deleted.deletedVolumes, []);
    assert.deepEqual(deleted.keptVolumes, [
      { id: volumeId, reason: `Volume ${volumeId} has snapshots (${snapshot.id}).` },
    ]);
    const kept = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(kept.status, 'available');
    assert.deepEqual(kept.attachments, []);
    await assertNoLeaks(h);
    await h.cloud.cinder.deleteVolume(volumeId, { cascade: true });
    await assertNoLeaks(h);
  });
});
