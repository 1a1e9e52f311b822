/**
 * The compute API's power actions driving the real workflows: os-stop, os-start and reboot (SOFT, HARD) on
 * POST /servers/{id}/action answer 202 with no body once nova-api's checks pass, the server shows
 * powering-off / HARD_REBOOT while the host works and SHUTOFF / ACTIVE after, a second action meanwhile is
 * 409 conflictingRequest with Nova's message, a bad body 400, another project's server 404, and the
 * instance actions list them with their events.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client } from '@temporalio/client';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApiApp, DEFAULT_REGION } from '../api';
import { FAKE_CONSOLE_OUTPUT } from '../cloud/compute/virt-driver';
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
let adminToken = '';
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
  const admin = h.boot.admin;
  adminToken = (
    await ks.authenticate({
      username: admin.username,
      password: admin.password,
      projectName: admin.projectName,
    })
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

function waitForHold(host: string, operation: 'powerOff' | 'reboot'): Promise<void> {
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
  h = await openBootHarness('api-power');
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

describe('power actions through the servers API', { timeout: 10 * 60_000 }, () => {
  test('stop, start, reboot: 202, the states while and after, 409 for a second action, events listed', async () => {
    const server = await h.runBoot(h.request('api-power-1'));
    const id = server.id;
    const compute = h.computeHosts.get(server.host)!;

    // os-stop while the host holds the power off: powering-off, and a second action is refused.
    await compute.setFault('powerOff', { mode: 'hang' });
    const stop = await action(id, { 'os-stop': null }, 'stop');
    assert.equal(stop.res.statusCode, 202, stop.res.body);
    assert.equal(stop.res.body, '');
    await waitForHold(server.host, 'powerOff');
    let shown = await show(id);
    assert.deepEqual(
      [shown.status, shown['OS-EXT-STS:vm_state'], shown['OS-EXT-STS:task_state']],
      ['ACTIVE', 'active', 'powering-off'],
    );
    const again = await action(id, { 'os-stop': null }, 'stop');
    assertConflict(again.res, `Cannot 'stop' instance ${id} while it is in task_state powering-off`);
    const reboot = await action(id, { reboot: { type: 'HARD' } }, 'reboot-hard');
    assertConflict(reboot.res, `Cannot 'reboot' instance ${id} while it is in task_state powering-off`);
    await compute.clearFaults();
    const stopped = (await stop.handle.result()) as ServerOperationResult;
    assert.equal(stopped.vmState, 'stopped');
    await refreshTokens();
    shown = await show(id);
    assert.deepEqual(
      [
        shown.status,
        shown['OS-EXT-STS:vm_state'],
        shown['OS-EXT-STS:task_state'],
        shown['OS-EXT-STS:power_state'],
      ],
      ['SHUTOFF', 'stopped', null, 4],
    );

    // Nova's vm_state rules: a stopped server cannot be stopped again or soft-rebooted.
    assertConflict(
      (await action(id, { 'os-stop': null }, 'stop')).res,
      `Cannot 'stop' instance ${id} while it is in vm_state stopped`,
    );
    assertConflict(
      (await action(id, { reboot: { type: 'soft' } }, 'reboot-soft')).res,
      `Cannot 'reboot' instance ${id} while it is in vm_state stopped`,
    );

    const start = await action(id, { 'os-start': null }, 'start');
    assert.equal(start.res.statusCode, 202, start.res.body);
    await start.handle.result();
    await refreshTokens();
    assert.equal((await show(id)).status, 'ACTIVE');
    assertConflict(
      (await action(id, { 'os-start': null }, 'start')).res,
      `Cannot 'start' instance ${id} while it is in vm_state active`,
    );

    // A HARD reboot shows HARD_REBOOT while the host works on it.
    await compute.setFault('reboot', { mode: 'hang' });
    const hard = await action(id, { reboot: { type: 'HARD' } }, 'reboot-hard');
    assert.equal(hard.res.statusCode, 202, hard.res.body);
    await waitForHold(server.host, 'reboot');
    assert.equal((await show(id)).status, 'HARD_REBOOT');
    await compute.clearFaults();
    await hard.handle.result();
    const soft = await action(id, { reboot: { type: 'Soft' } }, 'reboot-soft');
    assert.equal(soft.res.statusCode, 202, soft.res.body);
    await soft.handle.result();
    await refreshTokens();
    shown = await show(id);
    assert.deepEqual([shown.status, shown['OS-EXT-STS:power_state']], ['ACTIVE', 1]);

    // `openstack server event list / show`: the actions, newest first, and (2.51+) their events.
    const list = await call('GET', `/servers/${id}/os-instance-actions`);
    assert.equal(list.statusCode, 200, list.body);
    const actions = (list.json() as { instanceActions: Json[] }).instanceActions;
    assert.deepEqual(
      actions.map((a) => a.action),
      ['reboot', 'reboot', 'start', 'stop', 'create'],
    );
    const detail = await call('GET', `/servers/${id}/os-instance-actions/${stop.requestId}`);
    const view = (detail.json() as { instanceAction: Json }).instanceAction;
    assert.equal(view.action, 'stop');
    assert.deepEqual(
      (view.events as Json[]).map((e) => [e.event, e.result]),
      [['compute_stop_instance', 'Success']],
    );

    // The console output still answers through the same dispatcher.
    const consoleOut = await call('POST', `/servers/${id}/action`, { 'os-getConsoleOutput': {} });
    assert.equal(consoleOut.statusCode, 200, consoleOut.body);
    assert.deepEqual(consoleOut.json(), { output: FAKE_CONSOLE_OUTPUT });

    await refreshTokens();
    assert.equal((await call('DELETE', `/servers/${id}`)).statusCode, 204);
    await h.env.client.workflow.getHandle(deleteWorkflowId(id)).result();
    await assertNoLeaks(h);
  });

  test('bad bodies are 400, another project is 404, a building or deleted server 409/404; nothing changes', async () => {
    const server = await h.runBoot(h.request('api-power-2'));
    const id = server.id;
    await refreshTokens();
    const missingType = await call('POST', `/servers/${id}/action`, { reboot: {} });
    assert.equal(missingType.statusCode, 400, missingType.body);
    const wrongType = await call('POST', `/servers/${id}/action`, { reboot: { type: 'WARM' } });
    assert.equal(wrongType.statusCode, 400, wrongType.body);
    const extra = await call('POST', `/servers/${id}/action`, { 'os-stop': null, 'os-start': null });
    assert.equal(extra.statusCode, 400, extra.body);
    const unknown = await call('POST', `/servers/${id}/action`, { shelve: null });
    assert.equal(unknown.statusCode, 400, unknown.body);
    assert.deepEqual(unknown.json(), {
      badRequest: { code: 400, message: 'There is no such action: shelve' },
    });

    for (const body of [{ 'os-stop': null }, { 'os-start': null }, { reboot: { type: 'HARD' } }]) {
      const res = await call('POST', `/servers/${id}/action`, body, { as: otherToken });
      assert.equal(res.statusCode, 404, res.body);
      assert.deepEqual(res.json(), {
        itemNotFound: { code: 404, message: `Instance ${id} could not be found.` },
      });
    }
    const missing = await call('POST', `/servers/00000000-0000-4000-8000-000000000000/action`, {
      'os-stop': null,
    });
    assert.equal(missing.statusCode, 404, missing.body);

    // A server still building: nova-api's vm_state rule answers 409 (Nova: vm_state building).
    const building = await h.cloud.nova.createInstance({
      uuid: '11111111-1111-4111-8111-111111111111',
      requestId: 'req-building',
      name: 'building',
      projectId: h.boot.demo.projectId,
      userId: (await h.cloud.keystone.validateToken(token)).userId,
      flavor: 'm1.tiny',
      imageRef: h.boot.imageId,
      networks: [h.boot.privateNetworkId],
    });
    const refused = await call('POST', `/servers/${building.uuid}/action`, { 'os-stop': null });
    assertConflict(refused, `Instance ${building.uuid} is not ready`);
    const hardRefused = await call('POST', `/servers/${building.uuid}/action`, { reboot: { type: 'HARD' } });
    assertConflict(hardRefused, `Cannot 'reboot' instance ${building.uuid} while it is in vm_state building`);

    // None of this changed the server or recorded an action.
    const instance = await h.cloud.nova.getInstance(id);
    assert.deepEqual([instance.vmState, instance.taskState], ['active', null]);
    assert.deepEqual(
      (await h.cloud.nova.listActions(id)).map((a) => a.action),
      ['create'],
    );
    assert.deepEqual(
      (await h.cloud.nova.listActions(building.uuid)).map((a) => a.action),
      ['create'],
    );
    await h.cloud.nova.softDeleteInstance(building.uuid);
    assert.equal(
      (await call('POST', `/servers/${building.uuid}/action`, { 'os-stop': null })).statusCode,
      404,
    );
    assert.equal((await call('DELETE', `/servers/${id}`)).statusCode, 204);
    await h.env.client.workflow.getHandle(deleteWorkflowId(id)).result();
    await assertNoLeaks(h);
  });

  test('lock / unlock: a locked server refuses a member (409), not an admin; locked_by and the override; actions recorded', async () => {
    const server = await h.runBoot(h.request('api-power-lock'));
    const id = server.id;
    await refreshTokens();
    const lockedConflict = { conflictingRequest: { code: 409, message: `Instance ${id} is locked` } };

    // Before 2.73 the body is not validated and no reason is kept; from 2.73 an unknown field is 400.
    const badReason = await call('POST', `/servers/${id}/action`, { lock: { reason: 'x' } });
    assert.equal(badReason.statusCode, 400, badReason.body);
    const lock = await call('POST', `/servers/${id}/action`, { lock: { locked_reason: 'maintenance' } });
    assert.equal(lock.statusCode, 202, lock.body);
    assert.equal(lock.body, '');
    let row = await h.cloud.nova.getInstance(id);
    assert.deepEqual([row.locked, row.lockedBy, row.lockedReason], [true, 'owner', 'maintenance']);
    let shown = await show(id);
    assert.deepEqual([shown.locked, shown.locked_reason], [true, 'maintenance']);
    const old = (await call('GET', `/servers/${id}`, undefined, { version: '2.9' })).json() as {
      server: Json;
    };
    assert.equal(old.server.locked, true);
    assert.equal('locked_reason' in old.server, false);

    // check_instance_lock: stop, delete, metadata writes refused to the member; nothing changes.
    assert.deepEqual(
      (await call('POST', `/servers/${id}/action`, { 'os-stop': null })).json(),
      lockedConflict,
    );
    const del = await call('DELETE', `/servers/${id}`);
    assert.equal(del.statusCode, 409, del.body);
    assert.deepEqual(del.json(), lockedConflict);
    const meta = await call('PUT', `/servers/${id}/metadata/k`, { meta: { k: 'v' } });
    assert.deepEqual([meta.statusCode, meta.json()], [409, lockedConflict]);
    row = await h.cloud.nova.getInstance(id);
    assert.deepEqual([row.vmState, row.taskState, row.metadata], ['active', null, {}]);
    // Reads and another project: show works, the other project sees 404.
    const foreign = await call('POST', `/servers/${id}/action`, { unlock: null }, { as: otherToken });
    assert.equal(foreign.statusCode, 404, foreign.body);

    // Locking again as the owner records nothing; an admin's lock takes it over (locked_by admin).
    assert.equal((await call('POST', `/servers/${id}/action`, { lock: null })).statusCode, 202);
    const adminLock = await call('POST', `/servers/${id}/action`, { lock: null }, { as: adminToken });
    assert.equal(adminLock.statusCode, 202, adminLock.body);
    row = await h.cloud.nova.getInstance(id);
    assert.deepEqual([row.locked, row.lockedBy, row.lockedReason], [true, 'admin', 'maintenance']);
    // The owner cannot undo an admin's lock (unlock_override is admin only).
    const ownerUnlock = await call('POST', `/servers/${id}/action`, { unlock: null });
    assert.equal(ownerUnlock.statusCode, 403, ownerUnlock.body);
    assert.deepEqual(ownerUnlock.json(), {
      forbidden: {
        code: 403,
        message: "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed.",
      },
    });
    // The admin is not refused by the lock: its stop runs.
    const adminStop = await call('POST', `/servers/${id}/action`, { 'os-stop': null }, { as: adminToken });
    assert.equal(adminStop.statusCode, 202, adminStop.body);
    const stopId = String(adminStop.headers['x-openstack-request-id']);
    await h.env.client.workflow.getHandle(serverOperationWorkflowId('stop', id, stopId)).result();
    await refreshTokens();
    const unlock = await call('POST', `/servers/${id}/action`, { unlock: null }, { as: adminToken });
    assert.equal(unlock.statusCode, 202, unlock.body);
    row = await h.cloud.nova.getInstance(id);
    assert.deepEqual([row.locked, row.lockedBy, row.lockedReason], [false, null, null]);
    shown = await show(id);
    assert.deepEqual([shown.status, shown.locked, shown.locked_reason], ['SHUTOFF', false, null]);

    // The rows, oldest first, each lock / unlock with its api_ event (as Nova's wrap_instance_event).
    const actions = await h.cloud.nova.listActions(id);
    assert.deepEqual(
      actions.map((a) => [a.action, a.events.map((e) => [e.event, e.result])]),
      [
        ['create', actions[0]!.events.map((e) => [e.event, e.result])],
        ['lock', [['api_lock', 'Success']]],
        ['lock', [['api_lock', 'Success']]],
        ['stop', [['compute_stop_instance', 'Success']]],
        ['unlock', [['api_unlock', 'Success']]],
      ],
    );
    // The API lists them too (its order is by start time, which the time-skipping clock blurs).
    const listed = await call('GET', `/servers/${id}/os-instance-actions`);
    assert.deepEqual(
      (listed.json() as { instanceActions: Json[] }).instanceActions.map((a) => a.action).sort(),
      ['create', 'lock', 'lock', 'stop', 'unlock'],
    );

    assert.equal((await call('DELETE', `/servers/${id}`)).statusCode, 204);
    await h.env.client.workflow.getHandle(deleteWorkflowId(id)).result();
    await assertNoLeaks(h);
  });

  test('rebuild: 202 with the server (REBUILD) and adminPass, Nova’s refusals, ACTIVE again with the new name', async () => {
    const server = await h.runBoot(h.request('api-power-rebuild'));
    const id = server.id;
    await refreshTokens();
    const image = h.boot.imageId;
    const before = await h.cloud.nova.getInstance(id);

    // The body's schema, the image, another project: refused, nothing changes.
    const noImage = await call('POST', `/servers/${id}/action`, { rebuild: { name: 'x' } });
    assert.equal(noImage.statusCode, 400, noImage.body);
    const missing = await call('POST', `/servers/${id}/action`, {
      rebuild: { imageRef: '00000000-0000-4000-8000-000000000000' },
    });
    assert.deepEqual(
      [missing.statusCode, missing.json()],
      [400, { badRequest: { code: 400, message: 'Cannot find image for rebuild' } }],
    );
    const foreign = await call(
      'POST',
      `/servers/${id}/action`,
      { rebuild: { imageRef: image } },
      { as: otherToken },
    );
    assert.equal(foreign.statusCode, 404, foreign.body);
    assert.equal((await call('POST', `/servers/${id}/action`, { lock: null })).statusCode, 202);
    const locked = await call('POST', `/servers/${id}/action`, { rebuild: { imageRef: image } });
    assert.deepEqual(locked.json(), {
      conflictingRequest: { code: 409, message: `Instance ${id} is locked` },
    });
    assert.equal((await call('POST', `/servers/${id}/action`, { unlock: null })).statusCode, 202);
    // 2.54's key_name must be a key pair of the caller (Nova's rebuild looks it up by the caller's user).
    const noKey = await call(
      'POST',
      `/servers/${id}/action`,
      { rebuild: { imageRef: image, key_name: 'no-such-key' } },
      { version: '2.54' },
    );
    assert.deepEqual(
      [noKey.statusCode, noKey.json()],
      [400, { badRequest: { code: 400, message: 'Invalid key_name provided.' } }],
    );
    const badUserData = await call(
      'POST',
      `/servers/${id}/action`,
      { rebuild: { imageRef: image, user_data: 'not base64!' } },
      { version: '2.57' },
    );
    assert.equal(badUserData.statusCode, 400, badUserData.body);
    const unchanged = await h.cloud.nova.getInstance(id);
    assert.deepEqual(
      [unchanged.vmState, unchanged.taskState, unchanged.name, unchanged.imageRef, unchanged.keyName],
      [before.vmState, null, before.name, before.imageRef, before.keyName],
    );

    const demoUserId = (await h.cloud.keystone.validateToken(token)).userId;
    await h.cloud.nova.createKeyPair({ userId: demoUserId, name: 'rebuild-key' });
    const userData = Buffer.from('#!/bin/sh\necho rebuilt\n').toString('base64');
    const res = await call(
      'POST',
      `/servers/${id}/action`,
      {
        rebuild: {
          imageRef: image,
          name: 'rebuilt',
          metadata: { a: 'b' },
          adminPass: 'Secret-1',
          key_name: 'rebuild-key',
          user_data: userData,
          'OS-DCF:diskConfig': 'AUTO',
        },
      },
      { version: '2.74' },
    );
    assert.equal(res.statusCode, 202, res.body);
    const view = (res.json() as { server: Json }).server;
    assert.deepEqual(
      [view.id, view.name, view.status, view.metadata, view.adminPass, view.key_name, view.user_data],
      [id, 'rebuilt', 'REBUILD', { a: 'b' }, 'Secret-1', 'rebuild-key', userData],
    );
    const saved = await h.cloud.nova.getInstance(id);
    assert.deepEqual([saved.keyName, saved.userData], ['rebuild-key', userData]);
    // OS-DCF:diskConfig is saved by the API with the rebuild's task_state, as Nova's rebuild does.
    assert.equal(view['OS-DCF:diskConfig'], 'AUTO');
    assert.equal(saved.autoDiskConfig, true);
    assert.deepEqual((view.image as Json).id, image);
    // Before 2.75 the narrower view: no extended status or AZ.
    assert.equal('OS-EXT-STS:vm_state' in view, false);
    // A second action while it runs is Nova's 409.
    const again = await call('POST', `/servers/${id}/action`, { 'os-stop': null });
    assert.equal(again.statusCode, 409, again.body);

    const requestId = String(res.headers['x-openstack-request-id']);
    await h.env.client.workflow.getHandle(serverOperationWorkflowId('rebuild', id, requestId)).result();
    await refreshTokens();
    const shown = await show(id);
    assert.deepEqual(
      [
        shown.status,
        shown.name,
        shown.metadata,
        shown['OS-EXT-STS:task_state'],
        shown['OS-EXT-SRV-ATTR:host'],
      ],
      ['ACTIVE', 'rebuilt', { a: 'b' }, null, undefined],
    );
    assert.equal(shown['OS-DCF:diskConfig'], 'AUTO');
    const actions = await h.cloud.nova.listActions(id);
    assert.deepEqual(
      [actions.at(-1)!.action, actions.at(-1)!.events.map((e) => [e.event, e.result])],
      ['rebuild', [['compute_rebuild_instance', 'Success']]],
    );

    // From 2.75 the whole server, with user_data as its own field (an admin sees no
    // OS-EXT-SRV-ATTR:user_data there); key_name null and user_data null remove them.
    await refreshTokens();
    const full = await call(
      'POST',
      `/servers/${id}/action`,
      { rebuild: { imageRef: image, key_name: null, user_data: null } },
      { version: '2.75', as: adminToken },
    );
    assert.equal(full.statusCode, 202, full.body);
    const fullView = (full.json() as { server: Json }).server;
    assert.deepEqual([fullView.key_name, fullView.user_data], [null, null]);
    assert.equal('OS-EXT-SRV-ATTR:user_data' in fullView, false);
    assert.equal(fullView['OS-EXT-SRV-ATTR:host'], server.host);
    const cleared = await h.cloud.nova.getInstance(id);
    assert.deepEqual([cleared.keyName, cleared.userData], [null, null]);
    // A rebuild without OS-DCF:diskConfig keeps the instance's.
    assert.deepEqual([fullView['OS-DCF:diskConfig'], cleared.autoDiskConfig], ['AUTO', true]);
    await h.env.client.workflow
      .getHandle(serverOperationWorkflowId('rebuild', id, String(full.headers['x-openstack-request-id'])))
      .result();
    await refreshTokens();

    // PUT /servers/{id} with OS-DCF:diskConfig (tempest's test_update_server_from_auto_to_manual).
    const manual = await call('PUT', `/servers/${id}`, { server: { 'OS-DCF:diskConfig': 'MANUAL' } });
    assert.equal(manual.statusCode, 200, manual.body);
    assert.equal((manual.json() as { server: Json }).server['OS-DCF:diskConfig'], 'MANUAL');
    assert.equal((await h.cloud.nova.getInstance(id)).autoDiskConfig, false);
    assert.equal((await show(id))['OS-DCF:diskConfig'], 'MANUAL');
    const bad = await call('PUT', `/servers/${id}`, { server: { 'OS-DCF:diskConfig': 'SOMETIMES' } });
    assert.equal(bad.statusCode, 400, bad.body);
    assert.equal((await h.cloud.nova.getInstance(id)).autoDiskConfig, false);

    assert.equal((await call('DELETE', `/servers/${id}`)).statusCode, 204);
    await h.env.client.workflow.getHandle(deleteWorkflowId(id)).result();
    await assertNoLeaks(h);
  });
});
