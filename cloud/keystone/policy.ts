/**
 * Nova's default policies (nova/policies/base.py, servers.py, hypervisors.py since 2023.2, the "new
 * defaults"): creating and deleting a server needs `member` on the server's project, seeing one needs
 * `reader` there, and `admin` anywhere may do anything (context_is_admin). Listing every project's servers,
 * the hypervisors and bootflow's leak audit are admin only. The roles come from the token context with
 * implied roles already expanded, so an admin also holds manager, member and reader.
 *
 * The rule names are the cloud's (compute:server:create, ...); Nova's own names are accepted as aliases.
 */
import { CloudError } from '../errors';

export interface PolicyTarget {
  /** The project owning the resource (Nova's %(project_id)s). */
  projectId?: string;
  /** The domain owning the resource (Keystone's %(target.domain_id)s). */
  domainId?: string;
}

/**
 * What a check reads from the caller (oslo.policy's creds): the roles and the token's scope. A services'
 * RequestContext is project-scoped; Keystone's own API also sees domain-scoped and unscoped tokens.
 */
export interface PolicyCredentials {
  roles: string[];
  /** The token's project scope. */
  projectId?: string;
  /** A domain-scoped token's domain. */
  scopeDomainId?: string;
}

type Check = (ctx: PolicyCredentials, target: PolicyTarget) => boolean;

const hasRole = (ctx: PolicyCredentials, role: string): boolean =>
  Array.isArray(ctx.roles) && ctx.roles.includes(role);
const either =
  (...checks: Check[]): Check =>
  (ctx, target) =>
    checks.some((check) => check(ctx, target));

const sameProject = (ctx: PolicyCredentials, t: PolicyTarget): boolean =>
  ctx.projectId !== undefined && ctx.projectId === t.projectId;

/** Nova's base rules, with the oslo.policy check string each one stands for. */
export const BASE_RULES = {
  context_is_admin: { checkString: 'role:admin', check: ((ctx) => hasRole(ctx, 'admin')) as Check },
  project_manager_api: {
    checkString: 'role:manager and project_id:%(project_id)s',
    check: ((ctx, t) => hasRole(ctx, 'manager') && sameProject(ctx, t)) as Check,
  },
  project_member_api: {
    checkString: 'role:member and project_id:%(project_id)s',
    check: ((ctx, t) => hasRole(ctx, 'member') && sameProject(ctx, t)) as Check,
  },
  project_reader_api: {
    checkString: 'role:reader and project_id:%(project_id)s',
    check: ((ctx, t) => hasRole(ctx, 'reader') && sameProject(ctx, t)) as Check,
  },
} as const;

const ADMIN = { checkString: 'rule:context_is_admin', check: BASE_RULES.context_is_admin.check };
/** oslo.policy's '@': anyone with a valid token. */
const ANYONE = { checkString: '@', check: (() => true) as Check };
const PROJECT_MEMBER = {
  checkString: 'rule:project_member_api',
  check: BASE_RULES.project_member_api.check,
};
const PROJECT_MEMBER_OR_ADMIN = {
  checkString: 'rule:project_member_api or rule:context_is_admin',
  check: either(BASE_RULES.project_member_api.check, BASE_RULES.context_is_admin.check),
};
const PROJECT_READER_OR_ADMIN = {
  checkString: 'rule:project_reader_api or rule:context_is_admin',
  check: either(BASE_RULES.project_reader_api.check, BASE_RULES.context_is_admin.check),
};

/** Keystone's `role:reader and domain_id:%(target.domain_id)s`: a reader on a domain-scoped token. */
const DOMAIN_READER: Check = (ctx, t) =>
  hasRole(ctx, 'reader') && ctx.scopeDomainId !== undefined && ctx.scopeDomainId === t.domainId;
const ADMIN_OR_DOMAIN_READER = {
  checkString: 'rule:admin_required or (role:reader and domain_id:%(target.domain_id)s)',
  check: either(BASE_RULES.context_is_admin.check, DOMAIN_READER),
};
const ADMIN_OR_DOMAIN_READER_OR_PROJECT_READER = {
  checkString:
    'rule:admin_required or (role:reader and domain_id:%(target.project.domain_id)s) or ' +
    '(role:reader and project_id:%(target.project.id)s)',
  check: either(BASE_RULES.context_is_admin.check, DOMAIN_READER, BASE_RULES.project_reader_api.check),
};

export const POLICY_RULES = {
  'compute:server:create': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:delete': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:stop': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:start': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:reboot': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:pause': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:unpause': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:suspend': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:resume': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:rebuild': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:createImage': PROJECT_MEMBER_OR_ADMIN,
  'compute:server:show': PROJECT_READER_OR_ADMIN,
  'compute:server:list': PROJECT_READER_OR_ADMIN,
  'compute:servers:list:all_projects': ADMIN,
  'os_compute_api:os-hypervisors:list': ADMIN,
  'bootflow:audit': ADMIN,
  // Nova's own names for the same rules.
  'os_compute_api:servers:create': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:servers:delete': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:servers:stop': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:servers:start': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:servers:reboot': PROJECT_MEMBER_OR_ADMIN,
  // nova/policies/pause_server.py and suspend_server.py.
  'os_compute_api:os-pause-server:pause': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-pause-server:unpause': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-suspend-server:suspend': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-suspend-server:resume': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:servers:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:servers:index': PROJECT_READER_OR_ADMIN,
  'os_compute_api:servers:detail': PROJECT_READER_OR_ADMIN,
  'os_compute_api:servers:index:get_all_tenants': ADMIN,
  'os_compute_api:servers:detail:get_all_tenants': ADMIN,
  // Keystone's defaults (keystone/common/policies/): administration is admin only (on any scope: Keystone's
  // admin_required is role:admin); a reader on a domain-scoped token may list and see the projects and users
  // of that domain; a project reader may see its own project. Rules on a user (get_user,
  // list_user_projects, validate_token) compare the user id and are checked by the identity API itself.
  'identity:list_projects': ADMIN_OR_DOMAIN_READER,
  'identity:create_project': ADMIN,
  'identity:delete_project': ADMIN,
  'identity:update_project': ADMIN,
  'identity:get_project': ADMIN_OR_DOMAIN_READER_OR_PROJECT_READER,
  'identity:list_project_tags': ADMIN_OR_DOMAIN_READER_OR_PROJECT_READER,
  'identity:get_project_tag': ADMIN_OR_DOMAIN_READER_OR_PROJECT_READER,
  'identity:update_project_tags': ADMIN,
  'identity:create_project_tag': ADMIN,
  'identity:delete_project_tag': ADMIN,
  'identity:delete_project_tags': ADMIN,
  'identity:list_users': ADMIN_OR_DOMAIN_READER,
  'identity:get_user': ADMIN_OR_DOMAIN_READER,
  'identity:create_user': ADMIN,
  'identity:delete_user': ADMIN,
  'identity:update_user': ADMIN,
  'identity:list_roles': ADMIN,
  'identity:get_role': ADMIN,
  'identity:create_role': ADMIN,
  'identity:list_domains': ADMIN,
  'identity:create_domain': ADMIN,
  'identity:update_domain': ADMIN,
  'identity:delete_domain': ADMIN,
  'identity:create_grant': ADMIN,
  'identity:revoke_grant': ADMIN,
  'identity:check_grant': ADMIN,
  'identity:list_grants': ADMIN,
  'identity:list_role_assignments': ADMIN,
  'identity:create_system_grant_for_user': ADMIN,
  'identity:check_system_grant_for_user': ADMIN,
  'identity:revoke_system_grant_for_user': ADMIN,
  'identity:list_system_grants_for_user': ADMIN,
  'identity:update_role': ADMIN,
  'identity:delete_role': ADMIN,
  'identity:create_implied_role': ADMIN,
  // Domain-specific roles (keystone/common/policies/role.py); their reads are checked by the identity API.
  'identity:create_domain_role': ADMIN,
  'identity:update_domain_role': ADMIN,
  'identity:delete_domain_role': ADMIN,
  'identity:delete_implied_role': ADMIN,
  // Groups (keystone/common/policies/group.py): a domain reader reads its domain's groups and members;
  // list_groups_for_user (the user itself too) is checked by the identity API.
  'identity:list_groups': ADMIN_OR_DOMAIN_READER,
  'identity:get_group': ADMIN_OR_DOMAIN_READER,
  'identity:create_group': ADMIN,
  'identity:update_group': ADMIN,
  'identity:delete_group': ADMIN,
  'identity:list_users_in_group': ADMIN_OR_DOMAIN_READER,
  'identity:check_user_in_group': ADMIN_OR_DOMAIN_READER,
  'identity:add_user_to_group': ADMIN,
  'identity:remove_user_from_group': ADMIN,
  'identity:list_groups_for_user': ADMIN_OR_DOMAIN_READER,
  'identity:create_system_grant_for_group': ADMIN,
  'identity:check_system_grant_for_group': ADMIN,
  'identity:revoke_system_grant_for_group': ADMIN,
  'identity:list_system_grants_for_group': ADMIN,
  // The rest of the compute API's defaults (nova/policies/*.py), as the HTTP API checks them.
  'os_compute_api:servers:update': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:servers:rebuild': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:servers:create_image': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:servers:create_image:allow_volume_backed': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-lock-server:lock': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-lock-server:unlock': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-lock-server:unlock:unlock_override': ADMIN,
  'os_compute_api:os-volumes-attachments:index': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-volumes-attachments:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-volumes-attachments:create': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-volumes-attachments:delete': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-evacuate': ADMIN,
  'os_compute_api:servers:show:host_status': ADMIN,
  'os_compute_api:servers:show:flavor-extra-specs': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-extended-server-attributes': ADMIN,
  'os_compute_api:ips:index': PROJECT_READER_OR_ADMIN,
  'os_compute_api:ips:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-flavor-extra-specs:index': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-flavor-extra-specs:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-hypervisors:list-detail': ADMIN,
  'os_compute_api:os-hypervisors:show': ADMIN,
  'os_compute_api:os-services:list': ADMIN,
  'os_compute_api:os-services:update': ADMIN,
  'os_compute_api:limits:other_project': ADMIN,
  'os_compute_api:os-availability-zone:detail': ADMIN,
  'os_compute_api:os-instance-actions:list': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-instance-actions:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-instance-actions:events': ADMIN,
  'os_compute_api:os-instance-actions:events:details': ADMIN,
  'os_compute_api:os-keypairs:other_user': ADMIN,
  'os_compute_api:os-console-output': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-quota-sets:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-quota-sets:detail': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-quota-sets:defaults': ANYONE,
  'os_compute_api:server-metadata:index': PROJECT_READER_OR_ADMIN,
  'os_compute_api:server-metadata:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:server-metadata:create': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:server-metadata:update': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:server-metadata:update_all': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:server-metadata:delete': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-flavor-manage:create': ADMIN,
  'os_compute_api:os-flavor-manage:delete': ADMIN,
  'os_compute_api:os-flavor-manage:update': ADMIN,
  'os_compute_api:os-flavor-extra-specs:create': ADMIN,
  'os_compute_api:os-flavor-extra-specs:update': ADMIN,
  'os_compute_api:os-flavor-extra-specs:delete': ADMIN,
  // nova/policies/server_groups.py: create needs member of the caller's own project (no admin clause).
  'os_compute_api:os-server-groups:create': PROJECT_MEMBER,
  'os_compute_api:os-server-groups:delete': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-server-groups:index': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-server-groups:index:all_projects': ADMIN,
  'os_compute_api:os-server-groups:show': PROJECT_READER_OR_ADMIN,
  // The deprecated proxies to Neutron and Cinder (nova/policies/security_groups.py, volumes.py).
  'os_compute_api:os-security-groups:get': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-security-groups:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-security-groups:create': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-security-groups:update': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-security-groups:delete': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-security-groups:rule:create': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-security-groups:rule:delete': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-security-groups:list': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-security-groups:add': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-security-groups:remove': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-volumes:list': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-volumes:detail': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-volumes:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-volumes:create': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-volumes:delete': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-volumes:snapshots:list': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-volumes:snapshots:detail': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-volumes:snapshots:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-volumes:snapshots:create': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-volumes:snapshots:delete': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-flavor-access': ADMIN,
  'os_compute_api:os-admin-actions:reset_state': ADMIN,
  'os_compute_api:os-admin-actions:inject_network_info': ADMIN,
  'os_compute_api:os-deferred-delete:restore': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-server-tags:index': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-server-tags:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-server-tags:update': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-server-tags:update_all': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-server-tags:delete': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-server-tags:delete_all': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-server-password:show': PROJECT_READER_OR_ADMIN,
  'os_compute_api:os-server-password:clear': PROJECT_MEMBER_OR_ADMIN,
  'os_compute_api:os-hypervisors:statistics': ADMIN,
  'os_compute_api:os-hypervisors:uptime': ADMIN,
  'os_compute_api:os-hypervisors:search': ADMIN,
  'os_compute_api:os-hypervisors:servers': ADMIN,
  'os_compute_api:os-flavor-access:add_tenant_access': ADMIN,
  'os_compute_api:os-flavor-access:remove_tenant_access': ADMIN,
} as const satisfies Record<string, { checkString: string; check: Check }>;

export type PolicyRule = keyof typeof POLICY_RULES;

export interface PolicyDecision {
  rule: string;
  allowed: boolean;
  /** The target is in the caller's project: a denial there may be told (403); elsewhere it must not leak. */
  sameProject: boolean;
}

/** Decides without throwing. Without a target, the caller's own project is the target (as Nova does). */
export function authorize(ctx: PolicyCredentials, rule: PolicyRule, target?: PolicyTarget): PolicyDecision {
  const t = target ?? { projectId: ctx.projectId };
  const definition = Object.hasOwn(POLICY_RULES, rule) ? POLICY_RULES[rule] : undefined;
  // An unknown rule fails closed.
  const allowed = definition !== undefined && definition.check(ctx, t);
  return { rule, allowed, sameProject: sameProject(ctx, t) };
}

function forbidden(rule: string): CloudError {
  return new CloudError('Forbidden', `Policy doesn't allow ${rule} to be performed.`, { rule });
}

/** Throws Forbidden (Nova's PolicyNotAuthorized) unless the rule allows it. */
export function enforce(ctx: PolicyCredentials, rule: PolicyRule, target?: PolicyTarget): void {
  if (!authorize(ctx, rule, target).allowed) throw forbidden(rule);
}

/**
 * For an existing resource whose existence must not leak: another project's resource the caller may not
 * touch is NotFound (Nova's project-scoped lookup finds nothing), while a denial inside the caller's own
 * project is Forbidden.
 */
export function enforceVisible(
  ctx: PolicyCredentials,
  rule: PolicyRule,
  target: PolicyTarget,
  notFoundMessage: string,
): void {
  const decision = authorize(ctx, rule, target);
  if (decision.allowed) return;
  if (!decision.sameProject) throw new CloudError('NotFound', notFoundMessage);
  throw forbidden(rule);
}
