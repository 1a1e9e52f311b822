/** What a boot or a failed boot must leave behind, checked against the cloud's real state. */
import { pollUntil } from '../../lib/poll';
import assert from 'node:assert/strict';
import { ApplicationFailure, type WorkflowHandle } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import type { Cloud } from '../../cloud/index';
import type { ComputeHost } from '../../cloud/compute';
import type { BootResult, BootStatus } from '../../workflows/types';
import type { BootHarness } from './boot-harness';

export async function status(handle: WorkflowHandle): Promise<BootStatus> {
  return handle.query<BootStatus>('status');
}

/** Polls the `status` query (real time; the test server does not skip meanwhile) until `ready` holds. */
export async function waitForStatus(
  handle: WorkflowHandle,
  ready: (s: BootStatus) => boolean,
  timeoutMs = 20_000,
): Promise<BootStatus> {
  let last: BootStatus | undefined;
  return pollUntil(
    async () => {
      last = await status(handle);
      return ready(last) ? last : undefined;
    },
    { timeoutMs, intervalMs: 50, what: () => `the boot's status; last: ${JSON.stringify(last)}` },
  );
}

export async function expectBootFailure(handle: WorkflowHandle, type: string): Promise<ApplicationFailure> {
  try {
    await handle.result();
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, `expected a workflow failure, got ${String(err)}`);
    assert.ok(
      err.cause instanceof ApplicationFailure,
      `expected an ApplicationFailure, got ${String(err.cause)}`,
    );
    assert.equal(err.cause.type, type, err.cause.message);
    assert.equal(err.cause.nonRetryable, true);
    return err.cause;
  }
  return assert.fail(`expected the boot to fail with ${type}`);
}

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

/**
 * A local activity's marker (recorded once it finished, with the attempt that settled it), or undefined.
 * Its data is the SDK core's own record, not a user payload: plain JSON.
 */
export function localActivityMarker(
  event: HistoryEvent,
): { activity_type: string; attempt: number } | undefined {
  const marker = event.markerRecordedEventAttributes;
  if (marker?.markerName !== 'core_local_activity') return undefined;
  const data = marker.details?.data?.payloads?.[0]?.data;
  if (!data) return undefined;
  return JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type: string; attempt: number };
}

/** Every activity attempt in the history (a local activity: its settling attempt): type and number. */
export async function activityAttempts(
  handle: WorkflowHandle,
): Promise<Array<{ type: string; attempt: number }>> {
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, string>();
  const attempts: Array<{ type: string; attempt: number }> = [];
  for (const event of history.events ?? []) {
    const local = localActivityMarker(event);
    if (local) attempts.push({ type: local.activity_type, attempt: local.attempt });
    const sched = event.activityTaskScheduledEventAttributes;
    if (sched) scheduled.set(String(event.eventId), sched.activityType?.name ?? '?');
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      attempts.push({
        type: scheduled.get(String(started.scheduledEventId)) ?? '?',
        attempt: started.attempt ?? 1,
      });
    }
  }
  return attempts;
}

/** The one-line summaries the Web UI shows for the workflow's activities, in order. */
export async function activitySummaries(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  const summaries: string[] = [];
  for (const event of history.events ?? []) {
    // An activity's scheduled event, or a local activity's marker: both carry the step's summary.
    const step = event.activityTaskScheduledEventAttributes || localActivityMarker(event);
    const data = step ? event.userMetadata?.summary?.data : undefined;
    if (data) summaries.push(JSON.parse(Buffer.from(data).toString('utf8')) as string);
  }
  return summaries;
}

/** Nova's view of a server that booted: active, RUNNING, no task, launched, on its host; a live domain there. */
export async function assertActive(h: BootHarness, server: BootResult): Promise<void> {
  const instance = await h.cloud.nova.getInstance(server.id);
  assert.equal(instance.vmState, 'active');
  assert.equal(instance.taskState, null);
  assert.equal(instance.powerState, 1);
  assert.equal(instance.host, server.host);
  assert.ok(instance.launchedAt !== null);
  assert.equal(h.cloud.nova.apiStatus(instance), 'ACTIVE');
  const [create] = await h.cloud.nova.listActions(server.id);
  assert.equal(create?.action, 'create');
  assert.ok(create?.finishTime !== null, 'the create action is finished');
  const compute = h.computeHosts.get(server.host) as ComputeHost;
  assert.equal(await compute.getPowerState(server.id), 1);
  const ports = await h.cloud.neutron.listPorts({ deviceId: server.id });
  assert.ok(ports.length > 0);
  for (const port of ports) {
    assert.equal(port.status, 'ACTIVE');
    assert.equal(port.bindingHostId, server.host);
  }
  const vifs = (await compute.listVifs()).filter((v) => v.instanceUuid === server.id);
  assert.equal(vifs.length, ports.length);
  const addresses = Object.values(server.addresses).flat();
  assert.deepEqual(
    addresses.map((a) => a.addr).sort(),
    ports.flatMap((p) => p.fixedIps.map((ip) => ip.ipAddress)).sort(),
  );
  const allocation = await h.cloud.placement.getAllocations(server.id);
  assert.ok(allocation, 'the instance holds its placement allocation');
}

/** Nova's view after a failed build: ERROR, no task, NOSTATE, no host, the fault recorded, action closed. */
export async function assertErrored(cloud: Cloud, uuid: string, faultMessage: RegExp): Promise<void> {
  const instance = await cloud.nova.getInstance(uuid);
  assert.equal(instance.vmState, 'error');
  assert.equal(instance.taskState, null);
  assert.equal(instance.powerState, 0);
  assert.equal(instance.host, null);
  assert.equal(cloud.nova.apiStatus(instance), 'ERROR');
  const [fault] = await cloud.nova.listFaults(uuid);
  assert.ok(fault, 'an instance fault is recorded');
  assert.match(fault.message, faultMessage);
  const [create] = await cloud.nova.listActions(uuid);
  assert.equal(create?.message, 'Error');
  assert.ok(create?.finishTime !== null);
  assert.equal(await cloud.placement.getAllocations(uuid), null);
}

export async function assertNoLeaks(h: BootHarness): Promise<void> {
  assert.deepEqual(await h.audit(), []);
}

/** The boot volume of a build that failed on each of `hosts`: attached on each in turn, detached from all. */
export async function assertAttachedOnEachHost(h: BootHarness, uuid: string, hosts: string[]): Promise<void> {
  const attachments = await h.cloud.cinder.listAttachments({ instanceUuid: uuid, includeDetached: true });
  assert.deepEqual(
    attachments.map((a) => a.attachedHost).sort(),
    [...hosts].sort(),
    'attached on each host in turn',
  );
  assert.ok(attachments.every((a) => a.attachStatus === 'detached'));
}

/** Nothing exists for a request that failed before the instance record: no instance, port or allocation. */
export async function assertNothingCreated(h: BootHarness, requestId: string): Promise<void> {
  const instances = await h.cloud.nova.listInstances({ allProjects: true, includeDeleted: true });
  assert.equal(instances.filter((i) => i.requestId === requestId).length, 0);
  await assertNoLeaks(h);
}

/** An available, bootable volume of the demo project made from the bootstrap image (to boot from). */
export async function imageVolume(h: BootHarness, name: string): Promise<string> {
  const volume = await h.cloud.cinder.createVolume({
    requestKey: name,
    projectId: h.boot.demo.projectId,
    sizeGb: 1,
    name,
    imageSource: await h.cloud.glance.imageLocation(h.boot.imageId),
  });
  await h.cloud.cinder.waitForVolume(volume.id);
  return volume.id;
}
