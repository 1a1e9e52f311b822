import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { SignJWT, UnsecuredJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { ManualClock } from '../cloud/clock';
import { isCloudError, type CloudError, type CloudErrorType } from '../cloud/errors';
import {
  Keystone,
  SIGNING_KEY_FILE,
  UNAUTHORIZED_MESSAGE,
  type AuthResult,
  type KeystoneOptions,
} from '../cloud/keystone';
import { hashPassword, verifyPassword } from '../cloud/keystone/passwords';
import type { KeystoneDb } from '../cloud/keystone/schema';
import { testDbConfig, testDbDialect, type TestDb } from './helpers/cloud-db';

const FAST_HASH = { logN: 10, r: 8, p: 1 };
const HOUR = 3600_000;
const TABLES: Array<keyof KeystoneDb> = [
  'domains',
  'projects',
  'users',
  'roles',
  'implied_roles',
  'role_assignments',
  'revocation_events',
];

/** Input the types would refuse, as a CLI or a decoded payload could still send it. */
const untyped = (value: unknown): never => value as never;
const newPassword = (): string => `pw-${randomBytes(12).toString('hex')}`;

async function failure(promise: Promise<unknown>, type: CloudErrorType): Promise<CloudError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(isCloudError(err), `expected a CloudError ${type}, got ${String(err)}`);
  assert.equal(err.type, type, err.message);
  return err;
}

async function unauthorized(promise: Promise<unknown>): Promise<void> {
  const err = await failure(promise, 'Unauthorized');
  assert.equal(err.message, UNAUTHORIZED_MESSAGE);
  assert.equal(err.code, 401);
  assert.deepEqual(err.details, {});
}

async function rowCounts(ks: Keystone): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    const rows = await ks.serviceDb.db.selectFrom(table).selectAll().execute();
    counts[table] = rows.length;
  }
  return counts;
}

async function dumpAllRows(ks: Keystone): Promise<string> {
  const dump: unknown[] = [];
  for (const table of TABLES) dump.push(await ks.serviceDb.db.selectFrom(table).selectAll().execute());
  return JSON.stringify(dump);
}

/** Replaces a token's payload but keeps its header and signature. */
function withPayload(token: string, change: (claims: Record<string, unknown>) => void): string {
  const [header, payload, signature] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
  change(claims);
  return [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
}

describe('keystone', () => {
  let testDb: TestDb;
  let clock: ManualClock;
  let ks: Keystone;
  let counter = 0;

  /** A fresh user with `role` on a fresh (or given) project; returns what authenticate needs. */
  async function member(role = 'member', projectName?: string) {
    counter += 1;
    const project = projectName ?? `project-${counter}`;
    await ks.ensureProject({ name: project });
    const name = `user-${counter}`;
    const password = newPassword();
    const user = await ks.ensureUser({ name, password });
    await ks.assignRole({ user: name, project, role });
    const login = { username: name, password, projectName: project };
    return { user, name, password, project, login };
  }

  before(async () => {
    testDb = testDbConfig('keystone');
    clock = new ManualClock(Date.now());
    ks = await Keystone.open({ db: testDb.config, clock, passwordHashing: FAST_HASH });
  });
  after(async () => {
    await ks?.close();
    await testDb?.cleanup();
  });

  test('open seeds the Default domain, the default roles and admin ⊃ manager ⊃ member ⊃ reader', async () => {
    const domains = await ks.listDomains();
    assert.deepEqual(
      domains.map((d) => [d.id, d.name, d.enabled]),
      [['default', 'Default', true]],
    );
    assert.deepEqual((await ks.listRoles()).map((r) => r.name).sort(), [
      'admin',
      'manager',
      'member',
      'reader',
      'service',
    ]);
    const implied = await ks.serviceDb.db
      .selectFrom('implied_roles')
      .innerJoin('roles as p', 'p.id', 'implied_roles.prior_role_id')
      .innerJoin('roles as i', 'i.id', 'implied_roles.implied_role_id')
      .select(['p.name as prior', 'i.name as implied'])
      .orderBy('p.name')
      .execute();
    assert.deepEqual(
      implied.map((r) => `${r.prior}>${r.implied}`),
      ['admin>manager', 'manager>member', 'member>reader'],
    );
  });

  test('ensure operations are idempotent by name and return the first row', async () => {
    const d1 = await ks.ensureDomain({ name: 'Partners', description: 'first' });
    const d2 = await ks.ensureDomain({ name: 'Partners', description: 'second' });
    assert.equal(d2.id, d1.id);
    assert.equal(d2.description, 'first');
    assert.match(d1.id, /^[0-9a-f]{32}$/);

    const p1 = await ks.ensureProject({ name: 'shared-name', domain: 'Partners' });
    const p2 = await ks.ensureProject({ name: 'shared-name', domain: 'Partners' });
    const p3 = await ks.ensureProject({ name: 'shared-name' });
    assert.equal(p2.id, p1.id);
    assert.notEqual(p3.id, p1.id, 'the same name in another domain is another project');
    assert.equal(p3.domainId, 'default');

    const password = newPassword();
    const u1 = await ks.ensureUser({ name: 'idem', password, email: 'idem@example.org' });
    const u2 = await ks.ensureUser({ name: 'idem', password: newPassword(), enabled: false });
    assert.deepEqual(u2, u1, 'an existing user is returned unchanged');
    const stored = await ks.serviceDb.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', u1.id)
      .executeTakeFirstOrThrow();
    assert.ok(await verifyPassword(password, stored.password_hash), 'the first password stays');

    const a1 = await ks.assignRole({ user: 'idem', project: 'shared-name', role: 'reader' });
    const a2 = await ks.assignRole({ user: u1.id, project: p3.id, role: 'reader' });
    assert.deepEqual(a2, a1);
    assert.deepEqual(await ks.listRoleAssignments({ userId: u1.id }), [a1]);

    const r1 = await ks.ensureRole({ name: 'auditor' });
    assert.deepEqual(await ks.ensureRole({ name: 'auditor' }), r1);
  });

  test('the database itself enforces unique names, foreign keys and one assignment per user×project×role', async () => {
    const { user, project } = await member('reader');
    const db = ks.serviceDb.db;
    const row = await db.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow();
    await assert.rejects(
      db
        .insertInto('users')
        .values({ ...row, id: 'dup-user' })
        .execute(),
    );
    const projectRow = await db
      .selectFrom('projects')
      .selectAll()
      .where('name', '=', project)
      .executeTakeFirstOrThrow();
    await assert.rejects(
      db
        .insertInto('projects')
        .values({ ...projectRow, id: 'dup-project' })
        .execute(),
    );
    const assignment = await db
      .selectFrom('role_assignments')
      .selectAll()
      .where('user_id', '=', user.id)
      .executeTakeFirstOrThrow();
    await assert.rejects(db.insertInto('role_assignments').values(assignment).execute());
    await assert.rejects(
      db
        .insertInto('role_assignments')
        .values({ ...assignment, project_id: 'no-such-project' })
        .execute(),
    );
    await assert.rejects(
      db.insertInto('roles').values({ id: 'dup-role', name: 'admin', created_at: 0 }).execute(),
    );
  });

  test('passwords are stored as salted scrypt hashes that carry their own parameters', async () => {
    const password = newPassword();
    const a = await ks.ensureUser({ name: 'hash-a', password });
    const b = await ks.ensureUser({ name: 'hash-b', password });
    const rows = await ks.serviceDb.db
      .selectFrom('users')
      .select(['id', 'password_hash'])
      .where('id', 'in', [a.id, b.id])
      .execute();
    assert.equal(rows.length, 2);
    for (const r of rows)
      assert.match(r.password_hash, /^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.notEqual(rows[0]?.password_hash, rows[1]?.password_hash, 'a random salt per hash');

    // A hash written with other parameters still verifies: they are read from the stored string.
    const older = await hashPassword(password, { logN: 11, r: 4, p: 2 });
    await ks.serviceDb.db.updateTable('users').set({ password_hash: older }).where('id', '=', a.id).execute();
    await ks.ensureProject({ name: 'hash-project' });
    await ks.assignRole({ user: 'hash-a', project: 'hash-project', role: 'reader' });
    const auth = await ks.authenticate({ username: 'hash-a', password, projectName: 'hash-project' });
    assert.equal(auth.context.userId, a.id);

    assert.equal(await verifyPassword('wrong', older), false);
    assert.equal(await verifyPassword(password, 'plain-text'), false, 'a malformed hash never matches');
    const huge = older.replace('ln=11', 'ln=30');
    assert.equal(await verifyPassword(password, huge), false, 'out-of-range cost is refused, not computed');
    const defaults = await hashPassword(password);
    assert.match(defaults, /^\$scrypt\$ln=14,r=8,p=1\$/);
  });

  test('authenticate returns a signed EdDSA token scoped to the project, with implied roles', async () => {
    const m = await member('member');
    const started = clock.now();
    const auth = await ks.authenticate(m.login);
    const project = await ks.getProject({ project: m.project });
    assert.equal(auth.expiresAt, started + HOUR);
    assert.deepEqual(auth.context, {
      userId: m.user.id,
      userName: m.name,
      userDomainId: 'default',
      projectId: project.id,
      projectName: m.project,
      domainId: 'default',
      roles: ['member', 'reader'],
      issuedAt: started,
      expiresAt: started + HOUR,
      auditId: auth.context.auditId,
    });
    assert.match(auth.context.auditId, /^[A-Za-z0-9_-]{22}$/);

    const header = decodeProtectedHeader(auth.token);
    assert.equal(header.alg, 'EdDSA');
    assert.equal(header.typ, 'JWT');
    const claims = decodeJwt(auth.token);
    assert.equal(claims.sub, m.user.id);
    assert.equal(claims.project_id, project.id);
    assert.deepEqual(claims.roles, ['member', 'reader']);
    assert.equal(claims.jti, auth.context.auditId);
    assert.equal(Math.round((claims.iat ?? 0) * 1000), started);
    assert.equal(Math.round((claims.exp ?? 0) * 1000), started + HOUR);

    assert.deepEqual(await ks.validateToken(auth.token), auth.context);

    const admin = await member('admin');
    const adminAuth = await ks.authenticate(admin.login);
    assert.deepEqual(adminAuth.context.roles, ['admin', 'manager', 'member', 'reader']);
    const service = await member('service');
    assert.deepEqual((await ks.authenticate(service.login)).context.roles, ['service']);
  });

  test('every bad credential is the same Unauthorized, with no hint which part was wrong', async () => {
    const m = await member('member');
    await ks.ensureDomain({ name: 'Elsewhere' });
    const roleless = await member('reader');
    await ks.unassignRole({ user: roleless.name, project: roleless.project, role: 'reader' });
    const disabled = await member('member');
    await ks.disableUser({ user: disabled.name });
    const closed = await member('member');
    await ks.disableProject({ project: closed.project });
    await ks.ensureDomain({ name: 'Off', enabled: false });
    await ks.ensureProject({ name: 'in-off-domain', domain: 'Off' });
    await ks.ensureUser({ name: 'off-user', password: m.password, domain: 'Off' });
    await ks.assignRole({
      user: 'off-user',
      userDomain: 'Off',
      project: 'in-off-domain',
      projectDomain: 'Off',
      role: 'member',
    });

    const attempts = [
      { ...m.login, username: 'nobody' },
      { ...m.login, password: `${m.password}x` },
      { ...m.login, userDomainName: 'Elsewhere' },
      { ...m.login, projectName: 'no-such-project' },
      { ...m.login, projectName: roleless.project },
      roleless.login,
      disabled.login,
      closed.login,
      {
        username: 'off-user',
        password: m.password,
        userDomainName: 'Off',
        projectName: 'in-off-domain',
        projectDomainName: 'Off',
      },
    ];
    for (const attempt of attempts) await unauthorized(ks.authenticate(attempt));
    // The same login works once nothing is wrong with it.
    await ks.authenticate(m.login);
  });

  test('tokens expire by the injected clock; allowExpired accepts them for 48 h more', async () => {
    const m = await member('member');
    const auth = await ks.authenticate(m.login);
    clock.advance(HOUR - 1);
    await ks.validateToken(auth.token);
    clock.advance(1);
    await unauthorized(ks.validateToken(auth.token));
    const late = await ks.validateToken(auth.token, { allowExpired: true });
    assert.equal(late.userId, m.user.id);
    assert.equal(late.expiresAt, auth.expiresAt);
    clock.advance(48 * HOUR - 1);
    await ks.validateToken(auth.token, { allowExpired: true });
    clock.advance(1);
    await unauthorized(ks.validateToken(auth.token, { allowExpired: true }));
    await unauthorized(ks.validateToken(auth.token));
  });

  test('forged, tampered and malformed tokens are rejected', async () => {
    const m = await member('member');
    const admin = await member('admin', m.project);
    const auth = await ks.authenticate(m.login);
    const header = decodeProtectedHeader(auth.token);
    const claims = decodeJwt(auth.token);

    // Re-signed with another Ed25519 key, same header (kid included) and claims.
    const { privateKey: otherKey } = generateKeyPairSync('ed25519');
    const resigned = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: header.kid ?? '' })
      .sign(otherKey);
    await unauthorized(ks.validateToken(resigned));

    // The payload modified under the original signature: more roles, another user, a later expiry.
    await unauthorized(
      ks.validateToken(withPayload(auth.token, (c) => (c.roles = ['admin', 'member', 'reader']))),
    );
    await unauthorized(ks.validateToken(withPayload(auth.token, (c) => (c.sub = admin.user.id))));
    await unauthorized(ks.validateToken(withPayload(auth.token, (c) => (c.exp = Number(c.exp) + 3600))));
    // Unsigned ("alg": "none") and HMAC with the public key as secret (algorithm confusion).
    await unauthorized(ks.validateToken(new UnsecuredJWT({ ...claims }).encode()));
    const hmac = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(new TextEncoder().encode(header.kid ?? 'k'));
    await unauthorized(ks.validateToken(hmac));
    // Garbage and truncation.
    for (const bad of ['', 'abc', 'a.b.c', auth.token.slice(0, -2), `${auth.token}.x`, 'x'.repeat(9000)]) {
      await unauthorized(ks.validateToken(bad));
    }
    // The genuine token still validates.
    await ks.validateToken(auth.token);
  });

  test('disabling a user or project, a new password or revoking a token invalidates issued tokens', async () => {
    // Disabled user: rejected even with allowExpired, and still revoked after re-enabling.
    const u = await member('member');
    const userToken = (await ks.authenticate(u.login)).token;
    await ks.disableUser({ user: u.name });
    await unauthorized(ks.validateToken(userToken));
    await unauthorized(ks.validateToken(userToken, { allowExpired: true }));
    await ks.enableUser({ user: u.user.id });
    clock.advance(1);
    await unauthorized(ks.validateToken(userToken));
    await ks.validateToken((await ks.authenticate(u.login)).token);

    // Disabled project: its tokens die, the same user's tokens on other projects live.
    const p = await member('member');
    await ks.ensureProject({ name: `${p.project}-other` });
    await ks.assignRole({ user: p.name, project: `${p.project}-other`, role: 'reader' });
    const onProject = (await ks.authenticate(p.login)).token;
    const onOther = (await ks.authenticate({ ...p.login, projectName: `${p.project}-other` })).token;
    await ks.disableProject({ project: p.project });
    await unauthorized(ks.validateToken(onProject));
    await ks.validateToken(onOther);
    await ks.enableProject({ project: p.project });
    clock.advance(1);
    await unauthorized(ks.validateToken(onProject));
    await ks.validateToken((await ks.authenticate(p.login)).token);

    // New password: old tokens and the old password stop working.
    const c = await member('member');
    const beforeChange = (await ks.authenticate(c.login)).token;
    const changed = newPassword();
    await ks.setUserPassword({ user: c.name, password: changed });
    clock.advance(1);
    await unauthorized(ks.validateToken(beforeChange));
    await unauthorized(ks.authenticate(c.login));
    await ks.validateToken((await ks.authenticate({ ...c.login, password: changed })).token);

    // Revoking one token leaves the user's other tokens alone; revoking twice is fine.
    const r = await member('member');
    const first = await ks.authenticate(r.login);
    const second = await ks.authenticate(r.login);
    await ks.revokeToken(first.token);
    await ks.revokeToken(first.token);
    await unauthorized(ks.validateToken(first.token));
    await unauthorized(ks.validateToken(first.token, { allowExpired: true }));
    assert.equal((await ks.validateToken(second.token)).auditId, second.context.auditId);
    await unauthorized(ks.revokeToken(withPayload(second.token, (x) => (x.jti = 'forged'))));
  });

  test('revocation events are pruned once every token they match is past the allow-expired window', async () => {
    const m = await member('member');
    const revoked = await ks.authenticate(m.login);
    await ks.revokeToken(revoked.token);
    const events = () =>
      ks.serviceDb.db.selectFrom('revocation_events').select(['id', 'revoked_at']).execute();
    const eventId = `audit-${revoked.context.auditId}`;
    assert.ok((await events()).some((e) => e.id === eventId));
    clock.advance(HOUR + 48 * HOUR + 1);
    await ks.disableUser({ user: (await member('reader')).name });
    const left = await events();
    assert.ok(!left.some((e) => e.id === eventId), 'the old event is gone');
    assert.ok(left.every((e) => e.revoked_at >= clock.now() - 49 * HOUR));
    await unauthorized(ks.validateToken(revoked.token, { allowExpired: true }));
  });

  test('role changes are seen at the next validation', async () => {
    const m = await member('admin');
    const auth = await ks.authenticate(m.login);
    assert.deepEqual(auth.context.roles, ['admin', 'manager', 'member', 'reader']);
    await ks.assignRole({ user: m.name, project: m.project, role: 'reader' });
    await ks.unassignRole({ user: m.name, project: m.project, role: 'admin' });
    assert.deepEqual((await ks.validateToken(auth.token)).roles, ['reader']);
    assert.deepEqual(await ks.unassignRole({ user: m.name, project: m.project, role: 'admin' }), {
      removed: false,
    });
    await ks.unassignRole({ user: m.name, project: m.project, role: 'reader' });
    await unauthorized(ks.validateToken(auth.token));
  });

  test('groups: a role granted to a group is held by its members, in tokens and scopes, until it goes', async () => {
    const m = await member('reader');
    const other = await ks.ensureProject({ name: `group-project-${counter}` });
    const group = await ks.createGroup({ name: `group-${counter}`, domainId: 'default', extra: { x: 1 } });
    await failure(ks.createGroup({ name: group.name, domainId: 'default' }), 'Conflict');
    await failure(ks.createGroup({ name: 'g', domainId: 'nope' }), 'NotFound');
    await failure(ks.createGroup(untyped({ name: '', domainId: 'default' })), 'BadRequest');
    assert.deepEqual(await ks.getGroup(group.id), group);
    assert.deepEqual(group.extra, { x: 1 });

    const member_ = { groupId: group.id, userId: m.user.id };
    await ks.addGroupMember(member_);
    await ks.addGroupMember(member_); // again: a no-op
    const memberships = await ks.serviceDb.db.selectFrom('user_group_membership').selectAll().execute();
    assert.deepEqual(memberships, [{ user_id: m.user.id, group_id: group.id }]);
    assert.deepEqual(
      (await ks.listGroups({ userId: m.user.id })).map((g) => g.id),
      [group.id],
    );
    assert.deepEqual(
      (await ks.listGroupUsers(group.id)).map((u) => u.id),
      [m.user.id],
    );

    // No role on `other` yet: no token there.
    const scoped = { method: 'password' as const, user: { id: m.user.id }, password: m.password };
    await unauthorized(ks.issueToken({ ...scoped, scope: { project: { id: other.id } } }));
    const roles = await ks.listRoles();
    const memberRole = roles.find((r) => r.name === 'member')?.id ?? '';
    await ks.assignGroupRole({ groupId: group.id, roleId: memberRole, on: { projectId: other.id } });
    await ks.assignGroupRole({ groupId: group.id, roleId: memberRole, on: { domainId: 'default' } });
    const rows = await ks.serviceDb.db.selectFrom('group_role_assignments').selectAll().execute();
    assert.deepEqual(
      rows.map((r) => [r.group_id, r.project_id, r.role_id]),
      [[group.id, other.id, memberRole]],
    );
    const issued = await ks.issueToken({ ...scoped, scope: { project: { id: other.id } } });
    assert.deepEqual(issued.caller.roles, ['member', 'reader']);
    // Own project: the user's reader and the group's nothing there.
    assert.deepEqual((await ks.authenticate(m.login)).context.roles, ['reader']);
    const onDomain = await ks.issueToken({ ...scoped, scope: { domain: { id: 'default' } } });
    assert.deepEqual(onDomain.caller.roles, ['member', 'reader']);
    // A role for the group on the system: a system-scoped token.
    await unauthorized(ks.issueToken({ ...scoped, scope: { system: { all: true } } }));
    await ks.assignGroupRole({ groupId: group.id, roleId: memberRole, on: 'system' });
    const onSystem = await ks.issueToken({ ...scoped, scope: { system: { all: true } } });
    assert.deepEqual(onSystem.caller.roles, ['member', 'reader']);
    assert.deepEqual(
      (await ks.listGroupRoleAssignments({ groupId: group.id, system: true })).map((a) => a.roleName),
      ['member'],
    );
    const scopes = await ks.scopesOfUser(m.user.id);
    assert.deepEqual(
      new Set(scopes.projectIds),
      new Set([other.id, (await ks.getProject({ project: m.project })).id]),
    );
    assert.deepEqual(scopes.domainIds, ['default']);

    // Leaving the group revokes the user's tokens (Keystone's remove_user_from_group) and takes the roles.
    await ks.removeGroupMember(member_);
    await failure(ks.removeGroupMember(member_), 'NotFound');
    await unauthorized(ks.validateToken(issued.token));
    await unauthorized(ks.issueToken({ ...scoped, scope: { project: { id: other.id } } }));

    // Back in, then the group goes: its memberships and grants with it.
    await ks.addGroupMember(member_);
    const again = await ks.issueToken({ ...scoped, scope: { project: { id: other.id } } });
    await ks.deleteGroup(group.id);
    await unauthorized(ks.validateToken(again.token));
    for (const table of [
      'groups',
      'user_group_membership',
      'group_role_assignments',
      'group_domain_role_assignments',
      'group_system_role_assignments',
    ] as const)
      assert.deepEqual(
        await ks.serviceDb.db.selectFrom(table).selectAll().execute(),
        [],
        `${table} is empty after the group's delete`,
      );
    await failure(ks.deleteGroup(group.id), 'NotFound');
  });

  test('a domain delete takes its groups and their grants; a role delete takes its grants', async () => {
    const domain = await ks.createDomain({ name: `gd-${counter}` });
    const group = await ks.createGroup({ name: 'g', domainId: domain.id });
    const m = await member('reader');
    await ks.addGroupMember({ groupId: group.id, userId: m.user.id });
    const role = await ks.ensureRole({ name: `custom-${counter}` });
    await ks.assignGroupRole({ groupId: group.id, roleId: role.id, on: { domainId: domain.id } });
    assert.equal((await ks.listGroupRoleAssignments({ groupId: group.id })).length, 1);
    await ks.deleteRole(role.id);
    assert.deepEqual(await ks.listGroupRoleAssignments({ groupId: group.id }), []);
    await failure(ks.getRole(role.id), 'NotFound');
    await ks.updateDomain({ id: domain.id, enabled: false });
    await ks.deleteDomain(domain.id);
    await failure(ks.getGroup(group.id), 'NotFound');
    assert.deepEqual(await ks.serviceDb.db.selectFrom('user_group_membership').selectAll().execute(), []);
    // The member (of another domain) stays.
    assert.equal((await ks.getUser({ user: m.user.id })).id, m.user.id);
  });

  test('bad input is a BadRequest that changes nothing; unknown references are NotFound', async () => {
    const m = await member('member');
    const before = await rowCounts(ks);
    const secret = newPassword();
    const badRequests: Array<() => Promise<unknown>> = [
      () => ks.ensureUser(untyped({ name: 42, password: secret })),
      () => ks.ensureUser(untyped({ name: 'extra-field', password: secret, isAdmin: true })),
      () => ks.ensureUser(untyped({ name: 'x'.repeat(256), password: secret })),
      () => ks.ensureUser(untyped({ name: 'bad\u0000name', password: secret })),
      () => ks.ensureUser(untyped({ name: 'tab\tname', password: secret })),
      () => ks.ensureUser(untyped({ name: '   ', password: secret })),
      () => ks.ensureUser(untyped({ name: 'mail', password: secret, email: 'not-an-email' })),
      () => ks.ensureUser(untyped({ name: 'nopw', password: '' })),
      () => ks.ensureUser(untyped({ name: 'longpw', password: 'p'.repeat(4097) })),
      () => ks.ensureUser(untyped(null)),
      () => ks.ensureProject(untyped({ name: '' })),
      () => ks.ensureProject(untyped({ name: 'p', domain: 7 })),
      () => ks.ensureProject(untyped({ name: 'p', enabled: 'yes' })),
      () => ks.ensureDomain(untyped({ name: 'd', description: 'bell\u0007' })),
      () => ks.ensureRole(untyped({ name: 'r', implies: 'admin' })),
      () => ks.assignRole(untyped({ user: m.name, project: m.project })),
      () => ks.disableUser(untyped(m.name)),
      () => ks.setUserPassword(untyped({ user: m.name, password: 5 })),
      () => ks.authenticate(untyped({ username: m.name, password: 123, projectName: m.project })),
      () => ks.authenticate(untyped({ ...m.login, password: secret, userDomainId: 'default' })),
      () => ks.authenticate(untyped({ ...m.login, projectName: 'n'.repeat(300) })),
      () => ks.validateToken(untyped(42)),
      () => ks.validateToken('a.b.c', untyped({ allowExpired: 'yes' })),
      () => ks.listRoleAssignments(untyped({ user: m.name })),
    ];
    for (const call of badRequests) {
      const err = await failure(call(), 'BadRequest');
      assert.equal(err.code, 400);
      assert.ok(
        !err.message.includes(secret) && !JSON.stringify(err).includes(secret),
        'no password in errors',
      );
    }
    for (const call of [
      () => ks.assignRole({ user: 'ghost', project: m.project, role: 'member' }),
      () => ks.assignRole({ user: m.name, project: 'ghost', role: 'member' }),
      () => ks.assignRole({ user: m.name, project: m.project, role: 'ghost' }),
      () => ks.ensureUser({ name: 'lost', password: secret, domain: 'ghost' }),
      () => ks.disableProject({ project: 'ghost' }),
    ]) {
      await failure(call(), 'NotFound');
    }
    assert.deepEqual(await rowCounts(ks), before);
  });

  test('a project tree with tags: depth and leaf rules, and a domain delete takes the whole tree', async () => {
    const domain = await ks.createDomain({ name: 'tree-domain' });
    const root = await ks.createProject({ name: 'tree-root', domainId: domain.id, tags: ['b', 'a'] });
    assert.deepEqual([root.parentId, [...root.tags].sort()], [null, ['a', 'b']]);
    let parent = root;
    // The domain is level 1 (Keystone's max_project_tree_depth = 5, plus one for it): five project levels.
    for (let level = 2; level <= 5; level++)
      parent = await ks.createProject({ name: `tree-${level}`, domainId: domain.id, parentId: parent.id });
    await assert.rejects(
      ks.createProject({ name: 'tree-6', domainId: domain.id, parentId: parent.id }),
      /Max hierarchy depth reached/,
    );
    await assert.rejects(ks.deleteProject(root.id), /not a leaf in the hierarchy/);
    await assert.rejects(
      ks.createProject({ name: 'tree-x', domainId: domain.id, tags: ['a', 'a'] }),
      /non-unique/,
    );
    assert.deepEqual((await ks.projectFamily(parent.id)).parents.length, 4);
    await ks.updateDomain({ id: domain.id, enabled: false });
    await ks.deleteDomain(domain.id);
    assert.equal((await ks.listProjects()).filter((p) => p.name.startsWith('tree-')).length, 0);
  });

  test('no project is created in a branch with a disabled project, enabled or not; nor enabled under one', async () => {
    const domain = await ks.createDomain({ name: 'branch-domain' });
    const root = await ks.createProject({ name: 'branch-root', domainId: domain.id });
    const off = await ks.createProject({
      name: 'branch-off',
      domainId: domain.id,
      parentId: root.id,
      enabled: false,
    });
    const before = await rowCounts(ks);
    // keystone/resource/core.py _enforce_project_constraints: the parent and every project above it (the
    // domain included) must be enabled, whatever the new project's own enabled flag (ValidationError).
    for (const enabled of [true, false]) {
      const err = await failure(
        ks.createProject({ name: `under-off-${enabled}`, domainId: domain.id, parentId: off.id, enabled }),
        'BadRequest',
      );
      assert.equal(
        err.message,
        `cannot create a project in a branch containing a disabled project: ${off.id}`,
      );
    }
    assert.deepEqual(await rowCounts(ks), before);
    await ks.updateDomain({ id: domain.id, enabled: false });
    const domainOff = await rowCounts(ks);
    for (const parentId of [undefined, root.id]) {
      const err = await failure(
        ks.createProject({
          name: 'in-off-domain',
          domainId: domain.id,
          enabled: false,
          ...(parentId ? { parentId } : {}),
        }),
        'BadRequest',
      );
      assert.equal(
        err.message,
        `cannot create a project in a branch containing a disabled project: ${domain.id}`,
      );
    }
    // _assert_all_parents_are_enabled: the domain is one of the parents.
    const enable = await failure(ks.updateProject({ id: off.id, enabled: true }), 'Forbidden');
    assert.equal(enable.message, `Cannot enable project ${off.id} since it has disabled parents`);
    assert.deepEqual(await rowCounts(ks), domainOff);
    assert.equal((await ks.getProject({ project: off.id })).enabled, false);
  });

  test('the tree checks and their write are one transaction: concurrent creates, disables and deletes keep it whole', async () => {
    const domain = await ks.createDomain({ name: 'race-domain' });
    const others: Keystone[] = [];
    if (testDbDialect !== 'sqlite') {
      others.push(await Keystone.open({ db: testDb.config, clock, passwordHashing: FAST_HASH }));
    }
    const other = others[0] ?? ks;
    const refusals = new Set<string>();
    const settle = async (work: Promise<unknown>) =>
      work.then(
        () => undefined,
        (err: unknown) => {
          assert.ok(isCloudError(err), `a typed refusal, not ${String(err)}`);
          refusals.add(err.type);
        },
      );
    try {
      for (let round = 0; round < 10; round++) {
        const parent = await ks.createProject({ name: `race-p-${round}`, domainId: domain.id });
        const doomed = await ks.createProject({ name: `race-d-${round}`, domainId: domain.id });
        await Promise.all([
          settle(ks.createProject({ name: `race-c-${round}`, domainId: domain.id, parentId: parent.id })),
          settle(other.updateProject({ id: parent.id, enabled: false })),
          settle(ks.createProject({ name: `race-e-${round}`, domainId: domain.id, parentId: doomed.id })),
          settle(other.deleteProject(doomed.id)),
        ]);
        // A disabled domain enabled and deleted at once: one of the two is refused (the delete's check
        // that it is disabled, or the enable finding it gone).
        const gone = await ks.createDomain({ name: `race-gone-${round}`, enabled: false });
        const [enabled, deleted] = await Promise.allSettled([
          ks.updateDomain({ id: gone.id, enabled: true }),
          other.deleteDomain(gone.id),
        ]);
        assert.ok(
          enabled.status === 'rejected' || deleted.status === 'rejected',
          `round ${round}: both done`,
        );
        for (const r of [enabled, deleted])
          if (r.status === 'rejected') await settle(Promise.reject(r.reason));
      }
    } finally {
      for (const o of others) await o.close();
    }
    const rows = await ks.serviceDb.db
      .selectFrom('projects')
      .selectAll()
      .where('domain_id', '=', domain.id)
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const row of rows) {
      if (row.parent_id === null) continue;
      const parent = byId.get(row.parent_id);
      assert.ok(parent, `${row.name}: its parent ${row.parent_id} exists`);
      assert.ok(
        !(row.enabled === 1 && parent.enabled === 0),
        `${row.name}: enabled under disabled ${parent.name}`,
      );
    }
    // Forbidden or BadRequest from a tree check, NotFound for an enable of a domain deleted first.
    assert.ok(
      [...refusals].every((t) => ['Forbidden', 'BadRequest', 'NotFound'].includes(t)),
      [...refusals].join(),
    );
  });

  test('concurrent ensureUser, ensureProject and assignRole create exactly one row each', async () => {
    const others: Keystone[] = [];
    // On a server database a second service instance gives real interleaving; SQLite allows one per process.
    if (testDbDialect !== 'sqlite') {
      others.push(await Keystone.open({ db: testDb.config, clock, passwordHashing: FAST_HASH }));
    }
    try {
      const instances = [ks, ...others];
      const pick = (i: number): Keystone => instances[i % instances.length] ?? ks;
      const password = newPassword();
      const n = 12;
      const [users, projects] = await Promise.all([
        Promise.all(Array.from({ length: n }, (_, i) => pick(i).ensureUser({ name: 'racer', password }))),
        Promise.all(Array.from({ length: n }, (_, i) => pick(i + 1).ensureProject({ name: 'race-project' }))),
      ]);
      assert.equal(new Set(users.map((u) => u.id)).size, 1);
      assert.equal(new Set(projects.map((p) => p.id)).size, 1);
      const assignments = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          pick(i).assignRole({ user: 'racer', project: 'race-project', role: 'member' }),
        ),
      );
      assert.equal(new Set(assignments.map((a) => JSON.stringify(a))).size, 1);
      const db = ks.serviceDb.db;
      assert.equal(
        (await db.selectFrom('users').select('id').where('name', '=', 'racer').execute()).length,
        1,
      );
      assert.equal(
        (await db.selectFrom('projects').select('id').where('name', '=', 'race-project').execute()).length,
        1,
      );
      assert.equal(
        (
          await db
            .selectFrom('role_assignments')
            .select('user_id')
            .where('user_id', '=', users[0]?.id ?? '')
            .execute()
        ).length,
        1,
      );
      // Tokens from one instance validate on the other (same key file).
      const auth = await pick(0).authenticate({ username: 'racer', password, projectName: 'race-project' });
      assert.equal((await pick(1).validateToken(auth.token)).userId, users[0]?.id);
    } finally {
      for (const other of others) await other.close();
    }
  });

  test('the signing key is a 0600 file that another process uses to validate tokens', async () => {
    const keyDir = path.join(testDb.dataDir, 'keystone');
    const keyFile = path.join(keyDir, SIGNING_KEY_FILE);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(statSync(keyDir).mode & 0o077, 0);
    assert.match(readFileSync(keyFile, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);

    // The child validates with the wall clock: issue the token at a time it agrees with.
    clock.set(Math.max(clock.now(), Date.now()));
    const m = await member('member');
    const auth: AuthResult = await ks.authenticate(m.login);
    const script = `
      const { Keystone } = require(${JSON.stringify(path.resolve('cloud/keystone/index.ts'))});
      (async () => {
        const ks = await Keystone.open({ db: JSON.parse(process.env.KS_DB) });
        try {
          const ctx = await ks.validateToken(process.env.KS_TOKEN);
          let forged = 'accepted';
          await ks.validateToken(process.env.KS_TOKEN + 'x').catch((e) => (forged = e.type));
          process.stdout.write(JSON.stringify({ userId: ctx.userId, roles: ctx.roles, forged }));
        } finally {
          await ks.close();
        }
      })().catch((e) => { process.stderr.write(String(e)); process.exit(1); });
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', script], {
      env: { ...process.env, KS_DB: JSON.stringify(testDb.config), KS_TOKEN: auth.token },
      timeout: 30_000,
    });
    assert.deepEqual(JSON.parse(stdout), {
      userId: m.user.id,
      roles: ['member', 'reader'],
      forged: 'Unauthorized',
    });
  });

  test('the password appears nowhere: rows, tokens, lists, errors', async () => {
    const password = `Tr0ub4dor&3-${randomBytes(6).toString('hex')}`;
    const encodings = [
      password,
      Buffer.from(password).toString('base64').replace(/=+$/, ''),
      Buffer.from(password).toString('base64url'),
      Buffer.from(password).toString('hex'),
    ];
    const leaks = (text: string): boolean => encodings.some((e) => text.includes(e));

    const user = await ks.ensureUser({ name: 'secretive', password, email: 'secretive@example.org' });
    await ks.ensureProject({ name: 'secret-project' });
    await ks.assignRole({ user: 'secretive', project: 'secret-project', role: 'member' });
    const auth = await ks.authenticate({ username: 'secretive', password, projectName: 'secret-project' });
    const errors: unknown[] = [
      await failure(
        ks.authenticate({ username: 'secretive', password, projectName: 'elsewhere' }),
        'Unauthorized',
      ),
      await failure(
        ks.authenticate({ username: 'someone', password, projectName: 'secret-project' }),
        'Unauthorized',
      ),
      await failure(
        ks.authenticate(untyped({ username: 'secretive', password, projectName: 'secret-project', x: 1 })),
        'BadRequest',
      ),
      await failure(ks.ensureUser({ name: 'secretive\u0001', password }), 'BadRequest'),
    ];
    await ks.setUserPassword({ user: 'secretive', password });

    assert.ok(!leaks(await dumpAllRows(ks)), 'not in any row of any table');
    assert.ok(!leaks(auth.token), 'not in the token');
    assert.ok(!leaks(JSON.stringify(decodeJwt(auth.token))), 'not in the token claims');
    assert.ok(!leaks(JSON.stringify(auth)), 'not in the authentication result');
    for (const err of errors) {
      const e = err as CloudError;
      assert.ok(!leaks(`${e.message} ${e.stack ?? ''} ${JSON.stringify(e)}`), 'not in errors');
    }
    const shown = JSON.stringify([user, await ks.getUser({ user: 'secretive' }), await ks.listUsers()]);
    assert.ok(!leaks(shown));
    assert.ok(!shown.includes('$scrypt$') && !shown.includes('password_hash'), 'no hashes in show/list');
  });

  test('catalog: ensureService registers a service once, moves its endpoints to a new URL, and tokens read it', async () => {
    const spec = { region: 'RegionOne', type: 'test-svc', name: 'tester', url: 'http://a.example/x' };
    const first = await ks.catalog.ensureService(spec);
    const again = await ks.catalog.ensureService({ ...spec, url: 'http://b.example/x' });
    assert.equal(again.id, first.id);
    const endpoints = await ks.catalog.listEndpoints({ serviceId: first.id });
    assert.deepEqual(endpoints.map((e) => [e.interface, e.url, e.regionId]).sort(), [
      ['admin', 'http://b.example/x', 'RegionOne'],
      ['internal', 'http://b.example/x', 'RegionOne'],
      ['public', 'http://b.example/x', 'RegionOne'],
    ]);
    const entry = (await ks.catalog.tokenCatalog({ userId: 'u' })).find((s) => s.id === first.id);
    assert.equal(entry?.name, 'tester');
    assert.equal(entry?.endpoints.length, 3);
    // A service's delete takes its endpoints; bad input changes nothing.
    await failure(
      ks.catalog.createEndpoint(untyped({ interface: 'public', serviceId: first.id, url: 'x' })),
      'BadRequest',
    );
    await failure(
      ks.catalog.createEndpoint({ interface: 'public', serviceId: 'none', url: 'http://x' }),
      'BadRequest',
    );
    assert.equal((await ks.catalog.listEndpoints({ serviceId: first.id })).length, 3);
    await ks.catalog.deleteService(first.id);
    assert.deepEqual(await ks.catalog.listEndpoints({ serviceId: first.id }), []);
  });

  test('credentials: blobs are encrypted at rest with the credential key, a 0600 file; never in an error', async () => {
    const m = await member('member');
    const blob = JSON.stringify({ access: `access-${counter}`, secret: 'never-in-a-row' });
    const created = await ks.credentials.createCredential({
      userId: m.user.id,
      projectId: (await ks.getProject({ project: m.project })).id,
      type: 'ec2',
      blob,
    });
    assert.equal(created.blob, blob);
    assert.ok(!(await dumpAllRows(ks)).includes('never-in-a-row'));
    const keyFile = path.join(testDb.dataDir, 'keystone', 'credential.key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const err = await failure(
      ks.credentials.createCredential({
        userId: m.user.id,
        type: 'ec2',
        blob: '{"secret":"never-in-a-row"}',
      }),
      'BadRequest',
    );
    assert.ok(!err.message.includes('never-in-a-row'));
    // Another key cannot read them.
    const other = await Keystone.open({
      db: testDb.config,
      clock,
      passwordHashing: FAST_HASH,
      credentialKey: randomBytes(32),
    });
    try {
      await assert.rejects(other.credentials.getCredential(created.id), /another credential key/);
    } finally {
      await other.close();
    }
  });

  test('application credentials: a token scoped to its project with its roles the user still holds; its grants too', async () => {
    const m = await member('admin');
    const projectId = (await ks.getProject({ project: m.project })).id;
    const { appCred, secret } = await ks.createApplicationCredential({
      userId: m.user.id,
      projectId,
      name: 'deploy',
      roles: [{ name: 'member' }],
      tokenRoles: ['admin', 'manager', 'member', 'reader'],
    });
    assert.deepEqual(
      appCred.roles.map((r) => r.name),
      ['member', 'reader'],
    );
    assert.ok(!(await dumpAllRows(ks)).includes(secret));
    const issued = await ks.issueToken({
      method: 'application_credential',
      applicationCredential: { id: appCred.id },
      secret,
    });
    assert.equal(issued.caller.project?.id, projectId);
    assert.deepEqual(issued.caller.roles, ['member', 'reader']);
    assert.deepEqual(issued.methods, ['application_credential']);
    const ctx = await ks.validateToken(issued.token);
    assert.deepEqual(ctx.roles, ['member', 'reader']);
    // A grant made from it keeps the credential's roles, not the user's admin.
    const operation = { workflowType: 'bootServer', workflowId: 'wf-appcred' };
    const { grant } = await ks.issueGrant(issued.token, operation);
    assert.deepEqual((await ks.validateGrant(grant, operation)).roles, ['member', 'reader']);
    // Re-scoping it elsewhere is refused; a wrong secret is the one Unauthorized.
    await unauthorized(ks.issueToken({ method: 'token', token: issued.token, scope: { unscoped: true } }));
    await unauthorized(
      ks.issueToken({
        method: 'application_credential',
        applicationCredential: { id: appCred.id },
        secret: 'x',
      }),
    );
    // Expired by the clock: refused, and so are its tokens.
    const { appCred: short, secret: shortSecret } = await ks.createApplicationCredential({
      userId: m.user.id,
      projectId,
      name: 'short',
      expiresAt: clock.now() + 60_000,
      tokenRoles: ['reader'],
    });
    const shortToken = await ks.issueToken({
      method: 'application_credential',
      applicationCredential: { name: 'short', user: { id: m.user.id } },
      secret: shortSecret,
    });
    assert.ok(shortToken.expiresAt <= clock.now() + 60_000);
    assert.equal(short.expiresAt, clock.now() + 60_000);
    await ks.deleteApplicationCredential(appCred.id);
    await unauthorized(ks.validateToken(issued.token));
    await unauthorized(ks.validateGrant(grant, operation));
  });
});

describe('keystone options', () => {
  let testDb: TestDb;
  before(() => {
    testDb = testDbConfig('keystone-opts');
  });
  after(async () => {
    await testDb?.cleanup();
  });

  test('token lifetime and allow-expired window are configurable; reopening reuses the key', async () => {
    const clock = new ManualClock(Date.now());
    const base: KeystoneOptions = { db: testDb.config, clock, passwordHashing: FAST_HASH };
    let ks = await Keystone.open(base);
    const password = newPassword();
    await ks.ensureProject({ name: 'demo' });
    await ks.ensureUser({ name: 'demo', password });
    await ks.assignRole({ user: 'demo', project: 'demo', role: 'member' });
    const login = { username: 'demo', password, projectName: 'demo' };
    const old = await ks.authenticate(login);
    const keyFile = path.join(testDb.dataDir, 'keystone', SIGNING_KEY_FILE);
    const key = readFileSync(keyFile, 'utf8');
    await ks.close();

    chmodSync(keyFile, 0o644);
    ks = await Keystone.open({ ...base, tokenTtlSeconds: 600, allowExpiredWindowSeconds: 60 });
    try {
      assert.equal(readFileSync(keyFile, 'utf8'), key, 'the key is reused, not regenerated');
      assert.equal(statSync(keyFile).mode & 0o777, 0o600, 'a loose key file is tightened');
      await ks.validateToken(old.token);
      const short = await ks.authenticate(login);
      assert.equal(short.expiresAt - clock.now(), 600_000);
      clock.advance(600_000);
      await unauthorized(ks.validateToken(short.token));
      await ks.validateToken(short.token, { allowExpired: true });
      clock.advance(60_000);
      await unauthorized(ks.validateToken(short.token, { allowExpired: true }));
    } finally {
      await ks.close();
    }

    // A key given in the options replaces the file; tokens of the file's key are then foreign.
    const { privateKey } = generateKeyPairSync('ed25519');
    ks = await Keystone.open({
      ...base,
      signingKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    });
    try {
      await unauthorized(ks.validateToken(old.token));
      await ks.validateToken((await ks.authenticate(login)).token);
    } finally {
      await ks.close();
    }
  });

  test('bad options are refused before anything opens', async () => {
    const { privateKey: rsa } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    await failure(Keystone.open({ db: testDb.config, signingKey: rsa }), 'BadRequest');
    await failure(Keystone.open({ db: testDb.config, signingKey: 'not a pem' }), 'BadRequest');
    await failure(Keystone.open({ db: testDb.config, tokenTtlSeconds: 0 }), 'BadRequest');
    await failure(Keystone.open({ db: testDb.config, allowExpiredWindowSeconds: -1 }), 'BadRequest');
    await failure(
      Keystone.open({ db: testDb.config, passwordHashing: { logN: 40, r: 8, p: 1 } }),
      'BadRequest',
    );
  });
});
