/**
 * Keystone v3 groups over HTTP (inject): groups and their members, roles granted to a group on a project
 * or a domain and what members then get (tokens, /v3/auth/projects, /v3/auth/domains,
 * /v3/users/{id}/projects, role_assignments?effective), role inference rules, and default scoping to a
 * user's default_project_id. Rows are read back from the keystone database; refused requests change none.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ApiTestEnv, identityCaller, openApiTestEnvWithUsers } from './helpers/api';

const json = { 'content-type': 'application/json' };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

describe('Keystone v3 API: groups, implied roles, default scoping', () => {
  let env: ApiTestEnv;
  let adminToken: string;
  let bobId: string;
  let teamProjectId: string;
  let memberRoleId: string;

  before(async () => {
    const opened = await openApiTestEnvWithUsers(
      { services: ['identity'], label: 'api-identity-groups' },
      { admin: ['admin', 'admin', 'admin'] },
    );
    env = opened.env;
    adminToken = opened.users.admin.token;
    const ks = env.cloud.keystone;
    teamProjectId = (await ks.ensureProject({ name: 'team' })).id;
    bobId = (await ks.ensureUser({ name: 'bob', password: 'bob-secret' })).id;
    memberRoleId = (await ks.getRole('member')).id;
  });
  after(async () => {
    await env?.close();
  });

  const projectScope = (name: string) => ({ project: { name, domain: { id: 'default' } } });

  async function token(user: { name: string; password: string }, scope?: unknown) {
    const res = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      headers: json,
      payload: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: user.name, domain: { id: 'default' }, password: user.password } },
          },
          ...(scope !== undefined ? { scope } : {}),
        },
      },
    });
    return {
      status: res.statusCode,
      token: String(res.headers['x-subject-token']),
      body: res.json() as Body,
    };
  }

  const call = identityCaller(() => env);
  const rows = (
    table: 'groups' | 'user_group_membership' | 'group_role_assignments' | 'group_domain_role_assignments',
  ) => env.cloud.keystone.serviceDb.db.selectFrom(table).selectAll().execute();

  test('groups: create (in the token’s domain), show, list, update, members, the user’s groups, delete', async () => {
    const created = await call('POST', '/groups', adminToken, {
      group: { name: 'devs', description: 'the developers', project_id: 'x' },
    });
    assert.equal(created.status, 201);
    const group = created.body.group;
    assert.deepEqual(
      { ...group, id: undefined, links: undefined },
      {
        id: undefined,
        name: 'devs',
        domain_id: 'default',
        description: 'the developers',
        project_id: 'x',
        links: undefined,
      },
    );
    assert.match(group.links.self, new RegExp(`/identity/v3/groups/${group.id}$`));
    assert.deepEqual(
      (await rows('groups')).map((r) => [r.id, r.name, r.domain_id, r.description, JSON.parse(r.extra)]),
      [[group.id, 'devs', 'default', 'the developers', { project_id: 'x' }]],
    );
    const dup = await call('POST', '/groups', adminToken, { group: { name: 'devs' } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.title, 'Conflict');
    assert.deepEqual((await call('GET', `/groups/${group.id}`, adminToken)).body.group, group);
    assert.deepEqual((await call('GET', '/groups?name=devs', adminToken)).body.groups, [group]);
    assert.deepEqual((await call('GET', '/groups?name=nope', adminToken)).body.groups, []);
    const updated = await call('PATCH', `/groups/${group.id}`, adminToken, { group: { name: 'devs2' } });
    assert.equal(updated.status, 200);
    assert.equal(updated.body.group.name, 'devs2');
    assert.equal(updated.body.group.description, 'the developers');

    assert.equal((await call('PUT', `/groups/${group.id}/users/${bobId}`, adminToken)).status, 204);
    assert.equal((await call('HEAD', `/groups/${group.id}/users/${bobId}`, adminToken)).status, 204);
    assert.deepEqual(await rows('user_group_membership'), [{ user_id: bobId, group_id: group.id }]);
    const users = (await call('GET', `/groups/${group.id}/users`, adminToken)).body.users as Body[];
    assert.deepEqual(
      users.map((u) => u.name),
      ['bob'],
    );
    // A user lists its own groups (Keystone's default policy); another's is 403.
    const bob = await token({ name: 'bob', password: 'bob-secret' });
    assert.equal(bob.status, 201);
    const own = await call('GET', `/users/${bobId}/groups`, bob.token);
    assert.equal(own.status, 200);
    assert.deepEqual(
      own.body.groups.map((g: Body) => g.id),
      [group.id],
    );
    const adminId = (await env.cloud.keystone.getUser({ user: 'admin' })).id;
    assert.equal((await call('GET', `/users/${adminId}/groups`, bob.token)).status, 403);

    assert.equal((await call('DELETE', `/groups/${group.id}/users/${bobId}`, adminToken)).status, 204);
    const gone = await call('GET', `/groups/${group.id}/users/${bobId}`, adminToken);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 404);
    assert.equal((await call('DELETE', `/groups/${group.id}/users/${bobId}`, adminToken)).status, 404);
    assert.equal((await call('DELETE', `/groups/${group.id}`, adminToken)).status, 204);
    assert.deepEqual(await rows('groups'), []);
    const missing = await call('GET', `/groups/${group.id}`, adminToken);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.message, `Could not find group: ${group.id}.`);
  });

  test('a member is refused group administration with 403 and nothing changes', async () => {
    const group = (await call('POST', '/groups', adminToken, { group: { name: 'ops' } })).body.group as Body;
    await env.cloud.keystone.assignRole({ user: 'bob', project: 'team', role: 'member' });
    const bob = await token({ name: 'bob', password: 'bob-secret' }, projectScope('team'));
    const before = JSON.stringify([
      await rows('groups'),
      await rows('user_group_membership'),
      await rows('group_role_assignments'),
    ]);
    for (const [method, url, payload] of [
      ['POST', '/groups', { group: { name: 'x' } }],
      ['PATCH', `/groups/${group.id}`, { group: { name: 'y' } }],
      ['DELETE', `/groups/${group.id}`],
      ['PUT', `/groups/${group.id}/users/${bobId}`],
      ['PUT', `/projects/${teamProjectId}/groups/${group.id}/roles/${memberRoleId}`],
      ['GET', '/groups'],
    ] as const) {
      const res = await call(method, url, bob.token, payload);
      assert.equal(res.status, 403, `${method} ${url}`);
      assert.match(
        res.body.error.message,
        /^You are not authorized to perform the requested action: identity:/,
      );
    }
    const bad = await call('POST', '/groups', adminToken, { group: { name: '' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.title, 'Bad Request');
    assert.equal(
      JSON.stringify([
        await rows('groups'),
        await rows('user_group_membership'),
        await rows('group_role_assignments'),
      ]),
      before,
    );
    await env.cloud.keystone.unassignRole({ user: 'bob', project: 'team', role: 'member' });
    assert.equal((await call('DELETE', `/groups/${group.id}`, adminToken)).status, 204);
  });

  test('a group’s roles: members get them in tokens, scopes and the effective assignments; revoked, they go', async () => {
    const ks = env.cloud.keystone;
    const carol = await ks.createUser({ name: 'carol', domainId: 'default', password: 'carol-secret' });
    const carolLogin = { name: 'carol', password: 'carol-secret' };
    const group = (await call('POST', '/groups', adminToken, { group: { name: 'team-members' } })).body
      .group as Body;
    const domain = (await call('POST', '/domains', adminToken, { domain: { name: 'other' } })).body
      .domain as Body;
    // No role yet: no project token, no scopes offered.
    assert.equal((await token(carolLogin, projectScope('team'))).status, 401);
    const projectGrant = `/projects/${teamProjectId}/groups/${group.id}/roles/${memberRoleId}`;
    const domainGrant = `/domains/${domain.id}/groups/${group.id}/roles/${memberRoleId}`;
    assert.equal((await call('PUT', projectGrant, adminToken)).status, 204);
    assert.equal((await call('PUT', domainGrant, adminToken)).status, 204);
    assert.equal((await call('HEAD', projectGrant, adminToken)).status, 204);
    assert.deepEqual(
      (await call('GET', `/projects/${teamProjectId}/groups/${group.id}/roles`, adminToken)).body.roles.map(
        (r: Body) => r.name,
      ),
      ['member'],
    );
    assert.deepEqual(
      (await rows('group_role_assignments')).map((r) => [r.group_id, r.project_id, r.role_id]),
      [[group.id, teamProjectId, memberRoleId]],
    );
    assert.deepEqual(
      (await rows('group_domain_role_assignments')).map((r) => [r.group_id, r.domain_id, r.role_id]),
      [[group.id, domain.id, memberRoleId]],
    );
    // Not a member yet: still nothing.
    assert.equal((await token(carolLogin, projectScope('team'))).status, 401);
    assert.equal((await call('PUT', `/groups/${group.id}/users/${carol.id}`, adminToken)).status, 204);

    const scoped = await token(carolLogin, projectScope('team'));
    assert.equal(scoped.status, 201);
    assert.deepEqual(scoped.body.token.roles.map((r: Body) => r.name).sort(), ['member', 'reader']);
    const unscoped = await token(carolLogin);
    assert.equal(unscoped.status, 201);
    assert.equal(unscoped.body.token.project, undefined);
    const projects = await call('GET', '/auth/projects', unscoped.token);
    assert.deepEqual(
      projects.body.projects.map((p: Body) => p.id),
      [teamProjectId],
    );
    const domains = await call('GET', '/auth/domains', unscoped.token);
    assert.deepEqual(
      domains.body.domains.map((d: Body) => d.id),
      [domain.id],
    );
    const own = await call('GET', `/users/${carol.id}/projects`, unscoped.token);
    assert.deepEqual(
      own.body.projects.map((p: Body) => p.id),
      [teamProjectId],
    );
    const onDomain = await token(carolLogin, { domain: { id: domain.id } });
    assert.equal(onDomain.status, 201);
    assert.equal(onDomain.body.token.domain.id, domain.id);

    // The report: the group grants as such, then as the member holds them (with the implied reader).
    const asGranted = await call('GET', `/role_assignments?group.id=${group.id}`, adminToken);
    assert.deepEqual(
      asGranted.body.role_assignments.map((a: Body) => [
        a.group.id,
        a.scope.project?.id ?? a.scope.domain?.id,
        a.role.id,
      ]),
      [
        [group.id, teamProjectId, memberRoleId],
        [group.id, domain.id, memberRoleId],
      ],
    );
    const effective = await call(
      'GET',
      `/role_assignments?effective&user.id=${carol.id}&scope.project.id=${teamProjectId}&include_names`,
      adminToken,
    );
    const held = effective.body.role_assignments as Body[];
    assert.deepEqual(
      held.map((a) => [a.user.id, a.role.name]),
      [
        [carol.id, 'member'],
        [carol.id, 'reader'],
      ],
    );
    assert.match(held[0]?.links.membership, new RegExp(`/groups/${group.id}/users/${carol.id}$`));
    assert.match(held[1]?.links.prior_role, new RegExp(`/roles/${memberRoleId}$`));
    const both = await call('GET', `/role_assignments?effective&group.id=${group.id}`, adminToken);
    assert.equal(both.status, 400);

    // Leaving the group revokes carol's tokens and takes the scopes.
    assert.equal((await call('DELETE', `/groups/${group.id}/users/${carol.id}`, adminToken)).status, 204);
    assert.equal((await call('GET', '/auth/tokens', adminToken, undefined)).status, 400);
    const check = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': adminToken, 'x-subject-token': scoped.token },
    });
    assert.equal(check.statusCode, 404);
    assert.equal((await token(carolLogin, projectScope('team'))).status, 401);
    assert.equal((await call('DELETE', projectGrant, adminToken)).status, 204);
    assert.equal((await call('DELETE', projectGrant, adminToken)).status, 404);
    assert.deepEqual(await rows('group_role_assignments'), []);
    await call('PATCH', `/domains/${domain.id}`, adminToken, { domain: { enabled: false } });
    assert.equal((await call('DELETE', `/domains/${domain.id}`, adminToken)).status, 204);
    assert.deepEqual(await rows('group_domain_role_assignments'), []);
    assert.equal((await call('DELETE', `/groups/${group.id}`, adminToken)).status, 204);
  });

  test('role inference rules: create, check, show, list, effective assignments, delete', async () => {
    const prior = (await call('POST', '/roles', adminToken, { role: { name: 'prior' } })).body.role as Body;
    const implied = (await call('POST', '/roles', adminToken, { role: { name: 'implied' } })).body
      .role as Body;
    const rule = `/roles/${prior.id}/implies/${implied.id}`;
    assert.equal((await call('HEAD', rule, adminToken)).status, 404);
    const created = await call('PUT', rule, adminToken);
    assert.equal(created.status, 201);
    assert.deepEqual(
      [created.body.role_inference.prior_role.name, created.body.role_inference.implies.name],
      ['prior', 'implied'],
    );
    assert.equal((await call('HEAD', rule, adminToken)).status, 204);
    assert.equal((await call('GET', rule, adminToken)).status, 200);
    const list = await call('GET', `/roles/${prior.id}/implies`, adminToken);
    assert.deepEqual(
      list.body.role_inference.implies.map((r: Body) => r.id),
      [implied.id],
    );
    const all = (await call('GET', '/role_inferences', adminToken)).body.role_inferences as Body[];
    assert.deepEqual(
      all.find((r) => r.prior_role.id === prior.id)?.implies.map((r: Body) => r.id),
      [implied.id],
    );
    const admin = (await call('GET', '/roles?name=admin', adminToken)).body.roles[0] as Body;
    assert.equal((await call('PUT', `/roles/${prior.id}/implies/${admin.id}`, adminToken)).status, 403);

    // A user granted `prior` holds `implied` too, in its token and the effective report.
    await env.cloud.keystone.assignRole({ user: 'bob', project: 'team', role: 'prior' });
    const bob = await token({ name: 'bob', password: 'bob-secret' }, projectScope('team'));
    assert.deepEqual(bob.body.token.roles.map((r: Body) => r.name).sort(), ['implied', 'prior']);
    const effective = async () =>
      (
        await call(
          'GET',
          `/role_assignments?effective&user.id=${bobId}&scope.project.id=${teamProjectId}`,
          adminToken,
        )
      ).body.role_assignments.map((a: Body) => a.role.id);
    assert.deepEqual(await effective(), [prior.id, implied.id]);
    assert.equal((await call('DELETE', rule, adminToken)).status, 204);
    assert.deepEqual(await effective(), [prior.id]);
    assert.equal((await call('GET', rule, adminToken)).status, 404);
    const rows_ = await env.cloud.keystone.serviceDb.db
      .selectFrom('implied_roles')
      .selectAll()
      .where('prior_role_id', '=', prior.id)
      .execute();
    assert.deepEqual(rows_, []);
    // PATCH and DELETE of a role; the grant goes with it.
    const renamed = await call('PATCH', `/roles/${prior.id}`, adminToken, { role: { name: 'prior2' } });
    assert.equal(renamed.body.role.name, 'prior2');
    assert.equal((await call('DELETE', `/roles/${prior.id}`, adminToken)).status, 204);
    assert.deepEqual(await env.cloud.keystone.listRoleAssignments({ roleId: prior.id }), []);
    assert.equal((await call('GET', `/roles/${prior.id}`, adminToken)).status, 404);
  });

  test('no scope asked: the user’s default_project_id when it holds a role there, else unscoped', async () => {
    const created = await call('POST', '/users', adminToken, {
      user: { name: 'dora', password: 'dora-secret', default_project_id: teamProjectId },
    });
    assert.equal(created.status, 201);
    const dora = { name: 'dora', password: 'dora-secret' };
    const before = await token(dora);
    assert.equal(before.status, 201);
    assert.equal(before.body.token.project, undefined);
    await env.cloud.keystone.assignRole({ user: 'dora', project: 'team', role: 'reader' });
    const after_ = await token(dora);
    assert.equal(after_.body.token.project.id, teamProjectId);
    // An explicit 'unscoped' stays unscoped.
    const explicit = await token(dora, 'unscoped');
    assert.equal(explicit.status, 201);
    assert.equal(explicit.body.token.project, undefined);
  });
});
