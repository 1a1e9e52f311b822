/**
 * createInstance when things go wrong, on the time-skipping test server with the real activities: a host
 * that is down, hosts that all fail, image, network and volume errors, quota and credentials, cancellation
 * and delete-while-building. After each: the leak audit is empty and Nova's states are Nova's.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { CancelledFailure, WorkflowFailedError } from '@temporalio/client';
import { DEFAULT_QUOTA_LIMITS } from '../cloud/nova';
import { CONTROLLER_QUEUE } from '../workflows/names';
import type { BootResult, DeleteResult } from '../workflows/types';
import { HOSTS, openBootHarness, type BootHarness } from './helpers/boot-harness';
import {
  activityAttempts,
  assertActive,
  assertAttachedOnEachHost,
  assertErrored,
  assertNoLeaks,
  assertNothingCreated,
  expectBootFailure,
  status,
  waitForStatus,
} from './helpers/boot-assertions';

describe('createInstance failure paths', () => {
  let h: BootHarness;
  before(async () => {
    h = await openBootHarness('wf-fail');
  });
  after(async () => {
    await h?.close();
  });
  afterEach(async () => {
    h.cloud.cinder.setFaults(undefined);
    for (const compute of h.computeHosts.values()) await compute.clearFaults();
    await h.setRunningHosts(HOSTS);
  });

  test('host down mid-build (no worker on its queue): its work is undone and the build reschedules', async () => {
    await h.setRunningHosts([]);
    const handle = await h.startBoot(h.request('host-down', { timeouts: { hostPickupMs: 6000 } }));
    const chosen = (await waitForStatus(handle, (s) => s.host !== null)).host as string;
    // Every host but the chosen one comes up; the chosen one never picks up its work.
    await h.setRunningHosts(HOSTS.filter((host) => host !== chosen));
    const server = (await handle.result()) as BootResult;
    await h.keepHistory('host-down', handle);

    assert.notEqual(server.host, chosen);
    assert.equal(server.attempts, 2);
    assert.deepEqual(server.triedHosts, [chosen]);
    await assertActive(h, server);
    const s = await status(handle);
    assert.equal(s.lastError?.type, 'RescheduledException');
    assert.match(s.lastError?.message ?? '', /did not pick up/);
    assert.ok(s.compensations.some((c) => c.startsWith('neutron: delete ports')));
    assert.ok(s.compensations.some((c) => c === `skipped (host down): neutron: unplug ports on ${chosen}`));
    assert.ok(s.compensations.some((c) => c.startsWith(`placement: release allocation on ${chosen}`)));
    // Nova's record of the attempt: an Error event on the down host, the success on the other one.
    const [create] = await h.cloud.nova.listActions(server.id);
    const builds = create?.events.filter((e) => e.event === 'compute__do_build_and_run_instance');
    assert.deepEqual(
      builds?.map((e) => [e.host, e.result]),
      [
        [chosen, 'Error'],
        [server.host, 'Success'],
      ],
    );
    // Only the new host's ports exist: one port, bound there.
    const ports = await h.cloud.neutron.listPorts({ deviceId: server.id });
    assert.equal(ports.length, 1);
    await assertNoLeaks(h);
  });

  test('all hosts failing to spawn: MaxRetriesExceeded after max_attempts, everything released', async () => {
    for (const compute of h.computeHosts.values()) {
      await compute.setFault('spawn', {
        mode: 'fail',
        message: 'Injected: the hypervisor refused the guest',
      });
    }
    // From a volume: each reschedule keeps the volume and only detaches it; the failed build deletes it.
    const handle = await h.startBoot(h.request('all-hosts-fail', { bootVolume: { sizeGb: 1 } }));
    const failure = await expectBootFailure(handle, 'MaxRetriesExceeded');
    await h.keepHistory('local-steps/max-retries', handle);
    assert.match(failure.message, /^Exceeded maximum number of retries\./);
    const s = await status(handle);
    assert.equal(s.triedHosts.length, 3);
    assert.deepEqual([...s.triedHosts].sort(), [...HOSTS].sort());
    assert.equal(s.vmState, 'error');
    assert.ok(s.instanceUuid);
    await assertErrored(h.cloud, s.instanceUuid, /Exceeded maximum number of retries/);
    for (const host of HOSTS) assert.ok((await h.cloud.nova.getComputeHost(host)).failedBuilds >= 1);
    const volumes = (await h.cloud.cinder.listVolumes({ includeDeleted: true })).filter((v) =>
      v.requestKey.startsWith(`${s.instanceUuid}:root`),
    );
    assert.equal(volumes.length, 1, 'one volume for all three attempts');
    assert.equal(volumes[0]?.status, 'deleted');
    await assertAttachedOnEachHost(h, s.instanceUuid, HOSTS);
    await assertNoLeaks(h);
    for (const host of HOSTS) await h.cloud.nova.recordBuildSuccess(host);
  });

  test('no valid host (every compute service disabled): ERROR with the NoValidHost fault, nothing held', async () => {
    for (const host of HOSTS) await h.cloud.nova.setHostDisabled(host, true, 'maintenance');
    try {
      const handle = await h.startBoot(h.request('no-valid-host'));
      const failure = await expectBootFailure(handle, 'NoValidHost');
      await h.keepHistory('no-valid-host', handle);
      assert.match(failure.message, /No valid host was found/);
      const s = await status(handle);
      assert.equal(s.attempt, 0, 'no host was ever tried');
      await assertErrored(h.cloud, s.instanceUuid ?? '', /No valid host was found/);
      await assertNoLeaks(h);
    } finally {
      for (const host of HOSTS) await h.cloud.nova.setHostDisabled(host, false);
    }
  });

  test('image checksum mismatch: aborts on the first host without a reschedule, nothing cached', async () => {
    const ctx = { projectId: h.boot.admin.projectId, roles: ['admin', 'member', 'reader'] };
    const image = await h.cloud.glance.createImage(
      {
        name: 'corrupt',
        diskFormat: 'raw',
        containerFormat: 'bare',
        visibility: 'public',
        ownerProjectId: h.boot.admin.projectId,
      },
      ctx,
    );
    await h.cloud.glance.uploadImageData(image.id, Buffer.alloc(64 * 1024, 7), { ctx });
    // The store's copy rots after upload: same size, different bytes.
    const location = await h.cloud.glance.imageLocation(image.id);
    await writeFile(fileURLToPath(location.url), Buffer.alloc(64 * 1024, 8));

    const handle = await h.startBoot(h.request('checksum-mismatch', { image: image.id }));
    await expectBootFailure(handle, 'ImageChecksumMismatch');
    await h.keepHistory('checksum-mismatch', handle);
    const s = await status(handle);
    assert.deepEqual(s.triedHosts, [], 'an image error is not rescheduled');
    assert.equal(s.attempt, 1);
    await assertErrored(h.cloud, s.instanceUuid ?? '', /checksum|hash/i);
    for (const compute of h.computeHosts.values()) {
      assert.ok(!(await compute.listCachedImages()).some((c) => c.imageId === image.id));
    }
    await assertNoLeaks(h);
  });

  test('subnet full: IpAddressGenerationFailure aborts the build, no port left behind', async () => {
    const tiny = await h.cloud.neutron.createNetwork({ name: 'tiny', projectId: h.boot.demo.projectId });
    await h.cloud.neutron.createSubnet({
      networkId: tiny.id,
      cidr: '10.9.9.0/29',
      allocationPools: [{ start: '10.9.9.2', end: '10.9.9.2' }],
    });
    // Something else already holds the only address: a router's interface on a port of its own.
    const held = await h.cloud.neutron.createPort({
      requestKey: 'router-port',
      networkId: tiny.id,
      projectId: h.boot.demo.projectId,
    });
    const router = await h.cloud.neutron.l3.createRouter({
      name: 'r-tiny',
      projectId: h.boot.demo.projectId,
    });
    await h.cloud.neutron.l3.addInterface(router.id, { portId: held.id });
    const handle = await h.startBoot(h.request('subnet-full', { networks: [tiny.id] }));
    await expectBootFailure(handle, 'IpAddressGenerationFailure');
    await h.keepHistory('subnet-full', handle);
    const s = await status(handle);
    assert.deepEqual(s.triedHosts, []);
    await assertErrored(h.cloud, s.instanceUuid ?? '', /.+/);
    assert.equal((await h.cloud.neutron.listPorts({ networkId: tiny.id })).length, 1);
    await assertNoLeaks(h);
  });

  test('volume stuck in creating past the bounded wait: VolumeNotCreated, the volume is deleted', async () => {
    h.cloud.cinder.setFaults({ create: { mode: 'hang' } });
    const handle = await h.startBoot(h.request('volume-stuck', { bootVolume: { sizeGb: 1 } }));
    const failure = await expectBootFailure(handle, 'VolumeNotCreated');
    await h.keepHistory('volume-stuck', handle);
    assert.match(failure.message, /did not finish being created even after we waited 1[89]\d seconds/);
    const s = await status(handle);
    assert.deepEqual(s.triedHosts, []);
    await assertErrored(h.cloud, s.instanceUuid ?? '', /did not finish being created/);
    const volumes = await h.cloud.cinder.listVolumes({ includeDeleted: true });
    const volume = volumes.find((v) => v.requestKey.startsWith(`${s.instanceUuid}:root`));
    assert.equal(volume?.status, 'deleted');
    await assertNoLeaks(h);
  });

  test('quota exceeded: fails fast with no retry, nothing created', async () => {
    await h.cloud.nova.setQuotaLimits(h.boot.demo.projectId, { cores: 1 });
    try {
      const handle = await h.startBoot(h.request('quota-exceeded', { flavor: 'm1.medium' }));
      await expectBootFailure(handle, 'QuotaExceeded');
      await h.keepHistory('quota-own-claim/quota-exceeded', handle);
      const attempts = await activityAttempts(handle);
      assert.deepEqual(
        attempts.filter((a) => a.type === 'reserveQuota').map((a) => a.attempt),
        [1],
      );
      // A refused claim was never made: no undo of it (patch quota-undo-own-claim; before, a release ran).
      assert.ok(
        !attempts.some((a) =>
          ['createInstanceRecord', 'selectDestinations', 'createPorts', 'releaseQuota'].includes(a.type),
        ),
        JSON.stringify(attempts),
      );
      await assertNothingCreated(h, 'quota-exceeded');
    } finally {
      await h.cloud.nova.setQuotaLimits(h.boot.demo.projectId, { cores: DEFAULT_QUOTA_LIMITS.cores });
    }
  });

  test('bad credentials: Unauthorized at once, no retry, nothing created', async () => {
    const handle = await h.startBoot(
      h.request('bad-credentials', {
        auth: {
          credentials: {
            username: h.boot.demo.username,
            password: 'not-the-password',
            projectName: h.boot.demo.projectName,
          },
        },
      }),
    );
    const failure = await expectBootFailure(handle, 'Unauthorized');
    await h.keepHistory('bad-credentials', handle);
    assert.doesNotMatch(failure.message, /not-the-password/);
    assert.deepEqual(await activityAttempts(handle), [{ type: 'authenticate', attempt: 1 }]);
    await assertNothingCreated(h, 'bad-credentials');
  });

  test('cancellation mid-build: the saga undoes everything and the instance goes to ERROR', async () => {
    h.cloud.cinder.setFaults({ create: { mode: 'hang' } });
    const handle = await h.startBoot(h.request('cancelled', { bootVolume: { sizeGb: 1 } }));
    // The ports are plugged and the volume is being waited for.
    const s = await waitForStatus(handle, (st) =>
      st.timings.some((t) => t.step === 'network' && t.outcome === 'ok'),
    );
    await handle.cancel();
    await assert.rejects(handle.result(), (err) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.ok(err.cause instanceof CancelledFailure);
      return true;
    });
    await h.keepHistory('local-steps/cancelled', handle);
    const after = await status(handle);
    assert.equal(after.step, 'cancelled');
    for (const undo of [
      'cinder: delete volume',
      'neutron: unplug ports',
      'neutron: delete ports',
      'placement:',
    ]) {
      assert.ok(
        after.compensations.some((c) => c.startsWith(undo)),
        `${undo} in ${after.compensations.join('; ')}`,
      );
    }
    await assertErrored(h.cloud, s.instanceUuid ?? '', /cancelled/);
    await assertNoLeaks(h);
  });

  test('a delete whose destroy fails for good leaves the server ERROR with a fault, not deleting; deleting again finishes', async () => {
    const server = (await (await h.startBoot(h.request('delete-fails'))).result()) as BootResult;
    const compute = h.computeHosts.get(server.host);
    assert.ok(compute);
    await compute.setFault('destroy', { mode: 'fail', message: 'libvirt: domain destroy failed' });
    const remove = (requestId: string) =>
      h.env.client.workflow.start('deleteInstance', {
        taskQueue: CONTROLLER_QUEUE,
        workflowId: requestId,
        args: [{ requestId, auth: h.demoAuth(), instanceUuid: server.id }],
      });
    const first = await remove('delete-fails-first');
    await assert.rejects(
      first.result(),
      (err) => err instanceof WorkflowFailedError && /domain destroy failed/.test(err.cause?.message ?? ''),
    );
    await h.keepHistory('delete-fails-first', first);
    // Three attempts on the host, then the instance is marked: error, no task, the fault, the action closed.
    const destroy = (await activityAttempts(first)).find((a) => a.type === 'destroyInstance');
    assert.equal(destroy?.attempt, 3);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.equal(instance.vmState, 'error');
    assert.equal(instance.taskState, null);
    assert.equal(instance.host, server.host);
    assert.equal(h.cloud.nova.apiStatus(instance), 'ERROR');
    const [fault] = await h.cloud.nova.listFaults(server.id);
    assert.match(fault?.message ?? '', /^Delete failed: .*domain destroy failed/);
    const deleteAction = (await h.cloud.nova.listActions(server.id)).find((a) => a.action === 'delete');
    assert.equal(deleteAction?.message, 'Error');
    assert.ok(deleteAction?.finishTime !== null);
    // It still holds what it held (nothing is half released), so the leak audit has nothing to report.
    assert.equal((await h.cloud.neutron.listPorts({ deviceId: server.id })).length, 1);
    assert.ok(await h.cloud.placement.getAllocations(server.id));
    await assertNoLeaks(h);

    await compute.clearFaults();
    const second = (await (await remove('delete-fails-second')).result()) as DeleteResult;
    assert.equal(second.outcome, 'deleted');
    assert.equal((await h.cloud.nova.getInstance(server.id, { includeDeleted: true })).deleted, true);
    await assertNoLeaks(h);
  });

  test('deleting a server while it builds cancels the build, which cleans up, then deletes the record', async () => {
    h.cloud.cinder.setFaults({ create: { mode: 'hang' } });
    const create = await h.startBoot(h.request('delete-while-building', { bootVolume: { sizeGb: 1 } }));
    const s = await waitForStatus(create, (st) => st.host !== null);
    const del = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: 'delete-while-building',
      args: [{ requestId: 'delete-req-while-building', auth: h.demoAuth(), instanceUuid: s.instanceUuid }],
    });
    const result = (await del.result()) as DeleteResult;
    await h.keepHistory('delete-while-building', del);
    assert.equal(result.outcome, 'deleted');
    assert.equal(result.cancelledBuild, true);
    await assert.rejects(create.result(), (err) => err instanceof WorkflowFailedError);
    await h.keepHistory('local-steps/boot-deleted-while-building', create);
    // The stopped build left its poll timer to fire: a CancelTimer racing a fired timer strands the run.
    const events = (await create.fetchHistory()).events ?? [];
    assert.ok(
      events.some((e) => e.timerStartedEventAttributes),
      'the build waited on a poll timer',
    );
    assert.deepEqual(
      events.filter((e) => e.timerCanceledEventAttributes).map((e) => Number(e.eventId)),
      [],
      'no timer cancelled',
    );
    const instance = await h.cloud.nova.getInstance(s.instanceUuid ?? '', { includeDeleted: true });
    assert.equal(instance.vmState, 'deleted');
    assert.equal(instance.deleted, true);
    // The delete won (Nova): the stopped build recorded no fault and never put the server in ERROR.
    assert.deepEqual(await h.cloud.nova.listFaults(s.instanceUuid ?? ''), []);
    const actions = await h.cloud.nova.listActions(s.instanceUuid ?? '');
    assert.deepEqual(actions.map((a) => [a.action, a.finishTime !== null]).sort(), [
      ['create', true],
      ['delete', true],
    ]);
    await assertNoLeaks(h);
  });
});
