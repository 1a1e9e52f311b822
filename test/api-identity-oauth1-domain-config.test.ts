/**
 * Keystone v3 over HTTP (inject): OS-OAUTH1 consumers (the secret answered once, stored sealed, never
 * listed) and the domain configuration API (Keystone's whitelisted and sensitive options of the identity and
 * ldap groups, its 403 InvalidDomainConfig and 404 DomainConfigNotFound, the defaults), with Keystone's
 * default policies. Rows are read back from the keystone database.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ApiTestEnv, identityCaller, openApiTestEnv, seedUserToken } from './helpers/api';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

describe('Keystone v3 API: OS-OAUTH1 consumers and domain configuration', () => {
  let env: ApiTestEnv;
  let admin: { token: string; projectId: string; userId: string };
  let member: { token: string; projectId: string; userId: string };

  before(async () => {
    env = await openApiTestEnv({ services: ['identity'], label: 'api-identity-oauth1-domain-config' });
    admin = await seedUserToken(env, 'oauth-admin', 'oauth-admin-project', 'admin');
    member = await seedUserToken(env, 'oauth-member', 'oauth-project', 'member');
  });
  after(async () => {
    await env?.close();
  });

  const call = identityCaller(() => env);
  const db = () => env.cloud.keystone.serviceDb.db;

  test('consumers: created with a secret answered once and stored sealed; shown, listed, updated, deleted', async () => {
    const created = await call('POST', '/OS-OAUTH1/consumers', admin.token, {
      consumer: { description: 'my app', colour: 'blue' },
    });
    assert.equal(created.status, 201);
    const c = created.body.consumer;
    assert.match(c.secret, /^[0-9a-f]{32}$/);
    assert.equal(c.description, 'my app');
    assert.equal(c.colour, 'blue');
    assert.match(c.links.self, new RegExp(`/v3/OS-OAUTH1/consumers/${c.id}$`));
    const [row] = await db().selectFrom('oauth1_consumers').selectAll().where('id', '=', c.id).execute();
    assert.ok(row && !JSON.stringify(row).includes(c.secret));

    const shown = await call('GET', `/OS-OAUTH1/consumers/${c.id}`, admin.token);
    assert.equal(shown.status, 200);
    assert.deepEqual(shown.body.consumer, {
      id: c.id,
      description: 'my app',
      colour: 'blue',
      links: c.links,
    });
    const listed = await call('GET', '/OS-OAUTH1/consumers', admin.token);
    assert.deepEqual(
      listed.body.consumers.map((x: Body) => x.id),
      [c.id],
    );
    assert.ok(!listed.raw.includes(c.secret));

    // A member may do none of it; the secret cannot be changed; an id must match.
    assert.equal((await call('GET', '/OS-OAUTH1/consumers', member.token)).status, 403);
    assert.equal((await call('POST', '/OS-OAUTH1/consumers', member.token, { consumer: {} })).status, 403);
    assert.equal(
      (await call('PATCH', `/OS-OAUTH1/consumers/${c.id}`, admin.token, { consumer: { secret: 'x' } }))
        .status,
      400,
    );
    assert.equal(
      (await call('PATCH', `/OS-OAUTH1/consumers/${c.id}`, admin.token, { consumer: { id: 'other' } }))
        .status,
      400,
    );
    assert.equal(
      (await call('PATCH', `/OS-OAUTH1/consumers/${c.id}`, admin.token, { consumer: {} })).status,
      400,
    );
    const updated = await call('PATCH', `/OS-OAUTH1/consumers/${c.id}`, admin.token, {
      consumer: { description: 'renamed' },
    });
    assert.equal(updated.status, 200);
    assert.equal(updated.body.consumer.description, 'renamed');
    assert.equal(updated.body.consumer.secret, undefined);
    const after = await db()
      .selectFrom('oauth1_consumers')
      .selectAll()
      .where('id', '=', c.id)
      .executeTakeFirst();
    assert.equal(after?.secret_sealed, row.secret_sealed);

    assert.equal((await call('DELETE', `/OS-OAUTH1/consumers/${c.id}`, member.token)).status, 403);
    assert.equal((await call('DELETE', `/OS-OAUTH1/consumers/${c.id}`, admin.token)).status, 204);
    const gone = await call('GET', `/OS-OAUTH1/consumers/${c.id}`, admin.token);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.message, 'Consumer not found');
    assert.equal((await db().selectFrom('oauth1_consumers').selectAll().execute()).length, 0);
    // A consumer with no body at all: Keystone's {} (no description).
    const bare = await call('POST', '/OS-OAUTH1/consumers', admin.token, {});
    assert.equal(bare.status, 201);
    assert.equal(bare.body.consumer.description, null);
  });

  test('domain config: created, read by group and option, updated, deleted; sensitive options kept sealed', async () => {
    const domain = (await call('POST', '/domains', admin.token, { domain: { name: 'cfg-domain' } })).body
      .domain;
    const base = `/domains/${domain.id}/config`;
    assert.equal((await call('GET', base, admin.token)).status, 404);
    const config = {
      identity: { driver: 'ldap' },
      ldap: { url: 'ldap://myldap.com:389/', user_tree_dn: 'ou=Users,dc=org', password: 'ldap-s3cret' },
    };
    assert.equal((await call('PUT', base, member.token, { config })).status, 403);
    const created = await call('PUT', base, admin.token, { config });
    assert.equal(created.status, 201);
    // The sensitive password is stored but never answered, and sealed in its row.
    const answered = {
      identity: { driver: 'ldap' },
      ldap: { url: 'ldap://myldap.com:389/', user_tree_dn: 'ou=Users,dc=org' },
    };
    assert.deepEqual(created.body.config, answered);
    const rows = await db()
      .selectFrom('domain_config')
      .selectAll()
      .where('domain_id', '=', domain.id)
      .execute();
    assert.equal(rows.length, 4);
    assert.ok(!JSON.stringify(rows).includes('ldap-s3cret'));
    assert.equal(rows.find((r) => r.option_name === 'password')?.sensitive, 1);
    // PUT again replaces the whole config: 200.
    const again = await call('PUT', base, admin.token, { config });
    assert.equal(again.status, 200);

    assert.deepEqual((await call('GET', base, admin.token)).body.config, answered);
    assert.equal((await call('GET', base, member.token)).status, 403);
    assert.deepEqual((await call('GET', `${base}/ldap`, admin.token)).body.config, { ldap: answered.ldap });
    assert.deepEqual((await call('GET', `${base}/ldap/url`, admin.token)).body.config, {
      url: 'ldap://myldap.com:389/',
    });
    assert.equal((await call('GET', `${base}/ldap/password`, admin.token)).status, 404);
    const badGroup = await call('GET', `${base}/assignment`, admin.token);
    assert.equal(badGroup.status, 403);
    assert.match(
      badGroup.body.error.message,
      /Group assignment is not supported for domain specific configurations/,
    );
    assert.equal((await call('GET', `${base}/ldap/bogus`, admin.token)).status, 403);
    assert.equal((await call('PUT', base, admin.token, { config: { ldap: { bogus: 1 } } })).status, 403);
    assert.equal((await call('PUT', base, admin.token, { config: {} })).status, 403);

    // PATCH a group: only that group, which must exist; an option likewise.
    const patched = await call('PATCH', `${base}/identity`, admin.token, {
      config: { identity: { driver: 'sql', list_limit: 42 } },
    });
    assert.equal(patched.status, 200);
    assert.deepEqual(patched.body.config.identity, { driver: 'sql', list_limit: 42 });
    assert.equal(
      (await call('PATCH', `${base}/identity`, admin.token, { config: { ldap: { url: 'x' } } })).status,
      403,
    );
    const opt = await call('PATCH', `${base}/ldap/url`, admin.token, { config: { url: 'ldap://other' } });
    assert.equal(opt.status, 200);
    assert.equal(opt.body.config.ldap.url, 'ldap://other');
    assert.equal(
      (await call('PATCH', `${base}/ldap/suffix`, admin.token, { config: { suffix: 'dc=x' } })).status,
      404,
    );

    assert.equal((await call('DELETE', `${base}/identity/driver`, admin.token)).status, 204);
    assert.equal((await call('GET', `${base}/identity/driver`, admin.token)).status, 404);
    assert.equal((await call('DELETE', `${base}/identity/driver`, admin.token)).status, 404);
    assert.equal((await call('DELETE', `${base}/identity`, admin.token)).status, 204);
    assert.equal((await call('GET', `${base}/identity`, admin.token)).status, 404);
    assert.equal((await call('DELETE', base, member.token)).status, 403);
    assert.equal((await call('DELETE', base, admin.token)).status, 204);
    assert.equal((await call('GET', base, admin.token)).status, 404);
    assert.equal((await db().selectFrom('domain_config').selectAll().execute()).length, 0);

    // A domain that does not exist: 404 on writes.
    assert.equal((await call('PUT', '/domains/nope/config', admin.token, { config })).status, 404);

    // The config goes with its domain.
    await call('PUT', base, admin.token, { config });
    await call('PATCH', `/domains/${domain.id}`, admin.token, { domain: { enabled: false } });
    assert.equal((await call('DELETE', `/domains/${domain.id}`, admin.token)).status, 204);
    assert.equal((await db().selectFrom('domain_config').selectAll().execute()).length, 0);
  });

  test('domain config defaults: the whitelisted options of identity and ldap, never the sensitive ones', async () => {
    const all = await call('GET', '/domains/config/default', admin.token);
    assert.equal(all.status, 200);
    assert.deepEqual(all.body.config.identity, { driver: 'sql', list_limit: null });
    assert.equal(all.body.config.ldap.url, 'ldap://localhost');
    assert.ok(!('password' in all.body.config.ldap));
    assert.deepEqual((await call('GET', '/domains/config/identity/default', admin.token)).body.config, {
      identity: { driver: 'sql', list_limit: null },
    });
    assert.deepEqual(
      (await call('GET', '/domains/config/ldap/user_tree_dn/default', admin.token)).body.config,
      {
        user_tree_dn: null,
      },
    );
    assert.equal((await call('GET', '/domains/config/ldap/password/default', admin.token)).status, 403);
    assert.equal((await call('GET', '/domains/config/bogus/default', admin.token)).status, 403);
    assert.equal((await call('GET', '/domains/config/default', member.token)).status, 403);
    // security_compliance: the default domain's, readable by anyone (bootflow sets no password rules).
    const sc = await call('GET', '/domains/default/config/security_compliance', member.token);
    assert.equal(sc.status, 200);
    assert.deepEqual(sc.body.config, {
      security_compliance: { password_regex: null, password_regex_description: null },
    });
  });
});
