/**
 * Keystone v3 credentials over HTTP (inject): `/v3/credentials`, EC2 credentials (`OS-EC2`) and
 * application credentials, with Keystone's default policies, the blob stored encrypted and an application
 * credential's secret stored hashed, and tokens from an application credential (its project, its roles,
 * gone with it). Rows are read back from the keystone database; refused requests change none.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  type ApiTestEnv,
  identityCaller,
  openApiTestEnvWithUsers,
  type SeededUser,
  seedUserToken,
} from './helpers/api';

const json = { 'content-type': 'application/json' };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

describe('Keystone v3 API: credentials, EC2 credentials, application credentials', () => {
  let env: ApiTestEnv;
  let admin: SeededUser;
  let member: SeededUser;
  let reader: SeededUser;

  before(async () => {
    ({
      env,
      users: { admin, member, reader },
    } = await openApiTestEnvWithUsers(
      { services: ['identity'], label: 'api-identity-credentials' },
      {
        admin: ['cred-admin', 'cred-admin-project', 'admin'],
        member: ['cred-member', 'cred-project', 'member'],
        reader: ['cred-reader', 'cred-project', 'reader'],
      },
    ));
  });
  after(async () => {
    await env?.close();
  });

  const call = identityCaller(() => env);
  const db = () => env.cloud.keystone.serviceDb.db;
  const credentialRows = () => db().selectFrom('credentials').selectAll().execute();

  test('credentials: an ec2 blob is stored encrypted, its id the hash of its access key; owner and admin only', async () => {
    const blob = JSON.stringify({ access: 'AKIA-member', secret: 's3cr3t-blob-value' });
    const created = await call('POST', '/credentials', member.token, {
      credential: { user_id: member.userId, project_id: member.projectId, type: 'ec2', blob, label: 'x' },
    });
    assert.equal(created.status, 201);
    const c = created.body.credential;
    assert.equal(c.id, createHash('sha256').update('AKIA-member').digest('hex'));
    assert.deepEqual(
      { user_id: c.user_id, project_id: c.project_id, type: c.type, blob: c.blob, label: c.label },
      { user_id: member.userId, project_id: member.projectId, type: 'ec2', blob, label: 'x' },
    );
    const [row] = await credentialRows();
    assert.ok(row && !row.encrypted_blob.includes('s3cr3t') && !row.encrypted_blob.includes('AKIA'));

    // The owner reads and updates it; another user (even of its project) may not, nor learns the blob.
    assert.equal((await call('GET', `/credentials/${c.id}`, member.token)).body.credential.blob, blob);
    const refused = await call('GET', `/credentials/${c.id}`, reader.token);
    assert.equal(refused.status, 403);
    assert.ok(!refused.raw.includes('s3cr3t'));
    assert.deepEqual((await call('GET', '/credentials', reader.token)).body.credentials, []);
    assert.equal((await call('GET', '/credentials', admin.token)).body.credentials.length, 1);
    const newBlob = JSON.stringify({ access: 'AKIA-member-2', secret: 'other' });
    const updated = await call('PATCH', `/credentials/${c.id}`, member.token, {
      credential: { blob: newBlob },
    });
    assert.equal(updated.status, 200);
    assert.equal(updated.body.credential.id, c.id);
    assert.equal((await call('GET', `/credentials/${c.id}`, admin.token)).body.credential.blob, newBlob);
    // Not handed to another user.
    assert.equal(
      (await call('PATCH', `/credentials/${c.id}`, member.token, { credential: { user_id: reader.userId } }))
        .status,
      403,
    );
    assert.equal((await call('DELETE', `/credentials/${c.id}`, reader.token)).status, 403);
    assert.equal((await call('DELETE', `/credentials/${c.id}`, member.token)).status, 204);
    assert.equal((await call('GET', `/credentials/${c.id}`, admin.token)).status, 404);
  });

  test('credentials: bad input and another user’s are refused and change nothing', async () => {
    const before = (await credentialRows()).length;
    const cases: Array<[string, unknown, number]> = [
      [member.token, { credential: { user_id: reader.userId, type: 'cert', blob: 'x' } }, 403],
      [
        member.token,
        {
          credential: {
            user_id: member.userId,
            type: 'ec2',
            blob: '{"secret":"s"}',
            project_id: member.projectId,
          },
        },
        400,
      ],
      [
        member.token,
        {
          credential: { user_id: member.userId, type: 'ec2', blob: 'not json', project_id: member.projectId },
        },
        400,
      ],
      [member.token, { credential: { user_id: member.userId, type: 'ec2', blob: '{"access":"a"}' } }, 400],
      [member.token, { credential: { user_id: member.userId, type: 'cert' } }, 400],
      [admin.token, { credential: { user_id: 'nobody', type: 'cert', blob: 'x' } }, 404],
    ];
    for (const [as, body, status] of cases) {
      const res = await call('POST', '/credentials', as, body);
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(res.body.error.code, status);
    }
    assert.equal((await credentialRows()).length, before);
  });

  test('EC2 credentials: the owner with member creates, lists, shows and deletes them; a reader may not create', async () => {
    const path = `/users/${member.userId}/credentials/OS-EC2`;
    const created = await call('POST', path, member.token, { tenant_id: member.projectId });
    assert.equal(created.status, 201);
    const c = created.body.credential;
    assert.match(c.access, /^[0-9a-f]{32}$/);
    assert.match(c.secret, /^[0-9a-f]{32}$/);
    assert.equal(c.tenant_id, member.projectId);
    assert.equal(c.trust_id, null);
    assert.match(
      c.links.self,
      new RegExp(`/identity/v3/users/${member.userId}/credentials/OS-EC2/${c.access}$`),
    );
    const row = (await credentialRows()).find(
      (r) => r.id === createHash('sha256').update(c.access).digest('hex'),
    );
    assert.ok(row && row.type === 'ec2' && !row.encrypted_blob.includes(c.secret));
    assert.deepEqual(
      (await call('GET', path, member.token)).body.credentials.map((x: Body) => x.access),
      [c.access],
    );
    assert.equal((await call('GET', `${path}/${c.access}`, member.token)).body.credential.secret, c.secret);
    assert.equal((await call('GET', `${path}/${c.access}`, reader.token)).status, 403);
    assert.equal((await call('GET', path, reader.token)).status, 403);
    // A reader holds no member role: its own EC2 credential is refused.
    const readerCreate = await call('POST', `/users/${reader.userId}/credentials/OS-EC2`, reader.token, {
      tenant_id: reader.projectId,
    });
    assert.equal(readerCreate.status, 403);
    assert.equal((await call('POST', path, member.token, { tenant_id: 'nope' })).status, 404);
    // Another user's access key under this user's path: Keystone's 401.
    const other = await call('POST', `/users/${admin.userId}/credentials/OS-EC2`, admin.token, {
      tenant_id: admin.projectId,
    });
    assert.equal((await call('GET', `${path}/${other.body.credential.access}`, admin.token)).status, 401);
    assert.equal((await call('DELETE', `${path}/${c.access}`, member.token)).status, 204);
    assert.deepEqual((await call('GET', path, member.token)).body.credentials, []);
    // Gone: 404 to its owner too (tempest's test_delete_ec2_credential).
    const gone = await call('GET', `${path}/${c.access}`, member.token);
    assert.equal(gone.status, 404);
    assert.match(gone.body.error.message, /^Could not find credential: [0-9a-f]{64}\.$/);
  });

  async function appCredToken(auth: Body) {
    const res = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      headers: json,
      payload: { auth: { identity: { methods: ['application_credential'], application_credential: auth } } },
    });
    return {
      status: res.statusCode,
      token: String(res.headers['x-subject-token']),
      body: res.json() as Body,
    };
  }

  test('application credentials: the secret once, stored hashed; a token with its project and roles; gone with it', async () => {
    const path = `/users/${member.userId}/application_credentials`;
    const created = await call('POST', path, member.token, {
      application_credential: {
        name: 'ci',
        description: 'for CI',
        roles: [{ name: 'member' }],
        expires_at: '2999-01-02T03:04:05.123456',
      },
    });
    assert.equal(created.status, 201);
    const a = created.body.application_credential;
    assert.match(a.secret, /^[A-Za-z0-9_-]{86}$/);
    assert.equal(a.expires_at, '2999-01-02T03:04:05.123456');
    assert.equal(a.project_id, member.projectId);
    assert.deepEqual(
      a.roles.map((r: Body) => r.name),
      ['member', 'reader'],
    );
    assert.equal(a.unrestricted, false);
    const row = await db()
      .selectFrom('application_credentials')
      .selectAll()
      .where('id', '=', a.id)
      .executeTakeFirst();
    assert.ok(row && !JSON.stringify(row).includes(a.secret));
    const shown = await call('GET', `${path}/${a.id}`, member.token);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.application_credential.secret, undefined);
    assert.equal(
      (await call('POST', path, member.token, { application_credential: { name: 'ci' } })).status,
      409,
    );

    const issued = await appCredToken({ id: a.id, secret: a.secret });
    assert.equal(issued.status, 201);
    assert.equal(issued.body.token.project.id, member.projectId);
    assert.deepEqual(issued.body.token.methods, ['application_credential']);
    assert.deepEqual(issued.body.token.application_credential, { id: a.id, name: 'ci', restricted: true });
    assert.deepEqual(
      issued.body.token.roles.map((r: Body) => r.name),
      ['member', 'reader'],
    );
    assert.ok(Array.isArray(issued.body.token.catalog));
    // By name with its user, too; a wrong secret, or asking a scope, is the one 401.
    const byName = await appCredToken({ name: 'ci', user: { id: member.userId }, secret: a.secret });
    assert.equal(byName.status, 201);
    assert.equal((await appCredToken({ id: a.id, secret: 'wrong' })).status, 401);

    // A restricted credential's token makes no more credentials.
    const nested = await call('POST', path, issued.token, { application_credential: { name: 'nested' } });
    assert.equal(nested.status, 403);
    const nestedEc2 = await call('POST', `/users/${member.userId}/credentials/OS-EC2`, issued.token, {
      tenant_id: member.projectId,
    });
    assert.equal(nestedEc2.status, 403);

    // Listing, by name; another user may neither list nor delete it.
    await call('POST', path, member.token, { application_credential: { name: 'other' } });
    assert.deepEqual(
      (await call('GET', `${path}?name=ci`, member.token)).body.application_credentials.map(
        (x: Body) => x.name,
      ),
      ['ci'],
    );
    assert.equal((await call('GET', path, member.token)).body.application_credentials.length, 2);
    assert.equal((await call('GET', path, reader.token)).status, 403);
    assert.equal((await call('DELETE', `${path}/${a.id}`, reader.token)).status, 403);
    assert.equal((await call('GET', `${path}/${a.id}`, admin.token)).status, 200);

    // Deleted: its tokens stop validating.
    assert.equal((await call('GET', '/auth/catalog', issued.token)).status, 200);
    assert.equal((await call('DELETE', `${path}/${a.id}`, member.token)).status, 204);
    assert.equal((await call('GET', '/auth/catalog', issued.token)).status, 401);
    assert.equal((await appCredToken({ id: a.id, secret: a.secret })).status, 401);
  });

  test('application credentials: refused requests (another user, unheld roles, a past expiry) create none', async () => {
    const path = `/users/${member.userId}/application_credentials`;
    const count = async () =>
      (await db().selectFrom('application_credentials').select('id').execute()).length;
    const before = await count();
    const cases: Array<[string, string, unknown, number]> = [
      [admin.token, path, { application_credential: { name: 'x' } }, 403],
      [member.token, path, { application_credential: { name: 'x', roles: [{ name: 'admin' }] } }, 400],
      [member.token, path, { application_credential: { name: 'x', roles: [{ id: 'nope' }] } }, 404],
      [member.token, path, { application_credential: { name: 'x', expires_at: '2001-01-01T00:00:00' } }, 400],
      [member.token, path, { application_credential: { name: 'x', expires_at: 'tomorrow' } }, 400],
      [member.token, path, { application_credential: { name: 'x', bogus: 1 } }, 400],
    ];
    for (const [as, url, body, status] of cases) {
      const res = await call('POST', url, as, body);
      assert.equal(res.status, status, JSON.stringify(body));
    }
    assert.equal(await count(), before);
  });

  test('an application credential’s token loses a role the user loses', async () => {
    const user = await seedUserToken(env, 'cred-manager', 'cred-project-2', 'member');
    const created = await call('POST', `/users/${user.userId}/application_credentials`, user.token, {
      application_credential: { name: 'all-my-roles', unrestricted: true },
    });
    assert.equal(created.status, 201);
    const a = created.body.application_credential;
    const issued = await appCredToken({ id: a.id, secret: a.secret });
    assert.equal(issued.status, 201);
    assert.equal(issued.body.token.application_credential.restricted, false);
    await env.cloud.keystone.unassignRole({
      user: 'cred-manager',
      project: 'cred-project-2',
      role: 'member',
    });
    assert.equal((await call('GET', '/auth/catalog', issued.token)).status, 401);
    assert.equal((await appCredToken({ id: a.id, secret: a.secret })).status, 401);
  });
});
