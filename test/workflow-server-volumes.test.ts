/**
 * attachServerVolume / detachServerVolume on the time-skipping test server with the real activities: the
 * success paths, each step failing (the host's connect and disconnect, the host down, Cinder refusing), a
 * cancelled attach and detach, a delete during an attach and during a detach, and the detach refusals;
 * Cinder's attachment update, attachment complete and begin_detaching failing; an attach and a detach
 * refused while another operation runs on the server. After each: the volume's Cinder state, the host's
 * connections, Nova's instance actions, and the leak audit empty.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { pollUntil } from '../lib/poll';
import type { CallFault } from '../cloud/cinder/types';
import {
  CONTROLLER_QUEUE,
  deleteWorkflowId,
  serverOperationWorkflowId,
  volumeAttachWorkflowId,
  volumeDetachWorkflowId,
} from '../workflows/names';
import type { BootResult, DeleteResult, VolumeActionResult } from '../workflows/types';
import { HOSTS, openBootHarness, type BootHarness } from './helpers/boot-harness';
import { activityAttempts, assertNoLeaks } from './helpers/boot-assertions';

describe('volumes on a running server', () => {
  let h: BootHarness;
  let server: BootResult;
  before(async () => {
    h = await openBootHarness('wf-volumes');
    server = await h.runBoot(h.request('vol-server'));
  });
  after(async () => {
    await h?.close();
  });
  afterEach(async () => {
    h.cloud.cinder.setFaults(undefined);
    for (const compute of h.computeHosts.values()) await compute.clearFaults();
    await h.setRunningHosts(HOSTS);
  });

  async function newVolume(name: string): Promise<string> {
    const { projectId } = await h.cloud.nova.getInstance(server.id);
    const volume = await h.cloud.cinder.createVolume({ requestKey: name, projectId, sizeGb: 1, name });
    await h.cloud.cinder.waitForVolume(volume.id);
    return volume.id;
  }

  function start(
    kind: 'attach' | 'detach',
    requestId: string,
    volumeId: string,
    instanceUuid = server.id,
    hostPickupMs?: number,
  ): Promise<WorkflowHandle> {
    return h.syncClock().then(() =>
      h.env.client.workflow.start(kind === 'attach' ? 'attachServerVolume' : 'detachServerVolume', {
        taskQueue: CONTROLLER_QUEUE,
        workflowId:
          kind === 'attach'
            ? volumeAttachWorkflowId(instanceUuid, requestId)
            : volumeDetachWorkflowId(instanceUuid, requestId),
        args: [
          {
            requestId,
            auth: h.demoAuth(),
            instanceUuid,
            volumeId,
            ...(hostPickupMs ? { timeouts: { hostPickupMs } } : {}),
          },
        ],
      }),
    );
  }

  /** The workflow's typed failure (its ApplicationFailure type and message). */
  async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
    const err = await handle.result().then(
      () => assert.fail('the workflow should have failed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    assert.ok(err.cause instanceof ApplicationFailure);
    return err.cause;
  }

  async function connectionsOf(volumeId: string) {
    const all = await Promise.all([...h.computeHosts.values()].map((c) => c.listVolumeConnections()));
    return all.flat().filter((c) => c.volumeId === volumeId);
  }

  async function assertAvailableAndFree(volumeId: string) {
    const volume = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(volume.status, 'available');
    assert.equal(volume.attachStatus, 'detached');
    assert.deepEqual(volume.attachments, []);
    assert.deepEqual(await h.cloud.cinder.listAttachments({ volumeId }), []);
    assert.deepEqual(await connectionsOf(volumeId), []);
  }

  async function actionOf(instanceUuid: string, requestId: string) {
    const action = (await h.cloud.nova.listActions(instanceUuid)).find((a) => a.requestId === requestId);
    assert.ok(action, `no instance action for ${requestId}`);
    return action;
  }

  test('attach then detach: in-use on the host as vdb with Nova actions, then available and disconnected', async () => {
    const volumeId = await newVolume('vol-ok');
    const attach = await start('attach', 'attach-ok', volumeId);
    const attached = (await attach.result()) as VolumeActionResult;
    await h.keepHistory('volumes/attach', attach);
    assert.equal(attached.host, server.host);
    assert.equal(attached.device, 'vdb');

    const inUse = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(inUse.status, 'in-use');
    assert.equal(inUse.attachments[0]?.instanceUuid, server.id);
    assert.equal(inUse.attachments[0]?.attachedHost, server.host);
    const [connection] = await connectionsOf(volumeId);
    assert.equal(connection?.instanceUuid, server.id);
    assert.equal(connection?.device, 'vdb');
    assert.equal((await h.computeHosts.get(server.host)?.listVolumeConnections())?.length, 1);
    const action = await actionOf(server.id, 'attach-ok');
    assert.equal(action.action, 'attach_volume');
    assert.equal(action.message, null);
    assert.deepEqual(
      action.events.map((e) => [e.event, e.host, e.result]),
      [['compute_attach_volume', server.host, 'Success']],
    );
    // The server is left as it was: no task, still ACTIVE.
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.equal(instance.taskState, null);
    assert.equal(instance.vmState, 'active');
    await assertNoLeaks(h);

    // Deleting an attached volume is refused, as Cinder refuses it.
    await assert.rejects(h.cloud.cinder.deleteVolume(volumeId), /Volume status must be available or error/);

    const detach = await start('detach', 'detach-ok', volumeId);
    const detached = (await detach.result()) as VolumeActionResult;
    await h.keepHistory('volumes/detach', detach);
    assert.equal(detached.attachmentId, attached.attachmentId);
    await assertAvailableAndFree(volumeId);
    const detachAction = await actionOf(server.id, 'detach-ok');
    assert.equal(detachAction.action, 'detach_volume');
    assert.deepEqual(
      detachAction.events.map((e) => [e.event, e.result]),
      [['compute_detach_volume', 'Success']],
    );
    await assertNoLeaks(h);
    assert.equal(await h.cloud.cinder.deleteVolume(volumeId), true);
  });

  test('the host failing to connect: the attach undoes itself, the volume available with no attachment', async () => {
    const volumeId = await newVolume('vol-connect-fails');
    const compute = h.computeHosts.get(server.host);
    assert.ok(compute);
    await compute.setFault('connectVolume', {
      mode: 'fail',
      errorType: 'ServiceUnavailable',
      message: 'Injected: os-brick could not connect the volume',
    });
    const attach = await start('attach', 'attach-connect-fails', volumeId);
    const failure = await failureOf(attach);
    await h.keepHistory('volumes/attach-connect-fails', attach);
    assert.equal(failure.type, 'ServiceUnavailable');
    assert.match(failure.message, /os-brick could not connect/);
    // Three attempts on the host (the compute ops policy), then the undo.
    assert.equal((await compute.listFaults()).connectVolume?.hits, 3);
    await assertAvailableAndFree(volumeId);
    const action = await actionOf(server.id, 'attach-connect-fails');
    assert.equal(action.message, 'Error');
    assert.equal(action.events[0]?.result, 'Error');
    assert.match(action.events[0]?.details ?? '', /ServiceUnavailable: Injected/);
    await assertNoLeaks(h);
  });

  test('the host down (nobody on compute@<host>): the attach gives up after the pickup bound and undoes Cinder', async () => {
    const volumeId = await newVolume('vol-host-down');
    await h.setRunningHosts(HOSTS.filter((host) => host !== server.host));
    const attach = await start('attach', 'attach-host-down', volumeId, server.id, 3000);
    const failure = await failureOf(attach);
    await h.keepHistory('volumes/attach-host-down', attach);
    assert.equal(failure.type, 'RescheduledException');
    assert.match(failure.message, /did not pick up attachGuestVolume/);
    await h.setRunningHosts(HOSTS);
    await assertAvailableAndFree(volumeId);
    await assertNoLeaks(h);
  });

  test('Cinder refusing the reserve (the volume is in use by another server): 400, nothing changed', async () => {
    const other = await h.runBoot(h.request('vol-other-server'));
    const volumeId = await newVolume('vol-elsewhere');
    await (await start('attach', 'attach-elsewhere', volumeId, other.id)).result();
    const attach = await start('attach', 'attach-taken', volumeId);
    const failure = await failureOf(attach);
    assert.equal(failure.type, 'InvalidVolume');
    assert.match(failure.message, /^Invalid volume: /);
    const volume = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(volume.status, 'in-use');
    assert.deepEqual(
      volume.attachments.map((a) => a.instanceUuid),
      [other.id],
    );
    assert.equal((await actionOf(server.id, 'attach-taken')).message, 'Error');

    // Detaching it from a server it is not attached to: NotFound, Nova's wording; still in use.
    const detach = await start('detach', 'detach-elsewhere', volumeId);
    const refused = await failureOf(detach);
    assert.equal(refused.type, 'NotFound');
    assert.equal(refused.message, `Instance ${server.id} is not attached to volume ${volumeId}`);
    assert.equal((await h.cloud.cinder.getVolume(volumeId)).status, 'in-use');
    await (await start('detach', 'detach-from-other', volumeId, other.id)).result();
    await assertAvailableAndFree(volumeId);
    await assertNoLeaks(h);
  });

  test('the host failing to disconnect: the detach rolls back, the volume in-use and still connected', async () => {
    const volumeId = await newVolume('vol-disconnect-fails');
    await (await start('attach', 'attach-before-failed-detach', volumeId)).result();
    const compute = h.computeHosts.get(server.host);
    assert.ok(compute);
    await compute.setFault('disconnectVolume', { mode: 'fail', message: 'Injected: device busy' });
    const detach = await start('detach', 'detach-fails', volumeId);
    const failure = await failureOf(detach);
    await h.keepHistory('volumes/detach-fails', detach);
    assert.match(failure.message, /device busy/);
    const volume = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(volume.status, 'in-use');
    assert.equal(volume.attachments.length, 1);
    assert.equal((await connectionsOf(volumeId)).length, 1);
    assert.equal((await actionOf(server.id, 'detach-fails')).message, 'Error');
    await assertNoLeaks(h);

    await compute.clearFaults();
    await (await start('detach', 'detach-after-failure', volumeId)).result();
    await assertAvailableAndFree(volumeId);
  });

  test('the root volume of a boot-from-volume server cannot be detached (BadRequest), nothing changes', async () => {
    const bfv = await h.runBoot(h.request('vol-bfv', { bootVolume: { sizeGb: 1 } }));
    const rootId = bfv.volumes[0]?.id;
    assert.ok(rootId);
    const detach = await start('detach', 'detach-root', rootId, bfv.id);
    const failure = await failureOf(detach);
    assert.equal(failure.type, 'BadRequest');
    assert.equal(failure.message, 'Cannot detach a root device volume');
    assert.equal((await h.cloud.cinder.getVolume(rootId)).status, 'in-use');
    await assertNoLeaks(h);
  });

  test('a cancelled attach (held on the host) undoes itself: available, nothing connected', async () => {
    const volumeId = await newVolume('vol-cancel');
    const compute = h.computeHosts.get(server.host);
    assert.ok(compute);
    await compute.setFault('connectVolume', { mode: 'hang' });
    const attach = await start('attach', 'attach-cancelled', volumeId);
    await pollUntil(async () => ((await compute.listFaults()).connectVolume?.hits ? true : undefined), {
      timeoutMs: 30_000,
      what: 'the connect to be held on the host',
    });
    await attach.cancel();
    await assert.rejects(attach.result(), WorkflowFailedError);
    await compute.clearFaults();
    await h.keepHistory('volumes/attach-cancelled', attach);
    await assertAvailableAndFree(volumeId);
    assert.equal((await actionOf(server.id, 'attach-cancelled')).message, 'Error');
    await assertNoLeaks(h);
  });

  function heldOn(
    compute: { listFaults(): Promise<Record<string, { hits?: number } | undefined>> },
    op: string,
  ) {
    return pollUntil(async () => ((await compute.listFaults())[op]?.hits ? true : undefined), {
      timeoutMs: 30_000,
      what: `the ${op} to be held on the host`,
    });
  }

  /** A detach held in the host's disconnect, then cancelled: rolled back, still in-use and connected. */
  {
    const name = 'cancelled';
    test(`a detach interrupted in the host's disconnect (${name}): rolled back, in-use, still connected`, async () => {
      const volumeId = await newVolume(`vol-detach-${name.replace(/ /g, '-')}`);
      const attached = (await (
        await start('attach', `attach-before-${name}`, volumeId)
      ).result()) as VolumeActionResult;
      const compute = h.computeHosts.get(server.host);
      assert.ok(compute);
      await compute.setFault('disconnectVolume', { mode: 'hang' });
      const requestId = `detach-${name.replace(/ /g, '-')}`;
      const detach = await start('detach', requestId, volumeId, server.id, 3000);
      await heldOn(compute, 'disconnectVolume');
      await detach.cancel();
      const err = await detach.result().then(
        () => assert.fail('the detach should have failed'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), /cancel/i);
      await compute.clearFaults();
      await h.setRunningHosts(HOSTS);
      const volume = await h.cloud.cinder.getVolume(volumeId);
      assert.equal(volume.status, 'in-use');
      assert.deepEqual(
        volume.attachments.map((a) => [a.id, a.instanceUuid]),
        [[attached.attachmentId, server.id]],
      );
      assert.equal((await connectionsOf(volumeId)).length, 1);
      const action = await actionOf(server.id, requestId);
      assert.deepEqual([action.message, action.events.map((e) => e.result)], ['Error', ['Error']]);
      const instance = await h.cloud.nova.getInstance(server.id);
      assert.deepEqual([instance.vmState, instance.taskState], ['active', null]);
      await assertNoLeaks(h);
      await (await start('detach', `${requestId}-again`, volumeId)).result();
      await assertAvailableAndFree(volumeId);
    });
  }

  test('the host down (nobody on compute@<host>) for a detach: rolled back after the pickup bound, still in-use', async () => {
    const volumeId = await newVolume('vol-detach-host-down');
    const attached = (await (
      await start('attach', 'attach-before-host-down', volumeId)
    ).result()) as VolumeActionResult;
    await h.setRunningHosts(HOSTS.filter((host) => host !== server.host));
    const detach = await start('detach', 'detach-host-down', volumeId, server.id, 3000);
    const failure = await failureOf(detach);
    assert.match(failure.message, /did not pick up disconnectGuestVolume .* the host is down/);
    await h.setRunningHosts(HOSTS);
    const volume = await h.cloud.cinder.getVolume(volumeId);
    assert.equal(volume.status, 'in-use');
    assert.deepEqual(
      volume.attachments.map((a) => a.id),
      [attached.attachmentId],
    );
    assert.equal((await connectionsOf(volumeId)).length, 1);
    const action = await actionOf(server.id, 'detach-host-down');
    assert.deepEqual([action.message, action.events.map((e) => e.result)], ['Error', ['Error']]);
    await assertNoLeaks(h);
    await (await start('detach', 'detach-host-back', volumeId)).result();
    await assertAvailableAndFree(volumeId);
  });

  test('a delete during a detach wins: the server deleted, the volume available, nothing connected', async () => {
    const victim = await h.runBoot(h.request('vol-detach-victim'));
    const volumeId = await newVolume('vol-detach-delete-race');
    await (await start('attach', 'attach-before-delete', volumeId, victim.id)).result();
    const compute = h.computeHosts.get(victim.host);
    assert.ok(compute);
    await compute.setFault('disconnectVolume', { mode: 'hang', times: 1 });
    const detach = await start('detach', 'detach-during-delete', volumeId, victim.id);
    await heldOn(compute, 'disconnectVolume');
    const del = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: 'delete-during-detach',
      args: [{ requestId: 'delete-during-detach', auth: h.demoAuth(), instanceUuid: victim.id }],
    });
    // Only the detach's disconnect is held (times 1): the delete's tear-down on the host goes through.
    assert.equal(((await del.result()) as DeleteResult).outcome, 'deleted');
    await compute.clearFaults();
    // The detach either finished before the delete's tear-down or met the server gone: either way undone.
    await detach.result().catch(() => undefined);
    assert.equal((await h.cloud.nova.getInstance(victim.id, { includeDeleted: true })).deleted, true);
    await assertAvailableAndFree(volumeId);
    await assertNoLeaks(h);
  });

  test('a delete during an attach wins: the server deleted, the attach undone, the volume available', async () => {
    const victim = await h.runBoot(h.request('vol-victim'));
    const volumeId = await newVolume('vol-delete-race');
    const compute = h.computeHosts.get(victim.host);
    assert.ok(compute);
    await compute.setFault('connectVolume', { mode: 'hang' });
    const attach = await start('attach', 'attach-during-delete', volumeId, victim.id);
    await pollUntil(async () => ((await compute.listFaults()).connectVolume?.hits ? true : undefined), {
      timeoutMs: 30_000,
      what: 'the connect to be held on the host',
    });
    const del = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: 'delete-during-attach',
      args: [{ requestId: 'delete-during-attach', auth: h.demoAuth(), instanceUuid: victim.id }],
    });
    assert.equal(((await del.result()) as DeleteResult).outcome, 'deleted');
    await compute.clearFaults();
    const failure = await failureOf(attach);
    await h.keepHistory('volumes/attach-during-delete', attach);
    // The attachment the delete removed cannot be completed (or the server is gone): either way undone.
    assert.match(failure.type ?? '', /^(InvalidVolume|NotFound|Conflict)$/);
    assert.equal((await h.cloud.nova.getInstance(victim.id, { includeDeleted: true })).deleted, true);
    await assertAvailableAndFree(volumeId);
    await assertNoLeaks(h);
  });

  /** The server as the failed or refused step left it: ACTIVE, no task. */
  async function assertServerUnchanged(instanceUuid = server.id) {
    const instance = await h.cloud.nova.getInstance(instanceUuid);
    assert.deepEqual([instance.vmState, instance.taskState], ['active', null]);
  }

  /** Cinder failing a step of the attach (its API answering 503 through the retries): undone, available. */
  const ATTACH_CINDER_FAILURES = [
    {
      call: 'attachmentUpdate',
      activity: 'connectAttachment',
      what: 'the attachment update (the connector)',
      hostCalls: [],
    },
    {
      call: 'attachmentComplete',
      activity: 'completeAttachment',
      what: 'the attachment complete, after the host connected',
      hostCalls: ['attachGuestVolume', 'disconnectVolume'],
    },
  ] as const satisfies ReadonlyArray<{
    call: CallFault;
    activity: string;
    what: string;
    hostCalls: readonly string[];
  }>;

  for (const { call, activity, what, hostCalls } of ATTACH_CINDER_FAILURES) {
    test(`Cinder failing ${what}: the attach undoes itself, available, nothing connected, event Error`, async () => {
      const volumeId = await newVolume(`vol-${call}-fails`);
      h.cloud.cinder.setFaults({ [call]: { mode: 'fail', message: `Injected: cinder-api failed ${call}` } });
      const requestId = `attach-${call}-fails`;
      const attach = await start('attach', requestId, volumeId);
      const failure = await failureOf(attach);
      assert.equal(failure.type, 'ServiceUnavailable');
      assert.match(failure.message, new RegExp(`cinder-api failed ${call}`));
      // Cinder's call ran out of its retries (the last of 7 attempts); the host connected (and was
      // disconnected by the undo) only when the failure came after it.
      const attempts = await activityAttempts(attach);
      assert.deepEqual(
        attempts.filter((a) => a.type === activity).map((a) => a.attempt),
        [7],
      );
      assert.deepEqual(
        attempts
          .filter((a) => a.type === 'attachGuestVolume' || a.type === 'disconnectVolume')
          .map((a) => a.type),
        hostCalls,
      );
      h.cloud.cinder.setFaults(undefined);
      await assertAvailableAndFree(volumeId);
      const action = await actionOf(server.id, requestId);
      assert.equal(action.message, 'Error');
      assert.deepEqual(
        action.events.map((e) => [e.event, e.host, e.result]),
        [['compute_attach_volume', server.host, 'Error']],
      );
      assert.match(action.events[0]?.details ?? '', /^ServiceUnavailable: Injected/);
      await assertServerUnchanged();
      await assertNoLeaks(h);
      // Nothing stuck: the same volume attaches and detaches once Cinder answers again.
      await (await start('attach', `${requestId}-again`, volumeId)).result();
      await (await start('detach', `detach-${call}-again`, volumeId)).result();
      await assertAvailableAndFree(volumeId);
    });
  }

  test('Cinder failing begin_detaching: the detach stops there, in-use, attached and connected, event Error', async () => {
    const volumeId = await newVolume('vol-begin-detaching-fails');
    const attached = (await (
      await start('attach', 'attach-before-begin-detaching', volumeId)
    ).result()) as VolumeActionResult;
    h.cloud.cinder.setFaults({
      beginDetaching: { mode: 'fail', message: 'Injected: cinder-api failed os-begin_detaching' },
    });
    const failure = await failureOf(await start('detach', 'detach-begin-fails', volumeId));
    assert.equal(failure.type, 'ServiceUnavailable');
    assert.match(failure.message, /cinder-api failed os-begin_detaching/);
    h.cloud.cinder.setFaults(undefined);
    const volume = await h.cloud.cinder.getVolume(volumeId);
    assert.deepEqual([volume.status, volume.attachStatus], ['in-use', 'attached']);
    assert.deepEqual(
      volume.attachments.map((a) => [a.id, a.instanceUuid]),
      [[attached.attachmentId, server.id]],
    );
    assert.deepEqual(
      (await connectionsOf(volumeId)).map((c) => [c.instanceUuid, c.device]),
      [[server.id, attached.device]],
    );
    const action = await actionOf(server.id, 'detach-begin-fails');
    assert.deepEqual(
      [action.message, action.events.map((e) => [e.event, e.result])],
      ['Error', [['compute_detach_volume', 'Error']]],
    );
    await assertServerUnchanged();
    await assertNoLeaks(h);
    await (await start('detach', 'detach-after-begin-fails', volumeId)).result();
    await assertAvailableAndFree(volumeId);
  });

  test('an attach and a detach while a stop runs on the server: refused by its task_state (409), nothing changed', async () => {
    const busy = await h.runBoot(h.request('vol-busy-server'));
    const attachedId = await newVolume('vol-busy-attached');
    const attached = (await (
      await start('attach', 'attach-before-busy', attachedId, busy.id)
    ).result()) as VolumeActionResult;
    const freeId = await newVolume('vol-busy-free');
    const compute = h.computeHosts.get(busy.host);
    assert.ok(compute);
    await compute.setFault('powerOff', { mode: 'hang' });
    await h.syncClock();
    const stop = await h.env.client.workflow.start('stopInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: serverOperationWorkflowId('stop', busy.id, 'stop-while-volumes'),
      args: [{ requestId: 'stop-while-volumes', auth: h.demoAuth(), instanceUuid: busy.id }],
    });
    await heldOn(compute, 'powerOff');
    const refusals = [
      { kind: 'attach', requestId: 'attach-while-stopping', volumeId: freeId, method: 'attach_volume' },
      { kind: 'detach', requestId: 'detach-while-stopping', volumeId: attachedId, method: 'detach_volume' },
    ] as const;
    for (const { kind, requestId, volumeId, method } of refusals) {
      const failure = await failureOf(await start(kind, requestId, volumeId, busy.id));
      assert.equal(failure.type, 'InstanceInvalidState');
      assert.equal(
        failure.message,
        `Cannot '${method}' instance ${busy.id} while it is in task_state powering-off`,
      );
      assert.equal(
        (await h.cloud.nova.listActions(busy.id)).some((a) => a.requestId === requestId),
        false,
        `no action for the refused ${kind}`,
      );
    }
    await assertAvailableAndFree(freeId);
    const volume = await h.cloud.cinder.getVolume(attachedId);
    assert.deepEqual(
      [volume.status, volume.attachments.map((a) => a.id)],
      ['in-use', [attached.attachmentId]],
    );
    assert.equal((await connectionsOf(attachedId)).length, 1);
    // The stop was not disturbed.
    assert.equal((await h.cloud.nova.getInstance(busy.id)).taskState, 'powering-off');
    await compute.clearFaults();
    await stop.result();
    assert.equal((await h.cloud.nova.getInstance(busy.id)).vmState, 'stopped');
    await h.syncClock();
    const del = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(busy.id),
      args: [{ requestId: 'delete-busy', auth: h.demoAuth(), instanceUuid: busy.id }],
    });
    assert.equal(((await del.result()) as DeleteResult).outcome, 'deleted');
    await assertAvailableAndFree(attachedId);
    await assertNoLeaks(h);
  });
});
