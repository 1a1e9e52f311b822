/**
 * evacuateServer / evacuateHost / destroyEvacuatedInstances on the time-skipping test server with the real
 * activities: a server with a volume rebuilt on another host with its ports, IPs and volume; refused while
 * the source's nova-compute is up; a spawn failing on the destination (ERROR with the fault, the destination
 * left clean; a server booted from a volume keeps it through a failed evacuation, and a delete releases
 * it); one cancelled in the spawn and one whose destinations are all down; a stop refused and a
 * delete winning during one; a host-wide evacuation; and the dead host reaping its evacuated guests when it comes back.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { BootAuth, BootResult, DeleteResult, VolumeActionResult } from '../workflows/types';
import { isCloudError } from '../cloud/errors';
import type { Volume } from '../cloud/cinder/types';
import { pollUntil } from '../lib/poll';
import type { EvacuateHostResult, EvacuateResult } from '../workflows/evacuate';
import {
  CONTROLLER_QUEUE,
  deleteWorkflowId,
  destroyEvacuatedWorkflowId,
  evacuateWorkflowId,
  volumeAttachWorkflowId,
} from '../workflows/names';
import { HOSTS, openBootHarness, type BootHarness } from './helpers/boot-harness';
import { assertNoLeaks } from './helpers/boot-assertions';

describe('evacuate', () => {
  let h: BootHarness;
  const adminAuth = (): BootAuth => ({
    credentials: {
      username: h.boot.admin.username,
      password: h.boot.admin.password,
      projectName: h.boot.admin.projectName,
      userDomainName: h.boot.admin.userDomainName,
      projectDomainName: h.boot.admin.projectDomainName,
    },
  });
  before(async () => {
    h = await openBootHarness('wf-evacuate');
  });
  after(async () => {
    await h?.close();
  });
  afterEach(async () => {
    for (const compute of h.computeHosts.values()) await compute.clearFaults();
    for (const host of HOSTS) await h.cloud.nova.setHostForcedDown(host, false);
    await h.setRunningHosts(HOSTS);
  });

  /** The host "dies": its worker stops and its service is forced down (what an operator marks). */
  async function loseHost(host: string): Promise<void> {
    await h.setRunningHosts(HOSTS.filter((x) => x !== host));
    await h.cloud.nova.setHostForcedDown(host, true);
  }

  async function evacuate(instanceUuid: string, requestId: string) {
    await h.syncClock();
    return h.env.client.workflow.start('evacuateServer', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: evacuateWorkflowId(instanceUuid, requestId),
      args: [{ requestId, auth: adminAuth(), instanceUuid, timeouts: { hostPickupMs: 5000 } }],
    });
  }

  /** A server booted as `evac-<name>`, with a 1 GB volume attached (`evac-<name>-vol`, as vdb). */
  async function bootWithVolume(name: string): Promise<{ server: BootResult; volume: Volume }> {
    const requestId = `evac-${name}`;
    const server: BootResult = await h.runBoot(h.request(requestId));
    const { projectId } = await h.cloud.nova.getInstance(server.id);
    const volume = await h.cloud.cinder.createVolume({
      requestKey: `${requestId}-vol`,
      projectId,
      sizeGb: 1,
    });
    await h.cloud.cinder.waitForVolume(volume.id);
    const attach = await h.env.client.workflow.start('attachServerVolume', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: volumeAttachWorkflowId(server.id, `${requestId}-attach`),
      args: [
        {
          requestId: `${requestId}-attach`,
          auth: h.demoAuth(),
          instanceUuid: server.id,
          volumeId: volume.id,
        },
      ],
    });
    assert.equal(((await attach.result()) as VolumeActionResult).device, 'vdb');
    return { server, volume };
  }

  async function comeBack(host: string): Promise<string[]> {
    await h.cloud.nova.setHostForcedDown(host, false);
    await h.setRunningHosts(HOSTS);
    const reap = await h.env.client.workflow.start('destroyEvacuatedInstances', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: destroyEvacuatedWorkflowId(host),
      args: [{ host }],
    });
    const reaped = (await reap.result()) as string[];
    await h.keepHistory('evacuate/destroy-evacuated', reap);
    return reaped;
  }

  test('a server with a volume: rebuilt elsewhere with its ports, IPs and volume; the dead host reaps it when back', async () => {
    const { server, volume } = await bootWithVolume('vm');
    const portsBefore = await h.cloud.neutron.listPorts({ deviceId: server.id });
    const source = server.host;

    // Refused while the source's nova-compute is up: nothing changes.
    const early = await evacuate(server.id, 'evac-too-early');
    const refused = await early.result().then(
      () => assert.fail('evacuate should be refused'),
      (err: unknown) => err,
    );
    assert.ok(refused instanceof WorkflowFailedError && refused.cause instanceof ApplicationFailure);
    assert.equal(refused.cause.type, 'BadRequest');
    assert.equal(refused.cause.message, `Compute service of ${source} is still in use.`);
    assert.equal((await h.cloud.nova.getInstance(server.id)).taskState, null);

    await loseHost(source);
    const handle = await evacuate(server.id, 'evac-1');
    const result = (await handle.result()) as EvacuateResult;
    // evacuate.json is this run before the dead host's attachment was kept until the spawn succeeded.
    await h.keepHistory('evacuate/evacuate-volume-moved', handle);
    assert.equal(result.sourceHost, source);
    assert.notEqual(result.host, source);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.equal(instance.host, result.host);
    assert.equal(instance.vmState, 'active');
    assert.equal(instance.taskState, null);
    // The same ports (ids, MACs, IPs), now bound to the new host.
    const portsAfter = await h.cloud.neutron.listPorts({ deviceId: server.id });
    assert.deepEqual(
      portsAfter.map((p) => [p.id, p.macAddress, p.fixedIps.map((ip) => ip.ipAddress).join()]),
      portsBefore.map((p) => [p.id, p.macAddress, p.fixedIps.map((ip) => ip.ipAddress).join()]),
    );
    assert.deepEqual(
      portsAfter.map((p) => p.bindingHostId),
      [result.host],
    );
    // The volume in-use on the new host, connected there.
    const moved = await h.cloud.cinder.getVolume(volume.id);
    assert.equal(moved.status, 'in-use');
    assert.equal(moved.attachments[0]?.attachedHost, result.host);
    const connections = await h.computeHosts.get(result.host)?.listVolumeConnections();
    assert.deepEqual(
      connections?.map((c) => [c.instanceUuid, c.volumeId, c.device]),
      [[server.id, volume.id, 'vdb']],
    );
    const allocations = await h.cloud.placement.getAllocations(server.id);
    assert.ok(allocations);
    const evacuation = (await h.cloud.nova.listActions(server.id)).find((a) => a.action === 'evacuate');
    assert.deepEqual(
      evacuation?.events.map((e) => [e.event, e.host, e.result]),
      [['compute_rebuild_instance', result.host, 'Success']],
    );

    // The dead host comes back: init_host destroys the evacuated guest it still has.
    assert.ok((await h.computeHosts.get(source)?.listInstanceDirs())?.includes(server.id));
    assert.deepEqual(await comeBack(source), [server.id]);
    assert.ok(!(await h.computeHosts.get(source)?.listInstanceDirs())?.includes(server.id));
    assert.deepEqual(await h.computeHosts.get(source)?.listVolumeConnections(), []);
    await assertNoLeaks(h);
  });

  test('the spawn failing on the destination: ERROR with the fault, the destination left clean', async () => {
    const server: BootResult = await h.runBoot(h.request('evac-fails'));
    await loseHost(server.host);
    for (const [host, compute] of h.computeHosts) {
      if (host !== server.host)
        await compute.setFault('spawn', {
          mode: 'fail',
          message: 'Injected: the hypervisor refused the guest',
        });
    }
    const handle = await evacuate(server.id, 'evac-spawn-fails');
    const err = await handle.result().then(
      () => assert.fail('the evacuation should fail'),
      (e: unknown) => e,
    );
    await h.keepHistory('evacuate/evacuate-spawn-fails', handle);
    assert.ok(err instanceof WorkflowFailedError);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.equal(instance.vmState, 'error');
    assert.equal(instance.taskState, null);
    const [fault] = await h.cloud.nova.listFaults(server.id);
    assert.match(fault?.message ?? '', /^Evacuate failed: .*hypervisor refused/);
    const evacuation = (await h.cloud.nova.listActions(server.id)).find((a) => a.action === 'evacuate');
    assert.equal(evacuation?.message, 'Error');
    assert.deepEqual(
      evacuation?.events.map((e) => [e.event, e.result]),
      [['compute_rebuild_instance', 'Error']],
    );
    for (const [host, compute] of h.computeHosts) {
      if (host === server.host) continue;
      assert.ok(!(await compute.listInstanceDirs()).includes(server.id), `nothing left on ${host}`);
      assert.ok(!(await compute.listVifs()).some((v) => v.instanceUuid === server.id));
    }
    await comeBack(server.host);
    await assertNoLeaks(h);
  });

  test('a server booted from a volume whose evacuation fails: ERROR still owning its volume, which a delete releases', async () => {
    const server: BootResult = await h.runBoot(
      h.request('evac-bfv', { bootVolume: { sizeGb: 1, deleteOnTermination: true } }),
    );
    const [root] = await h.cloud.cinder.listAttachments({ instanceUuid: server.id });
    assert.ok(root, 'the root volume attached');
    await loseHost(server.host);
    // The spawn (after the volume is attached for the destination) fails on every destination.
    for (const [host, compute] of h.computeHosts) {
      if (host !== server.host)
        await compute.setFault('spawn', {
          mode: 'fail',
          message: 'Injected: the hypervisor refused the guest',
        });
    }
    const handle = await evacuate(server.id, 'evac-bfv-fails');
    await assert.rejects(handle.result(), WorkflowFailedError);
    await h.keepHistory('evacuate/evacuate-bfv-spawn-fails', handle);
    assert.equal((await h.cloud.nova.getInstance(server.id)).vmState, 'error');
    // The attachment to the dead host kept (the destination's undone): the volume still the server's.
    const volume = await h.cloud.cinder.getVolume(root.volumeId);
    assert.deepEqual(
      [volume.status, volume.attachments.map((a) => [a.id, a.instanceUuid, a.attachedHost])],
      ['in-use', [[root.id, server.id, server.host]]],
    );
    assert.deepEqual(
      (await h.cloud.cinder.listAttachments({ instanceUuid: server.id })).map((a) => a.id),
      [root.id],
    );
    await comeBack(server.host);
    await h.syncClock();
    const del = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(server.id),
      args: [{ requestId: 'del-evac-bfv', auth: h.demoAuth(), instanceUuid: server.id }],
    });
    assert.equal(((await del.result()) as DeleteResult).outcome, 'deleted');
    // delete_on_termination: the root volume goes with the server.
    await assert.rejects(h.cloud.cinder.getVolume(root.volumeId), (e: unknown) =>
      isCloudError(e, 'NotFound'),
    );
    await assertNoLeaks(h);
  });

  test('during an evacuation a stop is refused (409, the rules table) and a delete wins: the destination left clean', async () => {
    const server: BootResult = await h.runBoot(h.request('evac-then-delete'));
    const source = server.host;
    const { projectId, userId } = await h.cloud.nova.getInstance(server.id);
    await loseHost(source);
    const others = [...h.computeHosts].filter(([host]) => host !== source);
    for (const [, compute] of others) await compute.setFault('spawn', { mode: 'hang' });
    const handle = await evacuate(server.id, 'evac-deleted');
    const destination = await pollUntil(
      async () => {
        for (const [host, compute] of others)
          if (((await compute.listFaults()).spawn?.hits ?? 0) >= 1) return host;
        return undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20, what: 'the spawn held on the destination' },
    );
    assert.equal((await h.cloud.nova.getInstance(server.id)).taskState, 'rebuild_spawning');
    // A stop meets evacuate's task_state as any day-two operation meets another's.
    await assert.rejects(
      h.cloud.nova.beginOperation({
        instanceUuid: server.id,
        requestId: 'stop-during-evacuate',
        operation: 'stop',
        userId,
        projectId,
      }),
      (err: unknown) =>
        isCloudError(err, 'InstanceInvalidState') &&
        err.message === `Cannot 'stop' instance ${server.id} while it is in task_state rebuild_spawning`,
    );
    await h.syncClock();
    const del = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(server.id),
      args: [{ requestId: 'del-evac', auth: h.demoAuth(), instanceUuid: server.id }],
    });
    assert.equal(((await del.result()) as DeleteResult).outcome, 'deleted');
    for (const [, compute] of others) await compute.clearFaults();
    await assert.rejects(handle.result(), WorkflowFailedError);
    const instance = await h.cloud.nova.getInstance(server.id, { includeDeleted: true });
    assert.deepEqual([instance.vmState, instance.deleted], ['deleted', true]);
    const compute = h.computeHosts.get(destination)!;
    assert.ok(!(await compute.listInstanceDirs()).includes(server.id), `nothing left on ${destination}`);
    assert.ok(!(await compute.listVifs()).some((v) => v.instanceUuid === server.id));
    assert.equal(await compute.getDomain(server.id), undefined);
    await comeBack(source);
    await assertNoLeaks(h);
  });

  test('a server deleted while its host is down (a local delete): the host reaps its guest when back', async () => {
    const server: BootResult = await h.runBoot(h.request('deleted-while-away'));
    const source = server.host;
    await loseHost(source);
    await h.syncClock();
    const del = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(server.id),
      args: [{ requestId: 'del-while-away', auth: h.demoAuth(), instanceUuid: server.id }],
    });
    const deleted = (await del.result()) as DeleteResult;
    assert.deepEqual([deleted.outcome, deleted.localDelete], ['deleted', true]);
    // The host was skipped: its guest, directory and ports are still there, for nobody.
    const compute = h.computeHosts.get(source)!;
    assert.ok((await compute.listInstanceDirs()).includes(server.id));
    assert.ok(await compute.getDomain(server.id));
    // Back, its init_host asks the controller and destroys the guest of the deleted instance.
    assert.deepEqual(await comeBack(source), [server.id]);
    assert.ok(!(await compute.listInstanceDirs()).includes(server.id));
    assert.equal(await compute.getDomain(server.id), undefined);
    assert.ok(!(await compute.listVifs()).some((v) => v.instanceUuid === server.id));
    await assertNoLeaks(h);
  });

  {
    test("an evacuation cancelled in the destination's spawn: ERROR, no task, the destination clean", async () => {
      const slug = 'cancelled';
      const server: BootResult = await h.runBoot(h.request(`evac-${slug}`));
      const source = server.host;
      await loseHost(source);
      const others = [...h.computeHosts].filter(([host]) => host !== source);
      for (const [, compute] of others) await compute.setFault('spawn', { mode: 'hang' });
      const requestId = `evac-req-${slug}`;
      const handle = await evacuate(server.id, requestId);
      const destination = await pollUntil(
        async () => {
          for (const [host, compute] of others)
            if (((await compute.listFaults()).spawn?.hits ?? 0) >= 1) return host;
          return undefined;
        },
        { timeoutMs: 30_000, intervalMs: 20, what: 'the spawn held on the destination' },
      );
      await handle.cancel();
      const err = await handle.result().then(
        () => assert.fail('the evacuation should not finish'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), /cancel/i);
      // Released: a held spawn must have stopped, not go on to start the guest after the undo.
      for (const [, compute] of others) await compute.clearFaults();
      await h.cloud.nova.setHostForcedDown(source, false);
      await h.setRunningHosts(HOSTS);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const instance = await h.cloud.nova.getInstance(server.id);
      assert.deepEqual([instance.vmState, instance.taskState], ['error', null]);
      const evacuation = (await h.cloud.nova.listActions(server.id)).find((a) => a.requestId === requestId);
      assert.equal(evacuation?.action, 'evacuate');
      assert.equal(evacuation?.message, 'Error');
      // The destination's event, opened at rebuild_spawning, closed with the error.
      assert.deepEqual(
        evacuation?.events.map((e) => [e.event, e.host, e.result, e.finishTime !== null]),
        [['compute_rebuild_instance', destination, 'Error', true]],
      );
      const compute = h.computeHosts.get(destination)!;
      assert.equal(await compute.getDomain(server.id), undefined, `no guest left on ${destination}`);
      assert.ok(!(await compute.listInstanceDirs()).includes(server.id), `nothing left on ${destination}`);
      assert.ok(!(await compute.listVifs()).some((v) => v.instanceUuid === server.id));
      await comeBack(source);
      await h.syncClock();
      const del = await h.env.client.workflow.start('deleteInstance', {
        taskQueue: CONTROLLER_QUEUE,
        workflowId: deleteWorkflowId(server.id),
        args: [{ requestId: `del-${slug}`, auth: h.demoAuth(), instanceUuid: server.id }],
      });
      assert.equal(((await del.result()) as DeleteResult).outcome, 'deleted');
      await assertNoLeaks(h);
    });
  }

  test('every destination down (its nova-compute gone, not yet seen down): the evacuation fails, ERROR, nothing left', async () => {
    const server: BootResult = await h.runBoot(h.request('evac-dest-down'));
    await loseHost(server.host);
    await h.setRunningHosts([]);
    const handle = await evacuate(server.id, 'evac-req-dest-down');
    const err = await handle.result().then(
      () => assert.fail('the evacuation should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(String(err.cause?.message), /did not pick up plugVifs .* the host is down/);
    await h.setRunningHosts(HOSTS.filter((x) => x !== server.host));
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['error', null]);
    assert.match(
      (await h.cloud.nova.listFaults(server.id))[0]?.message ?? '',
      /^Evacuate failed: .*host is down/,
    );
    const evacuation = (await h.cloud.nova.listActions(server.id)).find(
      (a) => a.requestId === 'evac-req-dest-down',
    );
    // Failed before any destination took it: the action closed with Error, no host event opened.
    assert.deepEqual(
      [evacuation?.action, evacuation?.message, evacuation?.events],
      ['evacuate', 'Error', []],
    );
    for (const [host, compute] of h.computeHosts) {
      if (host === server.host) continue;
      assert.ok(!(await compute.listVifs()).some((v) => v.instanceUuid === server.id), `no VIF on ${host}`);
    }
    await comeBack(server.host);
    await assertNoLeaks(h);
  });

  test('a failure after the volume is connected on the destination: disconnected there again', async () => {
    const { server } = await bootWithVolume('fetch');
    await loseHost(server.host);
    // The image fetch (after the volume is connected, before the guest exists) fails on every destination.
    for (const [host, compute] of h.computeHosts) {
      if (host === server.host) continue;
      await rm(path.join(compute.hostDir, '_base'), { recursive: true, force: true });
      await compute.setFault('fetchImage', { mode: 'fail', message: 'Injected: the image store is away' });
    }
    const handle = await evacuate(server.id, 'evac-fetch-fails');
    const err = await handle.result().then(
      () => assert.fail('the evacuation should fail'),
      (e: unknown) => e,
    );
    await h.keepHistory('evacuate/evacuate-fetch-fails', handle);
    assert.ok(err instanceof WorkflowFailedError);
    assert.equal((await h.cloud.nova.getInstance(server.id)).vmState, 'error');
    for (const [host, compute] of h.computeHosts) {
      if (host === server.host) continue;
      assert.deepEqual(
        (await compute.listVolumeConnections()).filter((c) => c.instanceUuid === server.id),
        [],
        `no volume connection left on ${host}`,
      );
      assert.ok(!(await compute.listVifs()).some((v) => v.instanceUuid === server.id));
    }
    await comeBack(server.host);
    await assertNoLeaks(h);
  });

  test('bootflow host evacuate: every server of the lost host rebuilt elsewhere, one child workflow each', async () => {
    const first = await h.runBoot(h.request('evac-host-1'));
    const lost = first.host;
    const onLost = (await h.cloud.nova.listInstances({ allProjects: true }))
      .filter((i) => i.host === lost)
      .map((i) => i.uuid)
      .sort();
    await loseHost(lost);
    await h.syncClock();
    const handle = await h.env.client.workflow.start('evacuateHost', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: `evacuate-host-${lost}`,
      args: [{ requestId: 'evac-host', auth: adminAuth(), host: lost, timeouts: { hostPickupMs: 5000 } }],
    });
    const result = (await handle.result()) as EvacuateHostResult;
    await h.keepHistory('evacuate/evacuate-host', handle);
    assert.deepEqual(result.failed, []);
    assert.deepEqual(result.evacuated.map((e) => e.instanceUuid).sort(), onLost);
    for (const uuid of onLost) {
      const instance = await h.cloud.nova.getInstance(uuid);
      assert.notEqual(instance.host, lost);
      assert.equal(instance.vmState, 'active');
    }
    assert.deepEqual((await comeBack(lost)).sort(), onLost);
    await assertNoLeaks(h);
  });

  /**
   * A destination step failing on every destination (the fault on each host but the dead one): the VIF
   * plug, before any volume is touched, and the volume connect, after a new attachment was reserved beside
   * the old one. ERROR with the "Evacuate failed: ..." fault, the server still owning its volume through
   * the old attachment, nothing left on any destination, and, once the dead host is back and the server
   * deleted, the volume available and the audit empty.
   */
  const DESTINATION_FAILURES = [
    { step: 'plugVif', slug: 'plug-fails' },
    { step: 'connectVolume', slug: 'connect-fails' },
  ] as const satisfies ReadonlyArray<{ step: 'plugVif' | 'connectVolume'; slug: string }>;

  for (const { step, slug } of DESTINATION_FAILURES) {
    test(`${step} failing on the destination: ERROR with the fault, the destination clean, nothing leaks`, async () => {
      const { server, volume } = await bootWithVolume(slug);
      const source = server.host;
      await loseHost(source);
      for (const [host, compute] of h.computeHosts) {
        if (host !== source)
          await compute.setFault(step, { mode: 'fail', message: `Injected: ${step} failed on ${host}` });
      }
      const requestId = `evac-req-${slug}`;
      const handle = await evacuate(server.id, requestId);
      const err = await handle.result().then(
        () => assert.fail('the evacuation should fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), new RegExp(`Injected: ${step} failed`));
      const instance = await h.cloud.nova.getInstance(server.id);
      assert.deepEqual([instance.vmState, instance.taskState, instance.host], ['error', null, source]);
      assert.match(
        (await h.cloud.nova.listFaults(server.id))[0]?.message ?? '',
        new RegExp(`^Evacuate failed: .*Injected: ${step} failed`),
      );
      const evacuation = (await h.cloud.nova.listActions(server.id)).find((a) => a.requestId === requestId);
      assert.deepEqual([evacuation?.action, evacuation?.message], ['evacuate', 'Error']);
      assert.notEqual(evacuation?.finishTime, null);
      for (const [host, compute] of h.computeHosts) {
        if (host === source) continue;
        assert.ok(!(await compute.listVifs()).some((v) => v.instanceUuid === server.id), `no VIF on ${host}`);
        assert.deepEqual(
          (await compute.listVolumeConnections()).filter((c) => c.instanceUuid === server.id),
          [],
          `no volume connection left on ${host}`,
        );
        assert.ok(!(await compute.listInstanceDirs()).includes(server.id), `nothing left on ${host}`);
        assert.equal(await compute.getDomain(server.id), undefined);
      }
      // Either way the volume is still the server's through its attachment to the dead host: the old
      // attachment goes only once the guest runs on the destination, and the undo deletes only the new one.
      const after = await h.cloud.cinder.getVolume(volume.id);
      assert.equal(after.status, 'in-use');
      assert.deepEqual(
        after.attachments.map((a) => a.attachedHost),
        [source],
      );
      for (const [, compute] of h.computeHosts) await compute.clearFaults();
      await comeBack(source);
      await h.syncClock();
      const del = await h.env.client.workflow.start('deleteInstance', {
        taskQueue: CONTROLLER_QUEUE,
        workflowId: deleteWorkflowId(server.id),
        args: [{ requestId: `del-${slug}`, auth: h.demoAuth(), instanceUuid: server.id }],
      });
      assert.equal(((await del.result()) as DeleteResult).outcome, 'deleted');
      const freed = await h.cloud.cinder.getVolume(volume.id);
      assert.deepEqual([freed.status, freed.attachments], ['available', []]);
      for (const [host, compute] of h.computeHosts) {
        assert.deepEqual(
          (await compute.listVolumeConnections()).filter((c) => c.volumeId === volume.id),
          [],
          `no connection of the volume on ${host}`,
        );
      }
      await assertNoLeaks(h);
    });
  }
});
