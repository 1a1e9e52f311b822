/**
 * Pause, unpause, suspend and resume through the compute API driving the real workflows (fake driver):
 * 202 with no body, the server pausing / suspending while the host works and PAUSED / SUSPENDED after
 * (power state 3 / 4), back to ACTIVE (1) after unpause / resume; Nova's vm_state and task_state rules
 * answered 409 conflictingRequest with its message; the instance actions with their compute_* events; a
 * paused and a suspended server deleted with nothing left behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client } from '@temporalio/client';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApiApp, DEFAULT_REGION } from '../api';
import type { OperationName } from '../cloud/nova';
import { createLogger } from '../lib/logger';
import { deleteWorkflowId, serverOperationWorkflowId } from '../workflows/names';
import type { ServerOperationResult } from '../workflows/types';
import { assertNoLeaks } from './helpers/boot-assertions';
import { openBootHarness, type BootHarness } from './helpers/boot-harness';
import { TEST_PUBLIC_URL } from './helpers/api';

type Json = Record<string, unknown>;
const V = '/compute/v2.1';

let h: BootHarness;
let app: FastifyInstance;
let token = '';
let otherToken = '';
const otherPassword = randomBytes(12).toString('hex');

async function call(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  body?: unknown,
  options: { version?: string; as?: string } = {},
): Promise<LightMyRequestResponse> {
  return app.inject({
    method,
    url: `${V}${url}`,
    headers: {
      'x-auth-token': options.as ?? token,
      'openstack-api-version': `compute ${options.version ?? '2.79'}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  });
}

/** Tokens minted at the cloud's current time (the test server skips hours while workflows wait). */
async function refreshTokens(): Promise<void> {
  await h.syncClock();
  const demo = h.boot.demo;
  const ks = h.cloud.keystone;
  token = (
    await ks.authenticate({ username: demo.username, password: demo.password, projectName: demo.projectName })
  ).token;
  otherToken = (
    await ks.authenticate({ username: 'other-user', password: otherPassword, projectName: 'other' })
  ).token;
}

/** POST an action: its answer and the workflow it started (by the request id the API answered with). */
async function action(id: string, body: Json, operation: OperationName) {
  await refreshTokens();
  const res = await call('POST', `/servers/${id}/action`, body);
  const requestId = String(res.headers['x-openstack-request-id']);
  const handle = h.env.client.workflow.getHandle(serverOperationWorkflowId(operation, id, requestId));
  return { res, requestId, handle };
}

async function show(id: string): Promise<Json> {
  const res = await call('GET', `/servers/${id}`);
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { server: Json }).server;
}

function assertConflict(res: LightMyRequestResponse, message: string): void {
  assert.equal(res.statusCode, 409, res.body);
  assert.deepEqual(res.json(), { conflictingRequest: { code: 409, message } });
}

function waitForHold(host: string, operation: 'pause' | 'suspend'): Promise<void> {
  const compute = h.computeHosts.get(host)!;
  const deadline = Date.now() + 30_000;
  const probe = async (): Promise<void> => {
    if (((await compute.listFaults())[operation]?.hits ?? 0) >= 1) return;
    if (Date.now() > deadline) throw new Error(`no call held by the ${operation} fault`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    return probe();
  };
  return probe();
}

before(async () => {
  h = await openBootHarness('api-pause');
  await h.cloud.keystone.ensureProject({ name: 'other' });
  await h.cloud.keystone.ensureUser({ name: 'other-user', password: otherPassword });
  await h.cloud.keystone.assignRole({ user: 'other-user', project: 'other', role: 'member' });
  app = await buildApiApp(
    {
      cloud: h.cloud,
      // A plain client, as the api role has (see api-compute-boot.test.ts).
      temporal: new Client({ connection: h.env.connection, namespace: h.env.namespace ?? 'default' }),
      publicUrl: TEST_PUBLIC_URL,
      region: DEFAULT_REGION,
      log: createLogger({
        name: 'api-test',
        env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
      }),
    },
    { services: ['compute'] },
  );
  await app.ready();
});

after(async () => {
  await app?.close();
  await h?.close();
});

function states(server: Json): unknown[] {
  return [
    server.status,
    server['OS-EXT-STS:vm_state'],
    server['OS-EXT-STS:task_state'],
    server['OS-EXT-STS:power_state'],
  ];
}

async function deleteAndCheck(id: string): Promise<void> {
  await refreshTokens();
  assert.equal((await call('DELETE', `/servers/${id}`)).statusCode, 204);
  await h.env.client.workflow.getHandle(deleteWorkflowId(id)).result();
  await assertNoLeaks(h);
}

describe('pause and suspend through the servers API', { timeout: 10 * 60_000 }, () => {
  test('pause and unpause: 202, pausing while the host works, PAUSED after, 409s by Nova, events', async () => {
    const server = await h.runBoot(h.request('api-pause-1'));
    const id = server.id;
    const compute = h.computeHosts.get(server.host)!;

    // Only a PAUSED server unpauses.
    assertConflict(
      (await action(id, { unpause: null }, 'unpause')).res,
      `Cannot 'unpause' instance ${id} while it is in vm_state active`,
    );

    await compute.setFault('pause', { mode: 'hang' });
    const pause = await action(id, { pause: null }, 'pause');
    assert.equal(pause.res.statusCode, 202, pause.res.body);
    assert.equal(pause.res.body, '');
    await waitForHold(server.host, 'pause');
    assert.deepEqual(states(await show(id)), ['ACTIVE', 'active', 'pausing', 1]);
    assertConflict(
      (await action(id, { pause: null }, 'pause')).res,
      `Cannot 'pause' instance ${id} while it is in task_state pausing`,
    );
    assertConflict(
      (await action(id, { suspend: null }, 'suspend')).res,
      `Cannot 'suspend' instance ${id} while it is in task_state pausing`,
    );
    await compute.clearFaults();
    const paused = (await pause.handle.result()) as ServerOperationResult;
    await h.keepHistory('pause-suspend/pause', pause.handle);
    assert.deepEqual([paused.vmState, paused.powerState], ['paused', 3]);
    await refreshTokens();
    assert.deepEqual(states(await show(id)), ['PAUSED', 'paused', null, 3]);
    assert.equal(await compute.getPowerState(id), 3);

    // Its metadata may change (update_instance_metadata allows PAUSED and SUSPENDED).
    const meta = await call('POST', `/servers/${id}/metadata`, { metadata: { while: 'paused' } });
    assert.equal(meta.statusCode, 200, meta.body);
    assert.deepEqual((meta.json() as { metadata: Json }).metadata.while, 'paused');

    // A PAUSED server is not paused, suspended, stopped or soft-rebooted again (Nova's vm_state rules).
    for (const [body, op, name] of [
      [{ pause: null }, 'pause', 'pause'],
      [{ suspend: null }, 'suspend', 'suspend'],
      [{ resume: null }, 'resume', 'resume'],
      [{ 'os-stop': null }, 'stop', 'stop'],
      [{ reboot: { type: 'SOFT' } }, 'reboot-soft', 'reboot'],
    ] as Array<[Json, OperationName, string]>) {
      assertConflict(
        (await action(id, body, op)).res,
        `Cannot '${name}' instance ${id} while it is in vm_state paused`,
      );
    }

    const unpause = await action(id, { unpause: null }, 'unpause');
    assert.equal(unpause.res.statusCode, 202, unpause.res.body);
    await unpause.handle.result();
    await h.keepHistory('pause-suspend/unpause', unpause.handle);
    await refreshTokens();
    assert.deepEqual(states(await show(id)), ['ACTIVE', 'active', null, 1]);
    assert.equal(await compute.getPowerState(id), 1);

    const list = await call('GET', `/servers/${id}/os-instance-actions`);
    assert.equal(list.statusCode, 200, list.body);
    assert.deepEqual(
      (list.json() as { instanceActions: Json[] }).instanceActions.map((a) => a.action),
      ['unpause', 'pause', 'create'],
    );
    for (const [step, event] of [
      [pause, 'compute_pause_instance'],
      [unpause, 'compute_unpause_instance'],
    ] as const) {
      const detail = await call('GET', `/servers/${id}/os-instance-actions/${step.requestId}`);
      const view = (detail.json() as { instanceAction: Json }).instanceAction;
      assert.deepEqual(
        (view.events as Json[]).map((e) => [e.event, e.result]),
        [[event, 'Success']],
      );
    }

    // ALLOW_HARD_REBOOT: a paused server is hard-rebooted back to ACTIVE (a soft reboot is refused above).
    await (await action(id, { pause: null }, 'pause')).handle.result();
    const hard = await action(id, { reboot: { type: 'HARD' } }, 'reboot-hard');
    assert.equal(hard.res.statusCode, 202, hard.res.body);
    await hard.handle.result();
    await refreshTokens();
    assert.deepEqual(states(await show(id)), ['ACTIVE', 'active', null, 1]);

    // Paused again, then deleted: nothing is left behind.
    await (await action(id, { pause: null }, 'pause')).handle.result();
    await refreshTokens();
    assert.equal((await show(id)).status, 'PAUSED');
    // A PAUSED server is snapshotted (compute/api.py snapshot: ACTIVE, STOPPED, PAUSED, SUSPENDED) and stays
    // PAUSED.
    const snapshot = await action(id, { createImage: { name: 'paused-snap' } }, 'snapshot');
    assert.equal(snapshot.res.statusCode, 202, snapshot.res.body);
    await snapshot.handle.result();
    const imageId = (snapshot.res.json() as { image_id: string }).image_id;
    const image = await h.cloud.glance.getImage(imageId, {
      projectId: h.boot.admin.projectId,
      roles: ['admin'],
    });
    assert.deepEqual([image.status, image.properties.instance_uuid], ['active', id]);
    await refreshTokens();
    assert.deepEqual(states(await show(id)), ['PAUSED', 'paused', null, 3]);
    await deleteAndCheck(id);
  });

  test('suspend and resume: SUSPENDED with power state 4, 409s by Nova, a failed resume leaves ERROR', async () => {
    const server = await h.runBoot(h.request('api-pause-2'));
    const id = server.id;
    const compute = h.computeHosts.get(server.host)!;
    assertConflict(
      (await action(id, { resume: null }, 'resume')).res,
      `Cannot 'resume' instance ${id} while it is in vm_state active`,
    );

    await compute.setFault('suspend', { mode: 'hang' });
    const suspend = await action(id, { suspend: null }, 'suspend');
    assert.equal(suspend.res.statusCode, 202, suspend.res.body);
    await waitForHold(server.host, 'suspend');
    assert.deepEqual(states(await show(id)), ['ACTIVE', 'active', 'suspending', 1]);
    assertConflict(
      (await action(id, { pause: null }, 'pause')).res,
      `Cannot 'pause' instance ${id} while it is in task_state suspending`,
    );
    await compute.clearFaults();
    await suspend.handle.result();
    await h.keepHistory('pause-suspend/suspend', suspend.handle);
    await refreshTokens();
    assert.deepEqual(states(await show(id)), ['SUSPENDED', 'suspended', null, 4]);

    for (const [body, op, name] of [
      [{ suspend: null }, 'suspend', 'suspend'],
      [{ pause: null }, 'pause', 'pause'],
      [{ unpause: null }, 'unpause', 'unpause'],
      [{ 'os-start': null }, 'start', 'start'],
    ] as Array<[Json, OperationName, string]>) {
      assertConflict(
        (await action(id, body, op)).res,
        `Cannot '${name}' instance ${id} while it is in vm_state suspended`,
      );
    }

    const suspendedMeta = await call('PUT', `/servers/${id}/metadata/while`, {
      meta: { while: 'suspended' },
    });
    assert.equal(suspendedMeta.statusCode, 200, suspendedMeta.body);

    assertConflict(
      (await action(id, { reboot: { type: 'SOFT' } }, 'reboot-soft')).res,
      `Cannot 'reboot' instance ${id} while it is in vm_state suspended`,
    );

    const resume = await action(id, { resume: null }, 'resume');
    assert.equal(resume.res.statusCode, 202, resume.res.body);
    await resume.handle.result();
    await h.keepHistory('pause-suspend/resume', resume.handle);
    await refreshTokens();
    assert.deepEqual(states(await show(id)), ['ACTIVE', 'active', null, 1]);

    // A failed suspend: the driver's error under _error_out_instance_on_exception leaves the server ERROR.
    await compute.setFault('suspend', { mode: 'fail', errorType: 'BadRequest', message: 'save failed' });
    const failed = await action(id, { suspend: null }, 'suspend');
    assert.equal(failed.res.statusCode, 202, failed.res.body);
    await assert.rejects(failed.handle.result());
    await h.keepHistory('pause-suspend/suspend-fails', failed.handle);
    await compute.clearFaults();
    await refreshTokens();
    const errored = await show(id);
    assert.deepEqual([errored.status, errored['OS-EXT-STS:task_state']], ['ERROR', null]);
    const detail = await call('GET', `/servers/${id}/os-instance-actions/${failed.requestId}`);
    const view = (detail.json() as { instanceAction: Json }).instanceAction;
    assert.deepEqual(
      (view.events as Json[]).map((e) => [e.event, e.result]),
      [['compute_suspend_instance', 'Error']],
    );
    await deleteAndCheck(id);
  });

  test('a suspended server deletes with nothing left; bad bodies 400; another project 404; policy', async () => {
    const server = await h.runBoot(h.request('api-pause-3'));
    const id = server.id;
    await refreshTokens();
    const extra = await call('POST', `/servers/${id}/action`, { pause: null, unpause: null });
    assert.equal(extra.statusCode, 400, extra.body);
    const other = await call('POST', `/servers/${id}/action`, { suspend: null }, { as: otherToken });
    assert.equal(other.statusCode, 404, other.body);
    assert.deepEqual(states(await show(id)), ['ACTIVE', 'active', null, 1]);

    const suspend = await action(id, { suspend: {} }, 'suspend');
    assert.equal(suspend.res.statusCode, 202, suspend.res.body);
    await suspend.handle.result();
    await refreshTokens();
    assert.equal((await show(id)).status, 'SUSPENDED');
    // ALLOW_HARD_REBOOT includes SUSPENDED: the guest starts afresh, ACTIVE.
    const hard = await action(id, { reboot: { type: 'HARD' } }, 'reboot-hard');
    assert.equal(hard.res.statusCode, 202, hard.res.body);
    await hard.handle.result();
    await refreshTokens();
    assert.deepEqual(states(await show(id)), ['ACTIVE', 'active', null, 1]);
    await (await action(id, { suspend: null }, 'suspend')).handle.result();
    await refreshTokens();
    assert.equal((await show(id)).status, 'SUSPENDED');
    await deleteAndCheck(id);
  });
});
