/**
 * Keystone's groups: rows of the group table, their members (user_group_membership, users of any domain)
 * and the roles granted to a group on a project or a domain, which each member holds (queries.ts folds
 * them into a user's effective roles, so a token gains or loses them at its next validation).
 */
import { forgetInherited } from './inherited';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { isUniqueViolation } from '../db';
import { CloudError } from '../errors';
import type { KeystoneDb } from './schema';
import { toGroup, type Group, type GroupRoleAssignment, type User, USER_COLUMNS, toUser } from './views';

type Db = Kysely<KeystoneDb>;

/** A name already taken in the domain: Keystone's 409. */
async function insertNamedGroup(name: string, domainId: string, write: () => Promise<unknown>) {
  try {
    await write();
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    throw new CloudError(
      'Conflict',
      `Conflict occurred attempting to store group - Duplicate entry found with name ${name} at domain ID ${domainId}.`,
    );
  }
}

export async function groupById(db: Db, id: string): Promise<Group> {
  const row = await db.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new CloudError('NotFound', `Could not find group: ${id}.`, { group: id });
  return toGroup(row);
}

export async function createGroup(
  db: Db,
  r: {
    name: string;
    domainId: string;
    description?: string | null | undefined;
    extra?: Record<string, unknown> | undefined;
  },
  now: number,
): Promise<Group> {
  const row = {
    id: randomUUID().replace(/-/g, ''),
    domain_id: r.domainId,
    name: r.name,
    description: r.description ?? null,
    created_at: now,
    extra: JSON.stringify(r.extra ?? {}),
  };
  await insertNamedGroup(r.name, r.domainId, () => db.insertInto('groups').values(row).execute());
  return toGroup(row);
}

export async function updateGroup(
  db: Db,
  r: {
    id: string;
    name?: string | undefined;
    description?: string | null | undefined;
    extra?: Record<string, unknown> | undefined;
  },
): Promise<Group> {
  const current = await groupById(db, r.id);
  const next = {
    ...current,
    ...(r.name !== undefined ? { name: r.name } : {}),
    ...(r.description !== undefined ? { description: r.description } : {}),
    extra: { ...current.extra, ...r.extra },
  };
  await insertNamedGroup(next.name, next.domainId, () =>
    db
      .updateTable('groups')
      .set({ name: next.name, description: next.description, extra: JSON.stringify(next.extra) })
      .where('id', '=', r.id)
      .execute(),
  );
  return next;
}

/** The group, its memberships and its grants. */
export async function deleteGroup(trx: Db, id: string): Promise<void> {
  await groupById(trx, id);
  await trx.deleteFrom('user_group_membership').where('group_id', '=', id).execute();
  await trx.deleteFrom('group_role_assignments').where('group_id', '=', id).execute();
  await trx.deleteFrom('group_domain_role_assignments').where('group_id', '=', id).execute();
  await trx.deleteFrom('group_system_role_assignments').where('group_id', '=', id).execute();
  await forgetInherited(trx, { actorType: 'group', ids: [id] });
  await trx.deleteFrom('groups').where('id', '=', id).execute();
}

/** Groups by name, domain, or those the user is a member of; by name. */
export async function listGroups(
  db: Db,
  r: { name?: string | undefined; domainId?: string | undefined; userId?: string | undefined },
): Promise<Group[]> {
  let query = db.selectFrom('groups').selectAll('groups');
  if (r.name !== undefined) query = query.where('groups.name', '=', r.name);
  if (r.domainId !== undefined) query = query.where('groups.domain_id', '=', r.domainId);
  if (r.userId !== undefined)
    query = query
      .innerJoin('user_group_membership as m', 'm.group_id', 'groups.id')
      .where('m.user_id', '=', r.userId);
  return (await query.orderBy('groups.name').execute()).map(toGroup);
}

export async function usersInGroup(db: Db, groupId: string): Promise<User[]> {
  const rows = await db
    .selectFrom('users')
    .innerJoin('user_group_membership as m', 'm.user_id', 'users.id')
    .select(USER_COLUMNS)
    .where('m.group_id', '=', groupId)
    .orderBy('users.name')
    .execute();
  return rows.map(toUser);
}

export async function isMember(db: Db, groupId: string, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom('user_group_membership')
    .select('user_id')
    .where('group_id', '=', groupId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row !== undefined;
}

/** Adds the user to the group; again (or concurrently) is a no-op. */
export async function addMember(db: Db, groupId: string, userId: string): Promise<void> {
  if (await isMember(db, groupId, userId)) return;
  try {
    await db.insertInto('user_group_membership').values({ group_id: groupId, user_id: userId }).execute();
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
  }
}

/** Removes the membership: Keystone's NotFound when the user is not in the group. */
export async function removeMember(db: Db, groupId: string, userId: string): Promise<void> {
  const res = await db
    .deleteFrom('user_group_membership')
    .where('group_id', '=', groupId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  if (Number(res.numDeletedRows) === 0)
    throw new CloudError('NotFound', `User '${userId}' not found in group '${groupId}'`, { user: userId });
}

/** Group grants on projects and domains (not the implied roles), filtered. */
export async function listGroupAssignments(
  db: Db,
  r: {
    groupId?: string | undefined;
    projectId?: string | undefined;
    domainId?: string | undefined;
    roleId?: string | undefined;
    system?: boolean | undefined;
  },
): Promise<GroupRoleAssignment[]> {
  let onProjects = db
    .selectFrom('group_role_assignments as g')
    .innerJoin('roles', 'roles.id', 'g.role_id')
    .select([
      'g.group_id as groupId',
      'g.project_id as projectId',
      'roles.id as roleId',
      'roles.name as roleName',
    ]);
  let onDomains = db
    .selectFrom('group_domain_role_assignments as g')
    .innerJoin('roles', 'roles.id', 'g.role_id')
    .select([
      'g.group_id as groupId',
      'g.domain_id as domainId',
      'roles.id as roleId',
      'roles.name as roleName',
    ]);
  if (r.groupId !== undefined) {
    onProjects = onProjects.where('g.group_id', '=', r.groupId);
    onDomains = onDomains.where('g.group_id', '=', r.groupId);
  }
  if (r.roleId !== undefined) {
    onProjects = onProjects.where('g.role_id', '=', r.roleId);
    onDomains = onDomains.where('g.role_id', '=', r.roleId);
  }
  if (r.projectId !== undefined) onProjects = onProjects.where('g.project_id', '=', r.projectId);
  if (r.domainId !== undefined) onDomains = onDomains.where('g.domain_id', '=', r.domainId);
  // The system's grants: asked for alone (system), or with no project or domain filter.
  let onSystem = db
    .selectFrom('group_system_role_assignments as g')
    .innerJoin('roles', 'roles.id', 'g.role_id')
    .select(['g.group_id as groupId', 'roles.id as roleId', 'roles.name as roleName']);
  if (r.groupId !== undefined) onSystem = onSystem.where('g.group_id', '=', r.groupId);
  if (r.roleId !== undefined) onSystem = onSystem.where('g.role_id', '=', r.roleId);
  const withSystem = r.system === true || (r.projectId === undefined && r.domainId === undefined);
  const system = withSystem
    ? (await onSystem.orderBy('g.group_id').orderBy('roles.name').execute()).map((a) => ({
        ...a,
        system: true as const,
      }))
    : [];
  if (r.system === true) return system;
  const projects =
    r.domainId === undefined ? await onProjects.orderBy('g.group_id').orderBy('roles.name').execute() : [];
  const domains =
    r.projectId === undefined ? await onDomains.orderBy('g.group_id').orderBy('roles.name').execute() : [];
  return [...projects, ...domains, ...system];
}

/** The members of each group, for expanding group grants into users (role_assignments?effective). */
export async function membersOf(db: Db, groupIds: string[]): Promise<Map<string, string[]>> {
  const members = new Map<string, string[]>();
  if (groupIds.length === 0) return members;
  const rows = await db
    .selectFrom('user_group_membership')
    .select(['group_id', 'user_id'])
    .where('group_id', 'in', groupIds)
    .execute();
  for (const row of rows) members.set(row.group_id, [...(members.get(row.group_id) ?? []), row.user_id]);
  return members;
}
