/**
 * /os-server-groups through Fastify's inject (nova/api/openstack/compute/server_groups.py): the body per
 * microversion (policies and metadata before 2.64, policy and rules from it, project_id / user_id from
 * 2.13), Nova's 400s for bad bodies with nothing written, the server_groups quota (403), Nova's policy
 * defaults (a reader lists and shows, a member creates and deletes, another project's group is 403, an
 * admin lists every project's with all_projects), and POST /servers' `group` hint refused before anything
 * is written when the group is unknown or another project's. The Temporal client throws when touched.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { bootstrapCloud, type BootstrapResult } from '../cloud/bootstrap';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import { openApiTestEnv, type ApiTestEnv } from './helpers/api';
import { addTenantUser } from './helpers/security';

const V = '/compute/v2.1';
type Json = Record<string, unknown>;
type Who = 'admin' | 'member' | 'reader' | 'other';

let env: ApiTestEnv;
let boot: BootstrapResult;
const tokens: Record<Who, string> = { admin: '', member: '', reader: '', other: '' };
let memberUserId = '';
let otherProjectId = '';

function call(
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  options: { as: Who; version?: string; body?: unknown },
): Promise<LightMyRequestResponse> {
  return env.app.inject({
    method,
    url: `${V}${url}`,
    headers: {
      'x-auth-token': tokens[options.as],
      ...(options.version ? { 'openstack-api-version': `compute ${options.version}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(options.body !== undefined ? { payload: JSON.stringify(options.body) } : {}),
  });
}

function fault(res: LightMyRequestResponse, status: number, key: string, message: RegExp | string): void {
  assert.equal(res.statusCode, status, res.body);
  const body = res.json() as Record<string, { code: number; message: string }>;
  assert.deepEqual(Object.keys(body), [key]);
  assert.equal(body[key]!.code, status);
  if (typeof message === 'string') assert.equal(body[key]!.message, message);
  else assert.match(body[key]!.message, message);
}

async function rows(): Promise<string> {
  const db = env.cloud.nova.store.db;
  return JSON.stringify([
    await db.selectFrom('instance_groups').selectAll().orderBy('uuid').execute(),
    await db.selectFrom('instance_group_members').selectAll().orderBy('instance_uuid').execute(),
    await db.selectFrom('instances').select('uuid').orderBy('uuid').execute(),
    await db.selectFrom('quota_allocations').selectAll().orderBy('consumer_uuid').execute(),
  ]);
}

async function create(as: Who, group: Json, version?: string): Promise<Json> {
  const res = await call('POST', '/os-server-groups', {
    as,
    body: { server_group: group },
    ...(version ? { version } : {}),
  });
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { server_group: Json }).server_group;
}

before(async () => {
  env = await openApiTestEnv({ services: ['compute'], label: 'api-server-groups' });
  boot = await bootstrapCloud(env.cloud, { hosts: DEFAULT_HOSTS });
  const auth = (u: string, p: string, n: string) =>
    env.cloud.keystone.authenticate({ username: u, password: p, projectName: n });
  tokens.admin = (await auth(boot.admin.username, boot.admin.password, boot.admin.projectName)).token;
  const member = await auth(boot.demo.username, boot.demo.password, boot.demo.projectName);
  tokens.member = member.token;
  memberUserId = member.context.userId;
  tokens.reader = (
    await addTenantUser(env.cloud, { username: 'rita', projectName: 'demo', role: 'reader' })
  ).token!;
  const other = await addTenantUser(env.cloud, { username: 'otto', projectName: 'other', role: 'member' });
  tokens.other = other.token!;
  otherProjectId = other.projectId;
});

after(async () => {
  await env?.close();
});

describe('os-server-groups', () => {
  test('the body per microversion: policies and metadata, project and user from 2.13, policy and rules from 2.64', async () => {
    const v21 = await create('member', { name: 'web', policies: ['anti-affinity'] });
    assert.deepEqual(Object.keys(v21).sort(), ['id', 'members', 'metadata', 'name', 'policies']);
    assert.deepEqual(v21, {
      id: v21.id,
      name: 'web',
      policies: ['anti-affinity'],
      metadata: {},
      members: [],
    });
    assert.match(v21.id as string, /^[0-9a-f-]{36}$/);

    const v213 = await create('member', { name: 'web2', policies: ['affinity'] }, '2.13');
    assert.equal(v213.project_id, boot.demo.projectId);
    assert.equal(v213.user_id, memberUserId);

    const soft = await create('member', { name: 'soft', policies: ['soft-anti-affinity'] }, '2.15');
    assert.deepEqual(soft.policies, ['soft-anti-affinity']);

    const v264 = await create(
      'member',
      { name: 'rules', policy: 'anti-affinity', rules: { max_server_per_host: 3 } },
      '2.64',
    );
    assert.deepEqual(Object.keys(v264).sort(), [
      'id',
      'members',
      'name',
      'policy',
      'project_id',
      'rules',
      'user_id',
    ]);
    assert.equal(v264.policy, 'anti-affinity');
    assert.deepEqual(v264.rules, { max_server_per_host: 3 });
    const plain = await create('member', { name: 'plain', policy: 'affinity' }, '2.64');
    assert.deepEqual(plain.rules, {});

    // The same group read at another microversion has that version's fields.
    const old = await call('GET', `/os-server-groups/${v264.id as string}`, { as: 'member' });
    assert.deepEqual((old.json() as { server_group: Json }).server_group, {
      id: v264.id,
      name: 'rules',
      policies: ['anti-affinity'],
      metadata: {},
      members: [],
    });
    const shown = await call('GET', `/os-server-groups/${v264.id as string}`, {
      as: 'reader',
      version: '2.79',
    });
    assert.deepEqual((shown.json() as { server_group: Json }).server_group, v264);
    for (const g of [v21, v213, soft, v264, plain]) {
      const res = await call('DELETE', `/os-server-groups/${g.id as string}`, { as: 'member' });
      assert.equal(res.statusCode, 204);
      assert.equal(res.body, '');
    }
  });

  test('bad bodies are 400 with Nova’s wording and write nothing', async () => {
    const before = await rows();
    const bad: Array<[string | undefined, unknown, RegExp]> = [
      [
        undefined,
        { server_group: { name: 'x', policies: ['soft-affinity'] } },
        /policies\/0.*is not one of \['anti-affinity', 'affinity'\]/,
      ],
      ['2.14', { server_group: { name: 'x', policies: ['soft-affinity'] } }, /is not one of/],
      [undefined, { server_group: { name: 'x', policies: ['affinity', 'anti-affinity'] } }, /policies/],
      [undefined, { server_group: { name: 'x', policies: [] } }, /policies/],
      [undefined, { server_group: { name: 'x' } }, /'policies' is a required property/],
      [undefined, { server_group: { policies: ['affinity'] } }, /'name' is a required property/],
      [undefined, { server_group: { name: ' x', policies: ['affinity'] } }, /server_group\/name/],
      [
        undefined,
        { server_group: { name: 'x', policy: 'affinity' } },
        // jsonschema reports 'required' before 'additionalProperties', as Nova's validator meets them.
        /'policies' is a required property/,
      ],
      ['2.64', { server_group: { name: 'x', policies: ['affinity'] } }, /'policy' is a required property/],
      ['2.64', { server_group: { name: 'x', policy: 'legacy' } }, /'legacy' is not one of/],
      [
        '2.64',
        { server_group: { name: 'x', policy: 'affinity', rules: { max_server_per_host: 2 } } },
        /^Only anti-affinity policy supports rules\.$/,
      ],
      [
        '2.64',
        { server_group: { name: 'x', policy: 'anti-affinity', rules: { max_server_per_host: 0 } } },
        /max_server_per_host/,
      ],
      [
        '2.64',
        { server_group: { name: 'x', policy: 'anti-affinity', rules: { other: 1 } } },
        /Additional properties are not allowed/,
      ],
      [undefined, { server_group: { name: 'x', policies: ['affinity'] }, extra: 1 }, /Additional properties/],
    ];
    for (const [version, body, message] of bad) {
      const res = await call('POST', '/os-server-groups', {
        as: 'member',
        body,
        ...(version ? { version } : {}),
      });
      fault(res, 400, 'badRequest', message);
    }
    assert.equal(await rows(), before);
  });

  test('policies: a reader reads, a member writes, another project’s group is 403, all_projects for an admin', async () => {
    const mine = await create('member', { name: 'mine', policies: ['affinity'] });
    const theirs = await create('other', { name: 'theirs', policies: ['affinity'] });
    const id = mine.id as string;

    fault(
      await call('POST', '/os-server-groups', {
        as: 'reader',
        body: { server_group: { name: 'r', policies: ['affinity'] } },
      }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-server-groups:create to be performed.",
    );
    fault(
      await call('DELETE', `/os-server-groups/${id}`, { as: 'reader' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-server-groups:delete to be performed.",
    );
    fault(
      await call('GET', `/os-server-groups/${id}`, { as: 'other' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-server-groups:show to be performed.",
    );
    fault(
      await call('DELETE', `/os-server-groups/${id}`, { as: 'other' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-server-groups:delete to be performed.",
    );
    const missing = randomUUID();
    fault(
      await call('GET', `/os-server-groups/${missing}`, { as: 'member' }),
      404,
      'itemNotFound',
      `Instance group ${missing} could not be found.`,
    );
    fault(
      await call('DELETE', `/os-server-groups/${missing}`, { as: 'member' }),
      404,
      'itemNotFound',
      /could not be found/,
    );

    const ids = async (as: Who, query = '') =>
      (
        (await call('GET', `/os-server-groups${query}`, { as })).json() as { server_groups: Json[] }
      ).server_groups.map((g) => g.id);
    assert.deepEqual(await ids('reader'), [id]);
    assert.deepEqual(await ids('other'), [theirs.id]);
    // A member's all_projects is ignored (Nova's is_admin check), not refused.
    assert.deepEqual(await ids('member', '?all_projects=True'), [id]);
    assert.deepEqual(await ids('admin'), []);
    assert.deepEqual((await ids('admin', '?all_projects=True')).sort(), [id, theirs.id].sort());
    // The admin sees and deletes another project's group (admin_or_owner).
    assert.equal(
      (await call('GET', `/os-server-groups/${theirs.id as string}`, { as: 'admin' })).statusCode,
      200,
    );
    assert.equal(
      (await call('DELETE', `/os-server-groups/${theirs.id as string}`, { as: 'admin' })).statusCode,
      204,
    );
    assert.equal((await call('DELETE', `/os-server-groups/${id}`, { as: 'member' })).statusCode, 204);
    assert.deepEqual(await ids('admin', '?all_projects=1'), []);
  });

  test('limit and offset; unknown query parameters refused from 2.75', async () => {
    const made: string[] = [];
    for (let i = 0; i < 3; i++)
      made.push((await create('member', { name: `p${i}`, policies: ['affinity'] })).id as string);
    const page = async (query: string, version?: string) =>
      call('GET', `/os-server-groups${query}`, { as: 'member', ...(version ? { version } : {}) });
    const all = ((await page('')).json() as { server_groups: Json[] }).server_groups.map((g) => g.id);
    assert.deepEqual([...all].sort(), [...made].sort());
    const second = ((await page('?limit=1&offset=1')).json() as { server_groups: Json[] }).server_groups;
    assert.deepEqual(
      second.map((g) => g.id),
      [all[1]],
    );
    fault(await page('?limit=-1'), 400, 'badRequest', /limit/);
    fault(await page('?offset=x'), 400, 'badRequest', /offset/);
    assert.equal((await page('?color=red', '2.74')).statusCode, 200);
    fault(
      await page('?color=red', '2.75'),
      400,
      'badRequest',
      /Additional properties are not allowed \('color' was unexpected\)/,
    );
    for (const g of made) await call('DELETE', `/os-server-groups/${g}`, { as: 'member' });
  });

  test('the server_groups quota: the 11th is 403 and not written; limits and quota sets count the groups', async () => {
    const made: string[] = [];
    for (let i = 0; i < 10; i++)
      made.push((await create('member', { name: `q${i}`, policies: ['affinity'] })).id as string);
    const before = await rows();
    fault(
      await call('POST', '/os-server-groups', {
        as: 'member',
        body: { server_group: { name: 'q10', policies: ['affinity'] } },
      }),
      403,
      'forbidden',
      'Quota exceeded, too many server groups.',
    );
    assert.equal(await rows(), before);
    const limits = ((await call('GET', '/limits', { as: 'member' })).json() as { limits: { absolute: Json } })
      .limits.absolute;
    assert.equal(limits.maxServerGroups, 10);
    assert.equal(limits.totalServerGroupsUsed, 10);
    const detail = (
      (await call('GET', `/os-quota-sets/${boot.demo.projectId}/detail`, { as: 'member' })).json() as {
        quota_set: Record<string, Json>;
      }
    ).quota_set;
    assert.deepEqual(detail.server_groups, { in_use: 10, limit: 10, reserved: 0 });
    for (const g of made) await call('DELETE', `/os-server-groups/${g}`, { as: 'member' });
    assert.equal(
      ((await call('GET', '/limits', { as: 'member' })).json() as { limits: { absolute: Json } }).limits
        .absolute.totalServerGroupsUsed,
      0,
    );
  });

  test('members: the live servers of the group; 2.71’s server_groups on the server', async () => {
    const group = await create('member', { name: 'm', policies: ['anti-affinity'] });
    const gid = group.id as string;
    const uuid = randomUUID();
    await env.cloud.nova.createInstance({
      uuid,
      requestId: `req-${uuid}`,
      name: 'member-vm',
      projectId: boot.demo.projectId,
      userId: memberUserId,
      flavor: '1',
      imageRef: boot.imageId,
      networks: [],
      serverGroup: gid,
    });
    const shown = (await call('GET', `/os-server-groups/${gid}`, { as: 'reader' })).json() as {
      server_group: Json;
    };
    assert.deepEqual(shown.server_group.members, [uuid]);
    const server = async (version: string) =>
      ((await call('GET', `/servers/${uuid}`, { as: 'member', version })).json() as { server: Json }).server;
    assert.deepEqual((await server('2.71')).server_groups, [gid]);
    assert.equal('server_groups' in (await server('2.70')), false);
    const detail = (await call('GET', '/servers/detail', { as: 'member', version: '2.79' })).json() as {
      servers: Json[];
    };
    assert.equal(
      'server_groups' in detail.servers.find((s) => s.id === uuid)!,
      false,
      'show only, not detail',
    );
    await env.cloud.nova.softDeleteInstance(uuid);
    const after = (await call('GET', `/os-server-groups/${gid}`, { as: 'reader' })).json() as {
      server_group: Json;
    };
    assert.deepEqual(after.server_group.members, []);
    await call('DELETE', `/os-server-groups/${gid}`, { as: 'member' });
  });

  test('POST /servers with the group hint: unknown, malformed or another project’s group is 400, nothing written', async () => {
    const theirs = (await create('other', { name: 'theirs', policies: ['affinity'] })).id as string;
    const server = { name: 'hinted', imageRef: boot.imageId, flavorRef: '1', networks: 'none' };
    const before = await rows();
    const post = (hints: Json) =>
      call('POST', '/servers', {
        as: 'member',
        version: '2.37',
        body: { server, 'os:scheduler_hints': hints },
      });
    const missing = randomUUID();
    fault(await post({ group: missing }), 400, 'badRequest', `Instance group ${missing} could not be found.`);
    fault(await post({ group: theirs }), 400, 'badRequest', `Instance group ${theirs} could not be found.`);
    fault(await post({ group: 'not-a-uuid' }), 400, 'badRequest', /group.*is not a 'uuid'/);
    fault(
      await post({ query: '[]' }),
      400,
      'badRequest',
      /scheduler hint other than group, same_host and different_host/,
    );
    fault(await post({ different_host: 'not-a-uuid' }), 400, 'badRequest', /different_host/);
    assert.equal(await rows(), before);
    assert.equal(otherProjectId.length > 0, true);
    await call('DELETE', `/os-server-groups/${theirs}`, { as: 'other' });
  });
});
