/**
 * Keystone's application credentials (keystone/application_credential/core.py, api/users.py): a user
 * delegates some of its roles on the project its token is scoped to, under a name, to a secret given once
 * (stored as a scrypt hash only). Authenticating with it (auth.ts) gives a token scoped to that project with
 * those roles, as long as the user still holds them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { isUniqueViolation } from '../db';
import { CloudError } from '../errors';
import { idSchema, nameSchema, parseRequest } from '../validation';
import * as q from './queries';
import type { ApplicationCredentialsTable, KeystoneDb } from './schema';

const newId = (): string => randomUUID().replace(/-/g, '');

export interface ApplicationCredential {
  id: string;
  name: string;
  userId: string;
  projectId: string;
  description: string | null;
  /** Epoch ms, null for never. */
  expiresAt: number | null;
  /** Microseconds past expiresAt's millisecond (Keystone keeps what the client gave to the microsecond). */
  expiresAtMicros: number;
  unrestricted: boolean;
  roles: Array<{ id: string; name: string }>;
}

/** Keystone's _generate_secret: 64 random bytes, URL-safe base64 without padding. */
export const generateSecret = (): string => randomBytes(64).toString('base64url');

export const createAppCredRequest = z.strictObject({
  userId: idSchema,
  projectId: idSchema,
  name: nameSchema,
  description: z.string().max(4096).nullable().optional(),
  secret: z.string().min(1).max(4096).optional(),
  expiresAt: z.number().int().nullable().optional(),
  expiresAtMicros: z.number().int().min(0).max(999).optional(),
  unrestricted: z.boolean().optional(),
  /** The roles delegated (ids); none: every role the creating token has. */
  roleIds: z.array(idSchema).max(256),
});
export type CreateAppCredInput = z.input<typeof createAppCredRequest>;

const validationError = (detail: string) =>
  new CloudError('BadRequest', `Invalid application credential: ${detail}`);

export const appCredNotFound = (id: string) =>
  new CloudError('NotFound', `Could not find Application Credential: ${id}.`, { applicationCredential: id });

async function rolesOf(
  db: Kysely<KeystoneDb>,
  ids: string[],
): Promise<Map<string, Array<{ id: string; name: string }>>> {
  const out = new Map<string, Array<{ id: string; name: string }>>();
  if (ids.length === 0) return out;
  const rows = await db
    .selectFrom('application_credential_roles')
    .innerJoin('roles', 'roles.id', 'application_credential_roles.role_id')
    .select(['application_credential_roles.application_credential_id as appCredId', 'roles.id', 'roles.name'])
    .where('application_credential_roles.application_credential_id', 'in', ids)
    .orderBy('roles.name')
    .execute();
  for (const r of rows) out.set(r.appCredId, [...(out.get(r.appCredId) ?? []), { id: r.id, name: r.name }]);
  return out;
}

const toAppCred = (
  row: ApplicationCredentialsTable,
  roles: Array<{ id: string; name: string }>,
): ApplicationCredential => ({
  id: row.id,
  name: row.name,
  userId: row.user_id,
  projectId: row.project_id,
  description: row.description,
  expiresAt: row.expires_at,
  expiresAtMicros: row.expires_at_us,
  unrestricted: row.unrestricted === 1,
  roles,
});

/**
 * Keystone's create_application_credential (in the caller's transaction): the roles (with what they imply, which the caller's token must
 * hold too: checked by the caller) must be the user's on the project; a name is unique per user (409).
 */
export async function createAppCred(
  db: Kysely<KeystoneDb>,
  input: CreateAppCredInput,
  secretHash: string,
  now: number,
): Promise<ApplicationCredential> {
  const r = parseRequest(createAppCredRequest, input, 'application credential');
  const effective = await q.effectiveRoles(db, r.userId, r.projectId);
  const roles = await db
    .selectFrom('roles')
    .select(['id', 'name'])
    .where('id', 'in', r.roleIds.length ? r.roleIds : [''])
    .execute();
  if (roles.length === 0 || roles.length !== new Set(r.roleIds).size)
    throw validationError('Cannot create an application credential with unassigned role');
  for (const role of roles)
    if (!effective.includes(role.name))
      throw validationError(
        `Could not find role assignment with role: ${role.id}, user or group: ${r.userId}, project, domain, or system: ${r.projectId}.`,
      );
  const row: ApplicationCredentialsTable = {
    id: newId(),
    name: r.name,
    user_id: r.userId,
    project_id: r.projectId,
    secret_hash: secretHash,
    description: r.description ?? null,
    expires_at: r.expiresAt ?? null,
    expires_at_us: r.expiresAt === undefined || r.expiresAt === null ? 0 : (r.expiresAtMicros ?? 0),
    unrestricted: r.unrestricted === true ? 1 : 0,
    created_at: now,
  };
  try {
    await db.insertInto('application_credentials').values(row).execute();
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    throw new CloudError(
      'Conflict',
      'Conflict occurred attempting to store application_credential - Duplicate entry.',
    );
  }
  await db
    .insertInto('application_credential_roles')
    .values(roles.map((role) => ({ application_credential_id: row.id, role_id: role.id })))
    .execute();
  return toAppCred(
    row,
    [...roles].sort((a, b) => a.name.localeCompare(b.name)),
  );
}

export async function listAppCreds(
  db: Kysely<KeystoneDb>,
  userId: string,
  filter: { name?: string } = {},
): Promise<ApplicationCredential[]> {
  let query = db.selectFrom('application_credentials').selectAll().where('user_id', '=', userId);
  if (filter.name !== undefined) query = query.where('name', '=', filter.name);
  const rows = await query.orderBy('created_at').orderBy('id').execute();
  const roles = await rolesOf(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((r) => toAppCred(r, roles.get(r.id) ?? []));
}

/** One application credential with its secret's hash (for authentication); undefined if none. */
export async function appCredRow(
  db: Kysely<KeystoneDb>,
  ref: { id: string } | { name: string; userId: string },
): Promise<{ appCred: ApplicationCredential; secretHash: string } | undefined> {
  const query = db.selectFrom('application_credentials').selectAll();
  const row = await (
    'id' in ref
      ? query.where('id', '=', ref.id)
      : query.where('name', '=', ref.name).where('user_id', '=', ref.userId)
  ).executeTakeFirst();
  if (!row) return undefined;
  return {
    appCred: toAppCred(row, (await rolesOf(db, [row.id])).get(row.id) ?? []),
    secretHash: row.secret_hash,
  };
}

export async function getAppCred(db: Kysely<KeystoneDb>, id: string): Promise<ApplicationCredential> {
  const found = await appCredRow(db, { id: parseRequest(idSchema, id, 'application credential id') });
  if (!found) throw appCredNotFound(id);
  return found.appCred;
}

export async function deleteAppCred(db: Kysely<KeystoneDb>, id: string): Promise<void> {
  const res = await db.deleteFrom('application_credentials').where('id', '=', id).executeTakeFirst();
  if (Number(res.numDeletedRows) === 0) throw appCredNotFound(id);
}
