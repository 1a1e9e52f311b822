/**
 * Keystone v3 OS-INHERIT over HTTP (inject): a role inherited to projects from a domain or a project, to a
 * user or a group, held on every project below (in tokens, /v3/auth/projects and effective role
 * assignments) and not on the target itself; gone once revoked. Admin only; refused requests change nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ApiTestEnv, identityCaller, openApiTestEnv, seedUserToken } from './helpers/api';

const json = { 'content-type': 'application/json' };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

describe('Keystone v3 API: OS-INHERIT', () => {
  let env: ApiTestEnv;
  let admin: { token: string };
  let member: { token: string; userId: string };
  let domainId: string;
  let parentId: string;
  let leafId: string;
  let userId: string;
  let groupId: string;
  let roleId: string;

  before(async () => {
    env = await openApiTestEnv({ services: ['identity'], label: 'api-identity-inherit' });
    admin = await seedUserToken(env, 'inh-admin', 'inh-admin-project', 'admin');
    member = await seedUserToken(env, 'inh-member', 'inh-member-project', 'member');
    const ks = env.cloud.keystone;
    domainId = (await ks.createDomain({ name: 'inh-domain' })).id;
    parentId = (await ks.createProject({ name: 'inh-parent', domainId })).id;
    leafId = (await ks.createProject({ name: 'inh-leaf', domainId, parentId })).id;
    userId = (await ks.createUser({ name: 'inh-user', domainId, password: 'inh-user-pw' })).id;
    groupId = (await ks.createGroup({ name: 'inh-group', domainId })).id;
    roleId = (await ks.ensureRole({ name: 'inh-role' })).id;
  });
  after(async () => {
    await env?.close();
  });

  const call = identityCaller(() => env);
  const rows = () =>
    env.cloud.keystone.serviceDb.db.selectFrom('inherited_role_assignments').selectAll().execute();
  async function projectToken(projectId: string) {
    const res = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      headers: json,
      payload: {
        auth: {
          identity: { methods: ['password'], password: { user: { id: userId, password: 'inh-user-pw' } } },
          scope: { project: { id: projectId } },
        },
      },
    });
    return { status: res.statusCode, body: res.json() as Body };
  }

  test('on a domain, to a user: held on every project of the domain, listed, checked, revoked', async () => {
    const path = `/OS-INHERIT/domains/${domainId}/users/${userId}/roles/${roleId}/inherited_to_projects`;
    assert.equal((await call('PUT', path, admin.token)).status, 204);
    assert.equal((await call('PUT', path, admin.token)).status, 204);
    assert.equal((await rows()).length, 1);
    assert.equal((await call('HEAD', path, admin.token)).status, 204);
    const listed = await call(
      'GET',
      `/OS-INHERIT/domains/${domainId}/users/${userId}/roles/inherited_to_projects`,
      admin.token,
    );
    assert.deepEqual(
      listed.body.roles.map((r: Body) => r.id),
      [roleId],
    );
    // Held below the domain: a token for each project, with the role.
    for (const project of [parentId, leafId]) {
      const t = await projectToken(project);
      assert.equal(t.status, 201);
      assert.ok(t.body.token.roles.some((r: Body) => r.id === roleId));
    }
    const effective = await call(
      'GET',
      `/role_assignments?effective&user.id=${userId}&scope.project.id=${leafId}`,
      admin.token,
    );
    assert.equal(effective.body.role_assignments.length, 1);
    assert.match(
      effective.body.role_assignments[0].links.assignment,
      /\/OS-INHERIT\/domains\/.*\/inherited_to_projects$/,
    );
    const plain = await call(
      'GET',
      `/role_assignments?scope.OS-INHERIT:inherited_to=projects&user.id=${userId}`,
      admin.token,
    );
    assert.deepEqual(plain.body.role_assignments[0].scope, {
      domain: { id: domainId },
      'OS-INHERIT:inherited_to': 'projects',
    });
    // Not on the domain itself.
    assert.deepEqual(
      (
        await call(
          'GET',
          `/role_assignments?effective&user.id=${userId}&scope.domain.id=${domainId}`,
          admin.token,
        )
      ).body.role_assignments,
      [],
    );

    assert.equal((await call('DELETE', path, admin.token)).status, 204);
    assert.equal((await call('DELETE', path, admin.token)).status, 404);
    assert.equal((await call('HEAD', path, admin.token)).status, 404);
    assert.equal((await projectToken(leafId)).status, 401);
    assert.deepEqual(
      (
        await call(
          'GET',
          `/role_assignments?effective&user.id=${userId}&scope.project.id=${leafId}`,
          admin.token,
        )
      ).body.role_assignments,
      [],
    );
  });

  test('on a project, to a group: its members hold it on the descendants, not on the project', async () => {
    await env.cloud.keystone.addGroupMember({ groupId, userId });
    const path = `/OS-INHERIT/projects/${parentId}/groups/${groupId}/roles/${roleId}/inherited_to_projects`;
    assert.equal((await call('PUT', path, admin.token)).status, 204);
    assert.equal((await projectToken(leafId)).status, 201);
    assert.equal((await projectToken(parentId)).status, 401);
    const effective = await call('GET', `/role_assignments?effective&user.id=${userId}`, admin.token);
    assert.deepEqual(
      effective.body.role_assignments.map((a: Body) => a.scope.project?.id),
      [leafId],
    );
    assert.equal((await call('DELETE', path, admin.token)).status, 204);
    assert.equal((await projectToken(leafId)).status, 401);
  });

  test('admin only, and unknown references are 404; neither changes anything', async () => {
    const path = `/OS-INHERIT/domains/${domainId}/users/${userId}/roles/${roleId}/inherited_to_projects`;
    const denied = await call('PUT', path, member.token);
    assert.equal(denied.status, 403);
    assert.match(denied.body.error.message, /identity:create_grant/);
    assert.equal(
      (
        await call(
          'PUT',
          `/OS-INHERIT/domains/${domainId}/users/nobody/roles/${roleId}/inherited_to_projects`,
          admin.token,
        )
      ).status,
      404,
    );
    assert.equal(
      (
        await call(
          'PUT',
          `/OS-INHERIT/projects/nowhere/users/${userId}/roles/${roleId}/inherited_to_projects`,
          admin.token,
        )
      ).status,
      404,
    );
    assert.equal(
      (
        await call(
          'PUT',
          `/OS-INHERIT/domains/${domainId}/groups/${groupId}/roles/norole/inherited_to_projects`,
          admin.token,
        )
      ).status,
      404,
    );
    assert.deepEqual(await rows(), []);
  });
});
