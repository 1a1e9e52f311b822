/**
 * Keystone's role assignments on its three kinds of target (a project, a domain, the whole system) as one
 * pair of writes: a grant is one row of its target's table (the user, the role and, but for the system,
 * the target's id). Granting again is a no-op; revoking what is not there reports `removed: false`.
 */
import { sql, type Kysely } from 'kysely';
import { isUniqueViolation } from '../db';
import { CloudError } from '../errors';
import type { KeystoneDb } from './schema';

export type GrantTarget = { projectId: string } | { domainId: string } | 'system';

export interface Grant {
  userId: string;
  roleId: string;
  on: GrantTarget;
}

type GrantTable = 'role_assignments' | 'domain_role_assignments' | 'system_role_assignments';

/** The grant's table, and its target column with the id (none for the system). */
function placeOf(on: GrantTarget): { table: GrantTable; target?: { column: string; id: string } } {
  if (on === 'system') return { table: 'system_role_assignments' };
  if ('projectId' in on)
    return { table: 'role_assignments', target: { column: 'project_id', id: on.projectId } };
  return { table: 'domain_role_assignments', target: { column: 'domain_id', id: on.domainId } };
}

function whereGrant(db: Kysely<KeystoneDb>, grant: Grant) {
  const { table, target } = placeOf(grant.on);
  const query = db
    .selectFrom(table)
    .select('user_id')
    .where('user_id', '=', grant.userId)
    .where('role_id', '=', grant.roleId);
  return target ? query.where(sql.ref(target.column), '=', target.id) : query;
}

function insertGrant(db: Kysely<KeystoneDb>, grant: Grant, now: number) {
  const row = { user_id: grant.userId, role_id: grant.roleId, created_at: now };
  const { on } = grant;
  if (on === 'system') return db.insertInto('system_role_assignments').values(row).execute();
  if ('projectId' in on)
    return db
      .insertInto('role_assignments')
      .values({ ...row, project_id: on.projectId })
      .execute();
  return db
    .insertInto('domain_role_assignments')
    .values({ ...row, domain_id: on.domainId })
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
  const { table, target } = placeOf(grant.on);
  const query = db.deleteFrom(table).where('user_id', '=', grant.userId).where('role_id', '=', grant.roleId);
  const res = await (target ? query.where(sql.ref(target.column), '=', target.id) : query).executeTakeFirst();
  return { removed: Number(res.numDeletedRows) > 0 };
}
