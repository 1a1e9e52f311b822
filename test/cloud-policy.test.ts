import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../cloud/clock';
import { isCloudError } from '../cloud/errors';
import {
  Keystone,
  POLICY_RULES,
  authorize,
  enforce,
  enforceVisible,
  type PolicyRule,
  type RequestContext,
} from '../cloud/keystone';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

type Who = 'admin' | 'manager' | 'member' | 'reader' | 'service' | 'memberOfB';
type Where = 'A' | 'B';

const ADMIN_ONLY: Record<Where, Who[]> = { A: ['admin'], B: ['admin'] };
const PROJECT_READER: Record<Where, Who[]> = {
  A: ['admin', 'manager', 'member', 'reader'],
  B: ['admin', 'memberOfB'],
};
const PROJECT_MEMBER: Record<Where, Who[]> = { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] };

function rulesDecidingAs(
  decisions: Record<Where, Who[]>,
  rules: string[],
): Record<string, Record<Where, Who[]>> {
  return Object.fromEntries(rules.map((rule) => [rule, decisions]));
}

/** Expected decisions of Nova's (and Keystone's) defaults: who may do what on a target in project A or B. */
const ANYONE: Record<Where, Who[]> = {
  A: ['admin', 'manager', 'member', 'reader', 'service', 'memberOfB'],
  B: ['admin', 'manager', 'member', 'reader', 'service', 'memberOfB'],
};

const EXPECTED: Record<string, Record<Where, Who[]>> = {
  // nova/policies/quota_sets.py: the defaults are anyone's ('@').
  'os_compute_api:os-quota-sets:defaults': ANYONE,
  'compute:server:create': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:delete': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:stop': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:start': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:reboot': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:pause': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:unpause': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:suspend': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:resume': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:rebuild': { A: ['admin', 'manager', 'member'], B: ['admin', 'memberOfB'] },
  'compute:server:show': { A: ['admin', 'manager', 'member', 'reader'], B: ['admin', 'memberOfB'] },
  'compute:server:list': { A: ['admin', 'manager', 'member', 'reader'], B: ['admin', 'memberOfB'] },
  'compute:servers:list:all_projects': { A: ['admin'], B: ['admin'] },
  'os_compute_api:os-hypervisors:list': { A: ['admin'], B: ['admin'] },
  'bootflow:audit': { A: ['admin'], B: ['admin'] },
  // nova/policies/server_groups.py: create is PROJECT_MEMBER alone (an admin of another project may not).
  'os_compute_api:os-server-groups:create': { A: ['admin', 'manager', 'member'], B: ['memberOfB'] },
  'os_compute_api:os-server-groups:delete': PROJECT_MEMBER,
  'os_compute_api:os-server-groups:index': PROJECT_READER,
  'os_compute_api:os-server-groups:show': PROJECT_READER,
  'os_compute_api:os-server-groups:index:all_projects': ADMIN_ONLY,
  ...rulesDecidingAs(ADMIN_ONLY, [
    // nova/policies/*.py: admin-only APIs and admin-only parts of others.
    'os_compute_api:servers:show:host_status',
    'os_compute_api:os-extended-server-attributes',
    'os_compute_api:os-hypervisors:list-detail',
    'os_compute_api:os-hypervisors:show',
    'os_compute_api:os-services:list',
    'os_compute_api:os-services:update',
    'os_compute_api:limits:other_project',
    'os_compute_api:os-availability-zone:detail',
    'os_compute_api:os-instance-actions:events',
    'os_compute_api:os-instance-actions:events:details',
    'os_compute_api:os-keypairs:other_user',
    'os_compute_api:os-flavor-manage:create',
    'os_compute_api:os-flavor-manage:delete',
    'os_compute_api:os-flavor-manage:update',
    'os_compute_api:os-flavor-extra-specs:create',
    'os_compute_api:os-flavor-extra-specs:update',
    'os_compute_api:os-flavor-extra-specs:delete',
    // nova/policies/lock_server.py: only an admin unlocks another party's lock.
    'os_compute_api:os-lock-server:unlock:unlock_override',
    'os_compute_api:os-evacuate',
    // nova/policies/flavor_access.py, admin_actions.py, hypervisors.py.
    'os_compute_api:os-flavor-access',
    'os_compute_api:os-flavor-access:add_tenant_access',
    'os_compute_api:os-flavor-access:remove_tenant_access',
    'os_compute_api:os-admin-actions:reset_state',
    'os_compute_api:os-admin-actions:inject_network_info',
    'os_compute_api:os-hypervisors:statistics',
    'os_compute_api:os-hypervisors:uptime',
    'os_compute_api:os-hypervisors:search',
    'os_compute_api:os-hypervisors:servers',
    // keystone/common/policies/*.py: administration is admin only (for project-scoped tokens; a domain
    // reader's reads are in api-identity's domain-scope test).
    'identity:list_projects',
    'identity:get_user',
    'identity:create_project',
    'identity:delete_project',
    'identity:update_project',
    'identity:list_users',
    'identity:create_user',
    'identity:delete_user',
    'identity:update_user',
    'identity:list_roles',
    'identity:get_role',
    'identity:create_role',
    'identity:list_domains',
    'identity:create_domain',
    'identity:update_domain',
    'identity:delete_domain',
    'identity:create_grant',
    'identity:revoke_grant',
    'identity:check_grant',
    'identity:list_grants',
    'identity:list_role_assignments',
    'identity:create_system_grant_for_user',
    'identity:check_system_grant_for_user',
    'identity:revoke_system_grant_for_user',
    'identity:list_system_grants_for_user',
    'identity:update_role',
    'identity:delete_role',
    'identity:create_implied_role',
    'identity:delete_implied_role',
    // keystone/common/policies/role.py: domain-specific roles are written by an admin only.
    'identity:create_domain_role',
    'identity:update_domain_role',
    'identity:delete_domain_role',
    // keystone/common/policies/group.py: for project-scoped tokens, admin only (a domain reader reads).
    'identity:list_groups',
    'identity:get_group',
    'identity:create_group',
    'identity:update_group',
    'identity:delete_group',
    'identity:list_users_in_group',
    'identity:check_user_in_group',
    'identity:add_user_to_group',
    'identity:remove_user_from_group',
    'identity:list_groups_for_user',
    'identity:create_system_grant_for_group',
    'identity:check_system_grant_for_group',
    'identity:revoke_system_grant_for_group',
    'identity:list_system_grants_for_group',
    // keystone/common/policies/project_tag.py: tags are changed by an admin.
    'identity:update_project_tags',
    'identity:create_project_tag',
    'identity:delete_project_tag',
    'identity:delete_project_tags',
  ]),
  ...rulesDecidingAs(PROJECT_READER, [
    'os_compute_api:servers:show:flavor-extra-specs',
    'os_compute_api:ips:index',
    'os_compute_api:ips:show',
    'os_compute_api:os-flavor-extra-specs:index',
    'os_compute_api:os-flavor-extra-specs:show',
    'os_compute_api:os-server-tags:index',
    'os_compute_api:os-server-tags:show',
    'os_compute_api:os-server-password:show',
    'os_compute_api:os-instance-actions:list',
    'os_compute_api:os-instance-actions:show',
    'os_compute_api:os-volumes-attachments:index',
    'os_compute_api:os-volumes-attachments:show',
    // nova/policies/quota_sets.py: a project's quotas read by its reader.
    'os_compute_api:os-quota-sets:show',
    'os_compute_api:os-quota-sets:detail',
    // nova/policies/server_metadata.py: read by a reader, changed by a member.
    'os_compute_api:server-metadata:index',
    'os_compute_api:server-metadata:show',
    'identity:get_project',
    // ... and read by anyone with a role on the project.
    'identity:list_project_tags',
    'identity:get_project_tag',
    // nova/policies/security_groups.py, volumes.py: the proxies read by a reader.
    'os_compute_api:os-security-groups:get',
    'os_compute_api:os-security-groups:show',
    'os_compute_api:os-security-groups:list',
    'os_compute_api:os-volumes:list',
    'os_compute_api:os-volumes:detail',
    'os_compute_api:os-volumes:show',
    'os_compute_api:os-volumes:snapshots:list',
    'os_compute_api:os-volumes:snapshots:detail',
    'os_compute_api:os-volumes:snapshots:show',
  ]),
  ...rulesDecidingAs(PROJECT_MEMBER, [
    'os_compute_api:servers:update',
    'os_compute_api:os-console-output',
    'os_compute_api:os-volumes-attachments:create',
    'os_compute_api:os-volumes-attachments:delete',
    'os_compute_api:server-metadata:create',
    'os_compute_api:server-metadata:update',
    'os_compute_api:server-metadata:update_all',
    'os_compute_api:server-metadata:delete',
    'os_compute_api:os-lock-server:lock',
    'os_compute_api:os-lock-server:unlock',
    // ... and changed by a member.
    'os_compute_api:os-security-groups:create',
    'os_compute_api:os-security-groups:update',
    'os_compute_api:os-security-groups:delete',
    'os_compute_api:os-security-groups:rule:create',
    'os_compute_api:os-security-groups:rule:delete',
    'os_compute_api:os-security-groups:add',
    'os_compute_api:os-security-groups:remove',
    'os_compute_api:os-volumes:create',
    'os_compute_api:os-volumes:delete',
    'os_compute_api:os-volumes:snapshots:create',
    'os_compute_api:os-volumes:snapshots:delete',
    'os_compute_api:os-deferred-delete:restore',
    'os_compute_api:os-server-tags:update',
    'os_compute_api:os-server-tags:update_all',
    'os_compute_api:os-server-tags:delete',
    'os_compute_api:os-server-tags:delete_all',
    'os_compute_api:os-server-password:clear',
    // nova/policies/servers.py: createImage (and of a volume-backed server) by a member or an admin.
    'compute:server:createImage',
    'os_compute_api:servers:create_image',
    'os_compute_api:servers:create_image:allow_volume_backed',
  ]),
};

/** Nova's names decide exactly like the cloud's. */
const ALIASES: Array<[PolicyRule, PolicyRule]> = [
  ['os_compute_api:servers:create', 'compute:server:create'],
  ['os_compute_api:servers:delete', 'compute:server:delete'],
  ['os_compute_api:servers:stop', 'compute:server:stop'],
  ['os_compute_api:servers:start', 'compute:server:start'],
  ['os_compute_api:servers:reboot', 'compute:server:reboot'],
  ['os_compute_api:os-pause-server:pause', 'compute:server:pause'],
  ['os_compute_api:os-pause-server:unpause', 'compute:server:unpause'],
  ['os_compute_api:os-suspend-server:suspend', 'compute:server:suspend'],
  ['os_compute_api:os-suspend-server:resume', 'compute:server:resume'],
  ['os_compute_api:servers:rebuild', 'compute:server:rebuild'],
  ['os_compute_api:servers:show', 'compute:server:show'],
  ['os_compute_api:servers:index', 'compute:server:list'],
  ['os_compute_api:servers:detail', 'compute:server:list'],
  ['os_compute_api:servers:index:get_all_tenants', 'compute:servers:list:all_projects'],
  ['os_compute_api:servers:detail:get_all_tenants', 'compute:servers:list:all_projects'],
];

describe('policy (Nova defaults over real Keystone tokens)', () => {
  let testDb: TestDb;
  let ks: Keystone;
  const ctx = {} as Record<Who, RequestContext>;
  const projectId = {} as Record<Where, string>;

  before(async () => {
    testDb = testDbConfig('policy');
    ks = await Keystone.open({
      db: testDb.config,
      clock: new ManualClock(),
      passwordHashing: { logN: 10, r: 8, p: 1 },
    });
    projectId.A = (await ks.ensureProject({ name: 'project-a' })).id;
    projectId.B = (await ks.ensureProject({ name: 'project-b' })).id;
    const users: Array<[Who, string, string]> = [
      ['admin', 'admin', 'project-a'],
      ['manager', 'manager', 'project-a'],
      ['member', 'member', 'project-a'],
      ['reader', 'reader', 'project-a'],
      ['service', 'service', 'project-a'],
      ['memberOfB', 'member', 'project-b'],
    ];
    for (const [who, role, project] of users) {
      const password = randomBytes(12).toString('hex');
      await ks.ensureUser({ name: who, password });
      await ks.assignRole({ user: who, project, role });
      const { token } = await ks.authenticate({ username: who, password, projectName: project });
      ctx[who] = await ks.validateToken(token);
    }
  });
  after(async () => {
    await ks?.close();
    await testDb?.cleanup();
  });

  test('every rule decides as Nova’s defaults for every role, in and out of the caller’s project', () => {
    for (const [rule, allowedOn] of Object.entries(EXPECTED)) {
      for (const where of ['A', 'B'] as const) {
        for (const who of Object.keys(ctx) as Who[]) {
          const decision = authorize(ctx[who], rule as PolicyRule, { projectId: projectId[where] });
          const expected = allowedOn[where].includes(who);
          assert.equal(decision.allowed, expected, `${who} ${rule} on project ${where}`);
        }
      }
    }
    for (const [nova, ours] of ALIASES) {
      for (const where of ['A', 'B'] as const) {
        for (const who of Object.keys(ctx) as Who[]) {
          const target = { projectId: projectId[where] };
          assert.equal(
            authorize(ctx[who], nova, target).allowed,
            authorize(ctx[who], ours, target).allowed,
            nova,
          );
        }
      }
    }
    assert.deepEqual(
      Object.keys(POLICY_RULES).sort(),
      [...Object.keys(EXPECTED), ...ALIASES.map(([n]) => n)].sort(),
    );
  });

  test('enforce throws Forbidden naming the rule; without a target the caller’s project is the target', () => {
    enforce(ctx.member, 'compute:server:create');
    enforce(ctx.member, 'compute:server:create', { projectId: projectId.A });
    assert.throws(
      () => enforce(ctx.reader, 'compute:server:create', { projectId: projectId.A }),
      (err) =>
        isCloudError(err, 'Forbidden') &&
        err.code === 403 &&
        err.message === "Policy doesn't allow compute:server:create to be performed.",
    );
    assert.throws(
      () => enforce(ctx.member, 'bootflow:audit'),
      (err) => isCloudError(err, 'Forbidden'),
    );
    enforce(ctx.admin, 'bootflow:audit');
  });

  test('another project’s resource is NotFound, a denial in the own project Forbidden', () => {
    const serverInA = { projectId: projectId.A };
    const notFound = 'Instance 0c5a could not be found.';
    assert.throws(
      () => enforceVisible(ctx.memberOfB, 'compute:server:show', serverInA, notFound),
      (err) => isCloudError(err, 'NotFound') && err.message === notFound,
    );
    assert.throws(
      () => enforceVisible(ctx.memberOfB, 'compute:server:delete', serverInA, notFound),
      (err) => isCloudError(err, 'NotFound'),
    );
    assert.throws(
      () => enforceVisible(ctx.reader, 'compute:server:delete', serverInA, notFound),
      (err) => isCloudError(err, 'Forbidden'),
    );
    enforceVisible(ctx.reader, 'compute:server:show', serverInA, notFound);
    enforceVisible(ctx.admin, 'compute:server:delete', { projectId: projectId.B }, notFound);
  });

  test('unknown rules and malformed contexts fail closed', () => {
    assert.equal(authorize(ctx.admin, 'compute:server:resize' as PolicyRule).allowed, false);
    assert.equal(authorize(ctx.admin, 'toString' as PolicyRule).allowed, false);
    const noRoles = { ...ctx.admin, roles: undefined } as unknown as RequestContext;
    assert.equal(authorize(noRoles, 'compute:server:show').allowed, false);
  });

  test('decisions follow the roles Keystone validates now, not the ones a token was issued with', async () => {
    const password = randomBytes(12).toString('hex');
    await ks.ensureUser({ name: 'demoted', password });
    await ks.assignRole({ user: 'demoted', project: 'project-a', role: 'admin' });
    const { token } = await ks.authenticate({ username: 'demoted', password, projectName: 'project-a' });
    assert.equal(authorize(await ks.validateToken(token), 'bootflow:audit').allowed, true);
    await ks.assignRole({ user: 'demoted', project: 'project-a', role: 'reader' });
    await ks.unassignRole({ user: 'demoted', project: 'project-a', role: 'admin' });
    const now = await ks.validateToken(token);
    assert.equal(authorize(now, 'bootflow:audit').allowed, false);
    assert.equal(authorize(now, 'compute:server:create').allowed, false);
    assert.equal(authorize(now, 'compute:server:show').allowed, true);
  });
});
