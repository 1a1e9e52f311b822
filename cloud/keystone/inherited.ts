/**
 * OS-INHERIT (keystone/api/os_inherit.py, assignment core's inherited_to_projects): a role granted to a
 * user or a group on a domain or a project "inherited to projects" is held on every project below it —
 * every project of the domain, or every descendant of the project — and not on the domain or the project
 * itself. Each grant is one row; the effective roles on a project (queries.ts) add what its domain and its
 * ancestors pass down.
 */
import type { Kysely } from 'kysely';
import { isUniqueViolation } from '../db';
import { ancestorsOf, descendantsOf } from './project-tree';
import type { InheritedRoleAssignmentsTable, KeystoneDb } from './schema';

export interface InheritedGrant {
  actor: { user: string } | { group: string };
  target: { domain: string } | { project: string };
  roleId: string;
}

const columns = (g: InheritedGrant) => ({
  actor_type: 'user' in g.actor ? ('user' as const) : ('group' as const),
  actor_id: 'user' in g.actor ? g.actor.user : g.actor.group,
  target_type: 'domain' in g.target ? ('domain' as const) : ('project' as const),
  target_id: 'domain' in g.target ? g.target.domain : g.target.project,
  role_id: g.roleId,
});

function where(db: Kysely<KeystoneDb>, g: InheritedGrant) {
  const c = columns(g);
  return db
    .selectFrom('inherited_role_assignments')
    .select('role_id')
    .where('actor_type', '=', c.actor_type)
    .where('actor_id', '=', c.actor_id)
    .where('target_type', '=', c.target_type)
    .where('target_id', '=', c.target_id)
    .where('role_id', '=', c.role_id);
}

/** Adds the inherited grant (again: a no-op). */
export async function addInherited(db: Kysely<KeystoneDb>, g: InheritedGrant, now: number): Promise<void> {
  if (await where(db, g).executeTakeFirst()) return;
  try {
    await db
      .insertInto('inherited_role_assignments')
      .values({ ...columns(g), created_at: now })
      .execute();
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
  }
}

export async function hasInherited(db: Kysely<KeystoneDb>, g: InheritedGrant): Promise<boolean> {
  return (await where(db, g).executeTakeFirst()) !== undefined;
}

/** Removes it; whether there was one. */
export async function removeInherited(db: Kysely<KeystoneDb>, g: InheritedGrant): Promise<boolean> {
  const c = columns(g);
  const res = await db
    .deleteFrom('inherited_role_assignments')
    .where('actor_type', '=', c.actor_type)
    .where('actor_id', '=', c.actor_id)
    .where('target_type', '=', c.target_type)
    .where('target_id', '=', c.target_id)
    .where('role_id', '=', c.role_id)
    .executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}

export async function listInherited(db: Kysely<KeystoneDb>): Promise<InheritedGrant[]> {
  const rows = await db
    .selectFrom('inherited_role_assignments')
    .selectAll()
    .orderBy('created_at')
    .orderBy('role_id')
    .execute();
  return rows.map(toGrant);
}

const toGrant = (r: InheritedRoleAssignmentsTable): InheritedGrant => ({
  actor: r.actor_type === 'user' ? { user: r.actor_id } : { group: r.actor_id },
  target: r.target_type === 'domain' ? { domain: r.target_id } : { project: r.target_id },
  roleId: r.role_id,
});

/** The ids of the projects an inherited grant's target passes its role down to. */
export async function projectsBelow(
  db: Kysely<KeystoneDb>,
  target: InheritedGrant['target'],
): Promise<string[]> {
  if ('domain' in target)
    return (
      await db.selectFrom('projects').select('id').where('domain_id', '=', target.domain).execute()
    ).map((p) => p.id);
  return (await descendantsOf(db, target.project)).map((p) => p.id);
}

/** The roles (ids) the user inherits on a project: from its domain and its ancestors, directly or by group. */
export async function inheritedRoleIds(
  db: Kysely<KeystoneDb>,
  userId: string,
  projectId: string,
): Promise<Array<{ id: string }>> {
  const project = await db.selectFrom('projects').selectAll().where('id', '=', projectId).executeTakeFirst();
  if (!project) return [];
  const ancestors = (await ancestorsOf(db, project)).map((p) => p.id);
  const groups = db.selectFrom('user_group_membership').select('group_id').where('user_id', '=', userId);
  return db
    .selectFrom('inherited_role_assignments as i')
    .select('i.role_id as id')
    .where((eb) =>
      eb.and([
        eb.or([
          eb.and([eb('i.actor_type', '=', 'user'), eb('i.actor_id', '=', userId)]),
          eb.and([eb('i.actor_type', '=', 'group'), eb('i.actor_id', 'in', groups)]),
        ]),
        eb.or([
          eb.and([eb('i.target_type', '=', 'domain'), eb('i.target_id', '=', project.domain_id)]),
          ...(ancestors.length
            ? [eb.and([eb('i.target_type', '=', 'project'), eb('i.target_id', 'in', ancestors)])]
            : []),
        ]),
      ]),
    )
    .execute();
}

/** The projects where the user inherits some role (for /v3/auth/projects and /v3/users/{id}/projects). */
export async function projectsInherited(db: Kysely<KeystoneDb>, userId: string): Promise<string[]> {
  const groups = db.selectFrom('user_group_membership').select('group_id').where('user_id', '=', userId);
  const rows = await db
    .selectFrom('inherited_role_assignments')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb.and([eb('actor_type', '=', 'user'), eb('actor_id', '=', userId)]),
        eb.and([eb('actor_type', '=', 'group'), eb('actor_id', 'in', groups)]),
      ]),
    )
    .execute();
  const ids = new Set<string>();
  for (const r of rows) for (const id of await projectsBelow(db, toGrant(r).target)) ids.add(id);
  return [...ids];
}

/** Removes every inherited grant of an actor or on a target (their delete). */
export async function forgetInherited(
  db: Kysely<KeystoneDb>,
  of: { actorType: 'user' | 'group'; ids: string[] } | { targetType: 'domain' | 'project'; ids: string[] },
): Promise<void> {
  if (of.ids.length === 0) return;
  const query = db.deleteFrom('inherited_role_assignments');
  await (
    'actorType' in of
      ? query.where('actor_type', '=', of.actorType).where('actor_id', 'in', of.ids)
      : query.where('target_type', '=', of.targetType).where('target_id', 'in', of.ids)
  ).execute();
}
