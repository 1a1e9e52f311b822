/**
 * Issue 15, finding 3 (b): `temporal workflow reset` of a boot or a delete to any of its workflow-task
 * events ends with one consistent outcome and nothing leaked. On a real dev server (the time-skipping one
 * cannot reset) with the boot harness's in-process workers, for each workflow-task-completed event of a
 * completed boot (a fresh boot each time, reset at the same position of its own history):
 *   - the reset run completes, or fails Conflict (its record step, or a guarded step, finds the instance
 *     an earlier run built) and leaves it as it was: ACTIVE on its host, one port, its allocation and
 *     quota, no fault, the leak audit empty (patch reset-leaves-built-instance; before, the runs refused by
 *     a guarded step released everything and the server ended in ERROR: 5 or 6 of 9 positions);
 *   - deleting it then leaves the leak audit empty (ports, IPs, allocations, quota, and on the hosts the
 *     domain, instance directory and VIFs).
 * One run refused by a guarded step is kept as test/histories/reset-leaves-built/boot-reset-after-record.json
 * (before: test/histories/quota-own-claim/boot-reset-mid-build.json and test/histories/boot-reset-mid-build.json,
 * which ended in ERROR).
 * And for each such event of a completed delete: the reset run ends, the server stays deleted, the audit
 * is empty. And a boot still building (no instance uuid in its request), reset to its first workflow task
 * as chaos does: the reset run builds the same instance (its uuid is the first run's id, not a uuid4()
 * the reset reseeds), so the server ends ACTIVE or ERROR, never left in BUILD by the terminated run.
 * And a completed boot reset to its first workflow task: the reset run finds the instance built, fails
 * Conflict and changes nothing (the server, its ports, quota, allocation, guest and VIFs as they were); its
 * history is test/histories/quota-own-claim/boot-reset-completed.json (before quota-undo-own-claim, when a
 * flag skipped the whole saga: test/histories/boot-reset-completed.json).
 * And a delete of a server booted from a delete_on_termination volume, held after its detach (the volume
 * delete failing, retried) and reset to its first workflow task, or terminated and asked again: the new run
 * still deletes the volume (before, the detach had cleared the flag, the new run's listing missed the
 * volume and left it).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import Long from 'long';
import type { temporal } from '@temporalio/proto';
import { CONTROLLER_QUEUE, deleteWorkflowId } from '../workflows/names';
import type { BootResult, DeleteRequest, DeleteResult } from '../workflows/types';
import { keepHistory, openBootHarness, type BootHarness } from './helpers/boot-harness';
import { activityAttempts, waitForStatus } from './helpers/boot-assertions';
import { failureTypeOf } from './helpers/security-harness';
import { pollUntil } from '../lib/poll';

type History = temporal.api.history.v1.IHistory;

function workflowTaskCompletedIds(history: History): number[] {
  return (history.events ?? [])
    .filter((e) => e.workflowTaskCompletedEventAttributes)
    .map((e) => Number(e.eventId));
}

describe('reset to any workflow-task event: one outcome, nothing leaked', { timeout: 30 * 60_000 }, () => {
  let h: BootHarness;

  before(async () => {
    h = await openBootHarness('reset', { temporal: 'dev-server' });
  });
  after(async () => {
    await h?.close();
  });

  /** `temporal workflow reset --event-id`: the new run's handle. */
  const resetTo = async (handle: WorkflowHandle, eventId: number): Promise<WorkflowHandle> => {
    const { runId } = (await h.env.client.workflowService.resetWorkflowExecution({
      namespace: h.env.namespace ?? 'default',
      workflowExecution: { workflowId: handle.workflowId },
      workflowTaskFinishEventId: Long.fromNumber(eventId),
      requestId: randomUUID(),
      reason: `test: reset to event ${eventId}`,
    })) as temporal.api.workflowservice.v1.IResetWorkflowExecutionResponse;
    return h.env.client.workflow.getHandle(handle.workflowId, runId ?? undefined);
  };

  const startDelete = async (instanceUuid: string): Promise<WorkflowHandle> => {
    const requestId = `req-del-${randomUUID()}`;
    const request: DeleteRequest = { requestId, auth: h.demoAuth(), instanceUuid };
    return h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(instanceUuid),
      args: [request],
    });
  };

  const boot = async (label: string): Promise<{ handle: WorkflowHandle; server: BootResult }> => {
    const handle = await h.startBoot(h.request(`req-${label}-${randomUUID()}`));
    return { handle, server: (await handle.result()) as BootResult };
  };

  test('a completed boot, reset to each workflow-task event: stays ACTIVE, then its delete leaves nothing', async () => {
    const first = await boot('reset-probe');
    const positions = workflowTaskCompletedIds(await first.handle.fetchHistory()).length;
    assert.ok(positions >= 5, `a boot has several workflow tasks (${positions})`);
    await (await startDelete(first.server.id)).result();
    let keptLeft = false;
    const outcomes: string[] = [];
    for (let position = 0; position < positions; position++) {
      const { handle, server } = await boot(`reset-${position}`);
      const ids = workflowTaskCompletedIds(await handle.fetchHistory());
      const eventId = ids[Math.min(position, ids.length - 1)] as number;
      const resetRun = await resetTo(handle, eventId);
      const run = await resetRun.result().then(
        () => 'completed',
        (err: unknown) => `failed: ${failureTypeOf(err)}`,
      );
      const instance = await h.cloud.nova.getInstance(server.id);
      const outcome = instance.vmState;
      outcomes.push(`${eventId}:${outcome}(${run})`);
      const where = `reset to event ${eventId} (workflow task ${position + 1} of ${ids.length}, run ${run})`;
      // The reset run re-walks a build an earlier run finished: it completes, or a guarded step refuses it and
      // it leaves the server as it is (patch reset-leaves-built-instance; before, 5-6 of 9 ended in ERROR).
      assert.equal(outcome, 'active', `${where}: vm_state ${outcome}`);
      assert.ok(run === 'completed' || run === 'failed: Conflict', where);
      assert.equal(instance.taskState, null, where);
      assert.equal(instance.host, server.host, where);
      const ports = await h.cloud.neutron.listPorts({ deviceId: server.id });
      assert.equal(ports.length, 1, `${where}: ports ${JSON.stringify(ports)}`);
      assert.deepEqual(await h.audit(), [], `${where}: the ACTIVE server holds what it held, nothing else`);
      assert.ok(await h.cloud.placement.getAllocations(server.id), `${where}: allocation kept`);
      const claims = (await h.cloud.nova.listQuotaClaims()).filter((c) => c.consumerUuid === server.id);
      assert.equal(claims.length, 1, `${where}: quota kept`);
      assert.deepEqual(await h.cloud.nova.listFaults(server.id), [], `${where}: no fault recorded`);
      if (run === 'failed: Conflict' && ids.indexOf(eventId) >= 2 && !keptLeft) {
        await h.keepHistory('reset-leaves-built/boot-reset-after-record', resetRun);
        keptLeft = true;
      }
      const deleted = (await (await startDelete(server.id)).result()) as DeleteResult;
      assert.equal(deleted.outcome, 'deleted', where);
      assert.deepEqual(await h.audit(), [], `${where}: after the delete`);
    }
    // What each position came to (for the report): event id and outcome.
    process.stderr.write(`boot resets: ${outcomes.join(' ')}\n`);
    assert.ok(keptLeft, 'a reset after the record step is refused by a guarded step somewhere');
  });

  test('a completed boot, reset to its first workflow task: fails Conflict, the ACTIVE server untouched', async () => {
    const { handle, server } = await boot('reset-completed');
    const snapshot = async () => ({
      instance: await h.cloud.nova.getInstance(server.id),
      ports: await h.cloud.neutron.listPorts({ deviceId: server.id }),
      quota: (await h.cloud.nova.listQuotaClaims()).filter((c) => c.consumerUuid === server.id),
      allocation: await h.cloud.placement.getAllocations(server.id),
      domains: await h.computeHosts.get(server.host)?.listDomains(),
      vifs: await h.computeHosts.get(server.host)?.listVifs(),
    });
    const built = await snapshot();
    assert.deepEqual([built.instance.vmState, built.ports.length], ['active', 1]);
    const [first] = workflowTaskCompletedIds(await handle.fetchHistory());
    const resetRun = await resetTo(handle, first as number);
    const run = await resetRun.result().then(
      () => 'completed',
      (err: unknown) => `failed: ${failureTypeOf(err)}`,
    );
    // The re-run finds its instance built by an earlier run of the same boot: it builds nothing, changes nothing.
    assert.equal(run, 'failed: Conflict');
    const untouched = await snapshot();
    assert.deepEqual(
      untouched,
      built,
      'the server, its ports, quota, allocation, guest and VIFs are as they were',
    );
    // Its quota claim is the instance's (reserveQuota said so): no undo of it, nor of anything else.
    const undos = (await activityAttempts(resetRun)).filter((a) => a.type.startsWith('release'));
    assert.deepEqual(undos, []);
    await h.keepHistory('quota-own-claim/boot-reset-completed', resetRun);
    const deleted = (await (await startDelete(server.id)).result()) as DeleteResult;
    assert.equal(deleted.outcome, 'deleted');
    assert.deepEqual(await h.audit(), []);
  });

  test('a boot still building, reset to its first workflow task: the same instance ends ACTIVE or ERROR', async () => {
    // Held in its block-device section: cinder-volume takes 4 s (the volume's request key is the instance's).
    h.cloud.cinder.setFaults({ create: { mode: 'slow', delayMs: 4000 } });
    let handle: WorkflowHandle;
    let instanceUuid: string;
    try {
      const request = h.request(`req-reset-building-${randomUUID()}`, { bootVolume: { sizeGb: 1 } });
      assert.equal(request.instanceUuid, undefined, 'the boot picks its own instance uuid');
      handle = await h.startBoot(request);
      const s = await waitForStatus(handle, (st) =>
        st.timings.some((t) => t.step === 'block-devices' && !t.endedAt),
      );
      instanceUuid = s.instanceUuid as string;
      assert.equal((await h.cloud.nova.getInstance(instanceUuid)).vmState, 'building');
      const [first] = workflowTaskCompletedIds(await handle.fetchHistory());
      const resetRun = await resetTo(handle, first as number);
      h.cloud.cinder.setFaults(undefined);
      const run = await resetRun.result().then(
        (r) => `completed ${(r as BootResult).id}`,
        (err: unknown) => `failed: ${failureTypeOf(err)}`,
      );
      const instance = await h.cloud.nova.getInstance(instanceUuid);
      const where = `reset to event ${first} while building (run ${run})`;
      assert.ok(
        instance.vmState === 'active' || instance.vmState === 'error',
        `${where}: ${instance.vmState}`,
      );
      assert.equal(instance.taskState, null, where);
      if (instance.vmState === 'active') assert.equal(run, `completed ${instanceUuid}`, where);
      // The request made one server: no second instance under another uuid.
      const mine = (await h.cloud.nova.listInstances({ allProjects: true })).filter(
        (i) => i.requestId === request.requestId,
      );
      assert.deepEqual(
        mine.map((i) => i.uuid),
        [instanceUuid],
        where,
      );
    } finally {
      h.cloud.cinder.setFaults(undefined);
    }
    const deleted = (await (await startDelete(instanceUuid)).result()) as DeleteResult;
    assert.equal(deleted.outcome, 'deleted');
    assert.deepEqual(await h.audit(), []);
  });

  for (const how of ['reset to its first workflow task', 'terminated, then deleted again'] as const) {
    test(`a delete ${how} after it detached its delete-on-termination volume, before deleting it: the volume is deleted`, async () => {
      const handle = await h.startBoot(
        h.request(`req-reset-dot-${randomUUID()}`, { bootVolume: { sizeGb: 1, deleteOnTermination: true } }),
      );
      const server = (await handle.result()) as BootResult;
      const volumeId = server.volumes[0]?.id ?? '';
      assert.equal((await h.cloud.cinder.getVolume(volumeId)).deleteOnTermination, true);
      // The volume delete fails (Cinder answering 503) and is retried: the run holds between detach and delete.
      h.cloud.cinder.setFaults({ volumeDelete: { mode: 'fail' } });
      let rerun: WorkflowHandle;
      try {
        const del = await startDelete(server.id);
        await pollUntil(
          async () => {
            const volume = await h.cloud.cinder.getVolume(volumeId);
            return volume.status === 'available' && volume.attachments.length === 0 ? volume : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 100, what: `the delete to detach ${volumeId}` },
        );
        if (how === 'reset to its first workflow task') {
          // Chaos's reset: the running delete back to its first workflow task.
          const [first] = workflowTaskCompletedIds(await del.fetchHistory());
          rerun = await resetTo(del, first as number);
        } else {
          await del.terminate('test: stopped between detach and volume delete');
          rerun = await startDelete(server.id);
        }
      } finally {
        h.cloud.cinder.setFaults(undefined);
      }
      const result = (await rerun.result()) as DeleteResult;
      if (how === 'reset to its first workflow task')
        await keepHistory('delete-reset-after-detach', rerun, 'delete-keeps-volume-flag');
      assert.equal(result.outcome, 'deleted');
      assert.deepEqual(result.deletedVolumes, [volumeId]);
      await assert.rejects(h.cloud.cinder.getVolume(volumeId), /NotFound|not be found/);
      const instance = await h.cloud.nova.getInstance(server.id, { includeDeleted: true });
      assert.deepEqual([instance.deleted, instance.vmState, instance.taskState], [true, 'deleted', null]);
      assert.deepEqual(await h.audit(), []);
    });
  }

  test('a completed delete, reset to each workflow-task event: still deleted, nothing leaked', async () => {
    const probe = await boot('delete-probe');
    const probeDelete = await startDelete(probe.server.id);
    await probeDelete.result();
    const positions = workflowTaskCompletedIds(await probeDelete.fetchHistory()).length;
    assert.ok(positions >= 3, `a delete has several workflow tasks (${positions})`);
    const outcomes: string[] = [];
    for (let position = 0; position < positions; position++) {
      const { server } = await boot(`delete-reset-${position}`);
      const del = await startDelete(server.id);
      await del.result();
      const ids = workflowTaskCompletedIds(await del.fetchHistory());
      const eventId = ids[Math.min(position, ids.length - 1)] as number;
      const resetRun = await resetTo(del, eventId);
      const outcome = await resetRun.result().then(
        (r) => (r as DeleteResult).outcome,
        (err: unknown) => `failed: ${failureTypeOf(err)}`,
      );
      outcomes.push(`${eventId}:${outcome}`);
      const where = `delete reset to event ${eventId} (workflow task ${position + 1} of ${ids.length})`;
      const instance = await h.cloud.nova.getInstance(server.id, { includeDeleted: true });
      assert.deepEqual(
        [instance.deleted, instance.vmState, instance.taskState],
        [true, 'deleted', null],
        where,
      );
      assert.deepEqual(await h.audit(), [], where);
    }
    process.stderr.write(`delete resets: ${outcomes.join(' ')}\n`);
  });
});
