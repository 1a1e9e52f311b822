/**
 * Keystone's role assignments on its three kinds of target (a project, a domain, the whole system), to a
 * user or (on a project or a domain) to a group, as one pair of writes: a grant is one row of its target's
 * table (the actor, the role and, but for the system, the target's id). Granting again is a no-op; revoking
 * what is not there reports `removed: false`.
 */
import { sql, type Kysely } from 'kysely';
import { isUniqueViolation } from '../db';
import { CloudError } from '../errors';
import type { KeystoneDb } from './schema';

export type GrantTarget = { projectId: string } | { domainId: string } | 'system';

export type Grant =
  { userId: string; roleId: string; on: GrantTarget } | { groupId: string; roleId: string; on: GrantTarget };

type GrantTable =
  | 'role_assignments'
  | 'domain_role_assignments'
  | 'system_role_assignments'
  | 'group_role_assignments'
  | 'group_domain_role_assignments'
  | 'group_system_role_assignments';

interface Place {
  table: GrantTable;
  actor: { column: 'user_id' | 'group_id'; id: string };
  target?: { column: 'project_id' | 'domain_id'; id: string };
}

/** The grant's table, its actor column and its target column with the id (none for the system). */
function placeOf(grant: Grant): Place {
  const { on } = grant;
  const group = 'groupId' in grant;
  const actor = group
    ? { column: 'group_id' as const, id: grant.groupId }
    : { column: 'user_id' as const, id: grant.userId };
  if (on === 'system')
    return { table: group ? 'group_system_role_assignments' : 'system_role_assignments', actor };
  if ('projectId' in on)
    return {
      table: group ? 'group_role_assignments' : 'role_assignments',
      actor,
      target: { column: 'project_id', id: on.projectId },
    };
  return {
    table: group ? 'group_domain_role_assignments' : 'domain_role_assignments',
    actor,
    target: { column: 'domain_id', id: on.domainId },
  };
}

function whereGrant(db: Kysely<KeystoneDb>, grant: Grant) {
  const { table, actor, target } = placeOf(grant);
  const query = db
    .selectFrom(table)
    .select('role_id')
    .where(sql.ref(actor.column), '=', actor.id)
    .where('role_id', '=', grant.roleId);
  return target ? query.where(sql.ref(target.column), '=', target.id) : query;
}

function insertGrant(db: Kysely<KeystoneDb>, grant: Grant, now: number) {
  const { table, actor, target } = placeOf(grant);
  const row = {
    [actor.column]: actor.id,
    role_id: grant.roleId,
    created_at: now,
    ...(target ? { [target.column]: target.id } : {}),
  };
  // The columns are the table's own by construction (placeOf); Kysely cannot follow the dynamic table.
  return db
    .insertInto(table)
    .values(row as never)
    .execute();
}

/** Adds the grant unless it is there (a concurrent same grant: the unique key keeps one row). */
export async function addGrant(db: Kysely<KeystoneDb>, grant: Grant, now: number): Promise<void> {
  if (await whereGrant(db, grant).executeTakeFirst()) return;
  try {
    await insertGrant(db, grant, now);
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
  }
  if (!(await whereGrant(db, grant).executeTakeFirst()))
    throw new CloudError('Conflict', 'The row being created was removed concurrently; try again');
}

/** Removes the grant; whether there was one. */
export async function removeGrant(db: Kysely<KeystoneDb>, grant: Grant): Promise<{ removed: boolean }> {
  const { table, actor, target } = placeOf(grant);
  const query = db
    .deleteFrom(table)
    .where(sql.ref(actor.column), '=', actor.id)
    .where('role_id', '=', grant.roleId);
  const res = await (target ? query.where(sql.ref(target.column), '=', target.id) : query).executeTakeFirst();
  return { removed: Number(res.numDeletedRows) > 0 };
}
