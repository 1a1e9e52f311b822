/**
 * The admin server actions through the compute API (admin_actions.py, deferred_delete.py): os-resetState
 * sets the vm_state, clears the task and records the resetState action; injectNetworkInfo is accepted;
 * restore meets Nova's state check. Policies are Nova's (admin; restore for a member), another project's
 * server is 404, and refusals change nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  assertFault,
  openComputeTestEnv,
  recordActiveInstance,
  type ComputeTestEnv,
} from './helpers/compute-calls';

type Json = Record<string, unknown>;
let t: ComputeTestEnv;

before(async () => {
  t = await openComputeTestEnv('api-admin-actions');
});

after(async () => {
  await t?.close();
});

const action = (id: string, body: unknown, as: keyof ComputeTestEnv['tokens'] = 'admin') =>
  t.call('POST', `/servers/${id}/action`, { as, body });

async function states(id: string) {
  const i = await t.env.cloud.nova.getInstance(id);
  return { vmState: i.vmState, taskState: i.taskState, powerState: i.powerState };
}

describe('os-resetState', () => {
  test('an admin sets error or active: task cleared, power kept, the resetState action recorded', async () => {
    const id = await recordActiveInstance(t);
    await t.env.cloud.nova.updateInstance(id, { taskState: 'powering-off' });
    const res = await action(id, { 'os-resetState': { state: 'error' } });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.body, '');
    assert.deepEqual(await states(id), { vmState: 'error', taskState: null, powerState: 1 });
    const shown = await t.call('GET', `/servers/${id}`, { as: 'reader' });
    assert.equal((shown.json() as { server: Json }).server.status, 'ERROR');
    const listed = await t.call('GET', '/servers?status=ERROR', { as: 'member' });
    assert.deepEqual(
      (listed.json() as { servers: Json[] }).servers.map((s) => s.id),
      [id],
    );
    const reset = (await t.env.cloud.nova.listActions(id)).filter((a) => a.action === 'resetState');
    assert.equal(reset.length, 1);
    assert.notEqual(reset[0]!.finishTime, null);
    assert.equal(reset[0]!.requestId, res.headers['x-openstack-request-id']);

    assert.equal((await action(id, { 'os-resetState': { state: 'active' } })).statusCode, 202);
    assert.deepEqual(await states(id), { vmState: 'active', taskState: null, powerState: 1 });
    // An operation that was running meets the cleared task at its next guarded write.
    await assert.rejects(
      t.env.cloud.nova.updateInstance(id, { vmState: 'stopped' }, { expectedTaskState: 'powering-off' }),
      /Expected task_state: \[powering-off\]\. Actual: None/,
    );
  });

  test('a reset ERROR server may be rebuilt (nova-api begins the rebuild)', async () => {
    const id = await recordActiveInstance(t);
    assert.equal((await action(id, { 'os-resetState': { state: 'error' } })).statusCode, 202);
    const begun = await t.env.cloud.nova.beginOperation({
      instanceUuid: id,
      requestId: `rebuild-${id}`,
      operation: 'rebuild',
      userId: t.memberUserId,
      projectId: t.demoProjectId,
      rebuild: { imageRef: t.boot.imageId },
    });
    assert.equal(begun.taskState, 'rebuilding');
    assert.equal(begun.vmState, 'error');
  });

  test("refusals: Nova's schema, policy and tenancy answers; nothing changes", async () => {
    const id = await recordActiveInstance(t);
    const theirs = await recordActiveInstance(t, { projectId: t.otherProjectId, userId: 'someone' });
    const before = { mine: await states(id), theirs: await states(theirs) };
    const actionsBefore = (await t.env.cloud.nova.listActions(id)).length;
    assertFault(
      await action(id, { 'os-resetState': { state: 'error' } }, 'member'),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-admin-actions:reset_state to be performed.",
    );
    assertFault(
      await action(theirs, { 'os-resetState': { state: 'error' } }, 'member'),
      404,
      'itemNotFound',
      `Instance ${theirs} could not be found.`,
    );
    for (const body of [
      { 'os-resetState': { state: 'invalid' } },
      { 'os-resetState': { state: 1 } },
      { 'os-resetState': {} },
      { 'os-resetState': { state: 'error', extra: 1 } },
    ]) {
      assertFault(await action(id, body), 400, 'badRequest');
    }
    assertFault(
      await action('999', { 'os-resetState': { state: 'error' } }),
      404,
      'itemNotFound',
      'Instance 999 could not be found.',
    );
    assert.deepEqual({ mine: await states(id), theirs: await states(theirs) }, before);
    assert.equal((await t.env.cloud.nova.listActions(id)).length, actionsBefore);
  });
});

describe('injectNetworkInfo and restore', () => {
  test('injectNetworkInfo: 202 for an admin, 403 for a member; restore: 409 as no server is soft-deleted', async () => {
    const id = await recordActiveInstance(t);
    const theirs = await recordActiveInstance(t, { projectId: t.otherProjectId, userId: 'someone' });
    const injected = await action(id, { injectNetworkInfo: null });
    assert.equal(injected.statusCode, 202, injected.body);
    assert.equal(injected.body, '');
    assertFault(
      await action(id, { injectNetworkInfo: null }, 'member'),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-admin-actions:inject_network_info to be performed.",
    );
    assertFault(
      await action(id, { restore: null }, 'member'),
      409,
      'conflictingRequest',
      `Cannot 'restore' instance ${id} while it is in vm_state active`,
    );
    assertFault(
      await action(id, { restore: null }, 'reader'),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-deferred-delete:restore to be performed.",
    );
    assertFault(await action(theirs, { restore: null }, 'member'), 404, 'itemNotFound');
    assert.deepEqual(await states(id), { vmState: 'active', taskState: null, powerState: 1 });
  });
});

describe('the locked filter (2.73)', () => {
  test('locked=true / false keep the servers in that state; ignored before 2.73; a bad value is 400', async () => {
    const locked = await recordActiveInstance(t);
    const free = await recordActiveInstance(t);
    const lock = await t.call('POST', `/servers/${locked}/action`, { as: 'member', body: { lock: null } });
    assert.equal(lock.statusCode, 202, lock.body);
    const ids = async (query: string, version = '2.73') =>
      (
        (await t.call('GET', `/servers${query}`, { as: 'reader', version })).json() as {
          servers: Json[];
        }
      ).servers.map((s) => s.id);
    const lockedOnes = await ids('?locked=true');
    assert.ok(lockedOnes.includes(locked) && !lockedOnes.includes(free));
    const freeOnes = await ids('?locked=0');
    assert.ok(freeOnes.includes(free) && !freeOnes.includes(locked));
    const before = await ids('?locked=true', '2.72');
    assert.ok(before.includes(locked) && before.includes(free));
    assertFault(
      await t.call('GET', '/servers?locked=maybe', { as: 'reader', version: '2.73' }),
      400,
      'badRequest',
      /^Invalid input received: Unrecognized value 'maybe', acceptable values are: '0', '1', 'f', 'false'/,
    );
  });
});
