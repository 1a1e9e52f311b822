/**
 * Issue 15, finding 3 (a): the reconciler, Nova's _check_instance_build_time and orphan clean-up as a
 * Temporal Schedule. On a real dev server (the time-skipping one has neither schedules nor visibility
 * queries) with the boot harness's in-process workers:
 *   - a boot terminated half-way (instance recorded, quota reserved, allocation claimed, ports bound) stays
 *     in BUILD; one reconciler run puts it in ERROR with a fault and releases everything (empty audit);
 *   - a running boot and a stale task whose workflow is gone: the first is left alone, the second cleared;
 *   - the schedule is registered once (a second controller finds it) and runs reconcileInstances.
 * Histories of the reconciler runs are kept under test/histories/reconciler/ for the replay test.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import {
  ensureReconcilerSchedule,
  RECONCILER_INTERVAL,
  RECONCILER_SCHEDULE_ID,
} from '../lib/reconciler-schedule';
import { CONTROLLER_QUEUE } from '../workflows/names';
import type { ReconcileResult } from '../workflows/reconciler';
import { pollUntil } from '../lib/poll';
import { imageVolume, waitForStatus } from './helpers/boot-assertions';
import { HOSTS, openBootHarness, type BootHarness } from './helpers/boot-harness';

describe('the reconciler finishes servers whose workflow is gone', { timeout: 10 * 60_000 }, () => {
  let h: BootHarness;

  before(async () => {
    h = await openBootHarness('reconcile', { temporal: 'dev-server' });
  });
  after(async () => {
    await h?.close();
  });

  const reconcile = async (keep?: string): Promise<ReconcileResult> => {
    const handle = await h.env.client.workflow.start('reconcileInstances', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: `reconcile-test-${randomUUID()}`,
      args: [{ graceMs: 0 }],
    });
    const result = (await handle.result()) as ReconcileResult;
    if (keep) await h.keepHistory(keep.includes('/') ? keep : `reconciler/${keep}`, handle);
    return result;
  };

  test('terminate mid-boot: BUILD until the reconciler runs, then ERROR with a fault and nothing leaked', async () => {
    // No compute worker: the boot stops at the host's first steps, with everything before them done.
    await h.setRunningHosts([]);
    let uuid: string;
    try {
      const request = h.request(`req-terminated-${randomUUID()}`, { timeouts: { hostPickupMs: 600_000 } });
      const handle = await h.startBoot(request);
      const status = await waitForStatus(handle, (s) => s.host !== null && s.instanceUuid !== null);
      uuid = status.instanceUuid as string;
      // neutron's half is done (ports created and bound to the host); the host's plug waits for a worker.
      await pollUntil(
        async () => {
          const ports = await h.cloud.neutron.listPorts({ deviceId: uuid });
          return ports.length > 0 && ports.every((p) => p.bindingHostId === status.host) ? ports : undefined;
        },
        { timeoutMs: 60_000, what: 'the boot ports bound to its host' },
      );
      await handle.terminate('test: an operator terminates the boot');
    } finally {
      await h.setRunningHosts(HOSTS);
    }

    const before = await h.cloud.nova.getInstance(uuid);
    assert.equal(before.vmState, 'building', 'terminated, the boot leaves its server in BUILD');
    assert.ok((await h.audit()).length > 0, 'and its resources held');

    const result = await reconcile('orphaned-build');
    assert.deepEqual(result.failedBuilds, [uuid]);
    assert.deepEqual(result.unfinished, []);
    const after = await h.cloud.nova.getInstance(uuid);
    assert.deepEqual([after.vmState, after.taskState, after.host], ['error', null, null]);
    const [fault] = await h.cloud.nova.listFaults(uuid);
    assert.match(fault?.message ?? '', /its workflow boot-req-terminated-.* is no longer running/);
    assert.deepEqual(await h.audit(), []);
    assert.deepEqual(await h.cloud.neutron.listPorts({ deviceId: uuid }), []);
    // Done: the next run finds nothing.
    assert.deepEqual(await reconcile(), { failedBuilds: [], clearedTasks: [], unfinished: [] });
  });

  test('terminate mid-boot from an existing delete_on_termination volume: the reconciler deletes it', async () => {
    const volumeId = await imageVolume(h, `reconcile-existing-${randomUUID()}`);
    await h.setRunningHosts([]);
    let uuid: string;
    try {
      const request = h.request(`req-terminated-volume-${randomUUID()}`, {
        timeouts: { hostPickupMs: 600_000 },
        bootVolume: { sizeGb: 1, volumeId, deleteOnTermination: true },
      });
      const handle = await h.startBoot(request);
      const status = await waitForStatus(handle, (s) => s.host !== null && s.instanceUuid !== null);
      uuid = status.instanceUuid as string;
      // cinder's attach is done (reserved for the server); the host's connect waits for a worker.
      await pollUntil(
        async () => {
          const attachments = await h.cloud.cinder.listAttachments({ volumeId, instanceUuid: uuid });
          return attachments.length > 0 ? attachments : undefined;
        },
        { timeoutMs: 60_000, what: 'the volume reserved for the boot' },
      );
      await handle.terminate('test: an operator terminates the boot');
    } finally {
      await h.setRunningHosts(HOSTS);
    }
    assert.equal((await h.cloud.cinder.getVolume(volumeId)).deleteOnTermination, true);

    // Recorded with the patch failed-build-deletes-existing-volume (reconciler/orphaned-build: before).
    const result = await reconcile('reconciler-deletes-volume/orphaned-build-existing-volume');
    assert.deepEqual(result.failedBuilds, [uuid]);
    const after = await h.cloud.nova.getInstance(uuid);
    assert.deepEqual([after.vmState, after.taskState], ['error', null]);
    // As a failed build's undo: Nova's _cleanup_volumes deletes the delete_on_termination volume.
    await assert.rejects(h.cloud.cinder.getVolume(volumeId), { type: 'NotFound' });
    assert.deepEqual(await h.audit(), []);
  });

  test('a running boot is left alone; a stale task with no workflow is cleared', async () => {
    const server = await h.runBoot(h.request(`req-active-${randomUUID()}`));
    // A delete whose workflow vanished after it set the task (as a terminated delete leaves it).
    const instance = await h.cloud.nova.getInstance(server.id);
    await h.cloud.nova.conductor.beginDelete({
      instanceUuid: server.id,
      requestId: `req-gone-${randomUUID()}`,
      userId: instance.userId,
      projectId: instance.projectId,
    });
    await h.setRunningHosts([]);
    const building = await h.startBoot(
      h.request(`req-running-${randomUUID()}`, { timeouts: { hostPickupMs: 600_000 } }),
    );
    // Any point after the host is picked: the host's steps wait for a worker (networking and the block
    // devices run side by side, so no single task_state is sure to be seen).
    const running = await waitForStatus(building, (s) => s.host !== null && s.instanceUuid !== null);
    try {
      const result = await reconcile('stale-task');
      assert.deepEqual(result, { failedBuilds: [], clearedTasks: [server.id], unfinished: [] });
      const cleared = await h.cloud.nova.getInstance(server.id);
      assert.deepEqual([cleared.vmState, cleared.taskState], ['error', null]);
      assert.equal((await h.cloud.nova.getInstance(running.instanceUuid as string)).vmState, 'building');
    } finally {
      await building.cancel();
      await h.setRunningHosts(HOSTS);
      await building.result().catch((err: unknown) => assert.ok(err instanceof WorkflowFailedError));
    }
  });

  test('the schedule is registered once, runs reconcileInstances every minute, and shows in the Web UI', async () => {
    assert.equal(await ensureReconcilerSchedule(h.env.client), 'created');
    assert.equal(await ensureReconcilerSchedule(h.env.client), 'exists');
    const schedule = h.env.client.schedule.getHandle(RECONCILER_SCHEDULE_ID);
    const described = await schedule.describe();
    assert.equal(described.action.type, 'startWorkflow');
    assert.equal(described.action.workflowType, 'reconcileInstances');
    assert.equal(described.action.taskQueue, CONTROLLER_QUEUE);
    assert.equal(described.spec.intervals?.[0]?.every, 60_000);
    assert.equal(RECONCILER_INTERVAL, '1 minute');
    await schedule.trigger();
    const ran = await (async () => {
      for (let i = 0; i < 100; i++) {
        const { info } = await schedule.describe();
        const started = info.recentActions.at(-1)?.action;
        if (started) return started.workflow.workflowId;
        await new Promise((r) => setTimeout(r, 200));
      }
      return undefined;
    })();
    assert.ok(ran, 'the triggered run started');
    const result = (await h.env.client.workflow.getHandle(ran).result()) as ReconcileResult;
    assert.deepEqual(result.unfinished, []);
    await schedule.delete();
  });
});
