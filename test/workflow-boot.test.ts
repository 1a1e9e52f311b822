/**
 * createInstance and deleteInstance on the time-skipping test server with the real activities over a
 * temporary embedded cloud: the happy paths, idempotency, a token that expires mid-build, deletion.
 */
import { pollUntil } from '../lib/poll';
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  ApplicationFailure,
  type WorkflowHandle,
} from '@temporalio/client';
import { isCloudError } from '../cloud/errors';
import { bootWorkflowId, CONTROLLER_QUEUE, deleteWorkflowId } from '../workflows/names';
import { ComputeHostKey, InstanceIdKey, ProjectIdKey, VmStateKey } from '../workflows/search-attributes';
import type { BootResult, DeleteRequest, DeleteResult } from '../workflows/types';
import { openBootHarness, type BootHarness } from './helpers/boot-harness';
import {
  activitySummaries,
  assertActive,
  localActivityMarker,
  assertNoLeaks,
  status,
  waitForStatus,
} from './helpers/boot-assertions';

/** The parallel sections' branches, in createInstance's order, by their activities' summaries. */
const VALIDATIONS = { request: /^nova-api: validate /, networks: /^neutron: validate networks$/ };
const HOST_BRANCHES = {
  network: /^neutron(-agent)?: (create ports|bind ports|plug port|device up|port status)/,
  blockDevices: /^(nova-conductor: task_state=block_device_mapping|cinder: )/,
  image: /^glance: fetch image/,
};

interface Span {
  /** Event id of the branch's first ActivityTaskScheduled (or local activity marker). */
  firstScheduled: number;
  /** Event id of the branch's last ActivityTaskCompleted (or local activity marker). */
  lastCompleted: number;
  activities: number;
}

/** Where each branch ran in the workflow's history (event ids order the history). */
async function branchSpans<K extends string>(
  handle: WorkflowHandle,
  branches: Record<K, RegExp>,
): Promise<Record<K, Span>> {
  const spans = {} as Record<K, Span>;
  const names = Object.keys(branches) as K[];
  for (const name of names)
    spans[name] = { firstScheduled: Infinity, lastCompleted: -Infinity, activities: 0 };
  const branchOf = new Map<number, K>();
  for (const event of (await handle.fetchHistory()).events ?? []) {
    const id = Number(event.eventId);
    // A local activity's marker is recorded once it finished: it is both its start and its end.
    const local = localActivityMarker(event) !== undefined;
    const scheduled = event.activityTaskScheduledEventAttributes || local;
    const data = scheduled ? event.userMetadata?.summary?.data : undefined;
    if (data) {
      const summary = JSON.parse(Buffer.from(data).toString('utf8')) as string;
      const name = names.find((n) => branches[n].test(summary));
      if (!name) continue;
      branchOf.set(id, name);
      spans[name].firstScheduled = Math.min(spans[name].firstScheduled, id);
      spans[name].activities++;
      if (local) spans[name].lastCompleted = Math.max(spans[name].lastCompleted, id);
    }
    const completed = event.activityTaskCompletedEventAttributes;
    const name = completed ? branchOf.get(Number(completed.scheduledEventId)) : undefined;
    if (name) spans[name].lastCompleted = Math.max(spans[name].lastCompleted, id);
  }
  return spans;
}

/** Each branch with activities starts only after the one before it finished: no overlap. */
function assertOneAfterAnother(spans: Record<string, Span>): void {
  const ran = Object.entries(spans).filter(([, s]) => s.activities > 0);
  for (let i = 1; i < ran.length; i++) {
    const [before, b] = ran[i - 1]!;
    const [name, s] = ran[i]!;
    assert.ok(
      s.firstScheduled > b.lastCompleted,
      `${name} scheduled (event ${s.firstScheduled}) after ${before} completed (event ${b.lastCompleted})`,
    );
  }
}

/** Every branch is scheduled before any other one has finished: they overlap. */
function assertSideBySide(spans: Record<string, Span>): void {
  const all = Object.entries(spans);
  for (const [name, s] of all) {
    assert.ok(s.activities > 0, `${name} ran activities`);
    for (const [other, o] of all) {
      if (other === name) continue;
      assert.ok(s.firstScheduled < o.lastCompleted, `${name} scheduled before ${other} completed`);
    }
  }
}

/** The summaries of the activities a boot ran, hosts and ids generalized, without repeats (polls). */
async function distinctSteps(handle: WorkflowHandle, server: BootResult): Promise<string[]> {
  const summaries = await activitySummaries(handle);
  return [
    ...new Set(summaries.map((s) => s.replaceAll(server.host, '<host>').replaceAll(server.id, '<uuid>'))),
  ].sort();
}

describe('createInstance and deleteInstance', () => {
  let h: BootHarness;
  before(async () => {
    h = await openBootHarness('wf-boot');
  });
  after(async () => {
    await h?.close();
  });
  afterEach(async () => {
    h.cloud.cinder.setFaults(undefined);
  });

  const deleteServer = async (requestId: string, instanceUuid: string): Promise<DeleteResult> => {
    const request: DeleteRequest = { requestId, auth: h.demoAuth(), instanceUuid };
    const handle = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: `${deleteWorkflowId(instanceUuid)}-${requestId}`,
      args: [request],
    });
    const result = (await handle.result()) as DeleteResult;
    if (requestId === 'delete-from-image') await h.keepHistory(requestId, handle);
    return result;
  };

  test('boots from an image: ACTIVE on the best host with its port, IP and running domain', async () => {
    const handle = await h.startBoot(h.request('from-image'));
    const server = (await handle.result()) as BootResult;
    await h.keepHistory('local-steps/boot-from-image', handle);

    assert.equal(server.status, 'ACTIVE');
    assert.equal(server.host, 'compute2', 'the RAM weigher picks the host with the most free memory');
    assert.equal(server.attempts, 1);
    assert.deepEqual(server.triedHosts, []);
    assert.deepEqual(Object.keys(server.addresses), ['private']);
    assert.match(server.addresses.private?.[0]?.addr ?? '', /^10\.0\.0\.\d+$/);
    await assertActive(h, server);
    // The image is in compute2's cache; the root disk sits over it.
    const cached = await h.computeHosts.get('compute2')?.listCachedImages();
    assert.deepEqual(
      cached?.map((c) => c.imageId),
      [h.boot.imageId],
    );
    const steps = server.timings.map((t) => t.step);
    for (const step of [
      'authenticate',
      'validate',
      'reserve-quota',
      'schedule',
      'network',
      'image',
      'spawn',
    ]) {
      assert.ok(steps.includes(step), `timing for ${step}`);
    }

    const summaries = await activitySummaries(handle);
    for (const line of [
      'keystone: authenticate',
      'nova-scheduler: select destination',
      'glance: fetch image to compute2',
      'neutron: plug port on compute2',
      'nova-compute: spawn on compute2',
    ]) {
      assert.ok(summaries.includes(line), `summary "${line}" in ${summaries.join(' | ')}`);
    }

    const s = await status(handle);
    assert.equal(s.done, true);
    assert.equal(s.vmState, 'active');
    assert.equal(s.taskState, null);
    assert.equal(s.host, 'compute2');
    assert.equal(s.lastError, null);
    const sa = (await handle.describe()).typedSearchAttributes;
    assert.equal(sa.get(InstanceIdKey), server.id);
    assert.equal(sa.get(ComputeHostKey), 'compute2');
    assert.equal(sa.get(VmStateKey), 'active');
    assert.equal(sa.get(ProjectIdKey), h.boot.demo.projectId);
    await assertNoLeaks(h);

    const deleted = await deleteServer('delete-from-image', server.id);
    assert.equal(deleted.outcome, 'deleted');
    assert.equal(deleted.host, 'compute2');
    assert.equal(deleted.deletedPorts.length, 1);
    const gone = await h.cloud.nova.getInstance(server.id, { includeDeleted: true });
    assert.equal(gone.vmState, 'deleted');
    assert.equal(gone.deleted, true);
    assert.equal(gone.taskState, null);
    assert.equal(await h.computeHosts.get('compute2')?.getPowerState(server.id), 0);
    await assertNoLeaks(h);

    const again = await deleteServer('delete-from-image-again', server.id);
    assert.equal(again.outcome, 'already-deleted');
  });

  test('boots from a new volume: the volume is created from the image, in-use, connected as vdb', async () => {
    const handle = await h.startBoot(
      h.request('from-volume', { bootVolume: { sizeGb: 1, deleteOnTermination: true } }),
    );
    const server = (await handle.result()) as BootResult;
    await h.keepHistory('local-steps/boot-from-volume', handle);
    await assertActive(h, server);
    assert.equal(server.volumes.length, 1);
    const [attached] = server.volumes;
    assert.equal(attached?.device, 'vdb');
    const volume = await h.cloud.cinder.getVolume(attached?.id ?? '');
    assert.equal(volume.status, 'in-use');
    assert.equal(volume.imageId, h.boot.imageId);
    assert.equal(volume.attachments[0]?.attachedHost, server.host);
    const connections = await h.computeHosts.get(server.host)?.listVolumeConnections();
    assert.equal(connections?.filter((c) => c.instanceUuid === server.id).length, 1);
    assert.ok(server.timings.some((t) => t.step === 'block-devices'));
    assert.ok(
      !server.timings.some((t) => t.step === 'image'),
      'no host image fetch when the root is a volume',
    );
    await assertNoLeaks(h);

    const deleted = await deleteServer('delete-from-volume', server.id);
    assert.deepEqual(deleted.deletedVolumes, [volume.id]);
    assert.equal(
      (await h.cloud.cinder.getVolume(volume.id).catch(() => undefined))?.status ?? 'deleted',
      'deleted',
    );
    await assertNoLeaks(h);
  });

  test('the same request twice boots one server', async () => {
    const request = h.request('duplicate');
    const first = await h.startBoot(request);
    await assert.rejects(h.startBoot(request), WorkflowExecutionAlreadyStartedError);
    const server = (await first.result()) as BootResult;
    // Submitted again after it finished: the client is sent to the first run's result.
    await assert.rejects(
      h.env.client.workflow.start('createInstance', {
        taskQueue: CONTROLLER_QUEUE,
        workflowId: bootWorkflowId(request.requestId),
        args: [request],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      }),
      WorkflowExecutionAlreadyStartedError,
    );
    const again = (await h.env.client.workflow
      .getHandle(bootWorkflowId(request.requestId))
      .result()) as BootResult;
    assert.equal(again.id, server.id);
    const instances = await h.cloud.nova.listInstances({ allProjects: true, includeDeleted: true });
    assert.equal(instances.filter((i) => i.requestId === 'duplicate').length, 1);
    await assertNoLeaks(h);
    await deleteServer('delete-duplicate', server.id);
  });

  test('a token that expires during a long build: the build completes through allow-expired', async () => {
    await h.syncClock();
    const { token, expiresAt } = await h.cloud.keystone.authenticate({
      username: h.boot.demo.username,
      password: h.boot.demo.password,
      projectName: h.boot.demo.projectName,
    });
    // cinder-volume is slow (8 s of real time); the boot allows a day for the volume, so the workflow polls
    // it every 24 minutes at most and the skipped 2 hours take a dozen polls, well inside those 8 s.
    h.cloud.cinder.setFaults({ create: { mode: 'slow', delayMs: 8000 } });
    const handle = await h.startBoot(
      h.request('token-expires', {
        auth: { token },
        bootVolume: { sizeGb: 1 },
        timeouts: { volumeAvailableMs: 24 * 3600_000 },
      }),
    );
    const s = await waitForStatus(handle, (st) =>
      st.timings.some((t) => t.step === 'block-devices' && !t.endedAt),
    );
    const bootVolume = async () =>
      (await h.cloud.cinder.listVolumes({})).find((v) => v.requestKey.startsWith(`${s.instanceUuid}:root`));
    const volume = await pollUntil(bootVolume, { timeoutMs: 5_000, intervalMs: 50, what: 'the boot volume' });
    assert.equal(volume.status, 'creating');

    const before = await h.env.currentTimeMs();
    await h.env.sleep('2 hours');
    assert.ok((await h.env.currentTimeMs()) - before >= 2 * 3600_000);
    // The volume finishes in real time; only then is the workflow allowed to run on.
    await h.cloud.cinder.waitForVolume(volume.id, { timeoutMs: 20_000 });
    const server = (await handle.result()) as BootResult;
    await h.keepHistory('token-expires', handle);
    await assertActive(h, server);

    // The cloud's clock followed the test server: the token is past its expiry, valid only as allow-expired.
    assert.ok(h.clock.now() > expiresAt + 3600_000);
    await assert.rejects(h.cloud.keystone.validateToken(token), (err) => isCloudError(err, 'Unauthorized'));
    const ctx = await h.cloud.keystone.validateToken(token, { allowExpired: true });
    assert.equal(ctx.projectId, h.boot.demo.projectId);
    const attach = server.timings.find((t) => t.step === 'block-devices');
    assert.ok(attach && (attach.ms ?? 0) >= 2 * 3600_000, 'the block-device step spanned the skipped hours');
    await assertNoLeaks(h);
    // deleteOnTermination was not asked for: as in Nova, the volume outlives the server, detached.
    const deleted = await deleteServer('delete-token-expires', server.id);
    assert.deepEqual(deleted.deletedVolumes, []);
    assert.equal((await h.cloud.cinder.getVolume(volume?.id ?? '')).status, 'available');
    await assertNoLeaks(h);
  });

  test("the benchmarks' sequential variant runs the parallel sections one after the other", async () => {
    const sequential = await h.startBoot(h.request('sequential-from-image'), 'createInstanceSequential');
    const server = (await sequential.result()) as BootResult;
    await h.keepHistory('local-steps/sequential-from-image', sequential);
    assert.equal(server.status, 'ACTIVE');
    await assertActive(h, server);
    assertOneAfterAnother(await branchSpans(sequential, VALIDATIONS));
    assertOneAfterAnother(await branchSpans(sequential, HOST_BRANCHES));

    // createInstance, same request otherwise: the same steps, with the branches overlapping.
    const parallel = await h.startBoot(h.request('parallel-from-image'));
    const parallelServer = (await parallel.result()) as BootResult;
    await assertActive(h, parallelServer);
    assertSideBySide(await branchSpans(parallel, VALIDATIONS));
    assertSideBySide(await branchSpans(parallel, HOST_BRANCHES));
    assert.deepEqual(await distinctSteps(sequential, server), await distinctSteps(parallel, parallelServer));

    // From a volume, the block devices are a branch of their own after the network's (no image fetch).
    const fromVolume = await h.startBoot(
      h.request('sequential-from-volume', { bootVolume: { sizeGb: 1, deleteOnTermination: true } }),
      'createInstanceSequential',
    );
    const volumeServer = (await fromVolume.result()) as BootResult;
    await h.keepHistory('sequential-from-volume', fromVolume);
    await assertActive(h, volumeServer);
    assert.equal(volumeServer.volumes[0]?.device, 'vdb');
    const volumeSpans = await branchSpans(fromVolume, HOST_BRANCHES);
    assert.equal(volumeSpans.image.activities, 0);
    assert.ok(volumeSpans.blockDevices.activities > 1, 'the volume is created, attached and connected');
    assertOneAfterAnother(volumeSpans);
    await assertNoLeaks(h);

    for (const [id, s] of [
      ['delete-sequential-from-image', server],
      ['delete-parallel-from-image', parallelServer],
      ['delete-sequential-from-volume', volumeServer],
    ] as const) {
      assert.equal((await deleteServer(id, s.id)).outcome, 'deleted');
    }
    await assertNoLeaks(h);
  });

  test('deleting an unknown server is a clear NotFound, and creates nothing', async () => {
    const handle = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: 'delete-unknown',
      args: [
        {
          requestId: 'delete-unknown',
          auth: h.demoAuth(),
          instanceUuid: '3f0b8f8e-9d7c-4a38-9f1e-1d2c3b4a5f60',
        },
      ],
    });
    await assert.rejects(handle.result(), (err) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.ok(err.cause instanceof ApplicationFailure);
      assert.equal(err.cause.type, 'NotFound');
      return true;
    });
    await assertNoLeaks(h);
  });
});
