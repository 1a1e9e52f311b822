/**
 * Keystone's domain-specific roles in the cloud layer (keystone/assignment/core.py): roles with a domain_id,
 * unique per domain, granted only on their domain's projects (DomainSpecificRoleMismatch), implied by no
 * global role, never in a token themselves but bringing what they imply; migration 008 over older rows.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../cloud/clock';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import type { Kysely } from 'kysely';
import { openServiceDb } from '../cloud/db';
import { Keystone, keystoneMigrations } from '../cloud/keystone';
import type { KeystoneDb } from '../cloud/keystone/schema';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const FAST_HASH = { logN: 10, r: 8, p: 1 };

async function failure(promise: Promise<unknown>, type: CloudErrorType): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(isCloudError(err), `expected a CloudError ${type}, got ${String(err)}`);
  assert.equal(err.type, type, err.message);
  return err.message;
}

describe('keystone: domain-specific roles', () => {
  let testDb: TestDb;
  let ks: Keystone;

  before(async () => {
    testDb = testDbConfig('keystone');
    ks = await Keystone.open({
      db: testDb.config,
      clock: new ManualClock(Date.now()),
      passwordHashing: FAST_HASH,
    });
  });
  after(async () => {
    await ks?.close();
    await testDb?.cleanup();
  });

  async function tree(label: string) {
    const domain = await ks.createDomain({ name: `dom-${label}` });
    const top = await ks.createProject({ name: `top-${label}`, domainId: domain.id });
    const child = await ks.createProject({ name: `child-${label}`, domainId: domain.id, parentId: top.id });
    const leaf = await ks.createProject({ name: `leaf-${label}`, domainId: domain.id, parentId: child.id });
    const password = `pw-${randomBytes(8).toString('hex')}`;
    const user = await ks.createUser({ name: `user-${label}`, domainId: domain.id, password });
    const login = { method: 'password' as const, user: { id: user.id }, password };
    const tokenOn = (projectId: string) => ks.issueToken({ ...login, scope: { project: { id: projectId } } });
    return { domain, top, child, leaf, user, tokenOn };
  }

  test('domain-specific roles: unique per domain, never in a token, imply global roles, fit their domain', async () => {
    const t = await tree('r');
    const other = await ks.createDomain({ name: 'dom-other' });
    const role = await ks.createRole({ name: 'member', domainId: t.domain.id });
    assert.equal(role.domainId, t.domain.id);
    // The same name in another domain and as a global role is fine; twice in one domain is a Conflict.
    assert.equal((await ks.createRole({ name: 'member', domainId: other.id })).domainId, other.id);
    assert.match(
      await failure(ks.createRole({ name: 'member', domainId: t.domain.id }), 'Conflict'),
      /Duplicate entry/,
    );
    await failure(ks.createRole({ name: 'x', domainId: 'no-such-domain' }), 'NotFound');
    // Listed with their domain only; the name still finds the global role.
    assert.ok(!(await ks.listRoles()).some((r) => r.id === role.id));
    assert.deepEqual(
      (await ks.listRoles({ domainId: t.domain.id })).map((r) => r.id),
      [role.id],
    );
    assert.equal((await ks.getRole('member')).domainId, null);

    // A global role cannot imply a domain-specific one; the other way round is fine.
    const reader = await ks.getRole('reader');
    assert.equal(
      await failure(ks.addImpliedRole(reader.id, role.id), 'Forbidden'),
      'Global role cannot imply a domain-specific role',
    );
    await ks.addImpliedRole(role.id, reader.id);

    // Granted on a project of another domain: Keystone's DomainSpecificRoleMismatch, nothing written.
    const foreign = await ks.createProject({ name: 'foreign', domainId: other.id });
    const before = await ks.serviceDb.db.selectFrom('role_assignments').selectAll().execute();
    assert.match(
      await failure(ks.assignRole({ user: t.user.id, project: foreign.id, role: role.id }), 'Forbidden'),
      /must be in the same domain as the role/,
    );
    await failure(
      ks.addInheritedGrant({ actor: { user: t.user.id }, target: { project: foreign.id }, roleId: role.id }),
      'Forbidden',
    );
    assert.deepEqual(await ks.serviceDb.db.selectFrom('role_assignments').selectAll().execute(), before);
    assert.equal((await ks.listInheritedGrants()).length, 0);
    // A group grant on a foreign project is refused too.
    const group = await ks.createGroup({ name: 'g-r', domainId: t.domain.id });
    await failure(
      ks.assignGroupRole({ groupId: group.id, roleId: role.id, on: { projectId: foreign.id } }),
      'Forbidden',
    );
    assert.equal(
      (await ks.serviceDb.db.selectFrom('group_role_assignments').selectAll().execute()).length,
      0,
    );
    // Never on the system (Keystone's create_system_grant_*: 400).
    assert.match(
      await failure(ks.assignSystemRole({ userId: t.user.id, roleId: role.id }), 'BadRequest'),
      /Unable to grant a domain-specific role in a system context/,
    );
    await failure(ks.assignGroupRole({ groupId: group.id, roleId: role.id, on: 'system' }), 'BadRequest');
    assert.equal(
      (await ks.serviceDb.db.selectFrom('system_role_assignments').selectAll().execute()).length,
      0,
    );

    // On its own domain's project: the token has what it implies, never the role itself.
    await ks.assignRole({ user: t.user.id, project: t.top.id, role: role.id });
    assert.deepEqual((await t.tokenOn(t.top.id)).caller.roles, ['reader']);
    // Inherited by the projects below (OS-INHERIT): again only what it implies.
    await ks.addInheritedGrant({
      actor: { user: t.user.id },
      target: { project: t.top.id },
      roleId: role.id,
    });
    assert.deepEqual((await t.tokenOn(t.child.id)).caller.roles, ['reader']);
    // A domain-specific role may imply another domain-specific role (Keystone refuses a global prior only).
    const second = await ks.createRole({ name: 'second', domainId: t.domain.id });
    await ks.addImpliedRole(role.id, second.id);

    // Deleting the domain takes its roles, their rules and grants.
    await ks.updateDomain({ id: t.domain.id, enabled: false });
    await ks.deleteDomain(t.domain.id);
    assert.equal(
      (await ks.serviceDb.db.selectFrom('roles').selectAll().where('domain_id', '=', t.domain.id).execute())
        .length,
      0,
    );
    assert.ok(!(await ks.listImpliedRoles()).some((r) => r.prior.id === role.id));
  });
});

describe('keystone migration 008 over existing rows (006, 007 applied)', () => {
  test('roles gain domain_id (global) and keep their grants and rules; names become unique per domain', async () => {
    const testDb = testDbConfig('keystone');
    try {
      const upTo007 = Object.fromEntries(Object.entries(keystoneMigrations).filter(([name]) => name < '008'));
      const old = await openServiceDb<KeystoneDb>('keystone', upTo007, testDb.config);
      const db = old.db as unknown as Kysely<Record<string, Record<string, unknown>>>;
      await db.insertInto('domains').values({ id: 'd', name: 'D', enabled: 1, created_at: 1 }).execute();
      await db
        .insertInto('projects')
        .values({ id: 'p', domain_id: 'd', name: 'P', enabled: 1, created_at: 1, extra: '{}' })
        .execute();
      await db
        .insertInto('users')
        .values({
          id: 'u',
          domain_id: 'd',
          name: 'U',
          enabled: 1,
          password_hash: 'x',
          password_changed_at: 1,
          created_at: 1,
          extra: '{}',
        })
        .execute();
      await db
        .insertInto('roles')
        .values([
          { id: 'r1', name: 'one', created_at: 1 },
          { id: 'r2', name: 'two', created_at: 1 },
        ])
        .execute();
      await db.insertInto('implied_roles').values({ prior_role_id: 'r1', implied_role_id: 'r2' }).execute();
      await db
        .insertInto('inherited_role_assignments')
        .values({
          actor_type: 'user',
          actor_id: 'u',
          target_type: 'domain',
          target_id: 'd',
          role_id: 'r2',
          created_at: 1,
        })
        .execute();
      await db
        .insertInto('role_assignments')
        .values({ user_id: 'u', project_id: 'p', role_id: 'r1', created_at: 1 })
        .execute();
      await old.close();

      const ks = await Keystone.open({ db: testDb.config, passwordHashing: FAST_HASH });
      try {
        const rows = ks.serviceDb.db;
        assert.deepEqual(
          await rows
            .selectFrom('roles')
            .select(['id', 'domain_id'])
            .where('id', 'in', ['r1', 'r2'])
            .orderBy('id')
            .execute(),
          [
            { id: 'r1', domain_id: '<<null>>' },
            { id: 'r2', domain_id: '<<null>>' },
          ],
        );
        assert.equal((await rows.selectFrom('role_assignments').selectAll().execute()).length, 1);
        assert.equal((await rows.selectFrom('inherited_role_assignments').selectAll().execute()).length, 1);
        assert.equal(
          (await rows.selectFrom('implied_roles').selectAll().where('prior_role_id', '=', 'r1').execute())
            .length,
          1,
        );
        assert.equal((await ks.createRole({ name: 'one', domainId: 'd' })).domainId, 'd');
        await failure(ks.createRole({ name: 'one' }), 'Conflict');
      } finally {
        await ks.close();
      }
    } finally {
      await testDb.cleanup();
    }
  });
});
