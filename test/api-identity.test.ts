/**
 * Keystone v3 over HTTP (inject): token issue by the password and token methods, validation and revocation
 * of a subject token, and project/user/role administration with Keystone's policies, status codes and
 * error bodies. Refused requests change no row.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openApiTestEnv, TEST_PUBLIC_URL, type ApiTestEnv } from './helpers/api';

const json = { 'content-type': 'application/json' };
// Keystone's bodies are read field by field in the hierarchy test; each assertion checks the shape it uses.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

function passwordAuth(user: string, password: string, project: string) {
  return {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: user, domain: { name: 'Default' }, password } },
      },
      scope: { project: { name: project, domain: { id: 'default' } } },
    },
  };
}

describe('Keystone v3 API', () => {
  let env: ApiTestEnv;
  let adminToken: string;
  let memberToken: string;
  let demoProjectId: string;

  before(async () => {
    env = await openApiTestEnv({ services: ['identity'], label: 'api-identity' });
    const ks = env.cloud.keystone;
    await ks.ensureProject({ name: 'admin' });
    demoProjectId = (await ks.ensureProject({ name: 'demo' })).id;
    await ks.ensureUser({ name: 'admin', password: 'admin-secret' });
    await ks.ensureUser({ name: 'alice', password: 'alice-secret' });
    await ks.assignRole({ user: 'admin', project: 'admin', role: 'admin' });
    await ks.assignRole({ user: 'alice', project: 'demo', role: 'member' });
    adminToken = await issue('admin', 'admin-secret', 'admin');
    memberToken = await issue('alice', 'alice-secret', 'demo');
  });
  after(async () => {
    await env?.close();
  });

  async function issue(user: string, password: string, project: string): Promise<string> {
    const res = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      headers: json,
      payload: passwordAuth(user, password, project),
    });
    assert.equal(res.statusCode, 201, res.body);
    return String(res.headers['x-subject-token']);
  }

  const counts = async () => {
    const ks = env.cloud.keystone;
    return {
      projects: (await ks.listProjects()).length,
      users: (await ks.listUsers()).length,
      assignments: (await ks.listRoleAssignments()).length,
    };
  };

  test('version documents: 300 with v3 at /identity, v3 itself at /identity/v3', async () => {
    const root = await env.app.inject({ method: 'GET', url: '/identity' });
    assert.equal(root.statusCode, 300);
    const values = (root.json() as { versions: { values: Array<Record<string, unknown>> } }).versions.values;
    assert.equal(values[0]?.id, 'v3.14');
    assert.deepEqual(values[0]?.links, [{ rel: 'self', href: `${TEST_PUBLIC_URL}/identity/v3/` }]);
    const v3 = await env.app.inject({ method: 'GET', url: '/identity/v3' });
    assert.equal(v3.statusCode, 200);
    assert.equal((v3.json() as { version: { status: string } }).version.status, 'stable');
  });

  test('password token: 201, X-Subject-Token, the token body in Keystone’s format with a catalog', async () => {
    const res = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      headers: json,
      payload: passwordAuth('alice', 'alice-secret', 'demo'),
    });
    assert.equal(res.statusCode, 201);
    const subject = String(res.headers['x-subject-token']);
    assert.ok(subject.length > 20);
    const { token } = res.json() as { token: Record<string, unknown> };
    assert.deepEqual(token.methods, ['password']);
    assert.deepEqual(token.project, {
      domain: { id: 'default', name: 'Default' },
      id: demoProjectId,
      name: 'demo',
    });
    assert.equal((token.user as { name: string }).name, 'alice');
    assert.deepEqual((token.roles as Array<{ name: string }>).map((r) => r.name).sort(), [
      'member',
      'reader',
    ]);
    assert.match(String(token.expires_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.match(String(token.issued_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.equal((token.audit_ids as string[]).length, 1);
    const catalog = token.catalog as Array<{ type: string; endpoints: Array<{ url: string }> }>;
    assert.equal(
      catalog.find((s) => s.type === 'compute')?.endpoints[0]?.url,
      `${TEST_PUBLIC_URL}/compute/v2.1`,
    );
    // The token works on the other routes, and ?nocatalog leaves the catalog out.
    const byIds = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens?nocatalog',
      headers: json,
      payload: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { id: (token.user as { id: string }).id, password: 'alice-secret' } },
          },
          scope: { project: { id: demoProjectId } },
        },
      },
    });
    assert.equal(byIds.statusCode, 201, byIds.body);
    assert.equal((byIds.json() as { token: { catalog?: unknown } }).token.catalog, undefined);
  });

  test('a wrong password, an unknown user or a project without a role: the same 401', async () => {
    for (const payload of [
      passwordAuth('alice', 'wrong', 'demo'),
      passwordAuth('nobody', 'alice-secret', 'demo'),
      passwordAuth('alice', 'alice-secret', 'admin'),
    ]) {
      const res = await env.app.inject({
        method: 'POST',
        url: '/identity/v3/auth/tokens',
        headers: json,
        payload,
      });
      assert.equal(res.statusCode, 401);
      assert.deepEqual(res.json(), {
        error: {
          code: 401,
          message: 'The request you have made requires authentication.',
          title: 'Unauthorized',
        },
      });
      assert.equal(res.headers['x-subject-token'], undefined);
    }
  });

  test('malformed auth bodies are 400 in Keystone’s format', async () => {
    const bad = [
      '{"auth": ',
      JSON.stringify({ auth: { identity: { methods: 'password' } } }),
      JSON.stringify({ nothing: true }),
      JSON.stringify({
        ...passwordAuth('alice', 'alice-secret', 'demo'),
        auth: {
          identity: { methods: ['password'], password: { user: { name: 'alice', password: 'x' } } },
          scope: { project: { name: 'demo', domain: { name: 'Default' } } },
        },
      }),
    ];
    for (const payload of bad) {
      const res = await env.app.inject({
        method: 'POST',
        url: '/identity/v3/auth/tokens',
        headers: json,
        payload,
      });
      assert.equal(res.statusCode, 400, payload);
      const body = res.json() as { error: { code: number; title: string } };
      assert.equal(body.error.code, 400);
      assert.equal(body.error.title, 'Bad Request');
    }
  });

  test('token method re-scopes; GET/HEAD validate a subject token; DELETE revokes it', async () => {
    const rescoped = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      headers: json,
      payload: {
        auth: {
          identity: { methods: ['token'], token: { id: memberToken } },
          scope: { project: { id: demoProjectId } },
        },
      },
    });
    assert.equal(rescoped.statusCode, 201, rescoped.body);
    const token = String(rescoped.headers['x-subject-token']);
    const body = rescoped.json() as { token: { methods: string[]; audit_ids: string[] } };
    assert.deepEqual(body.token.methods, ['token', 'password']);
    assert.equal(body.token.audit_ids.length, 2);

    const show = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': adminToken, 'x-subject-token': token },
    });
    assert.equal(show.statusCode, 200);
    assert.equal(show.headers['x-subject-token'], token);
    assert.equal((show.json() as { token: { project: { id: string } } }).token.project.id, demoProjectId);
    const head = await env.app.inject({
      method: 'HEAD',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': memberToken, 'x-subject-token': token },
    });
    assert.equal(head.statusCode, 200);
    // A member may not look at the admin's token.
    const peek = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': memberToken, 'x-subject-token': adminToken },
    });
    assert.equal(peek.statusCode, 403);

    const del = await env.app.inject({
      method: 'DELETE',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': memberToken, 'x-subject-token': token },
    });
    assert.equal(del.statusCode, 204);
    const gone = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': adminToken, 'x-subject-token': token },
    });
    assert.equal(gone.statusCode, 404);
    assert.equal((gone.json() as { error: { code: number } }).error.code, 404);
    const revokedUse = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/projects',
      headers: { 'x-auth-token': token },
    });
    assert.equal(revokedUse.statusCode, 401);
  });

  test('a missing or forged token: 401 with WWW-Authenticate naming the identity endpoint', async () => {
    for (const headers of [
      {},
      { 'x-auth-token': 'forged' },
      { 'x-auth-token': `${adminToken.slice(0, -4)}AAAA` },
    ]) {
      const res = await env.app.inject({ method: 'GET', url: '/identity/v3/projects', headers });
      assert.equal(res.statusCode, 401);
      assert.equal(res.headers['www-authenticate'], `Keystone uri="${TEST_PUBLIC_URL}/identity"`);
      assert.equal((res.json() as { error: { title: string } }).error.title, 'Unauthorized');
    }
  });

  test('the caller’s projects and catalog', async () => {
    const projects = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/projects',
      headers: { 'x-auth-token': memberToken },
    });
    assert.deepEqual(
      (projects.json() as { projects: Array<{ name: string }> }).projects.map((p) => p.name),
      ['demo'],
    );
    const catalog = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/catalog',
      headers: { 'x-auth-token': memberToken },
    });
    assert.ok(
      (catalog.json() as { catalog: Array<{ type: string }> }).catalog.some((s) => s.type === 'volumev3'),
    );
  });

  test('admin: project and user create, list, show, delete; grants and the assignments report', async () => {
    const admin = { ...json, 'x-auth-token': adminToken };
    const created = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/projects',
      headers: admin,
      payload: { project: { name: 'p1', description: 'first', enabled: true } },
    });
    assert.equal(created.statusCode, 201, created.body);
    const project = (created.json() as { project: { id: string; domain_id: string; name: string } }).project;
    assert.equal(project.domain_id, 'default');
    assert.equal((await env.cloud.keystone.getProject({ project: project.id })).description, 'first');

    const dup = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/projects',
      headers: admin,
      payload: { project: { name: 'p1' } },
    });
    assert.equal(dup.statusCode, 409);
    assert.equal((dup.json() as { error: { title: string } }).error.title, 'Conflict');

    const list = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/projects?name=p1',
      headers: admin,
    });
    assert.deepEqual(
      (list.json() as { projects: Array<{ id: string }> }).projects.map((p) => p.id),
      [project.id],
    );

    const user = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/users',
      headers: admin,
      payload: { user: { name: 'bob', password: 'bob-secret', email: 'bob@example.org' } },
    });
    assert.equal(user.statusCode, 201, user.body);
    const bob = (user.json() as { user: { id: string; email: string; password?: string } }).user;
    assert.equal(bob.email, 'bob@example.org');
    assert.equal(bob.password, undefined);

    const roles = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/roles?name=member',
      headers: admin,
    });
    const member = (roles.json() as { roles: Array<{ id: string }> }).roles[0]!;
    const grant = `/identity/v3/projects/${project.id}/users/${bob.id}/roles/${member.id}`;
    assert.equal((await env.app.inject({ method: 'HEAD', url: grant, headers: admin })).statusCode, 404);
    assert.equal((await env.app.inject({ method: 'PUT', url: grant, headers: admin })).statusCode, 204);
    assert.equal((await env.app.inject({ method: 'HEAD', url: grant, headers: admin })).statusCode, 204);
    const report = await env.app.inject({
      method: 'GET',
      url: `/identity/v3/role_assignments?user.id=${bob.id}&include_names`,
      headers: admin,
    });
    assert.deepEqual((report.json() as { role_assignments: unknown[] }).role_assignments, [
      {
        role: { id: member.id, name: 'member' },
        user: { id: bob.id, name: 'bob', domain: { id: 'default', name: 'Default' } },
        scope: { project: { id: project.id, name: 'p1', domain: { id: 'default', name: 'Default' } } },
        links: { assignment: `${TEST_PUBLIC_URL}${grant}` },
      },
    ]);
    // bob can now log in to p1 and sees himself, but not the project list.
    const bobToken = await issue('bob', 'bob-secret', 'p1');
    const self = await env.app.inject({
      method: 'GET',
      url: `/identity/v3/users/${bob.id}`,
      headers: { 'x-auth-token': bobToken },
    });
    assert.equal(self.statusCode, 200);
    const ownProject = await env.app.inject({
      method: 'GET',
      url: `/identity/v3/projects/${project.id}`,
      headers: { 'x-auth-token': bobToken },
    });
    assert.equal(ownProject.statusCode, 200);

    assert.equal((await env.app.inject({ method: 'DELETE', url: grant, headers: admin })).statusCode, 204);
    assert.equal((await env.app.inject({ method: 'DELETE', url: grant, headers: admin })).statusCode, 404);
    assert.equal(
      (await env.app.inject({ method: 'DELETE', url: `/identity/v3/users/${bob.id}`, headers: admin }))
        .statusCode,
      204,
    );
    assert.equal(
      (await env.app.inject({ method: 'DELETE', url: `/identity/v3/projects/${project.id}`, headers: admin }))
        .statusCode,
      204,
    );
    const missing = await env.app.inject({
      method: 'GET',
      url: `/identity/v3/projects/${project.id}`,
      headers: admin,
    });
    assert.equal(missing.statusCode, 404);
    assert.deepEqual(missing.json(), {
      error: { code: 404, message: `Could not find project: ${project.id}.`, title: 'Not Found' },
    });
    assert.equal(
      (await env.cloud.keystone.listProjects()).some((p) => p.id === project.id),
      false,
    );
  });

  test('unscoped and domain-scoped tokens (domain by id or name): Keystone’s bodies and policies', async () => {
    const post = (payload: object) =>
      env.app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', headers: json, payload });
    const identity = (user: string, password: string) => ({
      methods: ['password'],
      password: { user: { name: user, domain: { id: 'default' }, password } },
    });
    const get = (url: string, token: string) =>
      env.app.inject({ method: 'GET', url, headers: { 'x-auth-token': token } });

    // No scope: an unscoped token, with neither roles nor a catalog; it may list its projects and re-scope.
    const unscoped = await post({ auth: { identity: identity('alice', 'alice-secret') } });
    assert.equal(unscoped.statusCode, 201, unscoped.body);
    const unscopedBody = unscoped.json() as { token: Record<string, unknown> };
    for (const key of ['project', 'domain', 'roles', 'catalog'])
      assert.equal(Object.hasOwn(unscopedBody.token, key), false, key);
    const explicit = await post({ auth: { identity: identity('alice', 'alice-secret'), scope: 'unscoped' } });
    assert.equal(explicit.statusCode, 201, explicit.body);
    const unscopedToken = String(unscoped.headers['x-subject-token']);
    const mine = await get('/identity/v3/auth/projects', unscopedToken);
    assert.deepEqual(
      (mine.json() as { projects: { name: string }[] }).projects.map((p) => p.name),
      ['demo'],
    );
    assert.equal((await get('/identity/v3/auth/catalog', unscopedToken)).statusCode, 403);
    assert.equal((await get('/identity/v3/projects', unscopedToken)).statusCode, 403);
    // The other services take project-scoped tokens only.
    const rescoped = await post({
      auth: {
        identity: { methods: ['token'], token: { id: unscopedToken } },
        scope: { project: { id: demoProjectId } },
      },
    });
    assert.equal(rescoped.statusCode, 201, rescoped.body);
    assert.equal((rescoped.json() as { token: { project: { id: string } } }).token.project.id, demoProjectId);

    // A domain scope needs a role on the domain: none yet, the same 401 as any credential problem.
    const noGrant = await post({
      auth: { identity: identity('alice', 'alice-secret'), scope: { domain: { id: 'default' } } },
    });
    assert.equal(noGrant.statusCode, 401, noGrant.body);

    const ks = env.cloud.keystone;
    const alice = await ks.getUser({ user: 'alice' });
    const reader = (await ks.listRoles()).find((r) => r.name === 'reader')!;
    const other = await ks.ensureDomain({ name: 'other-domain' });
    await ks.ensureProject({ name: 'elsewhere', domain: 'other-domain' });
    const grantUrl = `/identity/v3/domains/default/users/${alice.id}/roles/${reader.id}`;
    // A member may not grant; the admin may, and HEAD then finds the grant.
    const denied = await env.app.inject({
      method: 'PUT',
      url: grantUrl,
      headers: { 'x-auth-token': memberToken },
    });
    assert.equal(denied.statusCode, 403);
    assert.equal((await ks.listDomainRoleAssignments({ userId: alice.id })).length, 0);
    const put = await env.app.inject({
      method: 'PUT',
      url: grantUrl,
      headers: { 'x-auth-token': adminToken },
    });
    assert.equal(put.statusCode, 204, put.body);
    const head = await env.app.inject({
      method: 'HEAD',
      url: grantUrl,
      headers: { 'x-auth-token': adminToken },
    });
    assert.equal(head.statusCode, 204);
    const report = await get('/identity/v3/role_assignments?scope.domain.id=default', adminToken);
    assert.deepEqual((report.json() as { role_assignments: unknown[] }).role_assignments, [
      {
        role: { id: reader.id },
        user: { id: alice.id },
        scope: { domain: { id: 'default' } },
        links: { assignment: `${TEST_PUBLIC_URL}/identity/v3${grantUrl.slice('/identity/v3'.length)}` },
      },
    ]);

    // Domain by id and by name: the token names the domain, its roles (implied ones too) and the catalog.
    for (const domain of [{ id: 'default' }, { name: 'Default' }]) {
      const res = await post({ auth: { identity: identity('alice', 'alice-secret'), scope: { domain } } });
      assert.equal(res.statusCode, 201, res.body);
      const token = (res.json() as { token: Record<string, unknown> }).token;
      assert.deepEqual(token.domain, { id: 'default', name: 'Default' });
      assert.equal(Object.hasOwn(token, 'project'), false);
      assert.deepEqual(
        (token.roles as { name: string }[]).map((r) => r.name),
        ['reader'],
      );
      assert.ok(Array.isArray(token.catalog));
    }
    const domainToken = String(
      (
        await post({
          auth: { identity: identity('alice', 'alice-secret'), scope: { domain: { name: 'Default' } } },
        })
      ).headers['x-subject-token'],
    );
    // Keystone's defaults for a domain reader: its domain's projects and users, not another domain's,
    // and no administration.
    const projects = await get('/identity/v3/projects', domainToken);
    assert.equal(projects.statusCode, 200, projects.body);
    const names = (projects.json() as { projects: { name: string; domain_id: string }[] }).projects;
    assert.ok(names.some((p) => p.name === 'demo'));
    assert.ok(names.every((p) => p.domain_id === 'default'));
    const elsewhere = (await ks.listProjects()).find((p) => p.name === 'elsewhere')!;
    assert.equal((await get(`/identity/v3/projects/${elsewhere.id}`, domainToken)).statusCode, 403);
    assert.equal((await get(`/identity/v3/projects/${demoProjectId}`, domainToken)).statusCode, 200);
    assert.equal((await get('/identity/v3/users', domainToken)).statusCode, 200);
    assert.equal((await get(`/identity/v3/domains/${other.id}`, domainToken)).statusCode, 403);
    assert.equal((await get('/identity/v3/domains/default', domainToken)).statusCode, 200);
    const before = await counts();
    const create = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/projects',
      headers: { ...json, 'x-auth-token': domainToken },
      payload: { project: { name: 'by-a-domain-reader' } },
    });
    assert.equal(create.statusCode, 403);
    assert.deepEqual(await counts(), before);

    // Revoking the grant ends the domain-scoped token at its next validation.
    const del = await env.app.inject({
      method: 'DELETE',
      url: grantUrl,
      headers: { 'x-auth-token': adminToken },
    });
    assert.equal(del.statusCode, 204);
    assert.equal((await get('/identity/v3/projects', domainToken)).statusCode, 401);
  });

  test('PATCH projects and users, extra attributes, the own password change; Keystone’s bodies', async () => {
    const admin = { ...json, 'x-auth-token': adminToken };
    const ks = env.cloud.keystone;
    const created = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/users',
      headers: admin,
      payload: {
        user: { name: 'bob', password: 'bob-secret', description: 'd1', project_id: 'x', enabled: false },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const bob = (created.json() as { user: { id: string; description: string; project_id: string } }).user;
    assert.equal(bob.description, 'd1');
    assert.equal(bob.project_id, 'x');
    assert.deepEqual((await ks.getUser({ user: bob.id })).extra, { description: 'd1', project_id: 'x' });

    const patched = await env.app.inject({
      method: 'PATCH',
      url: `/identity/v3/users/${bob.id}`,
      headers: admin,
      payload: { user: { name: 'bob2', email: 'bob@example.test', enabled: true, description: 'd2' } },
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.deepEqual(
      (patched.json() as { user: Record<string, unknown> }).user,
      (
        (
          await env.app.inject({ method: 'GET', url: `/identity/v3/users/${bob.id}`, headers: admin })
        ).json() as {
          user: Record<string, unknown>;
        }
      ).user,
    );
    const row = await ks.getUser({ user: bob.id });
    assert.equal(row.name, 'bob2');
    assert.equal(row.email, 'bob@example.test');
    assert.equal(row.enabled, true);
    assert.deepEqual(row.extra, { description: 'd2', project_id: 'x' });

    // The user's own password change: a wrong original is 401 and changes nothing; the right one is 204
    // and revokes the user's tokens.
    await ks.assignRole({ user: bob.id, project: 'demo', role: 'member' });
    const bobToken = await issue('bob2', 'bob-secret', 'demo');
    const changeAt = row.passwordChangedAt;
    const wrong = await env.app.inject({
      method: 'POST',
      url: `/identity/v3/users/${bob.id}/password`,
      headers: json,
      payload: { user: { original_password: 'nope', password: 'bob-new' } },
    });
    assert.equal(wrong.statusCode, 401);
    assert.equal((await ks.getUser({ user: bob.id })).passwordChangedAt, changeAt);
    const changed = await env.app.inject({
      method: 'POST',
      url: `/identity/v3/users/${bob.id}/password`,
      headers: json,
      payload: { user: { original_password: 'bob-secret', password: 'bob-new' } },
    });
    assert.equal(changed.statusCode, 204, changed.body);
    const check = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': adminToken, 'x-subject-token': bobToken },
    });
    assert.equal(check.statusCode, 404);
    await issue('bob2', 'bob-new', 'demo');

    // Refused updates change nothing.
    const before = await ks.getUser({ user: bob.id });
    for (const [payload, status] of [
      [{ user: {} }, 400],
      [{ user: { enabled: 'yes' } }, 400],
      [{ user: { domain_id: 'elsewhere' } }, 400],
      [{ user: { name: 'alice' } }, 409],
    ] as const) {
      const res = await env.app.inject({
        method: 'PATCH',
        url: `/identity/v3/users/${bob.id}`,
        headers: admin,
        payload,
      });
      assert.equal(res.statusCode, status, JSON.stringify(payload));
    }
    const member = await env.app.inject({
      method: 'PATCH',
      url: `/identity/v3/users/${bob.id}`,
      headers: { ...json, 'x-auth-token': memberToken },
      payload: { user: { name: 'mallory' } },
    });
    assert.equal(member.statusCode, 403);
    assert.deepEqual(await ks.getUser({ user: bob.id }), before);
    const missing = await env.app.inject({
      method: 'PATCH',
      url: '/identity/v3/users/0123456789abcdef',
      headers: admin,
      payload: { user: { name: 'ghost' } },
    });
    assert.equal(missing.statusCode, 404);

    // Projects: name, description, enabled and extras change; disabling revokes tokens scoped to it.
    const p = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/projects',
      headers: admin,
      payload: { project: { name: 'p-patch', colour: 'blue' } },
    });
    assert.equal(p.statusCode, 201, p.body);
    const projectId = (p.json() as { project: { id: string; colour: string } }).project.id;
    assert.equal((p.json() as { project: { colour: string } }).project.colour, 'blue');
    await ks.assignRole({ user: bob.id, project: projectId, role: 'member' });
    const scoped = await issue('bob2', 'bob-new', 'p-patch');
    const up = await env.app.inject({
      method: 'PATCH',
      url: `/identity/v3/projects/${projectId}`,
      headers: admin,
      payload: { project: { name: 'p-patched', description: 'now', enabled: false, size: 2 } },
    });
    assert.equal(up.statusCode, 200, up.body);
    const prow = await ks.getProject({ project: projectId });
    assert.deepEqual(
      [prow.name, prow.description, prow.enabled, prow.extra],
      ['p-patched', 'now', false, { colour: 'blue', size: 2 }],
    );
    const after = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': adminToken, 'x-subject-token': scoped },
    });
    assert.equal(after.statusCode, 404);
    for (const [payload, status] of [
      [{ project: { domain_id: 'elsewhere' } }, 400],
      [{ project: { parent_id: 'elsewhere' } }, 403],
      [{ project: { name: 'demo' } }, 409],
      [{ project: {} }, 400],
    ] as const) {
      const res = await env.app.inject({
        method: 'PATCH',
        url: `/identity/v3/projects/${projectId}`,
        headers: admin,
        payload,
      });
      assert.equal(res.statusCode, status, JSON.stringify(payload));
    }
    assert.deepEqual(await ks.getProject({ project: projectId }), prow);
  });

  test('domains: create, update, delete only once disabled, with their projects, users and grants', async () => {
    const admin = { ...json, 'x-auth-token': adminToken };
    const ks = env.cloud.keystone;
    const created = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/domains',
      headers: admin,
      payload: { domain: { name: 'd1', description: 'first' } },
    });
    assert.equal(created.statusCode, 201, created.body);
    const domain = (created.json() as { domain: { id: string; enabled: boolean; description: string } })
      .domain;
    assert.equal(domain.enabled, true);
    assert.equal((await ks.getDomain(domain.id)).description, 'first');
    const dup = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/domains',
      headers: admin,
      payload: { domain: { name: 'd1' } },
    });
    assert.equal(dup.statusCode, 409);
    const user = await ks.createUser({ name: 'u-d1', domainId: domain.id, password: 'pw' });
    const project = await ks.createProject({ name: 'p-d1', domainId: domain.id });
    await ks.assignRole({ user: user.id, project: project.id, role: 'member' });
    await ks.assignDomainRole({
      userId: user.id,
      domainId: domain.id,
      roleId: (await ks.getRole('reader')).id,
    });

    const enabled = await env.app.inject({
      method: 'DELETE',
      url: `/identity/v3/domains/${domain.id}`,
      headers: admin,
    });
    assert.equal(enabled.statusCode, 403);
    assert.equal((await ks.getDomain(domain.id)).enabled, true);
    const defaultOff = await env.app.inject({
      method: 'PATCH',
      url: '/identity/v3/domains/default',
      headers: admin,
      payload: { domain: { enabled: false } },
    });
    assert.equal(defaultOff.statusCode, 403);
    assert.equal((await ks.getDomain('default')).enabled, true);
    const memberRes = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/domains',
      headers: { ...json, 'x-auth-token': memberToken },
      payload: { domain: { name: 'd2' } },
    });
    assert.equal(memberRes.statusCode, 403);
    assert.equal(
      (await ks.listDomains()).some((d) => d.name === 'd2'),
      false,
    );

    const patched = await env.app.inject({
      method: 'PATCH',
      url: `/identity/v3/domains/${domain.id}`,
      headers: admin,
      payload: { domain: { name: 'd1-renamed', enabled: false } },
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.deepEqual(
      [
        (patched.json() as { domain: { name: string; enabled: boolean } }).domain.name,
        (await ks.getDomain(domain.id)).enabled,
      ],
      ['d1-renamed', false],
    );
    const del = await env.app.inject({
      method: 'DELETE',
      url: `/identity/v3/domains/${domain.id}`,
      headers: admin,
    });
    assert.equal(del.statusCode, 204);
    assert.equal(
      (await ks.listDomains()).some((d) => d.id === domain.id),
      false,
    );
    assert.equal(
      (await ks.listUsers()).some((u) => u.id === user.id),
      false,
    );
    assert.equal(
      (await ks.listProjects()).some((p) => p.id === project.id),
      false,
    );
    assert.deepEqual(await ks.listRoleAssignments({ userId: user.id }), []);
    assert.deepEqual(await ks.listDomainRoleAssignments({ userId: user.id }), []);
    const gone = await env.app.inject({
      method: 'DELETE',
      url: `/identity/v3/domains/${domain.id}`,
      headers: admin,
    });
    assert.equal(gone.statusCode, 404);
  });

  test('system grants: PUT, check, list, the assignments report, DELETE; system-scoped tokens; a member is refused', async () => {
    const admin = { ...json, 'x-auth-token': adminToken };
    const ks = env.cloud.keystone;
    const user = await ks.createUser({ name: 'sys-reader', domainId: 'default', password: 'pw' });
    const reader = await ks.getRole('reader');
    const path = `/identity/v3/system/users/${user.id}/roles/${reader.id}`;
    const refused = await env.app.inject({
      method: 'PUT',
      url: path,
      headers: { 'x-auth-token': memberToken },
    });
    assert.equal(refused.statusCode, 403);
    assert.deepEqual(await ks.listSystemRoleAssignments({ userId: user.id }), []);
    const unknownRole = await env.app.inject({
      method: 'PUT',
      url: `/identity/v3/system/users/${user.id}/roles/0123456789abcdef`,
      headers: { 'x-auth-token': adminToken },
    });
    assert.equal(unknownRole.statusCode, 404);
    assert.deepEqual(await ks.listSystemRoleAssignments({ userId: user.id }), []);

    const systemAuth = {
      auth: {
        identity: { methods: ['password'], password: { user: { id: user.id, password: 'pw' } } },
        scope: { system: { all: true } },
      },
    };
    const systemToken = () =>
      env.app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', headers: json, payload: systemAuth });
    assert.equal((await systemToken()).statusCode, 401);

    const put = await env.app.inject({ method: 'PUT', url: path, headers: { 'x-auth-token': adminToken } });
    assert.equal(put.statusCode, 204, put.body);
    // With a role on the system, a system-scoped token: Keystone's body, the reader's roles, no admin power.
    const issued = await systemToken();
    assert.equal(issued.statusCode, 201, issued.body);
    const tokenBody = (issued.json() as { token: { system: unknown; roles: Array<{ name: string }> } }).token;
    assert.deepEqual(tokenBody.system, { all: true });
    assert.deepEqual(tokenBody.roles.map((r) => r.name).sort(), ['reader']);
    const sysToken = String(issued.headers['x-subject-token']);
    const denied = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/projects',
      headers: { ...json, 'x-auth-token': sysToken },
      payload: { project: { name: 'by-system-reader' } },
    });
    assert.equal(denied.statusCode, 403);
    assert.equal(
      (await ks.listProjects()).some((p) => p.name === 'by-system-reader'),
      false,
    );
    assert.deepEqual(await ks.listSystemRoleAssignments({ userId: user.id }), [
      { userId: user.id, roleId: reader.id, roleName: 'reader' },
    ]);
    const head = await env.app.inject({ method: 'HEAD', url: path, headers: { 'x-auth-token': adminToken } });
    assert.equal(head.statusCode, 204);
    const list = await env.app.inject({
      method: 'GET',
      url: `/identity/v3/system/users/${user.id}/roles`,
      headers: admin,
    });
    assert.deepEqual(
      (list.json() as { roles: Array<{ name: string }> }).roles.map((r) => r.name),
      ['reader'],
    );
    const report = await env.app.inject({
      method: 'GET',
      url: `/identity/v3/role_assignments?user.id=${user.id}&scope.system=all`,
      headers: admin,
    });
    assert.deepEqual(
      (report.json() as { role_assignments: Array<{ scope: unknown }> }).role_assignments.map((a) => a.scope),
      [{ system: { all: true } }],
    );
    const del = await env.app.inject({
      method: 'DELETE',
      url: path,
      headers: { 'x-auth-token': adminToken },
    });
    assert.equal(del.statusCode, 204);
    assert.deepEqual(await ks.listSystemRoleAssignments({ userId: user.id }), []);
    // Without the role the system token no longer validates.
    const check = await env.app.inject({
      method: 'GET',
      url: '/identity/v3/auth/tokens',
      headers: { 'x-auth-token': adminToken, 'x-subject-token': sysToken },
    });
    assert.equal(check.statusCode, 404);
    const again = await env.app.inject({
      method: 'DELETE',
      url: path,
      headers: { 'x-auth-token': adminToken },
    });
    assert.equal(again.statusCode, 404);
    await ks.deleteUser(user.id);
  });

  test('a member is denied administration with 403 and changes nothing', async () => {
    const before = await counts();
    const member = { ...json, 'x-auth-token': memberToken };
    for (const [method, url, payload] of [
      ['POST', '/identity/v3/projects', { project: { name: 'sneaky' } }],
      ['POST', '/identity/v3/users', { user: { name: 'sneaky', password: 'x' } }],
      ['GET', '/identity/v3/projects', undefined],
      ['GET', '/identity/v3/role_assignments', undefined],
      ['DELETE', `/identity/v3/projects/${demoProjectId}`, undefined],
    ] as const) {
      const res = await env.app.inject({ method, url, headers: member, ...(payload ? { payload } : {}) });
      assert.equal(res.statusCode, 403, `${method} ${url}`);
      const body = res.json() as { error: { code: number; title: string; message: string } };
      assert.equal(body.error.title, 'Forbidden');
      assert.match(body.error.message, /^You are not authorized to perform the requested action: identity:/);
    }
    assert.deepEqual(await counts(), before);
  });

  test('project hierarchy, tags and projects acting as domains, as Keystone answers them', async () => {
    const admin = { ...json, 'x-auth-token': adminToken };
    const call = async (
      method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
      url: string,
      payload?: unknown,
    ) => {
      const res = await env.app.inject({
        method,
        url: `/identity/v3${url}`,
        headers: admin,
        ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
      });
      return { status: res.statusCode, body: res.body ? (res.json() as Body) : {}, headers: res.headers };
    };
    const root = await call('POST', '/projects', {
      project: { name: 'h-root', domain_id: 'default', tags: ['a', 'c', 'b', 'd'] },
    });
    assert.equal(root.status, 201, JSON.stringify(root.body));
    assert.equal(root.body.project.parent_id, 'default');
    const rootId = root.body.project.id as string;
    const child = await call('POST', '/projects', { project: { name: 'h-child', parent_id: rootId } });
    assert.equal(child.status, 201, JSON.stringify(child.body));
    assert.deepEqual([child.body.project.parent_id, child.body.project.domain_id], [rootId, 'default']);
    const childId = child.body.project.id as string;
    const grandchild = await call('POST', '/projects', { project: { name: 'h-grand', parent_id: childId } });
    const grandId = grandchild.body.project.id as string;

    // tempest's test_project_get_equals_list: show and list answer the same body, tags included.
    const shown = await call('GET', `/projects/${rootId}`);
    const listed = (await call('GET', '/projects')).body.projects.find((p: Body) => p.id === rootId);
    assert.deepEqual(shown.body.project, listed);
    assert.deepEqual([...shown.body.project.tags].sort(), ['a', 'b', 'c', 'd']);

    const filtered = await call('GET', `/projects?parent_id=${childId}`);
    assert.deepEqual(
      filtered.body.projects.map((p: Body) => p.id),
      [grandId],
    );
    const family = await call('GET', `/projects/${childId}?parents_as_list&subtree_as_list`);
    assert.deepEqual(
      family.body.project.parents.map((p: Body) => p.project.id),
      [rootId],
    );
    assert.deepEqual(
      family.body.project.subtree.map((p: Body) => p.project.id),
      [grandId],
    );

    // A project with children is not deleted (403), nor disabled while they are enabled; the row stays.
    const refused = await call('DELETE', `/projects/${rootId}`);
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /not a leaf in the hierarchy/);
    assert.equal((await call('PATCH', `/projects/${childId}`, { project: { enabled: false } })).status, 403);
    assert.equal((await env.cloud.keystone.getProject({ project: rootId })).id, rootId);
    assert.equal(
      (await call('PATCH', `/projects/${childId}`, { project: { parent_id: 'default' } })).status,
      403,
    );

    // Tags: the /tags API and the list filters.
    const tagsPath = `/projects/${childId}/tags`;
    assert.deepEqual((await call('PUT', tagsPath, { tags: ['x', 'y'] })).body.tags, ['x', 'y']);
    assert.equal((await call('PUT', `${tagsPath}/z`)).status, 201);
    assert.equal((await call('GET', `${tagsPath}/z`)).status, 204);
    assert.equal((await call('DELETE', `${tagsPath}/x`)).status, 204);
    assert.equal((await call('GET', `${tagsPath}/x`)).status, 404);
    assert.deepEqual((await call('GET', tagsPath)).body.tags, ['y', 'z']);
    assert.deepEqual((await env.cloud.keystone.getProject({ project: childId })).tags, ['y', 'z']);
    // A percent-encoded tag is decoded once, by the router: '100%' is stored as it was meant.
    assert.equal((await call('PUT', `${tagsPath}/100%25`)).status, 201);
    assert.deepEqual((await env.cloud.keystone.getProject({ project: childId })).tags, ['100%', 'y', 'z']);
    assert.equal((await call('DELETE', `${tagsPath}/100%25`)).status, 204);
    const ids = async (query: string) =>
      (await call('GET', `/projects?${query}`)).body.projects.map((p: Body) => p.id);
    assert.deepEqual(await ids('tags=y,z'), [childId]);
    assert.deepEqual((await ids('tags-any=a,z')).sort(), [rootId, childId].sort());
    assert.ok(!(await ids('not-tags-any=a,y')).some((id: string) => id === rootId || id === childId));
    assert.ok((await ids('not-tags=y,q')).includes(childId));
    assert.equal((await call('DELETE', tagsPath)).status, 204);
    assert.deepEqual((await env.cloud.keystone.getProject({ project: childId })).tags, []);
    const memberTags = await env.app.inject({
      method: 'PUT',
      url: `/identity/v3${tagsPath}/m`,
      headers: { 'x-auth-token': memberToken },
    });
    assert.equal(memberTags.statusCode, 403);

    // A project acting as a domain: listed with is_domain=true and among the domains; deleted once disabled.
    const asDomain = await call('POST', '/projects', {
      project: { name: 'h-dom', domain_id: null, is_domain: true },
    });
    assert.equal(asDomain.status, 201, JSON.stringify(asDomain.body));
    const domId = asDomain.body.project.id as string;
    assert.deepEqual([asDomain.body.project.is_domain, asDomain.body.project.parent_id], [true, null]);
    assert.ok((await ids('is_domain=True')).includes(domId));
    assert.ok(!(await ids('')).includes(domId));
    const domains = (await call('GET', '/domains')).body.domains.map((d: Body) => d.id);
    assert.ok(domains.includes(domId));
    assert.equal((await call('DELETE', `/projects/${domId}`)).status, 403);
    assert.equal((await call('PATCH', `/projects/${domId}`, { project: { enabled: false } })).status, 200);
    assert.equal((await call('DELETE', `/projects/${domId}`)).status, 204);
    assert.equal((await call('GET', `/domains/${domId}`)).status, 404);

    for (const id of [grandId, childId, rootId])
      assert.equal((await call('DELETE', `/projects/${id}`)).status, 204);
  });

  test('single tags added and removed at once on one project: none is lost', async () => {
    const admin = { ...json, 'x-auth-token': adminToken };
    const old = Array.from({ length: 10 }, (_, i) => `old-${i}`);
    const created = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/projects',
      headers: admin,
      payload: JSON.stringify({ project: { name: 'tag-race', domain_id: 'default', tags: old } }),
    });
    assert.equal(created.statusCode, 201, created.body);
    const id = (created.json() as { project: { id: string } }).project.id;
    const tag = (method: 'PUT' | 'DELETE', name: string) =>
      env.app.inject({ method, url: `/identity/v3/projects/${id}/tags/${name}`, headers: admin });
    // Each is one row written (before: the list read, changed and written back, which on MariaDB kept 10
    // of 30 changes; SQLite's single connection happened to order the requests).
    const added = Array.from({ length: 20 }, (_, i) => `new-${i}`);
    const answers = await Promise.all([
      ...added.map((name) => tag('PUT', name)),
      ...old.map((name) => tag('DELETE', name)),
    ]);
    assert.deepEqual(
      answers.map((a) => a.statusCode),
      [...added.map(() => 201), ...old.map(() => 204)],
    );
    assert.deepEqual((await env.cloud.keystone.getProject({ project: id })).tags, [...added].sort());
    const gone = await tag('DELETE', 'old-0');
    assert.deepEqual(
      [gone.statusCode, (gone.json() as { error: { message: string } }).error.message],
      [404, 'Could not find project tag: old-0.'],
    );
    await env.cloud.keystone.deleteProject(id);
  });

  test('bad admin bodies: 400, nothing stored', async () => {
    const before = await counts();
    const admin = { ...json, 'x-auth-token': adminToken };
    for (const [url, payload] of [
      ['/identity/v3/projects', '{"project": {"name": '],
      ['/identity/v3/projects', JSON.stringify({ project: { name: 42 } })],
      ['/identity/v3/projects', JSON.stringify({ project: { name: 'x', tags: ['a,b'] } })],
      ['/identity/v3/projects', JSON.stringify({ project: { name: 'x', tags: ['t', 't'] } })],
      ['/identity/v3/projects', JSON.stringify({ project: { name: 'x', parent_id: 'no-such-project' } })],
      ['/identity/v3/projects', JSON.stringify({ project: { name: '' } })],
      ['/identity/v3/users', JSON.stringify({ user: { name: 'x' } })],
      ['/identity/v3/users', JSON.stringify({ user: { name: 'x', password: 'p', enabled: 'yes' } })],
    ] as const) {
      const res = await env.app.inject({ method: 'POST', url, headers: admin, payload });
      assert.equal(res.statusCode, 400, payload);
      assert.equal((res.json() as { error: { code: number } }).error.code, 400);
    }
    assert.deepEqual(await counts(), before);
  });
});
