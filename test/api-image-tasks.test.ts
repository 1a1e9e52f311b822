/**
 * Glance's tasks API over HTTP (inject): admin only, the body and `import_from` checked as Glance checks
 * them (refusals store nothing), a task recorded and failed at once (nothing runs it), list, show, 405 on
 * delete, the schemas.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import { openServiceDb } from '../cloud/db';
import { glanceMigrations } from '../cloud/glance/migrations';
import type { GlanceDb } from '../cloud/glance/schema';
import { openApiTestEnvWithUsers, type ApiTestEnv } from './helpers/api';

describe('Glance v2 tasks API', () => {
  let env: ApiTestEnv;
  let admin: string;
  let member: string;
  let db: Kysely<GlanceDb>;
  let closeDb: () => Promise<void>;

  before(async () => {
    const opened = await openApiTestEnvWithUsers(
      { services: ['identity', 'image'], label: 'api-image-tasks' },
      { admin: ['root', 'p-root', 'admin'], member: ['mia', 'p-mia', 'member'] },
    );
    env = opened.env;
    admin = opened.users.admin.token;
    member = opened.users.member.token;
    const store = await openServiceDb<GlanceDb>('glance', glanceMigrations, env.db);
    db = store.db;
    closeDb = () => store.close();
  });
  after(async () => {
    await closeDb?.();
    await env?.close();
  });

  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, token: string, payload?: unknown) =>
    env.app.inject({
      method,
      url: `/image/v2${url}`,
      headers: {
        'x-auth-token': token,
        ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
    });
  const taskRows = async () => (await db.selectFrom('tasks').select('id').execute()).length;
  const importTask = (importFrom: unknown) => ({
    type: 'import',
    input: {
      import_from: importFrom,
      import_from_format: 'qcow2',
      image_properties: { disk_format: 'qcow2', container_format: 'bare' },
    },
  });

  test('refusals: a member (403), the body, import_from outside the import filter; nothing stored', async () => {
    const refused: Array<[string, unknown, number, RegExp]> = [
      [member, importTask('http://127.0.0.1/x.qcow2'), 403, /tasks_api_access/],
      [admin, { input: {} }, 400, /Task 'type' is required/],
      [admin, { type: 'import' }, 400, /Task 'input' is required/],
      [admin, { type: 'export', input: {} }, 400, /does not match schema 'task'/],
      [admin, { ...importTask('http://127.0.0.1/x'), extra: 1 }, 400, /Additional properties/],
      [admin, importTask(undefined), 400, /Invalid location: None/],
      [admin, importTask('file:///etc/passwd'), 400, /File based imports are not allowed/],
      [admin, importTask('ftp://127.0.0.1/x'), 400, /supported uri/],
      [admin, importTask('http://127.0.0.1:8080/x.qcow2'), 400, /does not pass filtering/],
      [admin, importTask('http://2130706433/x.qcow2'), 400, /does not pass filtering/],
    ];
    for (const [token, body, status, message] of refused) {
      const res = await call('POST', '/tasks', token, body);
      assert.equal(res.statusCode, status, `${JSON.stringify(body)}: ${res.body}`);
      assert.match(res.body, message);
    }
    assert.equal(await taskRows(), 0);
  });

  test('GET /v2/images/{id}/tasks (2.12): an image no task made has none; an unknown image is 404', async () => {
    const created = await call('POST', '/images', member, {
      name: 'no-tasks',
      disk_format: 'raw',
      container_format: 'bare',
    });
    assert.equal(created.statusCode, 201, created.body);
    const id = (created.json() as { id: string }).id;
    const res = await call('GET', `/images/${id}/tasks`, member);
    assert.deepEqual([res.statusCode, res.json()], [200, { tasks: [] }]);
    assert.equal(
      (await call('GET', '/images/00000000-0000-4000-8000-000000000000/tasks', member)).statusCode,
      404,
    );
  });

  test('an import task is recorded and fails at once; list (stubs), show, delete 405, schemas', async () => {
    const res = await call('POST', '/tasks', admin, importTask('http://127.0.0.1/image.qcow2'));
    assert.equal(res.statusCode, 201, res.body);
    const task = res.json() as Record<string, unknown>;
    assert.equal(res.headers.location, `/v2/tasks/${String(task.id)}`);
    assert.equal(task.status, 'failure');
    assert.equal(task.type, 'import');
    assert.match(String(task.message), /does not import image data from a URL/);
    assert.equal(typeof task.expires_at, 'string');
    assert.equal(await taskRows(), 1);

    const shown = await call('GET', `/tasks/${String(task.id)}`, admin);
    assert.deepEqual(shown.json(), task);
    const list = (await call('GET', '/tasks?status=failure', admin)).json() as {
      tasks: Array<Record<string, unknown>>;
      schema: string;
    };
    assert.deepEqual(
      list.tasks.map((t) => t.id),
      [task.id],
    );
    assert.equal(list.tasks[0]?.input, undefined, 'a stub has no input');
    assert.equal((await call('GET', '/tasks?status=done', admin)).statusCode, 400);
    assert.equal((await call('GET', '/tasks?marker=nope', admin)).statusCode, 400);
    assert.equal((await call('GET', '/tasks', member)).statusCode, 403);
    assert.equal((await call('GET', '/tasks/00000000-0000-4000-8000-000000000000', admin)).statusCode, 404);
    const del = await call('DELETE', `/tasks/${String(task.id)}`, admin);
    assert.equal(del.statusCode, 405);
    assert.equal(del.headers.allow, 'GET');
    assert.equal(await taskRows(), 1);
    assert.equal(((await call('GET', '/schemas/task', member)).json() as { name: string }).name, 'task');
    assert.equal(((await call('GET', '/schemas/tasks', member)).json() as { name: string }).name, 'tasks');
  });
});
