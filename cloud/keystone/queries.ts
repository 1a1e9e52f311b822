/** Reads of the keystone database shared by the admin operations and token handling. */
import { inheritedRoleIds, projectsInherited } from './inherited';
import type { Kysely } from 'kysely';
import { CloudError } from '../errors';
import { expandImpliedRoles } from './roles';
import { NULL_DOMAIN_ID } from './migrations';
import type { DomainsTable, KeystoneDb, ProjectsTable } from './schema';
import { USER_COLUMNS, toRole, toUser, type Role, type User } from './views';

type Db = Kysely<KeystoneDb>;

/** A domain by name, else by id (as the openstack CLI resolves --domain). */
export async function findDomain(db: Db, ref: string): Promise<DomainsTable> {
  const row =
    (await db.selectFrom('domains').selectAll().where('name', '=', ref).executeTakeFirst()) ??
    (await db.selectFrom('domains').selectAll().where('id', '=', ref).executeTakeFirst());
  if (!row) throw new CloudError('NotFound', `Could not find domain: ${ref}.`, { domain: ref });
  return row;
}

/** A project by name within the domain, else by id. */
export async function findProject(db: Db, ref: string, domainRef: string): Promise<ProjectsTable> {
  const domain = await findDomain(db, domainRef);
  const row =
    (await db
      .selectFrom('projects')
      .selectAll()
      .where('domain_id', '=', domain.id)
      .where('name', '=', ref)
      .executeTakeFirst()) ??
    (await db.selectFrom('projects').selectAll().where('id', '=', ref).executeTakeFirst());
  if (!row) throw new CloudError('NotFound', `Could not find project: ${ref}.`, { project: ref });
  return row;
}

/** A user by name within the domain, else by id. */
export async function findUser(db: Db, ref: string, domainRef: string): Promise<User> {
  const domain = await findDomain(db, domainRef);
  const row =
    (await db
      .selectFrom('users')
      .select(USER_COLUMNS)
      .where('domain_id', '=', domain.id)
      .where('name', '=', ref)
      .executeTakeFirst()) ??
    (await db.selectFrom('users').select(USER_COLUMNS).where('id', '=', ref).executeTakeFirst());
  if (!row) throw new CloudError('NotFound', `Could not find user: ${ref}.`, { user: ref });
  return toUser(row);
}

/** A user by id only. */
export async function findUserById(db: Db, id: string): Promise<User> {
  const row = await db.selectFrom('users').select(USER_COLUMNS).where('id', '=', id).executeTakeFirst();
  if (!row) throw new CloudError('NotFound', `Could not find user: ${id}.`, { user: id });
  return toUser(row);
}

const ROLE_COLUMNS = ['id', 'name', 'domain_id'] as const;

/** A global role by name (a domain-specific role may share its name), else any role by id. */
export async function findRole(db: Db, ref: string): Promise<Role> {
  const row =
    (await db
      .selectFrom('roles')
      .select(ROLE_COLUMNS)
      .where('name', '=', ref)
      .where('domain_id', '=', NULL_DOMAIN_ID)
      .executeTakeFirst()) ??
    (await db.selectFrom('roles').select(ROLE_COLUMNS).where('id', '=', ref).executeTakeFirst());
  if (!row) throw new CloudError('NotFound', `Could not find role: ${ref}.`, { role: ref });
  return toRole(row);
}

export async function findRoleById(db: Db, id: string): Promise<Role> {
  const row = await db.selectFrom('roles').select(ROLE_COLUMNS).where('id', '=', id).executeTakeFirst();
  if (!row) throw new CloudError('NotFound', `Could not find role: ${id}.`, { role: id });
  return toRole(row);
}

/** The global roles, or (domainId) one domain's roles; by name. */
export async function listRoles(db: Db, domainId?: string): Promise<Role[]> {
  const rows = await db
    .selectFrom('roles')
    .select(ROLE_COLUMNS)
    .where('domain_id', '=', domainId ?? NULL_DOMAIN_ID)
    .orderBy('name')
    .execute();
  return rows.map(toRole);
}

/**
 * Keystone's DomainSpecificRoleMismatch (assignment/core.py create_grant): a domain-specific role is granted
 * only on its own domain's projects.
 */
export async function checkRoleFitsProject(db: Db, role: Role, projectId: string): Promise<void> {
  if (role.domainId === null) return;
  const project = await db
    .selectFrom('projects')
    .select('domain_id')
    .where('id', '=', projectId)
    .executeTakeFirst();
  if (project && project.domain_id !== role.domainId)
    throw new CloudError(
      'Forbidden',
      `Project ${projectId} must be in the same domain as the role ${role.id} being assigned.`,
      { role: role.id },
    );
}

/** Keystone's create_system_grant_*: a domain-specific role is never granted on the system (400). */
export async function checkRoleFitsSystem(db: Db, roleId: string): Promise<void> {
  const role = await findRoleById(db, roleId);
  if (role.domainId !== null)
    throw new CloudError(
      'BadRequest',
      `Role ${role.id} is a domain-specific role. Unable to grant a domain-specific role in a system context.`,
      { role: role.id },
    );
}

/** The user's effective roles on the project: assigned to it or to its groups, plus what they imply, sorted. */
export async function effectiveRoles(db: Db, userId: string, projectId: string): Promise<string[]> {
  const assigned = await db
    .selectFrom('role_assignments')
    .innerJoin('roles', 'roles.id', 'role_assignments.role_id')
    .select('roles.id')
    .where('role_assignments.user_id', '=', userId)
    .where('role_assignments.project_id', '=', projectId)
    .execute();
  const viaGroups = await db
    .selectFrom('group_role_assignments as g')
    .innerJoin('user_group_membership as m', 'm.group_id', 'g.group_id')
    .innerJoin('roles', 'roles.id', 'g.role_id')
    .select('roles.id')
    .where('m.user_id', '=', userId)
    .where('g.project_id', '=', projectId)
    .execute();
  // OS-INHERIT: what the project's domain and ancestors pass down.
  const inherited = await inheritedRoleIds(db, userId, projectId);
  return withImpliedRoles(db, [...assigned, ...viaGroups, ...inherited]);
}

/** The user's effective roles on the domain (its UserDomain and its groups' GroupDomain assignments and what they imply), sorted. */
export async function effectiveDomainRoles(db: Db, userId: string, domainId: string): Promise<string[]> {
  const assigned = await db
    .selectFrom('domain_role_assignments')
    .innerJoin('roles', 'roles.id', 'domain_role_assignments.role_id')
    .select('roles.id')
    .where('domain_role_assignments.user_id', '=', userId)
    .where('domain_role_assignments.domain_id', '=', domainId)
    .execute();
  const viaGroups = await db
    .selectFrom('group_domain_role_assignments as g')
    .innerJoin('user_group_membership as m', 'm.group_id', 'g.group_id')
    .innerJoin('roles', 'roles.id', 'g.role_id')
    .select('roles.id')
    .where('m.user_id', '=', userId)
    .where('g.domain_id', '=', domainId)
    .execute();
  return withImpliedRoles(db, [...assigned, ...viaGroups]);
}

/** The user's effective roles on the system. */
export async function effectiveSystemRoles(db: Db, userId: string): Promise<string[]> {
  const assigned = await db
    .selectFrom('system_role_assignments')
    .innerJoin('roles', 'roles.id', 'system_role_assignments.role_id')
    .select('roles.id')
    .where('system_role_assignments.user_id', '=', userId)
    .execute();
  const viaGroups = await db
    .selectFrom('group_system_role_assignments as g')
    .innerJoin('user_group_membership as m', 'm.group_id', 'g.group_id')
    .innerJoin('roles', 'roles.id', 'g.role_id')
    .select('roles.id')
    .where('m.user_id', '=', userId)
    .execute();
  return withImpliedRoles(db, [...assigned, ...viaGroups]);
}

/**
 * The assigned roles (by id) and what they imply, as the names of the global ones, sorted: a domain-specific
 * role only implies others and is never in a token (Keystone's _strip_domain_roles).
 */
async function withImpliedRoles(db: Db, assigned: { id: string }[]): Promise<string[]> {
  if (assigned.length === 0) return [];
  const rules = await db.selectFrom('implied_roles').select(['prior_role_id', 'implied_role_id']).execute();
  const ids = expandImpliedRoles(
    assigned.map((a) => a.id),
    rules.map((rule) => [rule.prior_role_id, rule.implied_role_id] as const),
  );
  const names = await db
    .selectFrom('roles')
    .select('name')
    .where('id', 'in', ids)
    .where('domain_id', '=', NULL_DOMAIN_ID)
    .execute();
  return [...new Set(names.map((r) => r.name))].sort();
}

const userWithDomain = (db: Db) =>
  db
    .selectFrom('users')
    .innerJoin('domains', 'domains.id', 'users.domain_id')
    .select([
      'users.id',
      'users.name',
      'users.domain_id',
      'users.enabled',
      'domains.enabled as domain_enabled',
    ]);

const projectWithDomain = (db: Db) =>
  db
    .selectFrom('projects')
    .innerJoin('domains', 'domains.id', 'projects.domain_id')
    .select([
      'projects.id',
      'projects.name',
      'projects.domain_id',
      'projects.enabled',
      'domains.enabled as domain_enabled',
    ]);

/** A domain named by id or by name (Keystone's auth request allows either). */
export type DomainLocator = { id: string } | { name: string };
/** A user or project named by id, or by name within a domain. */
export type EntityLocator = { id: string } | { name: string; domain: DomainLocator };

/** The user a login names, with its hash and enabled flags (checked after the password, for even timing). */
export function loginUser(db: Db, user: EntityLocator) {
  const query = userWithDomain(db).select('users.password_hash');
  if ('id' in user) return query.where('users.id', '=', user.id).executeTakeFirst();
  const named = query.where('users.name', '=', user.name);
  return (
    'id' in user.domain
      ? named.where('domains.id', '=', user.domain.id)
      : named.where('domains.name', '=', user.domain.name)
  ).executeTakeFirst();
}

/** The user, only if it and its domain are enabled. */
export async function activeUser(db: Db, id: string) {
  const row = await userWithDomain(db).where('users.id', '=', id).executeTakeFirst();
  return row && row.enabled === 1 && row.domain_enabled === 1 ? row : undefined;
}

/** The domain (by id or name), only if enabled. */
export async function activeDomain(db: Db, ref: DomainLocator) {
  const query = db.selectFrom('domains').select(['id', 'name', 'enabled']);
  const row = await (
    'id' in ref ? query.where('id', '=', ref.id) : query.where('name', '=', ref.name)
  ).executeTakeFirst();
  return row && row.enabled === 1 ? row : undefined;
}

/** The project (by id, or by name in a domain given by id or name), only if it and its domain are enabled. */
export async function activeProject(db: Db, ref: EntityLocator) {
  let query = projectWithDomain(db);
  if ('id' in ref) query = query.where('projects.id', '=', ref.id);
  else {
    query = query.where('projects.name', '=', ref.name);
    query =
      'id' in ref.domain
        ? query.where('domains.id', '=', ref.domain.id)
        : query.where('domains.name', '=', ref.domain.name);
  }
  const row = await query.executeTakeFirst();
  return row && row.enabled === 1 && row.domain_enabled === 1 ? row : undefined;
}

/**
 * The projects and domains where the user holds a role, directly or through a group (Keystone's
 * list_projects_for_user / list_domains_for_user, as /v3/auth/projects and /v3/users/{id}/projects use).
 */
export async function scopesOfUser(
  db: Db,
  userId: string,
): Promise<{ projectIds: string[]; domainIds: string[] }> {
  const groups = db.selectFrom('user_group_membership').select('group_id').where('user_id', '=', userId);
  const [direct, viaGroups, domains, groupDomains] = await Promise.all([
    db.selectFrom('role_assignments').select('project_id').where('user_id', '=', userId).execute(),
    db.selectFrom('group_role_assignments').select('project_id').where('group_id', 'in', groups).execute(),
    db.selectFrom('domain_role_assignments').select('domain_id').where('user_id', '=', userId).execute(),
    db
      .selectFrom('group_domain_role_assignments')
      .select('domain_id')
      .where('group_id', 'in', groups)
      .execute(),
  ]);
  const inherited = await projectsInherited(db, userId);
  return {
    projectIds: [...new Set([...[...direct, ...viaGroups].map((r) => r.project_id), ...inherited])],
    domainIds: [...new Set([...domains, ...groupDomains].map((r) => r.domain_id))],
  };
}
