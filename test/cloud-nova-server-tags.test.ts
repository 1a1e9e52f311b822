/**
 * nova-api's own writes on an instance row, in the nova database: the server tags (server-tags.ts: one
 * transaction on the locked row, concurrent adds all kept, Nova's limits and states) and os-resetState
 * (admin-actions.ts: the states and the resetState action together, refusals writing nothing).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../cloud/clock';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import { Nova } from '../cloud/nova';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const isType = (type: CloudErrorType, message?: string) => (err: unknown) =>
  isCloudError(err, type) && (message === undefined || err.message === message);

describe('nova: server tags and reset state', () => {
  let testDb: TestDb;
  let nova: Nova;

  before(async () => {
    testDb = testDbConfig('nova-server-tags');
    nova = await Nova.open({ db: testDb.config, clock: new ManualClock(Date.UTC(2026, 0, 1)) });
    await nova.ensureDefaultFlavors();
  });
  after(async () => {
    await nova?.close();
    await testDb?.cleanup();
  });

  async function activeInstance(tags?: string[]): Promise<string> {
    const uuid = randomUUID();
    await nova.createInstance({
      uuid,
      requestId: `req-${uuid}`,
      name: 'vm',
      projectId: 'p',
      userId: 'u',
      flavor: '1',
      imageRef: 'img',
      networks: [],
      ...(tags ? { tags } : {}),
    });
    await nova.updateInstance(uuid, {
      vmState: 'active',
      taskState: null,
      powerState: 1,
      host: 'compute1',
      node: 'compute1',
      launchedAt: 1,
    });
    return uuid;
  }
  const row = (uuid: string) =>
    nova.store.db.selectFrom('instances').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();

  test('tags: add (once), replace (deduplicated), remove, remove all; the JSON column as written', async () => {
    const id = await activeInstance(['a']);
    assert.deepEqual(await nova.changeInstanceTags(id, { add: 'b' }), { tags: ['a', 'b'], added: true });
    assert.deepEqual(await nova.changeInstanceTags(id, { add: 'b' }), { tags: ['a', 'b'], added: false });
    assert.equal((await row(id)).tags, '["a","b"]');
    assert.deepEqual((await nova.changeInstanceTags(id, { replace: ['x', 'y', 'x'] })).tags, ['x', 'y']);
    assert.deepEqual((await nova.changeInstanceTags(id, { remove: 'x' })).tags, ['y']);
    await assert.rejects(
      nova.changeInstanceTags(id, { remove: 'x' }),
      isType('NotFound', `Instance ${id} has no tag 'x'`),
    );
    assert.deepEqual((await nova.changeInstanceTags(id, { removeAll: true })).tags, []);
    assert.equal((await row(id)).tags, null);
    assert.deepEqual((await nova.getInstance(id)).tags, []);
  });

  test('tags: concurrent adds are all kept; the 51st and bad tags are refused; only active or stopped', async () => {
    const id = await activeInstance();
    const wanted = Array.from({ length: 20 }, (_, n) => `t${n}`);
    await Promise.all(wanted.map((tag) => nova.changeInstanceTags(id, { add: tag })));
    assert.deepEqual([...(await nova.getInstance(id)).tags].sort(), [...wanted].sort());

    const full = Array.from({ length: 50 }, (_, n) => `f${n}`);
    await nova.changeInstanceTags(id, { replace: full });
    const before = await row(id);
    await assert.rejects(
      nova.changeInstanceTags(id, { add: 'one-more' }),
      isType('BadRequest', 'The number of tags exceeded the per-server limit 50'),
    );
    await assert.rejects(nova.changeInstanceTags(id, { replace: [...full, 'x'] }), isType('BadRequest'));
    await assert.rejects(nova.changeInstanceTags(id, { add: 'a/b' }), isType('BadRequest'));
    await assert.rejects(nova.changeInstanceTags(id, { add: 'x'.repeat(61) }), isType('BadRequest'));
    await nova.updateInstance(id, { vmState: 'error' });
    await assert.rejects(
      nova.changeInstanceTags(id, { removeAll: true }),
      isType('InstanceInvalidState', `Cannot 'delete tags' instance ${id} while it is in vm_state error`),
    );
    assert.equal((await row(id)).tags, before.tags, 'the refusals wrote nothing');
    await nova.softDeleteInstance(id);
    await assert.rejects(nova.changeInstanceTags(id, { add: 'z' }), isType('NotFound'));
  });

  test('reset state: the states and a finished resetState action together; refusals write nothing', async () => {
    const id = await activeInstance();
    await nova.updateInstance(id, { taskState: 'rebooting' });
    const reset = await nova.resetInstanceState({
      instanceUuid: id,
      requestId: `reset-${id}`,
      userId: 'admin',
      projectId: 'admin-project',
      state: 'error',
    });
    assert.equal(reset.vmState, 'error');
    assert.equal(reset.taskState, null);
    const stored = await row(id);
    assert.equal(stored.vm_state, 'error');
    assert.equal(stored.task_state, null);
    assert.equal(stored.power_state, 1);
    const actions = (await nova.listActions(id)).filter((a) => a.action === 'resetState');
    assert.equal(actions.length, 1);
    assert.equal(actions[0]!.userId, 'admin');
    assert.equal(actions[0]!.projectId, 'admin-project');
    assert.notEqual(actions[0]!.finishTime, null);

    const count = (await nova.listActions(id)).length;
    await assert.rejects(
      nova.resetInstanceState({
        instanceUuid: id,
        requestId: `reset-2-${id}`,
        userId: 'admin',
        projectId: 'admin-project',
        state: 'stopped' as 'active',
      }),
      isType('BadRequest'),
    );
    await nova.softDeleteInstance(id);
    await assert.rejects(
      nova.resetInstanceState({
        instanceUuid: id,
        requestId: `reset-3-${id}`,
        userId: 'admin',
        projectId: 'admin-project',
        state: 'active',
      }),
      isType('NotFound'),
    );
    assert.equal((await nova.listActions(id)).length, count);
    assert.equal((await row(id)).vm_state, 'deleted');
  });
});
