/**
 * Keystone's credentials (keystone/credential/core.py, api/credentials.py): a user's blobs of any type,
 * stored encrypted (credential-key.ts); an `ec2` credential's blob is JSON with an `access` key, and its id
 * is the SHA-256 of that access key, as Keystone's; and the EC2 credentials of /v3/users/{id}/credentials/
 * OS-EC2, which are ec2 credentials with a generated access and secret. A blob never appears in an error.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Clock } from '../clock';
import type { ServiceDb } from '../db';
import { isUniqueViolation } from '../db';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import type { CredentialKey } from './credential-key';
import type { CredentialsTable, KeystoneDb } from './schema';
import { parseExtra } from './views';

const newId = (): string => randomUUID().replace(/-/g, '');

export interface Credential {
  id: string;
  userId: string;
  projectId: string | null;
  type: string;
  /** The blob as the client gave it (a string; for ec2 a JSON object's text). */
  blob: string;
  extra: Record<string, unknown>;
}

/** Keystone's utils.hash_access_key: an ec2 credential's id. */
export const ec2CredentialId = (access: string): string => createHash('sha256').update(access).digest('hex');

const extraSchema = z
  .record(z.string().max(255), z.json())
  .refine((e) => JSON.stringify(e).length <= 65536, 'extra attributes exceed 64 KiB');
const blobSchema = z.string().max(65536);
const createCredentialRequest = z.strictObject({
  id: idSchema.optional(),
  userId: idSchema,
  projectId: idSchema.nullable().optional(),
  type: z.string().min(1).max(255),
  blob: blobSchema,
  extra: extraSchema.optional(),
});
const updateCredentialRequest = z.strictObject({
  id: idSchema,
  userId: idSchema.optional(),
  projectId: idSchema.nullable().optional(),
  type: z.string().min(1).max(255).optional(),
  blob: blobSchema.optional(),
  extra: extraSchema.optional(),
});
export type CreateCredentialInput = z.input<typeof createCredentialRequest>;
export type UpdateCredentialInput = z.input<typeof updateCredentialRequest>;

const validation = (message: string) => new CloudError('BadRequest', message);
const expecting = (attribute: string) =>
  validation(
    `Expecting to find ${attribute} in credential. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.`,
  );

/** Keystone's _validate_blob_json: an ec2 blob is a JSON object with an `access`. */
function ec2Blob(blob: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(blob);
  } catch {
    throw validation('Invalid blob in credential');
  }
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    Array.isArray(parsed) ||
    Object.keys(parsed).length === 0
  )
    throw expecting('blob');
  const access = (parsed as Record<string, unknown>).access;
  if (access === undefined || access === null) throw expecting('access');
  return parsed as Record<string, unknown>;
}

export class Credentials {
  constructor(
    private readonly store: ServiceDb<KeystoneDb>,
    private readonly clock: Clock,
    private readonly key: CredentialKey,
  ) {}

  private get db(): Kysely<KeystoneDb> {
    return this.store.db;
  }

  private view(row: CredentialsTable): Credential {
    return {
      id: row.id,
      userId: row.user_id,
      projectId: row.project_id,
      type: row.type,
      blob: this.key.decrypt(row.encrypted_blob, row.key_hash),
      extra: parseExtra(row.extra),
    };
  }

  private async row(db: Kysely<KeystoneDb>, id: string): Promise<CredentialsTable> {
    const row = await db.selectFrom('credentials').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new CloudError('NotFound', `Could not find credential: ${id}.`, { credential: id });
    return row;
  }

  private async checkUser(db: Kysely<KeystoneDb>, userId: string): Promise<void> {
    if (!(await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst()))
      throw new CloudError('NotFound', `Could not find user: ${userId}.`, { user: userId });
  }

  /**
   * Keystone's create_credential: an ec2 credential needs a project and its id is the hash of its access
   * key (Conflict if that access key is taken); any other type gets a new id.
   */
  async createCredential(input: CreateCredentialInput): Promise<Credential> {
    const r = parseRequest(createCredentialRequest, input, 'credential');
    const ec2 = r.type.toLowerCase() === 'ec2';
    if (ec2 && !r.projectId) throw expecting('project_id');
    const id = ec2 ? ec2CredentialId(String(ec2Blob(r.blob).access)) : (r.id ?? newId());
    const row: CredentialsTable = {
      id,
      user_id: r.userId,
      project_id: r.projectId ?? null,
      type: r.type,
      encrypted_blob: this.key.encrypt(r.blob),
      key_hash: this.key.hash,
      extra: JSON.stringify(r.extra ?? {}),
      created_at: this.clock.now(),
    };
    await this.store.transaction(async (trx) => {
      await this.checkUser(trx, r.userId);
      try {
        await trx.insertInto('credentials').values(row).execute();
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        throw new CloudError('Conflict', 'Conflict occurred attempting to store credential - Duplicate ID.');
      }
    });
    return this.view(row);
  }

  async getCredential(id: string): Promise<Credential> {
    return this.view(await this.row(this.db, parseRequest(idSchema, id, 'credential id')));
  }

  async listCredentials(filter: { userId?: string; type?: string } = {}): Promise<Credential[]> {
    let query = this.db.selectFrom('credentials').selectAll();
    if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
    if (filter.type !== undefined) query = query.where('type', '=', filter.type);
    return (await query.orderBy('created_at').orderBy('id').execute()).map((r) => this.view(r));
  }

  /**
   * Keystone's update_credential: becoming ec2 needs a project; an ec2 blob keeps its access key (the id is
   * its hash) and its trust_id / app_cred_id / access_token_id.
   */
  async updateCredential(input: UpdateCredentialInput): Promise<Credential> {
    const r = parseRequest(updateCredentialRequest, input, 'credential update');
    return this.store.transaction(async (trx) => {
      const current = this.view(await this.row(trx, r.id));
      const next: Credential = {
        ...current,
        ...(r.userId !== undefined ? { userId: r.userId } : {}),
        ...(r.projectId !== undefined ? { projectId: r.projectId } : {}),
        ...(r.type !== undefined ? { type: r.type } : {}),
        ...(r.blob !== undefined ? { blob: r.blob } : {}),
        extra: { ...current.extra, ...r.extra },
      };
      if (next.type.toLowerCase() === 'ec2') {
        if (!next.projectId) throw expecting('project_id');
        const blob = ec2Blob(next.blob);
        if (current.type.toLowerCase() === 'ec2' && r.blob !== undefined) {
          const old = ec2Blob(current.blob);
          for (const key of ['trust_id', 'app_cred_id', 'access_token_id', 'access_id'])
            if (old[key] !== blob[key]) throw validation(`${key} can not be updated for credential`);
        }
      }
      if (r.userId !== undefined) await this.checkUser(trx, r.userId);
      await trx
        .updateTable('credentials')
        .set({
          user_id: next.userId,
          project_id: next.projectId,
          type: next.type,
          encrypted_blob: this.key.encrypt(next.blob),
          key_hash: this.key.hash,
          extra: JSON.stringify(next.extra),
        })
        .where('id', '=', r.id)
        .execute();
      return next;
    });
  }

  async deleteCredential(id: string): Promise<void> {
    const credentialId = parseRequest(idSchema, id, 'credential id');
    const res = await this.db.deleteFrom('credentials').where('id', '=', credentialId).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0)
      throw new CloudError('NotFound', `Could not find credential: ${credentialId}.`, {
        credential: credentialId,
      });
  }

  /** POST /v3/users/{id}/credentials/OS-EC2: a new access and secret (uuid4 hex) for the user on the project. */
  async createEc2Credential(userId: string, projectId: string): Promise<Credential> {
    const project = parseRequest(idSchema, projectId, 'project id');
    if (!(await this.db.selectFrom('projects').select('id').where('id', '=', project).executeTakeFirst()))
      throw new CloudError('NotFound', `Could not find project: ${project}.`, { project });
    const blob = { access: newId(), secret: newId(), trust_id: null };
    return this.createCredential({ userId, projectId: project, type: 'ec2', blob: JSON.stringify(blob) });
  }
}
