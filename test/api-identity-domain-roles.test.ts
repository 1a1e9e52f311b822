/**
 * Keystone v3 domain-specific roles over HTTP (inject; keystone/api/roles.py, policies/role.py): /v3/roles
 * with domain_id (create, ?domain_id, show, update, delete under the *_domain_role rules), inference rules
 * (no global role implies one), grants within the role's domain only, role_assignments naming its domain,
 * effective assignments and tokens with what it implies only. Refused requests change no row.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ApiTestEnv, identityCaller, openApiTestEnvWithUsers } from './helpers/api';

const json = { 'content-type': 'application/json' };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

describe('Keystone v3 API: domain-specific roles', () => {
  let env: ApiTestEnv;
  let adminToken: string;
  let memberToken: string;
  let domainId: string;
  let parentId: string;
  let childId: string;
  let userId: string;
  let roleId: string;

  before(async () => {
    const opened = await openApiTestEnvWithUsers(
      { services: ['identity'], label: 'api-identity-domain-roles' },
      { admin: ['admin', 'admin', 'admin'], member: ['bob', 'team', 'member'] },
    );
    env = opened.env;
    adminToken = opened.users.admin.token;
    memberToken = opened.users.member.token;
    const ks = env.cloud.keystone;
    domainId = (await ks.createDomain({ name: 'tree' })).id;
    parentId = (await ks.createProject({ name: 'parent', domainId })).id;
    childId = (await ks.createProject({ name: 'child', domainId, parentId })).id;
    userId = (await ks.createUser({ name: 'carol', domainId, password: 'carol-secret' })).id;
    roleId = (await ks.createRole({ name: 'auditor' })).id;
  });
  after(async () => {
    await env?.close();
  });

  async function token(name: string, password: string, scope: unknown, domain: unknown = { id: 'default' }) {
    const res = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      headers: json,
      payload: {
        auth: { identity: { methods: ['password'], password: { user: { name, domain, password } } }, scope },
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    return String(res.headers['x-subject-token']);
  }

  const call = identityCaller(() => env);
  test('domain-specific roles: create, list by domain, show, update, delete; inference, grants, effective', async () => {
    const created = await call('POST', '/roles', adminToken, {
      role: { name: 'tree-role', domain_id: domainId },
    });
    assert.equal(created.status, 201);
    const role = created.body.role as Body;
    assert.equal(role.domain_id, domainId);
    assert.equal(role.name, 'tree-role');
    // Same name in the domain: 409; a global role of that name is fine.
    assert.equal(
      (await call('POST', '/roles', adminToken, { role: { name: 'tree-role', domain_id: domainId } })).status,
      409,
    );
    const global = await call('POST', '/roles', adminToken, { role: { name: 'tree-role' } });
    assert.equal(global.status, 201);
    assert.equal(global.body.role.domain_id, null);
    assert.equal(
      (await call('POST', '/roles', adminToken, { role: { name: 'x', domain_id: 'nope' } })).status,
      404,
    );
    // A member may not create one (nothing written).
    const rolesBefore = await env.cloud.keystone.serviceDb.db.selectFrom('roles').selectAll().execute();
    const refused = await call('POST', '/roles', memberToken, { role: { name: 'y', domain_id: domainId } });
    assert.equal(refused.status, 403);
    assert.equal(
      refused.body.error.message,
      'You are not authorized to perform the requested action: identity:create_domain_role.',
    );
    assert.equal((await call('GET', `/roles/${role.id}`, memberToken)).status, 403);
    assert.equal((await call('GET', `/roles?domain_id=${domainId}`, memberToken)).status, 403);
    assert.deepEqual(
      await env.cloud.keystone.serviceDb.db.selectFrom('roles').selectAll().execute(),
      rolesBefore,
    );

    const listed = await call('GET', `/roles?domain_id=${domainId}`, adminToken);
    assert.deepEqual(listed.body.roles, [role]);
    assert.ok(!(await call('GET', '/roles', adminToken)).body.roles.some((r: Body) => r.id === role.id));
    assert.deepEqual((await call('GET', `/roles/${role.id}`, adminToken)).body.role, role);
    const renamed = await call('PATCH', `/roles/${role.id}`, adminToken, { role: { name: 'tree-role-2' } });
    assert.deepEqual(renamed.body.role, { ...role, name: 'tree-role-2' });
    const moved = await call('PATCH', `/roles/${role.id}`, adminToken, { role: { domain_id: 'default' } });
    assert.equal(moved.status, 400);
    assert.equal(moved.body.error.message, 'Update of `domain_id` is not allowed.');

    // Inference: a global role cannot imply it (403); it may imply a global role.
    const implied = await call('PUT', `/roles/${roleId}/implies/${role.id}`, adminToken);
    assert.equal(implied.status, 403);
    assert.equal(implied.body.error.message, 'Global role cannot imply a domain-specific role');
    assert.equal((await call('PUT', `/roles/${role.id}/implies/${roleId}`, adminToken)).status, 201);
    const rules = await call('GET', `/roles/${role.id}/implies`, adminToken);
    assert.equal(rules.status, 200);
    assert.equal(rules.body.role_inference.prior_role.id, role.id);

    // Granted on another domain's project: 403; on its own domain's: effective shows what it implies only.
    const team = (await env.cloud.keystone.getProject({ project: 'team' })).id;
    const mismatch = await call('PUT', `/projects/${team}/users/${userId}/roles/${role.id}`, adminToken);
    assert.equal(mismatch.status, 403);
    assert.match(mismatch.body.error.message, /must be in the same domain as the role/);
    const onSystem = await call('PUT', `/system/users/${userId}/roles/${role.id}`, adminToken);
    assert.equal(onSystem.status, 400);
    assert.match(onSystem.body.error.message, /Unable to grant a domain-specific role in a system context/);
    assert.equal(
      (await call('PUT', `/projects/${parentId}/users/${userId}/roles/${role.id}`, adminToken)).status,
      204,
    );
    const named = await call(
      'GET',
      `/role_assignments?include_names&user.id=${userId}&scope.project.id=${parentId}`,
      adminToken,
    );
    assert.deepEqual(named.body.role_assignments[0].role, {
      id: role.id,
      name: 'tree-role-2',
      domain: { id: domainId, name: 'tree' },
    });
    const grants = await call('GET', `/projects/${parentId}/users/${userId}/roles`, adminToken);
    assert.deepEqual(
      grants.body.roles.map((r: Body) => [r.id, r.domain_id]),
      [[role.id, domainId]],
    );
    const effective = await call(
      'GET',
      `/role_assignments?effective&user.id=${userId}&scope.project.id=${parentId}`,
      adminToken,
    );
    assert.deepEqual(
      effective.body.role_assignments.map((a: Body) => a.role.id),
      [roleId],
    );
    const carol = await token('carol', 'carol-secret', { project: { id: parentId } }, { id: domainId });
    const validated = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': adminToken, 'x-subject-token': carol },
    });
    assert.deepEqual(
      (validated.json() as Body).token.roles.map((r: Body) => r.id),
      [roleId],
    );

    // OS-INHERIT to the projects below the parent: the child's effective roles are again what it implies.
    assert.equal(
      (
        await call(
          'PUT',
          `/OS-INHERIT/projects/${parentId}/users/${userId}/roles/${role.id}/inherited_to_projects`,
          adminToken,
        )
      ).status,
      204,
    );
    const onChild = await call(
      'GET',
      `/role_assignments?effective&user.id=${userId}&scope.project.id=${childId}`,
      adminToken,
    );
    assert.deepEqual(
      onChild.body.role_assignments.map((a: Body) => a.role.id),
      [roleId],
    );

    assert.equal((await call('DELETE', `/roles/${role.id}`, adminToken)).status, 204);
    assert.deepEqual((await call('GET', `/roles?domain_id=${domainId}`, adminToken)).body.roles, []);
    assert.equal((await call('GET', `/roles/${role.id}`, adminToken)).status, 404);
  });
});
